// sqlite transport behaviour beyond the shared contract suite: validation, durability,
// cross-process wake-ups and crash recovery, configuration errors.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>
#include <sqlite3.h>

#include "asya/transport/sqlite.h"
#include "support/status_matchers.h"
#include "support/temp_dir.h"

namespace asya::transport {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

ReceiveOptions Opts(size_t max, Millis wait, Millis visibility = Millis(60'000)) {
  ReceiveOptions o;
  o.max_messages = max;
  o.wait = wait;
  o.visibility = visibility;
  return o;
}

// Receives and acks everything in `queue`; the bodies in the order received.
std::vector<std::string> DrainAndAck(Transport& t, const std::string& queue) {
  std::vector<std::string> bodies;
  while (true) {
    auto got = t.Receive(queue, Opts(100, Millis(0)));
    EXPECT_TRUE(got.has_value());
    if (!got || got->empty()) {
      return bodies;
    }
    for (const auto& m : *got) {
      bodies.push_back(m.body);
      EXPECT_TRUE(t.Ack(m).has_value());
    }
  }
}

class SqliteTransportTest : public ::testing::Test {
 protected:
  void SetUp() override { settings_.path = dir_ + "/queues.db"; }
  void TearDown() override {
    for (pid_t pid : children_) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
    }
  }

  TransportPtr Open(SqliteSettings s) {
    auto t = MakeSqliteTransport(s);
    EXPECT_TRUE(t.has_value()) << t.error().ToString();
    return t ? std::move(*t) : nullptr;
  }
  TransportPtr Open() { return Open(settings_); }

  // Starts the helper with `args`; returns its pid and (if wanted) a pipe of its stdout.
  pid_t Spawn(const std::vector<std::string>& args, std::FILE** out = nullptr) {
    int fds[2];
    EXPECT_EQ(::pipe(fds), 0);
    pid_t pid = ::fork();
    if (pid == 0) {
      if (out == nullptr) {
        int devnull = ::open("/dev/null", O_WRONLY);
        ::dup2(devnull, fds[1]);
      }
      ::dup2(fds[1], STDOUT_FILENO);
      ::close(fds[0]);
      ::close(fds[1]);
      std::vector<char*> argv;
      std::string helper = ASYA_SQLITE_HELPER;
      argv.push_back(helper.data());
      for (const auto& a : args) {
        argv.push_back(const_cast<char*>(a.c_str()));
      }
      argv.push_back(nullptr);
      ::execv(helper.c_str(), argv.data());
      ::_exit(127);
    }
    ::close(fds[1]);
    if (out != nullptr) {
      *out = ::fdopen(fds[0], "r");
    } else {
      ::close(fds[0]);
    }
    children_.push_back(pid);
    return pid;
  }

  static int Wait(pid_t pid) {
    int status = 0;
    ::waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }

  asya::test::TempDir tmp_{"asya-sqlite"};
  const std::string dir_ = tmp_.path();
  SqliteSettings settings_;
  std::vector<pid_t> children_;
};

// ---- validation and bad input ----

TEST_F(SqliteTransportTest, InvalidQueueNamesAreRejectedEverywhere) {
  auto t = Open();
  for (std::string bad : {std::string(), std::string("a/b"), std::string(".hidden"),
                          std::string(".."), std::string(201, 'a'), std::string("sp ace"),
                          std::string("caf\xc3\xa9"), std::string("nul\0x", 5)}) {
    auto p = t->Publish(bad, "x");
    ASSERT_FALSE(p.has_value()) << "published to '" << bad << "'";
    EXPECT_EQ(p.error().code, ErrorCode::kInvalidArgument);
    EXPECT_NE(p.error().message.find("invalid queue name"), std::string::npos);
    EXPECT_FALSE(t->Receive(bad, Opts(1, Millis(0))).has_value());
    EXPECT_FALSE(t->CreateQueue(bad).has_value());
    EXPECT_FALSE(t->Depth(bad).has_value());
    EXPECT_FALSE(t->Purge(bad).has_value());
    EXPECT_FALSE(t->DeleteQueue(bad).has_value());
    EXPECT_FALSE(t->QueueExists(bad).has_value());
  }
  auto names = t->ListQueues();
  ASSERT_OK(names);
  EXPECT_TRUE(names->empty()) << "a rejected name created a queue";
  // The longest and the odd-but-valid names work.
  ASSERT_OK(t->Publish(std::string(200, 'a'), "x"));
  ASSERT_OK(t->Publish("asya-a.b_c:d", "x"));
}

TEST_F(SqliteTransportTest, MalformedReceiptsAreInvalidArgument) {
  auto t = Open();
  for (std::string bad : {"", "garbage", "12", ":abc", "abc:def", "-1:abc", "12:"}) {
    Message m;
    m.queue = "asya-q";
    m.receipt = bad;
    auto a = t->Ack(m);
    ASSERT_FALSE(a.has_value()) << "acked with receipt '" << bad << "'";
    EXPECT_EQ(a.error().code, ErrorCode::kInvalidArgument) << a.error().ToString();
    EXPECT_EQ(t->Nack(m).error().code, ErrorCode::kInvalidArgument);
    EXPECT_EQ(t->ExtendVisibility(m, Millis(1000)).error().code, ErrorCode::kInvalidArgument);
  }
}

TEST_F(SqliteTransportTest, AckingTwiceIsNotFound) {
  auto t = Open();
  ASSERT_OK(t->Publish("asya-q", "x"));
  auto got = t->Receive("asya-q", Opts(1, Millis(0)));
  ASSERT_OK(got);
  ASSERT_EQ(got->size(), 1u);
  ASSERT_OK(t->Ack(got->front()));
  auto again = t->Ack(got->front());
  ASSERT_FALSE(again.has_value());
  EXPECT_EQ(again.error().code, ErrorCode::kNotFound) << again.error().ToString();
  EXPECT_EQ(t->Nack(got->front()).error().code, ErrorCode::kNotFound);
}

TEST_F(SqliteTransportTest, ReceiptFromBeforeANackIsStale) {
  auto t = Open();
  ASSERT_OK(t->Publish("asya-q", "x"));
  auto first = t->Receive("asya-q", Opts(1, Millis(0)));
  ASSERT_OK(first);
  ASSERT_OK(t->Nack(first->front()));
  auto stale = t->Ack(first->front());
  ASSERT_FALSE(stale.has_value());
  EXPECT_EQ(stale.error().code, ErrorCode::kFailedPrecondition) << stale.error().ToString();
  EXPECT_EQ(t->Depth("asya-q")->ready, 1) << "the stale ack deleted the message";
}

// PublishAndAck commits concurrent callers together (group commit), each in its own savepoint: a
// settle that fails (here a receipt for a message that does not exist) publishes nothing, and the
// settles committed with it are unaffected.
TEST_F(SqliteTransportTest, ConcurrentSettlesCommitTogetherAndFailAlone) {
  auto t = Open(settings_);
  constexpr int kThreads = 8;
  constexpr int kPerThread = 150;
  for (int i = 0; i < kThreads * kPerThread; ++i) {
    ASSERT_OK(t->Publish("asya-in", "m" + std::to_string(i)));
  }
  std::vector<Message> held;  // received up front, so the threads do nothing but settle
  while (held.size() < static_cast<size_t>(kThreads * kPerThread)) {
    auto got = t->Receive("asya-in", Opts(1000, Millis(1'000)));
    ASSERT_OK(got);
    ASSERT_FALSE(got->empty());
    held.insert(held.end(), got->begin(), got->end());
  }
  std::atomic<int> settled{0};
  std::atomic<int> stale_ok{0};
  std::vector<std::thread> threads;
  for (int th = 0; th < kThreads; ++th) {
    threads.emplace_back([&, th] {
      Message bogus;
      bogus.receipt = std::to_string(1'000'000 + th) + ":feedface";
      for (int i = th; i < kThreads * kPerThread; i += kThreads) {
        const Outgoing out[] = {{.queue = "asya-out", .body = held[static_cast<size_t>(i)].body}};
        if (!t->PublishAndAck(held[static_cast<size_t>(i)], out)) {
          ++settled;
        }
        const Outgoing lost[] = {{.queue = "asya-out", .body = "must not appear"}};
        auto failure = t->PublishAndAck(bogus, lost);
        if (failure && failure->in_ack && failure->published == 0 &&
            failure->error.code == ErrorCode::kNotFound) {
          ++stale_ok;
        }
      }
    });
  }
  for (auto& th : threads) {
    th.join();
  }
  EXPECT_EQ(settled.load(), kThreads * kPerThread);
  EXPECT_EQ(stale_ok.load(), kThreads * kPerThread);
  auto in = t->Depth("asya-in");
  ASSERT_OK(in);
  EXPECT_EQ(in->ready + in->inflight, 0);
  const auto out = DrainAndAck(*t, "asya-out");
  EXPECT_EQ(std::count(out.begin(), out.end(), "must not appear"), 0);
  EXPECT_EQ(std::set<std::string>(out.begin(), out.end()).size(),
            static_cast<size_t>(kThreads * kPerThread));
}

// Concurrent settles with folded receives, some of them failing (stale receipts): a commit that
// holds a failing settle is redone with savepoints, so the failed settle publishes and receives
// nothing while the others in its commit settle and receive; every message comes out once.
TEST_F(SqliteTransportTest, ConcurrentSettlesWithFoldedReceivesFailAloneAndLoseNothing) {
  auto t = Open(settings_);
  constexpr int kThreads = 8;
  constexpr int kMessages = 800;
  for (int i = 0; i < kMessages; ++i) {
    ASSERT_OK(t->Publish("asya-in", "m" + std::to_string(i)));
  }
  std::atomic<int> settled{0};
  std::atomic<int> bad{0};  // a failed settle that received something, or a settle that failed
  std::vector<std::thread> threads;
  for (int th = 0; th < kThreads; ++th) {
    threads.emplace_back([&, th] {
      Message bogus;
      bogus.receipt = std::to_string(2'000'000 + th) + ":feedface";
      std::vector<Message> held;
      for (int round = 0;; ++round) {
        if (held.empty()) {
          auto got = t->Receive("asya-in", Opts(1, Millis(0)));
          if (!got || got->empty()) {
            return;
          }
          held = std::move(*got);
        }
        const Message m = held.front();
        held.erase(held.begin());
        const Outgoing out[] = {{.queue = "asya-out", .body = m.body}};
        SettleReceive also{.queue = "asya-in", .max_messages = 1, .received = {}};
        if (t->PublishAckAndReceive(m, out, also)) {
          ++bad;
        } else {
          ++settled;
        }
        held.insert(held.end(), also.received.begin(), also.received.end());
        if (round % 2 == 0) {
          const Outgoing lost[] = {{.queue = "asya-out", .body = "must not appear"}};
          SettleReceive none{.queue = "asya-in", .max_messages = 1, .received = {}};
          auto failure = t->PublishAckAndReceive(bogus, lost, none);
          if (!failure || !failure->in_ack || !none.received.empty()) {
            ++bad;
          }
        }
      }
    });
  }
  for (auto& th : threads) {
    th.join();
  }
  EXPECT_EQ(bad.load(), 0);
  EXPECT_EQ(settled.load(), kMessages);
  auto in = t->Depth("asya-in");
  ASSERT_OK(in);
  EXPECT_EQ(in->ready + in->inflight, 0);
  const auto out = DrainAndAck(*t, "asya-out");
  EXPECT_EQ(std::count(out.begin(), out.end(), "must not appear"), 0);
  EXPECT_EQ(out.size(), static_cast<size_t>(kMessages));
  EXPECT_EQ(std::set<std::string>(out.begin(), out.end()).size(), static_cast<size_t>(kMessages));
}

TEST_F(SqliteTransportTest, MaxMessagesOutOfRangeIsInvalidArgument) {
  auto t = Open();
  ASSERT_OK(t->CreateQueue("asya-q"));
  EXPECT_EQ(t->Receive("asya-q", Opts(0, Millis(0))).error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(t->Receive("asya-q", Opts(1001, Millis(0))).error().code, ErrorCode::kInvalidArgument);
}

TEST_F(SqliteTransportTest, HeadersMustBeUtf8AndNothingIsPublishedOtherwise) {
  auto t = Open();
  PublishOptions po;
  po.headers = {{"x-bad", "\xff\xfe"}};
  auto s = t->Publish("asya-q", "x", po);
  ASSERT_FALSE(s.has_value());
  EXPECT_EQ(s.error().code, ErrorCode::kInvalidArgument);
  EXPECT_NE(s.error().message.find("UTF-8"), std::string::npos) << s.error().message;
  EXPECT_FALSE(*t->QueueExists("asya-q"));
}

TEST_F(SqliteTransportTest, EmptyBodyRoundTrips) {
  auto t = Open();
  ASSERT_OK(t->Publish("asya-q", ""));
  auto got = t->Receive("asya-q", Opts(1, Millis(0)));
  ASSERT_OK(got);
  ASSERT_EQ(got->size(), 1u);
  EXPECT_EQ(got->front().body, "");
  EXPECT_TRUE(got->front().headers.empty());
}

// ---- queue semantics specific to sqlite ----

TEST_F(SqliteTransportTest, PublishCreatesAMissingQueueWithoutADlq) {
  auto t = Open();
  ASSERT_OK(t->Publish("asya-auto", "x"));
  EXPECT_TRUE(*t->QueueExists("asya-auto"));
  EXPECT_FALSE(*t->QueueExists("asya-auto-dlq"));
  ASSERT_OK(t->CreateQueue("asya-plain", {.create_dlq = false}));
  EXPECT_FALSE(*t->QueueExists("asya-plain-dlq"));
}

TEST_F(SqliteTransportTest, DelayedPublishCountsAsInflightUntilVisible) {
  auto t = Open();
  PublishOptions po;
  po.delay = Millis(60'000);
  ASSERT_OK(t->Publish("asya-q", "later", po));
  auto d = t->Depth("asya-q");
  ASSERT_OK(d);
  EXPECT_EQ(d->ready, 0);
  EXPECT_EQ(d->inflight, 1);
  auto got = t->Receive("asya-q", Opts(1, Millis(0)));
  ASSERT_OK(got);
  EXPECT_TRUE(got->empty());
}

TEST_F(SqliteTransportTest, QueueVisibilityIsUsedWhenReceiveGivesNone) {
  auto t = Open();
  ASSERT_OK(t->CreateQueue("asya-q", {.create_dlq = false, .visibility = Millis(300)}));
  ASSERT_OK(t->Publish("asya-q", "x"));
  auto start = Clock::now();
  auto first = t->Receive("asya-q", Opts(1, Millis(0), Millis(0)));
  ASSERT_OK(first);
  ASSERT_EQ(first->size(), 1u);
  auto second = t->Receive("asya-q", Opts(1, Millis(20'000), Millis(0)));
  ASSERT_OK(second);
  ASSERT_EQ(second->size(), 1u) << "the queue's 300 ms visibility was not applied";
  EXPECT_GE(Clock::now() - start, Millis(290));
  EXPECT_EQ(second->front().delivery_count, 2);
}

TEST_F(SqliteTransportTest, MessagesSurviveReopening) {
  {
    auto t = Open();
    PublishOptions po;
    po.headers = {{"k", "v"}};
    ASSERT_OK(t->Publish("asya-q", "durable", po));
    ASSERT_OK(t->Publish("asya-q", "held"));
    auto held = t->Receive("asya-q", Opts(2, Millis(0), Millis(300)));
    ASSERT_OK(held);
    ASSERT_EQ(held->size(), 2u);
    ASSERT_OK(t->Nack(held->front()));
    // The transport goes away with "held" still in flight, as if its process died.
  }
  auto t = Open();
  auto got = t->Receive("asya-q", Opts(2, Millis(20'000)));
  ASSERT_OK(got);
  std::set<std::string> bodies;
  while (got.has_value() && !got->empty()) {
    for (const auto& m : *got) {
      bodies.insert(m.body);
      EXPECT_EQ(m.delivery_count, 2) << m.body;
      if (m.body == "durable") {
        EXPECT_EQ(m.headers.at("k"), "v");
      }
      ASSERT_OK(t->Ack(m));
    }
    if (bodies.size() == 2) {
      break;
    }
    got = t->Receive("asya-q", Opts(2, Millis(20'000)));
  }
  EXPECT_EQ(bodies, (std::set<std::string>{"durable", "held"}));
}

// ---- wake-ups: with the safety poll far above the wait, only a wake-up can deliver in time ----

TEST_F(SqliteTransportTest, PublishFromAnotherConnectionWakesABlockedReceive) {
  SqliteSettings slow = settings_;
  slow.safety_poll = Millis(600'000);
  auto receiver = Open(slow);
  auto publisher = Open();
  ASSERT_OK(receiver->CreateQueue("asya-q"));
  Result<std::vector<Message>> got = std::vector<Message>{};
  Millis took{0};
  std::thread th([&] {
    auto start = Clock::now();
    got = receiver->Receive("asya-q", Opts(1, Millis(20'000)));
    took = std::chrono::duration_cast<Millis>(Clock::now() - start);
  });
  std::this_thread::sleep_for(Millis(200));
  ASSERT_OK(publisher->Publish("asya-q", "ping"));
  th.join();
  ASSERT_OK(got);
  ASSERT_EQ(got->size(), 1u);
  EXPECT_LT(took, Millis(20'000)) << "no wake-up: the receive ran into its wait";
}

TEST_F(SqliteTransportTest, NackWakesABlockedReceive) {
  SqliteSettings slow = settings_;
  slow.safety_poll = Millis(600'000);
  auto receiver = Open(slow);
  auto holder = Open();
  ASSERT_OK(holder->Publish("asya-q", "x"));
  auto held = holder->Receive("asya-q", Opts(1, Millis(0)));
  ASSERT_OK(held);
  Result<std::vector<Message>> got = std::vector<Message>{};
  Millis took{0};
  std::thread th([&] {
    auto start = Clock::now();
    got = receiver->Receive("asya-q", Opts(1, Millis(20'000)));
    took = std::chrono::duration_cast<Millis>(Clock::now() - start);
  });
  std::this_thread::sleep_for(Millis(200));
  ASSERT_OK(holder->Nack(held->front()));
  th.join();
  ASSERT_OK(got);
  ASSERT_EQ(got->size(), 1u);
  EXPECT_LT(took, Millis(20'000)) << "no wake-up: the receive ran into its wait";
  EXPECT_EQ(got->front().delivery_count, 2);
}

TEST_F(SqliteTransportTest, BlockedReceiveWakesWhenADelayedOrExpiringMessageBecomesVisible) {
  SqliteSettings slow = settings_;
  slow.safety_poll = Millis(600'000);
  auto receiver = Open(slow);
  auto other = Open();
  PublishOptions po;
  po.delay = Millis(300);
  ASSERT_OK(other->Publish("asya-q", "delayed", po));
  auto start = Clock::now();
  auto got = receiver->Receive("asya-q", Opts(1, Millis(20'000)));
  ASSERT_OK(got);
  ASSERT_EQ(got->size(), 1u);
  EXPECT_LT(Clock::now() - start, Millis(20'000)) << "a delayed message did not wake the receiver";
  // Not acked, 300 ms visibility: the same receiver blocks again and gets it back.
  ASSERT_OK(other->Publish("asya-q", "expiring"));
  auto held = other->Receive("asya-q", Opts(1, Millis(0), Millis(300)));
  ASSERT_OK(held);
  start = Clock::now();
  auto again = receiver->Receive("asya-q", Opts(1, Millis(20'000)));
  ASSERT_OK(again);
  ASSERT_EQ(again->size(), 1u);
  EXPECT_LT(Clock::now() - start, Millis(20'000))
      << "an expiring visibility did not wake the receiver";
  EXPECT_EQ(again->front().body, "expiring");
}

TEST_F(SqliteTransportTest, DeletingTheQueueEndsABlockedReceiveWithNotFound) {
  SqliteSettings slow = settings_;
  slow.safety_poll = Millis(600'000);
  auto receiver = Open(slow);
  auto admin = Open();
  ASSERT_OK(admin->CreateQueue("asya-q"));
  Result<std::vector<Message>> got = std::vector<Message>{};
  Millis took{0};
  std::thread th([&] {
    auto start = Clock::now();
    got = receiver->Receive("asya-q", Opts(1, Millis(20'000)));
    took = std::chrono::duration_cast<Millis>(Clock::now() - start);
  });
  std::this_thread::sleep_for(Millis(200));
  ASSERT_OK(admin->DeleteQueue("asya-q"));
  th.join();
  ASSERT_FALSE(got.has_value());
  EXPECT_EQ(got.error().code, ErrorCode::kNotFound);
  EXPECT_LT(took, Millis(20'000)) << "no wake-up: the receive ran into its wait";
}

TEST_F(SqliteTransportTest, WithoutAWakeDirectoryReceiveFallsBackToPolling) {
  // A regular file where the wake-up directory would go.
  std::ofstream(settings_.path + ".wake") << "not a directory";
  SqliteSettings slow = settings_;
  slow.safety_poll = Millis(600'000);
  auto receiver = Open(slow);
  auto publisher = Open();
  ASSERT_OK(receiver->CreateQueue("asya-q"));
  Result<std::vector<Message>> got = std::vector<Message>{};
  Millis took{0};
  std::thread th([&] {
    auto start = Clock::now();
    got = receiver->Receive("asya-q", Opts(1, Millis(20'000)));
    took = std::chrono::duration_cast<Millis>(Clock::now() - start);
  });
  std::this_thread::sleep_for(Millis(200));
  ASSERT_OK(publisher->Publish("asya-q", "polled"));
  th.join();
  ASSERT_OK(got);
  ASSERT_EQ(got->size(), 1u);
  EXPECT_LT(took, Millis(20'000)) << "the fallback did not poll";
}

// ---- several processes ----

TEST_F(SqliteTransportTest, TwoProcessesConsumeEveryMessageExactlyOnce) {
  auto t = Open();
  ASSERT_OK(t->CreateQueue("asya-mp"));
  std::string out_a = dir_ + "/a.txt";
  std::string out_b = dir_ + "/b.txt";
  pid_t a = Spawn({"consume", settings_.path, "asya-mp", out_a, "3000"});
  pid_t b = Spawn({"consume", settings_.path, "asya-mp", out_b, "3000"});
  constexpr int kN = 500;
  for (int i = 0; i < kN; ++i) {  // published while both consumers run (and block)
    ASSERT_OK(t->Publish("asya-mp", "m" + std::to_string(i)));
  }
  EXPECT_EQ(Wait(a), 0);
  EXPECT_EQ(Wait(b), 0);
  children_.clear();
  std::multiset<std::string> seen;
  for (const auto& path : {out_a, out_b}) {
    std::ifstream in(path);
    std::string line;
    while (std::getline(in, line)) {
      seen.insert(line);
    }
  }
  EXPECT_EQ(seen.size(), static_cast<size_t>(kN));
  for (int i = 0; i < kN; ++i) {
    EXPECT_EQ(seen.count("m" + std::to_string(i)), 1u) << "m" << i;
  }
  auto d = t->Depth("asya-mp");
  ASSERT_OK(d);
  EXPECT_EQ(d->ready + d->inflight, 0);
}

TEST_F(SqliteTransportTest, MessageOfAKilledConsumerComesBackWithAGrownCount) {
  auto t = Open();
  ASSERT_OK(t->Publish("asya-crash", "survivor"));
  std::FILE* out = nullptr;
  pid_t holder = Spawn({"hold", settings_.path, "asya-crash", "500"}, &out);
  char line[64] = {};
  ASSERT_NE(std::fgets(line, sizeof(line), out), nullptr) << "the helper received nothing";
  std::fclose(out);
  std::istringstream fields(line);
  std::string id;
  int count = 0;
  fields >> id >> count;
  EXPECT_EQ(count, 1);
  ::kill(holder, SIGKILL);
  Wait(holder);
  children_.clear();
  auto got = t->Receive("asya-crash", Opts(1, Millis(20'000)));
  ASSERT_OK(got);
  ASSERT_EQ(got->size(), 1u) << "the killed consumer's message never came back";
  EXPECT_EQ(got->front().id, id);
  EXPECT_EQ(got->front().body, "survivor");
  EXPECT_EQ(got->front().delivery_count, 2);
  EXPECT_TRUE(got->front().redelivered);
}

TEST_F(SqliteTransportTest, PublishInAnotherProcessWakesAReceiverAfterAKilledOneLeftAStaleFifo) {
  auto t = Open();
  ASSERT_OK(t->CreateQueue("asya-w"));
  std::FILE* out = nullptr;
  pid_t dead = Spawn({"wait", settings_.path, "asya-w"}, &out);
  char line[16] = {};
  ASSERT_NE(std::fgets(line, sizeof(line), out), nullptr);
  std::fclose(out);
  std::this_thread::sleep_for(Millis(300));  // let it block in Receive
  ::kill(dead, SIGKILL);
  Wait(dead);
  pid_t live = Spawn({"wait", settings_.path, "asya-w"});
  std::this_thread::sleep_for(Millis(300));
  ASSERT_OK(t->Publish("asya-w", "for the live one"));
  EXPECT_EQ(Wait(live), 0) << "the live waiter did not get the message";
  children_.clear();
  size_t fifos = 0;
  for ([[maybe_unused]] const auto& e : fs::directory_iterator(settings_.path + ".wake/asya-w")) {
    ++fifos;
  }
  EXPECT_EQ(fifos, 0u) << "stale or leftover wake-up FIFOs";
}

// ---- configuration and unusable files ----

TEST_F(SqliteTransportTest, CreatesMissingParentDirectories) {
  SqliteSettings s;
  s.path = dir_ + "/a/b/c/queues.db";
  auto t = Open(s);
  ASSERT_NE(t, nullptr);
  EXPECT_TRUE(fs::exists(s.path));
}

TEST_F(SqliteTransportTest, SynchronousFullWorksAndBadValuesAreRejected) {
  SqliteSettings full = settings_;
  full.synchronous = "full";
  auto t = Open(full);
  ASSERT_NE(t, nullptr);
  ASSERT_OK(t->Publish("asya-q", "x"));
  SqliteSettings bad = settings_;
  bad.synchronous = "sometimes";
  auto r = MakeSqliteTransport(bad);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument);
  EXPECT_NE(r.error().message.find("sometimes"), std::string::npos);
  SqliteSettings empty;
  empty.path = "";
  EXPECT_EQ(MakeSqliteTransport(empty).error().code, ErrorCode::kInvalidArgument);
}

TEST_F(SqliteTransportTest, AFileThatIsNotADatabaseIsAClearError) {
  std::string path = dir_ + "/garbage.db";
  std::ofstream(path) << std::string(4096, 'g');
  SqliteSettings s;
  s.path = path;
  auto r = MakeSqliteTransport(s);
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().message.find("garbage.db"), std::string::npos) << r.error().message;
  std::ifstream in(path);
  EXPECT_EQ(std::string(std::istreambuf_iterator<char>(in), {}), std::string(4096, 'g'))
      << "the foreign file was modified";
}

TEST_F(SqliteTransportTest, ADirectoryAsThePathIsAClearError) {
  SqliteSettings s;
  s.path = dir_;
  auto r = MakeSqliteTransport(s);
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().message.find(dir_), std::string::npos) << r.error().message;
}

TEST_F(SqliteTransportTest, ANewerSchemaIsRefused) {
  { ASSERT_NE(Open(), nullptr); }
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(settings_.path.c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db, "PRAGMA user_version = 99", nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(db);
  auto r = MakeSqliteTransport(settings_);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, ErrorCode::kFailedPrecondition);
  EXPECT_NE(r.error().message.find("99"), std::string::npos) << r.error().message;
}

// ---- schema version 2: large bodies apart from their row; version-1 files are migrated ----

// Runs `sql` on the file at `path` through a plain SQLite connection.
void RawExec(const std::string& path, const std::string& sql) {
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  char* err = nullptr;
  int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err);
  std::string what = err != nullptr ? err : "";
  sqlite3_free(err);
  sqlite3_close(db);
  ASSERT_EQ(rc, SQLITE_OK) << what << "\n" << sql;
}

// The first integer of the first row of `sql`, or -1.
int64_t RawInt(const std::string& path, const std::string& sql) {
  sqlite3* db = nullptr;
  EXPECT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  sqlite3_stmt* stmt = nullptr;
  int64_t out = -1;
  if (sqlite3_prepare_v2(db, sql.c_str(), -1, &stmt, nullptr) == SQLITE_OK &&
      sqlite3_step(stmt) == SQLITE_ROW) {
    out = sqlite3_column_int64(stmt, 0);
  }
  sqlite3_finalize(stmt);
  sqlite3_close(db);
  return out;
}

std::string Bytes(size_t n, unsigned seed) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) {
    s[i] = static_cast<char>((i * 131 + seed * 7 + (i >> 9)) & 0xff);
  }
  return s;
}

// A state directory written by a version-1 program (asya up's queues.db): its messages, large
// and small, ready, delayed and in flight, are received intact after the migration, and new ids
// continue after the old ones.
TEST_F(SqliteTransportTest, AVersionOneFileIsMigratedAndItsMessagesStayReadable) {
  const std::string big = Bytes(300 << 10, 1);
  const int64_t now = std::chrono::duration_cast<std::chrono::milliseconds>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count();
  RawExec(settings_.path, R"sql(
PRAGMA journal_mode = WAL;
CREATE TABLE queues(name TEXT PRIMARY KEY, created_ms INTEGER NOT NULL,
  visibility_ms INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID;
CREATE TABLE messages(id INTEGER PRIMARY KEY AUTOINCREMENT, queue TEXT NOT NULL,
  body BLOB NOT NULL, headers TEXT, visible_at INTEGER NOT NULL, receipt TEXT,
  delivery_count INTEGER NOT NULL DEFAULT 0, enqueued_at INTEGER NOT NULL);
CREATE INDEX messages_by_visibility ON messages(queue, visible_at, id);
INSERT INTO queues VALUES ('asya-q', 0, 0);
PRAGMA user_version = 1;)sql");
  {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(settings_.path.c_str(), &db), SQLITE_OK);
    sqlite3_stmt* ins = nullptr;
    ASSERT_EQ(sqlite3_prepare_v2(db,
                                 "INSERT INTO messages(id, queue, body, headers, visible_at, "
                                 "receipt, delivery_count, enqueued_at) VALUES (?,?,?,?,?,?,?,0)",
                                 -1, &ins, nullptr),
              SQLITE_OK);
    struct Row {
      int64_t id;
      std::string body;
      const char* headers;
      int64_t visible_at;
      const char* receipt;
      int delivery_count;
    };
    // 40: small with headers; 41: large, in flight (its visibility ran out); 42: delayed 300 ms.
    std::vector<Row> rows = {{40, "small", R"({"k":"v"})", now - 10, nullptr, 0},
                             {41, big, nullptr, now - 5, "0123456789abcdef", 1},
                             {42, "later", nullptr, now + 300, nullptr, 0}};
    for (const Row& r : rows) {
      sqlite3_bind_int64(ins, 1, r.id);
      sqlite3_bind_text(ins, 2, "asya-q", -1, SQLITE_STATIC);
      sqlite3_bind_blob(ins, 3, r.body.data(), static_cast<int>(r.body.size()), SQLITE_STATIC);
      if (r.headers != nullptr) {
        sqlite3_bind_text(ins, 4, r.headers, -1, SQLITE_STATIC);
      } else {
        sqlite3_bind_null(ins, 4);
      }
      sqlite3_bind_int64(ins, 5, r.visible_at);
      if (r.receipt != nullptr) {
        sqlite3_bind_text(ins, 6, r.receipt, -1, SQLITE_STATIC);
      } else {
        sqlite3_bind_null(ins, 6);
      }
      sqlite3_bind_int(ins, 7, r.delivery_count);
      ASSERT_EQ(sqlite3_step(ins), SQLITE_DONE) << sqlite3_errmsg(db);
      sqlite3_reset(ins);
      sqlite3_clear_bindings(ins);
    }
    sqlite3_finalize(ins);
    sqlite3_close(db);
  }

  auto t = Open();
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(RawInt(settings_.path, "PRAGMA user_version"), 2);
  EXPECT_EQ(RawInt(settings_.path, "SELECT count(*) FROM sqlite_master WHERE name = 'messages'"), 0)
      << "the version-1 table name must be gone, so version-1 code fails instead of misreading";
  auto depth = t->Depth("asya-q");
  ASSERT_OK(depth);
  EXPECT_EQ(depth->ready, 2);
  EXPECT_EQ(depth->inflight, 1);

  auto got = t->Receive("asya-q", Opts(10, Millis(0)));
  ASSERT_OK(got);
  ASSERT_EQ(got->size(), 2u);
  EXPECT_EQ((*got)[0].id, "40");
  EXPECT_EQ((*got)[0].body, "small");
  EXPECT_EQ((*got)[0].headers.at("k"), "v");
  EXPECT_EQ((*got)[0].delivery_count, 1);
  EXPECT_EQ((*got)[1].id, "41");
  EXPECT_TRUE((*got)[1].body == big) << "the large version-1 body changed";
  EXPECT_EQ((*got)[1].delivery_count, 2);
  for (const auto& m : *got) {
    ASSERT_OK(t->Ack(m));
  }
  auto later = t->Receive("asya-q", Opts(1, Millis(20'000)));
  ASSERT_OK(later);
  ASSERT_EQ(later->size(), 1u);
  EXPECT_EQ(later->front().body, "later");
  ASSERT_OK(t->Ack(later->front()));

  // New messages after the migration: ids continue after 42; a large one goes apart.
  ASSERT_OK(t->Publish("asya-q", big));
  auto fresh = t->Receive("asya-q", Opts(1, Millis(0)));
  ASSERT_OK(fresh);
  ASSERT_EQ(fresh->size(), 1u);
  EXPECT_GT(std::stoll(fresh->front().id), 42);
  EXPECT_TRUE(fresh->front().body == big);
  EXPECT_EQ(RawInt(settings_.path, "SELECT count(*) FROM message_bodies"), 1);
  ASSERT_OK(t->Ack(fresh->front()));
  EXPECT_EQ(RawInt(settings_.path, "SELECT count(*) FROM message_bodies"), 0);

  // Opening the migrated file again changes nothing.
  t.reset();
  t = Open();
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(RawInt(settings_.path, "PRAGMA user_version"), 2);
}

// A large body lives in message_bodies: a claim, a nack and a visibility extension keep it intact,
// and every way a message goes away (ack, settle, purge, queue deletion) takes its body along.
TEST_F(SqliteTransportTest, LargeBodiesLiveApartAndGoWithTheirMessage) {
  auto t = Open();
  const std::string a = Bytes(1 << 20, 2), b = Bytes(70 << 10, 3), c = Bytes(64 << 10, 4);
  const std::string small = Bytes((64 << 10) - 1, 5);
  ASSERT_OK(t->CreateQueue("asya-q"));
  for (const std::string* body : {&a, &b, &c, &small}) {
    ASSERT_OK(t->Publish("asya-q", *body));
  }
  EXPECT_EQ(RawInt(settings_.path, "SELECT count(*) FROM message_bodies"), 3)
      << "bodies of 64 KiB and more are kept apart, smaller ones in the row";
  EXPECT_EQ(RawInt(settings_.path, "SELECT max(length(body)) FROM queue_messages"),
            static_cast<int64_t>(small.size()));

  auto first = t->Receive("asya-q", Opts(1, Millis(0)));
  ASSERT_OK(first);
  ASSERT_EQ(first->size(), 1u);
  ASSERT_OK(t->ExtendVisibility(first->front(), Millis(60'000)));
  ASSERT_OK(t->Nack(first->front()));
  // The nacked message is visible again since now: it may come before or after the others.
  auto again = t->Receive("asya-q", Opts(4, Millis(0)));
  ASSERT_OK(again);
  ASSERT_EQ(again->size(), 4u);
  std::map<std::string, Message> by_body_size;
  for (const Message& m : *again) {
    by_body_size[std::to_string(m.body.size())] = m;
  }
  ASSERT_EQ(by_body_size.size(), 4u);
  const Message& ma = by_body_size.at(std::to_string(a.size()));
  EXPECT_EQ(ma.id, first->front().id);
  EXPECT_TRUE(ma.body == a);
  EXPECT_EQ(ma.delivery_count, 2);
  const Message& mb = by_body_size.at(std::to_string(b.size()));
  EXPECT_TRUE(mb.body == b);
  EXPECT_TRUE(by_body_size.at(std::to_string(c.size())).body == c);
  EXPECT_TRUE(by_body_size.at(std::to_string(small.size())).body == small);

  // Settled into another queue: the output's body goes apart, the input's body goes away.
  const Outgoing out{.queue = "asya-out", .body = a};
  ASSERT_FALSE(t->PublishAndAck(ma, {&out, 1}).has_value());
  ASSERT_OK(t->Ack(mb));
  EXPECT_EQ(RawInt(settings_.path, "SELECT count(*) FROM message_bodies"), 2);  // c, out
  ASSERT_OK(t->Purge("asya-q"));
  EXPECT_EQ(RawInt(settings_.path, "SELECT count(*) FROM message_bodies"), 1);
  auto moved = t->Receive("asya-out", Opts(1, Millis(0)));
  ASSERT_OK(moved);
  ASSERT_EQ(moved->size(), 1u);
  EXPECT_TRUE(moved->front().body == a);
  ASSERT_OK(t->DeleteQueue("asya-out"));
  EXPECT_EQ(RawInt(settings_.path, "SELECT count(*) FROM message_bodies"), 0);
}

// ReadBody gives a held message's body again (in the row or apart), only to its current holder.
TEST_F(SqliteTransportTest, ReadBodyGivesAHeldBodyAgainToItsHolderOnly) {
  auto t = Open();
  EXPECT_TRUE(t->KeepsHeldBodies());
  const std::string big = Bytes(200 << 10, 6);
  ASSERT_OK(t->Publish("asya-q", "small"));
  ASSERT_OK(t->Publish("asya-q", big));
  auto got = t->Receive("asya-q", Opts(2, Millis(0)));
  ASSERT_OK(got);
  ASSERT_EQ(got->size(), 2u);
  auto small_again = t->ReadBody((*got)[0]);
  ASSERT_OK(small_again);
  EXPECT_EQ(*small_again, "small");
  auto big_again = t->ReadBody((*got)[1]);
  ASSERT_OK(big_again);
  EXPECT_TRUE(*big_again == big);

  ASSERT_OK(t->Nack((*got)[1]));
  auto stale = t->ReadBody((*got)[1]);
  ASSERT_FALSE(stale.has_value());
  EXPECT_EQ(stale.error().code, ErrorCode::kFailedPrecondition) << stale.error().ToString();
  ASSERT_OK(t->Ack((*got)[0]));
  auto gone = t->ReadBody((*got)[0]);
  ASSERT_FALSE(gone.has_value());
  EXPECT_EQ(gone.error().code, ErrorCode::kNotFound) << gone.error().ToString();
  Message bad = (*got)[0];
  bad.receipt = "nonsense";
  EXPECT_EQ(t->ReadBody(bad).error().code, ErrorCode::kInvalidArgument);
}

}  // namespace
}  // namespace asya::transport
