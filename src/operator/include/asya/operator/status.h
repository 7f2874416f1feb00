// The status logic of an AsyncActor (reference-controlplane §4), pure: pod inspection, condition
// upsert, the overall `status.status`. The reconciler feeds it what it read from the API.
#pragma once

#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

namespace asya::op {

struct PodScan {
  int running = 0;  // Running and Ready
  int pending = 0;
  int failing = 0;
  std::string problem;  // first health problem (WorkloadReady message); "" = healthy
};

// Pods of one actor (an array of Pod objects). Pods being deleted are not counted. Zero pods is a
// problem ("No pods found") only when `expect_pods`.
PodScan ScanPods(const nlohmann::json& pods, bool expect_pods);

// Upserts condition `type` in `status.conditions`: reason, message and observedGeneration follow
// the latest call (reason changes are tracked, unlike the original); lastTransitionTime changes
// only when `status` changes. Returns true when anything changed.
bool SetCondition(nlohmann::json& status, const std::string& type, bool ok,
                  const std::string& reason, const std::string& message, int64_t generation,
                  const std::string& now);

// Looks up a condition; nullptr when missing.
const nlohmann::json* FindCondition(const nlohmann::json& status, const std::string& type);

// `status.status` from a status object whose conditions and replica fields are filled (§4.2):
// Terminating, TransportError, PendingResources, ImagePullError, RuntimeError, SidecarError,
// VolumeError, ConfigError, WorkloadError, ScalingError, Napping, ScalingUp, ScalingDown,
// Degraded, Running, Unknown. `scaled_long_ago`: lastScaleTime is more than 5 minutes old.
std::string OverallStatus(const nlohmann::json& status, bool deleting, bool scaling_enabled,
                          bool scaled_long_ago);

// Status equality for "write only when changed": everything but nothing (exact JSON equality
// of the two status objects).
inline bool SameStatus(const nlohmann::json& a, const nlohmann::json& b) {
  return a == b;
}

}  // namespace asya::op
