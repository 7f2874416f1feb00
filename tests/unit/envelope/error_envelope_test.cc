#include <string>

#include <gtest/gtest.h>

#include "asya/envelope/envelope.h"

namespace asya::envelope {
namespace {

TEST(ErrorEnvelope, ParsedOriginalWithRuntimeDetails) {
  std::string body =
      R"({"id":"e1","parent_id":"p","route":{"actors":["a","b"],"current":1,"metadata":{"m":1}},)"
      R"("headers":{"traceparent":"00-t-s-01","x-asya-attempt":2},"payload":{"n":12345678901234567890},)"
      R"("deadline":"2030-01-01T00:00:00Z"})";
  auto original = Parse(body);
  ASSERT_TRUE(original.has_value());
  RuntimeErrorInfo details;
  details.code = "processing_error";
  details.message = "bad \"input\"";
  details.type = "ValueError";
  details.traceback = "Traceback\n  line 1";
  ErrorEnvelopeInput in;
  in.original_body = body;
  in.original = &*original;
  in.error = "processing_error";
  in.details = &details;
  EXPECT_EQ(MakeErrorEnvelope(in),
            R"({"id":"e1","parent_id":"p","route":{"actors":["a","b"],"current":1},)"
            R"("headers":{"traceparent":"00-t-s-01","x-asya-attempt":2},)"
            R"("payload":{"error":"processing_error","details":{"message":"bad \"input\"",)"
            R"("type":"ValueError","traceback":"Traceback\n  line 1"},)"
            R"("original_payload":{"n":12345678901234567890}},"deadline":"2030-01-01T00:00:00Z"})");
}

TEST(ErrorEnvelope, DetailsOmitEmptyMembersAndKeepExtras) {
  auto items = ParseRuntimeResponse(
      R"([{"error":"processing_error","details":{"message":"m","type":"","traceback":"",)"
      R"("attempts":[1,2]}}])");
  ASSERT_TRUE(items.has_value());
  auto original = Parse(R"({"id":"x","route":{"actors":["a"],"current":0},"payload":null})");
  ErrorEnvelopeInput in;
  in.original = &*original;
  in.error = "processing_error";
  in.details = &*(*items)[0].error;
  EXPECT_EQ(
      MakeErrorEnvelope(in),
      R"({"id":"x","route":{"actors":["a"],"current":0},"payload":{"error":"processing_error",)"
      R"("details":{"message":"m","attempts":[1,2]},"original_payload":null}})");
  RuntimeErrorInfo empty;
  in.details = &empty;
  EXPECT_EQ(
      MakeErrorEnvelope(in),
      R"({"id":"x","route":{"actors":["a"],"current":0},"payload":{"error":"processing_error",)"
      R"("details":{},"original_payload":null}})");
}

TEST(ErrorEnvelope, CredentialsInErrorTextsAreMasked) {  // asya/base/redact.h
  auto original = Parse(R"({"id":"x","route":{"actors":["a"],"current":0},"payload":1})");
  RuntimeErrorInfo details;
  details.message = "GET https://bob:pw@api/x?token=t1 failed";
  details.type = "HTTPError";
  details.traceback = "Traceback ...\nHTTPError: Bearer abc.def rejected\n";
  ErrorEnvelopeInput in;
  in.original = &*original;
  in.error = "cannot reach amqp://guest:guest@rmq:5672/";
  in.details = &details;
  EXPECT_EQ(MakeErrorEnvelope(in),
            R"({"id":"x","route":{"actors":["a"],"current":0},"payload":{"error":)"
            R"("cannot reach amqp://***@rmq:5672/","details":{"message":)"
            R"("GET https://***@api/x?token=*** failed","type":"HTTPError","traceback":)"
            R"("Traceback ...\nHTTPError: Bearer *** rejected\n"},"original_payload":1}})");
}

TEST(ErrorEnvelope, UndecodableOriginalKeepsTheBody) {
  ErrorEnvelopeInput in;
  in.original_body = R"({"id":"x","payload":[1,,2]})";
  in.error = "Failed to parse message: invalid JSON at byte 23: expected a value";
  std::string out = MakeErrorEnvelope(in);
  EXPECT_EQ(out, R"({"id":"","route":{"actors":["error-end"],"current":0},"payload":{"error":)"
                 R"("Failed to parse message: invalid JSON at byte 23: expected a value",)"
                 R"("original_body":"{\"id\":\"x\",\"payload\":[1,,2]}"}})");
  EXPECT_TRUE(Parse(out).has_value());
}

TEST(ErrorEnvelope, UndecodableNonUtf8BodyIsBase64) {
  ErrorEnvelopeInput in;
  in.original_body = std::string_view("\xff\x00\x01\x02\x03", 5);
  in.error = "Failed to parse message: invalid UTF-8 in JSON text";
  in.error_end_actor = "my-errors";
  EXPECT_EQ(MakeErrorEnvelope(in),
            R"({"id":"","route":{"actors":["my-errors"],"current":0},"payload":{"error":)"
            R"("Failed to parse message: invalid UTF-8 in JSON text",)"
            R"("original_body_base64":"/wABAgM="}})");
}

TEST(ErrorEnvelope, LargeUndecodableBodyRecordsOnlyItsSize) {
  std::string body(100, 'x');
  ErrorEnvelopeInput in;
  in.original_body = body;
  in.error = "e";
  in.max_original_body_bytes = 99;
  EXPECT_EQ(MakeErrorEnvelope(in),
            R"({"id":"","route":{"actors":["error-end"],"current":0},"payload":{"error":"e",)"
            R"("original_body_bytes":100}})");
}

TEST(ErrorEnvelope, MissingRouteAndPayload) {
  auto original = Parse(R"({"id":"x","headers":{}})");
  ASSERT_TRUE(original.has_value());
  ErrorEnvelopeInput in;
  in.original = &*original;
  in.error = "Route mismatch: message routed to wrong actor (expected: a, actual: )";
  EXPECT_EQ(MakeErrorEnvelope(in),
            R"({"id":"x","route":{"actors":["error-end"],"current":0},"headers":{},)"
            R"x("payload":{"error":"Route mismatch: message routed to wrong actor (expected: a, )x"
            R"x(actual: )"}})x");
  auto empty_actors = Parse(R"({"id":"y","route":{"actors":[],"current":3},"payload":1})");
  in.original = &*empty_actors;
  in.error = "e";
  EXPECT_EQ(MakeErrorEnvelope(in),
            R"({"id":"y","route":{"actors":["error-end"],"current":0},"payload":{"error":"e",)"
            R"("original_payload":1}})");
}

TEST(ErrorEnvelope, ExtraPayloadMembers) {
  auto original = Parse(R"({"id":"x","route":{"actors":["a"]},"payload":"p"})");
  ErrorEnvelopeInput in;
  in.original = &*original;
  in.error = "processing_error";
  in.extra_payload = {{"attempts", R"([{"attempt":1,"error":"e"}])"}, {"n", ""}};
  std::string out = MakeErrorEnvelope(in);
  EXPECT_EQ(
      out,
      R"({"id":"x","route":{"actors":["a"],"current":0},"payload":{"error":"processing_error",)"
      R"("original_payload":"p","attempts":[{"attempt":1,"error":"e"}],"n":null}})");
  EXPECT_TRUE(Parse(out).has_value());
}

}  // namespace
}  // namespace asya::envelope
