// Watch-stream lines and API error bodies: well-formed events are delivered, malformed ones
// (found by fuzz/k8s_watch_fuzz) are skipped with a reason instead of throwing.
#include <string>

#include <gtest/gtest.h>

#include "asya/k8s/client.h"

namespace asya::k8s {
namespace {

TEST(WatchLine, DeliversAWellFormedObject) {
  WatchEvent ev = ParseWatchLine(
      R"({"type":"MODIFIED","object":{"metadata":{"name":"a","namespace":"n","resourceVersion":"12","generation":3,"labels":{"x":"y"}}}})");
  ASSERT_EQ(ev.kind, WatchEvent::Kind::kObject);
  EXPECT_EQ(ev.type, "MODIFIED");
  EXPECT_EQ(ev.resource_version, "12");
  EXPECT_EQ(ev.object["metadata"]["name"], "a");
}

TEST(WatchLine, ErrorEvents) {
  WatchEvent gone = ParseWatchLine(
      R"({"type":"ERROR","object":{"kind":"Status","code":410,"message":"too old resource version"}})");
  ASSERT_EQ(gone.kind, WatchEvent::Kind::kError);
  EXPECT_TRUE(gone.gone);
  EXPECT_EQ(gone.message, "too old resource version");
  // Wrong types used to throw nlohmann::json::type_error on the watch thread.
  WatchEvent odd = ParseWatchLine(R"({"type":"ERROR","object":{"code":"410","message":5}})");
  ASSERT_EQ(odd.kind, WatchEvent::Kind::kError);
  EXPECT_FALSE(odd.gone);
  EXPECT_EQ(odd.message, "watch error");
}

TEST(WatchLine, MalformedEventsAreSkippedWithAReason) {
  EXPECT_EQ(ParseWatchLine("").kind, WatchEvent::Kind::kSkip);
  EXPECT_EQ(ParseWatchLine("").message, "");
  for (const char* line : {
           R"(not json)",
           R"([1])",
           R"({"type":1,"object":{}})",
           R"({"type":"ADDED"})",
           R"({"type":"ADDED","object":[]})",
           R"({"type":"ADDED","object":{"kind":"Pod"}})",
           R"({"type":"ADDED","object":{"metadata":"x"}})",
           R"({"type":"MODIFIED","object":{"metadata":{"resourceVersion":12}}})",
           R"({"type":"ADDED","object":{"metadata":{"name":["a"]}}})",
           R"({"type":"ADDED","object":{"metadata":{"generation":"3"}}})",
           R"({"type":"ADDED","object":{"metadata":{"labels":["a"]}}})",
       }) {
    WatchEvent ev = ParseWatchLine(line);
    EXPECT_EQ(ev.kind, WatchEvent::Kind::kSkip) << line;
    EXPECT_FALSE(ev.message.empty()) << line;
  }
  EXPECT_EQ(
      ParseWatchLine(R"({"type":"ADDED","object":{"metadata":{"resourceVersion":12}}})").message,
      "malformed ADDED event: metadata.resourceVersion is not a string");
}

TEST(StatusError, MessageFromAStatusBodyOrTheBodyItself) {
  Error e = StatusError(409, R"({"kind":"Status","message":"conflict","reason":"AlreadyExists"})",
                        "POST /x");
  EXPECT_EQ(e.code, ErrorCode::kAlreadyExists);
  EXPECT_EQ(e.message, "POST /x: HTTP 409: conflict");
  // A Status whose message/reason are not strings used to throw.
  Error odd = StatusError(409, R"({"message":{"a":1},"reason":7})", "GET /y");
  EXPECT_EQ(odd.code, ErrorCode::kFailedPrecondition);
  EXPECT_EQ(odd.message, R"(GET /y: HTTP 409: {"message":{"a":1},"reason":7})");
  EXPECT_EQ(StatusError(502, "<html>bad gateway</html>", "GET /z").code, ErrorCode::kUnavailable);
}

}  // namespace
}  // namespace asya::k8s
