// The local autoscaler: KEDA's queue-length rules applied by `asya up`. Pure; time is passed in.
//
// Per poll (every spec.scaling.pollingInterval seconds):
//   messages = ready + in-flight of asya-<actor>
//   raw      = ceil(messages / queueLength), at least 1 while messages > 0 (KEDA activation)
//   desired  = clamp(raw, minReplicas, maxReplicas)
// Scale up at once. Scale down (HPA stabilisation) to the highest recommendation of the last
// cooldownPeriod seconds. Scale to zero only once cooldownPeriod has passed since the last poll
// that saw messages (ready or in flight), so an actor never naps with work in flight.
// Scaling disabled: desired = spec.workload.replicas.
#pragma once

#include <cstdint>
#include <deque>
#include <utility>

#include "asya/actor/manifest.h"

namespace asya::local {

struct AutoscalerState {
  int64_t last_active_ms = -1;                          // last poll that saw messages; -1 = never
  std::deque<std::pair<int64_t, int>> recommendations;  // (time, recommendation), newest last
};

struct AutoscalerInput {
  actor::ScalingSpec scaling;
  int workload_replicas = 1;
  int current = 0;  // replicas now (running or starting, not stopping)
  int64_t ready_messages = 0;
  int64_t inflight_messages = 0;
  int64_t now_ms = 0;
};

// Returns the desired replica count and updates `state`.
int DesiredReplicas(const AutoscalerInput& in, AutoscalerState& state);

// Kubelet-style restart back-off: base * 2^(crashes-1), capped at `max`; 0 when crashes == 0.
int64_t RestartBackoffMs(int consecutive_crashes, int64_t base_ms, int64_t max_ms);

}  // namespace asya::local
