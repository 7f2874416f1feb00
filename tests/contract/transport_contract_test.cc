// The transport contract suite (see transport_fixture.h for how a transport joins it).
#include <algorithm>
#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <thread>

#include <unistd.h>

#include "contract/transport_fixture.h"
#include "support/status_matchers.h"

namespace asya::transport::contract {
namespace {

using Clock = std::chrono::steady_clock;

Millis Since(Clock::time_point start) {
  return std::chrono::duration_cast<Millis>(Clock::now() - start);
}

// One started fixture per parameter name, shared by every case of the process.
struct SharedFixture {
  std::unique_ptr<TransportFixture> fixture;
  Status started;
};

std::mutex g_fixtures_mu;
std::map<std::string, SharedFixture>& Fixtures() {
  static auto* fixtures = new std::map<std::string, SharedFixture>();
  return *fixtures;
}

class StopFixtures : public ::testing::Environment {
 public:
  void TearDown() override {
    std::lock_guard lock(g_fixtures_mu);
    for (auto& [name, shared] : Fixtures()) {
      if (shared.started) {
        shared.fixture->Stop();
      }
    }
    Fixtures().clear();
  }
};

[[maybe_unused]] auto* const g_stop_env = ::testing::AddGlobalTestEnvironment(new StopFixtures());

std::atomic<int> g_queue_counter{0};

}  // namespace

void TransportContract::SetUp() {
  const ContractParam& p = GetParam();
  {
    std::lock_guard lock(g_fixtures_mu);
    auto it = Fixtures().find(p.name);
    if (it == Fixtures().end()) {
      SharedFixture shared{p.make_fixture(), Ok()};
      shared.started = shared.fixture->Start();
      it = Fixtures().emplace(p.name, std::move(shared)).first;
    }
    ASSERT_TRUE(it->second.started.has_value())
        << "fixture '" << p.name << "' did not start: " << it->second.started.error().ToString();
    fixture_ = it->second.fixture.get();
  }
  caps_ = fixture_->Caps();
  auto t = fixture_->Connect();
  ASSERT_TRUE(t.has_value()) << "Connect: " << t.error().ToString();
  transport_ = std::move(*t);
}

void TransportContract::TearDown() {
  if (transport_ != nullptr) {
    for (const std::string& q : queues_) {
      (void)transport_->DeleteQueue(q);
      (void)transport_->DeleteQueue(q + "-dlq");
    }
  }
  extra_.clear();
  transport_.reset();
}

Transport& TransportContract::Connect() {
  auto t = fixture_->Connect();
  EXPECT_TRUE(t.has_value()) << "Connect: " << t.error().ToString();
  if (!t.has_value()) {
    return *transport_;
  }
  extra_.push_back(std::move(*t));
  return *extra_.back();
}

std::string TransportContract::NewQueue(const QueueOptions& options) {
  std::string name =
      "asya-ct" + std::to_string(::getpid()) + "x" + std::to_string(g_queue_counter.fetch_add(1));
  queues_.push_back(name);
  auto s = transport_->CreateQueue(name, options);
  EXPECT_TRUE(s.has_value()) << "CreateQueue(" << name << "): " << s.error().ToString();
  return name;
}

std::vector<Message> TransportContract::ReceiveN(Transport& t, const std::string& queue,
                                                 size_t count, Millis wait, Millis visibility) {
  std::vector<Message> out;
  auto start = Clock::now();
  while (out.size() < count && Since(start) < wait) {
    ReceiveOptions ro;
    ro.max_messages = count - out.size();
    ro.wait = std::max(Millis(1), wait - Since(start));
    ro.visibility = visibility;
    auto got = t.Receive(queue, ro);
    EXPECT_TRUE(got.has_value()) << "Receive(" << queue << "): " << got.error().ToString();
    if (!got.has_value()) {
      break;
    }
    EXPECT_LE(got->size(), ro.max_messages) << "Receive returned more than max_messages";
    for (Message& m : *got) {
      out.push_back(std::move(m));
    }
  }
  return out;
}

namespace {

ReceiveOptions Opts(size_t max, Millis wait, Millis visibility = Millis(60'000)) {
  ReceiveOptions o;
  o.max_messages = max;
  o.wait = wait;
  o.visibility = visibility;
  return o;
}

}  // namespace

TEST_P(TransportContract, PublishedBytesArriveExactly) {
  std::string q = NewQueue();
  std::vector<std::string> bodies = {
      R"({"id":"1","route":{"actors":["a"],"current":0},"payload":{"x":1}})",
      "not json at all {",
      "unicode: \xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80 \xe4\xb8\xad\xe6\x96\x87",
      std::string(1, ' '),
  };
  if (caps().binary_bodies) {
    std::string all_bytes;
    for (int i = 0; i < 256; ++i) {
      all_bytes.push_back(static_cast<char>(i));
    }
    bodies.push_back(all_bytes + all_bytes);
  }
  std::mt19937 rng(42);
  std::string big(caps().max_body_bytes, 'x');
  for (char& c : big) {
    c = caps().binary_bodies ? static_cast<char>(rng()) : static_cast<char>('a' + rng() % 26);
  }
  bodies.push_back(big);

  for (const std::string& body : bodies) {
    ASSERT_OK(transport().Publish(q, body));
    auto got = ReceiveN(transport(), q, 1);
    ASSERT_EQ(got.size(), 1u) << "body of " << body.size() << " bytes never arrived";
    EXPECT_EQ(got[0].body.size(), body.size());
    EXPECT_TRUE(got[0].body == body) << "body of " << body.size() << " bytes changed in transit";
    EXPECT_EQ(got[0].queue, q);
    EXPECT_FALSE(got[0].receipt.empty());
    if (caps().delivery_count) {
      EXPECT_EQ(got[0].delivery_count, 1);
    }
    ASSERT_OK(transport().Ack(got[0]));
  }
}

TEST_P(TransportContract, SingleConsumerSeesPublishOrder) {
  if (!caps().fifo_order) {
    GTEST_SKIP() << "capability fifo_order is off";
  }
  std::string q = NewQueue();
  for (int i = 0; i < 20; ++i) {
    ASSERT_OK(transport().Publish(q, "m" + std::to_string(i)));
  }
  for (int i = 0; i < 20; ++i) {
    auto got = ReceiveN(transport(), q, 1);
    ASSERT_EQ(got.size(), 1u);
    EXPECT_EQ(got[0].body, "m" + std::to_string(i));
    ASSERT_OK(transport().Ack(got[0]));
  }
}

TEST_P(TransportContract, AckDeletesTheMessage) {
  std::string q = NewQueue();
  ASSERT_OK(transport().Publish(q, "once"));
  auto got = ReceiveN(transport(), q, 1, Millis(10'000), caps().visibility);
  ASSERT_EQ(got.size(), 1u);
  ASSERT_OK(transport().Ack(got[0]));
  // Even after the visibility timeout has passed, nothing comes back.
  auto again = transport().Receive(q, Opts(1, caps().visibility * 2));
  ASSERT_OK(again);
  EXPECT_TRUE(again->empty()) << "an acked message was delivered again";
  ASSIGN_OR_FAIL(QueueDepth d, transport().Depth(q));
  EXPECT_EQ(d.ready, 0);
  if (caps().depth_inflight) {
    EXPECT_EQ(d.inflight, 0);
  }
}

TEST_P(TransportContract, NackRedeliversWithGrownDeliveryCount) {
  std::string q = NewQueue();
  ASSERT_OK(transport().Publish(q, "retry me"));
  auto first = ReceiveN(transport(), q, 1);
  ASSERT_EQ(first.size(), 1u);
  EXPECT_FALSE(first[0].redelivered);
  ASSERT_OK(transport().Nack(first[0]));
  auto second = ReceiveN(transport(), q, 1);
  ASSERT_EQ(second.size(), 1u);
  EXPECT_EQ(second[0].body, "retry me");
  EXPECT_TRUE(second[0].redelivered);
  if (caps().delivery_count) {
    EXPECT_EQ(first[0].delivery_count, 1);
    EXPECT_EQ(second[0].delivery_count, 2);
  }
  ASSERT_OK(transport().Ack(second[0]));
}

TEST_P(TransportContract, NackWithDelayHidesTheMessageForTheDelay) {
  if (!caps().nack_delay) {
    GTEST_SKIP() << "capability nack_delay is off";
  }
  std::string q = NewQueue();
  ASSERT_OK(transport().Publish(q, "later"));
  auto first = ReceiveN(transport(), q, 1);
  ASSERT_EQ(first.size(), 1u);
  const Millis delay(1500);
  auto nacked_at = Clock::now();
  ASSERT_OK(transport().Nack(first[0], delay));
  // Whenever it comes back, it must not be before the delay has passed.
  auto again = ReceiveN(transport(), q, 1, Millis(15'000));
  ASSERT_EQ(again.size(), 1u) << "a delayed nack never came back";
  EXPECT_GE(Since(nacked_at).count(), delay.count() - 50) << "delivered before its delay";
  EXPECT_EQ(again[0].body, "later");
  ASSERT_OK(transport().Ack(again[0]));
}

TEST_P(TransportContract, VisibilityTimeoutRedeliversAnUnackedMessage) {
  if (!caps().visibility_timeout) {
    GTEST_SKIP() << "capability visibility_timeout is off";
  }
  std::string q = NewQueue();
  ASSERT_OK(transport().Publish(q, "forgotten"));
  auto received_at = Clock::now();
  auto first = ReceiveN(transport(), q, 1, Millis(10'000), caps().visibility);
  ASSERT_EQ(first.size(), 1u);
  // Not acked: it must come back after the timeout, to another consumer too.
  Transport& other = Connect();
  auto second = ReceiveN(other, q, 1, caps().visibility + Millis(15'000), Millis(60'000));
  ASSERT_EQ(second.size(), 1u) << "the message did not reappear after its visibility timeout";
  EXPECT_GE(Since(received_at).count(), caps().visibility.count() - 50)
      << "redelivered while still invisible";
  EXPECT_EQ(second[0].body, "forgotten");
  EXPECT_TRUE(second[0].redelivered);
  if (caps().delivery_count) {
    EXPECT_EQ(second[0].delivery_count, 2);
  }
  if (!first[0].id.empty()) {
    EXPECT_EQ(second[0].id, first[0].id);
  }
  ASSERT_OK(other.Ack(second[0]));
}

TEST_P(TransportContract, ExtendVisibilityKeepsTheMessageHidden) {
  if (!caps().visibility_timeout || !caps().extend_visibility) {
    GTEST_SKIP() << "capability visibility_timeout/extend_visibility is off";
  }
  std::string q = NewQueue();
  ASSERT_OK(transport().Publish(q, "long job"));
  auto first = ReceiveN(transport(), q, 1, Millis(10'000), caps().visibility);
  ASSERT_EQ(first.size(), 1u);
  const Millis extended = caps().visibility * 4;
  auto extended_at = Clock::now();
  ASSERT_OK(transport().ExtendVisibility(first[0], extended));
  // Well past the original timeout: still hidden. If it ever shows up, not before the extension.
  Transport& other = Connect();
  auto got = other.Receive(q, Opts(1, caps().visibility * 2));
  ASSERT_OK(got);
  if (!got->empty()) {
    EXPECT_GE(Since(extended_at).count(), extended.count() - 50)
        << "ExtendVisibility did not keep the message hidden";
  }
  // The holder can still ack it with its receipt.
  ASSERT_OK(transport().Ack(first[0]));
}

TEST_P(TransportContract, ReceiveReturnsABatchOfAtMostMaxMessages) {
  std::string q = NewQueue();
  for (int i = 0; i < 7; ++i) {
    ASSERT_OK(transport().Publish(q, "b" + std::to_string(i)));
  }
  auto first = transport().Receive(q, Opts(5, Millis(10'000)));
  ASSERT_OK(first);
  ASSERT_FALSE(first->empty());
  EXPECT_LE(first->size(), 5u);
  if (caps().exact_batch) {
    EXPECT_EQ(first->size(), 5u);
  }
  std::set<std::string> bodies;
  for (const Message& m : *first) {
    bodies.insert(m.body);
  }
  auto rest = ReceiveN(transport(), q, 7 - first->size());
  for (const Message& m : rest) {
    bodies.insert(m.body);
  }
  EXPECT_EQ(bodies.size(), 7u) << "every message exactly once across batches";
  for (const auto& m : *first) {
    ASSERT_OK(transport().Ack(m));
  }
  for (const auto& m : rest) {
    ASSERT_OK(transport().Ack(m));
  }
}

TEST_P(TransportContract, ReceiveOnEmptyQueueWaitsThenReturnsEmpty) {
  std::string q = NewQueue();
  auto start = Clock::now();
  auto got = transport().Receive(q, Opts(1, Millis(1000)));
  ASSERT_OK(got);
  EXPECT_TRUE(got->empty());
  EXPECT_GE(Since(start).count(), 950) << "returned before its wait was over";
}

TEST_P(TransportContract, PublishWakesABlockedReceiver) {
  std::string q = NewQueue();
  Transport& publisher = Connect();
  const Millis wait(30'000);
  Result<std::vector<Message>> got = std::vector<Message>{};
  Millis took{0};
  std::thread receiver([&] {
    auto start = Clock::now();
    got = transport().Receive(q, Opts(1, wait));
    took = Since(start);
  });
  std::this_thread::sleep_for(Millis(300));
  ASSERT_OK(publisher.Publish(q, "wake up"));
  receiver.join();
  ASSERT_OK(got);
  ASSERT_EQ(got->size(), 1u) << "the blocked receiver was not woken by the publish";
  EXPECT_LT(took, wait);
  EXPECT_EQ((*got)[0].body, "wake up");
  ASSERT_OK(transport().Ack((*got)[0]));
}

TEST_P(TransportContract, InterruptWakesABlockedReceive) {
  std::string q = NewQueue();
  TransportPtr own;
  { ASSIGN_OR_FAIL(own, fixture().Connect()); }
  const Millis wait(30'000);
  Result<std::vector<Message>> got = std::vector<Message>{};
  Millis took{0};
  std::thread receiver([&] {
    auto start = Clock::now();
    got = own->Receive(q, Opts(1, wait));
    took = Since(start);
  });
  std::this_thread::sleep_for(Millis(300));
  own->Interrupt();
  receiver.join();
  ASSERT_OK(got);
  EXPECT_TRUE(got->empty());
  EXPECT_LT(took, wait / 2) << "Interrupt() did not end the blocked Receive";
  // Later receives return at once, even with a message waiting; Publish still works.
  ASSERT_OK(own->Publish(q, "after interrupt"));
  auto start = Clock::now();
  auto later = own->Receive(q, Opts(1, wait));
  ASSERT_OK(later);
  EXPECT_TRUE(later->empty());
  EXPECT_LT(Since(start), wait / 2);
  auto other = ReceiveN(transport(), q, 1);
  ASSERT_EQ(other.size(), 1u) << "Publish after Interrupt() did not publish";
  ASSERT_OK(transport().Ack(other[0]));
}

// N messages, two consumers: each message is received exactly once (visibility far above the
// test's duration, every message acked).
void ConsumeConcurrently(Transport& a, Transport& b, const std::string& q, int n,
                         bool exclusive = true) {
  std::mutex mu;
  std::multiset<std::string> seen;
  std::atomic<int> acked{0};
  std::atomic<int> distinct{0};
  std::atomic<bool> failed{false};
  auto consume = [&](Transport& t) {
    auto start = Clock::now();
    while (distinct.load() < n && !failed.load() && Since(start) < Millis(60'000)) {
      auto got = t.Receive(q, Opts(3, Millis(200)));
      if (!got.has_value()) {
        ADD_FAILURE() << "Receive: " << got.error().ToString();
        failed = true;
        return;
      }
      for (const Message& m : *got) {
        {
          std::lock_guard lock(mu);
          if (seen.count(m.body) == 0) {
            ++distinct;
          }
          seen.insert(m.body);
        }
        auto s = t.Ack(m);
        if (!s.has_value()) {
          ADD_FAILURE() << "Ack: " << s.error().ToString();
          failed = true;
        }
        ++acked;
      }
    }
  };
  std::thread ta(consume, std::ref(a));
  std::thread tb(consume, std::ref(b));
  ta.join();
  tb.join();
  std::set<std::string> unique(seen.begin(), seen.end());
  EXPECT_EQ(unique.size(), static_cast<size_t>(n));
  if (exclusive) {
    EXPECT_EQ(seen.size(), static_cast<size_t>(n));
    EXPECT_EQ(unique.size(), seen.size()) << "some message was received by both consumers";
  }
  for (int i = 0; i < n; ++i) {
    EXPECT_GE(seen.count("c" + std::to_string(i)), 1u) << "message c" << i;
    if (exclusive) {
      EXPECT_EQ(seen.count("c" + std::to_string(i)), 1u) << "message c" << i;
    }
  }
}

TEST_P(TransportContract, TwoConnectionsNeverReceiveTheSameMessage) {
  std::string q = NewQueue();
  constexpr int kN = 200;
  for (int i = 0; i < kN; ++i) {
    ASSERT_OK(transport().Publish(q, "c" + std::to_string(i)));
  }
  ConsumeConcurrently(Connect(), Connect(), q, kN, caps().exclusive_receive);
}

TEST_P(TransportContract, TwoThreadsOnOneTransportNeverReceiveTheSameMessage) {
  std::string q = NewQueue();
  constexpr int kN = 200;
  Transport& shared = Connect();
  for (int i = 0; i < kN; ++i) {
    ASSERT_OK(transport().Publish(q, "c" + std::to_string(i)));
  }
  ConsumeConcurrently(shared, shared, q, kN, caps().exclusive_receive);
}

TEST_P(TransportContract, QueueAdministration) {
  std::string q = NewQueue({.create_dlq = true});
  std::string dlq = q + "-dlq";
  ASSIGN_OR_FAIL(bool exists, transport().QueueExists(q));
  EXPECT_TRUE(exists);
  ASSIGN_OR_FAIL(bool dlq_exists, transport().QueueExists(dlq));
  EXPECT_TRUE(dlq_exists) << "CreateQueue(create_dlq) did not create " << dlq;
  ASSIGN_OR_FAIL(bool missing_exists, transport().QueueExists(q + "-missing"));
  EXPECT_FALSE(missing_exists);
  // Creating again is fine.
  ASSERT_OK(transport().CreateQueue(q, {.create_dlq = true}));

  ASSIGN_OR_FAIL(auto names, transport().ListQueues());
  EXPECT_NE(std::find(names.begin(), names.end(), q), names.end()) << q << " not listed";
  EXPECT_NE(std::find(names.begin(), names.end(), dlq), names.end()) << dlq << " not listed";

  for (int i = 0; i < 3; ++i) {
    ASSERT_OK(transport().Publish(q, "d" + std::to_string(i)));
  }
  auto held = ReceiveN(transport(), q, 1);
  ASSERT_EQ(held.size(), 1u);
  ASSIGN_OR_FAIL(QueueDepth d, transport().Depth(q));
  EXPECT_EQ(d.ready, 2);
  if (caps().depth_inflight) {
    EXPECT_EQ(d.inflight, 1);
  }
  ASSIGN_OR_FAIL(QueueDepth dd, transport().Depth(dlq));
  EXPECT_EQ(dd.ready, 0);

  ASSERT_OK(transport().Purge(q));
  ASSIGN_OR_FAIL(QueueDepth after, transport().Depth(q));
  EXPECT_EQ(after.ready, 0);

  ASSERT_OK(transport().DeleteQueue(q));
  ASSIGN_OR_FAIL(bool gone, transport().QueueExists(q));
  EXPECT_FALSE(gone);
  auto missing = transport().Depth(q);
  ASSERT_FALSE(missing.has_value()) << "Depth of a deleted queue succeeded";
  EXPECT_EQ(missing.error().code, ErrorCode::kNotFound) << missing.error().ToString();
  ASSERT_OK(transport().DeleteQueue(q));  // deleting a missing queue is fine
  ASSIGN_OR_FAIL(auto names_after, transport().ListQueues());
  EXPECT_EQ(std::find(names_after.begin(), names_after.end(), q), names_after.end());
}

TEST_P(TransportContract, PublishHeadersRoundTrip) {
  std::string q = NewQueue();
  PublishOptions po;
  po.headers = {{"x-asya-dlq-reason", "max deliveries exceeded (5)"},
                {"x-asya-deliveries", "5"},
                {"traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},
                {"x-unicode", "\xc3\xa9t\xc3\xa9"}};
  ASSERT_OK(transport().Publish(q, "with headers", po));
  auto got = ReceiveN(transport(), q, 1);
  ASSERT_EQ(got.size(), 1u);
  for (const auto& [k, v] : po.headers) {
    auto it = got[0].headers.find(k);
    ASSERT_NE(it, got[0].headers.end()) << "header " << k << " lost";
    EXPECT_EQ(it->second, v) << "header " << k;
  }
  ASSERT_OK(transport().Ack(got[0]));
}

TEST_P(TransportContract, StaleReceiptCannotAckAMessageAnotherConsumerHolds) {
  if (!caps().visibility_timeout || !caps().stale_receipt_rejected) {
    GTEST_SKIP() << "capability visibility_timeout/stale_receipt_rejected is off";
  }
  std::string q = NewQueue();
  ASSERT_OK(transport().Publish(q, "contested"));
  auto first = ReceiveN(transport(), q, 1, Millis(10'000), caps().visibility);
  ASSERT_EQ(first.size(), 1u);
  Transport& other = Connect();
  auto second = ReceiveN(other, q, 1, caps().visibility + Millis(15'000), Millis(60'000));
  ASSERT_EQ(second.size(), 1u);
  auto stale = transport().Ack(first[0]);
  ASSERT_FALSE(stale.has_value()) << "a stale receipt deleted a message another consumer holds";
  EXPECT_TRUE(stale.error().code == ErrorCode::kFailedPrecondition ||
              stale.error().code == ErrorCode::kNotFound)
      << stale.error().ToString();
  EXPECT_FALSE(transport().Nack(first[0]).has_value()) << "a stale receipt nacked the message";
  ASSIGN_OR_FAIL(QueueDepth d, transport().Depth(q));
  EXPECT_EQ(d.ready + d.inflight, 1);
  ASSERT_OK(other.Ack(second[0]));
}

TEST_P(TransportContract, PublishAndAckPublishesEveryOutputThenAcks) {
  std::string in = NewQueue();
  std::string out = NewQueue();
  ASSERT_OK(transport().Publish(in, "input"));
  auto got = ReceiveN(transport(), in, 1, Millis(10'000), caps().visibility);
  ASSERT_EQ(got.size(), 1u);
  const Outgoing outgoing[] = {
      {.queue = out, .body = "first"},
      {.queue = out, .body = "second", .options = {.headers = {{"k", "v"}}}}};
  auto failure = transport().PublishAndAck(got[0], outgoing);
  ASSERT_FALSE(failure.has_value()) << failure->error.ToString();
  auto outs = ReceiveN(transport(), out, 2);
  ASSERT_EQ(outs.size(), 2u);
  std::vector<std::string> bodies{outs[0].body, outs[1].body};
  std::sort(bodies.begin(), bodies.end());
  EXPECT_EQ(bodies, (std::vector<std::string>{"first", "second"}));
  for (const auto& m : outs) {
    if (m.body == "second") {
      EXPECT_EQ(m.headers.count("k"), 1u) << "headers of an outgoing message were lost";
    }
    ASSERT_OK(transport().Ack(m));
  }
  // The input is gone, even after its visibility timeout.
  auto again = transport().Receive(in, Opts(1, caps().visibility * 2));
  ASSERT_OK(again);
  EXPECT_TRUE(again->empty()) << "PublishAndAck did not ack the input";
}

TEST_P(TransportContract, PublishAndAckStopsAtAFailedPublishWithoutAcking) {
  std::string in = NewQueue();
  std::string out = NewQueue();
  ASSERT_OK(transport().Publish(in, "input"));
  auto got = ReceiveN(transport(), in, 1, Millis(10'000), caps().visibility);
  ASSERT_EQ(got.size(), 1u);
  const Outgoing outgoing[] = {{.queue = out, .body = "ok"}, {.queue = "", .body = "no queue"}};
  auto failure = transport().PublishAndAck(got[0], outgoing);
  ASSERT_TRUE(failure.has_value()) << "a publish to an empty queue name succeeded";
  EXPECT_FALSE(failure->in_ack);
  EXPECT_EQ(failure->index, 1u);
  EXPECT_EQ(failure->error.code, ErrorCode::kInvalidArgument) << failure->error.ToString();
  EXPECT_EQ(failure->published, caps().atomic_settle ? 0u : 1u);
  ASSIGN_OR_FAIL(QueueDepth d, transport().Depth(out));
  EXPECT_EQ(d.ready, static_cast<int64_t>(failure->published));
  // Not acked: the holder can still nack it and it comes back.
  ASSERT_OK(transport().Nack(got[0]));
  auto back = ReceiveN(transport(), in, 1);
  ASSERT_EQ(back.size(), 1u);
  EXPECT_EQ(back[0].body, "input");
  ASSERT_OK(transport().Ack(back[0]));
}

// With an atomic settle, a consumer whose message was handed to another consumer meanwhile
// publishes nothing: the work is done once, by the message's current holder.
TEST_P(TransportContract, PublishAndAckWithAStaleReceiptPublishesNothing) {
  if (!caps().atomic_settle || !caps().visibility_timeout) {
    GTEST_SKIP() << "capability atomic_settle/visibility_timeout is off";
  }
  std::string in = NewQueue();
  std::string out = NewQueue();
  ASSERT_OK(transport().Publish(in, "contested"));
  auto first = ReceiveN(transport(), in, 1, Millis(10'000), caps().visibility);
  ASSERT_EQ(first.size(), 1u);
  Transport& other = Connect();
  auto second = ReceiveN(other, in, 1, caps().visibility + Millis(15'000), Millis(60'000));
  ASSERT_EQ(second.size(), 1u);
  const Outgoing outgoing[] = {{.queue = out, .body = "late result"}};
  auto failure = transport().PublishAndAck(first[0], outgoing);
  ASSERT_TRUE(failure.has_value()) << "a stale receipt settled a message another consumer holds";
  EXPECT_TRUE(failure->in_ack);
  EXPECT_EQ(failure->published, 0u);
  EXPECT_EQ(failure->error.code, ErrorCode::kFailedPrecondition) << failure->error.ToString();
  ASSIGN_OR_FAIL(QueueDepth d, transport().Depth(out));
  EXPECT_EQ(d.ready, 0) << "the stale holder's result was published";
  EXPECT_FALSE(other.PublishAndAck(second[0], outgoing).has_value());
  ASSIGN_OR_FAIL(d, transport().Depth(out));
  EXPECT_EQ(d.ready, 1);
}

// PublishAckAndReceive settles like PublishAndAck; what it receives (transports that cannot fold
// a receive into the settle receive nothing) are ordinary held messages of the queue: each
// exactly once, and ackable.
TEST_P(TransportContract, PublishAckAndReceiveSettlesAndHoldsWhatItReceived) {
  std::string in = NewQueue();
  std::string out = NewQueue();
  for (const char* body : {"a", "b", "c"}) {
    ASSERT_OK(transport().Publish(in, body));
  }
  auto got = ReceiveN(transport(), in, 1, Millis(10'000), Millis(60'000));
  ASSERT_EQ(got.size(), 1u);
  const Outgoing outgoing[] = {{.queue = out, .body = "result"}};
  SettleReceive also{.queue = in, .max_messages = 2, .visibility = Millis(60'000)};
  auto failure = transport().PublishAckAndReceive(got[0], outgoing, also);
  ASSERT_FALSE(failure.has_value()) << failure->error.ToString();
  if (caps().atomic_settle) {
    EXPECT_EQ(also.received.size(), 2u) << "the receive was not folded into the settle";
  }
  std::vector<std::string> bodies{got[0].body};
  for (const auto& m : also.received) {
    bodies.push_back(m.body);
    ASSERT_OK(transport().Ack(m));
  }
  auto rest = ReceiveN(transport(), in, 3 - bodies.size());
  for (const auto& m : rest) {
    bodies.push_back(m.body);
    ASSERT_OK(transport().Ack(m));
  }
  std::sort(bodies.begin(), bodies.end());
  EXPECT_EQ(bodies, (std::vector<std::string>{"a", "b", "c"}));
  auto outs = ReceiveN(transport(), out, 1);
  ASSERT_EQ(outs.size(), 1u);
  EXPECT_EQ(outs[0].body, "result");
  ASSERT_OK(transport().Ack(outs[0]));
  auto again = transport().Receive(in, Opts(1, Millis(200)));
  ASSERT_OK(again);
  EXPECT_TRUE(again->empty()) << "a message came back: the settle or a folded receive was lost";
}

// A settle that fails receives nothing: no message is held by a caller that does not know it.
TEST_P(TransportContract, PublishAckAndReceiveWithAFailedSettleReceivesNothing) {
  std::string in = NewQueue();
  ASSERT_OK(transport().Publish(in, "input"));
  ASSERT_OK(transport().Publish(in, "next"));
  auto got = ReceiveN(transport(), in, 1, Millis(10'000), Millis(60'000));
  ASSERT_EQ(got.size(), 1u);
  const Outgoing outgoing[] = {{.queue = "", .body = "no queue"}};
  SettleReceive also{.queue = in, .max_messages = 1, .visibility = Millis(60'000)};
  auto failure = transport().PublishAckAndReceive(got[0], outgoing, also);
  ASSERT_TRUE(failure.has_value());
  EXPECT_TRUE(also.received.empty());
  ASSERT_OK(transport().Ack(got[0]));
  auto next = ReceiveN(transport(), in, 1);
  ASSERT_EQ(next.size(), 1u) << "the message a failed settle might have received is not there";
  EXPECT_EQ(next[0].body, got[0].body == "input" ? "next" : "input");
  ASSERT_OK(transport().Ack(next[0]));
}

TEST_P(TransportContract, RequeueReturnsTheMessageAtOnce) {
  std::string q = NewQueue();
  ASSERT_OK(transport().Publish(q, "given back"));
  auto first = ReceiveN(transport(), q, 1, Millis(10'000), Millis(60'000));
  ASSERT_EQ(first.size(), 1u);
  ASSERT_OK(transport().Requeue(first[0]));
  // Visible again long before the 60 s visibility timeout would have returned it.
  auto again = ReceiveN(transport(), q, 1, Millis(10'000), Millis(60'000));
  ASSERT_EQ(again.size(), 1u);
  EXPECT_EQ(again[0].body, "given back");
  if (caps().uncounted_requeue) {
    EXPECT_EQ(again[0].delivery_count, 1) << "the requeued delivery was counted";
  } else if (caps().delivery_count) {
    EXPECT_EQ(again[0].delivery_count, 2);
  }
  ASSERT_OK(transport().Ack(again[0]));
}

TEST_P(TransportContract, ReceiveFromAMissingQueueIsNotFound) {
  if (!caps().receive_missing_queue_fails) {
    GTEST_SKIP() << "capability receive_missing_queue_fails is off";
  }
  std::string q = "asya-ct" + std::to_string(::getpid()) + "-never-created";
  auto got = transport().Receive(q, Opts(1, Millis(100)));
  ASSERT_FALSE(got.has_value());
  EXPECT_EQ(got.error().code, ErrorCode::kNotFound) << got.error().ToString();
}

}  // namespace asya::transport::contract
