// RabbitMQ transport: one I/O thread owns the AMQP connection; callers hand it commands.
// Design notes: README.md in this directory.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include <amqp.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "asya/base/log.h"
#include "asya/transport/rabbitmq.h"
#include "transport/rabbitmq/amqp_connection.h"
#include "transport/rabbitmq/management.h"

namespace asya::transport {
namespace {

using rabbitmq::AmqpConnection;
using rabbitmq::BytesToString;
using rabbitmq::TableBuilder;
using SteadyClock = std::chrono::steady_clock;

constexpr amqp_channel_t kPublishChannel = 1;
constexpr amqp_channel_t kAdminChannel = 2;
constexpr amqp_channel_t kFirstConsumerChannel = 3;
constexpr amqp_channel_t kLastConsumerChannel = 2047;  // RabbitMQ's default channel_max
constexpr char kDeliveriesHeader[] = "x-asya-deliveries";
constexpr char kQuorumCountHeader[] = "x-delivery-count";
constexpr size_t kMaxQueueName = 200;  // leaves room for "-dlq" / "-delay-<ms>" within 255
constexpr int kMaxFramesPerDrain = 512;
constexpr Millis kRequeueDelay{500};  // see Nack() and OnDeliver()

amqp_bytes_t Bytes(std::string_view s) {
  return amqp_bytes_t{s.size(), const_cast<char*>(s.data())};
}

Status ValidateQueueName(std::string_view queue) {
  if (queue.empty()) {
    return MakeError(ErrorCode::kInvalidArgument, "queue name is empty");
  }
  if (queue.size() > kMaxQueueName) {
    return MakeError(ErrorCode::kInvalidArgument,
                     "queue name is longer than " + std::to_string(kMaxQueueName) + " bytes");
  }
  for (unsigned char c : queue) {
    if (c < 0x20 || c == 0x7f) {
      return MakeError(ErrorCode::kInvalidArgument, "queue name contains a control character");
    }
  }
  return Ok();
}

// Routing key of a queue on the topic exchange: the actor name ("asya-X" -> "X").
std::string RoutingKey(std::string_view queue) {
  constexpr std::string_view kPrefix = "asya-";
  if (queue.substr(0, kPrefix.size()) == kPrefix && queue.size() > kPrefix.size()) {
    return std::string(queue.substr(kPrefix.size()));
  }
  return std::string(queue);
}

// Rounds a delay up to one of 10 steps per decade (10,12,15,20,25,30,40,50,60,80 x 10^k ms), so
// jittered backoffs share a bounded set of holding queues; a delay grows by less than 25%.
int64_t BucketDelayMs(int64_t ms) {
  if (ms <= 10) {
    return std::max<int64_t>(ms, 1);
  }
  static constexpr int64_t kSteps[] = {10, 12, 15, 20, 25, 30, 40, 50, 60, 80};
  for (int64_t scale = 1;; scale *= 10) {
    for (int64_t step : kSteps) {
      if (step * scale >= ms) {
        return step * scale;
      }
    }
  }
}

std::optional<int64_t> ParseCount(const std::map<std::string, std::string>& headers,
                                  const char* key) {
  auto it = headers.find(key);
  if (it == headers.end() || it->second.empty() ||
      it->second.find_first_not_of("0123456789") != std::string::npos || it->second.size() > 18) {
    return std::nullopt;
  }
  return std::stoll(it->second);
}

// Headers the broker adds; never copied into a republished message.
bool IsBrokerHeader(const std::string& key) {
  return key == kQuorumCountHeader || key.rfind("x-first-death-", 0) == 0 ||
         key.rfind("x-last-death-", 0) == 0;
}

std::string RandomHex() {
  std::random_device rd;
  std::mt19937_64 gen(rd());
  char buf[17];
  std::snprintf(buf, sizeof(buf), "%016llx", static_cast<unsigned long long>(gen()));
  return buf;
}

// Outcome of a command, shared by the waiting caller and the I/O thread.
template <typename T>
struct Slot {
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  bool abandoned = false;
  std::optional<Result<T>> result;

  // False when the caller already gave up: the I/O thread then skips the work.
  bool Begin() {
    std::lock_guard lock(mu);
    return !abandoned;
  }
  void Set(Result<T> r) {
    std::lock_guard lock(mu);
    if (done) {
      return;
    }
    result = std::move(r);
    done = true;
    cv.notify_all();
  }
};

struct Command {
  std::function<void()> run;                 // on the I/O thread, while connected
  std::function<void(const Error&)> cancel;  // when the transport shuts down first
};

class RabbitMqTransport final : public Transport {
 public:
  RabbitMqTransport(RabbitMqSettings settings, RabbitMqEndpoint endpoint)
      : settings_(std::move(settings)), endpoint_(std::move(endpoint)), instance_(RandomHex()) {
    where_ = endpoint_.host + ":" + std::to_string(endpoint_.port);
    if (!settings_.management_url.empty()) {
      management_.emplace(settings_.management_url, endpoint_.vhost);
    }
  }

  ~RabbitMqTransport() override {
    stop_ = true;
    Wake();
    if (io_thread_.joinable()) {
      io_thread_.join();
    }
    if (wake_fd_ >= 0) {
      close(wake_fd_);
    }
  }

  Status Start() {
    wake_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (wake_fd_ < 0) {
      return MakeError(ErrorCode::kInternal, "eventfd failed");
    }
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

  std::string_view Name() const override { return "rabbitmq"; }

  Result<std::vector<Message>> Receive(std::string_view queue,
                                       const ReceiveOptions& options) override;
  Status Publish(std::string_view queue, std::string_view body,
                 const PublishOptions& options) override;
  Status Ack(const Message& message) override;
  Status Nack(const Message& message, Millis delay) override;
  Status ExtendVisibility(const Message& /*message*/, Millis /*visibility*/) override {
    return Ok();  // RabbitMQ has no visibility timeout (see README: consumer_timeout)
  }
  void Interrupt() override {
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
    Submit(Command{[this] { StopConsuming(); }, [](const Error&) {}});
  }

  Status CreateQueue(std::string_view queue, const QueueOptions& options) override;
  Status DeleteQueue(std::string_view queue) override;
  Result<bool> QueueExists(std::string_view queue) override;
  Result<QueueDepth> Depth(std::string_view queue) override;
  Result<std::vector<std::string>> ListQueues() override;
  Status Purge(std::string_view queue) override;

 private:
  // ---- state shared between callers and the I/O thread (guarded by mu_) ----
  struct QueueState {
    std::deque<Message> ready;  // deliveries not yet handed out by Receive()
    std::condition_variable cv;
    bool consuming = false;  // a consumer is active on the current connection
    bool wanted = false;     // Receive() was called: restore the consumer after a reconnect
  };
  struct Incarnation {  // one consumer channel on one connection
    std::string queue;
    amqp_channel_t channel = 0;
    std::unordered_set<uint64_t> outstanding;  // delivery tags handed out, not yet acked/nacked
  };
  struct Receipt {
    uint64_t incarnation = 0;
    uint64_t tag = 0;
  };

  struct PendingAck {
    amqp_channel_t channel = 0;
    uint64_t incarnation = 0;
    uint64_t tag = 0;
  };
  // ---- I/O-thread-only state ----
  struct PendingPublish {
    std::function<void(Status)> done;
    std::optional<Error> failure;  // set by basic.return (unroutable)
  };

  // -- caller side helpers --
  // The I/O thread takes the whole queue at once and looks at it again before sleeping, so only
  // the caller that finds it empty has to wake the thread (one eventfd write per batch).
  void Submit(Command command) {
    bool wake = false;
    {
      std::lock_guard lock(cmd_mu_);
      wake = commands_.empty() && acks_.empty();
      commands_.push_back(std::move(command));
    }
    if (wake) {
      Wake();
    }
  }
  void Wake() const {
    uint64_t one = 1;
    if (wake_fd_ >= 0) {
      [[maybe_unused]] ssize_t n = write(wake_fd_, &one, sizeof(one));
    }
  }
  template <typename T>
  Result<T> Wait(const std::shared_ptr<Slot<T>>& slot, std::string_view what) {
    std::unique_lock lock(slot->mu);
    if (!slot->cv.wait_for(lock, settings_.operation_timeout, [&] { return slot->done; })) {
      slot->abandoned = true;
      lock.unlock();
      std::string why;
      {
        std::lock_guard state_lock(mu_);
        why = connected_
                  ? std::string("no answer from the broker")
                  : "not connected" + (last_error_ ? ": " + last_error_->message : std::string());
      }
      return MakeError(ErrorCode::kUnavailable,
                       std::string(what) + ": gave up after " +
                           std::to_string(settings_.operation_timeout.count()) +
                           " ms (RabbitMQ at " + where_ + ", " + why + ")");
    }
    return std::move(*slot->result);
  }
  // Runs fn on the I/O thread and waits for its result.
  template <typename T>
  Result<T> Call(std::string_view what, std::function<Result<T>()> fn) {
    auto slot = std::make_shared<Slot<T>>();
    Submit(Command{[slot, fn = std::move(fn)] {
                     if (slot->Begin()) {
                       slot->Set(fn());
                     }
                   },
                   [slot](const Error& e) { slot->Set(Unexpected(e)); }});
    return Wait(slot, what);
  }
  Result<Receipt> DecodeReceipt(const Message& message) const;
  // Removes the tag from the outstanding set; returns the channel of the live consumer.
  Result<amqp_channel_t> Settle(const Message& message, Receipt* receipt);
  Status EnsureConsumer(const std::string& queue);

  // -- I/O thread --
  void IoMain();
  Status Connect();
  Status RunConnected();
  void TearDown(const Error& reason);
  void SleepInterruptibly(Millis d);
  void RunCommands();
  Status DrainFrames(bool* more);
  Status HandleFrame(const amqp_frame_t& frame);
  Status OnDeliver(amqp_channel_t channel, uint64_t tag, bool redelivered);
  Status OnReturn(amqp_channel_t channel, const amqp_basic_return_t& ret);
  void OnConfirm(uint64_t tag, bool multiple, bool ok);
  void OnChannelClose(amqp_channel_t channel, const amqp_channel_close_t& close);
  void DropConsumer(amqp_channel_t channel, std::string_view reason);
  void FailPending(const Error& error);
  void HandOut(uint64_t incarnation, uint64_t tag, Message message);
  void AckNow(amqp_channel_t channel, uint64_t tag, bool multiple = false);
  void SendAcks(std::vector<PendingAck> acks);
  void NotifyHandedOut();
  void NackNow(amqp_channel_t channel, uint64_t tag);
  bool ConsumerAlive(amqp_channel_t channel, uint64_t incarnation);
  Status EnsureAdmin();
  Status EnsurePublishChannel();
  Result<amqp_queue_declare_ok_t> PassiveDeclare(const std::string& queue);
  Status DeclareQueue(const std::string& queue, const QueueOptions& options);
  Status StartConsumer(const std::string& queue);
  void RestoreConsumers();
  void StopConsuming();
  void GiveBackBuffered();
  void GiveBack(amqp_channel_t channel, uint64_t incarnation, uint64_t tag, const Message& m);
  Status CheckConsumer(const std::string& queue);
  // Publishes and calls done(status) on the I/O thread once the broker confirmed (or failed).
  void PublishAsync(const std::string& queue, std::string body,
                    std::map<std::string, std::string> headers, Millis delay,
                    std::function<void(Status)> done);
  void SendPublish(const std::string& exchange, const std::string& routing_key,
                   const std::string& queue, const std::string& body,
                   const std::map<std::string, std::string>& headers,
                   std::function<void(Status)> done);

  const RabbitMqSettings settings_;
  const RabbitMqEndpoint endpoint_;
  const std::string instance_;
  std::string where_;
  std::optional<rabbitmq::ManagementClient> management_;

  int wake_fd_ = -1;
  std::thread io_thread_;
  std::atomic<bool> stop_{false};

  std::mutex cmd_mu_;
  std::deque<Command> commands_;
  std::vector<PendingAck> acks_;  // Ack() calls not yet written (sent together, see SendAcks)

  mutable std::mutex mu_;
  std::condition_variable state_cv_;
  bool connected_ = false;
  bool interrupted_ = false;
  int connect_failures_ = 0;
  std::optional<Error> last_error_;
  std::map<std::string, QueueState, std::less<>> queues_;
  std::unordered_map<uint64_t, Incarnation> live_;
  std::set<std::string> known_queues_;                           // declared or consumed here
  std::map<std::string, std::set<std::string>> holding_queues_;  // queue -> its delay queues

  // I/O thread only.
  AmqpConnection conn_;
  uint64_t generation_ = 0;
  uint64_t next_incarnation_ = 0;
  std::string id_prefix_;
  bool publish_open_ = false;
  bool admin_open_ = false;
  uint64_t publish_seq_ = 0;
  int giving_back_ = 0;  // GiveBack publishes waiting for their confirm
  std::map<uint64_t, PendingPublish> pending_;
  struct Consumer {
    uint64_t incarnation = 0;
    std::string tag;               // server-generated consumer tag
    std::set<uint64_t> unsettled;  // delivery tags received and not yet acked/nacked
  };
  std::map<amqp_channel_t, Consumer> consumers_;
  amqp_channel_t next_channel_ = kFirstConsumerChannel;
  std::set<std::string> holding_declared_;  // on this connection
  bool draining_ = false;                   // inside DrainFrames: HandOut defers its notify
  std::vector<QueueState*> to_notify_;      // queues that got deliveries during this drain
};

// ======================= caller side =======================

Result<RabbitMqTransport::Receipt> RabbitMqTransport::DecodeReceipt(const Message& message) const {
  const std::string& r = message.receipt;
  size_t dot = r.find('.');
  if (dot == std::string::npos || dot == 0 || dot + 1 >= r.size() ||
      r.find_first_not_of("0123456789.") != std::string::npos || r.size() > 40) {
    return MakeError(ErrorCode::kInvalidArgument,
                     "malformed RabbitMQ receipt '" + r + "' (expected <consumer>.<delivery-tag>)");
  }
  Receipt receipt;
  receipt.incarnation = std::stoull(r.substr(0, dot));
  receipt.tag = std::stoull(r.substr(dot + 1));
  return receipt;
}

Result<amqp_channel_t> RabbitMqTransport::Settle(const Message& message, Receipt* receipt) {
  ASYA_ASSIGN_OR_RETURN(*receipt, DecodeReceipt(message));
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
      // consumers of a deleted quorum queue. The next Receive then starts a new consumer.
      (void)Call<void>("check consumer of '" + queue + "'",
                       [this, queue] { return CheckConsumer(queue); });
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
  Submit(Command{[this, slot, queue, body = std::string(body), headers = options.headers,
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
  bool wake = false;
  {
    std::lock_guard lock(cmd_mu_);
    wake = commands_.empty() && acks_.empty();
    acks_.push_back(PendingAck{channel, receipt.incarnation, receipt.tag});
  }
  if (wake) {
    Wake();
  }
  return Ok();
}

Status RabbitMqTransport::Nack(const Message& message, Millis delay) {
  Receipt receipt;
  ASYA_ASSIGN_OR_RETURN(amqp_channel_t channel, Settle(message, &receipt));
  // A copy carrying the delivery count goes back to the queue (after `delay`, through a holding
  // queue), then the original is acked. basic.nack(requeue) is only the fallback when the copy
  // cannot be published: it would let the consumer (or a racing basic.cancel) pick the message
  // up again and count deliveries nobody saw, and classic queues cannot count at all.
  std::map<std::string, std::string> headers;
  for (const auto& [k, v] : message.headers) {
    if (!IsBrokerHeader(k)) {
      headers[k] = v;
    }
  }
  headers[kDeliveriesHeader] = std::to_string(std::max<int64_t>(1, message.delivery_count));
  auto slot = std::make_shared<Slot<void>>();
  Submit(Command{[this, slot, channel, receipt, queue = message.queue, body = message.body,
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
                       s = MakeError(s.error().code,
                                     "nack could not requeue a counted copy (" + s.error().message +
                                         "); the message was requeued by the broker instead");
                     }
                     slot->Set(std::move(s));
                   };
                   // Even "no delay" waits kRequeueDelay in a holding queue: the copy must not
                   // reach this consumer while it may be shutting down (a delivery in transit
                   // during basic.cancel is returned by the broker and counted), and a poison
                   // message cannot spin hot.
                   PublishAsync(queue, std::move(body), std::move(headers),
                                std::max(delay, kRequeueDelay), std::move(done));
                 },
                 [slot](const Error& e) { slot->Set(Unexpected(e)); }});
  return Wait(slot, "nack of a message from '" + message.queue + "'");
}

Status RabbitMqTransport::CreateQueue(std::string_view queue_view, const QueueOptions& options) {
  ASYA_RETURN_IF_ERROR(ValidateQueueName(queue_view));
  std::string queue(queue_view);
  return Call<void>("create queue '" + queue + "'", [this, queue, options]() -> Status {
    ASYA_RETURN_IF_ERROR(DeclareQueue(queue, options));
    if (options.create_dlq) {
      QueueOptions dlq_options;
      dlq_options.create_dlq = false;
      ASYA_RETURN_IF_ERROR(DeclareQueue(queue + "-dlq", dlq_options));
    }
    return Ok();
  });
}

Status RabbitMqTransport::DeleteQueue(std::string_view queue_view) {
  ASYA_RETURN_IF_ERROR(ValidateQueueName(queue_view));
  std::string queue(queue_view);
  return Call<void>("delete queue '" + queue + "'", [this, queue]() -> Status {
    std::vector<std::string> names{queue};
    {
      std::lock_guard lock(mu_);
      auto it = holding_queues_.find(queue);
      if (it != holding_queues_.end()) {
        names.insert(names.end(), it->second.begin(), it->second.end());
        holding_queues_.erase(it);
      }
      known_queues_.erase(queue);
    }
    for (const std::string& name : names) {
      ASYA_RETURN_IF_ERROR(EnsureAdmin());
      amqp_queue_delete(conn_.state(), kAdminChannel, Bytes(name), 0, 0);
      Status st = conn_.CheckReply(kAdminChannel, "queue.delete '" + name + "'");
      if (!st) {
        admin_open_ = false;
        if (st.error().code != ErrorCode::kNotFound) {
          return st;
        }
      }
      holding_declared_.erase(name);
    }
    return Ok();
  });
}

Result<bool> RabbitMqTransport::QueueExists(std::string_view queue_view) {
  ASYA_RETURN_IF_ERROR(ValidateQueueName(queue_view));
  std::string queue(queue_view);
  return Call<bool>("check queue '" + queue + "'", [this, queue]() -> Result<bool> {
    auto ok = PassiveDeclare(queue);
    if (ok) {
      return true;
    }
    if (ok.error().code == ErrorCode::kNotFound) {
      return false;
    }
    return Unexpected(ok.error());
  });
}

Result<QueueDepth> RabbitMqTransport::Depth(std::string_view queue_view) {
  ASYA_RETURN_IF_ERROR(ValidateQueueName(queue_view));
  std::string queue(queue_view);
  ASYA_ASSIGN_OR_RETURN(
      QueueDepth depth,
      Call<QueueDepth>("depth of '" + queue + "'", [this, queue]() -> Result<QueueDepth> {
        ASYA_ASSIGN_OR_RETURN(amqp_queue_declare_ok_t ok, PassiveDeclare(queue));
        QueueDepth d;
        // Messages prefetched by this process but not yet handed out by Receive() are waiting to
        // be received, so they count as ready (other processes' prefetch buffers cannot be seen).
        std::lock_guard lock(mu_);
        auto it = queues_.find(queue);
        d.ready = ok.message_count +
                  (it == queues_.end() ? 0 : static_cast<int64_t>(it->second.ready.size()));
        d.inflight = -1;
        return d;
      }));
  if (management_) {
    auto stats = management_->QueueStats(queue);
    if (stats) {
      depth.inflight = stats->unacked;
    } else {
      log::Warn("rabbitmq: management API unavailable for inflight count",
                {{"error", stats.error().message}});
    }
  }
  return depth;
}

Result<std::vector<std::string>> RabbitMqTransport::ListQueues() {
  if (management_) {
    return management_->QueueNames();
  }
  std::lock_guard lock(mu_);
  return std::vector<std::string>(known_queues_.begin(), known_queues_.end());
}

Status RabbitMqTransport::Purge(std::string_view queue_view) {
  ASYA_RETURN_IF_ERROR(ValidateQueueName(queue_view));
  std::string queue(queue_view);
  return Call<void>("purge '" + queue + "'", [this, queue]() -> Status {
    ASYA_RETURN_IF_ERROR(EnsureAdmin());
    amqp_queue_purge(conn_.state(), kAdminChannel, Bytes(queue));
    Status st = conn_.CheckReply(kAdminChannel, "queue.purge '" + queue + "'");
    if (!st) {
      admin_open_ = false;
      return st;
    }
    // Prefetched-but-not-handed-out messages count as ready (Depth), so they are purged too.
    std::vector<std::pair<amqp_channel_t, uint64_t>> drop;
    {
      std::lock_guard lock(mu_);
      auto it = queues_.find(queue);
      if (it != queues_.end()) {
        for (const Message& m : it->second.ready) {
          auto r = DecodeReceipt(m);
          auto live = r ? live_.find(r->incarnation) : live_.end();
          if (live != live_.end()) {
            live->second.outstanding.erase(r->tag);
            drop.emplace_back(live->second.channel, r->tag);
          }
        }
        it->second.ready.clear();
      }
    }
    for (const auto& [channel, tag] : drop) {
      AckNow(channel, tag);
    }
    return Ok();
  });
}

// ======================= I/O thread =======================

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
  std::deque<Command> rest;
  {
    std::lock_guard lock(cmd_mu_);
    rest.swap(commands_);
  }
  for (Command& c : rest) {
    c.cancel(Error{ErrorCode::kCancelled, "the RabbitMQ transport is shutting down"});
  }
}

Status RabbitMqTransport::Connect() {
  ++generation_;
  id_prefix_ = instance_ + "-" + std::to_string(generation_) + "-";
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
    pollfd pfd{wake_fd_, POLLIN, 0};
    if (poll(&pfd, 1, static_cast<int>(left.count())) > 0) {
      uint64_t v;
      [[maybe_unused]] ssize_t n = read(wake_fd_, &v, sizeof(v));
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
    {
      std::lock_guard lock(cmd_mu_);
      if (!commands_.empty() || !acks_.empty()) {
        continue;
      }
    }
    pollfd fds[2] = {{conn_.fd(), POLLIN, 0}, {wake_fd_, POLLIN, 0}};
    if (poll(fds, 2, poll_ms) > 0 && (fds[1].revents & POLLIN) != 0) {
      uint64_t v;
      [[maybe_unused]] ssize_t n = read(wake_fd_, &v, sizeof(v));
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
  {
    std::lock_guard lock(cmd_mu_);
    batch.swap(commands_);
    acks.swap(acks_);
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
      std::lock_guard lock(cmd_mu_);
      commands_.insert(commands_.begin(), std::make_move_iterator(batch.begin() + i),
                       std::make_move_iterator(batch.end()));
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

Status RabbitMqTransport::OnDeliver(amqp_channel_t channel, uint64_t tag, bool redelivered) {
  amqp_message_t msg;
  amqp_rpc_reply_t reply = amqp_read_message(conn_.state(), channel, &msg, 0);
  if (reply.reply_type != AMQP_RESPONSE_NORMAL) {
    return conn_.CheckReply(reply, channel, "reading a delivery");
  }
  Message m;
  m.body = BytesToString(msg.body);
  if ((msg.properties._flags & AMQP_BASIC_MESSAGE_ID_FLAG) != 0) {
    m.id = BytesToString(msg.properties.message_id);
  }
  if ((msg.properties._flags & AMQP_BASIC_HEADERS_FLAG) != 0) {
    m.headers = rabbitmq::TableToMap(msg.properties.headers);
  }
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
  m.receipt = std::to_string(incarnation) + "." + std::to_string(tag);
  int64_t earlier = ParseCount(m.headers, kDeliveriesHeader).value_or(0);
  m.redelivered = redelivered || earlier > 0;
  if (auto quorum = ParseCount(m.headers, kQuorumCountHeader)) {
    m.delivery_count = earlier + *quorum + 1;
  } else if (!redelivered) {
    m.delivery_count = earlier + 1;
  } else {
    // A classic queue redelivered this message (a consumer died, or it was nacked) and cannot
    // count. Republish a copy that carries the count, then ack this delivery, so a message that
    // keeps crashing its consumer is counted and eventually dead-lettered instead of looping.
    std::map<std::string, std::string> headers;
    for (const auto& [k, v] : m.headers) {
      if (!IsBrokerHeader(k)) {
        headers[k] = v;
      }
    }
    headers[kDeliveriesHeader] = std::to_string(earlier + 1);
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

Status RabbitMqTransport::OnReturn(amqp_channel_t channel, const amqp_basic_return_t& ret) {
  std::string text = std::to_string(ret.reply_code) + " " + BytesToString(ret.reply_text);
  std::string exchange = BytesToString(ret.exchange);
  std::string key = BytesToString(ret.routing_key);
  amqp_message_t msg;
  amqp_rpc_reply_t reply = amqp_read_message(conn_.state(), channel, &msg, 0);
  if (reply.reply_type != AMQP_RESPONSE_NORMAL) {
    return conn_.CheckReply(reply, channel, "reading a returned message");
  }
  std::string id = (msg.properties._flags & AMQP_BASIC_MESSAGE_ID_FLAG) != 0
                       ? BytesToString(msg.properties.message_id)
                       : std::string();
  amqp_destroy_message(&msg);
  if (id.rfind(id_prefix_, 0) != 0) {
    return Ok();
  }
  std::string seq_text = id.substr(id_prefix_.size());
  if (seq_text.empty() || seq_text.find_first_not_of("0123456789") != std::string::npos) {
    return Ok();
  }
  auto it = pending_.find(std::stoull(seq_text));
  if (it != pending_.end()) {
    it->second.failure =
        Error{ErrorCode::kNotFound, "message was not routed to any queue: exchange '" +
                                        (exchange.empty() ? std::string("(default)") : exchange) +
                                        "' routing key '" + key + "' (" + text +
                                        "); does the queue exist and is it bound?"};
  }
  return Ok();
}

void RabbitMqTransport::OnConfirm(uint64_t tag, bool multiple, bool ok) {
  auto end = pending_.upper_bound(tag);
  auto begin = multiple ? pending_.begin() : pending_.find(tag);
  if (begin == pending_.end()) {
    return;
  }
  std::vector<PendingPublish> done;
  for (auto it = begin; it != end; ++it) {
    done.push_back(std::move(it->second));
  }
  pending_.erase(begin, end);
  for (PendingPublish& p : done) {
    if (p.failure) {
      p.done(Unexpected(*p.failure));
    } else if (!ok) {
      p.done(MakeError(ErrorCode::kUnavailable,
                       "RabbitMQ nacked the publish (internal broker error); not published"));
    } else {
      p.done(Ok());
    }
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

void RabbitMqTransport::FailPending(const Error& error) {
  std::map<uint64_t, PendingPublish> pending;
  pending.swap(pending_);
  for (auto& [seq, p] : pending) {
    p.done(Unexpected(error));
  }
}

bool RabbitMqTransport::ConsumerAlive(amqp_channel_t channel, uint64_t incarnation) {
  auto it = consumers_.find(channel);
  return it != consumers_.end() && it->second.incarnation == incarnation && !conn_.broken();
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
      // Skip acks of an older consumer on a reused channel number.
      const auto& unsettled = consumer->second.unsettled;
      size_t run = 0;
      auto u = unsettled.begin();
      for (size_t k = i; k < end && u != unsettled.end() && *u == acks[k].tag &&
                         acks[k].incarnation == consumer->second.incarnation;
           ++k, ++u) {
        ++run;
      }
      if (run >= 2) {
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

Status RabbitMqTransport::EnsureAdmin() {
  if (admin_open_) {
    return Ok();
  }
  ASYA_RETURN_IF_ERROR(conn_.OpenChannel(kAdminChannel));
  admin_open_ = true;
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
  publish_seq_ = 0;  // confirm numbering restarts on a new channel
  return Ok();
}

Result<amqp_queue_declare_ok_t> RabbitMqTransport::PassiveDeclare(const std::string& queue) {
  ASYA_RETURN_IF_ERROR(EnsureAdmin());
  amqp_queue_declare_ok_t* ok =
      amqp_queue_declare(conn_.state(), kAdminChannel, Bytes(queue), 1, 0, 0, 0, amqp_empty_table);
  Status st = conn_.CheckReply(kAdminChannel, "queue.declare (passive) '" + queue + "'");
  if (!st) {
    admin_open_ = false;
    if (st.error().code == ErrorCode::kNotFound) {
      return MakeError(ErrorCode::kNotFound, "queue '" + queue + "' does not exist");
    }
    return Unexpected(st.error());
  }
  return *ok;
}

Status RabbitMqTransport::DeclareQueue(const std::string& queue, const QueueOptions& options) {
  ASYA_RETURN_IF_ERROR(EnsureAdmin());
  TableBuilder args;
  bool has_type = false;
  for (const auto& [k, v] : options.attributes) {
    if (k.rfind("x-", 0) != 0) {
      continue;  // transport-specific extras of other transports
    }
    has_type = has_type || k == "x-queue-type";
    if (!v.empty() && v.size() < 19 && v.find_first_not_of("0123456789") == std::string::npos) {
      args.AddInt(k, std::stoll(v));
    } else {
      args.AddString(k, v);
    }
  }
  if (settings_.quorum_queues && !has_type) {
    args.AddString("x-queue-type", "quorum");
  }
  amqp_queue_declare(conn_.state(), kAdminChannel, Bytes(queue), 0, 1, 0, 0, args.Table());
  Status st = conn_.CheckReply(kAdminChannel, "queue.declare '" + queue + "'");
  if (!st) {
    admin_open_ = false;
    if (st.error().code != ErrorCode::kFailedPrecondition) {
      return st;
    }
    // 406 PRECONDITION_FAILED: the queue exists with other arguments (e.g. a classic queue made
    // by an older deployment). Use it as it is; delivery counting falls back to our header.
    ASYA_RETURN_IF_ERROR(PassiveDeclare(queue));
    log::Info("rabbitmq: queue exists with other arguments, using it as is",
              {{"queue", queue}, {"detail", st.error().message}});
  }
  amqp_queue_bind(conn_.state(), kAdminChannel, Bytes(queue), Bytes(settings_.exchange),
                  Bytes(RoutingKey(queue)), amqp_empty_table);
  st = conn_.CheckReply(kAdminChannel, "queue.bind '" + queue + "'");
  if (!st) {
    admin_open_ = false;
    return st;
  }
  std::lock_guard lock(mu_);
  known_queues_.insert(queue);
  return Ok();
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
        auto r = DecodeReceipt(m);
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
    auto r = DecodeReceipt(m);
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
  std::map<std::string, std::string> headers;
  for (const auto& [k, v] : m.headers) {
    if (!IsBrokerHeader(k) && k != kDeliveriesHeader) {
      headers[k] = v;
    }
  }
  if (m.delivery_count > 1) {
    headers[kDeliveriesHeader] = std::to_string(m.delivery_count - 1);
  }
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

void RabbitMqTransport::PublishAsync(const std::string& queue, std::string body,
                                     std::map<std::string, std::string> headers, Millis delay,
                                     std::function<void(Status)> done) {
  if (delay.count() <= 0) {
    SendPublish(settings_.exchange, RoutingKey(queue), queue, body, headers, std::move(done));
    return;
  }
  // RabbitMQ has no per-message delay: park the message in "<queue>-delay-<ms>", a classic queue
  // whose x-message-ttl dead-letters it back into <queue> through the default exchange.
  int64_t ms = BucketDelayMs(delay.count());
  std::string hold = queue + "-delay-" + std::to_string(ms);
  if (holding_declared_.count(hold) == 0) {
    auto target = PassiveDeclare(queue);
    if (!target) {
      done(Unexpected(target.error()));
      return;
    }
    Status st = EnsureAdmin();
    if (st) {
      TableBuilder args;
      args.AddInt("x-message-ttl", ms);
      args.AddString("x-dead-letter-exchange", "");
      args.AddString("x-dead-letter-routing-key", queue);
      amqp_queue_declare(conn_.state(), kAdminChannel, Bytes(hold), 0, 1, 0, 0, args.Table());
      st = conn_.CheckReply(kAdminChannel, "queue.declare '" + hold + "'");
      if (!st) {
        admin_open_ = false;
      }
    }
    if (!st) {
      done(Unexpected(st.error()));
      return;
    }
    holding_declared_.insert(hold);
    std::lock_guard lock(mu_);
    holding_queues_[queue].insert(hold);
  }
  SendPublish("", hold, hold, body, headers, std::move(done));
}

void RabbitMqTransport::SendPublish(const std::string& exchange, const std::string& routing_key,
                                    const std::string& queue, const std::string& body,
                                    const std::map<std::string, std::string>& headers,
                                    std::function<void(Status)> done) {
  Status st = EnsurePublishChannel();
  if (!st) {
    done(Unexpected(st.error()));
    return;
  }
  TableBuilder table;
  for (const auto& [k, v] : headers) {
    table.AddString(k, v);
  }
  uint64_t seq = ++publish_seq_;
  std::string message_id = id_prefix_ + std::to_string(seq);
  amqp_basic_properties_t props{};
  props._flags = AMQP_BASIC_CONTENT_TYPE_FLAG | AMQP_BASIC_DELIVERY_MODE_FLAG |
                 AMQP_BASIC_TIMESTAMP_FLAG | AMQP_BASIC_MESSAGE_ID_FLAG;
  props.content_type = amqp_cstring_bytes("application/json");
  props.delivery_mode = AMQP_DELIVERY_PERSISTENT;
  props.timestamp = static_cast<uint64_t>(std::time(nullptr));
  props.message_id = Bytes(message_id);
  if (!headers.empty()) {
    props._flags |= AMQP_BASIC_HEADERS_FLAG;
    props.headers = table.Table();
  }
  int rc = amqp_basic_publish(conn_.state(), kPublishChannel, Bytes(exchange), Bytes(routing_key),
                              /*mandatory=*/1, /*immediate=*/0, &props, Bytes(body));
  if (rc != AMQP_STATUS_OK) {
    done(Unexpected(conn_.LibraryError(rc, "publish to '" + queue + "'").error()));
    return;
  }
  pending_.emplace(seq, PendingPublish{std::move(done), std::nullopt});
}

}  // namespace

Result<TransportPtr> MakeRabbitMqTransport(const RabbitMqSettings& settings) {
  ASYA_ASSIGN_OR_RETURN(RabbitMqEndpoint endpoint, ParseRabbitMqUrl(settings.url));
  if (settings.exchange.empty()) {
    return MakeError(ErrorCode::kInvalidArgument,
                     "ASYA_RABBITMQ_EXCHANGE is empty (the default exchange cannot be used)");
  }
  if (settings.prefetch < 0 || settings.prefetch > 65535) {
    return MakeError(ErrorCode::kInvalidArgument, "RabbitMQ prefetch must be in [0, 65535]");
  }
  auto transport = std::make_unique<RabbitMqTransport>(settings, std::move(endpoint));
  ASYA_RETURN_IF_ERROR(transport->Start());
  return TransportPtr(std::move(transport));
}

}  // namespace asya::transport
