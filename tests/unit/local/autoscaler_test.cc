#include "asya/local/autoscaler.h"

#include <gtest/gtest.h>

namespace asya::local {
namespace {

AutoscalerInput In(int current, int64_t ready, int64_t inflight, int64_t now_s) {
  AutoscalerInput in;
  in.scaling.present = true;
  in.scaling.enabled = true;
  in.scaling.min_replicas = 0;
  in.scaling.max_replicas = 4;
  in.scaling.queue_length = 5;
  in.scaling.polling_interval_s = 1;
  in.scaling.cooldown_period_s = 10;
  in.current = current;
  in.ready_messages = ready;
  in.inflight_messages = inflight;
  in.now_ms = now_s * 1000;
  return in;
}

TEST(Autoscaler, NapsWhenIdleFromTheStart) {
  AutoscalerState st;
  EXPECT_EQ(DesiredReplicas(In(0, 0, 0, 0), st), 0);
}

TEST(Autoscaler, WakesOnFirstMessage) {
  AutoscalerState st;
  EXPECT_EQ(DesiredReplicas(In(0, 1, 0, 0), st), 1);
}

TEST(Autoscaler, CeilOfMessagesOverQueueLength) {
  AutoscalerState st;
  EXPECT_EQ(DesiredReplicas(In(1, 6, 0, 0), st), 2);
  EXPECT_EQ(DesiredReplicas(In(2, 10, 4, 1), st), 3);  // ready + in flight
}

TEST(Autoscaler, NeverAboveMax) {
  AutoscalerState st;
  EXPECT_EQ(DesiredReplicas(In(0, 1000, 0, 0), st), 4);
}

TEST(Autoscaler, NeverBelowMin) {
  AutoscalerState st;
  AutoscalerInput in = In(0, 0, 0, 0);
  in.scaling.min_replicas = 2;
  EXPECT_EQ(DesiredReplicas(in, st), 2);
}

TEST(Autoscaler, NeverNapsWithMessagesInFlight) {
  AutoscalerState st;
  for (int t = 0; t < 100; t += 5) {
    EXPECT_EQ(DesiredReplicas(In(1, 0, 1, t), st), 1) << t;
  }
}

TEST(Autoscaler, ScalesToZeroOnlyAfterCooldown) {
  AutoscalerState st;
  EXPECT_EQ(DesiredReplicas(In(0, 3, 0, 0), st), 1);
  EXPECT_EQ(DesiredReplicas(In(1, 0, 0, 1), st), 1);
  EXPECT_EQ(DesiredReplicas(In(1, 0, 0, 9), st), 1);   // 9 s < cooldown 10 s
  EXPECT_EQ(DesiredReplicas(In(1, 0, 0, 10), st), 0);  // cooldown passed since last activity
}

TEST(Autoscaler, ScaleDownIsStabilisedOverTheCooldownWindow) {
  AutoscalerState st;
  EXPECT_EQ(DesiredReplicas(In(0, 20, 0, 0), st), 4);
  EXPECT_EQ(DesiredReplicas(In(4, 5, 0, 2), st), 4);   // recommendation 1, but 4 seen recently
  EXPECT_EQ(DesiredReplicas(In(4, 5, 0, 11), st), 1);  // 4 left the window
}

TEST(Autoscaler, ScaleUpIsImmediate) {
  AutoscalerState st;
  EXPECT_EQ(DesiredReplicas(In(0, 1, 0, 0), st), 1);
  EXPECT_EQ(DesiredReplicas(In(1, 16, 0, 1), st), 4);
}

TEST(Autoscaler, DisabledUsesWorkloadReplicas) {
  AutoscalerState st;
  AutoscalerInput in = In(0, 1000, 0, 0);
  in.scaling.enabled = false;
  in.workload_replicas = 3;
  EXPECT_EQ(DesiredReplicas(in, st), 3);
  in.workload_replicas = 0;
  EXPECT_EQ(DesiredReplicas(in, st), 0);
}

TEST(RestartBackoff, DoublesUpToTheCap) {
  EXPECT_EQ(RestartBackoffMs(0, 10'000, 300'000), 0);
  EXPECT_EQ(RestartBackoffMs(1, 10'000, 300'000), 10'000);
  EXPECT_EQ(RestartBackoffMs(2, 10'000, 300'000), 20'000);
  EXPECT_EQ(RestartBackoffMs(3, 10'000, 300'000), 40'000);
  EXPECT_EQ(RestartBackoffMs(6, 10'000, 300'000), 300'000);
  EXPECT_EQ(RestartBackoffMs(60, 10'000, 300'000), 300'000);
}

}  // namespace
}  // namespace asya::local
