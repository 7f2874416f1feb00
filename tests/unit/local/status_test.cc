#include "asya/local/status.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace asya::local {
namespace {

constexpr int64_t kNow = 1'000'000'000;

ActorStatus A(int ready, int total, int desired, bool scaling = true) {
  ActorStatus a;
  a.name = "x";
  a.ready = ready;
  a.total = total;
  a.desired = desired;
  a.scaling_enabled = scaling;
  a.scaling_present = scaling;
  return a;
}

TEST(Status, Rules) {
  EXPECT_EQ(ComputeStatus(A(0, 0, 0), kNow), "Napping");
  EXPECT_EQ(ComputeStatus(A(0, 0, 2), kNow), "ScalingUp");
  EXPECT_EQ(ComputeStatus(A(1, 1, 2), kNow), "ScalingUp");
  EXPECT_EQ(ComputeStatus(A(2, 3, 2), kNow), "ScalingDown");
  EXPECT_EQ(ComputeStatus(A(1, 1, 0), kNow), "ScalingDown");  // on the way to napping
  EXPECT_EQ(ComputeStatus(A(2, 2, 2), kNow), "Running");
  EXPECT_EQ(ComputeStatus(A(0, 0, 0, false), kNow), "Running");  // replicas: 0, manual
  ActorStatus starting = A(1, 2, 2);
  starting.last_scale_ms = kNow - 10'000;
  EXPECT_EQ(ComputeStatus(starting, kNow), "ScalingUp");
  starting.last_scale_ms = kNow - 6 * 60'000;
  EXPECT_EQ(ComputeStatus(starting, kNow), "Degraded");
}

TEST(Status, CrashLoopingReplicas) {
  ActorStatus a = A(0, 1, 1);
  a.failing = 1;
  a.crash_container = "asya-runtime";
  EXPECT_EQ(ComputeStatus(a, kNow), "RuntimeError");
  a.crash_container = "asya-sidecar";
  EXPECT_EQ(ComputeStatus(a, kNow), "SidecarError");
  a.ready = 1;  // failing but at desired: not an error state
  EXPECT_EQ(ComputeStatus(a, kNow), "Running");
}

TEST(Status, LastScaleFormatting) {
  EXPECT_EQ(FormatLastScale(-1, "", kNow), "-");
  EXPECT_EQ(FormatLastScale(kNow - 30'000, "up", kNow), "30s ago (up)");
  EXPECT_EQ(FormatLastScale(kNow - 5 * 60'000, "down", kNow), "5m ago (down)");
  EXPECT_EQ(FormatLastScale(kNow - 2 * 3600'000, "up", kNow), "2h ago (up)");
  EXPECT_EQ(FormatLastScale(kNow - 3 * 86400'000LL, "down", kNow), "3d ago (down)");
  EXPECT_EQ(FormatLastScale(kNow - 2 * 3600'000, "", kNow), "2h ago");
}

TEST(Status, AgeFormatting) {
  EXPECT_EQ(FormatAge(45), "45s");
  EXPECT_EQ(FormatAge(119), "119s");
  EXPECT_EQ(FormatAge(312), "5m12s");
  EXPECT_EQ(FormatAge(42 * 60), "42m");
  EXPECT_EQ(FormatAge(5 * 3600 + 180), "5h3m");
  EXPECT_EQ(FormatAge(20 * 3600), "20h");
  EXPECT_EQ(FormatAge(3 * 86400 + 4 * 3600), "3d4h");
  EXPECT_EQ(FormatAge(12 * 86400), "12d");
}

TEST(Status, TableHasKubectlColumns) {
  ActorStatus a = A(1, 1, 1);
  a.name = "scorer";
  a.status = "Running";
  a.min_replicas = 0;
  a.max_replicas = 5;
  a.created_ms = kNow - 65'000;
  a.last_scale_ms = kNow - 30'000;
  a.last_scale_direction = "up";
  a.queued = 7;
  a.processing = 2;
  a.transport_ready = true;
  ActorStatus manual = A(2, 2, 2, false);
  manual.name = "manual-one";
  manual.status = "Running";
  manual.created_ms = kNow;
  std::string t = RenderTable({a, manual}, kNow, false);
  EXPECT_EQ(t,
            "NAME         STATUS    RUNNING   FAILING   TOTAL   DESIRED   MIN      MAX      "
            "LAST-SCALE     AGE\n"
            "scorer       Running   1         0         1       1         0        5        "
            "30s ago (up)   65s\n"
            "manual-one   Running   2         0         2       2         <none>   <none>   "
            "-              0s\n");
  std::string w = RenderTable({a}, kNow, true);
  EXPECT_NE(w.find("AGE   WORKLOAD     TRANSPORT   SCALING   QUEUED   PROCESSING\n"),
            std::string::npos)
      << w;
  EXPECT_NE(w.find("65s   Deployment   Ready       KEDA      7        2\n"), std::string::npos)
      << w;
}

TEST(Status, JsonHasDesignKeys) {
  ActorStatus a = A(1, 2, 3);
  a.name = "s";
  a.status = "ScalingUp";
  a.failing = 1;
  a.queued = 4;
  a.processing = 5;
  a.created_ms = kNow;
  auto j = nlohmann::json::parse(RenderJson({a}, kNow));
  ASSERT_TRUE(j.is_array());
  const auto& o = j[0];
  for (const char* k :
       {"name", "status", "running", "failing", "total", "desired", "min", "max", "lastScale",
        "age", "workload", "transport", "scaling", "queued", "processing"}) {
    EXPECT_TRUE(o.contains(k)) << k;
  }
  EXPECT_EQ(o.size(), 15u);
  EXPECT_EQ(o["running"], 1);
  EXPECT_EQ(o["total"], 2);
  EXPECT_EQ(o["desired"], 3);
  EXPECT_EQ(o["failing"], 1);
  EXPECT_EQ(o["queued"], 4);
  EXPECT_EQ(o["processing"], 5);
  EXPECT_EQ(o["scaling"], "KEDA");
  EXPECT_EQ(o["transport"], "NotReady");
  // Machine values, not the table's text (issue 11 item 11): RFC 3339 timestamps.
  EXPECT_EQ(o["lastScale"], nullptr);
  EXPECT_EQ(o["age"], "1970-01-12T13:46:40.000Z");  // created_ms = 1e9 ms
  a.last_scale_ms = kNow - 30'500;
  a.last_scale_direction = "up";
  auto k = nlohmann::json::parse(RenderJson({a}, kNow))[0];
  EXPECT_EQ(k["lastScale"],
            nlohmann::json({{"time", "1970-01-12T13:46:09.500Z"}, {"direction", "up"}}));
  EXPECT_EQ(k.size(), 15u);
}

TEST(Status, FileRoundTrip) {
  MeshStatus m;
  m.pid = 42;
  m.generation = 3;
  m.transport = "sqlite";
  ActorStatus a = A(1, 1, 1);
  a.name = "n";
  a.replicas.push_back({0, "Running", true, false, 11, 12, 1, 0, "exit 1", "", "", kNow});
  a.events.push_back({kNow, "Warning", "Crashed", "replica 0: runtime exit 1"});
  m.actors.push_back(a);
  auto back = DecodeMeshStatus(EncodeMeshStatus(m));
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_EQ(back->pid, 42);
  EXPECT_EQ(back->generation, 3);
  ASSERT_EQ(back->actors.size(), 1u);
  EXPECT_EQ(back->actors[0].replicas[0].runtime_pid, 11);
  EXPECT_EQ(back->actors[0].replicas[0].runtime_last_exit, "exit 1");
  EXPECT_EQ(back->actors[0].events[0].reason, "Crashed");
  EXPECT_FALSE(DecodeMeshStatus("{not json"));
}

TEST(Status, DescribeShowsReplicasAndEvents) {
  ActorStatus a = A(0, 1, 1);
  a.name = "scorer";
  a.status = "RuntimeError";
  a.created_ms = kNow;
  a.replicas.push_back({0, "BackOff", false, true, 0, 0, 3, 0, "exit 1", "",
                        "asya-runtime "
                        "CrashLoopBackOff: last exit 1, restarting in 8s",
                        kNow});
  a.events.push_back({kNow, "Warning", "Crashed", "replica 0: runtime exit 1"});
  std::string d = RenderDescribe(a, kNow);
  EXPECT_NE(d.find("Status:          RuntimeError"), std::string::npos) << d;
  EXPECT_NE(d.find("CrashLoopBackOff"), std::string::npos) << d;
  EXPECT_NE(d.find("Crashed"), std::string::npos) << d;
}

// Issue 11 item 1: describe shows the retry policy in force (and it survives the status file).
TEST(Status, DescribeShowsThePolicyInForce) {
  ActorStatus a = A(1, 1, 1);
  a.policy = {"1s", "1", "1s", "5m", "", "5"};
  std::string d = RenderDescribe(a, kNow);
  EXPECT_NE(d.find("Timeout:         1s (ASYA_RUNTIME_TIMEOUT of runtime and sidecar)"),
            std::string::npos)
      << d;
  EXPECT_NE(d.find("Retry:           no retry (maxAttempts 1): a failed message goes to "
                   "error-end; set spec.retry.maxAttempts to retry"),
            std::string::npos)
      << d;
  EXPECT_NE(d.find("Max deliveries:  5 (then asya-x-dlq)"), std::string::npos) << d;
  a.policy = {"30s", "4", "200ms", "10s", "ValueError,KeyError", "3"};
  MeshStatus m;
  m.actors.push_back(a);
  auto back = DecodeMeshStatus(EncodeMeshStatus(m));
  ASSERT_TRUE(back) << back.error().message;
  d = RenderDescribe(back->actors[0], kNow);
  EXPECT_NE(d.find("Retry:           up to 4 attempts, back-off 200ms doubling to 10s; not "
                   "retried: ValueError,KeyError"),
            std::string::npos)
      << d;
}

// Issue 11 item 8: `asya down`'s progress line and summary.
TEST(Status, DrainingLineAndQueuedSummary) {
  MeshStatus m;
  ActorStatus slow = A(0, 0, 0);
  slow.name = "slow";
  slow.processing = 1;
  slow.queued = 3;
  slow.replicas.push_back({0, "Stopping", false, false, 11, 12, 0, 0, "", "", "", kNow});
  ActorStatus idle = A(0, 0, 0);
  idle.name = "idle";
  m.actors = {idle, slow};
  EXPECT_EQ(DrainingLine(m), "draining slow (1 in-flight message, 1 replica)");
  EXPECT_EQ(QueuedSummary(m),
            "  left queued (processed when the mesh runs again):\n"
            "    slow   4 messages   (queue asya-slow)\n");
  m.actors = {idle};
  EXPECT_EQ(DrainingLine(m), "");
  EXPECT_EQ(QueuedSummary(m), "  nothing left queued\n");
}

// Issue 11 item 4: a `send --wait` that times out names the actors of the route not running.
TEST(Status, NotRunningOnRoute) {
  MeshStatus m;
  ActorStatus ok = A(1, 1, 1);
  ok.name = "ok";
  ActorStatus broken = A(0, 1, 1);
  broken.name = "broken";
  broken.failing = 1;
  broken.status = "RuntimeError";
  ActorStatus napping = A(0, 0, 0);
  napping.name = "napping";
  m.actors = {ok, broken, napping};
  EXPECT_EQ(NotRunningOnRoute(m, {"ok", "broken", "nosuch", "napping", "broken"}),
            "not running on the route: broken (RuntimeError: see `asya logs broken`), nosuch "
            "(not part of the mesh)");
  EXPECT_EQ(NotRunningOnRoute(m, {"ok", "napping"}), "");
}

// ---- Replica phases ----

ReplicaObservation Up(int index = 0) {
  ReplicaObservation r;
  r.index = index;
  r.runtime.pid = 100;
  r.sidecar.pid = 101;
  r.runtime_ready = true;
  return r;
}

TEST(ReplicaPhase, RunningAndStarting) {
  ReplicaStatus rs = ComputeReplicaStatus(Up());
  EXPECT_EQ(rs.phase, "Running");
  EXPECT_TRUE(rs.ready);
  EXPECT_FALSE(rs.failing);
  EXPECT_EQ(rs.runtime_pid, 100);
  ReplicaObservation r = Up();
  r.runtime_ready = false;  // runtime starting
  r.sidecar.pid = 0;
  EXPECT_EQ(ComputeReplicaStatus(r).phase, "Starting");
  EXPECT_FALSE(ReplicaReady(r));
  r = Up();
  r.sidecar.pid = 0;  // sidecar not started yet
  EXPECT_EQ(ComputeReplicaStatus(r).phase, "Starting");
}

TEST(ReplicaPhase, StoppingWinsOverEverything) {
  ReplicaObservation r = Up();
  r.stopping = true;
  r.runtime.consecutive_crashes = 3;
  r.runtime_ready = false;
  ReplicaStatus rs = ComputeReplicaStatus(r);
  EXPECT_EQ(rs.phase, "Stopping");
  EXPECT_FALSE(rs.ready);
  EXPECT_FALSE(rs.failing);
  EXPECT_EQ(CrashLoopingContainer(r), "");
}

TEST(ReplicaPhase, RuntimeCrashLoopBackOff) {
  ReplicaObservation r = Up();
  r.runtime = {0, 2, 2, "exit 1", 19'001};
  r.runtime_ready = false;
  r.sidecar.pid = 0;  // stopped with its runtime
  ReplicaStatus rs = ComputeReplicaStatus(r);
  EXPECT_EQ(rs.phase, "BackOff");
  EXPECT_TRUE(rs.failing);
  EXPECT_EQ(rs.runtime_restarts, 2);
  EXPECT_EQ(rs.runtime_last_exit, "exit 1");
  EXPECT_EQ(rs.waiting_reason, "asya-runtime CrashLoopBackOff: last exit 1, restarting in 20s");
  EXPECT_EQ(CrashLoopingContainer(r), "asya-runtime");
  r.runtime.restart_in_ms = -500;  // overdue: never negative
  EXPECT_EQ(ComputeReplicaStatus(r).waiting_reason,
            "asya-runtime CrashLoopBackOff: last exit 1, restarting in 0s");
}

TEST(ReplicaPhase, RestartedRuntimeStaysFailingUntilReady) {
  ReplicaObservation r = Up();
  r.runtime = {200, 1, 1, "signal 9", 0};
  r.runtime_ready = false;
  r.sidecar.pid = 0;
  ReplicaStatus rs = ComputeReplicaStatus(r);
  EXPECT_TRUE(rs.failing);
  EXPECT_EQ(rs.phase, "BackOff");  // its sidecar is not running
  r.runtime_ready = true;          // ready again: no longer crash-looping
  EXPECT_FALSE(ComputeReplicaStatus(r).failing);
}

TEST(ReplicaPhase, SidecarCrashLoop) {
  ReplicaObservation r = Up();
  r.sidecar = {0, 4, 4, "exit 2", 3'000};
  ReplicaStatus rs = ComputeReplicaStatus(r);
  EXPECT_EQ(rs.phase, "BackOff");
  EXPECT_EQ(rs.waiting_reason, "asya-sidecar CrashLoopBackOff: last exit 2, restarting in 3s");
  EXPECT_EQ(CrashLoopingContainer(r), "asya-sidecar");
  r.sidecar.pid = 300;  // running again
  EXPECT_FALSE(ComputeReplicaStatus(r).failing);
  EXPECT_EQ(ComputeReplicaStatus(r).phase, "Running");
}

TEST(ReplicaPhase, CountsAndStatusOfAnActor) {
  ActorStatus a = A(0, 0, 3);
  ReplicaObservation looping = Up(1);
  looping.sidecar = {0, 1, 1, "exit 1", 1'000};
  ReplicaObservation stopping = Up(2);
  stopping.stopping = true;
  SetReplicas(a, {Up(0), looping, stopping});
  EXPECT_EQ(a.total, 2);  // the stopping one does not count
  EXPECT_EQ(a.ready, 1);
  EXPECT_EQ(a.failing, 1);
  EXPECT_EQ(a.crash_container, "asya-sidecar");
  ASSERT_EQ(a.replicas.size(), 3u);
  EXPECT_EQ(a.replicas[2].phase, "Stopping");
  EXPECT_EQ(ComputeStatus(a, kNow), "SidecarError");
  SetReplicas(a, {Up(0), Up(1), Up(2)});  // recomputed from scratch
  EXPECT_EQ(a.failing, 0);
  EXPECT_EQ(a.crash_container, "");
  EXPECT_EQ(ComputeStatus(a, kNow), "Running");
}

}  // namespace
}  // namespace asya::local
