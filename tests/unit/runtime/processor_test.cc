// The request -> response logic of the C++ runtime, without sockets.
#include "runtime/processor.h"

#include <cstdlib>
#include <fstream>
#include <regex>
#include <sstream>
#include <stdexcept>
#include <string>

#include <gtest/gtest.h>

#include "runtime/json_scan.h"

namespace asya::runtime {
namespace {

using nlohmann::json;

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

TEST(ProcessorTest, RouteCurrentIsIncrementedExactlyAtAnyLength) {
  // Python ints do not overflow; nlohmann would read these as doubles, so compare the text.
  EXPECT_EQ(Respond(Echo, R"({"payload":1,"route":{"current":99999999999999999999}})", false),
            R"([{"payload":1,"route":{"current":100000000000000000000}}])");
  EXPECT_EQ(
      Respond(Echo, R"({"payload":1,"route":{"current":-100000000000000000000,"a":2}})", false),
      R"([{"payload":1,"route":{"current":-99999999999999999999,"a":2}}])");
  EXPECT_EQ(Respond(Echo, R"({"payload":1,"route":{"current":-1}})", false),
            R"([{"payload":1,"route":{"current":0}}])");
  EXPECT_EQ(Respond(Echo, R"({"payload":1,"route":{"actors":["a"],"current":false}})"),
            R"([{"payload":1,"route":{"actors":["a"],"current":1}}])");
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

// ---- the shared table: tests/shared/runtime_error_cases.json ----
// tests/python/test_runtime_cases.py runs the same cases against asya_runtime.py.

// {{X*N}} -> X repeated N times.
std::string Expand(const std::string& text) {
  static const std::regex kRepeat(R"(\{\{(.+?)\*(\d+)\}\})");
  std::string out;
  auto it = std::sregex_iterator(text.begin(), text.end(), kRepeat);
  size_t last = 0;
  for (; it != std::sregex_iterator(); ++it) {
    out.append(text, last, static_cast<size_t>(it->position()) - last);
    for (int i = 0, n = std::stoi((*it)[2].str()); i < n; ++i) {
      out += (*it)[1].str();
    }
    last = static_cast<size_t>(it->position() + it->length());
  }
  out.append(text, last);
  return out;
}

std::string RequestBytes(const json& c) {
  if (c.contains("request_latin1")) {
    std::string bytes;
    std::string utf8 = c["request_latin1"].get<std::string>();
    for (size_t i = 0; i < utf8.size(); ++i) {  // U+0000-U+00FF back to one byte each
      auto b = static_cast<unsigned char>(utf8[i]);
      if (b >= 0xC0) {
        bytes +=
            static_cast<char>(((b & 0x03) << 6) | (static_cast<unsigned char>(utf8[++i]) & 0x3F));
      } else {
        bytes += static_cast<char>(b);
      }
    }
    return bytes;
  }
  return Expand(c["request"].get<std::string>());
}

// The handlers the Python side uses: h_payload.noop (None -> no output, a list -> one output per
// element) and h_envelope.dispatch (route.current + 1).
Outputs PythonLikeEcho(const Request& r) {
  std::string_view p = r.payload();
  if (p == "null") {
    return Outputs();
  }
  if (p[0] != '[') {
    return p;
  }
  Outputs outputs;
  ::asya::json::ForEachElement(p, [&](::asya::json::Value v) { outputs.Add(std::string(v.text)); });
  return outputs;
}

TEST(SharedRuntimeCases, CppRuntimeAnswersLikeThePythonRuntime) {
  const char* source = std::getenv("ASYA_SOURCE_DIR");
  ASSERT_NE(source, nullptr) << "ASYA_SOURCE_DIR is not set (run through ctest)";
  std::ifstream file(std::string(source) + "/tests/shared/runtime_error_cases.json");
  ASSERT_TRUE(file.good());
  std::stringstream text;
  text << file.rdbuf();
  const json table = json::parse(text.str());
  Handler payload_handler = PythonLikeEcho;
  Handler envelope_handler = Handler::Envelope([](json e) {
    e["route"]["current"] = e["route"]["current"].get<int64_t>() + 1;
    return e;
  });
  size_t ran = 0;
  for (const auto& c : table["cases"]) {
    SCOPED_TRACE(c["name"].get<std::string>());
    const bool envelope = c.value("mode", "payload") == "envelope";
    std::string out = Respond(envelope ? envelope_handler : payload_handler, RequestBytes(c),
                              c.value("validate", true));
    json got = json::parse(out);
    if (c.contains("error")) {
      ASSERT_TRUE(got.is_array() && got.size() == 1 && got[0].contains("error")) << out;
      json error = {{"code", got[0]["error"]},
                    {"type", got[0]["details"]["type"]},
                    {"message", got[0]["details"]["message"]}};
      EXPECT_EQ(error, c["error"]);
    } else if (c.contains("response")) {
      EXPECT_EQ(got, c["response"]) << out;
    } else {
      EXPECT_EQ(got, json::parse(Expand(c["response_text"].get<std::string>())));
    }
    ++ran;
  }
  EXPECT_GT(ran, 50u);
}

// ---- Python wording of malformed JSON (json_scan.h) ----

TEST(PyDecodeTest, AcceptsWhatPythonAcceptsIncludingLoneSurrogates) {
  PyError error;
  for (std::string_view ok : {"0", "-0.5e+3", "\"\\u00e9\\n\"", " [ ] ", "{\"a\":[1,{\"b\":null}]}",
                              "true", "\"\xe2\x82\xac\"", "\"\\ud800\"", "\"\\udc00x\""}) {
    EXPECT_TRUE(PyDecode(ok, &error).has_value()) << ok << ": " << error.message;
  }
}

TEST(PyDecodeTest, DepthLimitIsARecursionError) {
  PyError error;
  std::string deep(kMaxJsonDepth, '[');
  deep += std::string(kMaxJsonDepth, ']');
  EXPECT_TRUE(PyDecode(deep, &error).has_value());
  deep = "[" + deep + "]";
  EXPECT_FALSE(PyDecode(deep, &error).has_value());
  EXPECT_EQ(error.type, "RecursionError");
  EXPECT_EQ(error.message,
            "maximum recursion depth exceeded while decoding a JSON array from a unicode string");
}

TEST(PyDecodeTest, TopLevelMembersHaveDecodedKeys) {
  PyError error;
  std::vector<Member> members;
  auto doc = PyDecode(R"( {"pay\u006coad": 1, "route" : {"a":[]}} )", &error, &members);
  ASSERT_TRUE(doc.has_value());
  EXPECT_EQ(doc->kind, ::asya::json::Kind::kObject);
  EXPECT_EQ(doc->text.front(), '{');
  EXPECT_EQ(doc->text.back(), '}');
  ASSERT_EQ(members.size(), 2u);
  EXPECT_EQ(members[0].key, "payload");
  EXPECT_EQ(members[0].value.text, "1");
  EXPECT_EQ(members[1].key, "route");
  EXPECT_EQ(members[1].value.text, R"({"a":[]})");
}

}  // namespace
}  // namespace asya::runtime
