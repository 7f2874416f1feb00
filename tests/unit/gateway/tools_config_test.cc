// Tools YAML (reference-controlplane §7.3): strict decoding, merging, validation, the advertised
// inputSchema, and argument checking.
#include "asya/gateway/tools_config.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "support/temp_dir.h"

namespace asya::gateway {
namespace {

using nlohmann::json;

constexpr const char* kGood = R"(
defaults: {progress: true, timeout: 60}
routes:
  pipeline: [prep, infer]
tools:
- name: zeta
  description: uses a named route
  route: pipeline
- name: alpha
  description: inline route, own options
  route: [a, b, c]
  progress: false
  timeout: 0
  metadata: {team: ml}
  task_support: required
  parameters:
    text: {type: string, description: input text, required: true}
    count: {type: integer, default: 3, minimum: 1}
    ratio: {type: number}
    mode: {type: string, options: [fast, slow], default: fast}
    flags: {type: array, items: {type: boolean}}
    opts:
      type: object
      properties:
        depth: {type: integer, required: true}
)";

TEST(ToolsConfig, ParsesToolsWithEffectiveOptionsAndSchema) {
  auto tools = ParseToolsConfig(kGood, "good.yaml");
  ASSERT_TRUE(tools.has_value()) << tools.error().message;
  ASSERT_EQ(tools->size(), 2u);
  const Tool& a = (*tools)[0];  // sorted by name
  EXPECT_EQ(a.name, "alpha");
  EXPECT_EQ(a.route, (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_FALSE(a.progress);
  EXPECT_EQ(a.timeout_seconds, 0);
  EXPECT_EQ(a.task_support, "required");
  EXPECT_EQ(json::parse(a.metadata_json), json({{"team", "ml"}}));
  json s = json::parse(a.input_schema_json);
  EXPECT_EQ(s["type"], "object");
  EXPECT_EQ(s["additionalProperties"], false);
  EXPECT_EQ(s["required"], json({"text"}));
  EXPECT_EQ(s["properties"]["count"]["type"], "integer");
  EXPECT_EQ(s["properties"]["count"]["default"], 3);
  EXPECT_EQ(s["properties"]["count"]["minimum"], 1);
  EXPECT_EQ(s["properties"]["ratio"]["type"], "number");
  EXPECT_EQ(s["properties"]["mode"]["enum"], json({"fast", "slow"}));
  EXPECT_EQ(s["properties"]["mode"]["default"], "fast");
  EXPECT_EQ(s["properties"]["flags"]["items"]["type"], "boolean");
  EXPECT_EQ(s["properties"]["opts"]["type"], "object");
  EXPECT_EQ(s["properties"]["opts"]["properties"]["depth"]["type"], "integer");
  EXPECT_EQ(s["properties"]["opts"]["required"], json({"depth"}));
  const Tool& z = (*tools)[1];
  EXPECT_EQ(z.route, (std::vector<std::string>{"prep", "infer"}));
  EXPECT_TRUE(z.progress);
  EXPECT_EQ(z.timeout_seconds, 60);
  EXPECT_EQ(z.task_support, "optional");
}

// Found by fuzz/tools_config_fuzz: invalid UTF-8 in a YAML string made the schema's JSON dump
// throw (the gateway would terminate at start).
TEST(ToolsConfig, InvalidUtf8IsAnErrorNamingTheLine) {
  auto r = ParseToolsConfig("tools:\n- name: s\n  route: [a]\n  description: caf\xE9\n", "u.yaml");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(r.error().message, "u.yaml:4: invalid UTF-8 at byte 48 (invalid continuation byte)");
}

// The renderer's alias bomb (fuzz/render_fuzz) in a tools file: refused, not expanded.
TEST(ToolsConfig, AliasesThatExpandWithoutBoundAreRefused) {
  std::string y = "x0: &l0 [\"lol\"]\n";
  for (int i = 1; i <= 9; ++i) {
    y += "x" + std::to_string(i) + ": &l" + std::to_string(i) + " [";
    for (int k = 0; k < 10; ++k) {
      y += (k == 0 ? "*l" : ", *l") + std::to_string(i - 1);
    }
    y += "]\n";
  }
  auto r = ParseToolsConfig(y + "tools: []\n", "b.yaml");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(r.error().message,
            "b.yaml: invalid YAML: its aliases expand past 262144 values (each alias repeats "
            "its anchor's whole value)");
}

TEST(ToolsConfig, ControlCharacterIsAnErrorNamingTheLine) {
  const std::string yaml("tools:\n- name: s\n  route: [a]\n  description: a\0b\n", 49);
  auto r = ParseToolsConfig(yaml, "c.yaml");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(r.error().message,
            "c.yaml:4: control character U+0000 at byte 46 (YAML does not allow it)");
}

TEST(ToolsConfig, BuiltInOptionsWithoutDefaults) {
  auto tools = ParseToolsConfig("tools: [{name: t, route: [a]}]", "x.yaml");
  ASSERT_TRUE(tools.has_value()) << tools.error().message;
  EXPECT_FALSE((*tools)[0].progress);
  EXPECT_EQ((*tools)[0].timeout_seconds, 300);
}

TEST(ToolsConfig, InputSchemaIsKeptVerbatim) {
  auto tools = ParseToolsConfig(R"(
tools:
- name: s
  route: [a]
  input_schema:
    $schema: https://json-schema.org/draft/2020-12/schema
    type: object
    $defs: {addr: {type: object, properties: {city: {type: string}}}}
    properties:
      home: {$ref: "#/$defs/addr"}
    additionalProperties: false
)",
                                "s.yaml");
  ASSERT_TRUE(tools.has_value()) << tools.error().message;
  json s = json::parse((*tools)[0].input_schema_json);
  EXPECT_EQ(s["$schema"], "https://json-schema.org/draft/2020-12/schema");
  EXPECT_EQ(s["$defs"]["addr"]["properties"]["city"]["type"], "string");
  EXPECT_EQ(s["properties"]["home"]["$ref"], "#/$defs/addr");
}

struct BadCase {
  const char* yaml;
  const char* expect;  // substring of the error
};

TEST(ToolsConfig, InvalidConfigsGetClearErrors) {
  const BadCase cases[] = {
      {"tools: []", "no tools"},
      {"defaults: {progress: true}", "no tools"},
      {"tools: [{name: a, route: [x]}, {name: a, route: [y]}]", "duplicate tool name 'a'"},
      {"tools: [{name: '', route: [x]}]", "empty name"},
      {"tools: [{route: [x]}]", "empty name"},
      {"tools: [{name: a, route: [x], parameters: {p: {type: float}}}]", "invalid type 'float'"},
      {"tools: [{name: a, route: [x], parameters: {p: {type: array, items: {type: map}}}}]",
       "invalid type 'map'"},
      {"tools: [{name: a, route: [x], parameters: {p: {type: object, properties: {q: {type: "
       "nope}}}}}]",
       "parameter 'p.q' has invalid type"},
      {"tools: [{name: a, route: [x], timeout: -1}]", "timeout must be between"},
      {"tools: [{name: a, route: missing}]", "unknown route 'missing'"},
      {"tools: [{name: a, route: []}]", "route resolves to no actors"},
      {"tools: [{name: a}]", "route resolves to no actors"},
      {"tools: [{name: a, route: [x], colour: red}]", "unknown key 'colour' in a tool"},
      {"tools: [{name: a, route: [x], parameters: {p: {type: string, reqired: true}}}]",
       "unknown key 'reqired'"},
      {"tool: []", "unknown key 'tool' in the top level"},
      {"defaults: {timeout: 5, retries: 2}\ntools: [{name: a, route: [x]}]",
       "unknown key 'retries' in defaults"},
      {"tools: [{name: a, route: [x], parameters: {n: {type: integer, default: abc}}}]",
       "default \"abc\" is not a integer"},
      {"tools: [{name: a, route: [x], parameters: {n: {type: integer, options: [1, x]}}}]",
       "option \"x\" is not a integer"},
      {"tools: [{name: a, route: [x], progress: maybe}]", "'progress' must be true or false"},
      {"tools: [{name: a, route: [x], task_support: always}]", "task_support must be"},
      {"tools: [{name: a\n  route: [x]", "invalid YAML"},
      {"routes: {r: [a]}\nroutes: {r: [b]}\ntools: [{name: a, route: r}]", ""},
  };
  for (const auto& c : cases) {
    auto r = ParseToolsConfig(c.yaml, "bad.yaml");
    if (std::string(c.expect).empty()) {
      continue;  // only must not crash
    }
    ASSERT_FALSE(r.has_value()) << c.yaml;
    EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument);
    EXPECT_NE(r.error().message.find(c.expect), std::string::npos)
        << c.yaml << " -> " << r.error().message;
    EXPECT_EQ(r.error().message.rfind("bad.yaml", 0), 0u) << r.error().message;
  }
}

TEST(ToolsConfig, ErrorsNameTheLine) {
  auto r = ParseToolsConfig("tools:\n- name: a\n  route: [x]\n  bogus: 1\n", "f.yaml");
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().message.find("f.yaml:4"), std::string::npos) << r.error().message;
}

TEST(ToolsConfig, DirectoryMergesYamlFilesOnly) {
  test::TempDir dir;
  dir.Write("a.yaml",
            "defaults: {timeout: 10}\nroutes: {r: [x, y]}\ntools: [{name: one, route: r}]");
  dir.Write("b.yml", "defaults: {timeout: 20}\ntools: [{name: two, route: [z]}]");
  dir.Write("c.txt", "this is not yaml: [");
  auto tools = LoadToolsConfig(dir.path());
  ASSERT_TRUE(tools.has_value()) << tools.error().message;
  ASSERT_EQ(tools->size(), 2u);
  EXPECT_EQ((*tools)[0].name, "one");
  EXPECT_EQ((*tools)[0].route, (std::vector<std::string>{"x", "y"}));
  EXPECT_EQ((*tools)[0].timeout_seconds, 20);  // the last file's defaults win
  EXPECT_EQ((*tools)[1].timeout_seconds, 20);

  dir.Write("d.yaml", "tools: [{name: one, route: [q]}]");
  auto dup = LoadToolsConfig(dir.path());
  ASSERT_FALSE(dup.has_value());
  EXPECT_NE(dup.error().message.find("duplicate tool name 'one'"), std::string::npos);

  test::TempDir other;
  other.Write("a.yaml", "routes: {r: [x]}\ntools: [{name: one, route: r}]");
  other.Write("b.yaml", "routes: {r: [y]}");
  auto route_dup = LoadToolsConfig(other.path());
  ASSERT_FALSE(route_dup.has_value());
  EXPECT_NE(route_dup.error().message.find("route 'r' is defined twice"), std::string::npos);

  EXPECT_FALSE(LoadToolsConfig(dir.File("nope.yaml")).has_value());
  test::TempDir empty;
  EXPECT_FALSE(LoadToolsConfig(empty.path()).has_value());
}

class Arguments : public ::testing::Test {
 protected:
  void SetUp() override {
    auto tools = ParseToolsConfig(kGood, "good.yaml");
    ASSERT_TRUE(tools.has_value());
    schema_ = (*tools)[0].input_schema_json;
  }
  Result<std::string> Check(std::string_view args) { return CheckArguments(schema_, args); }
  void ExpectError(std::string_view args, std::string_view message) {
    auto r = Check(args);
    ASSERT_FALSE(r.has_value()) << args;
    EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument);
    EXPECT_NE(r.error().message.find(message), std::string::npos)
        << args << " -> " << r.error().message;
  }
  std::string schema_;
};

TEST_F(Arguments, ValidArgumentsGetDefaults) {
  auto r = Check(R"({"text":"hi","ratio":2})");
  ASSERT_TRUE(r.has_value()) << r.error().message;
  json j = json::parse(*r);
  EXPECT_EQ(j["text"], "hi");
  EXPECT_EQ(j["count"], 3);
  EXPECT_EQ(j["mode"], "fast");
  EXPECT_EQ(j["ratio"], 2);
}

TEST_F(Arguments, VerbatimWhenNothingIsFilledIn) {
  const std::string args = R"({"text":"hi","count":5,"mode":"slow","big":1e400})";
  // (big is unknown: refused) — use a valid one instead.
  const std::string ok = R"({"mode":"slow", "count":5,"text":"hi"})";
  auto r = Check(ok);
  ASSERT_TRUE(r.has_value()) << r.error().message;
  EXPECT_EQ(*r, ok);
}

TEST_F(Arguments, RefusedWithTheParameterNamed) {
  ExpectError("{}", "missing required parameter: text");
  ExpectError(R"({"text":"a","colour":1})", "unknown parameter: colour");
  ExpectError(R"({"text":5})", "parameter 'text': expected string, got integer");
  ExpectError(R"({"text":"a","count":1.5})", "parameter 'count': expected integer, got number");
  ExpectError(R"({"text":"a","count":0})", "parameter 'count': must be >= 1");
  ExpectError(R"({"text":"a","ratio":"x"})", "parameter 'ratio': expected number, got string");
  ExpectError(R"({"text":"a","mode":"medium"})", "parameter 'mode': must be one of");
  ExpectError(R"({"text":"a","flags":[true,"no"]})", "parameter 'flags[1]': expected boolean");
  ExpectError(R"({"text":"a","opts":{}})", "missing required parameter: opts.depth");
  ExpectError(R"({"text":"a","opts":{"depth":"deep"}})",
              "parameter 'opts.depth': expected integer");
  ExpectError(R"([1,2])", "arguments must be a JSON object");
  ExpectError(R"({"text":)", "arguments are not valid JSON");
}

TEST_F(Arguments, IntegralFloatsAreIntegersAndIntegersAreNumbers) {
  EXPECT_TRUE(Check(R"({"text":"a","count":4.0})").has_value());
  EXPECT_TRUE(Check(R"({"text":"a","ratio":4})").has_value());
  EXPECT_TRUE(Check(R"({"text":"a","ratio":4.5})").has_value());
}

}  // namespace
}  // namespace asya::gateway
