// RabbitMQ transport, the publisher. Channel 1 is in confirm mode: every publish is mandatory
// and persistent, gets the next confirm number and a message id that carries it (rules.h), and
// its `done` runs once the broker confirmed, returned (unroutable -> kNotFound) or nacked it, or
// the channel/connection was lost (ConfirmTracker, confirms.h). A delayed publish goes through a
// holding queue "<queue>-hold-<bucket ms>" whose TTL dead-letters it back into <queue>
// (at-least-once: a quorum queue; see rules.h).
#include <ctime>

#include "transport/rabbitmq/rabbitmq_transport.h"

namespace asya::transport::rabbitmq {

Status RabbitMqTransport::OnReturn(amqp_channel_t channel, const amqp_basic_return_t& ret) {
  // Copied before reading the message: `ret` points into frame memory librabbitmq may reuse.
  Error unroutable = UnroutableError(BytesToString(ret.exchange), BytesToString(ret.routing_key),
                                     ret.reply_code, BytesToString(ret.reply_text));
  amqp_message_t msg;
  amqp_rpc_reply_t reply = amqp_read_message(conn_.state(), channel, &msg, 0);
  if (reply.reply_type != AMQP_RESPONSE_NORMAL) {
    return conn_.CheckReply(reply, channel, "reading a returned message");
  }
  std::string id = ReadProperties(msg.properties).message_id;
  amqp_destroy_message(&msg);
  if (auto seq = PublishSeqFromMessageId(id, id_prefix_)) {
    confirms_.MarkUnroutable(*seq, std::move(unroutable));
  }
  return Ok();
}

Status RabbitMqTransport::EnsurePublishChannel() {
  if (publish_open_) {
    return Ok();
  }
  ASYA_RETURN_IF_ERROR(conn_.OpenChannel(kPublishChannel));
  amqp_confirm_select(conn_.state(), kPublishChannel);
  ASYA_RETURN_IF_ERROR(conn_.CheckReply(kPublishChannel, "confirm.select"));
  publish_open_ = true;
  confirms_.Reset();  // confirm numbering restarts on a new channel
  return Ok();
}

void RabbitMqTransport::PublishAsync(const std::string& queue, std::string_view body,
                                     std::map<std::string, std::string> headers, Millis delay,
                                     std::function<void(Status)> done) {
  if (delay.count() <= 0) {
    SendPublish(settings_.exchange, RoutingKey(queue), queue, body, headers, std::move(done));
    return;
  }
  // RabbitMQ has no per-message delay: park the message in "<queue>-hold-<ms>", a quorum queue
  // whose x-message-ttl dead-letters it (at-least-once) back into <queue> through the default
  // exchange.
  Result<std::string> hold = DeclareHoldingQueue(queue, BucketDelayMs(delay.count()));
  if (!hold) {
    done(Unexpected(hold.error()));
    return;
  }
  SendPublish("", *hold, *hold, body, headers, std::move(done));
}

void RabbitMqTransport::SendPublish(const std::string& exchange, const std::string& routing_key,
                                    const std::string& queue, std::string_view body,
                                    const std::map<std::string, std::string>& headers,
                                    std::function<void(Status)> done) {
  Status st = EnsurePublishChannel();
  if (!st) {
    done(Unexpected(st.error()));
    return;
  }
  uint64_t seq = confirms_.Reserve();
  PublishProperties props(id_prefix_ + std::to_string(seq), headers,
                          static_cast<uint64_t>(std::time(nullptr)));
  int rc = amqp_basic_publish(conn_.state(), kPublishChannel, Bytes(exchange), Bytes(routing_key),
                              /*mandatory=*/1, /*immediate=*/0, props.get(), Bytes(body));
  if (rc != AMQP_STATUS_OK) {
    done(Unexpected(conn_.LibraryError(rc, "publish to '" + queue + "'").error()));
    return;
  }
  confirms_.Add(seq, std::move(done));
}

void RabbitMqTransport::ContinueSettle(const std::shared_ptr<AsyncSettle>& op) {
  if (op->next < op->outgoing.size()) {
    const size_t i = op->next;
    const Outgoing& o = op->outgoing[i];
    PublishAsync(
        std::string(o.queue), o.body, o.options.headers, o.options.delay, [this, op, i](Status s) {
          if (!s) {
            op->done(
                SettleFailure{.in_ack = false, .index = i, .published = i, .error = s.error()});
            return;
          }
          op->next = i + 1;
          ContinueSettle(op);
        });
    return;
  }
  // Every output is confirmed: settle the receipt (so nobody else acks or nacks it) and queue
  // its ack with the others of this pass (io_acks_, written before the loop sleeps; runs of them
  // go out as one basic.ack(multiple), see SendAcks).
  Message input;
  input.queue = op->queue;
  input.receipt = op->receipt;
  Receipt receipt;
  Result<amqp_channel_t> channel = Settle(input, &receipt);
  if (!channel) {
    op->done(SettleFailure{
        .in_ack = true, .index = 0, .published = op->outgoing.size(), .error = channel.error()});
    return;
  }
  io_acks_.push_back(PendingAck{*channel, receipt.incarnation, receipt.tag});
  op->done(std::nullopt);
}

}  // namespace asya::transport::rabbitmq
