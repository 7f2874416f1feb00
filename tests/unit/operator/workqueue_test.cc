// The work queue: de-duplication, one holder per key, per-key exponential backoff, delays.
#include "asya/operator/workqueue.h"

#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "asya/base/clock.h"

namespace asya::op {
namespace {

using std::chrono::milliseconds;

TEST(WorkQueue, DeduplicatesQueuedKeys) {
  ManualClock clock;
  WorkQueue q(&clock);
  q.Add("a");
  q.Add("b");
  q.Add("a");
  EXPECT_EQ(q.Len(), 2u);
  EXPECT_EQ(*q.Get(), "a");
  EXPECT_EQ(*q.Get(), "b");
}

TEST(WorkQueue, KeyAddedWhileHeldIsRequeuedAfterDone) {
  ManualClock clock;
  WorkQueue q(&clock);
  q.Add("a");
  auto k = q.Get();
  ASSERT_EQ(*k, "a");
  q.Add("a");  // while held: not handed to another worker
  EXPECT_EQ(q.Len(), 0u);
  q.Done("a");
  EXPECT_EQ(q.Len(), 1u);
  EXPECT_EQ(*q.Get(), "a");
  q.Done("a");
  EXPECT_EQ(q.Len(), 0u);
}

TEST(WorkQueue, RateLimitedBackoffDoublesAndForgetResets) {
  ManualClock clock;
  WorkQueue q(&clock, milliseconds(100), milliseconds(350));
  q.AddRateLimited("a");  // 100ms
  EXPECT_EQ(q.Len(), 0u);
  EXPECT_EQ(q.Waiting(), 1u);
  clock.Advance(milliseconds(99));
  q.Add("z");
  EXPECT_EQ(*q.Get(), "z");  // "a" not due yet
  EXPECT_EQ(q.Len(), 0u);
  clock.Advance(milliseconds(1));
  EXPECT_EQ(*q.Get(), "a");
  q.Done("a");
  q.AddRateLimited("a");  // 200ms
  clock.Advance(milliseconds(199));
  q.Add("y");
  EXPECT_EQ(*q.Get(), "y");
  clock.Advance(milliseconds(1));
  EXPECT_EQ(*q.Get(), "a");
  q.Done("a");
  q.AddRateLimited("a");  // 400ms capped to 350ms
  EXPECT_EQ(q.Failures("a"), 3);
  clock.Advance(milliseconds(350));
  EXPECT_EQ(*q.Get(), "a");
  q.Done("a");
  q.Forget("a");
  EXPECT_EQ(q.Failures("a"), 0);
}

TEST(WorkQueue, ShutDownReleasesWaiters) {
  WorkQueue q(&SystemClock());
  std::thread t([&] { EXPECT_FALSE(q.Get().has_value()); });
  q.ShutDown();
  t.join();
}

TEST(WorkQueue, NeverTwoWorkersOnOneKey) {
  WorkQueue q(&SystemClock());
  std::mutex mu;
  std::map<std::string, int> holding;
  std::atomic<bool> overlap{false};
  std::atomic<int> processed{0};
  std::vector<std::thread> workers;
  for (int w = 0; w < 4; ++w) {
    workers.emplace_back([&] {
      while (auto k = q.Get()) {
        {
          std::lock_guard<std::mutex> lock(mu);
          if (holding[*k]++ != 0)
            overlap = true;
        }
        std::this_thread::sleep_for(std::chrono::microseconds(200));
        {
          std::lock_guard<std::mutex> lock(mu);
          --holding[*k];
        }
        ++processed;
        q.Done(*k);
      }
    });
  }
  for (int i = 0; i < 2000; ++i)
    q.Add("k" + std::to_string(i % 3));
  while (q.Len() > 0)
    std::this_thread::sleep_for(milliseconds(5));
  std::this_thread::sleep_for(milliseconds(20));
  q.ShutDown();
  for (auto& t : workers)
    t.join();
  EXPECT_FALSE(overlap.load());
  EXPECT_GT(processed.load(), 0);
}

}  // namespace
}  // namespace asya::op
