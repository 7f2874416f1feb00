// Fuzzes the actor manifests every control-plane program reads: AsyncActor resources and
// asya-actor Helm values files (actor::ParseManifests, used by `asya up`, `asya render` and the
// operator on objects from the Kubernetes API) and the YAML loader underneath (libyaml fast path
// against yaml-cpp's own loader). render_fuzz takes the accepted actors on to the renderer.
//
// Invariants:
// - Nothing crashes or throws; every error names the source.
// - FastLoadAll builds exactly the nodes YAML::LoadAll builds whenever both accept the text
//   (yaml_load.h's contract), and yaml-cpp accepts what libyaml accepts.
// - Accepted actors have valid, unique names; their effective sidecar environment and runtime
//   timeout are readable (the timeout is a duration ParseDuration accepts).
#include <cstdint>
#include <cstdio>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>
#include <yaml-cpp/yaml.h>

#include "actor/yaml_load.h"
#include "asya/actor/manifest.h"
#include "asya/base/duration.h"
#include "asya/base/yaml_text.h"
#include "fuzz_check.h"

namespace {

// Deeper documents are not compared (the comparison recurses).
constexpr int kMaxCompareDepth = 200;

bool SameNode(const YAML::Node& a, const YAML::Node& b, int depth) {
  if (depth > kMaxCompareDepth) {
    return true;
  }
  if (a.Type() != b.Type() || a.Tag() != b.Tag()) {
    return false;
  }
  switch (a.Type()) {
    case YAML::NodeType::Scalar:
      return a.Scalar() == b.Scalar();
    case YAML::NodeType::Sequence:
    case YAML::NodeType::Map: {
      if (a.size() != b.size()) {
        return false;
      }
      auto ia = a.begin();
      auto ib = b.begin();
      for (; ia != a.end(); ++ia, ++ib) {
        if (a.IsMap()) {
          if (!SameNode(ia->first, ib->first, depth + 1) ||
              !SameNode(ia->second, ib->second, depth + 1)) {
            return false;
          }
        } else if (!SameNode(*ia, *ib, depth + 1)) {
          return false;
        }
      }
      return true;
    }
    default:
      return true;
  }
}

void CheckLoaders(std::string_view text) {
  if (asya::YamlTextProblem(text)) {
    return;  // refused before either loader sees it (ParseManifests, ParseYamlDocuments)
  }
  auto fast = asya::actor::detail::FastLoadAll(text);
  if (!fast) {
    return;  // nothing to compare (and yaml-cpp 0.7's LoadAll never returns on some such texts)
  }
  std::vector<YAML::Node> slow;
  bool slow_ok = true;
  try {
    slow = YAML::LoadAll(std::string(text));
  } catch (const YAML::Exception&) {
    slow_ok = false;
  }
  if (slow_ok) {
    FUZZ_CHECK(fast->size() == slow.size());
    for (size_t i = 0; i < slow.size(); ++i) {
      FUZZ_CHECK(SameNode((*fast)[i], slow[i], 0));
    }
  }
}

void CheckActors(const asya::actor::LoadResult& result) {
  std::set<std::string> names;
  for (const auto& spec : result.actors) {
    FUZZ_CHECK(asya::actor::IsValidActorName(spec.name));
    FUZZ_CHECK(names.insert(spec.namespace_ + "/" + spec.name).second);
    (void)asya::actor::EffectiveSidecarEnv(spec);
    const std::string timeout = asya::actor::EffectiveRuntimeTimeout(spec);
    if (!timeout.empty()) {
      FUZZ_CHECK(asya::ParseDuration(timeout).has_value());
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  CheckLoaders(in);

  for (bool require_transport : {false, true}) {
    asya::actor::ParseOptions options;
    options.require_transport = require_transport;
    options.skip_crew = !require_transport;
    auto parsed = asya::actor::ParseManifests(in, "fuzz.yaml", "/srv/actors", options);
    if (parsed) {
      CheckActors(*parsed);
    } else {
      FUZZ_CHECK(parsed.error().message.find("fuzz.yaml") != std::string::npos);
    }
  }
  return 0;
}
