// The pure rules of the RabbitMQ transport: queue names and routing keys, holding queues for
// delays, delivery counting, receipts, message ids and confirm bookkeeping's inputs, queue
// arguments and batched-ack planning. No connection, no clock, no threads: each function is a
// table-tested decision (tests/unit/transport/rabbitmq_rules_test.cc). The I/O thread
// (rabbitmq_transport.cc and friends) applies them; README.md explains why each rule exists.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "asya/base/result.h"
#include "asya/transport/transport.h"

namespace asya::transport::rabbitmq {

using Headers = std::map<std::string, std::string>;

// Our header: deliveries of this message in earlier incarnations (copies we republished).
inline constexpr char kDeliveriesHeader[] = "x-asya-deliveries";
// Set by quorum queues on every redelivery (absent on the first delivery).
inline constexpr char kQuorumCountHeader[] = "x-delivery-count";
// Leaves room for "-dlq" / "-hold-<ms>" / "-delay-<ms>" within AMQP's 255-byte short string.
inline constexpr size_t kMaxQueueName = 200;

// ---- names ----

// kInvalidArgument for an empty name, one longer than kMaxQueueName, or one with a control
// character; Ok otherwise.
Status ValidateQueueName(std::string_view queue);
// Routing key of a queue on the topic exchange: the actor name ("asya-X" -> "X"); names without
// the "asya-" prefix (or just "asya-") route with the full name.
std::string RoutingKey(std::string_view queue);

// ---- delays ----

// Rounds a delay up to one of 10 steps per decade (10,12,15,20,25,30,40,50,60,80 x 10^k ms), so
// jittered backoffs share a bounded set of holding queues; a delay grows by less than a third.
// Delays up to 10 ms are kept (at least 1 ms).
int64_t BucketDelayMs(int64_t ms);
// "<queue>-hold-<ms>": where a message waits `ms` before the broker moves it into `queue`. A
// quorum queue that dead-letters at-least-once (RabbitMQ >= 3.10): the message leaves it only
// once `queue` confirmed it, so a broker crash while it moves duplicates it at worst.
std::string HoldingQueueName(std::string_view queue, int64_t bucket_ms);
// "<queue>-delay-<ms>": the classic holding queue of earlier versions and of brokers that refuse
// the quorum one (or settings.quorum_queues = false). Classic queues dead-letter at-most-once: a
// broker crash while an expired message moves, or a target not yet recovered when the broker
// starts again, loses it.
std::string ClassicHoldingQueueName(std::string_view queue, int64_t bucket_ms);

// One queue argument (x-arguments of queue.declare), integer or string.
struct QueueArgument {
  std::string key;
  std::string text;
  int64_t number = 0;
  bool is_int = false;
  bool operator==(const QueueArgument&) const = default;
};
// Arguments of a holding queue: a quorum queue with x-message-ttl = ms, dead-lettered through the
// default exchange ("") with routing key `queue`, so an expired message lands in `queue` itself;
// x-dead-letter-strategy = at-least-once, which RabbitMQ honours only with
// x-overflow = reject-publish (no length limit is set, so nothing is ever rejected).
std::vector<QueueArgument> HoldingQueueArguments(std::string_view queue, int64_t bucket_ms);
// Arguments of a classic holding queue: the same TTL and dead-letter target, at-most-once.
std::vector<QueueArgument> ClassicHoldingQueueArguments(std::string_view queue, int64_t bucket_ms);
// Arguments of a queue we declare: QueueOptions.attributes keys starting with "x-" (all digits,
// up to 18 of them -> integer, else string; other keys belong to other transports and are
// skipped), plus x-queue-type=quorum when `quorum` and the attributes name no x-queue-type.
std::vector<QueueArgument> QueueArguments(const std::map<std::string, std::string>& attributes,
                                          bool quorum);

// ---- delivery counts ----

// A non-negative decimal count of at most 18 digits under `key`, else nullopt.
std::optional<int64_t> ParseCount(const Headers& headers, std::string_view key);
// Headers the broker adds; never copied into a message we republish.
bool IsBrokerHeader(std::string_view key);

struct DeliveryCount {
  // Message.delivery_count: x-asya-deliveries + x-delivery-count + 1 (1 = first delivery).
  // Meaningless when needs_counted_copy.
  int64_t count = 1;
  // Message.redelivered: the broker's flag, or a counted copy (x-asya-deliveries > 0).
  bool redelivered = false;
  // A classic queue redelivered the message and cannot count: the transport republishes a copy
  // carrying `earlier + 1` instead of handing this delivery out.
  bool needs_counted_copy = false;
  int64_t earlier = 0;  // x-asya-deliveries (0 when absent or malformed)
};
DeliveryCount CountDelivery(const Headers& headers, bool broker_redelivered);

// Headers of a copy we republish: broker headers dropped, x-asya-deliveries set to `deliveries`
// (removed when deliveries <= 0).
Headers CopyHeaders(const Headers& headers, int64_t deliveries);

// ---- receipts and message ids ----

// A receipt names the consumer incarnation and the delivery tag: "<incarnation>.<tag>".
struct Receipt {
  uint64_t incarnation = 0;
  uint64_t tag = 0;
};
std::string FormatReceipt(uint64_t incarnation, uint64_t tag);
// kInvalidArgument naming the receipt unless it is "<digits>.<digits>" with both in uint64.
Result<Receipt> ParseReceipt(std::string_view receipt);

// Message ids of our publishes: "<instance>-<connection generation>-<confirm seq>", so a
// basic.return (which carries the message but no confirm number) finds its pending publish.
std::string MessageIdPrefix(std::string_view instance, uint64_t generation);
// The confirm sequence number in `id` when it starts with `prefix` followed by digits only.
std::optional<uint64_t> PublishSeqFromMessageId(std::string_view id, std::string_view prefix);
// The error of a publish the broker returned as unroutable (mandatory flag).
Error UnroutableError(std::string_view exchange, std::string_view routing_key, int reply_code,
                      std::string_view reply_text);

// ---- batched acks ----

// An Ack() waiting to be written by the I/O thread.
struct PendingAck {
  uint16_t channel = 0;
  uint64_t incarnation = 0;
  uint64_t tag = 0;
};
// `acks`: the acks of one channel, sorted by tag; `unsettled`/`incarnation`: that channel's live
// consumer. Returns how many leading acks one basic.ack(multiple, acks[n-1].tag) settles: the
// longest run that matches the consumer's oldest unsettled deliveries one for one (so a delivery
// still held stops it and is never acked by accident), or 0 when that run is shorter than 2.
size_t MultipleAckRun(std::span<const PendingAck> acks, const std::set<uint64_t>& unsettled,
                      uint64_t incarnation);

}  // namespace asya::transport::rabbitmq
