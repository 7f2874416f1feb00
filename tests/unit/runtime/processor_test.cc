// The request -> response logic of the C++ runtime, without sockets.
#include "runtime/processor.h"

#include <stdexcept>
#include <string>

#include <gtest/gtest.h>

#include "runtime/json_scan.h"

namespace asya::runtime {
namespace {

using nlohmann::json;
namespace scan = ::asya::runtime::json;

constexpr std::string_view kEnvelope =
    R"({"id":"m1","route":{"actors":["a","b","c"],"current":1,"metadata":{"k":"v"}},)"
    R"("headers":{"traceparent":"00-abc-def-01","x-asya-attempt":2},"payload":{"n": 1.50}})";

std::string Respond(const Handler& handler, std::string_view request, bool validate = true,
                    size_t max_bytes = 64u << 20) {
  std::string out;
  Processor(handler, validate, max_bytes).Process(request, out);
  return out;
}

json RespondJson(const Handler& handler, std::string_view request, bool validate = true) {
  return json::parse(Respond(handler, request, validate));
}

// Asserts a single error element and returns its details.
json ExpectError(const json& response, std::string_view code) {
  EXPECT_TRUE(response.is_array()) << response;
  EXPECT_EQ(response.size(), 1u) << response;
  EXPECT_EQ(response[0]["error"], code) << response;
  EXPECT_EQ(response[0]["details"]["traceback"], "") << response;
  return response[0]["details"];
}

Outputs Echo(const Request& r) {
  return r.payload();
}

TEST(ProcessorTest, EchoKeepsPayloadTextAndAdvancesRoute) {
  std::string out = Respond(Echo, kEnvelope);
  // The payload passes through byte for byte (1.50 is not rewritten).
  EXPECT_EQ(
      out,
      R"([{"payload":{"n": 1.50},"route":{"actors":["a","b","c"],"current":2,)"
      R"("metadata":{"k":"v"}},"headers":{"traceparent":"00-abc-def-01","x-asya-attempt":2}}])");
}

TEST(ProcessorTest, MissingCurrentDefaultsToZeroAndIsAppended) {
  auto r = RespondJson(Echo, R"({"route":{"actors":["a"]},"payload":null})");
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0]["route"]["current"], 1);
  EXPECT_TRUE(r[0]["payload"].is_null());
  EXPECT_FALSE(r[0].contains("headers"));  // no headers in, none out
}

TEST(ProcessorTest, FanOutAndEmpty) {
  Handler fan = [](const Request&) {
    return Outputs(std::vector<std::string>{"1", "{\"x\":2}", "null"});
  };
  auto r = RespondJson(fan, kEnvelope);
  ASSERT_EQ(r.size(), 3u);
  EXPECT_EQ(r[0]["payload"], 1);
  EXPECT_EQ(r[1]["payload"]["x"], 2);
  EXPECT_TRUE(r[2]["payload"].is_null());
  for (const auto& item : r) {
    EXPECT_EQ(item["route"]["current"], 2);
    EXPECT_EQ(item["headers"]["traceparent"], "00-abc-def-01");
  }
  Handler none = [](const Request&) { return Outputs(); };
  EXPECT_EQ(Respond(none, kEnvelope), "[]");
}

TEST(ProcessorTest, HeadersAreReadableByPayloadHandlers) {
  std::string seen;
  int64_t attempt = 0;
  std::string raw;
  Handler h = [&](const Request& r) {
    seen = r.HeaderString("traceparent").value_or("?");
    attempt = r.Attempt();
    EXPECT_FALSE(r.Header("missing").has_value());
    raw = std::string(r.Header("x-asya-attempt").value_or("-"));
    return Outputs();
  };
  Respond(h, kEnvelope);
  EXPECT_EQ(seen, "00-abc-def-01");
  EXPECT_EQ(attempt, 2);
  EXPECT_EQ(raw, "2");  // raw JSON text of the header value
  Respond(h, R"({"route":{"actors":["a"]},"payload":1,"headers":{"x-asya-attempt":"3"}})");
  EXPECT_EQ(attempt, 3);
  EXPECT_EQ(raw, "\"3\"");
  Respond(h, R"({"route":{"actors":["a"]},"payload":1})");
  EXPECT_EQ(attempt, 1);
}

TEST(ProcessorTest, ReturnedHandlerErrorIsProcessingError) {
  Handler h = [](const Request&) { return Outputs(HandlerError{"ValueError", "bad \"input\""}); };
  auto d = ExpectError(RespondJson(h, kEnvelope), "processing_error");
  EXPECT_EQ(d["type"], "ValueError");
  EXPECT_EQ(d["message"], "bad \"input\"");
}

TEST(ProcessorTest, ThrownExceptionsBecomeProcessingErrorWithDemangledType) {
  Handler h = [](const Request&) -> Outputs { throw std::invalid_argument("nope"); };
  auto d = ExpectError(RespondJson(h, kEnvelope), "processing_error");
  EXPECT_EQ(d["type"], "std::invalid_argument");
  EXPECT_EQ(d["message"], "nope");

  Handler thrown_error = [](const Request&) -> Outputs { throw HandlerError{"KeyError", "k"}; };
  d = ExpectError(RespondJson(thrown_error, kEnvelope), "processing_error");
  EXPECT_EQ(d["type"], "KeyError");

  Handler weird = [](const Request&) -> Outputs { throw 42; };
  d = ExpectError(RespondJson(weird, kEnvelope), "processing_error");
  EXPECT_EQ(d["type"], "int");
}

TEST(ProcessorTest, InvalidHandlerOutputIsProcessingError) {
  Handler h = [](const Request&) { return Outputs(std::vector<std::string>{"1", "{oops"}); };
  auto d = ExpectError(RespondJson(h, kEnvelope), "processing_error");
  EXPECT_NE(d["message"].get<std::string>().find("handler output[1] is not valid JSON"),
            std::string::npos)
      << d;
  Handler utf8 = [](const Request&) { return Outputs("\"\xff\""); };
  d = ExpectError(RespondJson(utf8, kEnvelope), "processing_error");
  EXPECT_NE(d["message"].get<std::string>().find("invalid UTF-8"), std::string::npos) << d;
}

TEST(ProcessorTest, ResponseLargerThanLimitIsProcessingError) {
  Handler big = [](const Request&) { return Outputs("\"" + std::string(2000, 'x') + "\""); };
  auto d = ExpectError(json::parse(Respond(big, kEnvelope, true, 1000)), "processing_error");
  EXPECT_EQ(d["type"], "ResponseTooLarge");
  EXPECT_NE(d["message"].get<std::string>().find("ASYA_MAX_MESSAGE_BYTES=1000"), std::string::npos);
}

struct BadInput {
  std::string name;
  std::string body;
  std::string type;
  std::string message;  // exact
};

class BadInputTest : public ::testing::TestWithParam<BadInput> {};

TEST_P(BadInputTest, IsMsgParsingError) {
  bool called = false;
  Handler h = [&](const Request&) {
    called = true;
    return Outputs();
  };
  auto d = ExpectError(RespondJson(h, GetParam().body), "msg_parsing_error");
  EXPECT_EQ(d["type"], GetParam().type);
  EXPECT_EQ(d["message"], GetParam().message);
  EXPECT_FALSE(called);
}

INSTANTIATE_TEST_SUITE_P(
    Runtime, BadInputTest,
    ::testing::Values(
        BadInput{"ZeroLength", "", "ValueError",
                 "Empty request frame (length 0): expected a JSON envelope"},
        BadInput{"InvalidJson", "{\"payload\": tru}", "JSONDecodeError",
                 "Expecting value: line 1 column 13 (char 12)"},
        BadInput{"TrailingData", "{} x", "JSONDecodeError", "Extra data: line 1 column 4 (char 3)"},
        BadInput{"Unterminated", "{\"a\":\"x", "JSONDecodeError",
                 "Unterminated string starting at: line 1 column 6 (char 5)"},
        BadInput{"InvalidUtf8", "{\"payload\":\"\xc3\x28\"}", "UnicodeDecodeError",
                 "'utf-8' codec can't decode byte 0xc3 in position 12: invalid continuation byte"},
        BadInput{"NotAnObject", "5", "ValueError", "Envelope must be a JSON object, got number"},
        BadInput{"TopLevelArray", "[]", "ValueError",
                 "Missing required field 'payload' in envelope"},
        BadInput{"NoPayload", R"({"route":{"actors":["a"]}})", "ValueError",
                 "Missing required field 'payload' in envelope"},
        BadInput{"NoRoute", R"({"payload":1})", "ValueError",
                 "Missing required field 'route' in envelope"},
        BadInput{"RouteNotObject", R"({"payload":1,"route":[]})", "ValueError",
                 "Field 'route' must be a dict"},
        BadInput{"NoActors", R"({"payload":1,"route":{}})", "ValueError",
                 "Missing required field 'actors' in route"},
        BadInput{"ActorsNotList", R"({"payload":1,"route":{"actors":"a"}})", "ValueError",
                 "Field 'route.actors' must be a list"},
        BadInput{"CurrentNotInt", R"({"payload":1,"route":{"actors":["a"],"current":1.5}})",
                 "ValueError", "Field 'route.current' must be an integer"},
        BadInput{"CurrentString", R"({"payload":1,"route":{"actors":["a"],"current":"0"}})",
                 "ValueError", "Field 'route.current' must be an integer"},
        BadInput{"EmptyActors", R"({"payload":1,"route":{"actors":[]}})", "ValueError",
                 "Field 'route.actors' cannot be empty"},
        BadInput{"CurrentOutOfBounds", R"({"payload":1,"route":{"actors":["a"],"current":2}})",
                 "ValueError", "Invalid route.current=2: out of bounds for actors of length 1"},
        BadInput{"NegativeCurrent", R"({"payload":1,"route":{"actors":["a"],"current":-1}})",
                 "ValueError", "Invalid route.current=-1: out of bounds for actors of length 1"},
        BadInput{"HeadersNotObject", R"({"payload":1,"route":{"actors":["a"]},"headers":[]})",
                 "ValueError", "Field 'headers' must be a dict"},
        BadInput{"IdNotString", R"({"id":7,"payload":1,"route":{"actors":["a"]}})", "ValueError",
                 "Field 'id' must be a string"}),
    [](const auto& p) { return p.param.name; });

TEST(ProcessorTest, CurrentEqualToLengthIsAccepted) {
  auto r = RespondJson(Echo, R"({"payload":1,"route":{"actors":["a"],"current":1}})");
  EXPECT_EQ(r[0]["route"]["current"], 2);
}

TEST(ProcessorTest, WithoutValidationOnlyWhatPayloadModeNeedsIsChecked) {
  auto r = RespondJson(Echo, R"({"payload":1,"route":{"current":0},"headers":7,"id":1})", false);
  EXPECT_EQ(r[0]["route"]["current"], 1);
  EXPECT_EQ(r[0]["headers"], 7);
  auto d = ExpectError(RespondJson(Echo, R"({"payload":1})", false), "msg_parsing_error");
  EXPECT_EQ(d["message"], "Field 'route' must be a dict");
  d = ExpectError(RespondJson(Echo, R"([1])", false), "msg_parsing_error");
  EXPECT_EQ(d["message"], "Envelope must be a JSON object, got array");
}

TEST(ProcessorTest, JsonHandlersUsePythonReturnNormalisation) {
  Handler list = [](const json& p) { return json::array({p, p}); };
  EXPECT_EQ(RespondJson(list, kEnvelope).size(), 2u);
  Handler null = [](const json&) { return json(nullptr); };
  EXPECT_EQ(Respond(null, kEnvelope), "[]");
  Handler with_request = [](const json& p, const Request& r) {
    return json{{"n", p["n"]}, {"attempt", r.Attempt()}};
  };
  auto r = RespondJson(with_request, kEnvelope);
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0]["payload"]["attempt"], 2);
  EXPECT_DOUBLE_EQ(r[0]["payload"]["n"].get<double>(), 1.5);
}

// ---- envelope mode ----

Handler Advance() {
  return Handler::Envelope([](json e) {
    e["route"]["current"] = e["route"]["current"].get<int>() + 1;
    e["payload"] = {{"seen", true}};
    return e;
  });
}

TEST(ProcessorEnvelopeTest, HandlerGetsValidatedEnvelopeAndAdvancesItself) {
  json got;
  Handler h = Handler::Envelope([&](json e) {
    got = e;
    e["route"]["current"] = 2;
    return e;
  });
  auto r = RespondJson(h, R"({"id":"m1","extra":1,"deadline":"x","route":{"actors":["a","b"]},)"
                          R"("payload":{"v":1},"headers":{"h":"1"}})");
  // Rebuilt: only payload, route, id, parent_id, headers; current defaulted to 0.
  EXPECT_EQ(got, json::parse(R"({"id":"m1","route":{"actors":["a","b"],"current":0},)"
                             R"("payload":{"v":1},"headers":{"h":"1"}})"));
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0]["route"]["current"], 2);
  EXPECT_EQ(r[0]["headers"]["h"], "1");
  EXPECT_EQ(r[0]["id"], "m1");
}

TEST(ProcessorEnvelopeTest, ErasingProcessedActorsIsRejected) {
  // The handler edits its envelope in place and drops the actor it runs as.
  Handler h = Handler::Envelope([](json e) {
    e["route"]["actors"] = json::array({"x", "c"});
    e["route"]["current"] = 1;
    return e;
  });
  auto d =
      ExpectError(RespondJson(h, R"({"route":{"actors":["a","b","c"],"current":1},"payload":1})"),
                  "processing_error");
  EXPECT_EQ(d["type"], "ValueError");
  EXPECT_EQ(d["message"],
            "Invalid output envelope[0/1]: Route modification error: already-processed actors "
            "cannot be erased. Input route had ['a', 'b'] (actors 0-1), but output route starts "
            "with ['x', 'c']. Runtimes can add future actors but must preserve all actors up to "
            "current.");
}

TEST(ProcessorEnvelopeTest, AddingFutureActorsAndFanOutAreAllowed) {
  Handler h = Handler::Envelope([](json e) {
    e["route"]["actors"].push_back("extra");
    e["route"]["current"] = 1;
    return json::array({e, e});
  });
  auto r = RespondJson(h, R"({"route":{"actors":["a","b"]},"payload":1})");
  ASSERT_EQ(r.size(), 2u);
  EXPECT_EQ(r[1]["route"]["actors"], json::parse(R"(["a","b","extra"])"));
}

TEST(ProcessorEnvelopeTest, InvalidOutputsAreRejected) {
  Handler not_object = Handler::Envelope([](json) { return json::array({json(5)}); });
  auto d = ExpectError(RespondJson(not_object, R"({"route":{"actors":["a"]},"payload":1})"),
                       "processing_error");
  EXPECT_EQ(d["message"],
            "Invalid output envelope[0/1]: Output envelope must be a JSON object, got number");
  Handler no_payload = Handler::Envelope([](json e) {
    e.erase("payload");
    return e;
  });
  d = ExpectError(RespondJson(no_payload, R"({"route":{"actors":["a"]},"payload":1})"),
                  "processing_error");
  EXPECT_EQ(d["message"],
            "Invalid output envelope[0/1]: Missing required field 'payload' in envelope");
}

TEST(ProcessorEnvelopeTest, InputValidationAndValidationOff) {
  auto d =
      ExpectError(RespondJson(Advance(), R"({"route":{"actors":["a"]}})"), "msg_parsing_error");
  EXPECT_EQ(d["message"], "Missing required field 'payload' in envelope");
  // Validation off: any JSON goes to the handler, outputs are returned verbatim.
  Handler raw = Handler::Envelope([](json e) { return json::array({e, json::object()}); });
  EXPECT_EQ(Respond(raw, "[1]", false), "[[1],{}]");
  EXPECT_EQ(Respond(raw, "7", false), "[7,{}]");
}

TEST(ProcessorEnvelopeTest, UnserialisableResultIsProcessingError) {
  Handler bad = Handler::Envelope([](json e) {
    e["payload"] = std::string("\xff");
    return e;
  });
  auto d = ExpectError(RespondJson(bad, R"({"route":{"actors":["a"]},"payload":1})"),
                       "processing_error");
  EXPECT_NE(d["message"].get<std::string>().find("cannot be sent as JSON"), std::string::npos) << d;
}

// ---- scanner ----

TEST(JsonScanTest, AcceptsValidDocumentsAndReportsSpans) {
  std::string error;
  for (std::string_view ok : {"0", "-0.5e+3", "\"\\u00e9\\n\"", " [ ] ", "{\"a\":[1,{\"b\":null}]}",
                              "true", "\"\xe2\x82\xac\""}) {
    EXPECT_TRUE(scan::ScanDocument(ok, &error).has_value()) << ok << ": " << error;
  }
  for (std::string_view bad : {"01", "1.", "-", "[1,]", "{\"a\" 1}", "\"\\x\"", "nul", "\"a\tb\"",
                               "{,}", "[1 2]", "NaN"}) {
    EXPECT_FALSE(scan::ScanDocument(bad, &error).has_value()) << bad;
  }
  std::string deep(scan::kMaxDepth + 1, '[');
  deep += std::string(scan::kMaxDepth + 1, ']');
  EXPECT_FALSE(scan::ScanDocument(deep, &error).has_value());
  EXPECT_NE(error.find("Nesting too deep"), std::string::npos);
}

TEST(JsonScanTest, Utf8Validation) {
  EXPECT_FALSE(
      scan::FindInvalidUtf8("plain ascii text, long enough for the fast path").has_value());
  EXPECT_FALSE(scan::FindInvalidUtf8("\xf0\x9f\x98\x80 \xc3\xa9").has_value());
  auto e = scan::FindInvalidUtf8("abcdefghij\xed\xa0\x80");  // encoded surrogate
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->offset, 10u);
  e = scan::FindInvalidUtf8("ab\xe2\x82");
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->reason, "unexpected end of data");
}

TEST(JsonScanTest, DecodeAndAppendString) {
  EXPECT_EQ(scan::DecodeString(R"("a\"b\\c\u00e9\ud83d\ude00")"),
            "a\"b\\c\xc3\xa9\xf0\x9f\x98\x80");
  std::string out;
  scan::AppendString(out, "q\"\n\x01\xff");
  // An invalid byte becomes the escape \ufffd (U+FFFD), so the output is always valid JSON.
  EXPECT_EQ(out, "\"q\\\"\\n\\u0001\\ufffd\"");
}

}  // namespace
}  // namespace asya::runtime
