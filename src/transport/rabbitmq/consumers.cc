// RabbitMQ transport, consumers and receipts. A consumer is one channel per consumed queue
// (basic.qos prefetch, manual ack); each start is a new *incarnation*, and receipts name it
// ("<incarnation>.<tag>", rules.h) so a receipt of a closed channel or connection is recognised
// as stale. Deliveries go to per-queue buffers that Receive() takes from; the delivery count is
// computed by CountDelivery (rules.h), and a classic-queue redelivery is replaced by a counted
// copy. Acks are written in batches (one basic.ack(multiple) where MultipleAckRun allows);
// messages prefetched but never received are given back uncounted on shutdown/interrupt.
#include <algorithm>
#include <span>

#include "asya/base/log.h"
#include "transport/rabbitmq/rabbitmq_transport.h"

namespace asya::transport::rabbitmq {

Result<amqp_channel_t> RabbitMqTransport::Settle(const Message& message, Receipt* receipt) {
  ASYA_ASSIGN_OR_RETURN(*receipt, ParseReceipt(message.receipt));
  std::lock_guard lock(mu_);
  auto it = live_.find(receipt->incarnation);
  if (it == live_.end()) {
    return MakeError(ErrorCode::kFailedPrecondition,
                     "stale receipt " + message.receipt + " for queue '" + message.queue +
                         "': the channel or connection it came from was closed; the broker "
                         "redelivers the message");
  }
  if (it->second.outstanding.erase(receipt->tag) == 0) {
    return MakeError(ErrorCode::kFailedPrecondition,
                     "receipt " + message.receipt + " was already acked or nacked");
  }
  return it->second.channel;
}

Status RabbitMqTransport::EnsureConsumer(const std::string& queue) {
  Millis backoff = settings_.queue_retry_backoff;
  int attempts = std::max(1, settings_.queue_retry_max_attempts);
  for (int attempt = 1;; ++attempt) {
    {
      std::lock_guard lock(mu_);
      if (interrupted_) {
        return MakeError(ErrorCode::kCancelled, "interrupted");
      }
      if (queues_[queue].consuming) {
        return Ok();
      }
    }
    Status st =
        Call<void>("consume from '" + queue + "'", [this, queue] { return StartConsumer(queue); });
    if (st || st.error().code != ErrorCode::kNotFound) {
      return st;
    }
    if (attempt >= attempts) {
      return MakeError(ErrorCode::kNotFound,
                       "queue '" + queue + "' does not exist on RabbitMQ at " + where_ +
                           " (checked " + std::to_string(attempts) + " times)");
    }
    log::Warn("rabbitmq: queue missing, retrying",
              {{"queue", queue}, {"attempt", attempt}, {"retry_in_ms", backoff.count()}});
    std::unique_lock lock(mu_);
    if (state_cv_.wait_for(lock, backoff, [this] { return interrupted_; })) {
      return MakeError(ErrorCode::kCancelled, "interrupted");
    }
    backoff *= 2;
  }
}

Status RabbitMqTransport::OnDeliver(amqp_channel_t channel, uint64_t tag, bool redelivered) {
  amqp_message_t msg;
  amqp_rpc_reply_t reply = amqp_read_message(conn_.state(), channel, &msg, 0);
  if (reply.reply_type != AMQP_RESPONSE_NORMAL) {
    return conn_.CheckReply(reply, channel, "reading a delivery");
  }
  Message m;
  m.body = BytesToString(msg.body);
  ReceivedProperties props = ReadProperties(msg.properties);
  m.id = std::move(props.message_id);
  m.headers = std::move(props.headers);
  amqp_destroy_message(&msg);
  auto it = consumers_.find(channel);
  if (it == consumers_.end()) {
    return Ok();  // a delivery on a channel we are closing: the broker requeues it
  }
  it->second.unsettled.insert(tag);
  uint64_t incarnation = it->second.incarnation;
  {
    std::lock_guard lock(mu_);
    auto live = live_.find(incarnation);
    if (live == live_.end()) {
      return Ok();
    }
    m.queue = live->second.queue;
  }
  m.receipt = FormatReceipt(incarnation, tag);
  DeliveryCount count = CountDelivery(m.headers, redelivered);
  m.redelivered = count.redelivered;
  if (!count.needs_counted_copy) {
    m.delivery_count = count.count;
  } else {
    // A classic queue redelivered this message (a consumer died, or it was nacked) and cannot
    // count. Republish a copy that carries the count, then ack this delivery, so a message that
    // keeps crashing its consumer is counted and eventually dead-lettered instead of looping.
    Headers headers = CopyHeaders(m.headers, count.earlier + 1);
    std::string queue = m.queue;
    std::string body = m.body;
    // The copy waits briefly in a holding queue so that it shows up only after this delivery
    // was acked (after the copy's confirm); otherwise a consumer dying right after receiving the
    // copy would leave both the copy and the unacked original behind.
    PublishAsync(queue, std::move(body), std::move(headers), kRequeueDelay,
                 [this, channel, incarnation, tag, m = std::move(m)](Status s) mutable {
                   if (!ConsumerAlive(channel, incarnation)) {
                     return;
                   }
                   if (s) {
                     AckNow(channel, tag);
                     return;
                   }
                   log::Warn("rabbitmq: could not republish a redelivered message with its count",
                             {{"queue", m.queue}, {"error", s.error().message}});
                   m.delivery_count = 0;  // unknown; `redelivered` is set
                   HandOut(incarnation, tag, std::move(m));
                 });
    return Ok();
  }
  HandOut(incarnation, tag, std::move(m));
  return Ok();
}

void RabbitMqTransport::HandOut(uint64_t incarnation, uint64_t tag, Message message) {
  std::unique_lock lock(mu_);
  auto live = live_.find(incarnation);
  if (live == live_.end()) {
    return;
  }
  if (interrupted_) {  // nobody will receive it here: give it back to the queue
    amqp_channel_t channel = live->second.channel;
    lock.unlock();
    GiveBack(channel, incarnation, tag, message);
    return;
  }
  live->second.outstanding.insert(tag);
  QueueState& q = queues_[live->second.queue];
  q.ready.push_back(std::move(message));
  if (!draining_) {
    q.cv.notify_all();
  } else if (std::find(to_notify_.begin(), to_notify_.end(), &q) == to_notify_.end()) {
    to_notify_.push_back(&q);  // one wake-up per drained batch, not per delivery
  }
}

void RabbitMqTransport::NotifyHandedOut() {
  draining_ = false;
  if (to_notify_.empty()) {
    return;
  }
  std::lock_guard lock(mu_);
  for (QueueState* q : to_notify_) {
    q->cv.notify_all();
  }
  to_notify_.clear();
}

void RabbitMqTransport::DropConsumer(amqp_channel_t channel, std::string_view reason) {
  auto it = consumers_.find(channel);
  if (it == consumers_.end()) {
    return;
  }
  uint64_t incarnation = it->second.incarnation;
  consumers_.erase(it);
  std::lock_guard lock(mu_);
  auto live = live_.find(incarnation);
  if (live == live_.end()) {
    return;
  }
  std::string queue = live->second.queue;
  live_.erase(live);
  QueueState& q = queues_[queue];
  q.consuming = false;
  std::erase_if(q.ready, [&](const Message& m) {
    return m.receipt.rfind(std::to_string(incarnation) + ".", 0) == 0;
  });
  q.cv.notify_all();
  log::Warn("rabbitmq: consumer stopped", {{"queue", queue}, {"reason", std::string(reason)}});
}

void RabbitMqTransport::AckNow(amqp_channel_t channel, uint64_t tag, bool multiple) {
  auto it = consumers_.find(channel);
  if (it != consumers_.end()) {
    auto& unsettled = it->second.unsettled;
    unsettled.erase(unsettled.begin(), multiple ? unsettled.upper_bound(tag) : unsettled.begin());
    unsettled.erase(tag);
  }
  int rc = amqp_basic_ack(conn_.state(), channel, tag, multiple ? 1 : 0);
  if (rc != AMQP_STATUS_OK) {
    (void)conn_.LibraryError(rc, "basic.ack");
  }
}

// Writes the acks of one batch. Per channel, the longest run of the oldest unsettled deliveries
// that are all being acked goes out as one basic.ack(multiple); the rest one by one. A delivery
// still unsettled (in a handler, or being nacked) stops the run, so it is never acked by accident.
void RabbitMqTransport::SendAcks(std::vector<PendingAck> acks) {
  if (acks.empty()) {
    return;
  }
  std::sort(acks.begin(), acks.end(), [](const PendingAck& a, const PendingAck& b) {
    return a.channel != b.channel ? a.channel < b.channel : a.tag < b.tag;
  });
  for (size_t i = 0; i < acks.size() && !conn_.broken();) {
    size_t end = i;
    while (end < acks.size() && acks[end].channel == acks[i].channel) {
      ++end;
    }
    const amqp_channel_t channel = acks[i].channel;
    auto consumer = consumers_.find(channel);
    size_t next = i;
    if (consumer != consumers_.end()) {
      // Acks of an older consumer on a reused channel number never join the run.
      size_t run = MultipleAckRun(std::span<const PendingAck>(acks).subspan(i, end - i),
                                  consumer->second.unsettled, consumer->second.incarnation);
      if (run > 0) {
        AckNow(channel, acks[i + run - 1].tag, /*multiple=*/true);
        next = i + run;
      }
    }
    for (size_t k = next; k < end && !conn_.broken(); ++k) {
      if (ConsumerAlive(channel, acks[k].incarnation)) {
        AckNow(channel, acks[k].tag);
      }
    }
    i = end;
  }
}

void RabbitMqTransport::NackNow(amqp_channel_t channel, uint64_t tag) {
  auto it = consumers_.find(channel);
  if (it != consumers_.end()) {
    it->second.unsettled.erase(tag);
  }
  int rc = amqp_basic_nack(conn_.state(), channel, tag, 0, /*requeue=*/1);
  if (rc != AMQP_STATUS_OK) {
    (void)conn_.LibraryError(rc, "basic.nack");
  }
}

Status RabbitMqTransport::StartConsumer(const std::string& queue) {
  {
    std::lock_guard lock(mu_);
    if (queues_[queue].consuming) {
      return Ok();
    }
  }
  ASYA_RETURN_IF_ERROR(PassiveDeclare(queue));
  amqp_channel_t channel = 0;
  for (int i = kFirstConsumerChannel; i <= kLastConsumerChannel; ++i) {
    amqp_channel_t candidate = next_channel_;
    next_channel_ = next_channel_ >= kLastConsumerChannel
                        ? kFirstConsumerChannel
                        : static_cast<amqp_channel_t>(next_channel_ + 1);
    if (consumers_.count(candidate) == 0) {
      channel = candidate;
      break;
    }
  }
  if (channel == 0) {
    return MakeError(ErrorCode::kResourceExhausted, "no free AMQP channel for a consumer");
  }
  ASYA_RETURN_IF_ERROR(conn_.OpenChannel(channel));
  amqp_basic_qos(conn_.state(), channel, 0, static_cast<uint16_t>(std::max(0, settings_.prefetch)),
                 0);
  Status st = conn_.CheckReply(channel, "basic.qos");
  amqp_basic_consume_ok_t* consume_ok = nullptr;
  if (st) {
    consume_ok = amqp_basic_consume(conn_.state(), channel, Bytes(queue), amqp_empty_bytes, 0, 0, 0,
                                    amqp_empty_table);
    st = conn_.CheckReply(channel, "basic.consume '" + queue + "'");
  }
  if (!st) {
    // A server exception already closed the channel; otherwise close it ourselves.
    if (!conn_.broken() && st.error().code == ErrorCode::kUnavailable) {
      amqp_channel_close(conn_.state(), channel, AMQP_REPLY_SUCCESS);
    }
    return st;
  }
  uint64_t incarnation = ++next_incarnation_;
  consumers_[channel] = Consumer{incarnation, BytesToString(consume_ok->consumer_tag)};
  std::lock_guard lock(mu_);
  live_[incarnation] = Incarnation{queue, channel, {}};
  QueueState& q = queues_[queue];
  q.consuming = true;
  q.wanted = true;
  q.cv.notify_all();
  known_queues_.insert(queue);
  return Ok();
}

Status RabbitMqTransport::CheckConsumer(const std::string& queue) {
  amqp_channel_t channel = 0;
  {
    std::lock_guard lock(mu_);
    for (const auto& [ch, consumer] : consumers_) {
      auto live = live_.find(consumer.incarnation);
      if (live != live_.end() && live->second.queue == queue) {
        channel = ch;
      }
    }
  }
  if (channel == 0) {
    return Ok();
  }
  auto ok = PassiveDeclare(queue);
  if (ok && ok->consumer_count > 0) {
    return Ok();
  }
  if (!ok && ok.error().code != ErrorCode::kNotFound) {
    return Unexpected(ok.error());
  }
  amqp_channel_close(conn_.state(), channel, AMQP_REPLY_SUCCESS);
  Status st = conn_.CheckReply(channel, "channel.close of a dead consumer");
  DropConsumer(channel, ok ? "the broker lists no consumers" : "the queue was deleted");
  return st;
}

void RabbitMqTransport::StopConsuming() {
  for (const auto& [channel, consumer] : consumers_) {
    amqp_basic_cancel(conn_.state(), channel, Bytes(consumer.tag));
    if (!conn_.CheckReply(channel, "basic.cancel") && conn_.broken()) {
      return;
    }
  }
  // Deliveries sent before cancel-ok are queued inside librabbitmq: take them into the buffers
  // (or, when interrupted, HandOut gives them back), then give back everything buffered.
  for (bool more = true; more && !conn_.broken();) {
    if (!DrainFrames(&more)) {
      return;
    }
  }
  GiveBackBuffered();
}

void RabbitMqTransport::GiveBackBuffered() {
  std::vector<std::pair<uint64_t, Message>> give_back;  // incarnation, message
  {
    std::lock_guard lock(mu_);
    for (auto& [name, q] : queues_) {
      for (Message& m : q.ready) {
        auto r = ParseReceipt(m.receipt);
        auto live = r ? live_.find(r->incarnation) : live_.end();
        if (live != live_.end()) {
          live->second.outstanding.erase(r->tag);
          give_back.emplace_back(r->incarnation, std::move(m));
        }
      }
      q.ready.clear();
      q.wanted = false;
    }
  }
  for (auto& [incarnation, m] : give_back) {
    auto r = ParseReceipt(m.receipt);
    amqp_channel_t channel = 0;
    for (const auto& [ch, consumer] : consumers_) {
      if (consumer.incarnation == incarnation) {
        channel = ch;
      }
    }
    if (r && channel != 0) {
      GiveBack(channel, incarnation, r->tag, m);
    }
  }
}

void RabbitMqTransport::GiveBack(amqp_channel_t channel, uint64_t incarnation, uint64_t tag,
                                 const Message& m) {
  if (m.delivery_count <= 0) {
    NackNow(channel, tag);
    return;
  }
  // Returning it (nack, or closing the channel) would count a delivery nobody saw (quorum
  // x-delivery-count, classic conversion). Publish a copy carrying the count it had before this
  // delivery straight into its queue, then ack; if that fails, requeue it after all.
  Headers headers = CopyHeaders(m.headers, m.delivery_count - 1);
  ++giving_back_;
  SendPublish("", m.queue, m.queue, m.body, headers, [this, channel, incarnation, tag](Status st) {
    --giving_back_;
    if (!ConsumerAlive(channel, incarnation)) {
      return;
    }
    if (st) {
      AckNow(channel, tag);
    } else {
      NackNow(channel, tag);
    }
  });
}

void RabbitMqTransport::RestoreConsumers() {
  std::vector<std::string> wanted;
  {
    std::lock_guard lock(mu_);
    if (interrupted_) {
      return;
    }
    for (const auto& [name, q] : queues_) {
      if (q.wanted) {
        wanted.push_back(name);
      }
    }
  }
  for (const std::string& queue : wanted) {
    Status st = StartConsumer(queue);
    if (!st) {
      log::Warn("rabbitmq: could not restore a consumer after reconnecting",
                {{"queue", queue}, {"error", st.error().message}});
    }
  }
}

}  // namespace asya::transport::rabbitmq
