#include "asya/envelope/envelope.h"

#include <string>

#include <gtest/gtest.h>

namespace asya::envelope {
namespace {

Envelope MustParse(std::string_view json) {
  auto r = Parse(json);
  EXPECT_TRUE(r.has_value()) << json << " -> " << (r ? "" : r.error().message);
  return r ? *r : Envelope{};
}

std::string ParseError(std::string_view json) {
  auto r = Parse(json);
  EXPECT_FALSE(r.has_value()) << "accepted: " << json;
  return r ? "" : r.error().message;
}

TEST(EnvelopeParse, FullEnvelope) {
  auto e = MustParse(
      R"({"id":"e1","parent_id":"p0","route":{"actors":["a","b"],"current":1,)"
      R"("metadata":{"k":[1,2]}},"headers":{"traceparent":"00-ab-cd-01","x-asya-attempt":2},)"
      R"("payload":{"x": 1.50, "y":[true,null]},"deadline":"2026-01-01T00:00:00Z","extra":1})");
  EXPECT_EQ(e.id, "e1");
  EXPECT_EQ(e.parent_id, "p0");
  EXPECT_TRUE(e.has_route);
  EXPECT_EQ(e.route.actors, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(e.route.current, 1);
  EXPECT_EQ(e.route.CurrentActor(), "b");
  EXPECT_EQ(e.route.metadata_json, R"({"k":[1,2]})");
  EXPECT_TRUE(e.has_headers);
  ASSERT_EQ(e.headers.size(), 2u);
  EXPECT_EQ(e.headers[0].first, "traceparent");
  EXPECT_EQ(e.headers[0].second, R"("00-ab-cd-01")");
  EXPECT_EQ(e.headers[1].second, "2");
  EXPECT_TRUE(e.has_payload);
  EXPECT_EQ(e.payload_json, R"({"x": 1.50, "y":[true,null]})");  // byte-for-byte
  EXPECT_EQ(e.deadline, "2026-01-01T00:00:00Z");
}

TEST(EnvelopeParse, MinimalEnvelopeDefaults) {
  auto e = MustParse(R"({"id":"x"})");
  EXPECT_EQ(e.id, "x");
  EXPECT_FALSE(e.parent_id);
  EXPECT_FALSE(e.has_route);
  EXPECT_FALSE(e.has_headers);
  EXPECT_FALSE(e.has_payload);
  EXPECT_EQ(e.payload_json, "null");
  EXPECT_FALSE(e.deadline);
  EXPECT_EQ(e.route.CurrentActor(), "");
}

TEST(EnvelopeParse, NullPayloadIsPresent) {
  auto e = MustParse(R"({"id":"x","payload":null})");
  EXPECT_TRUE(e.has_payload);
  EXPECT_EQ(e.payload_json, "null");
}

TEST(EnvelopeParse, ScalarPayloadsKeepTheirText) {
  EXPECT_EQ(MustParse(R"({"payload":12345678901234567890,"id":"x"})").payload_json,
            "12345678901234567890");
  EXPECT_EQ(MustParse(R"({"id":"x","payload":-1.0e+400 })").payload_json, "-1.0e+400");
  EXPECT_EQ(MustParse(R"({"id":"x","payload" : "a\"b\u00e9" })").payload_json, R"("a\"b\u00e9")");
  EXPECT_EQ(MustParse("{\"id\":\"x\",\"payload\":\n true\n}").payload_json, "true");
}

TEST(EnvelopeParse, BigNumbersSurviveRoundTrip) {
  auto e =
      MustParse(R"({"id":"x","payload":{"n":12345678901234567890,"f":0.1000000000000000055511}})");
  std::string out = Serialize(e);
  EXPECT_NE(out.find("12345678901234567890"), std::string::npos);
  EXPECT_NE(out.find("0.1000000000000000055511"), std::string::npos);
}

TEST(EnvelopeParse, Unicode) {
  auto e = MustParse(
      "{\"id\":\"\xe4\xbd\xa0\xe5\xa5\xbd-\xf0\x9f\x98\x80\",\"route\":{\"actors\":["
      "\"\\u00e9t\\u00e9\","
      "\"\\ud83d\\ude00\"]},\"payload\":\"\xf0\x9f\x8e\x89 \\ud83c\\udf89\"}");
  EXPECT_EQ(e.id, "\xe4\xbd\xa0\xe5\xa5\xbd-\xf0\x9f\x98\x80");      // CJK + emoji as UTF-8
  EXPECT_EQ(e.route.actors[0], "\xc3\xa9t\xc3\xa9");                 // \u escapes decoded
  EXPECT_EQ(e.route.actors[1], "\xf0\x9f\x98\x80");                  // surrogate pair
  EXPECT_EQ(e.payload_json, "\"\xf0\x9f\x8e\x89 \\ud83c\\udf89\"");  // raw text kept
  auto again = Parse(Serialize(e));
  ASSERT_TRUE(again.has_value());
  EXPECT_EQ(*again, e);
}

TEST(EnvelopeParse, DeeplyNestedPayload) {
  std::string payload;
  for (int i = 0; i < 50; ++i) {
    payload += i % 2 == 0 ? "{\"k\":" : "[";
  }
  payload += "1";
  for (int i = 49; i >= 0; --i) {
    payload += i % 2 == 0 ? "}" : "]";
  }
  auto e = MustParse(R"({"id":"x","payload":)" + payload + "}");
  EXPECT_EQ(e.payload_json, payload);
  EXPECT_EQ(*Parse(Serialize(e)), e);
}

TEST(EnvelopeParse, NestingBeyondLimitIsAnError) {
  std::string payload(2000, '[');
  payload += std::string(2000, ']');
  EXPECT_NE(ParseError(R"({"id":"x","payload":)" + payload + "}").find("nesting deeper"),
            std::string::npos);
}

TEST(EnvelopeParse, DuplicateKeysLastWins) {
  auto e = MustParse(R"({"id":"a","id":"b","payload":1,"payload":2,"headers":{"h":1,"h":"two"},)"
                     R"("route":{"actors":["x"],"current":0,"current":1}})");
  EXPECT_EQ(e.id, "b");
  EXPECT_EQ(e.payload_json, "2");
  ASSERT_EQ(e.headers.size(), 1u);
  EXPECT_EQ(e.GetHeaderString("h"), "two");
  EXPECT_EQ(e.route.current, 1);
}

TEST(EnvelopeParse, KeysAreCaseSensitiveAndEscapedKeysMatch) {
  auto e = MustParse(R"({"ID":"upper","\u0069d":"escaped"})");
  EXPECT_EQ(e.id, "escaped");
}

TEST(EnvelopeParse, NullsCountAsAbsent) {
  auto e = MustParse(
      R"({"id":null,"parent_id":null,"headers":null,"deadline":null,"payload":1,"route":null})");
  EXPECT_EQ(e.id, "");
  EXPECT_FALSE(e.parent_id);
  EXPECT_FALSE(e.has_headers);
  EXPECT_FALSE(e.has_route);
  EXPECT_FALSE(e.deadline);
  auto r = MustParse(R"({"id":"x","route":{"actors":null,"current":null,"metadata":null}})");
  EXPECT_TRUE(r.has_route);
  EXPECT_TRUE(r.route.actors.empty());
  EXPECT_EQ(r.route.current, 0);
  EXPECT_EQ(r.route.metadata_json, "");
}

TEST(EnvelopeParse, EmptyMetadataIsDropped) {
  EXPECT_EQ(MustParse(R"({"id":"x","route":{"actors":[],"metadata":{ }}})").route.metadata_json,
            "");
}

struct TypeErrorCase {
  const char* json;
  const char* message;
};

class EnvelopeTypeErrors : public testing::TestWithParam<TypeErrorCase> {};

TEST_P(EnvelopeTypeErrors, NameTheField) {
  EXPECT_EQ(ParseError(GetParam().json), GetParam().message);
}

INSTANTIATE_TEST_SUITE_P(
    All, EnvelopeTypeErrors,
    testing::Values(
        TypeErrorCase{R"({"id":5})", "field 'id' must be a string (got number)"},
        TypeErrorCase{R"({"id":["a"]})", "field 'id' must be a string (got array)"},
        TypeErrorCase{R"({"id":"a","parent_id":1})",
                      "field 'parent_id' must be a string (got number)"},
        TypeErrorCase{R"({"id":"a","route":"r"})", "field 'route' must be an object (got string)"},
        TypeErrorCase{R"({"id":"a","route":[]})", "field 'route' must be an object (got array)"},
        TypeErrorCase{R"({"id":"a","route":{"actors":"a"}})",
                      "field 'route.actors' must be an array of strings (got string)"},
        TypeErrorCase{R"({"id":"a","route":{"actors":["a",1]}})",
                      "field 'route.actors[1]' must be a string (got number)"},
        TypeErrorCase{R"({"id":"a","route":{"actors":[null]}})",
                      "field 'route.actors[0]' must be a string (got null)"},
        TypeErrorCase{R"({"id":"a","route":{"actors":[],"current":"1"}})",
                      "field 'route.current' must be an integer (got string)"},
        TypeErrorCase{R"({"id":"a","route":{"actors":[],"current":1.5}})",
                      "field 'route.current' must be an integer (got a non-integer number)"},
        TypeErrorCase{R"({"id":"a","route":{"actors":[],"current":1e2}})",
                      "field 'route.current' must be an integer (got a non-integer number)"},
        TypeErrorCase{R"({"id":"a","route":{"actors":[],"current":99999999999999999999}})",
                      "field 'route.current' must be an integer (got an integer out of range)"},
        TypeErrorCase{R"({"id":"a","route":{"actors":[],"current":true}})",
                      "field 'route.current' must be an integer (got boolean)"},
        TypeErrorCase{R"({"id":"a","route":{"actors":[],"metadata":[]}})",
                      "field 'route.metadata' must be an object (got array)"},
        TypeErrorCase{R"({"id":"a","headers":[]})",
                      "field 'headers' must be an object (got array)"},
        TypeErrorCase{R"({"id":"a","headers":"h"})",
                      "field 'headers' must be an object (got string)"},
        TypeErrorCase{R"({"id":"a","deadline":5})",
                      "field 'deadline' must be a string (got number)"},
        TypeErrorCase{"null", "top-level JSON must be an object (got null)"},
        TypeErrorCase{"[1]", "top-level JSON must be an object (got array)"},
        TypeErrorCase{"\"s\"", "top-level JSON must be an object (got string)"},
        TypeErrorCase{"5", "top-level JSON must be an object (got number)"}));

class EnvelopeSyntaxErrors : public testing::TestWithParam<TypeErrorCase> {};

TEST_P(EnvelopeSyntaxErrors, AreRejectedWithPosition) {
  auto r = Parse(GetParam().json);
  ASSERT_FALSE(r.has_value()) << GetParam().json;
  EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(r.error().message, GetParam().message);
}

INSTANTIATE_TEST_SUITE_P(
    All, EnvelopeSyntaxErrors,
    testing::Values(
        TypeErrorCase{"", "invalid JSON at byte 0: empty document"},
        TypeErrorCase{"  ", "invalid JSON at byte 2: empty document"},
        TypeErrorCase{R"({"id":"a","payload":[1,,2]})",
                      "invalid JSON at byte 23: expected a value"},
        TypeErrorCase{R"({"id":"a","payload":[1,2)",
                      "invalid JSON at byte 24: unexpected end of input, expected ',' or ']'"},
        TypeErrorCase{R"({"id":"a","payload":{"a":1})",
                      "invalid JSON at byte 27: unexpected end of input, expected ',' or '}'"},
        TypeErrorCase{R"({"id":"a"} x)",
                      "invalid JSON at byte 11: unexpected data after the JSON value"},
        TypeErrorCase{R"({"id":"a"}{})",
                      "invalid JSON at byte 10: unexpected data after the JSON value"},
        TypeErrorCase{R"({"id":"a)", "invalid JSON at byte 8: unterminated string"},
        TypeErrorCase{R"({"id":"a","x":tru})", "invalid JSON at byte 14: invalid literal"},
        TypeErrorCase{R"({"id":"a","x":01})",
                      "invalid JSON at byte 15: invalid number: leading zero"},
        TypeErrorCase{R"({"id":"a","x":1.})",
                      "invalid JSON at byte 16: invalid number: expected a digit after '.'"},
        TypeErrorCase{R"({"id":"a","x":-})",
                      "invalid JSON at byte 15: invalid number: expected a digit"},
        TypeErrorCase{R"({"id":"a","x":NaN})", "invalid JSON at byte 14: expected a value"},
        TypeErrorCase{R"({"id":"a","x":"\x"})",
                      "invalid JSON at byte 16: invalid escape in string"},
        TypeErrorCase{R"({"id":"a","x":"\u12"})", "invalid JSON at byte 15: invalid \\u escape"},
        TypeErrorCase{R"({"id":"a","x":"\ud800"})",
                      "invalid JSON at byte 15: high surrogate not followed by a low surrogate"},
        TypeErrorCase{R"({"id":"a","x":"\ud800\u0041"})",
                      "invalid JSON at byte 15: high surrogate not followed by a low surrogate"},
        TypeErrorCase{R"({"id":"a","x":"\udc00"})",
                      "invalid JSON at byte 15: lone low surrogate in \\u escape"},
        TypeErrorCase{"{\"id\":\"a\",\"x\":\"\t\"}",
                      "invalid JSON at byte 15: unescaped control character in string"},
        TypeErrorCase{R"({"id":"a",})", "invalid JSON at byte 10: expected a string key"},
        TypeErrorCase{R"({"id" "a"})", "invalid JSON at byte 6: expected ':' after an object key"},
        TypeErrorCase{R"({id:"a"})", "invalid JSON at byte 1: expected a string key"},
        TypeErrorCase{R"({"id":'a'})", "invalid JSON at byte 6: expected a value"}));

TEST(EnvelopeParse, InvalidUtf8IsRejected) {
  for (std::string bad : {std::string("\xff"), std::string("\xc3"), std::string("\xed\xa0\x80"),
                          std::string("\xc0\xaf"), std::string("\xf4\x90\x80\x80")}) {
    auto r = Parse(R"({"id":"a","payload":")" + bad + "\"}");
    ASSERT_FALSE(r.has_value());
    EXPECT_EQ(r.error().message, "invalid UTF-8 in JSON text");
  }
}

TEST(EnvelopeParse, OversizeInputIsResourceExhausted) {
  ParseOptions options;
  options.max_bytes = 10;
  auto r = Parse(R"({"id":"abcdefgh"})", options);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, ErrorCode::kResourceExhausted);
  EXPECT_EQ(r.error().message,
            "message of 17 bytes exceeds the limit of 10 bytes (ASYA_MAX_MESSAGE_BYTES)");
}

TEST(EnvelopeParse, LargePayloadAboveThreadLocalThreshold) {
  std::string payload = "[";
  for (int i = 0; i < 300000; ++i) {
    payload += (i > 0 ? "," : "") + std::to_string(i);
  }
  payload += "]";
  auto e = MustParse(R"({"id":"big","payload":)" + payload + "}");
  EXPECT_EQ(e.payload_json, payload);
  // A small parse afterwards still works on the thread-local parser.
  EXPECT_EQ(MustParse(R"({"id":"small"})").id, "small");
}

TEST(EnvelopeSerialize, CompactAndOrdered) {
  Envelope e;
  e.id = "i";
  e.parent_id = "p";
  e.route.actors = {"a", "b"};
  e.route.current = 1;
  e.route.metadata_json = R"({"m":1})";
  e.SetHeaderString("traceparent", "00-x-y-01");
  e.SetHeaderInt("x-asya-hops", 3);
  e.payload_json = R"({"k":"v"})";
  e.deadline = "2030-01-01T00:00:00Z";
  EXPECT_EQ(
      Serialize(e),
      R"({"id":"i","parent_id":"p","route":{"actors":["a","b"],"current":1,"metadata":{"m":1}},)"
      R"("headers":{"traceparent":"00-x-y-01","x-asya-hops":3},"payload":{"k":"v"},)"
      R"("deadline":"2030-01-01T00:00:00Z"})");
}

TEST(EnvelopeSerialize, MinimalEnvelopeWritesNullPayloadAndNoRoute) {
  Envelope e;
  e.id = "x";
  EXPECT_EQ(Serialize(e), R"({"id":"x","payload":null})");
  e.has_route = true;
  e.has_headers = true;
  EXPECT_EQ(Serialize(e),
            R"({"id":"x","route":{"actors":[],"current":0},"headers":{},"payload":null})");
}

TEST(EnvelopeSerialize, EscapesStrings) {
  std::string out;
  AppendJsonString(out,
                   "q\"b\\n\nt\tc\x01\x1f\x7f"
                   "\xc3\xa9\xf0\x9f\x98\x80");
  EXPECT_EQ(out, "\"q\\\"b\\\\n\\nt\\tc\\u0001\\u001f\x7f\xc3\xa9\xf0\x9f\x98\x80\"");
  out.clear();
  AppendJsonString(out, std::string("a\0b\b\f\r", 6));
  EXPECT_EQ(out, R"("a\u0000b\b\f\r")");
}

TEST(EnvelopeSerialize, InvalidUtf8BecomesReplacementCharacter) {
  std::string out;
  AppendJsonString(out,
                   "a\xff"
                   "b\xc3");
  EXPECT_EQ(out, R"("a\ufffdb\ufffd")");
  EXPECT_TRUE(ValidateJson(out).has_value());
}

TEST(EnvelopeSerialize, RoundTripOfEveryField) {
  Envelope e;
  e.id = "id \"quoted\" \n\xe6\x97\xa5";
  e.parent_id = "";
  e.has_route = true;
  e.route.actors = {"a\\b", "", "\xf0\x9f\x98\x80"};
  e.route.current = -3;
  e.route.metadata_json = R"({"x":{"y":[]}})";
  e.SetHeaderRaw("obj", R"({"a":[1,2]})");
  e.SetHeaderString("s", "\x01");
  e.has_payload = true;
  e.payload_json = R"([1,"two",{"3":null}])";
  e.deadline = "d";
  auto back = Parse(Serialize(e));
  ASSERT_TRUE(back.has_value()) << back.error().message;
  EXPECT_EQ(*back, e);
}

TEST(EnvelopeHeaders, GetAndSet) {
  auto e = MustParse(
      R"({"id":"x","headers":{"s":"a\u00e9\"","n":-42,"f":1.5,"big":99999999999999999999,)"
      R"("o":{},"b":true}})");
  EXPECT_EQ(e.GetHeaderString("s"), "a\xc3\xa9\"");
  EXPECT_FALSE(e.GetHeaderString("n"));
  EXPECT_FALSE(e.GetHeaderString("missing"));
  EXPECT_EQ(e.GetHeaderInt("n"), -42);
  EXPECT_FALSE(e.GetHeaderInt("f"));
  EXPECT_FALSE(e.GetHeaderInt("big"));
  EXPECT_FALSE(e.GetHeaderInt("s"));
  EXPECT_FALSE(e.GetHeaderInt("o"));
  EXPECT_FALSE(e.GetHeaderInt("b"));
  e.SetHeaderInt("n", 7);
  e.SetHeaderString("new", "v");
  EXPECT_EQ(e.GetHeaderInt("n"), 7);
  EXPECT_EQ(e.headers[1].first, "n");  // replaced in place
  EXPECT_EQ(e.headers.back().first, "new");
  EXPECT_EQ(e.GetHeaderString("new"), "v");
}

TEST(EnvelopeHeaders, SetOnEnvelopeWithoutHeadersAddsTheKey) {
  auto e = MustParse(R"({"id":"x","payload":1})");
  e.SetHeaderInt("x-asya-attempt", 1);
  EXPECT_EQ(Serialize(e), R"({"id":"x","headers":{"x-asya-attempt":1},"payload":1})");
}

TEST(DecodeJsonString, HandlesEscapesAndRejectsNonStrings) {
  EXPECT_EQ(DecodeJsonString(R"("\ud83d\ude00\/\b")"), "\xf0\x9f\x98\x80/\b");
  EXPECT_FALSE(DecodeJsonString("5"));
  EXPECT_FALSE(DecodeJsonString(R"("\ud83d")"));
  EXPECT_FALSE(DecodeJsonString(R"("\")"));
  EXPECT_FALSE(DecodeJsonString(R"("a"b")"));
}

}  // namespace
// SerializeIntoPayload writes the same text as SerializeWithPayload, inside the payload's buffer
// when it has room, and copies when it has not.
TEST(Envelope, SerializeIntoPayloadIsSerializeWithPayloadInPlace) {
  Envelope e;
  e.id = "id-1";
  e.parent_id = "p";
  e.has_route = true;
  e.route.actors = {"a", "b"};
  e.route.current = 1;
  e.route.metadata_json = R"({"m":1})";
  e.headers = {{"k", "\"v\""}};
  e.has_headers = true;
  e.deadline = "2030-01-01T00:00:00Z";
  const std::string payload = "[" + std::string(70000, '1') + "]";
  const std::string expected = SerializeWithPayload(e, payload);

  std::string roomy = payload;
  roomy.reserve(payload.size() + 1024);
  const char* buffer = roomy.data();
  std::string out = SerializeIntoPayload(e, std::move(roomy));
  EXPECT_EQ(out, expected);
  EXPECT_EQ(out.data(), buffer) << "built in a new buffer although the payload's had room";
  EXPECT_EQ(SerializedSize(e, payload), expected.size());

  std::string tight = payload;
  tight.shrink_to_fit();
  EXPECT_EQ(SerializeIntoPayload(e, std::move(tight)), expected);
  EXPECT_EQ(SerializeIntoPayload(e, std::string()), SerializeWithPayload(e, ""));
  EXPECT_EQ(SerializedSize(e, ""), SerializeWithPayload(e, "").size());
  Envelope bare;
  EXPECT_EQ(SerializeIntoPayload(bare, std::string("7")), SerializeWithPayload(bare, "7"));
}

TEST(Envelope, ParseCanLeaveALargePayloadInTheInput) {
  const std::string text = R"({"id":"x","route":{"actors":["a"],"current":0},"payload":[1,2]})";
  auto kept = Parse(text);
  auto left = Parse(text, {.keep_payload = false});
  ASSERT_TRUE(kept.has_value() && left.has_value());
  EXPECT_EQ(kept->payload_json, "[1,2]");
  EXPECT_EQ(left->payload_json, "");
  EXPECT_TRUE(left->has_payload);
  EXPECT_EQ(left->id, "x");
  EXPECT_EQ(left->route.actors, kept->route.actors);
  // The payload is still checked.
  EXPECT_FALSE(Parse(R"({"id":"x","payload":[1,,2]})", {.keep_payload = false}).has_value());
}

}  // namespace asya::envelope
