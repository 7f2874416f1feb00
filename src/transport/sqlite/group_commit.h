// Group commit of concurrent callers (private header of the sqlite transport).
//
// Each caller queues an Entry. When no commit runs, the caller commits every queued entry (its
// own included) at once; otherwise it sleeps until a commit that included its entry is over, or
// until it is handed the next commit (it was queued after that commit had started). Every waiting
// caller is woken exactly once: the ones a commit finished, and the oldest one queued meanwhile
// (the next committer); the rest sleep on. A lone caller commits at once, without waiting.
//
// A sleeping caller waits on a semaphore of its own thread, posted after the committer has let go
// of the queue's mutex: the woken thread neither finds that mutex still held (and sleeps again on
// it) nor needs it to learn that its entry is done.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <mutex>
#include <span>
#include <vector>

#include <semaphore.h>

namespace asya::transport::sqlite {

class GroupCommit {
 public:
  // One caller's place in line; lives on the caller's stack for the duration of Join().
  struct Entry {
    void* item = nullptr;  // what the commit function works on (the caller's)

   private:
    friend class GroupCommit;
    bool done = false;      // a commit that included it is over (set under mu_, read after wake)
    bool commit = false;    // this caller runs the next commit (likewise)
    sem_t* wake = nullptr;  // the caller's thread's semaphore: posted once, when either is set
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
  std::vector<Entry*> queue_;  // guarded by mu_: entries not taken by a commit yet, oldest first
  bool committing_ = false;    // guarded by mu_: a caller commits, or was handed the next commit
  std::atomic<uint64_t> wakeups_{0};
};

}  // namespace asya::transport::sqlite
