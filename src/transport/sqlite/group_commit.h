// Group commit of concurrent callers (private header of the sqlite transport).
//
// Each caller queues an Entry. When no commit runs, the caller commits every queued entry (its
// own included) at once; otherwise it sleeps until a commit that included its entry is over, or
// until it is handed the next commit (it was queued after that commit had started). Every waiting
// caller is woken exactly once: the ones a commit finished, and the oldest one queued meanwhile
// (the next committer); the rest sleep on. A lone caller commits at once, without waiting.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <span>
#include <vector>

namespace asya::transport::sqlite {

class GroupCommit {
 public:
  // One caller's place in line; lives on the caller's stack for the duration of Join().
  struct Entry {
    void* item = nullptr;  // what the commit function works on (the caller's)

   private:
    friend class GroupCommit;
    bool done = false;           // guarded by mu_: a commit that included it is over
    bool commit = false;         // guarded by mu_: this caller runs the next commit
    std::condition_variable cv;  // signalled once: when done or commit is set
  };
  using CommitFn = std::function<void(std::span<Entry* const>)>;

  // Queues `entry` and returns once a commit that included it is over (run by this caller with
  // `commit`, or by another caller with its own function). `commit` must not throw.
  void Join(Entry& entry, const CommitFn& commit);

  // For tests: how many callers are queued for the next commit (sleeping), and how many times a
  // sleeping caller has been woken so far.
  [[nodiscard]] size_t queued() const;
  [[nodiscard]] uint64_t wakeups() const;

 private:
  mutable std::mutex mu_;
  std::vector<Entry*> queue_;  // entries not taken by a commit yet, oldest first
  bool committing_ = false;    // a caller is committing, or has been handed the next commit
  uint64_t wakeups_ = 0;
};

}  // namespace asya::transport::sqlite
