// RabbitMQ transport, the I/O thread: the only thread that touches the AMQP connection. It
// connects (and reconnects with capped exponential backoff), runs the commands callers queued
// (command_queue.h) with the socket corked, reads frames and dispatches them to the consumer
// (consumers.cc) and publisher (publisher.cc) parts, and tears everything down when the
// connection is lost: buffered deliveries dropped, receipts invalid, pending publishes failed.
#include <algorithm>
#include <iterator>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>

#include "asya/base/log.h"
#include "transport/rabbitmq/rabbitmq_transport.h"

namespace asya::transport::rabbitmq {

void RabbitMqTransport::IoMain() {
  Millis backoff = settings_.reconnect_backoff_min;
  while (!stop_) {
    Status st = Connect();
    if (!st) {
      conn_.Close();
      {
        std::lock_guard lock(mu_);
        last_error_ = st.error();
        ++connect_failures_;
        state_cv_.notify_all();
      }
      log::Warn(
          "rabbitmq: connect failed",
          {{"broker", where_}, {"error", st.error().message}, {"retry_in_ms", backoff.count()}});
      SleepInterruptibly(backoff);
      backoff = std::min(backoff * 2, settings_.reconnect_backoff_max);
      continue;
    }
    backoff = settings_.reconnect_backoff_min;
    {
      std::lock_guard lock(mu_);
      connected_ = true;
      last_error_.reset();
      state_cv_.notify_all();
    }
    log::Info("rabbitmq: connected", {{"broker", where_}, {"vhost", endpoint_.vhost}});
    RestoreConsumers();
    Status lost = RunConnected();
    TearDown(lost ? Error{ErrorCode::kCancelled, "transport shut down"} : lost.error());
  }
  std::deque<Command> rest = commands_.TakeAllCommands();
  for (Command& c : rest) {
    c.cancel(Error{ErrorCode::kCancelled, "the RabbitMQ transport is shutting down"});
  }
}

Status RabbitMqTransport::Connect() {
  ++generation_;
  id_prefix_ = MessageIdPrefix(instance_, generation_);
  ASYA_RETURN_IF_ERROR(conn_.Open(endpoint_, settings_));
  ASYA_RETURN_IF_ERROR(EnsurePublishChannel());
  ASYA_RETURN_IF_ERROR(EnsureAdmin());
  amqp_exchange_declare(conn_.state(), kAdminChannel, Bytes(settings_.exchange), Bytes("topic"), 0,
                        1, 0, 0, amqp_empty_table);
  Status st = conn_.CheckReply(kAdminChannel, "exchange.declare '" + settings_.exchange + "'");
  if (!st) {
    // e.g. 406: an exchange of that name exists with another type; not fixed by retrying soon.
    return MakeError(st.error().code == ErrorCode::kUnavailable ? ErrorCode::kUnavailable
                                                                : ErrorCode::kFailedPrecondition,
                     st.error().message);
  }
  return Ok();
}

void RabbitMqTransport::SleepInterruptibly(Millis d) {
  auto until = SteadyClock::now() + d;
  while (!stop_) {
    auto left = std::chrono::duration_cast<Millis>(until - SteadyClock::now());
    if (left.count() <= 0) {
      return;
    }
    pollfd pfd{commands_.wake_fd(), POLLIN, 0};
    if (poll(&pfd, 1, static_cast<int>(left.count())) > 0) {
      commands_.ClearWake();
    }
  }
}

Status RabbitMqTransport::RunConnected() {
  int poll_ms = 1000;
  if (settings_.heartbeat_seconds > 0) {
    poll_ms = std::min(poll_ms, settings_.heartbeat_seconds * 1000 / 2);
  }
  while (!stop_) {
    RunCommands();
    bool more = false;
    Status st = DrainFrames(&more);
    if (!st) {
      return st;
    }
    if (conn_.broken()) {
      return MakeError(ErrorCode::kUnavailable, "connection to RabbitMQ at " + where_ + " lost");
    }
    amqp_maybe_release_buffers(conn_.state());
    if (more) {
      continue;
    }
    // Acks queued while dispatching frames (confirms of PublishAndAckAsync) are written by the
    // next RunCommands, before the loop sleeps.
    if (!io_acks_.empty() || !commands_.Idle()) {
      continue;
    }
    pollfd fds[2] = {{conn_.fd(), POLLIN, 0}, {commands_.wake_fd(), POLLIN, 0}};
    if (poll(fds, 2, poll_ms) > 0 && (fds[1].revents & POLLIN) != 0) {
      commands_.ClearWake();
    }
  }
  // Shutting down: acks/nacks handed over just before must still reach the broker (the graceful
  // connection.close that follows waits until it has processed them), and prefetched messages
  // nobody received go back without counting a delivery (bounded wait for their confirms).
  RunCommands();
  bool had_consumers = !consumers_.empty();
  {
    std::lock_guard lock(mu_);
    interrupted_ = true;  // from now on HandOut gives every delivery back
  }
  StopConsuming();
  // Quorum queues may still push a delivery (e.g. one just nacked) after cancel-ok: listen a
  // little longer so it is given back too instead of being counted when the channel closes.
  auto now = SteadyClock::now();
  auto quiet_until = now + (had_consumers ? Millis(150) : Millis(0));
  auto deadline = now + Millis(5000);
  while (!conn_.broken() && (now = SteadyClock::now()) < deadline &&
         (giving_back_ > 0 || now < quiet_until)) {
    bool more = false;
    ASYA_RETURN_IF_ERROR(DrainFrames(&more));
    if (!io_acks_.empty()) {  // async settles confirmed while shutting down
      std::vector<PendingAck> acks;
      acks.swap(io_acks_);
      SendAcks(std::move(acks));
    }
    if (!more) {
      pollfd pfd{conn_.fd(), POLLIN, 0};
      poll(&pfd, 1, 20);
    }
  }
  return Ok();
}

void RabbitMqTransport::RunCommands() {
  std::deque<Command> batch;
  std::vector<PendingAck> acks;
  commands_.Take(&batch, &acks);
  if (!io_acks_.empty()) {
    acks.insert(acks.end(), io_acks_.begin(), io_acks_.end());
    io_acks_.clear();
  }
  // Cork the socket while writing a batch, so the frames of many publishes and acks leave in a
  // few segments instead of one each (TCP_NODELAY is on); uncorking flushes at once.
  const bool cork = batch.size() + acks.size() > 1 && conn_.fd() >= 0;
  int on = 1;
  if (cork) {
    setsockopt(conn_.fd(), IPPROTO_TCP, TCP_CORK, &on, sizeof(on));
  }
  struct Uncork {
    int fd;
    bool active;
    ~Uncork() {
      int off = 0;
      if (active) {
        setsockopt(fd, IPPROTO_TCP, TCP_CORK, &off, sizeof(off));
      }
    }
  } uncork{conn_.fd(), cork};
  SendAcks(std::move(acks));
  for (size_t i = 0; i < batch.size(); ++i) {
    if (conn_.broken()) {
      // Keep the rest for the next connection (their callers are still waiting).
      commands_.PutBack(batch.begin() + static_cast<std::ptrdiff_t>(i), batch.end());
      return;
    }
    batch[i].run();
  }
}

void RabbitMqTransport::TearDown(const Error& reason) {
  bool shutdown = reason.code == ErrorCode::kCancelled;
  if (!shutdown) {
    conn_.MarkBroken();
    log::Warn("rabbitmq: connection lost, reconnecting",
              {{"broker", where_}, {"error", reason.message}});
  }
  consumers_.clear();
  io_acks_.clear();  // their channel is gone: the broker redelivers those messages
  {
    std::lock_guard lock(mu_);
    connected_ = false;
    if (!shutdown) {
      last_error_ = reason;
    }
    live_.clear();
    for (auto& [name, q] : queues_) {
      q.consuming = false;
      q.ready.clear();  // unacked on the dead connection: the broker redelivers them
      q.cv.notify_all();
    }
    state_cv_.notify_all();
  }
  FailPending(Error{ErrorCode::kUnavailable,
                    "connection to RabbitMQ lost before the broker confirmed the publish (" +
                        reason.message + ")"});
  publish_open_ = false;
  admin_open_ = false;
  holding_declared_.clear();
  conn_.Close();
}

Status RabbitMqTransport::DrainFrames(bool* more) {
  *more = false;
  draining_ = true;
  struct Flush {
    RabbitMqTransport* self;
    ~Flush() { self->NotifyHandedOut(); }
  } flush{this};
  for (int i = 0; i < kMaxFramesPerDrain; ++i) {
    amqp_frame_t frame;
    // A tiny non-zero timeout (not zero) lets librabbitmq send and check heartbeats.
    timeval tv{0, 1};
    int rc = amqp_simple_wait_frame_noblock(conn_.state(), &frame, &tv);
    if (rc == AMQP_STATUS_TIMEOUT) {
      return Ok();
    }
    if (rc != AMQP_STATUS_OK) {
      return conn_.LibraryError(rc, "reading from RabbitMQ");
    }
    ASYA_RETURN_IF_ERROR(HandleFrame(frame));
    if (conn_.broken()) {
      return MakeError(ErrorCode::kUnavailable, "connection to RabbitMQ at " + where_ + " lost");
    }
  }
  *more = true;
  return Ok();
}

Status RabbitMqTransport::HandleFrame(const amqp_frame_t& frame) {
  if (frame.frame_type != AMQP_FRAME_METHOD) {
    return Ok();  // stray content frame of a message we did not read; nothing to do
  }
  const amqp_method_t& m = frame.payload.method;
  switch (m.id) {
    case AMQP_BASIC_DELIVER_METHOD: {
      auto* d = static_cast<amqp_basic_deliver_t*>(m.decoded);
      return OnDeliver(frame.channel, d->delivery_tag, d->redelivered != 0);
    }
    case AMQP_BASIC_ACK_METHOD: {
      auto* a = static_cast<amqp_basic_ack_t*>(m.decoded);
      OnConfirm(a->delivery_tag, a->multiple != 0, true);
      return Ok();
    }
    case AMQP_BASIC_NACK_METHOD: {
      auto* n = static_cast<amqp_basic_nack_t*>(m.decoded);
      OnConfirm(n->delivery_tag, n->multiple != 0, false);
      return Ok();
    }
    case AMQP_BASIC_RETURN_METHOD:
      return OnReturn(frame.channel, *static_cast<amqp_basic_return_t*>(m.decoded));
    case AMQP_BASIC_CANCEL_METHOD: {
      // The broker cancelled our consumer (queue deleted). Close the channel; Receive restarts.
      amqp_channel_t ch = frame.channel;
      amqp_channel_close(conn_.state(), ch, AMQP_REPLY_SUCCESS);
      Status st = conn_.CheckReply(ch, "channel.close after basic.cancel");
      DropConsumer(ch, "consumer cancelled by the broker (queue deleted?)");
      return conn_.broken() ? st : Ok();
    }
    case AMQP_CHANNEL_CLOSE_METHOD:
      OnChannelClose(frame.channel, *static_cast<amqp_channel_close_t*>(m.decoded));
      return Ok();
    case AMQP_CONNECTION_CLOSE_METHOD: {
      auto* c = static_cast<amqp_connection_close_t*>(m.decoded);
      std::string text = std::to_string(c->reply_code) + " " + BytesToString(c->reply_text);
      conn_.SendConnectionCloseOk();
      return MakeError(ErrorCode::kUnavailable, "RabbitMQ closed the connection: " + text);
    }
    case AMQP_CONNECTION_BLOCKED_METHOD:
      log::Warn("rabbitmq: broker blocked publishing (resource alarm)", {{"broker", where_}});
      return Ok();
    case AMQP_CONNECTION_UNBLOCKED_METHOD:
      log::Info("rabbitmq: broker unblocked publishing", {{"broker", where_}});
      return Ok();
    default:
      return Ok();
  }
}

void RabbitMqTransport::OnChannelClose(amqp_channel_t channel, const amqp_channel_close_t& close) {
  std::string text = std::to_string(close.reply_code) + " " + BytesToString(close.reply_text);
  conn_.SendChannelCloseOk(channel);
  log::Warn("rabbitmq: broker closed a channel", {{"channel", channel}, {"reason", text}});
  if (channel == kPublishChannel) {
    publish_open_ = false;
    FailPending(
        Error{ErrorCode::kUnavailable, "publish channel closed before the confirm: " + text});
  } else if (channel == kAdminChannel) {
    admin_open_ = false;
  } else {
    DropConsumer(channel, text);
  }
}

}  // namespace asya::transport::rabbitmq
