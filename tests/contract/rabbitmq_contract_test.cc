// The transport contract suite plus RabbitMQ-specific behaviour, all against a real broker that
// this test binary starts itself (tests/support/rabbitmq_fixture.h; one broker per process).
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <iterator>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "asya/transport/rabbitmq.h"
#include "contract/transport_fixture.h"
#include "support/rabbitmq_fixture.h"
#include "support/status_matchers.h"

namespace asya::transport {
namespace {

using asya::test::RabbitMqBroker;
using Clock = std::chrono::steady_clock;

RabbitMqSettings Settings(const RabbitMqBroker& broker) {
  RabbitMqSettings s;
  s.url = broker.url();
  s.management_url = broker.management_url();
  s.prefetch = 10;
  s.queue_retry_max_attempts = 2;
  s.queue_retry_backoff = Millis(10);
  s.reconnect_backoff_min = Millis(50);
  s.reconnect_backoff_max = Millis(500);
  s.holding_queue_settle = Millis(0);  // these brokers are never killed right after a declare
  return s;
}

}  // namespace

namespace contract {
namespace {

// ---------------------------------------------------------------- the shared contract suite

class RabbitMqContractFixture : public TransportFixture {
 public:
  Status Start() override {
    broker_ = &RabbitMqBroker::Shared();
    return Ok();
  }
  Result<TransportPtr> Connect() override { return MakeRabbitMqTransport(Settings(*broker_)); }
  Capabilities Caps() const override {
    Capabilities c;
    c.visibility_timeout = false;  // RabbitMQ redelivers when the consumer's channel closes
    c.extend_visibility = false;
    c.exact_batch = false;     // deliveries trickle in; Receive returns what has arrived
    c.depth_inflight = false;  // only via the management API, whose statistics lag
    c.stale_receipt_rejected = false;
    return c;
  }

 private:
  RabbitMqBroker* broker_ = nullptr;
};

INSTANTIATE_TEST_SUITE_P(RabbitMq, TransportContract,
                         ::testing::Values(ContractParam{
                             "rabbitmq",
                             [] { return std::make_unique<RabbitMqContractFixture>(); }}),
                         ContractParamName);

}  // namespace
}  // namespace contract

namespace {

// ---------------------------------------------------------------- RabbitMQ-specific behaviour

// Receives until n messages arrived or `wait` ran out.
std::vector<Message> ReceiveN(Transport& t, const std::string& q, size_t n,
                              Millis wait = Millis(20'000)) {
  std::vector<Message> out;
  auto deadline = Clock::now() + wait;
  while (out.size() < n && Clock::now() < deadline) {
    ReceiveOptions o;
    o.max_messages = n - out.size();
    o.wait = Millis(500);
    auto got = t.Receive(q, o);
    EXPECT_TRUE(got.has_value()) << got.error().ToString();
    if (!got) {
      break;
    }
    for (auto& m : *got) {
      out.push_back(std::move(m));
    }
  }
  return out;
}

class RabbitMqTest : public ::testing::Test {
 protected:
  void SetUp() override {
    broker_ = &RabbitMqBroker::Shared();
    auto t = MakeRabbitMqTransport(Settings(*broker_));
    ASSERT_TRUE(t.has_value()) << t.error().ToString();
    t_ = std::move(*t);
  }
  void TearDown() override {
    if (t_ != nullptr) {
      for (const std::string& q : queues_) {
        (void)t_->DeleteQueue(q);
        (void)t_->DeleteQueue(q + "-dlq");
      }
    }
  }
  std::string NewQueue(const QueueOptions& options = {}) {
    static std::atomic<int> counter{0};
    std::string q = "asya-rt" + std::to_string(getpid()) + "x" + std::to_string(counter++);
    queues_.push_back(q);
    auto st = t_->CreateQueue(q, options);
    EXPECT_TRUE(st.has_value()) << st.error().ToString();
    return q;
  }
  RabbitMqBroker* broker_ = nullptr;
  TransportPtr t_;
  std::vector<std::string> queues_;
};

TEST_F(RabbitMqTest, PublishToAnUnboundRoutingKeyIsAnError) {
  // mandatory=true: the broker returns the message instead of dropping it silently (W24).
  auto st = t_->Publish("asya-nobody-listens-here", "{}");
  ASSERT_FALSE(st.has_value()) << "an unroutable publish succeeded";
  EXPECT_EQ(st.error().code, ErrorCode::kNotFound) << st.error().ToString();
  EXPECT_NE(st.error().message.find("nobody-listens-here"), std::string::npos)
      << st.error().message;
  // The transport keeps working afterwards.
  std::string q = NewQueue();
  ASSERT_OK(t_->Publish(q, "fine"));
}

TEST_F(RabbitMqTest, QueueIsBoundToTheTopicExchangeWithTheActorName) {
  std::string q = NewQueue({.create_dlq = true});
  // asya-X is reachable with routing key X, its DLQ with X-dlq (the original's topology).
  ASSERT_OK(t_->Publish(q, "main"));
  ASSERT_OK(t_->Publish(q + "-dlq", "dead"));
  auto got = ReceiveN(*t_, q, 1);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].body, "main");
  EXPECT_FALSE(got[0].id.empty()) << "published messages carry a message-id";
  ASSERT_OK(t_->Ack(got[0]));
  auto dead = ReceiveN(*t_, q + "-dlq", 1);
  ASSERT_EQ(dead.size(), 1u);
  EXPECT_EQ(dead[0].body, "dead");
  ASSERT_OK(t_->Ack(dead[0]));
}

TEST_F(RabbitMqTest, ThirtyTwoConcurrentPublishersAllGetTheirConfirms) {
  std::string q = NewQueue();
  constexpr int kThreads = 32;
  constexpr int kEach = 50;
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&, i] {
      for (int j = 0; j < kEach; ++j) {
        if (!t_->Publish(q, std::to_string(i) + ":" + std::to_string(j))) {
          ++failures;
        }
      }
    });
  }
  for (auto& th : threads) {
    th.join();
  }
  EXPECT_EQ(failures.load(), 0);
  // Every confirmed message is in the queue, exactly once.
  auto depth = t_->Depth(q);
  ASSERT_OK(depth);
  EXPECT_EQ(depth->ready, kThreads * kEach);
  std::set<std::string> bodies;
  for (int i = 0; i < kThreads * kEach; ++i) {
    auto got = ReceiveN(*t_, q, 1);
    ASSERT_EQ(got.size(), 1u);
    bodies.insert(got[0].body);
    ASSERT_OK(t_->Ack(got[0]));
  }
  EXPECT_EQ(bodies.size(), static_cast<size_t>(kThreads * kEach));
}

TEST_F(RabbitMqTest, QuorumQueueCountsDeliveriesAcrossNacksAndLostConsumers) {
  std::string q = NewQueue();
  ASSERT_OK(t_->Publish(q, "poison"));
  int64_t expected = 1;
  for (int round = 1; round <= 4; ++round, ++expected) {
    auto consumer = MakeRabbitMqTransport(Settings(*broker_));
    ASSERT_OK(consumer);
    auto got = ReceiveN(**consumer, q, 1);
    ASSERT_EQ(got.size(), 1u) << "round " << round;
    EXPECT_EQ(got[0].delivery_count, expected) << "round " << round;
    EXPECT_EQ(got[0].redelivered, round > 1);
    if (round % 2 == 0) {
      ASSERT_OK((*consumer)->Nack(got[0]));
      auto again = ReceiveN(**consumer, q, 1);
      ASSERT_EQ(again.size(), 1u);
      EXPECT_EQ(again[0].delivery_count, ++expected) << "after a nack";
    }
  }  // each consumer goes away without acking (a killed sidecar): that counts as a delivery too
  auto last = ReceiveN(*t_, q, 1);
  ASSERT_EQ(last.size(), 1u);
  EXPECT_EQ(last[0].delivery_count, expected);
  ASSERT_OK(t_->Ack(last[0]));
}

// Acks queued together go out as one basic.ack(multiple) when they cover the oldest unsettled
// deliveries; a delivery still held must stop that run (else the broker would drop it).
TEST_F(RabbitMqTest, BatchedAcksNeverSettleAHeldDelivery) {
  std::string q = NewQueue();
  for (int i = 0; i < 6; ++i) {
    ASSERT_OK(t_->Publish(q, "m" + std::to_string(i)));
  }
  {
    auto consumer = MakeRabbitMqTransport(Settings(*broker_));  // prefetch 10: takes all 6
    ASSERT_OK(consumer);
    auto got = ReceiveN(**consumer, q, 6);
    ASSERT_EQ(got.size(), 6u);
    for (int i : {0, 1, 2, 4, 5}) {  // back to back, so the I/O thread sees them together
      ASSERT_OK((*consumer)->Ack(got[i]));
    }
    EXPECT_EQ(got[3].body, "m3");
  }  // goes away holding m3 (a killed sidecar): the broker must redeliver m3 and only m3
  auto back = ReceiveN(*t_, q, 2, Millis(3000));
  ASSERT_EQ(back.size(), 1u);
  EXPECT_EQ(back[0].body, "m3");
  EXPECT_EQ(back[0].delivery_count, 2);
  ASSERT_OK(t_->Ack(back[0]));
}

// Results of PublishAndAckAsync calls, collected from the I/O thread.
class SettleResults {
 public:
  Transport::SettleDone Done(size_t i) {
    return [this, i](std::optional<SettleFailure> f) {
      std::lock_guard lock(mu_);
      results_[i] = std::move(f);
      cv_.notify_all();
    };
  }
  bool Wait(size_t n) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, std::chrono::seconds(30), [&] { return results_.size() >= n; });
  }
  std::map<size_t, std::optional<SettleFailure>> Take() {
    std::lock_guard lock(mu_);
    return results_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::map<size_t, std::optional<SettleFailure>> results_;
};

// The asynchronous settle: every output is confirmed before its input is acked, acks of many
// settles go out together, and a delivery still held is never acked with them.
TEST_F(RabbitMqTest, AsyncSettlePublishesEveryOutputThenAcksTheInput) {
  ASSERT_TRUE(t_->SettlesAsync());
  std::string in = NewQueue();
  std::string out = NewQueue();
  for (int i = 0; i < 8; ++i) {
    ASSERT_OK(t_->Publish(in, "m" + std::to_string(i)));
  }
  {
    auto consumer = MakeRabbitMqTransport(Settings(*broker_));  // prefetch 10: takes all 8
    ASSERT_OK(consumer);
    auto got = ReceiveN(**consumer, in, 8);
    ASSERT_EQ(got.size(), 8u);
    SettleResults results;
    std::vector<std::string> bodies;  // the outputs' bodies outlive the settles
    bodies.reserve(16);
    for (size_t i = 0; i < 8; ++i) {
      bodies.push_back(got[i].body + "a");
      bodies.push_back(got[i].body + "b");
    }
    for (size_t i = 0; i < 8; ++i) {
      if (i == 4) {
        continue;  // still "in a handler" when the others settle
      }
      std::vector<Outgoing> outgoing{{.queue = out, .body = bodies[2 * i], .options = {}},
                                     {.queue = out, .body = bodies[2 * i + 1], .options = {}}};
      (*consumer)->PublishAndAckAsync(got[i], outgoing, results.Done(i));
    }
    ASSERT_TRUE(results.Wait(7));
    for (const auto& [i, failure] : results.Take()) {
      EXPECT_FALSE(failure.has_value()) << i << ": " << failure->error.ToString();
    }
    // Settled once: acking again is refused without touching the broker.
    auto again = (*consumer)->Ack(got[0]);
    ASSERT_FALSE(again.has_value());
    EXPECT_EQ(again.error().code, ErrorCode::kFailedPrecondition);
    EXPECT_EQ(got[4].body, "m4");
  }  // goes away holding m4: the broker redelivers m4 and only m4
  auto back = ReceiveN(*t_, in, 2, Millis(3000));
  ASSERT_EQ(back.size(), 1u);
  EXPECT_EQ(back[0].body, "m4");
  ASSERT_OK(t_->Ack(back[0]));
  std::multiset<std::string> seen;
  for (;;) {  // acked as they come (prefetch 10 < 14)
    auto outputs = ReceiveN(*t_, out, 1, Millis(2000));
    if (outputs.empty()) {
      break;
    }
    seen.insert(outputs[0].body);
    ASSERT_OK(t_->Ack(outputs[0]));
  }
  EXPECT_EQ(seen.size(), 14u);
  EXPECT_EQ(seen.count("m3a") + seen.count("m3b"), 2u);
  EXPECT_EQ(seen.count("m4a") + seen.count("m4b"), 0u);
}

// A failed output (unroutable: mandatory) ends the async settle with its index; the outputs
// after it are not published and the input is not acked, so the caller can still nack it.
TEST_F(RabbitMqTest, AsyncSettleWithAnUnroutableOutputFailsAndAcksNothing) {
  std::string in = NewQueue();
  std::string out = NewQueue();
  ASSERT_OK(t_->Publish(in, "input"));
  auto got = ReceiveN(*t_, in, 1);
  ASSERT_EQ(got.size(), 1u);
  std::vector<Outgoing> outgoing{{.queue = out, .body = "first", .options = {}},
                                 {.queue = "asya-nobody-listens-here", .body = "x", .options = {}},
                                 {.queue = out, .body = "third", .options = {}}};
  SettleResults results;
  t_->PublishAndAckAsync(got[0], outgoing, results.Done(0));
  ASSERT_TRUE(results.Wait(1));
  auto failure = results.Take()[0];
  ASSERT_TRUE(failure.has_value());
  EXPECT_FALSE(failure->in_ack);
  EXPECT_EQ(failure->index, 1u);
  EXPECT_EQ(failure->published, 1u);
  EXPECT_EQ(failure->error.code, ErrorCode::kNotFound) << failure->error.ToString();
  ASSERT_OK(t_->Nack(got[0], Millis(0)));  // the receipt is still ours
  auto outputs = ReceiveN(*t_, out, 2, Millis(2000));
  ASSERT_EQ(outputs.size(), 1u);
  EXPECT_EQ(outputs[0].body, "first");
  ASSERT_OK(t_->Ack(outputs[0]));
  auto back = ReceiveN(*t_, in, 1, Millis(5000));
  ASSERT_EQ(back.size(), 1u);
  EXPECT_EQ(back[0].body, "input");
  ASSERT_OK(t_->Ack(back[0]));
}

TEST_F(RabbitMqTest, PrefetchedMessagesNobodyReceivedAreNotCounted) {
  for (const char* type : {"quorum", "classic"}) {
    std::string q = NewQueue({.create_dlq = false, .attributes = {{"x-queue-type", type}}});
    for (int i = 0; i < 3; ++i) {
      ASSERT_OK(t_->Publish(q, "m" + std::to_string(i)));
    }
    {
      auto consumer = MakeRabbitMqTransport(Settings(*broker_));  // prefetch 10: takes all 3
      ASSERT_OK(consumer);
      auto got = ReceiveN(**consumer, q, 1);
      ASSERT_EQ(got.size(), 1u);
      ASSERT_OK((*consumer)->Ack(got[0]));
    }  // shuts down with two prefetched messages nobody received
    auto rest = ReceiveN(*t_, q, 2);
    ASSERT_EQ(rest.size(), 2u) << type;
    for (const auto& m : rest) {
      EXPECT_EQ(m.delivery_count, 1) << type << ": " << m.body;
      ASSERT_OK(t_->Ack(m));
    }
  }
}

// A stopping sidecar (Interrupt(), then a drain of up to its grace period with the connection
// still open) must not sit on messages it prefetched and will never process: they go back to
// the queue at Interrupt(), uncounted, while the message it is still working on stays its own.
TEST_F(RabbitMqTest, InterruptGivesBackPrefetchedMessagesWhileTheConnectionStaysOpen) {
  std::string q = NewQueue();
  for (int i = 0; i < 3; ++i) {
    ASSERT_OK(t_->Publish(q, "m" + std::to_string(i)));
  }
  auto consumer = MakeRabbitMqTransport(Settings(*broker_));  // prefetch 10: takes all 3
  ASSERT_OK(consumer);
  auto held = ReceiveN(**consumer, q, 1);
  ASSERT_EQ(held.size(), 1u);
  (*consumer)->Interrupt();
  auto rest = ReceiveN(*t_, q, 2);  // the consumer's connection is still open
  ASSERT_EQ(rest.size(), 2u) << "prefetched messages were held by an interrupted consumer";
  for (const auto& m : rest) {
    EXPECT_NE(m.body, held[0].body);
    EXPECT_EQ(m.delivery_count, 1) << m.body;
    ASSERT_OK(t_->Ack(m));
  }
  ASSERT_OK((*consumer)->Ack(held[0]));  // in-flight work still settles after Interrupt()
  auto none = ReceiveN(*t_, q, 1, Millis(500));
  EXPECT_TRUE(none.empty());
}

TEST_F(RabbitMqTest, ClassicQueueFallbackCountsRedeliveriesAndNeverLoops) {
  // An existing classic queue (e.g. made by an older deployment): CreateQueue keeps it.
  std::string q = NewQueue({.create_dlq = false, .attributes = {{"x-queue-type", "classic"}}});
  ASSERT_OK(t_->CreateQueue(q, {.create_dlq = false}));  // quorum declare -> 406 -> use as is
  ASSERT_OK(t_->Publish(q, "crasher"));
  int64_t last = 0;
  int64_t expected = 1;
  for (int round = 1; round <= 4; ++round, ++expected) {
    auto consumer = MakeRabbitMqTransport(Settings(*broker_));
    ASSERT_OK(consumer);
    auto got = ReceiveN(**consumer, q, 1);
    ASSERT_EQ(got.size(), 1u) << "round " << round;
    EXPECT_EQ(got[0].body, "crasher");
    EXPECT_EQ(got[0].delivery_count, expected) << "classic redeliveries must be counted";
    if (round % 2 == 0) {
      ASSERT_OK((*consumer)->Nack(got[0]));
      auto again = ReceiveN(**consumer, q, 1);
      ASSERT_EQ(again.size(), 1u);
      EXPECT_EQ(again[0].delivery_count, ++expected) << "after a nack";
    }
    last = expected;
  }  // each consumer goes away without acking, like a sidecar killed mid-message
  auto final_round = ReceiveN(*t_, q, 1);
  ASSERT_EQ(final_round.size(), 1u);
  EXPECT_EQ(final_round[0].delivery_count, last + 1);
  ASSERT_OK(t_->Ack(final_round[0]));
  auto depth = t_->Depth(q);
  ASSERT_OK(depth);
  EXPECT_EQ(depth->ready, 0) << "the counted copies must not pile up";
}

TEST_F(RabbitMqTest, DelayedPublishAndNackGoThroughAHoldingQueue) {
  std::string q = NewQueue();
  PublishOptions po;
  po.delay = Millis(1200);
  ASSERT_OK(t_->Publish(q, "delayed", po));
  auto holding = t_->Depth(q + "-hold-1200");  // the quorum holding queue
  ASSERT_OK(holding);
  auto got = ReceiveN(*t_, q, 1);
  ASSERT_EQ(got.size(), 1u) << "a delayed publish never arrived";
  EXPECT_EQ(got[0].delivery_count, 1);
  ASSERT_OK(t_->Nack(got[0], Millis(1234)));  // rounded up to the 1500 ms holding queue
  auto again = ReceiveN(*t_, q, 1);
  ASSERT_EQ(again.size(), 1u) << "a delayed nack never came back";
  EXPECT_EQ(again[0].body, "delayed");
  EXPECT_EQ(again[0].delivery_count, 2) << "the count survives the holding queue";
  ASSERT_OK(t_->Ack(again[0]));
  ASSERT_OK(t_->DeleteQueue(q));
  auto exists = t_->QueueExists(q + "-hold-1500");
  ASSERT_OK(exists);
  EXPECT_FALSE(*exists) << "DeleteQueue removes the holding queues it made";
}

TEST_F(RabbitMqTest, WithoutQuorumQueuesDelaysUseClassicHoldingQueues) {
  std::string q = NewQueue({.create_dlq = false, .attributes = {{"x-queue-type", "classic"}}});
  RabbitMqSettings s = Settings(*broker_);
  s.quorum_queues = false;
  auto classic = MakeRabbitMqTransport(s);
  ASSERT_OK(classic);
  PublishOptions po;
  po.delay = Millis(1200);
  ASSERT_OK((*classic)->Publish(q, "delayed", po));
  auto exists = t_->QueueExists(q + "-delay-1200");
  ASSERT_OK(exists);
  EXPECT_TRUE(*exists);
  auto got = ReceiveN(*t_, q, 1);
  ASSERT_EQ(got.size(), 1u) << "a delayed publish never arrived";
  ASSERT_OK(t_->Ack(got[0]));
  ASSERT_OK((*classic)->DeleteQueue(q));
  exists = t_->QueueExists(q + "-delay-1200");
  ASSERT_OK(exists);
  EXPECT_FALSE(*exists) << "DeleteQueue removes the holding queues it made";
}

TEST_F(RabbitMqTest, ARefusedQuorumHoldingQueueFallsBackToAClassicOne) {
  // A queue of the quorum holding queue's name with other arguments stands in for a broker that
  // refuses the quorum arguments (RabbitMQ < 3.10): both answer 406 PRECONDITION_FAILED.
  std::string q = NewQueue({.create_dlq = false});
  ASSERT_OK(t_->CreateQueue(q + "-hold-1200",
                            {.create_dlq = false, .attributes = {{"x-queue-type", "classic"}}}));
  queues_.push_back(q + "-hold-1200");
  auto fresh = MakeRabbitMqTransport(Settings(*broker_));
  ASSERT_OK(fresh);
  PublishOptions po;
  po.delay = Millis(1200);
  ASSERT_OK((*fresh)->Publish(q, "delayed", po));
  auto got = ReceiveN(*t_, q, 1);
  ASSERT_EQ(got.size(), 1u) << "a delayed publish never arrived";
  EXPECT_EQ(got[0].body, "delayed");
  ASSERT_OK(t_->Ack(got[0]));
  auto exists = t_->QueueExists(q + "-delay-1200");
  ASSERT_OK(exists);
  EXPECT_TRUE(*exists) << "the fallback is the classic holding queue";
  ASSERT_OK((*fresh)->DeleteQueue(q));
}

TEST_F(RabbitMqTest, DelayedPublishToAMissingQueueFails) {
  PublishOptions po;
  po.delay = Millis(100);
  auto st = t_->Publish("asya-rt-missing-target", "x", po);
  ASSERT_FALSE(st.has_value());
  EXPECT_EQ(st.error().code, ErrorCode::kNotFound) << st.error().ToString();
}

TEST_F(RabbitMqTest, AckErrorsAreClear) {
  std::string q = NewQueue();
  ASSERT_OK(t_->Publish(q, "once"));
  auto got = ReceiveN(*t_, q, 1);
  ASSERT_EQ(got.size(), 1u);
  ASSERT_OK(t_->Ack(got[0]));
  auto twice = t_->Ack(got[0]);
  ASSERT_FALSE(twice.has_value())
      << "a double ack must not reach the broker (it kills the channel)";
  EXPECT_EQ(twice.error().code, ErrorCode::kFailedPrecondition) << twice.error().ToString();
  Message bogus = got[0];
  bogus.receipt = "not-a-receipt";
  auto bad = t_->Ack(bogus);
  ASSERT_FALSE(bad.has_value());
  EXPECT_EQ(bad.error().code, ErrorCode::kInvalidArgument) << bad.error().ToString();
  bogus.receipt = "999999.1";
  auto stale = t_->Nack(bogus);
  ASSERT_FALSE(stale.has_value());
  EXPECT_EQ(stale.error().code, ErrorCode::kFailedPrecondition) << stale.error().ToString();
}

TEST_F(RabbitMqTest, InvalidQueueNamesAreRejected) {
  EXPECT_EQ(t_->Publish("", "x").error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(t_->CreateQueue(std::string(300, 'q')).error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(t_->Receive("bad\nname", {}).error().code, ErrorCode::kInvalidArgument);
}

TEST_F(RabbitMqTest, ReceiveOnAMissingQueueRetriesThenFailsAndIsInterruptible) {
  auto st = t_->Receive("asya-rt-never-created", {});
  ASSERT_FALSE(st.has_value());
  EXPECT_EQ(st.error().code, ErrorCode::kNotFound);
  EXPECT_NE(st.error().message.find("asya-rt-never-created"), std::string::npos);
  EXPECT_NE(st.error().message.find("checked 2 times"), std::string::npos) << st.error().message;

  RabbitMqSettings slow = Settings(*broker_);
  slow.queue_retry_max_attempts = 1000;
  slow.queue_retry_backoff = Millis(60'000);
  auto t = MakeRabbitMqTransport(slow);
  ASSERT_OK(t);
  Result<std::vector<Message>> got = std::vector<Message>{};
  std::thread receiver([&] { got = (*t)->Receive("asya-rt-never-created", {}); });
  std::this_thread::sleep_for(Millis(200));
  (*t)->Interrupt();
  receiver.join();  // would hang for hours if the retry sleep ignored Interrupt()
  ASSERT_OK(got);
  EXPECT_TRUE(got->empty());
}

TEST_F(RabbitMqTest, ConsumerOfADeletedQueueRecoversWhenItComesBack) {
  // RabbitMQ 3.10 sends basic.cancel for deleted classic queues but not for quorum queues; the
  // transport checks its queue when a Receive times out (see README).
  std::string q = NewQueue();
  ASSERT_OK(t_->Publish(q, "before"));
  auto got = ReceiveN(*t_, q, 1);
  ASSERT_EQ(got.size(), 1u);
  ASSERT_OK(t_->Ack(got[0]));
  auto admin = MakeRabbitMqTransport(Settings(*broker_));
  ASSERT_OK(admin);
  ASSERT_OK((*admin)->DeleteQueue(q));
  ReceiveOptions o;
  o.wait = Millis(200);
  Result<std::vector<Message>> missing = std::vector<Message>{};
  for (int i = 0; i < 50 && missing.has_value(); ++i) {
    missing = t_->Receive(q, o);
    ASSERT_TRUE(!missing.has_value() || missing->empty());
  }
  ASSERT_FALSE(missing.has_value()) << "the consumer never noticed its queue was deleted";
  EXPECT_EQ(missing.error().code, ErrorCode::kNotFound) << missing.error().ToString();
  ASSERT_OK((*admin)->CreateQueue(q, {}));
  ASSERT_OK((*admin)->Publish(q, "after"));
  auto later = ReceiveN(*t_, q, 1);
  ASSERT_EQ(later.size(), 1u);
  EXPECT_EQ(later[0].body, "after");
  ASSERT_OK(t_->Ack(later[0]));
}

TEST_F(RabbitMqTest, WrongCredentialsGiveAClearErrorNamingUserAndHost) {
  RabbitMqSettings s = Settings(*broker_);
  s.url = "amqp://intruder:wrong@127.0.0.1:" + std::to_string(broker_->port()) + "/";
  auto t = MakeRabbitMqTransport(s);
  ASSERT_FALSE(t.has_value());
  EXPECT_EQ(t.error().code, ErrorCode::kPermissionDenied) << t.error().ToString();
  EXPECT_NE(t.error().message.find("intruder"), std::string::npos) << t.error().message;
  EXPECT_NE(t.error().message.find("127.0.0.1:" + std::to_string(broker_->port())),
            std::string::npos)
      << t.error().message;
}

TEST_F(RabbitMqTest, UnknownVhostIsAClearError) {
  RabbitMqSettings s = Settings(*broker_);
  s.url = broker_->url() + "no-such-vhost";
  auto t = MakeRabbitMqTransport(s);
  ASSERT_FALSE(t.has_value());
  EXPECT_NE(t.error().message.find("no-such-vhost"), std::string::npos) << t.error().message;
}

int ClosedPort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  socklen_t len = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);  // nobody listens there now
  return ntohs(addr.sin_port);
}

TEST_F(RabbitMqTest, UnreachableBrokerIsRetriedWithBackoffAndReportedClearly) {
  RabbitMqSettings s = Settings(*broker_);
  int port = ClosedPort();
  s.url = "amqp://guest:guest@127.0.0.1:" + std::to_string(port) + "/";
  s.connect_timeout = Millis(400);
  auto t = MakeRabbitMqTransport(s);
  ASSERT_FALSE(t.has_value());
  EXPECT_EQ(t.error().code, ErrorCode::kUnavailable);
  EXPECT_NE(t.error().message.find("127.0.0.1:" + std::to_string(port)), std::string::npos)
      << t.error().message;
  EXPECT_EQ(t.error().message.find("(1 attempts)"), std::string::npos)
      << "expected several connection attempts: " << t.error().message;

  // Without waiting for the first connection: Receive blocks, Interrupt ends it; Publish gives up
  // after operation_timeout with the reason.
  s.connect_timeout = Millis(0);
  s.operation_timeout = Millis(300);
  auto lazy = MakeRabbitMqTransport(s);
  ASSERT_OK(lazy);
  auto pub = (*lazy)->Publish("asya-x", "x");
  ASSERT_FALSE(pub.has_value());
  EXPECT_EQ(pub.error().code, ErrorCode::kUnavailable);
  EXPECT_NE(pub.error().message.find("not connected"), std::string::npos) << pub.error().message;
  Result<std::vector<Message>> got = std::vector<Message>{};
  std::thread receiver([&] {
    ReceiveOptions o;
    o.wait = Millis(600'000);
    got = (*lazy)->Receive("asya-x", o);
  });
  std::this_thread::sleep_for(Millis(200));
  (*lazy)->Interrupt();
  receiver.join();
  ASSERT_OK(got);
  EXPECT_TRUE(got->empty());
}

TEST_F(RabbitMqTest, MalformedSettingsAreRejected) {
  RabbitMqSettings s = Settings(*broker_);
  for (const char* url : {"http://localhost/", "amqp://", "amqp://host:notaport/",
                          "amqp://host:99999/", "amqp://u%zz@host/", "amqp://host/?frob=1"}) {
    s.url = url;
    auto t = MakeRabbitMqTransport(s);
    ASSERT_FALSE(t.has_value()) << url;
    EXPECT_EQ(t.error().code, ErrorCode::kInvalidArgument) << url << ": " << t.error().ToString();
  }
  s = Settings(*broker_);
  s.exchange = "";
  EXPECT_EQ(MakeRabbitMqTransport(s).error().code, ErrorCode::kInvalidArgument);
  s = Settings(*broker_);
  s.tls_ca_file = "/nonexistent/ca.pem";
  s.url = "amqps://guest:guest@127.0.0.1:1/";
  EXPECT_EQ(MakeRabbitMqTransport(s).error().code, ErrorCode::kInvalidArgument);
}

TEST_F(RabbitMqTest, ExchangeOfAnotherTypeIsAClearError) {
  // The exchange must be a topic exchange; a name taken by another type fails with the reason.
  RabbitMqSettings s = Settings(*broker_);
  s.exchange = "amq.direct";
  auto t = MakeRabbitMqTransport(s);
  ASSERT_FALSE(t.has_value());
  EXPECT_NE(t.error().message.find("amq.direct"), std::string::npos) << t.error().message;
}

TEST_F(RabbitMqTest, TlsConnectionsVerifyTheBrokerCertificate) {
  ASSERT_FALSE(broker_->tls_url().empty());
  // Verified against the test CA (host name "localhost" is in the certificate).
  RabbitMqSettings s = Settings(*broker_);
  s.url = broker_->tls_url();
  s.tls_ca_file = broker_->ca_file();
  auto verified = MakeRabbitMqTransport(s);
  ASSERT_OK(verified);
  std::string q = NewQueue();
  ASSERT_OK((*verified)->Publish(q, "over tls"));
  auto got = ReceiveN(**verified, q, 1);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].body, "over tls");
  ASSERT_OK((*verified)->Ack(got[0]));
  // Without the CA the self-signed chain is rejected ...
  s.tls_ca_file.clear();
  auto rejected = MakeRabbitMqTransport(s);
  ASSERT_FALSE(rejected.has_value()) << "an unverifiable certificate was accepted";
  EXPECT_EQ(rejected.error().code, ErrorCode::kPermissionDenied) << rejected.error().ToString();
  EXPECT_NE(rejected.error().message.find("localhost:"), std::string::npos)
      << rejected.error().message;
  // ... unless verification is switched off (?verify=false or tls_verify=false).
  s.url = broker_->tls_url() + "?verify=false";
  ASSERT_OK(MakeRabbitMqTransport(s));
  s.url = broker_->tls_url();
  s.tls_verify = false;
  ASSERT_OK(MakeRabbitMqTransport(s));
}

// kill -9 and restart of the broker under a live transport. The test has a broker of its own, so
// no other case sees the restart and it does not matter when gtest runs it.
TEST(RabbitMqReconnect, ResumesAfterItsBrokerIsKilledAndRestarted) {
  RabbitMqBroker::Options options;
  options.management = false;
  options.tls = false;
  auto broker = RabbitMqBroker::Start(options);
  ASSERT_OK(broker);
  auto made = MakeRabbitMqTransport(Settings(**broker));
  ASSERT_OK(made);
  TransportPtr t = std::move(*made);
  const std::string q = "asya-reconnect";
  ASSERT_OK(t->CreateQueue(q, {}));
  ASSERT_OK(t->Publish(q, "m1"));
  auto held = ReceiveN(*t, q, 1);
  ASSERT_EQ(held.size(), 1u);

  (*broker)->Stop(/*clean=*/false);  // kill -9
  ASSERT_OK((*broker)->Restart());

  // Publishing resumes on the new connection (the first attempts may report the lost one).
  Status published = MakeError(ErrorCode::kUnavailable, "not tried");
  for (int i = 0; i < 20 && !published; ++i) {
    published = t->Publish(q, "m2");
  }
  ASSERT_OK(published);
  // The receipt from the old connection is stale; the broker redelivers m1 instead.
  auto stale = t->Ack(held[0]);
  ASSERT_FALSE(stale.has_value());
  EXPECT_EQ(stale.error().code, ErrorCode::kFailedPrecondition) << stale.error().ToString();
  auto got = ReceiveN(*t, q, 2);
  ASSERT_EQ(got.size(), 2u) << "consuming did not resume after the restart";
  std::set<std::string> bodies;
  for (const auto& m : got) {
    bodies.insert(m.body);
    if (m.body == "m1") {
      EXPECT_EQ(m.delivery_count, 2);
    }
    ASSERT_OK(t->Ack(m));
  }
  EXPECT_EQ(bodies, (std::set<std::string>{"m1", "m2"}));
  t.reset();  // before the broker goes away
}

// A retry or nack waits in a holding queue. A broker killed (kill -9) while messages wait there,
// while expired ones move back into their queue, or whose holding queues expire messages as it
// starts again, must give every confirmed message back. Classic holding queues dead-letter
// at-most-once and lost them (issue 12: `asya check --faults broker-kill` lost retried outputs);
// quorum ones with at-least-once dead-lettering do not. Own broker, like the reconnect case.
// Until the transport waited for a new quorum holding queue to be saved by the broker
// (RabbitMqSettings::holding_queue_settle), this lost the whole last-created bucket in every run:
// the broker restarted that queue as a new, empty Raft member (rabbitmq/ra#443, RabbitMQ
// <= 3.13.2). DISABLED (not in `make test`): ~35-45 s with its own broker on the loaded 2-core
// machine. `make chaos` runs it (tools/chaos.py); by hand:
//   rabbitmq_contract_test --gtest_also_run_disabled_tests --gtest_filter='RabbitMqHolding.*'
TEST(RabbitMqHolding, DISABLED_DelayedMessagesSurviveAKillOfTheBroker) {
  RabbitMqBroker::Options options;
  options.management = false;
  options.tls = false;
  auto broker = RabbitMqBroker::Start(options);
  ASSERT_OK(broker);
  RabbitMqSettings settings = Settings(**broker);
  settings.holding_queue_settle = RabbitMqSettings().holding_queue_settle;  // the default
  auto made = MakeRabbitMqTransport(settings);
  ASSERT_OK(made);
  TransportPtr t = std::move(*made);
  const std::string q = "asya-holding-kill";
  ASSERT_OK(t->CreateQueue(q, {.create_dlq = false}));

  // Publishers keep parking messages until the broker dies: short delays are moving back into q
  // at the kill, long ones expire while the broker is down or as it starts again.
  const Millis delays[] = {Millis(10), Millis(100), Millis(400), Millis(1500), Millis(3000)};
  std::atomic<bool> stop{false};
  std::mutex mu;
  std::set<std::string> confirmed;
  std::vector<std::thread> publishers;
  for (int p = 0; p < 4; ++p) {
    publishers.emplace_back([&, p] {
      for (int i = 0; !stop; ++i) {
        std::string body = "m" + std::to_string(p) + "-" + std::to_string(i);
        PublishOptions po;
        po.delay = delays[i % std::size(delays)];
        if (t->Publish(q, body, po)) {
          std::lock_guard lock(mu);
          confirmed.insert(body);
        }
      }
    });
  }
  // Kill as soon as every delay has a few confirmed messages: the holding queues were created
  // moments ago (the last one within ~100 ms), which is when a broker that has not yet saved a
  // new quorum queue's registration loses the whole queue (see DeclareHoldingQueue), and messages
  // of every delay are still waiting in their holding queue.
  auto enough = Clock::now() + std::chrono::seconds(60);
  for (;;) {
    std::this_thread::sleep_for(Millis(5));
    std::lock_guard lock(mu);
    std::map<int, int> per_delay;
    for (const std::string& body : confirmed) {
      ++per_delay[std::stoi(body.substr(body.find('-') + 1)) % static_cast<int>(std::size(delays))];
    }
    bool all = per_delay.size() == std::size(delays);
    for (const auto& [d, n] : per_delay) {
      all = all && n >= 3;
    }
    if (all || Clock::now() > enough) {
      break;
    }
  }
  stop = true;
  (*broker)->Stop(/*clean=*/false);  // kill -9
  ASSERT_OK((*broker)->Restart());
  for (auto& th : publishers) {
    th.join();  // a publish under way at the kill fails (unconfirmed: not counted) or retries
  }
  ASSERT_GE(confirmed.size(), 15u) << "too few messages were published before the kill";

  std::set<std::string> missing = confirmed;
  auto deadline = Clock::now() + std::chrono::seconds(30);
  while (!missing.empty() && Clock::now() < deadline) {
    ReceiveOptions o;
    o.max_messages = 64;
    o.wait = Millis(500);
    auto got = t->Receive(q, o);
    if (!got) {
      continue;  // the connection may still flap right after the restart
    }
    for (const Message& m : *got) {
      missing.erase(m.body);  // duplicates are allowed (at-least-once)
      (void)t->Ack(m);
    }
  }
  // Which holding queues lost them (message "m<p>-<i>" waited delays[i % 5]).
  std::map<int64_t, int> lost_by_delay;
  for (const std::string& body : missing) {
    ++lost_by_delay[delays[std::stoi(body.substr(body.find('-') + 1)) % std::size(delays)].count()];
  }
  std::string by_delay;
  for (const auto& [ms, n] : lost_by_delay) {
    by_delay += " " + std::to_string(n) + " of the " + std::to_string(ms) + " ms ones;";
  }
  EXPECT_TRUE(missing.empty()) << missing.size() << " of " << confirmed.size()
                               << " confirmed delayed messages were lost:" << by_delay;
  t.reset();  // before the broker goes away
}

// After a kill -9 a quorum queue replays its log before it serves; meanwhile a passive declare
// counts 0 messages (measured: 12 s for 100,000 messages). `asya check` took that 0 for "empty"
// and reported 54,417 outputs of a 100,000-envelope broker-kill run as lost while they waited in
// a recovering queue. Depth() must not call such a queue exactly empty: every exact answer counts
// every message. DISABLED (not in `make test`): own broker with the management plugin, a kill and
// a restart, ~30 s on the loaded 2-core machine; `make chaos` runs it with RabbitMqHolding.
TEST(RabbitMqRecovery, DISABLED_DepthIsNotExactWhileAQueueRecovers) {
  RabbitMqBroker::Options options;
  options.tls = false;
  auto broker = RabbitMqBroker::Start(options);
  ASSERT_OK(broker);
  const std::string q = "asya-recovering";
  constexpr int kMessages = 20'000;
  {
    auto made = MakeRabbitMqTransport(Settings(**broker));
    ASSERT_OK(made);
    ASSERT_OK((*made)->CreateQueue(q, {.create_dlq = false}));
    std::vector<std::thread> publishers;
    for (int p = 0; p < 8; ++p) {
      publishers.emplace_back([&, p] {
        for (int i = p; i < kMessages; i += 8) {
          ASSERT_OK((*made)->Publish(q, std::string(200, 'x')));
        }
      });
    }
    for (auto& th : publishers) {
      th.join();
    }
  }
  (*broker)->Stop(/*clean=*/false);  // kill -9
  ASSERT_OK((*broker)->Restart());
  auto made = MakeRabbitMqTransport(Settings(**broker));
  ASSERT_OK(made);
  int inexact = 0;
  auto deadline = Clock::now() + std::chrono::seconds(120);
  for (;;) {
    auto d = (*made)->Depth(q);
    if (d && d->exact) {
      EXPECT_EQ(d->ready, kMessages) << "an exact depth right after the restart";
      break;
    }
    inexact += d ? 1 : 0;
    ASSERT_LT(Clock::now(), deadline) << "the queue never reported an exact depth";
    std::this_thread::sleep_for(Millis(100));
  }
  std::printf("[          ] %d inexact answers before the first exact one\n", inexact);
}

}  // namespace
}  // namespace asya::transport
