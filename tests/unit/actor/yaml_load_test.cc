// The libyaml fast path builds exactly the nodes yaml-cpp builds (type, tag, scalar text, order,
// shared aliases) for every YAML shape manifests and values files use, and leaves every error to
// yaml-cpp so messages stay the same.
#include "actor/yaml_load.h"

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace asya::actor::detail {
namespace {

// Everything a caller can observe of a node, as text.
void Dump(const YAML::Node& n, std::string& out) {
  switch (n.Type()) {
    case YAML::NodeType::Null:
      out += "~";
      return;
    case YAML::NodeType::Scalar:
      out += "S<" + n.Tag() + ">'" + n.Scalar() + "'";
      return;
    case YAML::NodeType::Sequence:
      out += "[<" + n.Tag() + ">";
      for (const auto& e : n) {
        Dump(e, out);
        out += ",";
      }
      out += "]";
      return;
    case YAML::NodeType::Map:
      out += "{<" + n.Tag() + ">";
      for (const auto& kv : n) {
        Dump(kv.first, out);
        out += ":";
        Dump(kv.second, out);
        out += ",";
      }
      out += "}";
      return;
    default:
      out += "?undefined";
  }
}

std::string DumpAll(const std::vector<YAML::Node>& docs) {
  std::string out;
  for (const auto& d : docs) {
    out += "--- ";
    Dump(d, out);
    out += "\n";
  }
  return out;
}

void ExpectSameAsYamlCpp(const std::string& text) {
  auto fast = FastLoadAll(text);
  ASSERT_TRUE(fast.has_value()) << "libyaml refused:\n" << text;
  EXPECT_EQ(DumpAll(*fast), DumpAll(YAML::LoadAll(text))) << text;
}

TEST(YamlLoad, SameNodesAsYamlCpp) {
  const std::vector<std::string> cases = {
      "",
      "# only a comment\n",
      "---\n",
      "a: 1\n---\n",
      "---\na: 1\n---\nb: 2\n...\n---\nc: 3\n",
      "plain: text\nint: 42\nneg: -7\nfloat: 1.5\nbool: true\nyes: no\nquoted: \"5\"\n"
      "single: 'x y'\nempty:\ntilde: ~\nnull1: null\nnull2: Null\nnull3: NULL\nq_null: \"null\"\n"
      "q_empty: ''\n",
      "tags: {s: !!str 5, i: !!int \"7\", custom: !thing x, nonspecific: ! 3, n: !!null ''}\n",
      "flow: {a: [1, 2, {b: c}], d: []}\nempty_map: {}\n",
      "block: |\n  line one\n  line two\nfolded: >\n  a\n  b\nkeep: |+\n  x\n\nstrip: |-\n  y\n",
      "base: &b {cpu: 1, mem: 2}\nuse: *b\nlist: &l [x, y]\nagain: *l\ns: &s scalar\nt: *s\n",
      "dup: 1\ndup: 2\n",
      "? complex\n: value\n? [a, b]\n: seq-key\n",
      "- a\n- - b\n  - c\n- d: e\n  f: g\n-\n- ''\n",
      "key with spaces: v\n\"quoted key\": w\n'1': one\n2: two\n",
      "unicode: \"caf\\u00e9 \\t tab\"\nraw: café\n",
      "\xEF\xBB\xBF"
      "bom: true\n",
      "{\"json\": true, \"list\": [1, \"2\", null], \"nested\": {\"a\": {}}}\n",
      "spec:\n  workload:\n    template:\n      spec:\n        containers:\n"
      "          - name: asya-runtime\n            env:\n              - name: A\n"
      "                value: \"1\"\n",
  };
  for (const auto& c : cases) {
    ExpectSameAsYamlCpp(c);
  }
}

TEST(YamlLoad, SameNodesForTheRepositoryYaml) {
  namespace fs = std::filesystem;
  const char* src = std::getenv("ASYA_SOURCE_DIR");
  ASSERT_NE(src, nullptr);
  int files = 0;
  for (const char* dir :
       {"examples", "deploy/crds", "tests/deploy/testdata", "tests/unit/operator/testdata"}) {
    for (const auto& e : fs::recursive_directory_iterator(fs::path(src) / dir)) {
      const auto ext = e.path().extension();
      if (!e.is_regular_file() || (ext != ".yaml" && ext != ".yml")) {
        continue;
      }
      std::ifstream in(e.path(), std::ios::binary);
      std::stringstream text;
      text << in.rdbuf();
      SCOPED_TRACE(e.path().string());
      ExpectSameAsYamlCpp(text.str());
      ++files;
    }
  }
  EXPECT_GT(files, 10);
}

TEST(YamlLoad, AnAliasSharesItsAnchorsNode) {
  auto docs = FastLoadAll("a: &x {k: 1}\nb: *x\n");
  ASSERT_TRUE(docs.has_value());
  EXPECT_TRUE((*docs)[0]["a"].is((*docs)[0]["b"]));
}

TEST(YamlLoad, ErrorsAreYamlCppsOwn) {
  for (const std::string text :
       {"kind: [unclosed\n", "a: b: c\n", "a: *nowhere\n", "a:\n\tb: tab\n"}) {
    SCOPED_TRACE(text);
    std::string want;
    try {
      YAML::LoadAll(text);
      ADD_FAILURE() << "yaml-cpp accepted it";
    } catch (const YAML::Exception& e) {
      want = e.what();
    }
    EXPECT_FALSE(FastLoadAll(text).has_value());
    try {
      LoadAllDocuments(text);
      ADD_FAILURE() << "accepted";
    } catch (const YAML::Exception& e) {
      EXPECT_EQ(std::string(e.what()), want);
    }
  }
}

// libyaml ends an anchor name before ':' (an anchored empty key), yaml-cpp takes the ':' into the
// name (the anchor "limits:" on the map below it); found by manifest_fuzz. yaml-cpp's reading wins.
TEST(YamlLoad, AnAnchorOrAliasNameBeforeAColonIsReadAsYamlCppReadsIt) {
  for (const std::string text : {"resources:\n  &limits:\n    cpu: \"1\"\n",
                                 "a: &x 1\nb: {*x: 2}\n", "a: &x? 1\n", "a: &x@ 1\n"}) {
    SCOPED_TRACE(text);
    EXPECT_FALSE(FastLoadAll(text).has_value());
    std::vector<YAML::Node> want;
    try {
      want = YAML::LoadAll(text);
    } catch (const YAML::Exception&) {
      EXPECT_THROW(LoadAllDocuments(text), YAML::Exception);
      continue;
    }
    EXPECT_EQ(DumpAll(LoadAllDocuments(text)), DumpAll(want));
  }
  const auto docs = LoadAllDocuments("resources:\n  &limits:\n    cpu: \"1\"\n");
  EXPECT_EQ(docs[0]["resources"]["cpu"].as<std::string>(), "1");
  // Names that end at a blank or a flow indicator read the same in both: the fast path stays.
  EXPECT_TRUE(FastLoadAll("a: &x 1\nb: [*x, *x]\nc: {k: *x}\n").has_value());
}

// A document that is one tagged or anchored plain scalar continued on a line indented no deeper:
// libyaml reads one scalar, yaml-cpp a scalar and then a second document (found by manifest_fuzz).
TEST(YamlLoad, ATaggedRootScalarOverSeveralLinesIsReadAsYamlCppReadsIt) {
  for (const std::string text : {"!t a\nb\n", "&x a\nb\n", "  !t a\n  b\n"}) {
    SCOPED_TRACE(text);
    EXPECT_FALSE(FastLoadAll(text).has_value());
    EXPECT_EQ(DumpAll(LoadAllDocuments(text)), DumpAll(YAML::LoadAll(text)));
    EXPECT_EQ(LoadAllDocuments(text).size(), 2U);
  }
  // Continued deeper: one scalar in both readings (yaml-cpp reads it too: the rule is by shape).
  EXPECT_EQ(DumpAll(LoadAllDocuments("!t a\n b\n")), DumpAll(YAML::LoadAll("!t a\n b\n")));
  ExpectSameAsYamlCpp("k: !t a\n  b\n");  // not at the root: the fast path stays
}

// A document that is only a tag: an empty tagged string for libyaml, a null node without the tag
// for yaml-cpp at the end of the text (found by manifest_fuzz: the one-byte input "!").
TEST(YamlLoad, ADocumentThatIsOnlyATagIsReadAsYamlCppReadsIt) {
  for (const std::string text : {"!", "!!str", "!t\n", "--- !t\n# c\n"}) {
    SCOPED_TRACE(text);
    EXPECT_FALSE(FastLoadAll(text).has_value());
    EXPECT_EQ(DumpAll(LoadAllDocuments(text)), DumpAll(YAML::LoadAll(text)));
    EXPECT_TRUE(LoadAllDocuments(text)[0].IsNull());
  }
  ExpectSameAsYamlCpp("a: !t\nb: 1\n");  // not at the root: "" with the tag in both
}

// yaml-cpp 0.7's LoadAll loops for ever, keeping an empty document per turn, on a document that
// starts with ',' (found by manifest_fuzz: ",11" took 2 GB in seconds). Refused with a mark.
TEST(YamlLoad, ADocumentStartingWithACommaIsRefusedInsteadOfLoopingForEver) {
  for (const std::string text : {",11", ",", "&a ,", "!t ,", "a: 1\n---\n,\n"}) {
    SCOPED_TRACE(text);
    EXPECT_FALSE(FastLoadAll(text).has_value());
    try {
      LoadAllDocuments(text);
      ADD_FAILURE() << "accepted";
    } catch (const YAML::Exception& e) {
      EXPECT_NE(std::string(e.what()).find("unexpected token where a document starts"),
                std::string::npos)
          << e.what();
      EXPECT_NE(std::string(e.what()).find("line "), std::string::npos) << e.what();
    }
  }
}

TEST(YamlLoad, WhereLibyamlIsStricterYamlCppDecides) {
  const std::string text = "- a\nb: c\n";  // yaml-cpp reads a one-item list
  ASSERT_FALSE(FastLoadAll(text).has_value());
  EXPECT_EQ(DumpAll(LoadAllDocuments(text)), DumpAll(YAML::LoadAll(text)));
}

}  // namespace
}  // namespace asya::actor::detail
