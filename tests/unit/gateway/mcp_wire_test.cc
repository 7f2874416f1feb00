// The MCP wire helpers: header value decoding, result mapping, task shapes, tool entries.
#include "gateway/mcp_wire.h"

#include <gtest/gtest.h>

namespace asya::gateway::mcp {
namespace {

store::Envelope Finished(store::Status status, std::string result, std::string error = "") {
  store::Envelope e;
  e.id = "e1";
  e.status = status;
  e.result_json = std::move(result);
  e.error = std::move(error);
  return e;
}

TEST(McpWire, HeaderValuesDecodeBase64SentinelsStrictly) {
  EXPECT_EQ(DecodeHeaderValue("us-west1"), "us-west1");
  EXPECT_EQ(DecodeHeaderValue("=?base64?SGVsbG8sIOS4lueVjA==?="),
            "Hello, \xe4\xb8\x96\xe7\x95\x8c");
  EXPECT_EQ(DecodeHeaderValue("=?base64?PT9iYXNlNjQ/bGl0ZXJhbD89?="), "=?base64?literal?=");
  EXPECT_EQ(DecodeHeaderValue("=?base64??="), "");
  EXPECT_FALSE(DecodeHeaderValue("=?base64?SGVsbG8?="));    // missing padding
  EXPECT_FALSE(DecodeHeaderValue("=?base64?SGVsbG8*=?="));  // invalid character
  EXPECT_FALSE(DecodeHeaderValue("=?base64?SG=sbG8=?="));   // padding inside
  EXPECT_FALSE(DecodeHeaderValue("=?base64?SGVsbG9=?="));   // non-canonical last char
  EXPECT_EQ(DecodeHeaderValue("SGVsbG8="), "SGVsbG8=");     // no sentinel: literal
}

// Found by fuzz/gateway_http_fuzz: a header value with invalid UTF-8 echoed in an error made
// nlohmann's dump() throw and the gateway terminate.
TEST(McpWire, DumpNeverThrowsOnInvalidUtf8) {
  Json error = ErrorResponse("7", kHeaderMismatch, "Mcp-Method header 'tools/call\xFB' differs");
  EXPECT_EQ(Dump(error),
            "{\"jsonrpc\":\"2.0\",\"id\":\"7\",\"error\":{\"code\":-32020,\"message\":"
            "\"Mcp-Method header 'tools/call\xEF\xBF\xBD' differs\"}}");
}

TEST(McpWire, HeaderFormOfPrimitives) {
  EXPECT_EQ(HeaderForm(Json("x")), "x");
  EXPECT_EQ(HeaderForm(Json(42)), "42");
  EXPECT_EQ(HeaderForm(Json(-7)), "-7");
  EXPECT_EQ(HeaderForm(Json(true)), "true");
  EXPECT_EQ(HeaderForm(Json(42.0)), "42");
  EXPECT_FALSE(HeaderForm(Json(1.5)));
  EXPECT_FALSE(HeaderForm(Json::object()));
}

TEST(McpWire, ParamHeadersFollowPropertiesChainsOnly) {
  const Json schema = Json::parse(R"({"type":"object","properties":{
      "region":{"type":"string","x-mcp-header":"Region"},
      "opts":{"type":"object","properties":{"tenant":{"type":"string","x-mcp-header":"Tenant"}}},
      "list":{"type":"array","items":{"type":"string","x-mcp-header":"Nope"}}}})");
  const auto headers = ParamHeaders(schema);
  ASSERT_EQ(headers.size(), 2u);
  EXPECT_EQ(headers[0].header, "Region");
  EXPECT_EQ(headers[0].path, std::vector<std::string>{"region"});
  EXPECT_EQ(headers[1].header, "Tenant");
  EXPECT_EQ(headers[1].path, (std::vector<std::string>{"opts", "tenant"}));
}

TEST(McpWire, ResultsBecomeStructuredContentPlusText) {
  const Json object = CallToolResultOf(Finished(store::Status::kSucceeded, R"({"a":[1,2]})"));
  EXPECT_EQ(object["structuredContent"]["a"][1], 2);
  EXPECT_EQ(object["content"][0]["type"], "text");
  EXPECT_EQ(object["content"][0]["text"], R"({"a":[1,2]})");
  EXPECT_FALSE(object.contains("isError"));

  const Json text = CallToolResultOf(Finished(store::Status::kSucceeded, R"("plain")"));
  EXPECT_EQ(text["content"][0]["text"], "plain");
  EXPECT_FALSE(text.contains("structuredContent"));

  const Json number = CallToolResultOf(Finished(store::Status::kSucceeded, "3"));
  EXPECT_EQ(number["content"][0]["text"], "3");

  const Json empty = CallToolResultOf(Finished(store::Status::kSucceeded, ""));
  EXPECT_EQ(empty["content"][0]["text"], "null");
}

TEST(McpWire, ContentBlockListsPassAsIs) {
  const std::string blocks =
      R"([{"type":"text","text":"Multiple content types test:"},)"
      R"({"type":"image","data":"iVBOR","mimeType":"image/png"},)"
      R"({"type":"audio","data":"UklGR","mimeType":"audio/wav"},)"
      R"({"type":"resource","resource":{"uri":"test://r","mimeType":"application/json","text":"{}"}}])";
  const Json r = CallToolResultOf(Finished(store::Status::kSucceeded, blocks));
  EXPECT_EQ(r["content"], Json::parse(blocks));
  EXPECT_FALSE(r.contains("structuredContent"));

  // Not blocks: an image without mimeType is data, not content.
  const Json data =
      CallToolResultOf(Finished(store::Status::kSucceeded, R"([{"type":"image","data":"x"}])"));
  EXPECT_EQ(data["content"][0]["type"], "text");

  const Json shaped = CallToolResultOf(Finished(
      store::Status::kSucceeded,
      R"({"content":[{"type":"text","text":"bad"}],"isError":true,"structuredContent":{"k":1}})"));
  EXPECT_EQ(shaped["isError"], true);
  EXPECT_EQ(shaped["structuredContent"]["k"], 1);
  EXPECT_EQ(shaped["content"][0]["text"], "bad");
}

TEST(McpWire, OutcomesSeparateToolErrorsFromPipelinesThatCouldNotRun) {
  EXPECT_EQ(Classify(Finished(store::Status::kFailed, "", "ValueError: x")), Outcome::kToolError);
  EXPECT_EQ(Classify(Finished(store::Status::kFailed, "", "envelope timed out")), Outcome::kNotRun);
  EXPECT_EQ(Classify(Finished(store::Status::kFailed, "", "failed to send envelope: refused")),
            Outcome::kNotRun);
  EXPECT_EQ(Classify(Finished(store::Status::kCancelled, "")), Outcome::kCancelled);
  EXPECT_EQ(Classify(Finished(store::Status::kRunning, "")), Outcome::kRunning);
  EXPECT_EQ(Classify(Finished(store::Status::kPending, "")), Outcome::kRunning);

  const Json tool_error = CallToolResultOf(Finished(store::Status::kFailed, "", "ValueError: x"));
  EXPECT_EQ(tool_error["isError"], true);
  EXPECT_EQ(tool_error["content"][0]["text"], "ValueError: x");
}

TEST(McpWire, TasksCarryStatusTimesAndTheInlinedOutcome) {
  store::Envelope e = Finished(store::Status::kRunning, "");
  e.created_at = store::TimePoint(std::chrono::milliseconds(1'700'000'000'123));
  e.updated_at = e.created_at + std::chrono::seconds(1);
  e.message = "processing";
  Json working = TaskOf(e, {1000, 200}, true);
  EXPECT_EQ(working["taskId"], "e1");
  EXPECT_EQ(working["status"], "working");
  EXPECT_EQ(working["statusMessage"], "processing");
  EXPECT_EQ(working["createdAt"], "2023-11-14T22:13:20.123Z");
  EXPECT_EQ(working["lastUpdatedAt"], "2023-11-14T22:13:21.123Z");
  EXPECT_EQ(working["ttlMs"], 1000);
  EXPECT_EQ(working["pollIntervalMs"], 200);
  EXPECT_FALSE(working.contains("result"));

  Json unlimited = TaskOf(e, {0, 0}, false);
  EXPECT_TRUE(unlimited["ttlMs"].is_null());
  EXPECT_FALSE(unlimited.contains("pollIntervalMs"));

  e.status = store::Status::kCancelled;
  e.error = "cancelled by the client";
  const Json cancelled = TaskOf(e, {1000, 200}, true);
  EXPECT_EQ(cancelled["status"], "cancelled");
  EXPECT_FALSE(cancelled.contains("result"));
  EXPECT_FALSE(cancelled.contains("error"));
}

TEST(McpWire, ToolEntriesPreserveJsonSchema202012Keywords) {
  Tool tool;
  tool.name = "json_schema_2020_12_tool";
  tool.input_schema_json =
      R"({"$schema":"https://json-schema.org/draft/2020-12/schema",)"
      R"("type":"object","$defs":{"address":{"$anchor":"addr","type":"object"}},)"
      R"("properties":{"a":{"$ref":"#/$defs/address"}},)"
      R"("allOf":[{"required":["a"]}],"if":{"required":["a"]},"then":{},)"
      R"("additionalProperties":false})";
  const Json entry = ToolEntry(tool, false);
  EXPECT_EQ(entry["inputSchema"].dump(), Json::parse(tool.input_schema_json).dump());
  EXPECT_FALSE(entry["description"].get<std::string>().empty());
  EXPECT_FALSE(entry.contains("execution"));
  EXPECT_EQ(ToolEntry(tool, true)["execution"]["taskSupport"], "optional");

  Tool bare;
  bare.name = "bare";
  EXPECT_EQ(ToolEntry(bare, false)["inputSchema"], Json({{"type", "object"}}));
}

TEST(McpWire, VersionNegotiation) {
  EXPECT_EQ(NegotiateLegacyVersion("2024-11-05"), "2024-11-05");
  EXPECT_EQ(NegotiateLegacyVersion("2026-07-28"), "2025-11-25");
  EXPECT_EQ(NegotiateLegacyVersion(""), "2025-11-25");
  EXPECT_TRUE(AllowsBatch("2025-03-26"));
  EXPECT_FALSE(AllowsBatch("2025-06-18"));
  EXPECT_EQ(SupportedVersions().front(), "2026-07-28");
  EXPECT_FALSE(IsLegacyVersion("2026-07-28"));
}

}  // namespace
}  // namespace asya::gateway::mcp
