// Loading YAML streams into yaml-cpp nodes, fast (private to the actor library; its tests use it).
//
// yaml-cpp's own scanner costs about 1 µs per input byte and was most of `asya render`'s time for
// many actors; libyaml's event parser is several times cheaper. FastLoadAll builds from libyaml's
// events exactly the nodes YAML::LoadAll builds: plain scalars tagged "?", quoted/block ones "!",
// explicit tags resolved (!!str -> tag:yaml.org,2002:str), untagged plain ~/null/Null/NULL/empty
// as Null nodes, collections tagged "?", aliases sharing their anchor's node, duplicate keys kept
// in order, one node per document (an empty document is a Null node).
#pragma once

#include <optional>
#include <string_view>
#include <vector>

#include <yaml-cpp/yaml.h>

namespace asya::actor::detail {

// The documents of `text`, or nullopt when libyaml refuses it (a syntax error, an unknown alias)
// or would read it differently from yaml-cpp (an anchor or alias name followed by one of ?:%@`; a
// document that is a tagged or anchored plain scalar over several lines, or a tag on nothing).
std::optional<std::vector<YAML::Node>> FastLoadAll(std::string_view text);

// FastLoadAll, else YAML::LoadAll (guarded: a text on which yaml-cpp 0.7 would never return is
// refused), which then throws YAML::Exception with yaml-cpp's own message
// and mark: errors read the same as before the fast path existed. A document whose aliases
// expand past the limits of asya/base/yaml_text.h throws too (with a null mark).
std::vector<YAML::Node> LoadAllDocuments(std::string_view text);

}  // namespace asya::actor::detail
