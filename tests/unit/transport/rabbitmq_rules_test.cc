// The pure rules of the RabbitMQ transport (src/transport/rabbitmq/rules.h), without a broker.
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "transport/rabbitmq/rules.h"

namespace asya::transport::rabbitmq {
namespace {

TEST(RabbitMqRules, QueueNamesAreValidated) {
  EXPECT_TRUE(ValidateQueueName("asya-echo").has_value());
  EXPECT_TRUE(ValidateQueueName(std::string(kMaxQueueName, 'q')).has_value());
  struct Case {
    std::string name;
    std::string message;
  };
  for (const Case& c : std::vector<Case>{
           {"", "queue name is empty"},
           {std::string(kMaxQueueName + 1, 'q'), "longer than 200 bytes"},
           {"asya-a\nb", "control character"},
           {std::string("asya-a\0b", 8), "control character"},
           {"asya-\x7f", "control character"},
       }) {
    auto st = ValidateQueueName(c.name);
    ASSERT_FALSE(st.has_value()) << "accepted a bad queue name of " << c.name.size() << " bytes";
    EXPECT_EQ(st.error().code, ErrorCode::kInvalidArgument);
    EXPECT_NE(st.error().message.find(c.message), std::string::npos) << st.error().message;
  }
}

TEST(RabbitMqRules, RoutingKeyIsTheActorName) {
  EXPECT_EQ(RoutingKey("asya-echo"), "echo");
  EXPECT_EQ(RoutingKey("asya-echo-dlq"), "echo-dlq");
  EXPECT_EQ(RoutingKey("asya-"), "asya-");  // nothing after the prefix: the full name
  EXPECT_EQ(RoutingKey("orders"), "orders");
  EXPECT_EQ(RoutingKey("xasya-echo"), "xasya-echo");
}

TEST(RabbitMqRules, DelaysRoundUpToTenStepsPerDecade) {
  struct Case {
    int64_t in, out;
  };
  for (const Case& c : std::vector<Case>{{-5, 1},
                                         {0, 1},
                                         {1, 1},
                                         {7, 7},
                                         {10, 10},
                                         {11, 12},
                                         {13, 15},
                                         {81, 100},
                                         {100, 100},
                                         {101, 120},
                                         {500, 500},
                                         {501, 600},
                                         {999, 1000},
                                         {1001, 1200},
                                         {61'000, 80'000},
                                         {3'600'000, 4'000'000}}) {
    EXPECT_EQ(BucketDelayMs(c.in), c.out) << "delay " << c.in << " ms";
  }
  // Never shorter, and less than a third longer, than asked (above 10 ms; 151 ms -> 200 ms is the
  // worst case of a decade).
  for (int64_t ms = 11; ms < 200'000; ms += 37) {
    int64_t b = BucketDelayMs(ms);
    ASSERT_GE(b, ms);
    ASSERT_LT(b * 3, ms * 4) << ms;
  }
}

TEST(RabbitMqRules, HoldingQueueDeadLettersBackIntoItsQueueAtLeastOnce) {
  EXPECT_EQ(HoldingQueueName("asya-echo", 1500), "asya-echo-hold-1500");
  EXPECT_EQ(HoldingQueueArguments("asya-echo", 1500),
            (std::vector<QueueArgument>{{"x-queue-type", "quorum", 0, false},
                                        {"x-message-ttl", "", 1500, true},
                                        {"x-dead-letter-exchange", "", 0, false},
                                        {"x-dead-letter-routing-key", "asya-echo", 0, false},
                                        {"x-dead-letter-strategy", "at-least-once", 0, false},
                                        {"x-overflow", "reject-publish", 0, false}}));
}

TEST(RabbitMqRules, ClassicHoldingQueueKeepsItsOldNameAndArguments) {
  // The name differs from the quorum one: redeclaring an existing queue with other arguments
  // fails (406), so brokers that still have the old classic queues keep them untouched.
  EXPECT_EQ(ClassicHoldingQueueName("asya-echo", 1500), "asya-echo-delay-1500");
  EXPECT_NE(ClassicHoldingQueueName("asya-echo", 1500), HoldingQueueName("asya-echo", 1500));
  EXPECT_EQ(ClassicHoldingQueueArguments("asya-echo", 1500),
            (std::vector<QueueArgument>{{"x-message-ttl", "", 1500, true},
                                        {"x-dead-letter-exchange", "", 0, false},
                                        {"x-dead-letter-routing-key", "asya-echo", 0, false}}));
}

TEST(RabbitMqRules, QueueArgumentsTakeXKeysAndDefaultToQuorum) {
  EXPECT_EQ(QueueArguments({}, true),
            (std::vector<QueueArgument>{{"x-queue-type", "quorum", 0, false}}));
  EXPECT_TRUE(QueueArguments({}, false).empty());
  EXPECT_EQ(QueueArguments({{"visibility", "30"},      // another transport's: skipped
                            {"x-max-length", "1000"},  // digits: integer
                            {"x-overflow", "reject-publish"},
                            {"x-big", "1234567890123456789"},  // 19 digits: kept as text
                            {"x-empty", ""},
                            {"x-queue-type", "classic"}},  // named: no quorum default
                           true),
            (std::vector<QueueArgument>{{"x-big", "1234567890123456789", 0, false},
                                        {"x-empty", "", 0, false},
                                        {"x-max-length", "", 1000, true},
                                        {"x-overflow", "reject-publish", 0, false},
                                        {"x-queue-type", "classic", 0, false}}));
}

TEST(RabbitMqRules, CountsParseOnlyPlainDecimals) {
  Headers h{{"a", "12"},
            {"b", ""},
            {"c", "-1"},
            {"d", "1e3"},
            {"e", "123456789012345678"},
            {"f", "1234567890123456789"}};
  EXPECT_EQ(ParseCount(h, "a"), 12);
  EXPECT_EQ(ParseCount(h, "b"), std::nullopt);
  EXPECT_EQ(ParseCount(h, "c"), std::nullopt);
  EXPECT_EQ(ParseCount(h, "d"), std::nullopt);
  EXPECT_EQ(ParseCount(h, "e"), 123456789012345678);
  EXPECT_EQ(ParseCount(h, "f"), std::nullopt);  // more than 18 digits
  EXPECT_EQ(ParseCount(h, "missing"), std::nullopt);
}

// One row per way a delivery arrives: (headers, broker's redelivered flag) -> count.
TEST(RabbitMqRules, DeliveryCountTable) {
  struct Case {
    const char* what;
    Headers headers;
    bool broker_redelivered;
    int64_t count;  // ignored when copy
    bool redelivered;
    bool copy;
    int64_t earlier;
  };
  const std::vector<Case> cases = {
      {"first delivery", {}, false, 1, false, false, 0},
      {"quorum redelivery", {{"x-delivery-count", "2"}}, true, 3, true, false, 0},
      {"quorum, counted copy",
       {{"x-delivery-count", "1"}, {"x-asya-deliveries", "4"}},
       true,
       6,
       true,
       false,
       4},
      {"counted copy, first delivery of the copy",
       {{"x-asya-deliveries", "2"}},
       false,
       3,
       true,
       false,
       2},
      {"classic redelivery: needs a counted copy", {}, true, 0, true, true, 0},
      {"classic redelivery of a copy", {{"x-asya-deliveries", "3"}}, true, 0, true, true, 3},
      {"malformed own header counts as 0", {{"x-asya-deliveries", "x"}}, false, 1, false, false, 0},
      {"malformed quorum header: classic rules",
       {{"x-delivery-count", "?"}},
       false,
       1,
       false,
       false,
       0},
  };
  for (const Case& c : cases) {
    DeliveryCount d = CountDelivery(c.headers, c.broker_redelivered);
    EXPECT_EQ(d.needs_counted_copy, c.copy) << c.what;
    if (!c.copy) {
      EXPECT_EQ(d.count, c.count) << c.what;
    }
    EXPECT_EQ(d.redelivered, c.redelivered) << c.what;
    EXPECT_EQ(d.earlier, c.earlier) << c.what;
  }
}

TEST(RabbitMqRules, CopiesDropBrokerHeadersAndCarryTheirCount) {
  Headers in{{"traceparent", "00-abc-def-01"}, {"x-asya-attempt", "2"},
             {"x-asya-deliveries", "7"},       {"x-delivery-count", "3"},
             {"x-first-death-queue", "q"},     {"x-last-death-reason", "expired"}};
  EXPECT_EQ(CopyHeaders(in, 4), (Headers{{"traceparent", "00-abc-def-01"},
                                         {"x-asya-attempt", "2"},
                                         {"x-asya-deliveries", "4"}}));
  EXPECT_EQ(CopyHeaders(in, 0),
            (Headers{{"traceparent", "00-abc-def-01"}, {"x-asya-attempt", "2"}}));
  EXPECT_TRUE(IsBrokerHeader("x-delivery-count"));
  EXPECT_FALSE(IsBrokerHeader("x-asya-deliveries"));
  EXPECT_FALSE(IsBrokerHeader("x-death"));  // a table: never decoded into headers anyway
}

TEST(RabbitMqRules, ReceiptsRoundTripAndMalformedOnesAreClearErrors) {
  EXPECT_EQ(FormatReceipt(3, 17), "3.17");
  auto r = ParseReceipt(FormatReceipt(18446744073709551615ULL, 1));
  ASSERT_TRUE(r.has_value()) << r.error().ToString();
  EXPECT_EQ(r->incarnation, 18446744073709551615ULL);
  EXPECT_EQ(r->tag, 1u);
  for (const char* bad : {"", "3", "3.", ".17", "a.b", "3.17x", "1..", "1.2.3", "-1.2",
                          "18446744073709551616.1", "1.99999999999999999999999"}) {
    auto p = ParseReceipt(bad);
    ASSERT_FALSE(p.has_value()) << "accepted receipt '" << bad << "'";
    EXPECT_EQ(p.error().code, ErrorCode::kInvalidArgument);
    EXPECT_NE(p.error().message.find("malformed RabbitMQ receipt '" + std::string(bad) + "'"),
              std::string::npos)
        << p.error().message;
  }
}

TEST(RabbitMqRules, MessageIdsCarryTheConfirmNumber) {
  std::string prefix = MessageIdPrefix("00ff", 2);
  EXPECT_EQ(prefix, "00ff-2-");
  EXPECT_EQ(PublishSeqFromMessageId(prefix + "41", prefix), 41u);
  EXPECT_EQ(PublishSeqFromMessageId("00ff-1-41", prefix), std::nullopt);  // older connection
  EXPECT_EQ(PublishSeqFromMessageId(prefix, prefix), std::nullopt);
  EXPECT_EQ(PublishSeqFromMessageId(prefix + "4x", prefix), std::nullopt);
  EXPECT_EQ(PublishSeqFromMessageId(prefix + "99999999999999999999999", prefix), std::nullopt);
  EXPECT_EQ(PublishSeqFromMessageId("user-supplied-id", prefix), std::nullopt);
}

TEST(RabbitMqRules, UnroutableErrorNamesExchangeAndKey) {
  Error e = UnroutableError("asya", "nobody", 312, "NO_ROUTE");
  EXPECT_EQ(e.code, ErrorCode::kNotFound);
  EXPECT_EQ(e.message,
            "message was not routed to any queue: exchange 'asya' routing key 'nobody' (312 "
            "NO_ROUTE); does the queue exist and is it bound?");
  EXPECT_NE(UnroutableError("", "q", 312, "NO_ROUTE").message.find("exchange '(default)'"),
            std::string::npos);
}

// Acks of one channel (sorted by tag) against its consumer's unsettled deliveries: how many go
// out as one basic.ack(multiple). A delivery still held must stop the run.
TEST(RabbitMqRules, MultipleAckRunTable) {
  auto acks = [](std::vector<uint64_t> tags, uint64_t incarnation = 7) {
    std::vector<PendingAck> out;
    for (uint64_t t : tags) {
      out.push_back(PendingAck{3, incarnation, t});
    }
    return out;
  };
  struct Case {
    const char* what;
    std::vector<PendingAck> acks;
    std::set<uint64_t> unsettled;
    size_t run;
  };
  const std::vector<Case> cases = {
      {"all oldest, in order", acks({1, 2, 3}), {1, 2, 3, 4}, 3},
      {"every unsettled one", acks({5, 6}), {5, 6}, 2},
      {"a single ack is not a multiple", acks({1}), {1, 2}, 0},
      {"held delivery 2 stops the run", acks({1, 3, 4}), {1, 2, 3, 4}, 0},
      {"held delivery 3 stops after two", acks({1, 2, 4}), {1, 2, 3, 4}, 2},
      {"oldest unsettled is not acked", acks({2, 3}), {1, 2, 3}, 0},
      {"older incarnation on a reused channel", acks({1, 2}, 6), {1, 2}, 0},
      {"nothing unsettled", acks({1, 2}), {}, 0},
      {"no acks", {}, {1, 2}, 0},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(MultipleAckRun(c.acks, c.unsettled, 7), c.run) << c.what;
  }
}

}  // namespace
}  // namespace asya::transport::rabbitmq
