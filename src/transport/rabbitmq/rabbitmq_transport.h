// The RabbitMQ transport's one class (private to this directory). Its member functions are split
// by seam into one file each; README.md gives the design:
//
//   rabbitmq_transport.cc  caller side of the data path: start-up, Receive, Publish, Ack, Nack,
//                          Interrupt, the factory
//   io_loop.cc             the I/O thread: connect/reconnect with backoff, run queued commands
//                          (corked), read and dispatch frames, tear down a lost connection
//   consumers.cc           consumers and receipts: start/check/stop consumers, deliveries ->
//                          buffers, settle receipts, batched acks, give back unreceived messages
//   publisher.cc           publish channel: confirms (ConfirmTracker), basic.return, holding
//                          queues for delays
//   admin.cc               queue administration: declare/bind, passive declare, CreateQueue,
//                          DeleteQueue, QueueExists, Depth, ListQueues, Purge
//
// Pure rules live in rules.h, header/property encoding in amqp_table.h, the caller -> I/O thread
// hand-off in command_queue.h, confirm bookkeeping in confirms.h.
//
// Threads: every `conn_`, `consumers_`, `confirms_` ... ("I/O thread only" below) is touched only
// by the I/O thread; `mu_` guards the state callers share with it.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include <amqp.h>

#include "asya/transport/rabbitmq.h"
#include "transport/rabbitmq/amqp_connection.h"
#include "transport/rabbitmq/command_queue.h"
#include "transport/rabbitmq/confirms.h"
#include "transport/rabbitmq/management.h"
#include "transport/rabbitmq/rules.h"

namespace asya::transport::rabbitmq {

using SteadyClock = std::chrono::steady_clock;

inline constexpr amqp_channel_t kPublishChannel = 1;
inline constexpr amqp_channel_t kAdminChannel = 2;
inline constexpr amqp_channel_t kFirstConsumerChannel = 3;
inline constexpr amqp_channel_t kLastConsumerChannel = 2047;  // RabbitMQ's default channel_max
inline constexpr int kMaxFramesPerDrain = 512;
inline constexpr Millis kRequeueDelay{500};  // see Nack() and OnDeliver()

class RabbitMqTransport final : public Transport {
 public:
  RabbitMqTransport(RabbitMqSettings settings, RabbitMqEndpoint endpoint);
  ~RabbitMqTransport() override;

  // Starts the I/O thread and waits up to settings.connect_timeout for the first connection.
  Status Start();

  std::string_view Name() const override { return "rabbitmq"; }

  Result<std::vector<Message>> Receive(std::string_view queue,
                                       const ReceiveOptions& options) override;
  Status Publish(std::string_view queue, std::string_view body,
                 const PublishOptions& options) override;
  Status Ack(const Message& message) override;
  // Publishes `outgoing` one after the other from the I/O thread (each after the previous one's
  // confirm) and, once the last is confirmed, queues the ack of `message` for the next batch of
  // acks and runs `done` there (publisher.cc).
  void PublishAndAckAsync(const Message& message, std::span<const Outgoing> outgoing,
                          SettleDone done) override;
  bool SettlesAsync() const override { return true; }
  Status Nack(const Message& message, Millis delay) override;
  Status ExtendVisibility(const Message& /*message*/, Millis /*visibility*/) override {
    return Ok();  // RabbitMQ has no visibility timeout (see README: consumer_timeout)
  }
  void Interrupt() override;

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
  // ---- I/O-thread-only state ----
  struct Consumer {
    uint64_t incarnation = 0;
    std::string tag;               // server-generated consumer tag
    std::set<uint64_t> unsettled;  // delivery tags received and not yet acked/nacked
  };

  // -- caller side (rabbitmq_transport.cc) --
  // Waits for a command's result up to operation_timeout; the error says why it gave up.
  template <typename T>
  Result<T> Wait(const std::shared_ptr<Slot<T>>& slot, std::string_view what) {
    std::optional<Result<T>> result = slot->WaitFor(settings_.operation_timeout);
    if (!result) {
      return GaveUp(what);
    }
    return std::move(*result);
  }
  tl::unexpected<Error> GaveUp(std::string_view what) const;
  // Runs fn on the I/O thread and waits for its result.
  template <typename T>
  Result<T> Call(std::string_view what, std::function<Result<T>()> fn) {
    auto slot = std::make_shared<Slot<T>>();
    commands_.Submit(Command{[slot, fn = std::move(fn)] {
                               if (slot->Begin()) {
                                 slot->Set(fn());
                               }
                             },
                             [slot](const Error& e) { slot->Set(Unexpected(e)); }});
    return Wait(slot, what);
  }

  // One PublishAndAckAsync() in progress (I/O thread only once submitted).
  struct AsyncSettle {
    std::string queue;    // of the input (for errors)
    std::string receipt;  // of the input
    std::vector<Outgoing> outgoing;
    size_t next = 0;  // the output to publish next
    SettleDone done;
  };

  // -- I/O thread: connection and dispatch (io_loop.cc) --
  void IoMain();
  Status Connect();
  Status RunConnected();
  void TearDown(const Error& reason);
  void SleepInterruptibly(Millis d);
  void RunCommands();
  Status DrainFrames(bool* more);
  Status HandleFrame(const amqp_frame_t& frame);
  void OnChannelClose(amqp_channel_t channel, const amqp_channel_close_t& close);

  // -- consumers and receipts (consumers.cc) --
  // Caller side: removes the receipt's tag from the outstanding set; returns the channel of the
  // live consumer (kFailedPrecondition for a stale or already settled receipt).
  Result<amqp_channel_t> Settle(const Message& message, Receipt* receipt);
  // Caller side: starts the queue's consumer, retrying a missing queue (queue_retry_*).
  Status EnsureConsumer(const std::string& queue);
  Status OnDeliver(amqp_channel_t channel, uint64_t tag, bool redelivered);
  void HandOut(uint64_t incarnation, uint64_t tag, Message message);
  void NotifyHandedOut();
  void DropConsumer(amqp_channel_t channel, std::string_view reason);
  bool ConsumerAlive(amqp_channel_t channel, uint64_t incarnation) const {
    auto it = consumers_.find(channel);
    return it != consumers_.end() && it->second.incarnation == incarnation && !conn_.broken();
  }
  void AckNow(amqp_channel_t channel, uint64_t tag, bool multiple = false);
  void SendAcks(std::vector<PendingAck> acks);
  void NackNow(amqp_channel_t channel, uint64_t tag);
  Status StartConsumer(const std::string& queue);
  void RestoreConsumers();
  void StopConsuming();
  void GiveBackBuffered();
  void GiveBack(amqp_channel_t channel, uint64_t incarnation, uint64_t tag, const Message& m);
  Status CheckConsumer(const std::string& queue);

  // -- publisher (publisher.cc) --
  Status EnsurePublishChannel();
  // Publishes and calls done(status) on the I/O thread once the broker confirmed (or failed).
  // `body` is written before this returns (it need not outlive the call).
  void PublishAsync(const std::string& queue, std::string_view body, Headers headers, Millis delay,
                    std::function<void(Status)> done);
  void SendPublish(const std::string& exchange, const std::string& routing_key,
                   const std::string& queue, std::string_view body, const Headers& headers,
                   std::function<void(Status)> done);
  // PublishAndAckAsync on the I/O thread: publishes op->outgoing[op->next], or when all are
  // confirmed settles the input's receipt and queues its ack (io_acks_), then runs op->done.
  void ContinueSettle(const std::shared_ptr<AsyncSettle>& op);
  Status OnReturn(amqp_channel_t channel, const amqp_basic_return_t& ret);
  void OnConfirm(uint64_t tag, bool multiple, bool ok) { confirms_.Resolve(tag, multiple, ok); }
  void FailPending(const Error& error) { confirms_.FailAll(error); }

  // -- queue administration (admin.cc) --
  Status EnsureAdmin();
  Result<amqp_queue_declare_ok_t> PassiveDeclare(const std::string& queue);
  Status DeclareQueue(const std::string& queue, const QueueOptions& options);
  // Declares the holding queue of `queue` for `ms` (see rules.h) once per connection and returns
  // its name: the quorum "<queue>-hold-<ms>", or the classic "<queue>-delay-<ms>" when quorum
  // queues are off or the broker refused the quorum one (classic_holding_).
  Result<std::string> DeclareHoldingQueue(const std::string& queue, int64_t ms);

  const RabbitMqSettings settings_;
  const RabbitMqEndpoint endpoint_;
  const std::string instance_;
  std::string where_;
  std::optional<ManagementClient> management_;

  CommandQueue commands_;
  std::thread io_thread_;
  std::atomic<bool> stop_{false};

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
  int giving_back_ = 0;  // GiveBack publishes waiting for their confirm
  ConfirmTracker confirms_;
  std::map<amqp_channel_t, Consumer> consumers_;
  amqp_channel_t next_channel_ = kFirstConsumerChannel;
  std::set<std::string> holding_declared_;  // on this connection
  bool classic_holding_ = false;            // the broker refused a quorum holding queue
  bool draining_ = false;                   // inside DrainFrames: HandOut defers its notify
  std::vector<QueueState*> to_notify_;      // queues that got deliveries during this drain
  // Acks the I/O thread queued itself (PublishAndAckAsync after the last confirm); written with
  // the next batch of commands, before the loop sleeps again.
  std::vector<PendingAck> io_acks_;
};

}  // namespace asya::transport::rabbitmq
