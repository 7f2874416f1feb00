// The Transport interface: durable queues with at-least-once delivery.
//
// Contract (every implementation passes tests/contract/transport_contract_test.cc):
// - Queue names are the names the broker sees ("asya-<actor>", "asya-<actor>-dlq").
// - Publish() returns only after the broker has durably accepted the message (RabbitMQ publisher
//   confirm + mandatory routing, SQS 200 response, SQLite commit). An error means "not published".
// - A received message is invisible to other consumers until Ack() (deleted), Nack() (visible
//   again after `delay`) or its visibility timeout expires (visible again; delivery_count grows).
//   RabbitMQ has no visibility timeout: an unacked message comes back when the consumer's
//   connection closes.
// - delivery_count is 1 on the first delivery and grows with every redelivery of a message that
//   was never acked (SQS ApproximateReceiveCount, RabbitMQ quorum x-delivery-count + 1, SQLite
//   own counter). 0 means the transport cannot tell (RabbitMQ classic queues; see `redelivered`).
// - Every method is thread-safe; Receive() may block in one thread while others Publish()/Ack().
// - Interrupt() makes blocked and future Receive() calls return promptly (empty) until
//   the transport is destroyed; Publish/Ack/Nack keep working so in-flight work can finish.
//   Quiesce() then waits until no receive is still running at the broker (SQS long polls).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "asya/base/result.h"

namespace asya::transport {

using Millis = std::chrono::milliseconds;

struct Message {
  std::string queue;    // queue it was received from
  std::string id;       // broker message id (may be empty)
  std::string body;     // exact bytes as published
  std::string receipt;  // opaque handle for Ack/Nack/ExtendVisibility
  int64_t delivery_count = 1;
  bool redelivered = false;
  std::map<std::string, std::string> headers;  // transport-level headers / message attributes
};

struct ReceiveOptions {
  size_t max_messages = 1;             // receive up to this many (SQS caps at 10)
  Millis wait{Millis(20'000)};         // long-poll: return empty after this long without messages
  Millis visibility{Millis(600'000)};  // invisibility window of a received message
};

struct PublishOptions {
  Millis delay{0};  // message becomes visible after this delay (retries with backoff)
  std::map<std::string, std::string> headers;  // transport headers (e.g. x-asya-dlq-reason)
};

// One message to publish as part of PublishAndAck().
struct Outgoing {
  std::string_view queue;
  std::string_view body;
  PublishOptions options;
};

// Why PublishAndAck() stopped.
struct SettleFailure {
  bool in_ack = false;   // false: outgoing[index] was not published and nothing was acked
  size_t index = 0;      // the outgoing message that failed (publish failures)
  size_t published = 0;  // outgoing messages durably published before the failure
  Error error;
};

struct QueueOptions {
  bool create_dlq = true;        // also create "<name>-dlq"
  Millis visibility{Millis(0)};  // default visibility timeout (0 = transport default)
  std::map<std::string, std::string> attributes;  // transport-specific extras
};

// A receive folded into a settle (Transport::PublishAckAndReceive): up to `max_messages` ready
// messages of `queue`, without waiting.
struct SettleReceive {
  std::string_view queue;
  size_t max_messages = 1;
  Millis visibility{Millis(600'000)};
  std::vector<Message> received;  // out: empty when nothing was ready (or not supported)
};

struct QueueDepth {
  int64_t ready = 0;     // visible, waiting to be received
  int64_t inflight = 0;  // received and not yet acked (or delayed, for SQLite)
  // False when the broker does not vouch for the counts. RabbitMQ with the management API: the
  // queue reports no "running" state yet — a quorum queue that replays its log after a broker
  // restart answers a passive declare with 0 messages for many seconds (measured: 12 s for
  // 100,000 messages; docs/reliability.md), and a new queue has no statistics for up to 5 s.
  // A 0 that is not exact must not be read as "empty".
  bool exact = true;
};

class Transport {
 public:
  virtual ~Transport() = default;

  // "sqlite", "rabbitmq" or "sqs" (metrics label `transport`).
  [[nodiscard]] virtual std::string_view Name() const = 0;

  // ---- Data plane ----
  // Waits up to options.wait for at least one message. Empty vector on timeout or interrupt.
  virtual Result<std::vector<Message>> Receive(std::string_view queue,
                                               const ReceiveOptions& options) = 0;
  virtual Status Publish(std::string_view queue, std::string_view body,
                         const PublishOptions& options = {}) = 0;
  virtual Status Ack(const Message& message) = 0;
  // Publishes `outgoing` in order, then acks `message` (the ack only after every publish is
  // confirmed); nullopt on success. The default calls Publish() and Ack(); the SQLite transport
  // does all of it in one transaction, so either everything happens or nothing does (a stale
  // receipt then publishes nothing: the message's new holder does the work once).
  virtual std::optional<SettleFailure> PublishAndAck(const Message& message,
                                                     std::span<const Outgoing> outgoing);
  // PublishAndAck(), and where the transport can do it in the same step (SQLite: the same
  // transaction, so a hop costs one commit instead of two) a receive without waiting into
  // `also.received`. Nothing is received when the settle fails. The default settles only and
  // receives nothing: the caller then receives as usual.
  virtual std::optional<SettleFailure> PublishAckAndReceive(const Message& message,
                                                            std::span<const Outgoing> outgoing,
                                                            SettleReceive& also) {
    (void)also;
    return PublishAndAck(message, outgoing);
  }
  // What PublishAndAckAsync() ends with: nullopt on success, else the failure.
  using SettleDone = std::function<void(std::optional<SettleFailure>)>;
  // PublishAndAck() without waiting: `done` runs exactly once with what PublishAndAck() would
  // have returned. It may run on the calling thread before this returns or later on a thread of
  // the transport, where it must not block (and must not call the transport and wait). The
  // caller keeps `message` (its receipt) and the queues and bodies `outgoing` points to valid
  // until `done` has run. Same guarantees as PublishAndAck(): the ack only after every publish is
  // confirmed; on a publish failure nothing is acked and outgoing[index..] were not published.
  // The default calls PublishAndAck() and then `done`.
  virtual void PublishAndAckAsync(const Message& message, std::span<const Outgoing> outgoing,
                                  SettleDone done) {
    done(PublishAndAck(message, outgoing));
  }
  // Whether PublishAndAckAsync() returns before the broker confirmed (RabbitMQ: yes; the
  // default: no, it is PublishAndAck()).
  [[nodiscard]] virtual bool SettlesAsync() const { return false; }
  // Returns the message to its queue, visible after `delay`; the delivery count is kept.
  virtual Status Nack(const Message& message, Millis delay = Millis(0)) = 0;
  // Gives `message` back unworked (graceful shutdown): visible again at once, and where the
  // transport can (SQLite) this delivery is not counted, so shutdowns never push a message
  // towards its dead-letter queue. RabbitMQ quorum queues and SQS count it (the default: Nack).
  virtual Status Requeue(const Message& message) { return Nack(message, Millis(0)); }
  // Keeps an in-flight message invisible for `visibility` from now (heartbeat). No-op for
  // transports without visibility timeouts.
  virtual Status ExtendVisibility(const Message& message, Millis visibility) = 0;
  virtual void Interrupt() = 0;
  // After Interrupt(): waits up to `max_wait` until every receive that Interrupt() cut short is
  // over at the broker too, and whatever such a receive still took is visible again. A process
  // calls it before it exits (the sidecar does, after its drain), so a stopping consumer never
  // leaves a message hidden behind it. Nothing to wait for on SQLite and RabbitMQ (their
  // receives end with the caller); SQS long polls keep running at the server (sqs/README.md).
  virtual void Quiesce(Millis max_wait) { (void)max_wait; }
  // Whether ReadBody() works: the transport keeps the body of a message its consumer holds and
  // settles it (Ack, Nack, Requeue, ExtendVisibility, PublishAndAck) by its receipt alone, so
  // the consumer may free Message.body meanwhile (the sidecar does for large messages while the
  // runtime works on them). SQLite: yes; RabbitMQ and SQS: no (the default).
  [[nodiscard]] virtual bool KeepsHeldBodies() const { return false; }
  // The body of `message`, which this consumer holds (its receipt is current), read again from
  // the queue. Where KeepsHeldBodies() is false: kUnimplemented.
  virtual Result<std::string> ReadBody(const Message& message) {
    (void)message;
    return MakeError(ErrorCode::kUnimplemented,
                     std::string(Name()) + " transport cannot read a received body again");
  }

  // ---- Queue administration ----
  virtual Status CreateQueue(std::string_view queue, const QueueOptions& options = {}) = 0;
  virtual Status DeleteQueue(std::string_view queue) = 0;  // deleting a missing queue is OK
  virtual Result<bool> QueueExists(std::string_view queue) = 0;
  virtual Result<QueueDepth> Depth(std::string_view queue) = 0;  // kNotFound if missing
  virtual Result<std::vector<std::string>> ListQueues() = 0;
  virtual Status Purge(std::string_view queue) = 0;
};

// Defined here, not in a .cc: every transport library needs it and none depends on another.
inline std::optional<SettleFailure> Transport::PublishAndAck(const Message& message,
                                                             std::span<const Outgoing> outgoing) {
  for (size_t i = 0; i < outgoing.size(); ++i) {
    const Outgoing& o = outgoing[i];
    if (auto st = Publish(o.queue, o.body, o.options); !st) {
      return SettleFailure{.in_ack = false, .index = i, .published = i, .error = st.error()};
    }
  }
  if (auto st = Ack(message); !st) {
    return SettleFailure{
        .in_ack = true, .index = 0, .published = outgoing.size(), .error = st.error()};
  }
  return std::nullopt;
}

using TransportPtr = std::unique_ptr<Transport>;

// Queue name of an actor ("asya-<actor>") and of its dead-letter queue.
inline std::string QueueName(std::string_view actor) {
  return "asya-" + std::string(actor);
}
inline std::string DlqName(std::string_view actor) {
  return "asya-" + std::string(actor) + "-dlq";
}

}  // namespace asya::transport
