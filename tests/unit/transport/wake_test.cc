// WakeDir: FIFO registrations, wake-ups and stale-FIFO cleanup.
#include "transport/sqlite/wake.h"

#include <filesystem>
#include <string>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "support/temp_dir.h"

namespace asya::transport::sqlite {
namespace {

namespace fs = std::filesystem;

class WakeDirTest : public ::testing::Test {
 protected:
  size_t Entries(const std::string& queue) const {
    size_t n = 0;
    for ([[maybe_unused]] const auto& e : fs::directory_iterator(dir_ + "/w/" + queue)) {
      ++n;
    }
    return n;
  }

  static bool Readable(int fd) {
    pollfd p{fd, POLLIN, 0};
    return ::poll(&p, 1, 0) == 1 && (p.revents & POLLIN) != 0;
  }

  asya::test::TempDir tmp_{"asya-wake"};
  const std::string dir_ = tmp_.path();
};

TEST_F(WakeDirTest, NotifyWithoutWaitersWakesNobody) {
  WakeDir w(dir_ + "/w");
  EXPECT_EQ(w.Notify("asya-q"), 0);
}

TEST_F(WakeDirTest, RegisteredWaiterIsWokenAndDrained) {
  WakeDir w(dir_ + "/w");
  auto waiter = w.Register("asya-q");
  ASSERT_TRUE(waiter.has_value()) << waiter.error().ToString();
  EXPECT_FALSE(Readable(waiter->fd()));
  EXPECT_EQ(w.Notify("asya-q"), 1);
  EXPECT_EQ(w.Notify("asya-other"), 0);
  EXPECT_TRUE(Readable(waiter->fd()));
  waiter->Drain();
  EXPECT_FALSE(Readable(waiter->fd()));
}

TEST_F(WakeDirTest, EveryWaiterOfTheQueueIsWoken) {
  WakeDir w(dir_ + "/w");
  auto a = w.Register("asya-q");
  auto b = w.Register("asya-q");
  ASSERT_TRUE(a.has_value() && b.has_value());
  EXPECT_EQ(w.Notify("asya-q"), 2);
  EXPECT_TRUE(Readable(a->fd()));
  EXPECT_TRUE(Readable(b->fd()));
}

// Notify remembers a queue's FIFOs until the directory's time changes: waiters that come and go
// between two notifies (another process's, here another WakeDir) are still seen, whether the
// earlier scan was remembered (the pause lets the clock move past the directory's time) or not.
TEST_F(WakeDirTest, WaitersThatComeAndGoBetweenNotifiesAreSeen) {
  WakeDir publisher(dir_ + "/w");
  WakeDir receivers(dir_ + "/w");
  auto first = receivers.Register("asya-q");
  ASSERT_TRUE(first.has_value());
  // Odd rounds pause after each change, so the next scan is remembered and the notify after it
  // (no change in between) uses it.
  const auto pause = [](int i) {
    if (i % 2 == 1) {
      ::usleep(20'000);
    }
  };
  for (int i = 0; i < 20; ++i) {
    EXPECT_EQ(publisher.Notify("asya-q"), 1) << "round " << i;
    first->Drain();
    {
      auto second = receivers.Register("asya-q");
      ASSERT_TRUE(second.has_value());
      pause(i);
      EXPECT_EQ(publisher.Notify("asya-q"), 2) << "round " << i;
      EXPECT_EQ(publisher.Notify("asya-q"), 2) << "round " << i;
      EXPECT_TRUE(Readable(second->fd())) << "round " << i;
      first->Drain();
    }  // unregisters
    pause(i);
    EXPECT_EQ(publisher.Notify("asya-q"), 1) << "round " << i;
    first->Drain();
  }
}

TEST_F(WakeDirTest, UnregisteringRemovesTheFifo) {
  WakeDir w(dir_ + "/w");
  {
    auto waiter = w.Register("asya-q");
    ASSERT_TRUE(waiter.has_value());
    EXPECT_EQ(Entries("asya-q"), 1u);
  }
  EXPECT_EQ(Entries("asya-q"), 0u);
}

TEST_F(WakeDirTest, FifoOfADeadProcessIsRemovedByTheNextNotify) {
  WakeDir w(dir_ + "/w");
  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    auto waiter = w.Register("asya-q");
    ::kill(::getpid(), SIGKILL);  // dies holding the registration: no cleanup runs
    ::_exit(1);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFSIGNALED(status));
  ASSERT_EQ(Entries("asya-q"), 1u) << "the dead process's FIFO should still be there";
  auto live = w.Register("asya-q");
  ASSERT_TRUE(live.has_value());
  EXPECT_EQ(w.Notify("asya-q"), 1) << "only the live waiter is woken";
  EXPECT_EQ(Entries("asya-q"), 1u) << "the stale FIFO was not removed";
  EXPECT_TRUE(Readable(live->fd()));
}

TEST(WriteWakeByte, AGoneReaderIsAFailureNotASigpipe) {
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  ::close(fds[0]);  // no reader: a plain write() would kill this process with SIGPIPE
  EXPECT_FALSE(WriteWakeByte(fds[1]));
  sigset_t pending;
  sigpending(&pending);
  EXPECT_EQ(sigismember(&pending, SIGPIPE), 0) << "a SIGPIPE is left pending";
  ::close(fds[1]);
  ASSERT_EQ(::pipe(fds), 0);
  EXPECT_TRUE(WriteWakeByte(fds[1]));
  ::close(fds[0]);
  ::close(fds[1]);
}

TEST_F(WakeDirTest, UnwritableDirectoryIsAClearError) {
  std::string file = dir_ + "/plain-file";
  ASSERT_EQ(::close(::creat(file.c_str(), 0600)), 0);
  WakeDir w(file);  // a regular file where the directory should be
  auto waiter = w.Register("asya-q");
  ASSERT_FALSE(waiter.has_value());
  EXPECT_NE(waiter.error().message.find("plain-file"), std::string::npos) << waiter.error().message;
  EXPECT_EQ(w.Notify("asya-q"), 0);
}

}  // namespace
}  // namespace asya::transport::sqlite
