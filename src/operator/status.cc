#include "asya/operator/status.h"

#include <array>
#include <string>

namespace asya::op {
namespace {

using nlohmann::json;

constexpr std::array<const char*, 7> kFailingReasons = {
    "CrashLoopBackOff",           "ImagePullBackOff", "ErrImagePull",     "CreateContainerError",
    "CreateContainerConfigError", "InvalidImageName", "RunContainerError"};

bool IsFailingReason(const std::string& r) {
  for (const char* f : kFailingReasons) {
    if (r == f)
      return true;
  }
  return false;
}

std::string WaitingReason(const json& cs) {
  if (cs.contains("state") && cs["state"].contains("waiting")) {
    return cs["state"]["waiting"].value("reason", "");
  }
  return "";
}

const json& Arr(const json& obj, const char* key) {
  static const json empty = json::array();
  auto it = obj.find(key);
  return it != obj.end() && it->is_array() ? *it : empty;
}

const json* PodCond(const json& pod, const std::string& type) {
  if (!pod.contains("status"))
    return nullptr;
  for (const auto& c : Arr(pod["status"], "conditions")) {
    if (c.value("type", "") == type)
      return &c;
  }
  return nullptr;
}

bool Contains(const std::string& s, const char* what) {
  return s.find(what) != std::string::npos;
}

bool IsPodFailing(const json& pod) {
  const json& st = pod.contains("status") ? pod["status"] : json::object();
  for (const char* key : {"initContainerStatuses", "containerStatuses"}) {
    for (const auto& cs : Arr(st, key)) {
      if (IsFailingReason(WaitingReason(cs)))
        return true;
    }
  }
  if (const json* c = PodCond(pod, "PodScheduled"); c != nullptr &&
                                                    c->value("status", "") == "False" &&
                                                    c->value("reason", "") == "Unschedulable") {
    return true;
  }
  if (const json* c = PodCond(pod, "ContainersReady");
      c != nullptr && c->value("status", "") == "False") {
    std::string m = c->value("message", "");
    if (Contains(m, "MountVolume.SetUp failed") ||
        ((Contains(m, "configmap") || Contains(m, "secret")) && Contains(m, "not found"))) {
      return true;
    }
  }
  if (const json* c = PodCond(pod, "PodReadyToStartContainers");
      c != nullptr && c->value("status", "") == "False") {
    return true;
  }
  return false;
}

std::string PodProblem(const json& pod) {
  std::string name = pod["metadata"].value("name", "");
  const json& st = pod.contains("status") ? pod["status"] : json::object();
  if (st.value("phase", "") == "Failed")
    return "Pod " + name + " in Failed phase";
  for (const auto& cs : Arr(st, "initContainerStatuses")) {
    if (cs.value("restartCount", 0) > 5) {
      return "Init container " + cs.value("name", "") + " has " +
             std::to_string(cs.value("restartCount", 0)) + " restarts (pod: " + name + ")";
    }
    if (std::string r = WaitingReason(cs); IsFailingReason(r)) {
      return "Init container " + cs.value("name", "") + " in " + r + " (pod: " + name + ")";
    }
  }
  // Waiting reasons first: a crash loop with many restarts names CrashLoopBackOff.
  for (const auto& cs : Arr(st, "containerStatuses")) {
    std::string c = cs.value("name", "");
    if (c != "asya-runtime" && c != "asya-sidecar")
      continue;
    if (std::string r = WaitingReason(cs); IsFailingReason(r)) {
      return "Container " + c + " in " + r + " (pod: " + name + ")";
    }
  }
  for (const auto& cs : Arr(st, "containerStatuses")) {
    std::string c = cs.value("name", "");
    if (c != "asya-runtime" && c != "asya-sidecar")
      continue;
    if (cs.value("restartCount", 0) > 5) {
      return "Container " + c + " has " + std::to_string(cs.value("restartCount", 0)) +
             " restarts (pod: " + name + ")";
    }
  }
  if (const json* c = PodCond(pod, "PodScheduled");
      c != nullptr && c->value("status", "") == "False") {
    return "Pod " + name + " unschedulable: " + c->value("message", "");
  }
  if (const json* c = PodCond(pod, "ContainersReady");
      c != nullptr && c->value("status", "") == "False" && !c->value("message", "").empty()) {
    return "Pod " + name + ": " + c->value("message", "");
  }
  return "";
}

int Int(const json& obj, const char* key) {
  auto it = obj.find(key);
  return it != obj.end() && it->is_number_integer() ? it->get<int>() : 0;
}

}  // namespace

PodScan ScanPods(const json& pods, bool expect_pods) {
  PodScan scan;
  int live = 0;
  for (const auto& pod : pods) {
    if (pod["metadata"].contains("deletionTimestamp"))
      continue;
    ++live;
    std::string phase = pod.contains("status") ? pod["status"].value("phase", "") : "";
    const json* ready = PodCond(pod, "Ready");
    bool is_ready = ready != nullptr && ready->value("status", "") == "True";
    if (phase == "Running" && is_ready) {
      ++scan.running;
    } else if (phase == "Failed" || IsPodFailing(pod)) {
      ++scan.failing;
    } else {
      ++scan.pending;
    }
    if (scan.problem.empty())
      scan.problem = PodProblem(pod);
  }
  if (live == 0 && expect_pods)
    scan.problem = "No pods found";
  return scan;
}

const json* FindCondition(const json& status, const std::string& type) {
  if (!status.contains("conditions"))
    return nullptr;
  for (const auto& c : status["conditions"]) {
    if (c.value("type", "") == type)
      return &c;
  }
  return nullptr;
}

bool SetCondition(json& status, const std::string& type, bool ok, const std::string& reason,
                  const std::string& message, int64_t generation, const std::string& now) {
  if (!status.contains("conditions") || !status["conditions"].is_array()) {
    status["conditions"] = json::array();
  }
  std::string st = ok ? "True" : "False";
  json cond = {{"type", type},
               {"status", st},
               {"reason", reason},
               {"message", message},
               {"observedGeneration", generation},
               {"lastTransitionTime", now}};
  for (auto& c : status["conditions"]) {
    if (c.value("type", "") != type)
      continue;
    if (c.value("status", "") == st)
      cond["lastTransitionTime"] = c.value("lastTransitionTime", now);
    if (c == cond)
      return false;
    c = cond;
    return true;
  }
  status["conditions"].push_back(cond);
  return true;
}

std::string OverallStatus(const json& status, bool deleting, bool scaling_enabled,
                          bool scaled_long_ago) {
  auto is_true = [&](const char* t) {
    const json* c = FindCondition(status, t);
    return c != nullptr && c->value("status", "") == "True";
  };
  if (deleting)
    return "Terminating";
  if (const json* v = FindCondition(status, "WorkloadReady");
      v != nullptr && v->value("reason", "") == "ValidationError") {
    return "ValidationError";
  }
  if (!is_true("TransportReady"))
    return "TransportError";
  const json* wr = FindCondition(status, "WorkloadReady");
  if (wr == nullptr)
    return "WorkloadError";
  if (wr->value("status", "") != "True") {
    std::string reason = wr->value("reason", "");
    std::string m = wr->value("message", "");
    if (reason == "PodsNotHealthy" && !m.empty()) {
      if (Contains(m, "Insufficient"))
        return "PendingResources";
      if (Contains(m, "ImagePullBackOff") || Contains(m, "ErrImagePull"))
        return "ImagePullError";
      if (Contains(m, "asya-runtime") && Contains(m, "CrashLoopBackOff"))
        return "RuntimeError";
      if (Contains(m, "asya-sidecar") && Contains(m, "CrashLoopBackOff"))
        return "SidecarError";
      if (Contains(m, "MountVolume") || Contains(m, "VolumeMount"))
        return "VolumeError";
      if ((Contains(m, "configmap") || Contains(m, "secret")) && Contains(m, "not found")) {
        return "ConfigError";
      }
    }
    if (reason == "PodsNotHealthy" && Contains(m, "No pods found")) {
      // zero pods while some are wanted: still coming up
      if (Int(status, "desiredReplicas") > 0)
        return "ScalingUp";
    }
    return "WorkloadError";
  }
  if (scaling_enabled && !is_true("ScalingReady"))
    return "ScalingError";
  int ready = Int(status, "readyReplicas");
  int total = Int(status, "totalReplicas");
  int desired = Int(status, "desiredReplicas");
  int failing = Int(status, "failingPods");
  if (failing > 0 && ready < desired)
    return "WorkloadError";
  if (desired == 0 && scaling_enabled)
    return "Napping";
  if (total < desired && desired > 0)
    return "ScalingUp";
  if (total > desired)
    return "ScalingDown";
  if (ready < total && total > 0)
    return scaled_long_ago ? "Degraded" : "ScalingUp";
  if (ready == desired && ready > 0)
    return "Running";
  if (ready == 0 && desired == 0 && !scaling_enabled)
    return "Running";
  return "Unknown";
}

}  // namespace asya::op
