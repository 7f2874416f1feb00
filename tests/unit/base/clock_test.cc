#include "asya/base/clock.h"

#include <thread>

#include <gtest/gtest.h>

namespace asya {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

TEST(ManualClock, MovesOnlyWhenTold) {
  ManualClock clock;
  const auto t0 = clock.Now();
  const auto w0 = clock.WallNow();
  EXPECT_EQ(clock.Now(), t0);
  clock.Advance(seconds(5));
  EXPECT_EQ(clock.Now() - t0, seconds(5));
  EXPECT_EQ(clock.WallNow() - w0, seconds(5));
  EXPECT_EQ(clock.Slept(), Clock::Duration::zero());
}

TEST(ManualClock, SleepAndWaitAdvanceWithoutSleeping) {
  ManualClock clock;
  const auto t0 = clock.Now();
  const auto real0 = std::chrono::steady_clock::now();
  clock.SleepFor(seconds(30));
  std::mutex mu;
  std::condition_variable cv;
  std::unique_lock<std::mutex> lock(mu);
  EXPECT_FALSE(clock.WaitFor(lock, cv, seconds(60), [] { return false; }));
  EXPECT_EQ(clock.Now() - t0, seconds(90));
  EXPECT_EQ(clock.Slept(), seconds(90));
  EXPECT_LT(std::chrono::steady_clock::now() - real0, seconds(5));
}

TEST(ManualClock, WaitForReturnsAtOnceWhenStopIsTrue) {
  ManualClock clock;
  std::mutex mu;
  std::condition_variable cv;
  std::unique_lock<std::mutex> lock(mu);
  EXPECT_TRUE(clock.WaitFor(lock, cv, seconds(60), [] { return true; }));
  EXPECT_EQ(clock.Slept(), Clock::Duration::zero());
}

TEST(SystemClock, WaitForWakesOnStop) {
  Clock& clock = SystemClock();
  std::mutex mu;
  std::condition_variable cv;
  bool stop = false;
  std::thread waker([&] {
    std::this_thread::sleep_for(milliseconds(20));
    std::lock_guard<std::mutex> g(mu);
    stop = true;
    cv.notify_all();
  });
  std::unique_lock<std::mutex> lock(mu);
  EXPECT_TRUE(clock.WaitFor(lock, cv, seconds(30), [&] { return stop; }));
  lock.unlock();
  waker.join();
}

TEST(SystemClock, WaitForTimesOut) {
  Clock& clock = SystemClock();
  std::mutex mu;
  std::condition_variable cv;
  std::unique_lock<std::mutex> lock(mu);
  const auto t0 = clock.Now();
  EXPECT_FALSE(clock.WaitFor(lock, cv, milliseconds(30), [] { return false; }));
  EXPECT_GE(clock.Now() - t0, milliseconds(30));
}

}  // namespace
}  // namespace asya
