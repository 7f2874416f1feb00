#include <string>

#include <gtest/gtest.h>

#include "asya/envelope/envelope.h"

namespace asya::envelope {
namespace {

std::vector<RuntimeItem> MustParse(std::string_view json) {
  auto r = ParseRuntimeResponse(json);
  EXPECT_TRUE(r.has_value()) << json << " -> " << (r ? "" : r.error().message);
  return r ? std::move(*r) : std::vector<RuntimeItem>{};
}

std::string ParseError(std::string_view json) {
  auto r = ParseRuntimeResponse(json);
  EXPECT_FALSE(r.has_value()) << "accepted: " << json;
  return r ? "" : r.error().message;
}

TEST(RuntimeResponse, ArrayOfResults) {
  auto items =
      MustParse(R"([{"payload":{"a":12345678901234567890},"route":{"actors":["x","y"],"current":1,)"
                R"("metadata":{"m":true}},"headers":{"traceparent":"00-1-2-01"}},)"
                R"({"payload":null,"route":{"actors":["x"],"current":1},"id":"c","parent_id":"p"},)"
                R"({"route":{"actors":[]}}])");
  ASSERT_EQ(items.size(), 3u);
  EXPECT_FALSE(items[0].error);
  EXPECT_TRUE(items[0].has_payload);
  EXPECT_EQ(items[0].payload_json, R"({"a":12345678901234567890})");
  EXPECT_TRUE(items[0].has_route);
  EXPECT_EQ(items[0].route.CurrentActor(), "y");
  EXPECT_EQ(items[0].route.metadata_json, R"({"m":true})");
  EXPECT_TRUE(items[0].has_headers);
  ASSERT_EQ(items[0].headers.size(), 1u);
  EXPECT_EQ(items[0].headers[0].second, R"("00-1-2-01")");
  EXPECT_FALSE(items[0].id);
  EXPECT_TRUE(items[1].has_payload);
  EXPECT_EQ(items[1].payload_json, "null");
  EXPECT_EQ(items[1].id, "c");
  EXPECT_EQ(items[1].parent_id, "p");
  EXPECT_FALSE(items[1].has_headers);
  EXPECT_FALSE(items[2].has_payload);
  EXPECT_EQ(items[2].payload_json, "null");
}

TEST(RuntimeResponse, NullAndEmptyArrayMeanNoResults) {
  EXPECT_TRUE(MustParse("null").empty());
  EXPECT_TRUE(MustParse(" [ ] ").empty());
}

TEST(RuntimeResponse, ErrorItem) {
  auto items =
      MustParse(R"([{"error":"processing_error","details":{"message":"boom","type":"ValueError",)"
                R"("traceback":"Traceback...\n","attempt":2}}])");
  ASSERT_EQ(items.size(), 1u);
  ASSERT_TRUE(items[0].error);
  EXPECT_EQ(items[0].error->code, "processing_error");
  EXPECT_EQ(items[0].error->message, "boom");
  EXPECT_EQ(items[0].error->type, "ValueError");
  EXPECT_EQ(items[0].error->traceback, "Traceback...\n");
  EXPECT_EQ(items[0].error->details_json,
            R"({"message":"boom","type":"ValueError","traceback":"Traceback...\n","attempt":2})");
}

TEST(RuntimeResponse, ErrorWithoutDetails) {
  auto items = MustParse(R"([{"error":"msg_parsing_error"}])");
  ASSERT_TRUE(items[0].error);
  EXPECT_EQ(items[0].error->code, "msg_parsing_error");
  EXPECT_EQ(items[0].error->message, "");
  EXPECT_EQ(items[0].error->details_json, "");
  auto with_null = MustParse(R"([{"error":"x","details":null}])");
  ASSERT_TRUE(with_null[0].error);
  EXPECT_EQ(with_null[0].error->details_json, "");
}

TEST(RuntimeResponse, ErrorOnlyForNonEmptyString) {
  auto items = MustParse(
      R"([{"error":"","payload":1,"route":{"actors":["a"],"current":1}},{"error":null,"payload":2}])");
  ASSERT_EQ(items.size(), 2u);
  EXPECT_FALSE(items[0].error);
  EXPECT_EQ(items[0].payload_json, "1");
  EXPECT_FALSE(items[1].error);
}

struct ErrorCase {
  const char* json;
  const char* message;
};

class RuntimeResponseErrors : public testing::TestWithParam<ErrorCase> {};

TEST_P(RuntimeResponseErrors, AreDescriptive) {
  EXPECT_EQ(ParseError(GetParam().json), GetParam().message);
}

INSTANTIATE_TEST_SUITE_P(
    All, RuntimeResponseErrors,
    testing::Values(
        ErrorCase{R"({"error":"processing_error"})",
                  "runtime response must be a JSON array (got object)"},
        ErrorCase{R"("x")", "runtime response must be a JSON array (got string)"},
        ErrorCase{"[1]", "element 0 must be an object (got number)"},
        ErrorCase{R"([{},null])", "element 1 must be an object (got null)"},
        ErrorCase{R"([{"route":{"actors":["a"],"current":"1"}}])",
                  "field '[0].route.current' must be an integer (got string)"},
        ErrorCase{R"([{"route":{"actors":[1]}}])",
                  "field '[0].route.actors[0]' must be a string (got number)"},
        ErrorCase{R"([{"route":[]}])", "field '[0].route' must be an object (got array)"},
        ErrorCase{R"([{"headers":[]}])", "field '[0].headers' must be an object (got array)"},
        ErrorCase{R"([{"error":5}])", "field '[0].error' must be a string (got number)"},
        ErrorCase{R"([{"error":"e","details":"d"}])",
                  "field '[0].details' must be an object (got string)"},
        ErrorCase{R"([{"error":"e","details":{"message":1}}])",
                  "field '[0].details.message' must be a string (got number)"},
        ErrorCase{R"([{"id":1}])", "field '[0].id' must be a string (got number)"},
        ErrorCase{R"([{"payload":NaN}])", "invalid JSON at byte 12: expected a value"},
        ErrorCase{R"([{"payload":1}] [])",
                  "invalid JSON at byte 16: unexpected data after the JSON value"},
        ErrorCase{"", "invalid JSON at byte 0: empty document"}));

TEST(RuntimeResponse, OversizeIsResourceExhausted) {
  ParseOptions options;
  options.max_bytes = 4;
  auto r = ParseRuntimeResponse("[{},{}]", options);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, ErrorCode::kResourceExhausted);
}

}  // namespace
// Taking the frame: a single large payload becomes the frame's own buffer (no second buffer of
// its size), and the other members are read as usual; anything else parses as the plain overload.
TEST(RuntimeResponse, TakingMovesASingleLargePayloadIntoTheFrameBuffer) {
  const std::string big(100 << 10, 'p');
  std::string frame = R"([{"route":{"actors":["x","y"],"current":1},"payload":")" + big +
                      R"(","headers":{"k":"v"},"id":"i1"}])";
  frame.reserve(frame.size() + 4096);
  const char* buffer = frame.data();
  const size_t capacity = frame.capacity();
  auto r = ParseRuntimeResponseTaking(std::move(frame));
  ASSERT_TRUE(r.has_value()) << r.error().message;
  ASSERT_EQ(r->size(), 1u);
  const RuntimeItem& item = (*r)[0];
  EXPECT_EQ(item.payload_json, "\"" + big + "\"");
  EXPECT_EQ(item.payload_json.data(), buffer) << "the payload was copied, not taken";
  EXPECT_EQ(item.payload_json.capacity(), capacity);
  EXPECT_TRUE(item.has_route);
  EXPECT_EQ(item.route.actors, (std::vector<std::string>{"x", "y"}));
  EXPECT_EQ(item.route.current, 1);
  ASSERT_EQ(item.headers.size(), 1u);
  EXPECT_EQ(item.id, "i1");

  // Two items, a small frame, an item without payload: the same as the plain overload.
  for (std::string text : {"[{\"payload\":\"" + big + "\"},{\"payload\":2}]",
                           std::string(R"([{"payload":{"a":1},"id":"s"}])"),
                           R"([{"route":{"actors":["x"],"current":1},"id":")" + big + "\"}]"}) {
    auto plain = ParseRuntimeResponse(text);
    auto taken = ParseRuntimeResponseTaking(std::string(text));
    ASSERT_TRUE(plain.has_value() && taken.has_value()) << text.substr(0, 80);
    ASSERT_EQ(plain->size(), taken->size());
    for (size_t i = 0; i < plain->size(); ++i) {
      EXPECT_EQ((*plain)[i].payload_json, (*taken)[i].payload_json);
      EXPECT_EQ((*plain)[i].has_payload, (*taken)[i].has_payload);
      EXPECT_EQ((*plain)[i].id, (*taken)[i].id);
    }
  }
  // Errors are the same too.
  std::string bad = "[{\"payload\":\"" + big + "\",\"route\":7}]";
  auto bad_plain = ParseRuntimeResponse(bad);
  auto bad_taken = ParseRuntimeResponseTaking(std::string(bad));
  ASSERT_FALSE(bad_plain.has_value());
  ASSERT_FALSE(bad_taken.has_value());
  EXPECT_EQ(bad_plain.error().message, bad_taken.error().message);
}

}  // namespace asya::envelope
