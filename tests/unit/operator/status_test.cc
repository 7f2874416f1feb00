// The status logic (reference-controlplane §4): pod inspection, condition upsert, the table of
// overall states.
#include "asya/operator/status.h"

#include <functional>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace asya::op {
namespace {

using nlohmann::json;

json Pod(const std::string& name, const std::string& phase, bool ready,
         json container_statuses = json::array(), json extra_conditions = json::array()) {
  json conds = json::array({{{"type", "Ready"}, {"status", ready ? "True" : "False"}}});
  for (auto& c : extra_conditions)
    conds.push_back(c);
  return {{"metadata", {{"name", name}}},
          {"status",
           {{"phase", phase}, {"conditions", conds}, {"containerStatuses", container_statuses}}}};
}

json Waiting(const std::string& container, const std::string& reason, int restarts = 0) {
  return {{"name", container},
          {"restartCount", restarts},
          {"state", {{"waiting", {{"reason", reason}}}}}};
}

TEST(ScanPods, CountsAndFirstProblem) {
  json pods = json::array(
      {Pod("a", "Running", true),
       Pod("b", "Running", false, json::array({Waiting("asya-runtime", "CrashLoopBackOff", 7)})),
       Pod("c", "Pending", false)});
  PodScan s = ScanPods(pods, true);
  EXPECT_EQ(s.running, 1);
  EXPECT_EQ(s.failing, 1);
  EXPECT_EQ(s.pending, 1);
  EXPECT_EQ(s.problem, "Container asya-runtime in CrashLoopBackOff (pod: b)");
}

TEST(ScanPods, NoPods) {
  EXPECT_EQ(ScanPods(json::array(), true).problem, "No pods found");
  EXPECT_EQ(ScanPods(json::array(), false).problem, "");
}

TEST(ScanPods, SkipsTerminatingPodsAndIgnoresOtherContainers) {
  json dying = Pod("d", "Running", false, json::array({Waiting("asya-runtime", "ErrImagePull")}));
  dying["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z";
  json other = Pod("e", "Running", true, json::array({Waiting("istio-proxy", "ErrImagePull")}));
  PodScan s = ScanPods(json::array({dying, other}), true);
  EXPECT_EQ(s.running, 1);
  EXPECT_EQ(s.failing, 0);
  EXPECT_EQ(s.problem, "");
}

TEST(ScanPods, UnschedulableIsFailing) {
  json p = Pod("u", "Pending", false, json::array(),
               json::array({{{"type", "PodScheduled"},
                             {"status", "False"},
                             {"reason", "Unschedulable"},
                             {"message", "0/3 nodes: Insufficient cpu"}}}));
  PodScan s = ScanPods(json::array({p}), true);
  EXPECT_EQ(s.failing, 1);
  EXPECT_NE(s.problem.find("Insufficient cpu"), std::string::npos);
}

TEST(SetCondition, TracksReasonChangesAndTransitionTimeOnlyOnStatusChange) {
  json st = json::object();
  EXPECT_TRUE(SetCondition(st, "WorkloadReady", false, "PodsNotHealthy", "m1", 1, "T1"));
  EXPECT_FALSE(SetCondition(st, "WorkloadReady", false, "PodsNotHealthy", "m1", 1, "T2"));
  // same status, new reason: recorded, transition time kept
  EXPECT_TRUE(SetCondition(st, "WorkloadReady", false, "ReconcileError", "m2", 2, "T3"));
  const json* c = FindCondition(st, "WorkloadReady");
  ASSERT_NE(c, nullptr);
  EXPECT_EQ((*c)["reason"], "ReconcileError");
  EXPECT_EQ((*c)["message"], "m2");
  EXPECT_EQ((*c)["observedGeneration"], 2);
  EXPECT_EQ((*c)["lastTransitionTime"], "T1");
  // status flips: time moves
  EXPECT_TRUE(SetCondition(st, "WorkloadReady", true, "WorkloadCreated", "ok", 2, "T4"));
  EXPECT_EQ((*FindCondition(st, "WorkloadReady"))["lastTransitionTime"], "T4");
  EXPECT_EQ(st["conditions"].size(), 1u);
}

json Ok3() {
  json st = json::object();
  SetCondition(st, "TransportReady", true, "TransportValidated", "", 1, "T");
  SetCondition(st, "WorkloadReady", true, "WorkloadCreated", "", 1, "T");
  SetCondition(st, "ScalingReady", true, "ScaledObjectCreated", "", 1, "T");
  return st;
}

struct Row {
  const char* name;
  std::function<void(json&)> setup;
  bool scaling;
  std::string want;
};

TEST(OverallStatus, Table) {
  auto replicas = [](int ready, int total, int desired, int failing = 0) {
    return [=](json& s) {
      s["readyReplicas"] = ready;
      s["totalReplicas"] = total;
      s["desiredReplicas"] = desired;
      s["failingPods"] = failing;
    };
  };
  auto unhealthy = [](const std::string& message) {
    return [=](json& s) {
      SetCondition(s, "WorkloadReady", false, "PodsNotHealthy", message, 1, "T");
      s["desiredReplicas"] = 1;
    };
  };
  std::vector<Row> rows = {
      {"running", replicas(2, 2, 2), true, "Running"},
      {"napping", replicas(0, 0, 0), true, "Napping"},
      {"manual zero", replicas(0, 0, 0), false, "Running"},
      {"scaling up", replicas(1, 1, 3), true, "ScalingUp"},
      {"scaling down", replicas(3, 3, 1), true, "ScalingDown"},
      {"not ready yet", replicas(1, 2, 2), true, "ScalingUp"},
      {"failing pods", replicas(1, 2, 2, 1), true, "WorkloadError"},
      {"transport",
       [](json& s) { SetCondition(s, "TransportReady", false, "InvalidTransport", "x", 1, "T"); },
       true, "TransportError"},
      {"runtime crash", unhealthy("Container asya-runtime in CrashLoopBackOff (pod: p)"), true,
       "RuntimeError"},
      {"sidecar crash", unhealthy("Container asya-sidecar in CrashLoopBackOff (pod: p)"), true,
       "SidecarError"},
      {"image pull", unhealthy("Container asya-runtime in ImagePullBackOff (pod: p)"), true,
       "ImagePullError"},
      {"resources", unhealthy("Pod p unschedulable: Insufficient cpu"), true, "PendingResources"},
      {"volume", unhealthy("Pod p: MountVolume.SetUp failed"), true, "VolumeError"},
      {"config", unhealthy("Pod p: configmap \"x\" not found"), true, "ConfigError"},
      {"no pods yet", unhealthy("No pods found"), true, "ScalingUp"},
      {"validation",
       [](json& s) { SetCondition(s, "WorkloadReady", false, "ValidationError", "x", 1, "T"); },
       true, "ValidationError"},
      {"scaling not ready",
       [&](json& s) {
         SetCondition(s, "ScalingReady", false, "ReconcileError", "x", 1, "T");
         replicas(1, 1, 1)(s);
       },
       true, "ScalingError"},
  };
  for (const auto& row : rows) {
    json st = Ok3();
    row.setup(st);
    EXPECT_EQ(OverallStatus(st, false, row.scaling, false), row.want) << row.name;
  }
  json st = Ok3();
  replicas(1, 2, 2)(st);
  EXPECT_EQ(OverallStatus(st, false, true, true), "Degraded");
  EXPECT_EQ(OverallStatus(st, true, true, false), "Terminating");
}

}  // namespace
}  // namespace asya::op
