// SQS transport edge cases against a real moto_server: size/encoding errors before sending,
// missing queues, unreachable endpoints, queue-URL host rewriting, group-committed batches,
// RedrivePolicy, publish delays, Interrupt during missing-queue retries.
#include <atomic>
#include <set>
#include <thread>

#include <gtest/gtest.h>

#include "asya/aws/http.h"
#include "asya/transport/sqs.h"
#include "unit/sqs/moto_server.h"

namespace asya::transport {
namespace {

using Clock = std::chrono::steady_clock;

class SqsTransportTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    moto_ = new asya::test::MotoServer();
    ASSERT_TRUE(moto_->Start()) << moto_->error();
  }
  static void TearDownTestSuite() {
    delete moto_;
    moto_ = nullptr;
  }

  static SqsSettings Settings(const std::string& endpoint = moto_->endpoint()) {
    SqsSettings s;
    s.endpoint = endpoint;
    s.access_key_id = "test";
    s.secret_access_key = "test";
    s.queue_retry_max_attempts = 1;
    return s;
  }
  static TransportPtr Make(const SqsSettings& s = Settings()) {
    auto t = MakeSqsTransport(s);
    EXPECT_TRUE(t) << t.error().ToString();
    return t ? std::move(*t) : nullptr;
  }
  std::string NewQueue(Transport& t, QueueOptions options = {.create_dlq = false}) {
    std::string name = "asya-ut" + std::to_string(::getpid()) + "x" + std::to_string(++counter_);
    auto s = t.CreateQueue(name, options);
    EXPECT_TRUE(s) << s.error().ToString();
    return name;
  }
  static QueueDepth DepthOf(Transport& t, const std::string& q) {
    auto d = t.Depth(q);
    EXPECT_TRUE(d) << d.error().ToString();
    return d ? *d : QueueDepth{-1, -1};
  }

  static asya::test::MotoServer* moto_;
  static inline int counter_ = 0;
};
asya::test::MotoServer* SqsTransportTest::moto_ = nullptr;

ReceiveOptions Opts(size_t max, Millis wait, Millis visibility = Millis(60'000)) {
  ReceiveOptions o;
  o.max_messages = max;
  o.wait = wait;
  o.visibility = visibility;
  return o;
}

TEST_F(SqsTransportTest, OversizedMessageIsRejectedBeforeSending) {
  auto t = Make();
  std::string q = NewQueue(*t);
  auto s = t->Publish(q, std::string(262'145, 'x'));
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(s.error().message, "message of 262145 bytes exceeds the SQS limit of 262144 bytes");
  // moto would have accepted it (its limit is 1 MiB): nothing went out.
  EXPECT_EQ(DepthOf(*t, q).ready, 0);
  // Exactly at the limit is fine.
  ASSERT_TRUE(t->Publish(q, std::string(262'144, 'x')));
  EXPECT_EQ(DepthOf(*t, q).ready, 1);
}

TEST_F(SqsTransportTest, BodiesSqsCannotCarryAreRejectedWithTheReason) {
  auto t = Make();
  std::string q = NewQueue(*t);
  struct Case {
    std::string body;
    std::string message;
  };
  for (const Case& c : std::vector<Case>{
           {"", "SQS cannot carry an empty message body (at least 1 character)"},
           {"{\"a\":\"\x01\"}",
            "message body contains U+0001 at byte 6, which SQS does not accept"},
           {"\xFF\xFE",
            "message body is not valid UTF-8 at byte 0 (SQS carries Unicode text only)"},
       }) {
    auto s = t->Publish(q, c.body);
    ASSERT_FALSE(s);
    EXPECT_EQ(s.error().code, ErrorCode::kInvalidArgument);
    EXPECT_EQ(s.error().message, c.message);
  }
  auto header = t->Publish(q, "ok", {.headers = {{"x-asya-empty", ""}}});
  ASSERT_FALSE(header);
  EXPECT_EQ(header.error().message,
            "header 'x-asya-empty' is empty; SQS message attributes need a value");
  EXPECT_EQ(DepthOf(*t, q).ready, 0);
}

TEST_F(SqsTransportTest, MissingQueueIsNotFoundEverywhere) {
  auto t = Make();
  const std::string q = "asya-does-not-exist-" + std::to_string(::getpid());
  auto pub = t->Publish(q, "x");
  ASSERT_FALSE(pub);
  EXPECT_EQ(pub.error().code, ErrorCode::kNotFound);
  EXPECT_EQ(pub.error().message,
            "SQS GetQueueUrl on '" + q + "' failed: queue '" + q + "' does not exist");
  auto depth = t->Depth(q);
  ASSERT_FALSE(depth);
  EXPECT_EQ(depth.error().code, ErrorCode::kNotFound);
  auto got = t->Receive(q, Opts(1, Millis(100)));
  ASSERT_FALSE(got);
  EXPECT_EQ(got.error().code, ErrorCode::kNotFound);
  EXPECT_TRUE(t->DeleteQueue(q));  // deleting a missing queue is fine
  auto bad_name = t->Publish("asya.bad name", "x");
  ASSERT_FALSE(bad_name);
  EXPECT_EQ(bad_name.error().code, ErrorCode::kInvalidArgument);
}

TEST_F(SqsTransportTest, QueueDeletedUnderACachedUrlIsReportedAndForgotten) {
  auto t = Make();
  auto admin = Make();
  std::string q = NewQueue(*t);
  ASSERT_TRUE(t->Publish(q, "one"));  // URL cached
  ASSERT_TRUE(admin->DeleteQueue(q));
  auto pub = t->Publish(q, "two");
  ASSERT_FALSE(pub);
  EXPECT_EQ(pub.error().code, ErrorCode::kNotFound);
  auto got = t->Receive(q, Opts(1, Millis(100)));
  ASSERT_FALSE(got);
  EXPECT_EQ(got.error().code, ErrorCode::kNotFound);
  // Recreated: the transport finds it again.
  ASSERT_TRUE(admin->CreateQueue(q, {.create_dlq = false}));
  ASSERT_TRUE(t->Publish(q, "three"));
  auto again = t->Receive(q, Opts(1, Millis(5000)));
  ASSERT_TRUE(again) << again.error().ToString();
  ASSERT_EQ(again->size(), 1u);
  EXPECT_EQ((*again)[0].body, "three");
}

TEST_F(SqsTransportTest, UnreachableEndpointIsAClearUnavailableError) {
  int port = asya::test::MotoServer::FreePort();
  auto t = Make(Settings("http://127.0.0.1:" + std::to_string(port)));
  auto s = t->Publish("asya-x", "body");
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().code, ErrorCode::kUnavailable);
  EXPECT_NE(s.error().message.find("SQS GetQueueUrl failed: cannot reach http://127.0.0.1:" +
                                   std::to_string(port)),
            std::string::npos)
      << s.error().message;
  auto got = t->Receive("asya-x", Opts(1, Millis(100)));
  ASSERT_FALSE(got);
  EXPECT_EQ(got.error().code, ErrorCode::kUnavailable);
}

TEST_F(SqsTransportTest, BadSettingsFailAtCreation) {
  auto bad_url = MakeSqsTransport(Settings("localhost:4566"));
  ASSERT_FALSE(bad_url);
  EXPECT_EQ(bad_url.error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(bad_url.error().message,
            "SQS endpoint: URL 'localhost:4566' has no scheme (expected http:// or https://)");
  SqsSettings no_creds;
  no_creds.endpoint = moto_->endpoint();
  auto none = MakeSqsTransport(no_creds);
  ASSERT_FALSE(none);
  EXPECT_EQ(none.error().code, ErrorCode::kFailedPrecondition);
  EXPECT_EQ(none.error().message.rfind("SQS transport: cannot get AWS credentials: no AWS "
                                       "credentials configured",
                                       0),
            0u)
      << none.error().message;
}

TEST_F(SqsTransportTest, QueueUrlFromAnotherHostIsRewrittenToTheEndpoint) {
  // Created through "localhost": moto answers with http://localhost:<port>/... URLs.
  auto via_localhost = Make(Settings("http://localhost:" + std::to_string(moto_->port())));
  std::string q = NewQueue(*via_localhost);
  auto t = Make();  // 127.0.0.1
  ASSERT_TRUE(t->Publish(q, "hello"));
  auto got = t->Receive(q, Opts(1, Millis(5000)));
  ASSERT_TRUE(got) << got.error().ToString();
  ASSERT_EQ(got->size(), 1u);
  ASSERT_TRUE(t->Ack((*got)[0]));
  EXPECT_EQ(DepthOf(*t, q).ready + DepthOf(*t, q).inflight, 0);
}

TEST_F(SqsTransportTest, ConcurrentPublishesAndAcksShareBatches) {
  auto t = Make();
  std::string q = NewQueue(*t);
  constexpr int kThreads = 8;
  constexpr int kPerThread = 10;
  std::atomic<int> failures{0};
  std::vector<std::thread> publishers;
  for (int i = 0; i < kThreads; ++i) {
    publishers.emplace_back([&, i] {
      for (int k = 0; k < kPerThread; ++k) {
        if (!t->Publish(q, "m" + std::to_string(i * kPerThread + k))) {
          ++failures;
        }
      }
    });
  }
  for (auto& p : publishers) {
    p.join();
  }
  ASSERT_EQ(failures.load(), 0);
  EXPECT_EQ(DepthOf(*t, q).ready, kThreads * kPerThread);

  std::vector<Message> all;
  auto start = Clock::now();
  while (all.size() < kThreads * kPerThread && Clock::now() - start < std::chrono::seconds(60)) {
    auto got = t->Receive(q, Opts(10, Millis(1000)));
    ASSERT_TRUE(got) << got.error().ToString();
    all.insert(all.end(), got->begin(), got->end());
  }
  std::set<std::string> bodies;
  for (const auto& m : all) {
    bodies.insert(m.body);
  }
  EXPECT_EQ(bodies.size(), static_cast<size_t>(kThreads * kPerThread));
  std::vector<std::thread> ackers;
  for (int i = 0; i < kThreads; ++i) {
    ackers.emplace_back([&, i] {
      for (size_t k = i; k < all.size(); k += kThreads) {
        if (!t->Ack(all[k])) {
          ++failures;
        }
      }
    });
  }
  for (auto& a : ackers) {
    a.join();
  }
  EXPECT_EQ(failures.load(), 0);
  QueueDepth d = DepthOf(*t, q);
  EXPECT_EQ(d.ready + d.inflight, 0);
}

TEST_F(SqsTransportTest, AckWithAGarbageReceiptFails) {
  auto t = Make();
  std::string q = NewQueue(*t);
  Message fake;
  fake.queue = q;
  fake.receipt = "not-a-receipt";
  auto s = t->Ack(fake);
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().code, ErrorCode::kInvalidArgument);
  EXPECT_NE(s.error().message.find("ReceiptHandleIsInvalid"), std::string::npos)
      << s.error().message;
}

TEST_F(SqsTransportTest, RedrivePolicyMovesAMessageToTheDlq) {
  SqsSettings s = Settings();
  s.redrive_max_receive_count = 2;
  auto t = Make(s);
  std::string q = NewQueue(*t, {.create_dlq = true});
  ASSERT_TRUE(t->Publish(q, "poison"));
  for (int i = 1; i <= 2; ++i) {
    auto got = t->Receive(q, Opts(1, Millis(5000)));
    ASSERT_TRUE(got) << got.error().ToString();
    ASSERT_EQ(got->size(), 1u);
    EXPECT_EQ((*got)[0].delivery_count, i);
    ASSERT_TRUE(t->Nack((*got)[0]));
  }
  auto third = t->Receive(q, Opts(1, Millis(1000)));
  ASSERT_TRUE(third) << third.error().ToString();
  EXPECT_TRUE(third->empty());
  auto dead = t->Receive(q + "-dlq", Opts(1, Millis(5000)));
  ASSERT_TRUE(dead) << dead.error().ToString();
  ASSERT_EQ(dead->size(), 1u);
  EXPECT_EQ((*dead)[0].body, "poison");
}

TEST_F(SqsTransportTest, PublishDelayHidesTheMessage) {
  auto t = Make();
  std::string q = NewQueue(*t);
  ASSERT_TRUE(t->Publish(q, "later", {.delay = Millis(2000)}));
  QueueDepth d = DepthOf(*t, q);
  EXPECT_EQ(d.ready, 0);
  EXPECT_EQ(d.inflight, 1);  // delayed messages count as in flight
  auto got = t->Receive(q, Opts(1, Millis(10'000)));
  ASSERT_TRUE(got) << got.error().ToString();
  ASSERT_EQ(got->size(), 1u);
  EXPECT_EQ((*got)[0].body, "later");
}

TEST_F(SqsTransportTest, InterruptEndsTheMissingQueueRetries) {
  SqsSettings s = Settings();
  s.queue_retry_max_attempts = 10;
  s.queue_retry_backoff = Millis(1000);  // 1+2+4+... = 511 s if not interrupted
  auto t = Make(s);
  std::thread interrupter([&] {
    std::this_thread::sleep_for(Millis(300));
    t->Interrupt();
  });
  auto start = Clock::now();
  auto got = t->Receive("asya-never-created", Opts(1, Millis(1000)));
  interrupter.join();
  EXPECT_LT(Clock::now() - start, std::chrono::seconds(30));
  ASSERT_FALSE(got);
  EXPECT_EQ(got.error().code, ErrorCode::kNotFound);
}

TEST_F(SqsTransportTest, CreateQueueAgainWithOtherAttributesUpdatesThem) {
  auto t = Make();
  std::string q = NewQueue(*t, {.create_dlq = false, .visibility = Millis(30'000)});
  ASSERT_TRUE(t->CreateQueue(q, {.create_dlq = false, .visibility = Millis(60'000)}));
  auto bad = t->CreateQueue(q, {.create_dlq = false, .attributes = {{"maxReceiveCount", "x"}}});
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().message, "maxReceiveCount 'x' is not an integer");
}

TEST_F(SqsTransportTest, ListQueuesUsesThePrefix) {
  auto t = Make();
  std::string q = NewQueue(*t);
  SqsSettings s = Settings();
  s.list_prefix = "asya-ut" + std::to_string(::getpid());
  auto mine = Make(s);
  auto names = mine->ListQueues();
  ASSERT_TRUE(names) << names.error().ToString();
  EXPECT_NE(std::find(names->begin(), names->end(), q), names->end());
  for (const auto& n : *names) {
    EXPECT_EQ(n.rfind(s.list_prefix, 0), 0u) << n;
  }
}

}  // namespace
}  // namespace asya::transport
