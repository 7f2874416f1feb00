// Every routing outcome (tests/unit/router/router_test.cc has the full table) driven through the
// sidecar, one message at a time (Sidecar::ProcessOne) with fakes of the transport, runtime,
// metrics and gateway and a ManualClock: what is published where, ack/nack, metrics, gateway
// reports and the runtime readiness gate. Deterministic; nothing sleeps.
#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "asya/base/clock.h"
#include "asya/sidecar/metrics.h"
#include "asya/sidecar/sidecar.h"
#include "unit/sidecar/sidecar_fakes.h"

namespace asya::sidecar {
namespace {

using namespace asya::sidecar::testing;  // NOLINT(google-build-using-namespace)
using std::chrono::milliseconds;
using std::chrono::seconds;
using Kind = FakeTransport::SettleKind;
using MonoTime = std::chrono::steady_clock::time_point;

json Env(const std::string& id, std::vector<std::string> actors, json payload, int current = 0) {
  return {{"id", id}, {"route", {{"actors", actors}, {"current", current}}}, {"payload", payload}};
}

Result<std::string> Respond(json response) {
  return response.dump();
}

json ErrorItem(const std::string& code, const std::string& type, const std::string& message) {
  return json::array({{{"error", code}, {"details", {{"message", message}, {"type", type}}}}});
}

class SidecarRules : public ::testing::Test {
 protected:
  SidecarRules() : runtime_(Echo) {
    settings_.policy.actor = "a";
    settings_.socket_path = "/fake/asya-runtime.sock";
    settings_.runtime_timeout = seconds(30);
    settings_.policy.runtime_timeout = seconds(30);
    settings_.publish_failure_nack_delay = milliseconds(1000);
  }

  Sidecar& Make() {
    sidecar_.emplace(settings_, transport_, runtime_, &metrics_, &gateway_, clock_);
    return *sidecar_;
  }
  // Processes one message with this body (built by the Sidecar made on first use).
  void Process(const std::string& body, int64_t delivery_count = 1) {
    if (!sidecar_) {
      Make();
    }
    sidecar_->ProcessOne(transport_.Message(body, delivery_count));
  }
  void Process(const json& env, int64_t delivery_count = 1) { Process(env.dump(), delivery_count); }
  // The message was settled exactly once, as `kind`.
  void ExpectSettled(Kind kind, size_t total = 1) {
    auto s = transport_.Settles();
    ASSERT_EQ(s.size(), total);
    EXPECT_EQ(static_cast<int>(s.back().kind), static_cast<int>(kind));
  }
  // One error envelope at error-end; returns it.
  json OnlyErrorEnd() {
    auto out = transport_.To("asya-error-end");
    EXPECT_EQ(out.size(), 1u);
    EXPECT_EQ(transport_.Publishes().size(), 1u);
    return out.empty() ? json() : out[0];
  }
  std::vector<FakeGateway::Posted> Posts(PostKind kind) {
    std::vector<FakeGateway::Posted> out;
    for (auto& p : gateway_.Posts()) {
      if (p.kind == kind) {
        EXPECT_FALSE(p.body.is_discarded()) << p.path;
        out.push_back(p);
      }
    }
    return out;
  }

  ManualClock clock_;
  FakeTransport transport_;
  FakeRuntime runtime_;
  FakeMetrics metrics_;
  FakeGateway gateway_;
  Settings settings_;
  std::optional<Sidecar> sidecar_;
};

// ---- results of the runtime ----

TEST_F(SidecarRules, SuccessGoesToTheNextActorAndAcks) {
  Process(Env("m1", {"a", "b"}, {{"x", 1}}));
  auto out = transport_.To("asya-b");
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0]["id"], "m1");
  EXPECT_EQ(out[0]["route"]["current"], 1);
  EXPECT_EQ(out[0]["payload"], json({{"x", 1}}));
  EXPECT_EQ(out[0]["headers"]["x-asya-hops"], 1);
  ExpectSettled(Kind::kAck);
  EXPECT_EQ(runtime_.calls, 1);
  EXPECT_EQ(metrics_.Count("processed", "success"), 1);
  EXPECT_EQ(metrics_.Count("sent", "asya-b,routing"), 1);
  EXPECT_EQ(metrics_.Count("received"), 1);
  EXPECT_EQ(metrics_.Count("runtime_duration"), 1);
  EXPECT_EQ(metrics_.Count("processing_duration"), 1);
  EXPECT_EQ(metrics_.Active(), 0);
  // Progress: received, processing, completed (naming the actor that completed: index 0).
  auto progress = Posts(PostKind::kProgress);
  ASSERT_EQ(progress.size(), 3u);
  EXPECT_EQ(progress[0].path, "/envelopes/m1/progress");
  EXPECT_EQ(progress[0].body["status"], "received");
  EXPECT_EQ(progress[1].body["status"], "processing");
  EXPECT_EQ(progress[1].body["message"], "Processing in a");
  EXPECT_EQ(progress[2].body["status"], "completed");
  EXPECT_EQ(progress[2].body["current_actor_idx"], 0);
  EXPECT_TRUE(gateway_.Flushes().empty());  // the route goes on: no wait for the reports
}

TEST_F(SidecarRules, RuntimeTimeIsMeasuredOnTheClock) {
  runtime_.SetHandler([&](std::string_view req, MonoTime) -> Result<std::string> {
    clock_.Advance(milliseconds(1234));
    return EchoResponse(req);
  });
  Process(Env("m1", {"a", "b"}, 1));
  auto progress = Posts(PostKind::kProgress);
  ASSERT_EQ(progress.size(), 3u);
  EXPECT_EQ(progress[2].body["duration_ms"], 1234);
  EXPECT_EQ(progress[2].body["message"], "Completed processing in 1234ms");
}

TEST_F(SidecarRules, PastTheEndOfTheRouteGoesToHappyEnd) {
  size_t published_at_flush = 99;
  gateway_.on_flush = [&] { published_at_flush = transport_.Publishes().size(); };
  Process(Env("m1", {"a"}, 5));
  // The progress is flushed (all three reports posted) before the result leaves for happy-end,
  // so happy-end's final status cannot overtake it at the gateway.
  using Flush = std::pair<std::string, size_t>;
  EXPECT_EQ(gateway_.Flushes(), std::vector<Flush>{Flush("m1", 3)});
  EXPECT_EQ(published_at_flush, 0u);
  auto out = transport_.To("asya-happy-end");
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0]["route"]["current"], 1);
  EXPECT_EQ(out[0]["payload"], 5);
  ExpectSettled(Kind::kAck);
  EXPECT_EQ(metrics_.Count("sent", "asya-happy-end,happy_end"), 1);
  EXPECT_EQ(metrics_.Count("processed", "success"), 1);
}

TEST_F(SidecarRules, EmptyResultSendsTheOriginalEnvelopeToHappyEnd) {
  for (const char* empty : {"[]", "null"}) {
    runtime_.SetHandler([&](std::string_view, MonoTime) { return Result<std::string>(empty); });
    Process(Env(std::string("e-") + empty, {"a", "b"}, {{"keep", true}}));
  }
  auto out = transport_.To("asya-happy-end");
  ASSERT_EQ(out.size(), 2u);
  for (const auto& e : out) {
    EXPECT_EQ(e["route"]["current"], 0);  // not advanced
    EXPECT_EQ(e["payload"], json({{"keep", true}}));
  }
  EXPECT_EQ(transport_.Acks(), 2);
  EXPECT_EQ(metrics_.Count("processed", "empty_response"), 2);
  EXPECT_EQ(metrics_.Count("sent", "happy-end,happy_end"), 2);  // the bare-name quirk
  // No `completed` report is missing: an empty response completes the actor too.
  EXPECT_EQ(Posts(PostKind::kProgress).size(), 6u);
}

TEST_F(SidecarRules, FanOutGivesChildIdsAndReportsChildren) {
  runtime_.SetHandler([](std::string_view, MonoTime) {
    json r = json::array();
    for (int i = 0; i < 3; ++i) {
      r.push_back(
          {{"payload", i}, {"route", {{"actors", {"a", i == 2 ? "c" : "b"}}, {"current", 1}}}});
    }
    return Respond(r);
  });
  json in = Env("X", {"a", "b"}, 0);
  in["parent_id"] = "P";
  Process(in);
  auto pubs = transport_.Publishes();
  ASSERT_EQ(pubs.size(), 3u);
  EXPECT_EQ(pubs[0].queue, "asya-b");
  EXPECT_EQ(pubs[1].queue, "asya-b");
  EXPECT_EQ(pubs[2].queue, "asya-c");
  EXPECT_EQ(pubs[0].Json()["id"], "X");
  EXPECT_EQ(pubs[0].Json()["parent_id"], "P");
  EXPECT_EQ(pubs[1].Json()["id"], "X-1");
  EXPECT_EQ(pubs[1].Json()["parent_id"], "X");
  EXPECT_EQ(pubs[2].Json()["id"], "X-2");
  EXPECT_EQ(pubs[2].Json()["payload"], 2);
  ExpectSettled(Kind::kAck);
  auto children = Posts(PostKind::kFanout);
  ASSERT_EQ(children.size(), 2u);
  EXPECT_EQ(children[0].path, "/envelopes");
  EXPECT_EQ(children[0].body,
            json({{"id", "X-1"}, {"parent_id", "X"}, {"actors", {"a", "b"}}, {"current", 1}}));
  EXPECT_EQ(children[1].body["id"], "X-2");
}

TEST_F(SidecarRules, ErrorResponseGoesToErrorEndWithDetails) {
  runtime_.SetHandler([](std::string_view, MonoTime) {
    return Respond(ErrorItem("processing_error", "ValueError", "boom"));
  });
  Process(Env("m1", {"a", "b"}, {{"x", 1}}));
  json e = OnlyErrorEnd();
  EXPECT_EQ(e["id"], "m1");
  EXPECT_EQ(e["payload"]["error"], "processing_error");
  EXPECT_EQ(e["payload"]["details"]["message"], "boom");
  EXPECT_EQ(e["payload"]["details"]["type"], "ValueError");
  EXPECT_EQ(e["payload"]["original_payload"], json({{"x", 1}}));
  ExpectSettled(Kind::kAck);
  EXPECT_EQ(metrics_.Count("failed", "runtime_error"), 1);
  EXPECT_EQ(metrics_.Count("runtime_errors"), 0);  // an error response is not a call error
  EXPECT_EQ(metrics_.Count("sent", "error-end,error_end"), 1);
  EXPECT_EQ(Posts(PostKind::kProgress).size(), 2u);  // no `completed`
}

TEST_F(SidecarRules, ErrorAfterSuccessesInOneResponseIsAnError) {
  runtime_.SetHandler([](std::string_view req, MonoTime) {
    json r = json::parse(EchoResponse(req));
    r.push_back(ErrorItem("processing_error", "E", "second failed")[0]);
    return Respond(r);
  });
  Process(Env("m1", {"a", "b"}, 1));
  EXPECT_EQ(OnlyErrorEnd()["payload"]["details"]["message"], "second failed");
  EXPECT_TRUE(transport_.To("asya-b").empty());
}

TEST_F(SidecarRules, HeadersTravelOnAndCustomEndNamesAreUsed) {
  settings_.policy.happy_end = "done";
  settings_.policy.error_end = "oops";
  const std::string tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
  json in = Env("m1", {"a"}, 1);
  in["headers"] = {{"traceparent", tp}, {"x-asya-hops", 4}};
  Process(in);
  auto out = transport_.To("asya-done");
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0]["headers"]["traceparent"], tp);
  EXPECT_EQ(out[0]["headers"]["x-asya-hops"], 5);
  runtime_.SetHandler([](std::string_view, MonoTime) {
    return Respond(ErrorItem("processing_error", "E", "boom"));
  });
  Process(in);
  auto e = transport_.To("asya-oops");
  ASSERT_EQ(e.size(), 1u);
  EXPECT_EQ(e[0]["headers"]["traceparent"], tp);
  EXPECT_EQ(metrics_.Count("sent", "oops,error_end"), 1);
}

// ---- retries ----

TEST_F(SidecarRules, RetriesWithBackoffAndAttemptHeaderThenErrorEndWithHistory) {
  settings_.policy.retry_max_attempts = 3;
  settings_.policy.retry_backoff = milliseconds(1000);
  runtime_.SetHandler([](std::string_view, MonoTime) {
    return Respond(ErrorItem("processing_error", "IOError", "flaky"));
  });
  Process(Env("m1", {"a", "b"}, 7));
  auto first = transport_.Publishes();
  ASSERT_EQ(first.size(), 1u);
  EXPECT_EQ(first[0].queue, "asya-a");  // its own queue
  EXPECT_GE(first[0].options.delay, milliseconds(800));
  EXPECT_LT(first[0].options.delay, milliseconds(1200));
  json retry = first[0].Json();
  EXPECT_EQ(retry["headers"]["x-asya-attempt"], 2);
  EXPECT_EQ(retry["payload"], 7);
  ExpectSettled(Kind::kAck);
  EXPECT_EQ(metrics_.Count("sent", "asya-a,retry"), 1);

  Process(retry.dump());  // the retry, delivered again
  auto second = transport_.Publishes();
  ASSERT_EQ(second.size(), 2u);
  EXPECT_EQ(second[1].queue, "asya-a");
  EXPECT_GE(second[1].options.delay, milliseconds(1600));  // doubled
  EXPECT_LT(second[1].options.delay, milliseconds(2400));
  json retry2 = second[1].Json();
  EXPECT_EQ(retry2["headers"]["x-asya-attempt"], 3);

  Process(retry2.dump());  // the last attempt fails too
  auto e = transport_.To("asya-error-end");
  ASSERT_EQ(e.size(), 1u);
  EXPECT_EQ(e[0]["payload"]["error"], "processing_error");
  ASSERT_EQ(e[0]["payload"]["attempts"].size(), 3u);
  EXPECT_EQ(e[0]["payload"]["attempts"][2]["attempt"], 3);
  EXPECT_EQ(e[0]["payload"]["original_payload"], 7);
  EXPECT_EQ(transport_.Acks(), 3);
  EXPECT_EQ(runtime_.calls, 3);
  EXPECT_EQ(metrics_.Count("failed", "runtime_error"), 1);  // only the final failure
}

TEST_F(SidecarRules, NonRetryableErrorGoesToErrorEndAtOnce) {
  settings_.policy.retry_max_attempts = 3;
  settings_.policy.non_retryable = {"ValueError"};
  runtime_.SetHandler([](std::string_view, MonoTime) {
    return Respond(ErrorItem("processing_error", "ValueError", "bad input"));
  });
  Process(Env("m1", {"a", "b"}, 1));
  json e = OnlyErrorEnd();
  EXPECT_EQ(e["payload"]["details"]["type"], "ValueError");
  EXPECT_EQ(transport_.To("asya-a").size(), 0u);
  ExpectSettled(Kind::kAck);
}

TEST_F(SidecarRules, SuccessAfterARetryDropsTheAttemptHeaders) {
  settings_.policy.retry_max_attempts = 2;
  json in = Env("m1", {"a", "b"}, 1);
  in["headers"] = {{"x-asya-attempt", 2},
                   {"x-asya-attempt-history", json::array({{{"attempt", 1}}})}};
  Process(in);
  auto out = transport_.To("asya-b");
  ASSERT_EQ(out.size(), 1u);
  EXPECT_FALSE(out[0]["headers"].contains("x-asya-attempt"));
  EXPECT_FALSE(out[0]["headers"].contains("x-asya-attempt-history"));
}

TEST_F(SidecarRules, MsgParsingErrorIsNeverRetried) {
  settings_.policy.retry_max_attempts = 3;
  runtime_.SetHandler([](std::string_view, MonoTime) {
    return Respond(ErrorItem("msg_parsing_error", "ValueError", "bad envelope"));
  });
  Process(Env("m1", {"a", "b"}, 1));
  EXPECT_EQ(OnlyErrorEnd()["payload"]["error"], "msg_parsing_error");
}

// ---- runtime call failures and the readiness gate ----

TEST_F(SidecarRules, TimeoutGoesToErrorEndAndWaitsForTheRuntimeToRestart) {
  runtime_.SetHandler([&](std::string_view, MonoTime deadline) -> Result<std::string> {
    EXPECT_EQ(deadline, clock_.Now() + seconds(30));  // ASYA_RUNTIME_TIMEOUT from now
    clock_.Advance(seconds(30));
    return MakeError(ErrorCode::kDeadlineExceeded, "runtime call timed out");
  });
  Process(Env("slow", {"a", "b"}, 1));
  json e = OnlyErrorEnd();
  EXPECT_EQ(e["payload"]["error"], "Runtime timeout exceeded after 30s");
  ExpectSettled(Kind::kAck);
  EXPECT_EQ(metrics_.Count("runtime_errors"), 1);
  EXPECT_EQ(metrics_.Count("failed", "runtime_error"), 1);

  // The timed-out runtime exits on its own: the next message first waits (up to 2 s) for it to
  // go away, then for it to be ready again, and drops pooled connections.
  const int probes = runtime_.ready_probes;
  const int resets = runtime_.resets;
  int seen = 0;
  runtime_.ready_hook = [&] { return ++seen > 3 && seen != 5; };  // gone once, then back
  runtime_.SetHandler(Echo);
  Process(Env("next", {"a", "b"}, 1));
  EXPECT_EQ(transport_.To("asya-b").size(), 1u);
  EXPECT_GT(runtime_.ready_probes, probes);
  EXPECT_GT(runtime_.resets, resets);
  EXPECT_EQ(transport_.Acks(), 2);
}

TEST_F(SidecarRules, CallThatLastsTheWholeTimeoutIsATimeout) {
  // A runtime enforcing the same timeout exits (EOF) just as our deadline fires.
  runtime_.SetHandler([&](std::string_view, MonoTime) -> Result<std::string> {
    clock_.Advance(seconds(30));
    return MakeError(ErrorCode::kUnavailable, "failed to read response from runtime: EOF");
  });
  Process(Env("slow", {"a", "b"}, 1));
  EXPECT_EQ(OnlyErrorEnd()["payload"]["error"], "Runtime timeout exceeded after 30s");
}

TEST_F(SidecarRules, RuntimeDiedMidMessageGoesToErrorEndAndTheGateCloses) {
  runtime_.SetHandler([](std::string_view, MonoTime) -> Result<std::string> {
    return MakeError(ErrorCode::kUnavailable, "failed to read response from runtime: EOF");
  });
  Process(Env("m1", {"a", "b"}, {{"x", 1}}));
  json e = OnlyErrorEnd();
  EXPECT_EQ(e["payload"]["error"], "failed to read response from runtime: EOF");
  EXPECT_EQ(e["payload"]["original_payload"], json({{"x", 1}}));
  ExpectSettled(Kind::kAck);
  EXPECT_EQ(metrics_.Count("runtime_errors"), 1);

  // The next message waits until the restarted runtime is ready (polled on the clock).
  runtime_.ready = false;
  int probes = 0;
  runtime_.ready_hook = [&] { return ++probes > 4; };
  runtime_.SetHandler(Echo);
  const auto before = clock_.Now();
  Process(Env("m2", {"a", "b"}, 1));
  EXPECT_EQ(probes, 5);
  EXPECT_GE(clock_.Now() - before, milliseconds(400));  // four 100 ms polls
  EXPECT_EQ(transport_.To("asya-b").size(), 1u);
}

TEST_F(SidecarRules, RuntimeDiedIsRetriedWhileAttemptsRemain) {
  settings_.policy.retry_max_attempts = 2;
  runtime_.SetHandler([](std::string_view, MonoTime) -> Result<std::string> {
    return MakeError(ErrorCode::kUnavailable, "failed to read response from runtime: EOF");
  });
  Process(Env("m1", {"a", "b"}, 1));
  auto out = transport_.To("asya-a");
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0]["headers"]["x-asya-attempt"], 2);
  EXPECT_EQ(metrics_.Count("runtime_errors"), 1);
}

TEST_F(SidecarRules, ConnectFailuresWaitForTheRuntimeWithoutUsingAnAttempt) {
  int calls = 0;
  runtime_.SetHandler([&](std::string_view req, MonoTime) -> Result<std::string> {
    if (++calls <= 2) {
      return MakeError(ErrorCode::kUnavailable, "failed to connect to runtime socket: refused");
    }
    return EchoResponse(req);
  });
  Process(Env("m1", {"a", "b"}, 1));
  EXPECT_EQ(transport_.To("asya-b").size(), 1u);
  EXPECT_EQ(runtime_.calls, 3);
  EXPECT_EQ(metrics_.Count("runtime_errors"), 0);
}

TEST_F(SidecarRules, ConnectFailingFourTimesIsACallError) {
  runtime_.SetHandler([](std::string_view, MonoTime) -> Result<std::string> {
    return MakeError(ErrorCode::kUnavailable, "failed to connect to runtime socket: refused");
  });
  Process(Env("m1", {"a", "b"}, 1));
  EXPECT_EQ(runtime_.calls, 4);
  EXPECT_EQ(OnlyErrorEnd()["payload"]["error"], "failed to connect to runtime socket: refused");
}

TEST_F(SidecarRules, UnparsableRuntimeResponseIsACallError) {
  runtime_.SetHandler([](std::string_view, MonoTime) { return Result<std::string>("{\"no\":1}"); });
  Process(Env("m1", {"a", "b"}, 1));
  const std::string error = OnlyErrorEnd()["payload"]["error"];
  EXPECT_EQ(error.rfind("failed to parse runtime response: ", 0), 0u) << error;
  EXPECT_EQ(metrics_.Count("runtime_errors"), 1);
}

// Every error envelope has one shape: payload.error (the original's strings) plus
// payload.details.type and payload.details.message (docs/sidecar.md "Error envelopes").
TEST_F(SidecarRules, ErrorEnvelopesOfEveryKindCarryTypeAndMessage) {
  struct Case {
    const char* name;
    std::function<Result<std::string>(std::string_view, MonoTime)> handler;
    std::string body;
    std::string type;
  };
  const std::string ok_body = Env("m1", {"a", "b"}, 1).dump();
  std::vector<Case> cases = {
      {"timeout",
       [&](std::string_view, MonoTime) -> Result<std::string> {
         clock_.Advance(seconds(30));
         return MakeError(ErrorCode::kDeadlineExceeded, "runtime call timed out");
       },
       ok_body, "RuntimeTimeout"},
      {"EOF",
       [](std::string_view, MonoTime) -> Result<std::string> {
         return MakeError(
             ErrorCode::kUnavailable,
             "failed to read response from runtime: failed to read length prefix: EOF");
       },
       ok_body, "RuntimeCallError"},
      {"processing_error",
       [](std::string_view, MonoTime) {
         return Respond(ErrorItem("processing_error", "KeyError", "k"));
       },
       ok_body, "KeyError"},
      {"unparsable response",
       [](std::string_view, MonoTime) { return Result<std::string>("{\"no\":1}"); }, ok_body,
       "InvalidRuntimeResponse"},
      {"unparsable body", Echo, "{not json", "ParseError"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    const size_t before = transport_.To("asya-error-end").size();
    runtime_.SetHandler(c.handler);
    sidecar_.reset();  // a fresh sidecar: the runtime gate of the previous case is not shared
    Process(c.body);
    auto out = transport_.To("asya-error-end");
    ASSERT_EQ(out.size(), before + 1);
    json e = out.back();
    ASSERT_TRUE(e["payload"]["error"].is_string());
    EXPECT_EQ(e["payload"]["details"]["type"], c.type);
    ASSERT_TRUE(e["payload"]["details"]["message"].is_string());
    if (c.type != "KeyError") {
      EXPECT_EQ(e["payload"]["details"]["message"], e["payload"]["error"]);
    } else {
      EXPECT_EQ(e["payload"]["details"]["message"], "k");
    }
  }
}

// ---- checks before the runtime (it is never called) ----

TEST_F(SidecarRules, UnparsableBodyGoesToErrorEnd) {
  Process(std::string("{not json"));
  json e = OnlyErrorEnd();
  EXPECT_EQ(e["id"], "");
  const std::string error = e["payload"]["error"];
  EXPECT_EQ(error.rfind("Failed to parse message: ", 0), 0u) << error;
  ExpectSettled(Kind::kAck);
  EXPECT_EQ(runtime_.calls, 0);
  EXPECT_EQ(metrics_.Count("failed", "parse_error"), 1);
  EXPECT_TRUE(gateway_.Posts().empty());
}

TEST_F(SidecarRules, MissingIdGoesToErrorEnd) {
  Process(json({{"route", {{"actors", {"a"}}, {"current", 0}}}, {"payload", 1}}));
  EXPECT_EQ(OnlyErrorEnd()["payload"]["error"], "Envelope missing required 'id' field");
  EXPECT_EQ(metrics_.Count("failed", "validation_error"), 1);
  EXPECT_EQ(runtime_.calls, 0);
}

TEST_F(SidecarRules, RouteMismatchGoesToErrorEnd) {
  Process(Env("m1", {"a", "b"}, 1, /*current=*/1));
  EXPECT_EQ(OnlyErrorEnd()["payload"]["error"],
            "Route mismatch: message routed to wrong actor (expected: a, actual: b)");
  EXPECT_EQ(metrics_.Count("failed", "route_mismatch"), 1);
  EXPECT_EQ(runtime_.calls, 0);
}

TEST_F(SidecarRules, HopLimitGoesToErrorEnd) {
  settings_.policy.max_hops = 10;
  json in = Env("m1", {"a", "b"}, 1);
  in["headers"] = {{"x-asya-hops", 10}};
  Process(in);
  EXPECT_EQ(OnlyErrorEnd()["payload"]["error"], "hop limit exceeded");
  EXPECT_EQ(metrics_.Count("failed", "hop_limit_exceeded"), 1);
  EXPECT_EQ(runtime_.calls, 0);
}

TEST_F(SidecarRules, DeadlineIsJudgedOnTheClock) {
  // ManualClock starts at 2023-11-14T22:13:20Z.
  json in = Env("m1", {"a", "b"}, 1);
  in["deadline"] = "2023-11-14T22:13:21Z";
  Process(in);
  EXPECT_EQ(transport_.To("asya-b").size(), 1u);  // one second left: processed
  EXPECT_EQ(transport_.To("asya-b")[0]["deadline"], "2023-11-14T22:13:21Z");
  clock_.Advance(seconds(2));
  Process(in);
  auto e = transport_.To("asya-error-end");
  ASSERT_EQ(e.size(), 1u);
  EXPECT_EQ(e[0]["payload"]["error"], "deadline exceeded");
  EXPECT_EQ(metrics_.Count("failed", "deadline_exceeded"), 1);
  EXPECT_EQ(runtime_.calls, 1);
}

TEST_F(SidecarRules, MalformedDeadlineGoesToErrorEnd) {
  json in = Env("m1", {"a", "b"}, 1);
  in["deadline"] = "tomorrow";
  Process(in);
  const std::string error = OnlyErrorEnd()["payload"]["error"];
  EXPECT_EQ(error.rfind("Invalid deadline 'tomorrow'", 0), 0u) << error;
  EXPECT_EQ(metrics_.Count("failed", "validation_error"), 1);
  EXPECT_EQ(runtime_.calls, 0);
}

TEST_F(SidecarRules, AtTheDeliveryLimitTheMessageIsStillProcessed) {
  settings_.policy.max_deliveries = 5;
  Process(Env("m1", {"a", "b"}, 1), /*delivery_count=*/5);
  EXPECT_EQ(transport_.To("asya-b").size(), 1u);
  EXPECT_EQ(runtime_.calls, 1);
}

TEST_F(SidecarRules, MaxDeliveriesDeadLettersWithTheReason) {
  settings_.policy.max_deliveries = 5;
  Process(Env("m1", {"a", "b"}, 1), /*delivery_count=*/6);
  auto pubs = transport_.Publishes();
  ASSERT_EQ(pubs.size(), 1u);
  EXPECT_EQ(pubs[0].queue, "asya-a-dlq");
  EXPECT_EQ(pubs[0].options.headers.at("x-asya-deliveries"), "6");
  EXPECT_NE(pubs[0].options.headers.at("x-asya-dlq-reason").find("max deliveries exceeded"),
            std::string::npos);
  EXPECT_EQ(pubs[0].Json()["headers"]["x-asya-deliveries"], 6);
  ExpectSettled(Kind::kAck);
  EXPECT_EQ(runtime_.calls, 0);
  EXPECT_EQ(metrics_.Count("failed", "dead_lettered"), 1);
  EXPECT_EQ(metrics_.Count("sent", "asya-a-dlq,dead_letter"), 1);
}

TEST_F(SidecarRules, OversizeMessageGoesToErrorEndWithoutItsPayload) {
  settings_.policy.max_message_bytes = 1024;
  Process(Env("big", {"a", "b"}, std::string(2000, 'x')));
  json e = OnlyErrorEnd();
  EXPECT_EQ(e["id"], "big");
  const std::string error = e["payload"]["error"];
  EXPECT_NE(error.find("exceeds ASYA_MAX_MESSAGE_BYTES=1024"), std::string::npos) << error;
  EXPECT_FALSE(e["payload"].contains("original_payload"));
  EXPECT_EQ(metrics_.Count("failed", "validation_error"), 1);
  EXPECT_EQ(runtime_.calls, 0);
}

TEST_F(SidecarRules, ResultOverTheMessageLimitGoesToErrorEnd) {
  settings_.policy.max_message_bytes = 2048;
  runtime_.SetHandler([](std::string_view req, MonoTime) {
    json r = json::parse(EchoResponse(req));
    r[0]["payload"] = std::string(4096, 'x');
    return Respond(r);
  });
  Process(Env("too-big", {"a", "b"}, "small"));
  json e = OnlyErrorEnd();
  const std::string error = e["payload"]["error"];
  EXPECT_NE(error.find("Result too large"), std::string::npos) << error;
  EXPECT_EQ(e["payload"]["original_payload"], "small");
  EXPECT_EQ(metrics_.Count("failed", "routing_error"), 1);
  ExpectSettled(Kind::kAck);
}

// ---- publishing fails ----

TEST_F(SidecarRules, FailedPublishNacksAndNeverAcks) {
  transport_.SetPublishHook([](std::string_view) -> std::optional<Error> {
    return Error{ErrorCode::kUnavailable, "broker away"};
  });
  Process(Env("m1", {"a", "b"}, 1));
  ExpectSettled(Kind::kNack);
  EXPECT_EQ(transport_.Settles()[0].delay, milliseconds(1000));  // publish_failure_nack_delay
  EXPECT_TRUE(transport_.Publishes().empty());
  EXPECT_EQ(metrics_.Count("failed", "routing_error"), 1);
  EXPECT_EQ(metrics_.Count("processed", "success"), 0);
}

TEST_F(SidecarRules, FanOutPublishFailingHalfWayNacks) {
  runtime_.SetHandler([](std::string_view req, MonoTime) {
    json one = json::parse(EchoResponse(req))[0];
    return Respond(json::array({one, one, one}));
  });
  int n = 0;
  transport_.SetPublishHook([&](std::string_view) -> std::optional<Error> {
    if (++n == 2) {
      return Error{ErrorCode::kUnavailable, "broker away"};
    }
    return std::nullopt;
  });
  Process(Env("X", {"a", "b"}, 1));
  EXPECT_EQ(transport_.Publishes().size(), 1u);  // the first went out before the failure
  EXPECT_EQ(metrics_.Count("sent", "asya-b,routing"), 1);
  ExpectSettled(Kind::kNack);
}

TEST_F(SidecarRules, PermanentPublishErrorGoesToErrorEndAndAcks) {
  transport_.SetPublishHook([](std::string_view q) -> std::optional<Error> {
    if (q == "asya-b") {
      return Error{ErrorCode::kInvalidArgument, "message too large for the broker"};
    }
    return std::nullopt;
  });
  Process(Env("m1", {"a", "b"}, {{"x", 1}}));
  json e = OnlyErrorEnd();
  EXPECT_EQ(e["payload"]["error"], "failed to publish to asya-b: message too large for the broker");
  EXPECT_EQ(e["payload"]["original_payload"], json({{"x", 1}}));
  ExpectSettled(Kind::kAck);
  EXPECT_EQ(metrics_.Count("failed", "routing_error"), 1);
  EXPECT_EQ(metrics_.Count("processed", "success"), 0);
}

TEST_F(SidecarRules, PermanentPublishErrorWithErrorEndDownNacks) {
  transport_.SetPublishHook([](std::string_view q) -> std::optional<Error> {
    if (q == "asya-b") {
      return Error{ErrorCode::kInvalidArgument, "invalid queue name"};
    }
    return Error{ErrorCode::kUnavailable, "broker away"};
  });
  Process(Env("m1", {"a", "b"}, 1));
  EXPECT_TRUE(transport_.Publishes().empty());
  ExpectSettled(Kind::kNack);
  EXPECT_EQ(metrics_.Count("failed", "error_queue_send_failed"), 1);
}

TEST_F(SidecarRules, FailedErrorEndPublishNacks) {
  runtime_.SetHandler([](std::string_view, MonoTime) {
    return Respond(ErrorItem("processing_error", "E", "boom"));
  });
  transport_.SetPublishHook([](std::string_view) -> std::optional<Error> {
    return Error{ErrorCode::kUnavailable, "broker away"};
  });
  Process(Env("m1", {"a", "b"}, 1));
  ExpectSettled(Kind::kNack);
  EXPECT_EQ(metrics_.Count("failed", "error_queue_send_failed"), 1);
}

// ---- large messages (the parsed payload is dropped during the call) ----

TEST_F(SidecarRules, LargeMessagesKeepTheirPayloadOnEveryPath) {
  const std::string big((1u << 20) + 100, 'y');
  runtime_.SetHandler([](std::string_view req, MonoTime) -> Result<std::string> {
    json env = json::parse(req);
    if (env["payload"]["fail"].get<bool>()) {
      return Respond(ErrorItem("processing_error", "E", "boom"));
    }
    return EchoResponse(req);
  });
  Process(Env("big-ok", {"a", "b"}, {{"fail", false}, {"s", big}}));
  Process(Env("big-fail", {"a", "b"}, {{"fail", true}, {"s", big}}));
  auto routed = transport_.To("asya-b");
  ASSERT_EQ(routed.size(), 1u);
  EXPECT_EQ(routed[0]["payload"]["s"], big);
  auto failed = transport_.To("asya-error-end");
  ASSERT_EQ(failed.size(), 1u);
  EXPECT_EQ(failed[0]["payload"]["original_payload"]["s"], big);
  EXPECT_EQ(transport_.Acks(), 2);
}

TEST_F(SidecarRules, LargeMessageWithPermanentPublishErrorKeepsItsPayload) {
  const std::string big((1u << 20) + 100, 'z');
  transport_.SetPublishHook([](std::string_view q) -> std::optional<Error> {
    if (q == "asya-b") {
      return Error{ErrorCode::kInvalidArgument, "too large"};
    }
    return std::nullopt;
  });
  Process(Env("big", {"a", "b"}, big));
  json e = OnlyErrorEnd();
  EXPECT_EQ(e["payload"]["original_payload"], big);
  ExpectSettled(Kind::kAck);
}

// Where the transport keeps the body (SQLite), a large message's body is freed during the call
// and read back only on the paths that need the original payload.
TEST_F(SidecarRules, LargeBodiesAreReadBackOnlyWhenAnOutcomeNeedsThem) {
  transport_.KeepBodies(true);
  const std::string big((1u << 20) + 100, 'y');
  runtime_.SetHandler([](std::string_view req, MonoTime) -> Result<std::string> {
    json env = json::parse(req);
    if (env["payload"]["fail"].get<bool>()) {
      return Respond(ErrorItem("processing_error", "E", "boom"));
    }
    return EchoResponse(req);
  });
  Process(Env("big-ok", {"a", "b"}, {{"fail", false}, {"s", big}}));
  EXPECT_EQ(runtime_.releasing_calls, 1);
  EXPECT_EQ(transport_.BodyReads(), 0) << "the success path needs no body";
  Process(Env("big-fail", {"a", "b"}, {{"fail", true}, {"s", big}}));
  EXPECT_EQ(transport_.BodyReads(), 1);
  auto routed = transport_.To("asya-b");
  ASSERT_EQ(routed.size(), 1u);
  EXPECT_EQ(routed[0]["id"], "big-ok");
  EXPECT_EQ(routed[0]["route"]["current"], 1);
  EXPECT_EQ(routed[0]["payload"]["s"], big);
  auto failed = transport_.To("asya-error-end");
  ASSERT_EQ(failed.size(), 1u);
  EXPECT_EQ(failed[0]["payload"]["original_payload"]["s"], big);
  EXPECT_EQ(transport_.Acks(), 2);
}

TEST_F(SidecarRules, LargeBodyIsReadBackForAPermanentPublishError) {
  transport_.KeepBodies(true);
  const std::string big((1u << 20) + 100, 'z');
  transport_.SetPublishHook([](std::string_view q) -> std::optional<Error> {
    if (q == "asya-b") {
      return Error{ErrorCode::kInvalidArgument, "too large"};
    }
    return std::nullopt;
  });
  Process(Env("big", {"a", "b"}, big));
  json e = OnlyErrorEnd();
  EXPECT_EQ(e["payload"]["original_payload"], big);
  EXPECT_EQ(transport_.BodyReads(), 1);
  ExpectSettled(Kind::kAck);
}

// A body that cannot be read back (its receipt went stale, the database is away) publishes
// nothing: the message is nacked and comes back whole.
TEST_F(SidecarRules, UnreadableBodyAfterAFailedCallNacks) {
  transport_.KeepBodies(true);
  transport_.FailReadBody(true);
  runtime_.SetHandler([](std::string_view, MonoTime) -> Result<std::string> {
    return Respond(ErrorItem("processing_error", "E", "boom"));
  });
  const std::string big((1u << 20) + 100, 'q');
  const std::string body = Env("big", {"a", "b"}, big).dump();
  Process(body);
  EXPECT_TRUE(transport_.Publishes().empty());
  ExpectSettled(Kind::kNack);
  EXPECT_EQ(transport_.Settles().back().delay, settings_.publish_failure_nack_delay);
  ASSERT_EQ(transport_.Ready("asya-a"), 1u);
  auto back = transport_.Receive("asya-a", {.max_messages = 1, .wait = milliseconds(0)});
  ASSERT_TRUE(back.has_value());
  ASSERT_EQ(back->size(), 1u);
  EXPECT_TRUE(back->front().body == body) << "the nacked message lost its body";
}

// A large message that fails its checks before the call (its payload was not parsed out of the
// body) still carries its payload to error-end.
TEST_F(SidecarRules, LargeMessageFailingItsChecksKeepsItsPayload) {
  const std::string big((1u << 20) + 100, 'r');
  Process(Env("big", {"x", "b"}, big));  // routed to x, received by a
  json e = OnlyErrorEnd();
  EXPECT_EQ(e["payload"]["original_payload"], big);
  EXPECT_EQ(runtime_.calls, 0);
  ExpectSettled(Kind::kAck);
}

// ---- end actors ----

class EndActorRules : public SidecarRules {
 protected:
  void SetUp() override {
    settings_.policy.is_end_actor = true;
    settings_.policy.actor = "happy-end";
    runtime_.SetHandler([](std::string_view, MonoTime) {
      return Respond(json::array({{{"payload", {{"stored", true}}}}}));
    });
  }
  json Final() {
    auto finals = Posts(PostKind::kFinal);
    EXPECT_EQ(finals.size(), 1u);
    return finals.empty() ? json() : finals[0].body;
  }
};

TEST_F(EndActorRules, HappyEndAcksPublishesNothingAndPostsSucceeded) {
  Process(Env("m1", {"a", "b"}, 1, /*current=*/2));
  ExpectSettled(Kind::kAck);
  EXPECT_TRUE(transport_.Publishes().empty());
  EXPECT_EQ(metrics_.Count("processed", "end_consumed"), 1);
  json f = Final();
  EXPECT_EQ(Posts(PostKind::kFinal)[0].path, "/envelopes/m1/final");
  EXPECT_EQ(f["status"], "succeeded");
  EXPECT_EQ(f["result"], json({{"stored", true}}));
  EXPECT_EQ(f["timestamp"], "2023-11-14T22:13:20Z");  // from the clock
  EXPECT_TRUE(Posts(PostKind::kProgress).empty());
}

TEST_F(EndActorRules, AFanOutChildsFinalStatusIsPostedAsAChildsFinal) {
  json in = Env("m1-2", {"a", "b"}, 1, /*current=*/2);
  in["parent_id"] = "m1";
  Process(in);
  ExpectSettled(Kind::kAck);
  EXPECT_TRUE(Posts(PostKind::kFinal).empty());  // kFinal: envelopes without a parent only
  auto finals = Posts(PostKind::kChildFinal);
  ASSERT_EQ(finals.size(), 1u);
  EXPECT_EQ(finals[0].path, "/envelopes/m1-2/final");
  EXPECT_EQ(finals[0].body["status"], "succeeded");
}

TEST_F(EndActorRules, HappyEndWithoutAResultPayloadReportsTheIncomingPayload) {
  runtime_.SetHandler(
      [](std::string_view, MonoTime) { return Respond(json::array({json::object()})); });
  const std::string big((1u << 20) + 10, 'q');  // large: its parsed payload was dropped
  Process(Env("m1", {"a"}, {{"answer", big}}, 1));
  EXPECT_EQ(Final()["result"], json({{"answer", big}}));
}

TEST_F(EndActorRules, ErrorEndPostsFailedWithTheError) {
  settings_.policy.actor = "error-end";
  json in = Env("m1", {"a", "b"}, {{"error", "boom"}, {"details", {{"type", "E"}}}}, 1);
  Process(in);
  ExpectSettled(Kind::kAck);
  json f = Final();
  EXPECT_EQ(f["status"], "failed");
  EXPECT_EQ(f["error"], "boom");
  EXPECT_EQ(f["error_details"], json({{"type", "E"}}));
  EXPECT_EQ(f["current_actor_name"], "b");
}

TEST_F(EndActorRules, TheCrewsRouteMetadataGoesToTheGatewayWithTheIncomingPayload) {
  // asya-crew answers {"route": {..., "metadata": {"s3_uri": ...}}} without a payload.
  runtime_.SetHandler([](std::string_view, MonoTime) {
    return Respond(json::array({{{"route",
                                  {{"actors", {"a"}},
                                   {"current", 1},
                                   {"metadata", {{"job_id", "m1"}, {"s3_uri", "s3://b/k"}}}}}}}));
  });
  Process(Env("m1", {"a"}, {{"answer", 42}}, 1));
  json f = Final();
  EXPECT_EQ(f["result"], json({{"answer", 42}}));
  EXPECT_EQ(f["metadata"]["s3_uri"], "s3://b/k");
  EXPECT_EQ(f["metadata"]["job_id"], "m1");
}

TEST_F(EndActorRules, NoMetadataKeyWithoutRouteMetadata) {
  Process(Env("m1", {"a"}, 1, 1));
  EXPECT_FALSE(Final().contains("metadata"));
}

TEST_F(EndActorRules, ErrorEndPassesAnEnvelopeWithoutIdToItsRuntime) {
  settings_.policy.actor = "error-end";
  runtime_.SetHandler([](std::string_view, MonoTime) { return Respond(json(nullptr)); });
  Process(json({{"id", ""},
                {"route", {{"actors", {"error-end"}}, {"current", 0}}},
                {"payload", {{"error", "Failed to parse message: x"}}}}));
  EXPECT_EQ(runtime_.calls, 1);
  ExpectSettled(Kind::kAck);
  EXPECT_TRUE(transport_.Publishes().empty());
  EXPECT_TRUE(Posts(PostKind::kFinal).empty());  // no id: nothing the gateway could know
}

TEST_F(EndActorRules, RuntimeFailureNacksWithBackoff) {
  settings_.policy.retry_backoff = milliseconds(1000);
  runtime_.SetHandler([](std::string_view, MonoTime) -> Result<std::string> {
    return MakeError(ErrorCode::kUnavailable, "failed to read response from runtime: EOF");
  });
  Process(Env("m1", {"a"}, 1), /*delivery_count=*/2);
  ExpectSettled(Kind::kNack);
  EXPECT_EQ(transport_.Settles()[0].delay, milliseconds(2000));
  EXPECT_TRUE(transport_.Publishes().empty());
  EXPECT_EQ(metrics_.Count("runtime_errors"), 1);
  EXPECT_EQ(metrics_.Count("failed", "runtime_error"), 1);
  EXPECT_TRUE(gateway_.Posts().empty());
}

TEST_F(EndActorRules, TimeoutNacks) {
  runtime_.SetHandler([&](std::string_view, MonoTime) -> Result<std::string> {
    clock_.Advance(seconds(30));
    return MakeError(ErrorCode::kDeadlineExceeded, "runtime call timed out");
  });
  Process(Env("m1", {"a"}, 1));
  ExpectSettled(Kind::kNack);
  EXPECT_TRUE(transport_.Publishes().empty());
  EXPECT_EQ(metrics_.Count("runtime_errors"), 1);
}

TEST_F(EndActorRules, MissingIdGoesToItsOwnDeadLetterQueue) {
  Process(json({{"route", {{"actors", {"a"}}, {"current", 1}}}, {"payload", 1}}));
  auto out = transport_.To("asya-happy-end-dlq");
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(transport_.Publishes().size(), 1u);
  EXPECT_EQ(metrics_.Count("failed", "validation_error"), 1);
  EXPECT_EQ(runtime_.calls, 0);
}

TEST_F(EndActorRules, ErrorResponseNacks) {
  runtime_.SetHandler([](std::string_view, MonoTime) {
    return Respond(ErrorItem("processing_error", "IOError", "store down"));
  });
  Process(Env("m1", {"a"}, 1));
  ExpectSettled(Kind::kNack);
  EXPECT_EQ(metrics_.Count("runtime_errors"), 0);
}

TEST_F(EndActorRules, UnparsableGoesToItsOwnDeadLetterQueue) {
  Process(std::string("{oops"));
  auto pubs = transport_.Publishes();
  ASSERT_EQ(pubs.size(), 1u);
  EXPECT_EQ(pubs[0].queue, "asya-happy-end-dlq");
  EXPECT_EQ(pubs[0].body, "{oops");
  ExpectSettled(Kind::kAck);
  EXPECT_EQ(runtime_.calls, 0);
}

TEST_F(EndActorRules, DeadLetteringPostsFinalFailed) {
  settings_.policy.max_deliveries = 3;
  Process(Env("m1", {"a"}, 1), /*delivery_count=*/4);
  EXPECT_EQ(transport_.To("asya-happy-end-dlq").size(), 1u);
  json f = Final();
  EXPECT_EQ(f["status"], "failed");
  const std::string error = f["error"];
  EXPECT_EQ(error.rfind("dead-lettered by happy-end: max deliveries exceeded", 0), 0u) << error;
}

// ---- shutdown ----

TEST_F(SidecarRules, ShutdownDuringTheCallRequeuesUntouched) {
  runtime_.SetHandler([&](std::string_view, MonoTime) -> Result<std::string> {
    sidecar_->Shutdown();
    return MakeError(ErrorCode::kUnavailable, "failed to read response from runtime: EOF");
  });
  Process(Env("m1", {"a", "b"}, 1));
  ExpectSettled(Kind::kRequeue);
  EXPECT_TRUE(transport_.Publishes().empty());
  EXPECT_EQ(metrics_.Count("runtime_errors"), 0);
}

TEST_F(SidecarRules, MessageAfterShutdownIsRequeuedWithoutCallingTheRuntime) {
  Make().Shutdown();
  Process(Env("m1", {"a", "b"}, 1));
  ExpectSettled(Kind::kRequeue);
  EXPECT_EQ(runtime_.calls, 0);
}

// ---- the real metrics registry: names and labels as reference-dataplane §7 ----

TEST_F(SidecarRules, MetricLabelsAreTheReferenceOnes) {
  Metrics metrics({"asya_actor", "a", "fake"});
  Sidecar sidecar(settings_, transport_, runtime_, &metrics, nullptr, clock_);
  sidecar.ProcessOne(transport_.Message(Env("ok", {"a", "b"}, 1).dump()));
  runtime_.SetHandler([](std::string_view, MonoTime) { return Result<std::string>("[]"); });
  sidecar.ProcessOne(transport_.Message(Env("empty", {"a", "b"}, 1).dump()));
  sidecar.ProcessOne(transport_.Message("{bad"));
  const std::string text = metrics.Render();
  for (const char* line : {
           "asya_actor_messages_processed_total{queue=\"a\",status=\"success\"} 1\n",
           "asya_actor_messages_processed_total{queue=\"a\",status=\"empty_response\"} 1\n",
           "asya_actor_messages_failed_total{queue=\"a\",reason=\"parse_error\"} 1\n",
           "asya_actor_messages_sent_total{destination_queue=\"asya-b\","
           "message_type=\"routing\"} 1\n",
       }) {
    EXPECT_NE(text.find(line), std::string::npos) << line << "\n" << text;
  }
}

}  // namespace
}  // namespace asya::sidecar
