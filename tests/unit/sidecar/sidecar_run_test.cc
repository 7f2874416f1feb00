// The threaded loop (Sidecar::Run) with fakes: workers and concurrency, the visibility heartbeat,
// receive errors, the readiness gate at startup and the shutdown drain. Waits are event-driven
// (the fakes signal what happened); the rules of single messages are in sidecar_rules_test.cc.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "asya/base/clock.h"
#include "asya/sidecar/sidecar.h"
#include "unit/sidecar/sidecar_fakes.h"

namespace asya::sidecar {
namespace {

using namespace asya::sidecar::testing;  // NOLINT(google-build-using-namespace)
using std::chrono::milliseconds;
using MonoTime = std::chrono::steady_clock::time_point;

json Env(const std::string& id, std::vector<std::string> actors, json payload) {
  return {{"id", id}, {"route", {{"actors", actors}, {"current", 0}}}, {"payload", payload}};
}

class SidecarRun : public ::testing::Test {
 protected:
  SidecarRun() : runtime_(Echo) {
    settings_.policy.actor = "a";
    settings_.socket_path = "/fake/asya-runtime.sock";
    settings_.receive_wait = milliseconds(20'000);  // Interrupt() ends it at shutdown
    settings_.shutdown_timeout = milliseconds(5'000);
  }

  // Ends the oldest pending async settle (FakeTransport::FinishSettle) on a thread of its own, as
  // the transport's I/O thread would.
  void FinishSettleOnIoThread(std::optional<Error> failure = std::nullopt) {
    std::thread io([&] { EXPECT_TRUE(transport_.FinishSettle(std::move(failure))); });
    io.join();
  }

  // A message whose runtime call outlasts the shutdown grace period: the drain requeues it,
  // Drained() says the process must not run destructors, and the late answer, arriving after
  // the Sidecar is gone, keeps the sidecar's state alive (ASan/TSan builds catch a use after free
  // here) and is dropped.
  void ExpectGracePeriodRequeuesAndDropsTheLateAnswer() {
    std::promise<void> started;
    std::promise<void> release;
    auto released = release.get_future().share();
    runtime_.SetHandler([&, released](std::string_view req, MonoTime) -> Result<std::string> {
      started.set_value();
      released.wait();
      return EchoResponse(req);
    });
    settings_.shutdown_timeout = milliseconds(50);
    transport_.Enqueue("asya-a", Env("slow", {"a"}, 1).dump());
    auto sidecar = std::make_unique<Sidecar>(settings_, transport_, runtime_, &metrics_);
    std::thread run([&] { EXPECT_EQ(sidecar->Run(), 0); });
    started.get_future().wait();
    sidecar->Shutdown();
    run.join();
    EXPECT_FALSE(sidecar->Drained());
    EXPECT_TRUE(transport_.QuiescedAfterInterrupt());  // also when the process will _Exit()
    EXPECT_EQ(transport_.Requeues(), 1);  // requeued, not nacked, dead-lettered or error-ended
    EXPECT_EQ(transport_.Settles().size(), 1u);
    sidecar.reset();
    release.set_value();
    ASSERT_TRUE(metrics_.WaitCount("processing_duration", 1));  // the answer is past its message
    EXPECT_EQ(transport_.Settles().size(), 1u);
    EXPECT_TRUE(transport_.Publishes().empty());
  }

  FakeTransport transport_;
  FakeRuntime runtime_;
  FakeMetrics metrics_;
  Settings settings_;
};

TEST_F(SidecarRun, RoutesEveryMessageAndAcksEachOnce) {
  settings_.concurrency = 3;
  for (int i = 0; i < 10; ++i) {
    transport_.Enqueue("asya-a", Env("m" + std::to_string(i), {"a", "b"}, i).dump());
  }
  Sidecar sidecar(settings_, transport_, runtime_, &metrics_);
  std::thread run([&] { EXPECT_EQ(sidecar.Run(), 0); });
  ASSERT_TRUE(transport_.WaitSettled(10));
  sidecar.Shutdown();
  run.join();
  EXPECT_TRUE(sidecar.Drained());
  auto out = transport_.To("asya-b");
  ASSERT_EQ(out.size(), 10u);
  std::set<std::string> ids;
  for (const auto& e : out) {
    ids.insert(e["id"].get<std::string>());
  }
  EXPECT_EQ(ids.size(), 10u);
  EXPECT_EQ(transport_.Acks(), 10);
  EXPECT_EQ(transport_.Settles().size(), 10u);
  EXPECT_EQ(metrics_.Count("processed", "success"), 10);
  EXPECT_EQ(metrics_.Count("received"), 10);
  EXPECT_EQ(metrics_.Active(), 0);
  // Before returning, Run() waited for receives still running at the broker (an SQS long poll),
  // bounded by one receive's wait.
  EXPECT_TRUE(transport_.QuiescedAfterInterrupt());
  EXPECT_GE(transport_.QuiesceWait(), settings_.receive_wait);
}

// Large messages (>= 1 MiB) are not prefetched: while one is held, the sidecar holds at most
// `concurrency` messages, so the next one is received only after the first is settled.
TEST_F(SidecarRun, LargeMessagesAreNotPrefetched) {
  settings_.concurrency = 1;
  const std::string big(1u << 20, 'x');
  transport_.Enqueue("asya-a", Env("big1", {"a", "b"}, big).dump());
  transport_.Enqueue("asya-a", Env("big2", {"a", "b"}, big).dump());
  std::atomic<int> publishes{0};
  std::atomic<size_t> waiting_during_first_publish{0};
  transport_.SetPublishGate([&](std::string_view) {
    if (++publishes != 1) {
      return;
    }
    // With prefetch a second worker would take big2 now; give it the chance (bounded: a slow
    // machine can only make this test pass, never fail, with the behaviour under test).
    for (int i = 0; i < 50 && transport_.Ready("asya-a") > 0; ++i) {
      std::this_thread::sleep_for(milliseconds(10));
    }
    waiting_during_first_publish = transport_.Ready("asya-a");
  });
  Sidecar sidecar(settings_, transport_, runtime_, nullptr);
  std::thread run([&] { sidecar.Run(); });
  ASSERT_TRUE(transport_.WaitSettled(2));
  sidecar.Shutdown();
  run.join();
  EXPECT_EQ(waiting_during_first_publish.load(), 1u);  // big2 was still in the queue
  EXPECT_EQ(transport_.To("asya-b").size(), 2u);
  EXPECT_EQ(transport_.Acks(), 2);
}

// Small messages still are: one publishing while the next is received and in the runtime.
TEST_F(SidecarRun, SmallMessagesArePrefetched) {
  settings_.concurrency = 1;
  transport_.Enqueue("asya-a", Env("s1", {"a", "b"}, 1).dump());
  transport_.Enqueue("asya-a", Env("s2", {"a", "b"}, 2).dump());
  std::atomic<int> publishes{0};
  std::atomic<size_t> waiting_during_first_publish{0};
  transport_.SetPublishGate([&](std::string_view) {
    if (++publishes != 1) {
      return;
    }
    for (int i = 0; i < 3000 && transport_.Ready("asya-a") > 0; ++i) {  // until s2 is taken
      std::this_thread::sleep_for(milliseconds(10));
    }
    waiting_during_first_publish = transport_.Ready("asya-a");
  });
  Sidecar sidecar(settings_, transport_, runtime_, nullptr);
  std::thread run([&] { sidecar.Run(); });
  ASSERT_TRUE(transport_.WaitSettled(2));
  sidecar.Shutdown();
  run.join();
  EXPECT_EQ(waiting_during_first_publish.load(), 0u);  // s2 was taken during s1's publish
  EXPECT_EQ(transport_.Acks(), 2);
}

// Transports that fold a receive into a settle (SQLite): settles that overlap each fold one, each
// taking the runtime slot it freed. (With a single receive role the second settle could not fold
// while the first one's receive was in progress, and received apart.)
TEST_F(SidecarRun, OverlappingSettlesEachFoldAReceive) {
  settings_.concurrency = 2;
  settings_.fold_receive_into_settle = true;
  transport_.FoldReceives(true);
  for (int i = 0; i < 4; ++i) {
    transport_.Enqueue("asya-a", Env("m" + std::to_string(i), {"a", "b"}, i).dump());
  }
  std::mutex mu;
  std::condition_variable cv;
  int calls = 0;
  int publishes = 0;
  std::vector<size_t> folds_when_both_settle;
  // The first two runtime calls (m0 and m1, received together) end together, and the first of
  // their settles waits in its publish until the second one publishes too (bounded waits: past
  // them the test fails, it never passes by timing).
  runtime_.SetHandler([&](std::string_view req, MonoTime) -> Result<std::string> {
    std::unique_lock<std::mutex> lock(mu);
    if (++calls <= 2) {
      cv.notify_all();
      cv.wait_for(lock, std::chrono::seconds(10), [&] { return calls >= 2; });
    }
    return EchoResponse(req);
  });
  transport_.SetPublishGate([&](std::string_view) {
    std::unique_lock<std::mutex> lock(mu);
    if (++publishes == 2) {
      folds_when_both_settle = transport_.FoldRequests();
      cv.notify_all();
    } else if (publishes == 1) {
      cv.wait_for(lock, std::chrono::seconds(10), [&] { return publishes >= 2; });
    }
  });
  Sidecar sidecar(settings_, transport_, runtime_, &metrics_);
  std::thread run([&] { EXPECT_EQ(sidecar.Run(), 0); });
  ASSERT_TRUE(transport_.WaitSettled(4));
  sidecar.Shutdown();
  run.join();
  // Both settles in progress were folds, each receiving up to the one slot it freed.
  EXPECT_EQ(folds_when_both_settle, (std::vector<size_t>{1, 1}));
  EXPECT_EQ(transport_.To("asya-b").size(), 4u);
  EXPECT_EQ(transport_.Acks(), 4);
  EXPECT_EQ(transport_.Settles().size(), 4u);
  EXPECT_EQ(metrics_.Count("received"), 4);
  EXPECT_EQ(metrics_.Active(), 0);
  EXPECT_TRUE(sidecar.Drained());
}

// Folded receives that overlap each other and the plain receive never take more than the limits
// allow: at most `concurrency` messages received and not yet through the runtime, at most
// 2 x concurrency held (received, not yet settled).
TEST_F(SidecarRun, OverlappingFoldedReceivesKeepTheLimits) {
  settings_.concurrency = 3;
  settings_.fold_receive_into_settle = true;
  transport_.FoldReceives(true);
  constexpr int kMessages = 300;
  for (int i = 0; i < kMessages; ++i) {
    transport_.Enqueue("asya-a", Env(std::to_string(i), {"a", "b"}, i).dump());
  }
  std::mutex mu;
  std::set<std::string> before_runtime;  // received, runtime call not over
  size_t max_before_runtime = 0;
  transport_.SetReceiveHook([&](const std::vector<transport::Message>& batch) {
    std::lock_guard<std::mutex> lock(mu);
    for (const auto& m : batch) {
      before_runtime.insert(json::parse(m.body)["id"].get<std::string>());
    }
    max_before_runtime = std::max(max_before_runtime, before_runtime.size());
  });
  std::atomic<int> n{0};
  runtime_.SetHandler([&](std::string_view req, MonoTime) -> Result<std::string> {
    // Uneven calls, so settles (and their folded receives) overlap in many ways.
    std::this_thread::sleep_for(std::chrono::microseconds(200 * (n++ % 7)));
    std::string id = json::parse(req)["id"].get<std::string>();
    std::lock_guard<std::mutex> lock(mu);
    before_runtime.erase(id);  // before the sidecar frees the slot: the count errs low, never high
    return EchoResponse(req);
  });
  transport_.SetPublishGate(
      [&](std::string_view) { std::this_thread::sleep_for(std::chrono::microseconds(300)); });
  Sidecar sidecar(settings_, transport_, runtime_, &metrics_);
  std::thread run([&] { EXPECT_EQ(sidecar.Run(), 0); });
  ASSERT_TRUE(transport_.WaitSettled(kMessages));
  sidecar.Shutdown();
  run.join();
  EXPECT_LE(max_before_runtime, 3u);
  EXPECT_LE(transport_.MaxHeld(), 6);
  EXPECT_FALSE(transport_.FoldRequests().empty());
  for (size_t want : transport_.FoldRequests()) {
    EXPECT_GE(want, 1u);
    EXPECT_LE(want, 3u);
  }
  EXPECT_EQ(transport_.To("asya-b").size(), static_cast<size_t>(kMessages));
  EXPECT_EQ(transport_.Acks(), kMessages);
  EXPECT_EQ(metrics_.Count("received"), kMessages);
  EXPECT_EQ(metrics_.Active(), 0);
  EXPECT_TRUE(sidecar.Drained());
}

TEST_F(SidecarRun, HeartbeatKeepsLongMessagesInvisible) {
  settings_.visibility = milliseconds(300);  // extended every 100 ms while in flight
  runtime_.SetHandler([&](std::string_view req, MonoTime) -> Result<std::string> {
    EXPECT_TRUE(transport_.WaitExtensions(2));  // the call outlives two heartbeats
    return EchoResponse(req);
  });
  transport_.Enqueue("asya-a", Env("hb", {"a"}, 1).dump());
  Sidecar sidecar(settings_, transport_, runtime_, nullptr);
  std::thread run([&] { sidecar.Run(); });
  ASSERT_TRUE(transport_.WaitSettled(1));
  sidecar.Shutdown();
  run.join();
  EXPECT_GE(transport_.Extensions(), 2);
  EXPECT_EQ(transport_.Acks(), 1);
  EXPECT_EQ(transport_.To("asya-happy-end").size(), 1u);
}

TEST_F(SidecarRun, ReceiveErrorsBackOffAndRecover) {
  settings_.receive_backoff_initial = milliseconds(1);
  transport_.FailReceives(3);
  transport_.Enqueue("asya-a", Env("m1", {"a", "b"}, 1).dump());
  Sidecar sidecar(settings_, transport_, runtime_, nullptr);
  std::thread run([&] { sidecar.Run(); });
  ASSERT_TRUE(transport_.WaitSettled(1));
  sidecar.Shutdown();
  run.join();
  EXPECT_EQ(transport_.To("asya-b").size(), 1u);
}

// A worker still in its runtime call past the grace period is detached.
TEST_F(SidecarRun, ShutdownRequeuesWhatDidNotFinishInTheGracePeriod) {
  ExpectGracePeriodRequeuesAndDropsTheLateAnswer();
}

// Where the transport settles asynchronously (RabbitMQ), the worker does not wait for the
// confirm: the message stays held until the transport answers, and is released then.
TEST_F(SidecarRun, AsyncSettleReleasesTheMessageWhenTheTransportAnswers) {
  transport_.SettleAsynchronously(true);
  transport_.Enqueue("asya-a", Env("m", {"a", "b"}, 1).dump());
  Sidecar sidecar(settings_, transport_, runtime_, &metrics_);
  std::thread run([&] { EXPECT_EQ(sidecar.Run(), 0); });
  ASSERT_TRUE(transport_.WaitPendingSettles(1));
  EXPECT_EQ(transport_.Acks(), 0);
  EXPECT_EQ(metrics_.Active(), 1);  // still held
  FinishSettleOnIoThread();
  EXPECT_EQ(metrics_.Active(), 0);  // released by the answer itself
  EXPECT_EQ(metrics_.Count("processed", "success"), 1);
  sidecar.Shutdown();
  run.join();
  EXPECT_TRUE(sidecar.Drained());
  EXPECT_EQ(transport_.To("asya-b").size(), 1u);
  EXPECT_EQ(transport_.Acks(), 1);
  EXPECT_EQ(transport_.Settles().size(), 1u);
}

// A publish the broker did not confirm comes back to a worker, which runs the fallback once: a
// transient error nacks the message (nothing was published, nothing acked).
TEST_F(SidecarRun, AsyncSettleFailureNacksOnceOnAWorker) {
  transport_.SettleAsynchronously(true);
  transport_.Enqueue("asya-a", Env("m", {"a", "b"}, 1).dump());
  Sidecar sidecar(settings_, transport_, runtime_, &metrics_);
  std::thread run([&] { EXPECT_EQ(sidecar.Run(), 0); });
  ASSERT_TRUE(transport_.WaitPendingSettles(1));
  FinishSettleOnIoThread(Error{ErrorCode::kUnavailable, "not confirmed"});
  ASSERT_TRUE(transport_.WaitSettled(1));
  EXPECT_EQ(transport_.Nacks(), 1);
  EXPECT_EQ(transport_.Acks(), 0);
  EXPECT_TRUE(transport_.Publishes().empty());
  // The nacked message comes back (the fake requeues it) and settles normally this time.
  ASSERT_TRUE(transport_.WaitPendingSettles(1));
  FinishSettleOnIoThread();
  sidecar.Shutdown();
  run.join();
  EXPECT_TRUE(sidecar.Drained());
  EXPECT_EQ(transport_.Nacks(), 1);
  EXPECT_EQ(transport_.Acks(), 1);
  EXPECT_EQ(transport_.Settles().size(), 2u);
  EXPECT_EQ(transport_.To("asya-b").size(), 1u);
  EXPECT_EQ(transport_.PendingSettles(), 0u);
  EXPECT_EQ(metrics_.Active(), 0);
}

// A permanent publish error (kInvalidArgument) error-ends the message once, from a worker (the
// error-end publish waits for the broker), and acks it.
TEST_F(SidecarRun, AsyncSettlePermanentFailureErrorEndsOnce) {
  transport_.SettleAsynchronously(true);
  transport_.Enqueue("asya-a", Env("m", {"a", "b"}, 1).dump());
  Sidecar sidecar(settings_, transport_, runtime_, &metrics_);
  std::thread run([&] { EXPECT_EQ(sidecar.Run(), 0); });
  ASSERT_TRUE(transport_.WaitPendingSettles(1));
  FinishSettleOnIoThread(Error{ErrorCode::kInvalidArgument, "bad queue"});
  ASSERT_TRUE(transport_.WaitSettled(1));
  sidecar.Shutdown();
  run.join();
  EXPECT_TRUE(sidecar.Drained());
  EXPECT_EQ(transport_.To("asya-error-end").size(), 1u);
  EXPECT_TRUE(transport_.To("asya-b").empty());
  EXPECT_EQ(transport_.Acks(), 1);
  EXPECT_EQ(transport_.Settles().size(), 1u);
  EXPECT_EQ(metrics_.Active(), 0);
}

// The shutdown drain waits for settles still in the transport (the message is held until its
// ack is queued), and does not requeue them.
TEST_F(SidecarRun, DrainWaitsForPendingAsyncSettles) {
  transport_.SettleAsynchronously(true);
  transport_.Enqueue("asya-a", Env("m", {"a", "b"}, 1).dump());
  Sidecar sidecar(settings_, transport_, runtime_, &metrics_);
  std::atomic<bool> returned{false};
  std::thread run([&] {
    EXPECT_EQ(sidecar.Run(), 0);
    returned = true;
  });
  ASSERT_TRUE(transport_.WaitPendingSettles(1));
  sidecar.Shutdown();
  std::this_thread::sleep_for(milliseconds(200));  // room for a wrong early return
  EXPECT_FALSE(returned.load());
  EXPECT_TRUE(transport_.FinishSettle());
  run.join();
  EXPECT_TRUE(sidecar.Drained());
  EXPECT_EQ(transport_.Acks(), 1);
  EXPECT_EQ(transport_.Requeues(), 0);
  EXPECT_EQ(transport_.Settles().size(), 1u);
  EXPECT_EQ(transport_.To("asya-b").size(), 1u);
}

// ---- asynchronous runtime calls (RuntimeCaller::CallsAsync with a transport that settles
// asynchronously: RabbitMQ) ----

class SidecarAsyncCalls : public SidecarRun {
 protected:
  SidecarAsyncCalls() {
    runtime_.AnswerAsynchronously(true);
    transport_.SettleAsynchronouslyAtOnce();
  }

  // Runs `n` messages through a sidecar with concurrency 4 and checks that each was routed and
  // acked once, with at most 4 calls in the runtime and 8 messages held at a time.
  void RouteMany(int n) {
    settings_.concurrency = 4;
    for (int i = 0; i < n; ++i) {
      transport_.Enqueue("asya-a", Env("m" + std::to_string(i), {"a", "b"}, i).dump());
    }
    Sidecar sidecar(settings_, transport_, runtime_, &metrics_);
    std::thread run([&] { EXPECT_EQ(sidecar.Run(), 0); });
    ASSERT_TRUE(transport_.WaitSettled(static_cast<size_t>(n)));
    sidecar.Shutdown();
    run.join();
    EXPECT_TRUE(sidecar.Drained());
    EXPECT_EQ(runtime_.async_calls, n);
    EXPECT_EQ(runtime_.calls, n);
    EXPECT_LE(runtime_.MaxConcurrentCalls(), 4);
    EXPECT_LE(transport_.MaxHeld(), 8);
    std::set<std::string> ids;
    for (const auto& e : transport_.To("asya-b")) {
      ids.insert(e["id"].get<std::string>());
    }
    EXPECT_EQ(ids.size(), static_cast<size_t>(n));
    EXPECT_EQ(transport_.Acks(), n);
    EXPECT_EQ(transport_.Settles().size(), static_cast<size_t>(n));
    EXPECT_EQ(metrics_.Count("processed", "success"), n);
    EXPECT_EQ(metrics_.Count("runtime_duration"), n);
    EXPECT_EQ(metrics_.Active(), 0);
  }
};

// The worker that receives starts the calls; the answers come back on other threads, and every
// message is routed and acked once, within the concurrency.
TEST_F(SidecarAsyncCalls, RouteEveryMessageWithinTheConcurrency) {
  runtime_.SetHandler([](std::string_view req, MonoTime) -> Result<std::string> {
    std::this_thread::sleep_for(milliseconds(1));
    return EchoResponse(req);
  });
  RouteMany(200);
  EXPECT_GE(runtime_.MaxConcurrentCalls(), 2);  // the calls overlapped
}

// The thread that delivers an answer settles asynchronously and takes the next messages the
// transport already holds (a receive that does not wait), and starts their calls itself: no
// worker is woken per message.
TEST_F(SidecarAsyncCalls, AnswerThreadTakesTheNextMessagesAfterAnAsyncSettle) {
  RouteMany(200);
  EXPECT_GE(runtime_.calls_started_answering, 100);
}

// A failed call goes on on a worker, with the rules of the blocking path: a runtime that died
// mid-message error-ends it and closes the readiness gate; a timeout error-ends it as one.
TEST_F(SidecarAsyncCalls, FailedCallsFollowTheRulesOfTheBlockingPath) {
  runtime_.SetHandler([](std::string_view req, MonoTime) -> Result<std::string> {
    if (req.find("\"died\"") != std::string_view::npos) {
      return MakeError(ErrorCode::kUnavailable, "failed to read response from runtime: EOF");
    }
    return MakeError(ErrorCode::kDeadlineExceeded, "runtime call timed out");
  });
  settings_.runtime_timeout = std::chrono::seconds(30);
  settings_.policy.runtime_timeout = std::chrono::seconds(30);
  transport_.Enqueue("asya-a", Env("died", {"a", "b"}, 1).dump());
  Sidecar sidecar(settings_, transport_, runtime_, &metrics_);
  std::thread run([&] { EXPECT_EQ(sidecar.Run(), 0); });
  ASSERT_TRUE(transport_.WaitSettled(1));
  transport_.Enqueue("asya-a", Env("slow", {"a", "b"}, 1).dump());
  ASSERT_TRUE(transport_.WaitSettled(2));
  sidecar.Shutdown();
  run.join();
  EXPECT_TRUE(sidecar.Drained());
  auto errors = transport_.To("asya-error-end");
  ASSERT_EQ(errors.size(), 2u);
  EXPECT_EQ(errors[0]["id"], "died");
  EXPECT_EQ(errors[0]["payload"]["error"], "failed to read response from runtime: EOF");
  EXPECT_EQ(errors[1]["id"], "slow");
  EXPECT_EQ(errors[1]["payload"]["error"], "Runtime timeout exceeded after 30s");
  EXPECT_EQ(transport_.Acks(), 2);
  EXPECT_EQ(metrics_.Count("runtime_errors"), 2);
  EXPECT_EQ(runtime_.async_calls, 2);
  EXPECT_GE(runtime_.resets, 2);  // each failure closed the gate (pooled connections dropped)
}

// A call that did not reach the runtime is made again on a worker without using an attempt.
TEST_F(SidecarAsyncCalls, ConnectFailureIsCalledAgainWithoutUsingAnAttempt) {
  std::atomic<int> calls{0};
  runtime_.SetHandler([&](std::string_view req, MonoTime) -> Result<std::string> {
    if (++calls == 1) {
      return MakeError(ErrorCode::kUnavailable, "failed to connect to runtime socket: refused");
    }
    return EchoResponse(req);
  });
  transport_.Enqueue("asya-a", Env("m", {"a", "b"}, 1).dump());
  Sidecar sidecar(settings_, transport_, runtime_, &metrics_);
  std::thread run([&] { EXPECT_EQ(sidecar.Run(), 0); });
  ASSERT_TRUE(transport_.WaitSettled(1));
  sidecar.Shutdown();
  run.join();
  ASSERT_EQ(transport_.To("asya-b").size(), 1u);
  EXPECT_EQ(runtime_.async_calls, 1);
  EXPECT_EQ(runtime_.calls, 2);  // the second one blocking, on a worker
  EXPECT_EQ(metrics_.Count("runtime_errors"), 0);
  EXPECT_EQ(transport_.Acks(), 1);
}

// Within the grace period the drain waits for calls still in the runtime, and their messages
// are settled as usual.
TEST_F(SidecarAsyncCalls, DrainWaitsForCallsInTheRuntime) {
  std::promise<void> started;
  std::promise<void> release;
  auto released = release.get_future().share();
  runtime_.SetHandler([&, released](std::string_view req, MonoTime) -> Result<std::string> {
    started.set_value();
    released.wait();
    return EchoResponse(req);
  });
  transport_.Enqueue("asya-a", Env("m", {"a", "b"}, 1).dump());
  Sidecar sidecar(settings_, transport_, runtime_, &metrics_);
  std::atomic<bool> returned{false};
  std::thread run([&] {
    EXPECT_EQ(sidecar.Run(), 0);
    returned = true;
  });
  started.get_future().wait();
  sidecar.Shutdown();
  std::this_thread::sleep_for(milliseconds(200));  // room for a wrong early return
  EXPECT_FALSE(returned.load());
  release.set_value();
  run.join();
  EXPECT_TRUE(sidecar.Drained());
  EXPECT_EQ(transport_.Acks(), 1);
  EXPECT_EQ(transport_.Requeues(), 0);
  EXPECT_EQ(transport_.To("asya-b").size(), 1u);
}

// A call still in the runtime past the grace period counts as not drained.
TEST_F(SidecarAsyncCalls, CallPastTheGracePeriodIsRequeuedAndItsAnswerDropped) {
  ExpectGracePeriodRequeuesAndDropsTheLateAnswer();
  EXPECT_EQ(runtime_.async_calls, 1);
}

// Messages of 1 MiB and more keep a worker for their call (their body is freed while the runtime
// works on it).
TEST_F(SidecarAsyncCalls, LargeMessagesKeepTheBlockingCall) {
  transport_.Enqueue("asya-a", Env("big", {"a", "b"}, std::string(1u << 20, 'x')).dump());
  transport_.Enqueue("asya-a", Env("small", {"a", "b"}, 1).dump());
  Sidecar sidecar(settings_, transport_, runtime_, &metrics_);
  std::thread run([&] { EXPECT_EQ(sidecar.Run(), 0); });
  ASSERT_TRUE(transport_.WaitSettled(2));
  sidecar.Shutdown();
  run.join();
  EXPECT_EQ(transport_.To("asya-b").size(), 2u);
  EXPECT_EQ(runtime_.calls, 2);
  EXPECT_EQ(runtime_.async_calls, 1);
}

// The report of a result that goes to happy-end waits for the gateway (Flush): not on the thread
// that delivers runtime answers, which would hold up every other call's answer meanwhile.
TEST_F(SidecarAsyncCalls, ReportThatWaitsForTheGatewayRunsOnAWorker) {
  FakeGateway gateway;
  std::atomic<int> flushes_on_answer_thread{0};
  gateway.on_flush = [&] { flushes_on_answer_thread += FakeRuntime::OnAnswerThread() ? 1 : 0; };
  transport_.Enqueue("asya-a", Env("last", {"a"}, 1).dump());  // route ends: to happy-end
  transport_.Enqueue("asya-a", Env("next", {"a", "b"}, 1).dump());
  Sidecar sidecar(settings_, transport_, runtime_, &metrics_, &gateway, SystemClock());
  std::thread run([&] { EXPECT_EQ(sidecar.Run(), 0); });
  ASSERT_TRUE(transport_.WaitSettled(2));
  sidecar.Shutdown();
  run.join();
  EXPECT_TRUE(sidecar.Drained());
  ASSERT_EQ(gateway.Flushes().size(), 1u);
  EXPECT_EQ(gateway.Flushes()[0].first, "last");
  EXPECT_EQ(flushes_on_answer_thread, 0);
  EXPECT_EQ(transport_.To("asya-happy-end").size(), 1u);
  EXPECT_EQ(transport_.To("asya-b").size(), 1u);
  EXPECT_EQ(runtime_.async_calls, 2);
}

TEST_F(SidecarRun, RuntimeNeverReadyExitsOne) {
  ManualClock clock;
  runtime_.ready = false;
  settings_.ready_timeout = milliseconds(300'000);
  Sidecar sidecar(settings_, transport_, runtime_, nullptr, nullptr, clock);
  EXPECT_EQ(sidecar.Run(), 1);
  EXPECT_GE(clock.Slept(), milliseconds(300'000) - settings_.ready_poll_interval);
  EXPECT_EQ(runtime_.calls, 0);
}

TEST_F(SidecarRun, ShutdownWhileWaitingForRuntimeExitsZero) {
  ManualClock clock;
  Sidecar sidecar(settings_, transport_, runtime_, nullptr, nullptr, clock);
  int probes = 0;
  runtime_.ready_hook = [&] {
    if (++probes == 3) {
      sidecar.Shutdown();
    }
    return false;
  };
  EXPECT_EQ(sidecar.Run(), 0);
  EXPECT_EQ(probes, 3);
}

}  // namespace
}  // namespace asya::sidecar
