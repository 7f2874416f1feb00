// RabbitMQ transport, caller side of the data path: start-up, Receive, Publish, Ack, Nack,
// Interrupt and the factory. Every call hands its AMQP work to the I/O thread (io_loop.cc) and
// waits; see rabbitmq_transport.h for the map of files and README.md for the design.
#include "transport/rabbitmq/rabbitmq_transport.h"

#include <algorithm>
#include <random>

#include "asya/base/log.h"

namespace asya::transport {
namespace rabbitmq {
namespace {

std::string RandomHex() {
  std::random_device rd;
  std::mt19937_64 gen(rd());
  char buf[17];
  std::snprintf(buf, sizeof(buf), "%016llx", static_cast<unsigned long long>(gen()));
  return buf;
}

}  // namespace

RabbitMqTransport::RabbitMqTransport(RabbitMqSettings settings, RabbitMqEndpoint endpoint)
    : settings_(std::move(settings)), endpoint_(std::move(endpoint)), instance_(RandomHex()) {
  where_ = endpoint_.host + ":" + std::to_string(endpoint_.port);
  if (!settings_.management_url.empty()) {
    management_.emplace(settings_.management_url, endpoint_.vhost);
  }
}

RabbitMqTransport::~RabbitMqTransport() {
  stop_ = true;
  commands_.Wake();
  if (io_thread_.joinable()) {
    io_thread_.join();
  }
}

Status RabbitMqTransport::Start() {
  ASYA_RETURN_IF_ERROR(commands_.Open());
  io_thread_ = std::thread([this] { IoMain(); });
  if (settings_.connect_timeout.count() <= 0) {
    return Ok();
  }
  std::unique_lock lock(mu_);
  state_cv_.wait_for(lock, settings_.connect_timeout, [this] {
    return connected_ || (last_error_ && last_error_->code != ErrorCode::kUnavailable);
  });
  if (connected_) {
    return Ok();
  }
  if (last_error_ && last_error_->code != ErrorCode::kUnavailable) {
    return Unexpected(*last_error_);
  }
  return MakeError(ErrorCode::kUnavailable,
                   "cannot connect to RabbitMQ at " + where_ + " within " +
                       std::to_string(settings_.connect_timeout.count()) + " ms (" +
                       std::to_string(connect_failures_) + " attempts): " +
                       (last_error_ ? last_error_->message : std::string("no answer")));
}

tl::unexpected<Error> RabbitMqTransport::GaveUp(std::string_view what) const {
  std::string why;
  {
    std::lock_guard state_lock(mu_);
    why = connected_
              ? std::string("no answer from the broker")
              : "not connected" + (last_error_ ? ": " + last_error_->message : std::string());
  }
  return MakeError(ErrorCode::kUnavailable,
                   std::string(what) + ": gave up after " +
                       std::to_string(settings_.operation_timeout.count()) + " ms (RabbitMQ at " +
                       where_ + ", " + why + ")");
}

void RabbitMqTransport::Interrupt() {
  {
    std::lock_guard lock(mu_);
    interrupted_ = true;
    for (auto& [name, q] : queues_) {
      q.cv.notify_all();
    }
    state_cv_.notify_all();
  }
  // Stop consuming and give back what was prefetched but not handed out, so other consumers
  // get it now; messages already handed out can still be acked or nacked.
  commands_.Submit(Command{[this] { StopConsuming(); }, [](const Error&) {}});
}

Result<std::vector<Message>> RabbitMqTransport::Receive(std::string_view queue_view,
                                                        const ReceiveOptions& options) {
  ASYA_RETURN_IF_ERROR(ValidateQueueName(queue_view));
  std::string queue(queue_view);
  auto deadline = SteadyClock::now() + options.wait;
  size_t max = std::max<size_t>(1, options.max_messages);
  {
    std::lock_guard lock(mu_);
    queues_[queue].wanted = true;
  }
  for (;;) {
    {
      // While disconnected, wait for the connection (the I/O thread restores consumers).
      std::unique_lock lock(mu_);
      state_cv_.wait_until(lock, deadline, [this] { return connected_ || interrupted_; });
      if (interrupted_ || !connected_) {
        return std::vector<Message>{};
      }
    }
    Status st = EnsureConsumer(queue);
    if (!st) {
      switch (st.error().code) {
        case ErrorCode::kCancelled:
          return std::vector<Message>{};
        case ErrorCode::kUnavailable:  // connection flapped: wait for it within `wait`
          if (SteadyClock::now() >= deadline) {
            return std::vector<Message>{};
          }
          continue;
        default:
          return Unexpected(st.error());
      }
    }
    std::unique_lock lock(mu_);
    QueueState& q = queues_[queue];
    q.cv.wait_until(lock, deadline,
                    [&] { return !q.ready.empty() || interrupted_ || !q.consuming; });
    if (interrupted_) {
      return std::vector<Message>{};
    }
    if (!q.ready.empty()) {
      std::vector<Message> out;
      while (!q.ready.empty() && out.size() < max) {
        out.push_back(std::move(q.ready.front()));
        q.ready.pop_front();
      }
      return out;
    }
    if (SteadyClock::now() >= deadline) {
      lock.unlock();
      // An idle consumer checks that its queue still exists: RabbitMQ 3.10 does not cancel
      // consumers of a deleted quorum queue. The next Receive then starts a new consumer. Not
      // after a receive that did not wait (it only takes what is held; the sidecar makes one
      // after each settle): a round trip to the broker each time would stall its caller.
      if (options.wait > Millis(0)) {
        (void)Call<void>("check consumer of '" + queue + "'",
                         [this, queue] { return CheckConsumer(queue); });
      }
      return std::vector<Message>{};
    }
    // The consumer was cancelled or its channel closed: start it again.
  }
}

Status RabbitMqTransport::Publish(std::string_view queue_view, std::string_view body,
                                  const PublishOptions& options) {
  ASYA_RETURN_IF_ERROR(ValidateQueueName(queue_view));
  auto slot = std::make_shared<Slot<void>>();
  std::string queue(queue_view);
  commands_.Submit(Command{[this, slot, queue, body = std::string(body), headers = options.headers,
                            delay = options.delay]() mutable {
                             if (slot->Begin()) {
                               PublishAsync(queue, std::move(body), std::move(headers), delay,
                                            [slot](Status s) { slot->Set(std::move(s)); });
                             }
                           },
                           [slot](const Error& e) { slot->Set(Unexpected(e)); }});
  return Wait(slot, "publish to '" + queue + "'");
}

Status RabbitMqTransport::Ack(const Message& message) {
  Receipt receipt;
  ASYA_ASSIGN_OR_RETURN(amqp_channel_t channel, Settle(message, &receipt));
  // basic.ack has no reply: hand it to the I/O thread and return. If the channel dies before it
  // is written, the broker redelivers the message (at-least-once). Acks queued together are
  // written together, as one `multiple` ack where they cover every unsettled earlier delivery.
  commands_.SubmitAck(PendingAck{channel, receipt.incarnation, receipt.tag});
  return Ok();
}

void RabbitMqTransport::PublishAndAckAsync(const Message& message,
                                           std::span<const Outgoing> outgoing, SettleDone done) {
  for (size_t i = 0; i < outgoing.size(); ++i) {
    if (Status st = ValidateQueueName(outgoing[i].queue); !st) {
      done(SettleFailure{.in_ack = false, .index = i, .published = i, .error = st.error()});
      return;
    }
  }
  auto op = std::make_shared<AsyncSettle>();
  op->queue = message.queue;
  op->receipt = message.receipt;
  op->outgoing.assign(outgoing.begin(), outgoing.end());
  op->done = std::move(done);
  // Nobody waits on a slot here: a command that could not run within operation_timeout (no
  // connection) fails like a Publish() that gave up, and the caller falls back (nack/error-end).
  const auto deadline = SteadyClock::now() + settings_.operation_timeout;
  std::string what =
      "publish to '" + std::string(outgoing.empty() ? std::string_view() : outgoing[0].queue) + "'";
  commands_.Submit(
      Command{[this, op, deadline, what = std::move(what)] {
                if (SteadyClock::now() > deadline) {
                  op->done(SettleFailure{
                      .in_ack = false, .index = 0, .published = 0, .error = GaveUp(what).value()});
                  return;
                }
                ContinueSettle(op);
              },
              [op](const Error& e) {
                op->done(SettleFailure{.in_ack = false, .index = 0, .published = 0, .error = e});
              }});
}

Status RabbitMqTransport::Nack(const Message& message, Millis delay) {
  Receipt receipt;
  ASYA_ASSIGN_OR_RETURN(amqp_channel_t channel, Settle(message, &receipt));
  // A copy carrying the delivery count goes back to the queue (after `delay`, through a holding
  // queue), then the original is acked. basic.nack(requeue) is only the fallback when the copy
  // cannot be published: it would let the consumer (or a racing basic.cancel) pick the message
  // up again and count deliveries nobody saw, and classic queues cannot count at all.
  Headers headers = CopyHeaders(message.headers, std::max<int64_t>(1, message.delivery_count));
  auto slot = std::make_shared<Slot<void>>();
  commands_.Submit(Command{
      [this, slot, channel, receipt, queue = message.queue, body = message.body,
       headers = std::move(headers), delay]() mutable {
        if (!ConsumerAlive(channel, receipt.incarnation)) {
          slot->Set(MakeError(ErrorCode::kFailedPrecondition,
                              "the consumer channel closed before the nack; the broker "
                              "redelivers the message"));
          return;
        }
        auto done = [this, slot, channel, receipt](Status s) {
          if (ConsumerAlive(channel, receipt.incarnation)) {
            if (s) {
              AckNow(channel, receipt.tag);
            } else {
              NackNow(channel, receipt.tag);
            }
          }
          if (!s) {
            s = MakeError(s.error().code, "nack could not requeue a counted copy (" +
                                              s.error().message +
                                              "); the message was requeued by the broker instead");
          }
          slot->Set(std::move(s));
        };
        // Even "no delay" waits kRequeueDelay in a holding queue: the copy must not reach this
        // consumer while it may be shutting down (a delivery in transit during basic.cancel is
        // returned by the broker and counted), and a poison message cannot spin hot.
        PublishAsync(queue, std::move(body), std::move(headers), std::max(delay, kRequeueDelay),
                     std::move(done));
      },
      [slot](const Error& e) { slot->Set(Unexpected(e)); }});
  return Wait(slot, "nack of a message from '" + message.queue + "'");
}

}  // namespace rabbitmq

Result<TransportPtr> MakeRabbitMqTransport(const RabbitMqSettings& settings) {
  ASYA_ASSIGN_OR_RETURN(RabbitMqEndpoint endpoint, ParseRabbitMqUrl(settings.url));
  if (settings.exchange.empty()) {
    return MakeError(ErrorCode::kInvalidArgument,
                     "ASYA_RABBITMQ_EXCHANGE is empty (the default exchange cannot be used)");
  }
  if (settings.prefetch < 0 || settings.prefetch > 65535) {
    return MakeError(ErrorCode::kInvalidArgument, "RabbitMQ prefetch must be in [0, 65535]");
  }
  auto transport = std::make_unique<rabbitmq::RabbitMqTransport>(settings, std::move(endpoint));
  ASYA_RETURN_IF_ERROR(transport->Start());
  return TransportPtr(std::move(transport));
}

}  // namespace asya::transport
