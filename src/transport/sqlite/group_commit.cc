#include "transport/sqlite/group_commit.h"

namespace asya::transport::sqlite {

void GroupCommit::Join(Entry& entry, const CommitFn& commit) {
  std::unique_lock lock(mu_);
  queue_.push_back(&entry);
  if (committing_) {
    while (!entry.done && !entry.commit) {
      entry.cv.wait(lock);
      ++wakeups_;
    }
    if (entry.done) {
      return;
    }
  } else {
    committing_ = true;
  }
  std::vector<Entry*> batch;  // this entry and every one queued before it
  batch.swap(queue_);
  lock.unlock();
  commit(batch);
  lock.lock();
  Entry* next = queue_.empty() ? nullptr : queue_.front();
  committing_ = next != nullptr;
  // Signalled with mu_ held: a woken caller returns (and its Entry goes away) only once it has
  // taken mu_, so no Entry is touched after its owner left.
  for (Entry* e : batch) {
    e->done = true;
    if (e != &entry) {
      e->cv.notify_one();
    }
  }
  if (next != nullptr) {
    next->commit = true;
    next->cv.notify_one();
  }
}

size_t GroupCommit::queued() const {
  std::lock_guard lock(mu_);
  return queue_.size();
}

uint64_t GroupCommit::wakeups() const {
  std::lock_guard lock(mu_);
  return wakeups_;
}

}  // namespace asya::transport::sqlite
