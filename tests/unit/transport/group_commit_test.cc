// GroupCommit: who commits, what each commit takes, and who is woken.
#include "transport/sqlite/group_commit.h"

#include <atomic>
#include <chrono>
#include <mutex>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

namespace asya::transport::sqlite {
namespace {

using Entries = std::span<GroupCommit::Entry* const>;

// Records every commit as the list of its entries' items (ints).
struct Log {
  std::mutex mu;
  std::vector<std::vector<int>> commits;
  void Add(Entries entries) {
    std::vector<int> ids;
    for (const GroupCommit::Entry* e : entries) {
      ids.push_back(*static_cast<int*>(e->item));
    }
    std::lock_guard lock(mu);
    commits.push_back(ids);
  }
};

void WaitUntilQueued(const GroupCommit& g, size_t n) {
  while (g.queued() < n) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

TEST(GroupCommitTest, ALoneCallerCommitsAtOnceWithoutSleeping) {
  GroupCommit g;
  Log log;
  int id = 7;
  GroupCommit::Entry e;
  e.item = &id;
  g.Join(e, [&](Entries entries) { log.Add(entries); });
  ASSERT_EQ(log.commits.size(), 1u);
  EXPECT_EQ(log.commits[0], std::vector<int>{7});
  EXPECT_EQ(g.wakeups(), 0u);
}

// While caller 0 commits, callers 1, 2 and 3 queue. The next commit takes all three, run by the
// oldest (1); each of them is woken exactly once: 1 to commit, 2 and 3 when that commit is over.
// Waking every sleeper after each commit, as before, also woke 2 and 3 while 1 committed (they
// found nothing to do and slept again): five wake-ups.
TEST(GroupCommitTest, CallersQueuedDuringACommitAreCommittedNextAndEachIsWokenOnce) {
  GroupCommit g;
  Log log;
  std::mutex gate0;
  std::mutex gate1;
  std::unique_lock hold0(gate0);  // caller 0's commit waits for it
  std::unique_lock hold1(gate1);  // and caller 1's for this one
  int ids[4] = {0, 1, 2, 3};
  std::atomic<int> committing{-1};  // the caller whose commit runs
  const auto join = [&](int i) {
    GroupCommit::Entry e;
    e.item = &ids[i];
    g.Join(e, [&, i](Entries entries) {
      committing = i;
      std::lock_guard wait_for_gate(i == 0 ? gate0 : gate1);
      log.Add(entries);
    });
  };
  std::vector<std::thread> threads;
  threads.emplace_back(join, 0);
  while (committing != 0) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  for (int i = 1; i <= 3; ++i) {
    threads.emplace_back(join, i);
    WaitUntilQueued(g, static_cast<size_t>(i));
  }
  hold0.unlock();
  while (committing != 1) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  // Caller 1 commits. Give a caller woken by mistake time to wake (a correct GroupCommit passes
  // however long this takes; a wrong one fails the more surely the longer).
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_EQ(g.wakeups(), 1u) << "only the next committer may wake while it commits";
  hold1.unlock();
  for (auto& t : threads) {
    t.join();
  }
  ASSERT_EQ(log.commits.size(), 2u);
  EXPECT_EQ(log.commits[0], std::vector<int>{0});
  EXPECT_EQ(log.commits[1], (std::vector<int>{1, 2, 3}));
  EXPECT_EQ(g.wakeups(), 3u);
}

// Many callers, many rounds: every entry is committed exactly once, and Join returns only after
// the commit that took it is over.
TEST(GroupCommitTest, EveryEntryIsCommittedOnceBeforeItsCallerReturns) {
  GroupCommit g;
  constexpr int kThreads = 8;
  constexpr int kPerThread = 300;
  std::mutex mu;
  std::vector<int> times(kThreads * kPerThread, 0);  // guarded by mu
  std::atomic<int> early{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        int id = t * kPerThread + i;
        GroupCommit::Entry e;
        e.item = &id;
        g.Join(e, [&](Entries entries) {
          std::lock_guard lock(mu);
          for (const GroupCommit::Entry* x : entries) {
            ++times[static_cast<size_t>(*static_cast<int*>(x->item))];
          }
        });
        std::lock_guard lock(mu);
        if (times[static_cast<size_t>(id)] != 1) {
          ++early;
        }
      }
    });
  }
  for (auto& t : threads) {
    t.join();
  }
  EXPECT_EQ(early.load(), 0);
  for (size_t i = 0; i < times.size(); ++i) {
    ASSERT_EQ(times[i], 1) << "entry " << i;
  }
}

}  // namespace
}  // namespace asya::transport::sqlite
