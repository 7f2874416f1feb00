#include "asya/local/autoscaler.h"

#include <algorithm>

namespace asya::local {

int DesiredReplicas(const AutoscalerInput& in, AutoscalerState& state) {
  if (!in.scaling.enabled) {
    state.recommendations.clear();
    return in.workload_replicas;
  }
  const actor::ScalingSpec& s = in.scaling;
  const int64_t messages =
      std::max<int64_t>(0, in.ready_messages) + std::max<int64_t>(0, in.inflight_messages);
  if (messages > 0) {
    state.last_active_ms = in.now_ms;
  }
  const int64_t ql = std::max(1, s.queue_length);
  int64_t raw = (messages + ql - 1) / ql;
  const bool cooling = state.last_active_ms >= 0 &&
                       in.now_ms - state.last_active_ms < int64_t{s.cooldown_period_s} * 1000;
  if (messages > 0 || cooling) {
    raw = std::max<int64_t>(raw, 1);  // active (or within cooldown): HPA minimum is 1
  }
  int desired = static_cast<int>(std::clamp<int64_t>(raw, s.min_replicas, s.max_replicas));

  // HPA scale-down stabilisation over the cooldown window; scale-up is immediate.
  const int64_t window_ms = int64_t{s.cooldown_period_s} * 1000;
  while (!state.recommendations.empty() &&
         in.now_ms - state.recommendations.front().first > window_ms) {
    state.recommendations.pop_front();
  }
  state.recommendations.emplace_back(in.now_ms, desired);
  if (desired == 0) {
    return 0;  // KEDA's own 1 -> 0 step: the cooldown above already held it
  }
  if (desired < in.current) {
    int stable = desired;
    for (const auto& [t, r] : state.recommendations) {
      stable = std::max(stable, r);
    }
    // Never hold more than is running: stabilisation only slows a scale-down.
    desired = std::min(stable, in.current);
  }
  return desired;
}

int64_t RestartBackoffMs(int consecutive_crashes, int64_t base_ms, int64_t max_ms) {
  if (consecutive_crashes <= 0) {
    return 0;
  }
  int64_t d = base_ms;
  for (int i = 1; i < consecutive_crashes && d < max_ms; ++i) {
    d *= 2;
  }
  return std::min(d, max_ms);
}

}  // namespace asya::local
