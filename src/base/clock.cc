#include "asya/base/clock.h"

#include <thread>

namespace asya {
namespace {

class RealClock final : public Clock {
 public:
  MonoTime Now() const override { return std::chrono::steady_clock::now(); }
  WallTime WallNow() const override { return std::chrono::system_clock::now(); }
  void SleepFor(Duration d) override { std::this_thread::sleep_for(d); }

 protected:
  void WaitSlice(std::unique_lock<std::mutex>& lock, std::condition_variable& cv,
                 Duration d) override {
    cv.wait_for(lock, d);
  }
};

}  // namespace

Clock& SystemClock() {
  static RealClock clock;
  return clock;
}

ManualClock::ManualClock(WallTime wall_start) : wall_start_(wall_start) {}

Clock::MonoTime ManualClock::Now() const {
  std::lock_guard<std::mutex> lock(mu_);
  return MonoTime(offset_);
}

Clock::WallTime ManualClock::WallNow() const {
  std::lock_guard<std::mutex> lock(mu_);
  return wall_start_ + std::chrono::duration_cast<std::chrono::system_clock::duration>(offset_);
}

void ManualClock::Advance(Duration d) {
  std::lock_guard<std::mutex> lock(mu_);
  offset_ += d;
}

void ManualClock::SleepFor(Duration d) {
  std::lock_guard<std::mutex> lock(mu_);
  offset_ += d;
  slept_ += d;
}

Clock::Duration ManualClock::Slept() const {
  std::lock_guard<std::mutex> lock(mu_);
  return slept_;
}

void ManualClock::WaitSlice(std::unique_lock<std::mutex>& lock, std::condition_variable& cv,
                            Duration d) {
  (void)cv;
  // Let other threads that hold `lock`'s mutex make progress, then jump to the deadline.
  lock.unlock();
  std::this_thread::yield();
  lock.lock();
  SleepFor(d);
}

}  // namespace asya
