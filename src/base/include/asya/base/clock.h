// Time as a collaborator: code that waits, backs off or stamps times takes a `Clock&`, so tests
// drive time with a ManualClock instead of sleeping. SystemClock() is the real one.
#pragma once

#include <chrono>
#include <condition_variable>
#include <mutex>

namespace asya {

class Clock {
 public:
  using MonoTime = std::chrono::steady_clock::time_point;
  using WallTime = std::chrono::system_clock::time_point;
  using Duration = std::chrono::steady_clock::duration;

  virtual ~Clock() = default;
  // Monotonic time, for deadlines and intervals.
  virtual MonoTime Now() const = 0;
  // Wall-clock time, for timestamps that leave the process (RFC 3339, SigV4, file names).
  virtual WallTime WallNow() const = 0;
  // Waits on `cv` (with `lock` held on entry and exit) until `stop()` is true or `d` has passed
  // on this clock. Returns stop()'s final value, like condition_variable::wait_for.
  template <class Pred>
  bool WaitFor(std::unique_lock<std::mutex>& lock, std::condition_variable& cv, Duration d,
               Pred stop) {
    const MonoTime until = Now() + d;
    while (!stop()) {
      const MonoTime now = Now();
      if (now >= until) {
        return stop();
      }
      WaitSlice(lock, cv, until - now);
    }
    return true;
  }
  // Blocks the calling thread for `d` of this clock's time (no interruption).
  virtual void SleepFor(Duration d) = 0;

 protected:
  // One bounded wait inside WaitFor; a manual clock returns at once after advancing time.
  virtual void WaitSlice(std::unique_lock<std::mutex>& lock, std::condition_variable& cv,
                         Duration d) = 0;
};

// The process's real clock (steady_clock + system_clock); shared, stateless.
Clock& SystemClock();

// A clock that moves only when told: Advance() moves both readings; SleepFor and WaitFor move
// time forward by the requested amount at once (so code under test never really sleeps).
// Thread-safe; Now() is the same for every thread.
class ManualClock final : public Clock {
 public:
  explicit ManualClock(WallTime wall_start = WallTime(std::chrono::seconds(1'700'000'000)));
  MonoTime Now() const override;
  WallTime WallNow() const override;
  void SleepFor(Duration d) override;
  void Advance(Duration d);
  // Total time requested through SleepFor/WaitFor so far (what the code would have slept).
  Duration Slept() const;

 protected:
  void WaitSlice(std::unique_lock<std::mutex>& lock, std::condition_variable& cv,
                 Duration d) override;

 private:
  mutable std::mutex mu_;
  Duration offset_{};
  Duration slept_{};
  WallTime wall_start_;
};

}  // namespace asya
