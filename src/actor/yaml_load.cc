#include "actor/yaml_load.h"

#include <algorithm>
#include <sstream>
#include <string>
#include <utility>

#include <yaml.h>  // libyaml

#include <yaml-cpp/eventhandler.h>

#include "asya/base/yaml_text.h"

namespace asya::actor::detail {
namespace {

// libyaml ends an anchor or alias name at the first character outside [0-9A-Za-z_-] and accepts
// the name when one of ?:%@` follows it; yaml-cpp (YAML 1.2) takes those characters into the name
// ("&limits:" is the anchor "limits:" for yaml-cpp, the anchor "limits" on an empty key for
// libyaml). True when the text has such a spot anywhere (quoted text and comments included: a
// false alarm only costs yaml-cpp's slower loader).
bool HasAmbiguousAnchorName(std::string_view text) {
  auto name_char = [](char c) {
    return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_' ||
           c == '-';
  };
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '&' && text[i] != '*') {
      continue;
    }
    size_t end = i + 1;
    while (end < text.size() && name_char(text[end])) {
      ++end;
    }
    if (end > i + 1 && end < text.size() &&
        std::string_view("?:%@`").find(text[end]) != std::string_view::npos) {
      return true;
    }
    i = end - 1;
  }
  return false;
}

// Remembers where the last document started; ignores everything else.
class DocumentStart : public YAML::EventHandler {
 public:
  YAML::Mark mark = YAML::Mark::null_mark();
  void OnDocumentStart(const YAML::Mark& m) override { mark = m; }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
  void OnAlias(const YAML::Mark&, YAML::anchor_t) override {}
  void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t,
                const std::string&) override {}
  void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                       YAML::EmitterStyle::value) override {}
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                  YAML::EmitterStyle::value) override {}
  void OnMapEnd() override {}
};

// YAML::LoadAll, except that a text on which yaml-cpp 0.7 never returns is refused. A document
// that starts with a token no node can start with (a ',' at the top level: ",1", "&a ,") makes
// its parser report an empty document without consuming the token, again and again, and LoadAll
// keeps every one until memory runs out (yaml-cpp issue 1040; Debian 12 ships 0.7). A walk over
// the documents with the event parser first sees a document start where the last one started.
std::vector<YAML::Node> YamlCppLoadAll(std::string_view text) {
  {
    std::istringstream in{std::string(text)};
    YAML::Parser parser(in);
    DocumentStart start;
    std::optional<YAML::Mark> last;
    while (parser.HandleNextDocument(start)) {  // yaml-cpp's own errors propagate as they are
      if (last && start.mark.pos == last->pos) {
        throw YAML::ParserException(start.mark, "unexpected token where a document starts");
      }
      last = start.mark;
    }
  }
  return YAML::LoadAll(std::string(text));
}

}  // namespace

std::optional<std::vector<YAML::Node>> FastLoadAll(std::string_view text) {
  if (HasAmbiguousAnchorName(text)) {
    return std::nullopt;
  }
  yaml_parser_t parser;
  if (yaml_parser_initialize(&parser) == 0) {
    return std::nullopt;
  }
  yaml_parser_set_input_string(&parser, reinterpret_cast<const unsigned char*>(text.data()),
                               text.size());
  struct Frame {
    YAML::Node node;
    std::optional<YAML::Node> key;  // maps: the key waiting for its value
  };
  std::vector<YAML::Node> docs;
  std::vector<Frame> stack;
  std::vector<std::pair<std::string, YAML::Node>> anchors;
  bool ok = true;
  bool done = false;
  auto tag_of = [](const yaml_char_t* tag, bool implicit_plain) -> std::string {
    if (tag != nullptr) {
      return reinterpret_cast<const char*>(tag);
    }
    return implicit_plain ? "?" : "!";
  };
  auto anchor = [&](const yaml_char_t* name, const YAML::Node& n) {
    if (name != nullptr) {
      anchors.emplace_back(reinterpret_cast<const char*>(name), n);
    }
  };
  // A finished node goes into its parent (or becomes the document).
  auto add = [&](const YAML::Node& n) {
    if (stack.empty()) {
      docs.push_back(n);
      return;
    }
    Frame& top = stack.back();
    if (top.node.IsSequence()) {
      top.node.push_back(n);
    } else if (!top.key) {
      top.key = n;
    } else {
      top.node.force_insert(*top.key, n);
      top.key.reset();
    }
  };
  while (ok && !done) {
    yaml_event_t ev;
    if (yaml_parser_parse(&parser, &ev) == 0) {
      ok = false;
      break;
    }
    switch (ev.type) {
      case YAML_STREAM_END_EVENT:
        done = true;
        break;
      case YAML_DOCUMENT_END_EVENT:
        anchors.clear();
        break;
      case YAML_SCALAR_EVENT: {
        const auto& sc = ev.data.scalar;
        const std::string value(reinterpret_cast<const char*>(sc.value), sc.length);
        const bool plain = sc.style == YAML_PLAIN_SCALAR_STYLE;
        if (stack.empty() && plain &&
            (((sc.tag != nullptr || sc.anchor != nullptr) &&
              ev.end_mark.line != ev.start_mark.line) ||
             (sc.tag != nullptr && value.empty()))) {
          // A document that is one plain scalar with a tag or anchor, where yaml-cpp reads
          // something else than libyaml, so yaml-cpp decides: continued on lines indented no
          // deeper than its first, yaml-cpp ends the scalar there and starts another document
          // ("!t a\nb" is "a", then "b"); a tag on nothing at the end of the text is a null node
          // without the tag for yaml-cpp ("!t"), an empty tagged string for libyaml.
          ok = false;
          break;
        }
        YAML::Node n;
        if (plain && sc.tag == nullptr &&
            (value.empty() || value == "~" || value == "null" || value == "Null" ||
             value == "NULL")) {
          n = YAML::Node(YAML::NodeType::Null);
        } else {
          n = YAML::Node(value);
          n.SetTag(tag_of(sc.tag, plain));
        }
        anchor(sc.anchor, n);
        add(n);
        break;
      }
      case YAML_SEQUENCE_START_EVENT:
      case YAML_MAPPING_START_EVENT: {
        const bool seq = ev.type == YAML_SEQUENCE_START_EVENT;
        YAML::Node n(seq ? YAML::NodeType::Sequence : YAML::NodeType::Map);
        const yaml_char_t* tag = seq ? ev.data.sequence_start.tag : ev.data.mapping_start.tag;
        n.SetTag(tag_of(tag, true));
        anchor(seq ? ev.data.sequence_start.anchor : ev.data.mapping_start.anchor, n);
        // Into the parent while still empty (nodes are references; filled below): each child
        // then joins one shared node memory instead of re-merging whole subtrees level by level.
        add(n);
        stack.push_back({n, std::nullopt});
        break;
      }
      case YAML_SEQUENCE_END_EVENT:
      case YAML_MAPPING_END_EVENT:
        stack.pop_back();
        break;
      case YAML_ALIAS_EVENT: {
        const std::string name = reinterpret_cast<const char*>(ev.data.alias.anchor);
        auto it = std::find_if(anchors.rbegin(), anchors.rend(),
                               [&](const auto& a) { return a.first == name; });
        if (it == anchors.rend()) {
          ok = false;  // yaml-cpp reports the unknown anchor
        } else {
          add(it->second);
        }
        break;
      }
      default:
        break;
    }
    yaml_event_delete(&ev);
  }
  yaml_parser_delete(&parser);
  if (!ok) {
    return std::nullopt;
  }
  return docs;
}

std::vector<YAML::Node> LoadAllDocuments(std::string_view text) {
  auto fast = FastLoadAll(text);
  std::vector<YAML::Node> docs = fast ? std::move(*fast) : YamlCppLoadAll(text);
  YamlExpansionBudget budget(text.size());  // one for the whole text, not one per document
  for (size_t i = 0; i < docs.size(); ++i) {
    if (auto problem = YamlExpansionProblem(docs[i], budget)) {
      throw YAML::Exception(
          YAML::Mark::null_mark(),
          "document " + std::to_string(i + 1) + ": " + *problem +
              (i > 0 ? " (the limit is for all documents of a file together)" : ""));
    }
  }
  return docs;
}

}  // namespace asya::actor::detail
