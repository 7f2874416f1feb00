#include "bin/asya/gateway_client.h"

#include <gtest/gtest.h>

#include "support/status_matchers.h"

namespace asya::cli::gateway {
namespace {

using nlohmann::json;

const json kSchema = json::parse(R"({
  "type": "object",
  "properties": {
    "text": {"type": "string", "description": "what to say"},
    "count": {"type": "integer", "default": 1},
    "ratio": {"type": "number"},
    "loud": {"type": "boolean"},
    "tags": {"type": "array", "items": {"type": "string"}},
    "sizes": {"type": "array", "items": {"type": "integer"}},
    "opts": {"type": "object"},
    "mode": {"type": "string", "enum": ["fast", "slow"]},
    "maybe": {"type": ["integer", "null"]},
    "max_tokens": {"type": "integer"},
    "free": {}
  },
  "required": ["text"]
})");

Result<json> Parse(std::vector<std::string> args, const json& schema = kSchema) {
  return ParseToolArguments(args, schema, [] { return std::string(R"({"text": "from stdin"})"); });
}

std::string ErrorOf(const Result<json>& r) {
  EXPECT_FALSE(r.has_value()) << (r ? r->dump() : "");
  if (r) {
    return "";
  }
  EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument);
  return r.error().message;
}

TEST(CallArguments, ParamsAreTypedByTheSchema) {
  ASSIGN_OR_FAIL(json a,
                 Parse({"--text", "hi", "--count", "3", "--ratio", "0.5", "--loud", "--opts",
                        R"({"k": [1]})", "--mode=slow", "--maybe", "null", "--free", "7"}));
  EXPECT_EQ(a, json::parse(R"({"text": "hi", "count": 3, "ratio": 0.5, "loud": true,
                               "opts": {"k": [1]}, "mode": "slow", "maybe": null, "free": 7})"));
}

TEST(CallArguments, StringsStayStrings) {
  ASSIGN_OR_FAIL(json a, Parse({"--text", "42"}));
  EXPECT_EQ(a["text"], "42");  // not the number: the schema says string
  ASSIGN_OR_FAIL(json b, Parse({"--text=--x=y"}));
  EXPECT_EQ(b["text"], "--x=y");
  ASSIGN_OR_FAIL(json c, Parse({"--text", "-5"}));  // a single dash is a value
  EXPECT_EQ(c["text"], "-5");
}

TEST(CallArguments, BooleansAndNumbers) {
  ASSIGN_OR_FAIL(json a, Parse({"--text", "x", "--loud", "no", "--ratio", "2"}));
  EXPECT_EQ(a["loud"], false);
  EXPECT_EQ(a["ratio"], 2);
  ASSIGN_OR_FAIL(json b, Parse({"--text", "x", "--loud=TRUE", "--maybe", "5"}));
  EXPECT_EQ(b["loud"], true);
  EXPECT_EQ(b["maybe"], 5);
}

TEST(CallArguments, ArraysRepeatedOrAsJson) {
  ASSIGN_OR_FAIL(
      json a, Parse({"--text", "x", "--tags", "a", "--tags", "b", "--sizes", "1", "--sizes", "2"}));
  EXPECT_EQ(a["tags"], json({"a", "b"}));
  EXPECT_EQ(a["sizes"], json({1, 2}));
  ASSIGN_OR_FAIL(json b, Parse({"--text", "x", "--tags", R"(["p", "q"])"}));
  EXPECT_EQ(b["tags"], json({"p", "q"}));
  EXPECT_NE(ErrorOf(Parse({"--text", "x", "--sizes", "one"})).find("--sizes: expected integer"),
            std::string::npos);
}

TEST(CallArguments, DashesMatchUnderscores) {
  ASSIGN_OR_FAIL(json a, Parse({"--text", "x", "--max-tokens", "9"}));
  EXPECT_EQ(a["max_tokens"], 9);
}

TEST(CallArguments, WrongTypesAreRefusedNamingTheParameter) {
  EXPECT_EQ(ErrorOf(Parse({"--text", "x", "--count", "three"})),
            "--count: expected integer, got 'three'");
  EXPECT_EQ(ErrorOf(Parse({"--text", "x", "--count", "1.5"})),
            "--count: expected integer, got '1.5'");
  EXPECT_EQ(ErrorOf(Parse({"--text", "x", "--ratio", "abc"})),
            "--ratio: expected number, got 'abc'");
  EXPECT_EQ(ErrorOf(Parse({"--text", "x", "--loud", "maybe"})),
            "--loud: expected boolean, got 'maybe'");
  EXPECT_EQ(ErrorOf(Parse({"--text", "x", "--opts", "[1]"})), "--opts: expected object, got '[1]'");
  EXPECT_EQ(ErrorOf(Parse({"--text", "x", "--maybe", "x"})),
            "--maybe: expected integer | null, got 'x'");
  EXPECT_EQ(ErrorOf(Parse({"--text", "x", "--mode", "medium"})),
            "--mode: 'medium' is not one of: fast, slow");
}

TEST(CallArguments, UnknownMissingRepeatedAndMalformedParameters) {
  EXPECT_NE(ErrorOf(Parse({"--text", "x", "--colour", "red"}))
                .find("unknown parameter --colour (the tool takes --count, --free,"),
            std::string::npos);
  EXPECT_EQ(ErrorOf(Parse({"--count", "1"})), "missing required parameter(s): --text");
  EXPECT_EQ(ErrorOf(Parse({})), "missing required parameter(s): --text");
  EXPECT_EQ(ErrorOf(Parse({"--text", "a", "--text", "b"})), "--text is given more than once");
  EXPECT_EQ(ErrorOf(Parse({"--text"})), "--text needs a value (string)");
  EXPECT_NE(ErrorOf(Parse({"--text", "a", "stray"})).find("unexpected argument 'stray'"),
            std::string::npos);
  EXPECT_NE(ErrorOf(Parse({"--text", "a", "--"})).find("unexpected argument '--'"),
            std::string::npos);
}

TEST(CallArguments, JsonObject) {
  ASSIGN_OR_FAIL(json a, Parse({R"({"text": "hi", "count": 2})"}));
  EXPECT_EQ(a, json::parse(R"({"text": "hi", "count": 2})"));
  ASSIGN_OR_FAIL(json b, Parse({"-"}));
  EXPECT_EQ(b["text"], "from stdin");
}

TEST(CallArguments, JsonErrors) {
  std::string e = ErrorOf(Parse({R"({"text": )"}));
  EXPECT_EQ(e.rfind("the arguments are not valid JSON: parse error", 0), 0u) << e;
  EXPECT_EQ(ErrorOf(Parse({"[1, 2]"})), "the arguments must be a JSON object, got array");
  EXPECT_EQ(ErrorOf(Parse({"\"text\""})), "the arguments must be a JSON object, got string");
  EXPECT_EQ(ErrorOf(Parse({R"({"count": 1})"})), "missing required parameter(s): --text");
  EXPECT_NE(ErrorOf(Parse({R"({"text": "a"})", "--count", "1"})).find("unexpected '--count'"),
            std::string::npos);
  json strict = kSchema;
  strict["additionalProperties"] = false;
  EXPECT_NE(ErrorOf(Parse({R"({"text": "a", "zzz": 1})"}, strict)).find("unknown parameter 'zzz'"),
            std::string::npos);
  ASSERT_OK(Parse({R"({"text": "a", "zzz": 1})"}));  // additional properties allowed by default
}

TEST(CallArguments, WithoutASchemaTheOriginalsGuess) {
  ASSIGN_OR_FAIL(json a,
                 Parse({"--a", "true", "--b", "1.5", "--c", "7", "--d", "x", "--e", "--f", "1.2.3"},
                       json::object()));
  EXPECT_EQ(a, json::parse(R"({"a": true, "b": 1.5, "c": 7, "d": "x", "e": true, "f": "1.2.3"})"));
}

const json kTools = json::parse(R"([
  {"name": "zeta", "description": "last", "inputSchema": {"type": "object"}},
  {"name": "echo", "description": "Says it back",
   "inputSchema": {"type": "object",
     "properties": {"text": {"type": "string", "description": "what to say"},
                    "mode": {"type": "string", "enum": ["a", "b"], "default": "a"}},
     "required": ["text"]}}
])");

// Tools sorted by name, parameters by name too (as the JSON object holds them).
TEST(Output, ListIsYamlSortedByName) {
  EXPECT_EQ(FormatToolList(kTools, false),
            "- name: echo\n"
            "  description: Says it back\n"
            "  parameters:\n"
            "    mode:\n"
            "      type: string\n"
            "      required: false\n"
            "    text:\n"
            "      type: string\n"
            "      required: true\n"
            "- name: zeta\n"
            "  description: last\n"
            "  parameters: {}\n");
  json j = json::parse(FormatToolList(kTools, true));
  EXPECT_EQ(j[0]["name"], "echo");
  EXPECT_EQ(j[0]["parameters"]["text"]["required"], true);
  EXPECT_EQ(FormatToolList(json::array(), false), "[]\n");
}

TEST(Output, ShowAddsDescriptionDefaultAndOptions) {
  auto echo = FindTool(kTools, "echo");
  ASSERT_TRUE(echo.has_value());
  EXPECT_FALSE(FindTool(kTools, "nope").has_value());
  EXPECT_EQ(FormatTool(*echo, false),
            "name: echo\n"
            "description: Says it back\n"
            "parameters:\n"
            "  mode:\n"
            "    type: string\n"
            "    required: false\n"
            "    default: a\n"
            "    options:\n"
            "      - a\n"
            "      - b\n"
            "  text:\n"
            "    type: string\n"
            "    required: true\n"
            "    description: what to say\n");
}

TEST(Output, YamlQuotesWhatWouldOtherwiseChangeMeaning) {
  json tools = json::parse(R"([{"name": "t", "description": "yes: no # not a comment"}])");
  const std::string y = FormatToolList(tools, false);
  EXPECT_NE(y.find("description: \"yes: no # not a comment\""), std::string::npos) << y;
}

TEST(Output, CallResults) {
  EXPECT_EQ(FormatCallResult(json::parse(R"({"content": [{"type": "text", "text": "{\"a\":1}"}],
                                             "structuredContent": {"a": 1}})")),
            "{\n  \"a\": 1\n}\n");
  EXPECT_EQ(
      FormatCallResult(json::parse(R"({"content": [{"type": "text", "text": "{\"b\":2}"}]})")),
      "{\n  \"b\": 2\n}\n");
  EXPECT_EQ(FormatCallResult(json::parse(R"({"content": [{"type": "text", "text": "plain"}]})")),
            "plain\n");
  EXPECT_EQ(ErrorText(json::parse(R"({"isError": true,
                                      "content": [{"type": "text", "text": "boom"}]})")),
            "boom");
}

TEST(Output, AsyncEnvelopeIdOfTheOriginalsAnswer) {
  json ack = {{"content",
               {{{"type", "text"},
                 {"text", json({{"envelope_id", "e1"},
                                {"message", "Envelope created successfully"},
                                {"status_url", "/envelopes/e1"}})
                              .dump()}}}}};
  EXPECT_EQ(AsyncEnvelopeId(ack), "e1");
  EXPECT_EQ(
      AsyncEnvelopeId(json{
          {"structuredContent", {{"envelope_id", "e2"}, {"stream_url", "/envelopes/e2/stream"}}}}),
      "e2");
  // asya-gateway's answer when a synchronous call outlives its bounded wait.
  EXPECT_EQ(AsyncEnvelopeId(json::parse(R"({"isError": true,
      "content": [{"type": "text", "text": "the pipeline is still running"}],
      "structuredContent": {"envelope_id": "e4", "status_url": "/envelopes/e4"}})")),
            "e4");
  // A final answer that merely mentions an envelope id is not an acknowledgement.
  EXPECT_EQ(AsyncEnvelopeId(json{{"structuredContent", {{"envelope_id", "e3"}}}}), "");
  EXPECT_EQ(AsyncEnvelopeId(json::parse(R"({"content": [{"type": "text", "text": "hello"}]})")),
            "");
}

TEST(Progress, FromUpdatesAndNotifications) {
  auto p = ProgressOfUpdate(json::parse(R"({"id": "e", "status": "running",
      "progress_percent": 43.3, "actors": ["prep", "infer"], "current_actor_idx": 1,
      "envelope_state": "processing"})"));
  EXPECT_DOUBLE_EQ(p.percent, 43.3);
  EXPECT_EQ(p.label, "infer: processing");
  EXPECT_EQ(RenderLine(p), "43% infer: processing");
  p = ProgressOfUpdate(json::parse(R"({"status": "succeeded", "actor": "x"})"));
  EXPECT_EQ(p.percent, 100);
  EXPECT_EQ(p.label, "succeeded");
  p = ProgressOfUpdate(json::parse(R"({"status": "running", "actor": "prep"})"));
  EXPECT_LT(p.percent, 0);
  EXPECT_EQ(RenderLine(p), "?% prep: running");

  p = ProgressOfNotification(json::parse(R"({"progressToken": "t", "progress": 3, "total": 4,
                                             "message": "step 3"})"));
  EXPECT_DOUBLE_EQ(p.percent, 75);
  EXPECT_EQ(p.label, "step 3");
  EXPECT_DOUBLE_EQ(ProgressOfNotification(json{{"progress", 0.5}}).percent, 50);
  EXPECT_DOUBLE_EQ(ProgressOfNotification(json{{"progress", 40}}).percent, 40);
}

TEST(Progress, BarFitsTheTerminal) {
  Progress p{.percent = 50, .label = "prep: processing"};
  EXPECT_EQ(RenderBar(p, 80), "[#############.............]  50% prep: processing");
  EXPECT_LE(RenderBar(p, 20).size(), 19u);
  EXPECT_EQ(RenderBar(Progress{.percent = 150}, 30), "[##########] 100%");
  EXPECT_EQ(RenderBar(Progress{}, 30), "[..........]   ?%");
}

TEST(Sse, EventsAndComments) {
  SseParser sse;
  EXPECT_FALSE(sse.Feed(": keepalive").has_value());
  EXPECT_FALSE(sse.Feed("").has_value());
  EXPECT_FALSE(sse.Feed("event: update").has_value());
  EXPECT_FALSE(sse.Feed("id: 7").has_value());
  EXPECT_FALSE(sse.Feed("data: {\"a\":").has_value());
  EXPECT_FALSE(sse.Feed("data:1}\r").has_value());
  auto e = sse.Feed("");
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->event, "update");
  EXPECT_EQ(e->id, "7");
  EXPECT_EQ(e->data, "{\"a\":\n1}");
  EXPECT_FALSE(sse.Feed("").has_value());
  EXPECT_FALSE(sse.Feed("data: x").has_value());
  EXPECT_EQ(sse.Feed("")->event, "message");
}

TEST(Url, Normalised) {
  EXPECT_EQ(*NormalizeBaseUrl("http://127.0.0.1:8089/"), "http://127.0.0.1:8089");
  EXPECT_EQ(*NormalizeBaseUrl("http://h:1/mcp"), "http://h:1");
  EXPECT_EQ(*NormalizeBaseUrl("https://gw.example.com/base"), "https://gw.example.com/base");
  for (const char* bad : {"", "127.0.0.1:8089", "ftp://h", "http://", "http://h/?q=1"}) {
    auto r = NormalizeBaseUrl(bad);
    ASSERT_FALSE(r.has_value()) << bad;
    EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument);
  }
}

}  // namespace
}  // namespace asya::cli::gateway
