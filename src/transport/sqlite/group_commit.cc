#include "transport/sqlite/group_commit.h"

#include <cerrno>

namespace asya::transport::sqlite {
namespace {

// One semaphore per thread, alive as long as the thread: a committer may still be inside
// sem_post() when the woken caller has returned from Join() (and its Entry is gone).
struct ThreadWake {
  sem_t sem{};
  ThreadWake() { sem_init(&sem, /*pshared=*/0, /*value=*/0); }
  ~ThreadWake() { sem_destroy(&sem); }
  ThreadWake(const ThreadWake&) = delete;
  ThreadWake& operator=(const ThreadWake&) = delete;
};

thread_local ThreadWake t_wake;

void Sleep(sem_t* sem) {
  while (sem_wait(sem) != 0 && errno == EINTR) {
  }
}

}  // namespace

void GroupCommit::Join(Entry& entry, const CommitFn& commit) {
  std::unique_lock lock(mu_);
  queue_.push_back(&entry);
  if (committing_) {
    entry.wake = &t_wake.sem;
    lock.unlock();
    Sleep(entry.wake);  // sem_wait/sem_post order the flags, set under mu_ before the post
    wakeups_.fetch_add(1, std::memory_order_relaxed);
    if (entry.done) {
      return;
    }
    lock.lock();  // entry.commit: this caller commits next
  } else {
    committing_ = true;
  }
  std::vector<Entry*> batch;  // this entry and every one queued before it
  batch.swap(queue_);
  lock.unlock();
  commit(batch);
  std::vector<sem_t*> wake;
  wake.reserve(batch.size());
  lock.lock();
  Entry* next = queue_.empty() ? nullptr : queue_.front();
  committing_ = next != nullptr;
  for (Entry* e : batch) {
    e->done = true;
    if (e != &entry) {
      wake.push_back(e->wake);
    }
  }
  if (next != nullptr) {
    next->commit = true;
    wake.push_back(next->wake);
  }
  lock.unlock();
  // Whoever queued meanwhile (but `next`) sleeps on until its own commit is over.
  for (sem_t* sem : wake) {
    sem_post(sem);
  }
}

size_t GroupCommit::queued() const {
  std::lock_guard lock(mu_);
  return queue_.size();
}

uint64_t GroupCommit::wakeups() const {
  return wakeups_.load(std::memory_order_relaxed);
}

}  // namespace asya::transport::sqlite
