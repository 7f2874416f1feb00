#include "asya/operator/workqueue.h"

#include <algorithm>

namespace asya::op {

WorkQueue::WorkQueue(Clock* clock, Clock::Duration base_backoff, Clock::Duration max_backoff)
    : clock_(clock), base_(base_backoff), max_(max_backoff) {}

void WorkQueue::AddLocked(const std::string& key) {
  if (shutdown_ || dirty_.count(key) != 0)
    return;
  dirty_.insert(key);
  if (processing_.count(key) != 0)
    return;  // re-queued by Done
  queue_.push_back(key);
  cv_.notify_one();
}

void WorkQueue::Add(const std::string& key) {
  std::lock_guard<std::mutex> lock(mu_);
  AddLocked(key);
}

void WorkQueue::AddAfter(const std::string& key, Clock::Duration delay) {
  std::lock_guard<std::mutex> lock(mu_);
  if (shutdown_)
    return;
  if (delay <= Clock::Duration::zero()) {
    AddLocked(key);
    return;
  }
  delayed_.emplace(clock_->Now() + delay, key);
  cv_.notify_all();
}

void WorkQueue::AddRateLimited(const std::string& key) {
  Clock::Duration delay;
  {
    std::lock_guard<std::mutex> lock(mu_);
    int n = failures_[key]++;
    delay = base_;
    for (int i = 0; i < n && delay < max_; ++i)
      delay *= 2;
    delay = std::min(delay, max_);
  }
  AddAfter(key, delay);
}

void WorkQueue::Forget(const std::string& key) {
  std::lock_guard<std::mutex> lock(mu_);
  failures_.erase(key);
}

int WorkQueue::Failures(const std::string& key) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = failures_.find(key);
  return it == failures_.end() ? 0 : it->second;
}

void WorkQueue::PromoteLocked() {
  auto now = clock_->Now();
  while (!delayed_.empty() && delayed_.begin()->first <= now) {
    std::string key = delayed_.begin()->second;
    delayed_.erase(delayed_.begin());
    AddLocked(key);
  }
}

std::optional<std::string> WorkQueue::Get() {
  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    if (shutdown_)
      return std::nullopt;
    PromoteLocked();
    if (!queue_.empty()) {
      std::string key = queue_.front();
      queue_.pop_front();
      dirty_.erase(key);
      processing_.insert(key);
      return key;
    }
    Clock::Duration wait = std::chrono::milliseconds(200);
    if (!delayed_.empty()) {
      wait = std::min(wait, delayed_.begin()->first - clock_->Now());
      if (wait < Clock::Duration::zero())
        wait = Clock::Duration::zero();
    }
    clock_->WaitFor(lock, cv_, wait, [&] { return shutdown_ || !queue_.empty(); });
  }
}

void WorkQueue::Done(const std::string& key) {
  std::lock_guard<std::mutex> lock(mu_);
  processing_.erase(key);
  if (dirty_.count(key) != 0 && !shutdown_) {
    queue_.push_back(key);
    cv_.notify_one();
  }
}

void WorkQueue::ShutDown() {
  std::lock_guard<std::mutex> lock(mu_);
  shutdown_ = true;
  cv_.notify_all();
}

size_t WorkQueue::Len() const {
  std::lock_guard<std::mutex> lock(mu_);
  return queue_.size();
}

size_t WorkQueue::Waiting() const {
  std::lock_guard<std::mutex> lock(mu_);
  return delayed_.size();
}

}  // namespace asya::op
