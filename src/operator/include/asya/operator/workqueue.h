// A de-duplicating, rate-limited work queue of keys ("<ns>/<name>") for N workers, in the manner
// of client-go's: a key added while queued is queued once; a key added while a worker holds it
// is queued again after Done() (so no two workers ever hold one key); AddRateLimited delays a
// key by a per-key exponential backoff (base * 2^failures, capped) that Forget() resets;
// AddAfter delays by a fixed time. Times come from the Clock.
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>

#include "asya/base/clock.h"

namespace asya::op {

class WorkQueue {
 public:
  explicit WorkQueue(Clock* clock, Clock::Duration base_backoff = std::chrono::milliseconds(50),
                     Clock::Duration max_backoff = std::chrono::seconds(60));

  void Add(const std::string& key);
  void AddAfter(const std::string& key, Clock::Duration delay);
  void AddRateLimited(const std::string& key);
  void Forget(const std::string& key);
  [[nodiscard]] int Failures(const std::string& key) const;

  // Blocks until a key is ready (returns it, now held by the caller) or ShutDown (nullopt).
  std::optional<std::string> Get();
  // Gives a key back; if it was added meanwhile it is queued again.
  void Done(const std::string& key);
  void ShutDown();

  [[nodiscard]] size_t Len() const;      // ready keys
  [[nodiscard]] size_t Waiting() const;  // delayed keys

 private:
  void AddLocked(const std::string& key);
  void PromoteLocked();

  Clock* clock_;
  Clock::Duration base_, max_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::string> queue_;
  std::set<std::string> dirty_;       // queued or to be queued after Done
  std::set<std::string> processing_;  // held by a worker
  std::multimap<Clock::MonoTime, std::string> delayed_;
  std::map<std::string, int> failures_;
  bool shutdown_ = false;
};

}  // namespace asya::op
