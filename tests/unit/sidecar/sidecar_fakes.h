// Test doubles of the sidecar's collaborators: an in-memory Transport, a scripted runtime
// (protocol::RuntimeCaller), a recording MetricsSink and a recording GatewaySink. All of them are
// thread-safe, so they serve both the message-by-message tests (Sidecar::ProcessOne with a
// ManualClock) and the tests of the threaded loop (Sidecar::Run).
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "asya/base/result.h"
#include "asya/protocol/runtime_client.h"
#include "asya/sidecar/gateway_sink.h"
#include "asya/sidecar/metrics_sink.h"
#include "asya/transport/transport.h"

namespace asya::sidecar::testing {

using json = nlohmann::json;

// Queues in memory. Publish appends to a queue (and to the publish log); Receive takes from it.
// `fail_publish` decides per publish whether it fails (an error) or goes through (nullopt).
class FakeTransport : public transport::Transport {
 public:
  struct Published {
    std::string queue;
    std::string body;
    transport::PublishOptions options;
    json Json() const { return json::parse(body); }
  };
  enum class SettleKind { kAck, kNack, kRequeue };
  struct Settled {
    std::string receipt;
    SettleKind kind;
    Millis delay{0};
  };
  using PublishHook = std::function<std::optional<Error>(std::string_view queue)>;

  // Makes a received message (as Receive would hand it out).
  transport::Message Message(std::string body, int64_t delivery_count = 1) {
    std::lock_guard<std::mutex> lock(mu_);
    transport::Message m;
    m.queue = "asya-a";
    m.body = std::move(body);
    m.receipt = "r" + std::to_string(++next_receipt_);
    m.delivery_count = delivery_count;
    Hold(m);
    return m;
  }

  // Like the SQLite transport: keeps the body of every held message (KeepsHeldBodies) and hands
  // it out again (ReadBody); nack and requeue put the kept body back. Set before use.
  void KeepBodies(bool keep) { keep_bodies_ = keep; }
  void FailReadBody(bool fail) { fail_read_body_ = fail; }
  int BodyReads() const { return body_reads_; }

  // Called at the start of every Publish, outside the fake's lock (so Receive can run meanwhile);
  // set before the sidecar runs.
  void SetPublishGate(std::function<void(std::string_view queue)> gate) {
    publish_gate_ = std::move(gate);
  }
  void SetPublishHook(PublishHook hook) {
    std::lock_guard<std::mutex> lock(mu_);
    fail_publish_ = std::move(hook);
  }
  void FailReceives(int n) { receive_failures_ = n; }
  // Like the SQLite transport: PublishAckAndReceive receives (without waiting) in the same step
  // as the settle. Off by default (the Transport default: it settles only). Set before use.
  void FoldReceives(bool fold) { fold_receives_ = fold; }
  // Called with every batch handed out (by Receive or by a folded receive), outside the fake's
  // lock; set before the sidecar runs.
  void SetReceiveHook(std::function<void(const std::vector<transport::Message>&)> hook) {
    receive_hook_ = std::move(hook);
  }
  // The max_messages of every PublishAckAndReceive call, in call order.
  std::vector<size_t> FoldRequests() const {
    std::lock_guard<std::mutex> lock(mu_);
    return fold_requests_;
  }
  // The most messages ever held at once (handed out by a receive and not yet settled).
  int MaxHeld() const {
    std::lock_guard<std::mutex> lock(mu_);
    return max_held_;
  }

  // Like RabbitMQ (SettlesAsync): PublishAndAckAsync only records the settle; the test ends it
  // with FinishSettle(), on a thread of its own as the transport's I/O thread would. Set before
  // the sidecar runs.
  void SettleAsynchronously(bool on) { settle_async_ = on; }
  // SettlesAsync() is true, but PublishAndAckAsync settles at once on the calling thread (what a
  // transport may do): for tests of the asynchronous runtime path that settle many messages.
  void SettleAsynchronouslyAtOnce() {
    settle_async_ = true;
    settle_at_once_ = true;
  }
  size_t PendingSettles() const {
    std::lock_guard<std::mutex> lock(mu_);
    return pending_settles_.size();
  }
  // Waits (real time, bounded) until `n` async settles are pending.
  bool WaitPendingSettles(size_t n, std::chrono::seconds limit = std::chrono::seconds(30)) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, limit, [&] { return pending_settles_.size() >= n; });
  }
  // Ends the oldest pending async settle and calls its `done` on this thread: publishes and acks
  // as PublishAndAck does, or with `failure` publishes nothing and reports outgoing[0] as not
  // published with that error. False when none is pending.
  bool FinishSettle(std::optional<Error> failure = std::nullopt) {
    PendingSettle p;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (pending_settles_.empty()) {
        return false;
      }
      p = std::move(pending_settles_.front());
      pending_settles_.pop_front();
    }
    if (failure) {
      p.done(transport::SettleFailure{
          .in_ack = false, .index = 0, .published = 0, .error = std::move(*failure)});
    } else {
      p.done(PublishAndAck(p.message, p.outgoing));
    }
    return true;
  }

  std::vector<Published> Publishes() const {
    std::lock_guard<std::mutex> lock(mu_);
    return published_;
  }
  // Bodies published to `queue`, in order.
  std::vector<json> To(std::string_view queue) const {
    std::vector<json> out;
    for (const auto& p : Publishes()) {
      if (p.queue == queue) {
        out.push_back(p.Json());
      }
    }
    return out;
  }
  std::vector<Settled> Settles() const {
    std::lock_guard<std::mutex> lock(mu_);
    return settled_;
  }
  int Count(SettleKind kind) const {
    int n = 0;
    for (const auto& s : Settles()) {
      n += s.kind == kind ? 1 : 0;
    }
    return n;
  }
  int Acks() const { return Count(SettleKind::kAck); }
  int Nacks() const { return Count(SettleKind::kNack); }
  int Requeues() const { return Count(SettleKind::kRequeue); }
  int Extensions() const {
    std::lock_guard<std::mutex> lock(mu_);
    return extensions_;
  }
  // Waits (real time, bounded) until `n` messages have been settled.
  bool WaitSettled(size_t n, std::chrono::seconds limit = std::chrono::seconds(30)) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, limit, [&] { return settled_.size() >= n; });
  }
  // Waits (real time, bounded) until the heartbeat has extended visibility `n` times.
  bool WaitExtensions(int n, std::chrono::seconds limit = std::chrono::seconds(30)) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, limit, [&] { return extensions_ >= n; });
  }
  // Queues a message for Receive (as if another actor had published it).
  void Enqueue(std::string_view queue, std::string body) {
    std::lock_guard<std::mutex> lock(mu_);
    transport::Message m;
    m.body = std::move(body);
    queues_[std::string(queue)].push_back(std::move(m));
    cv_.notify_all();
  }
  size_t Ready(std::string_view queue) const {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = queues_.find(std::string(queue));
    return it == queues_.end() ? 0 : it->second.size();
  }

  // ---- transport::Transport ----
  std::string_view Name() const override { return "fake"; }
  Result<std::vector<transport::Message>> Receive(std::string_view queue,
                                                  const transport::ReceiveOptions& o) override {
    if (receive_failures_ > 0) {
      --receive_failures_;
      return MakeError(ErrorCode::kUnavailable, "injected receive failure");
    }
    std::vector<transport::Message> out;
    {
      std::unique_lock<std::mutex> lock(mu_);
      auto& q = queues_[std::string(queue)];
      cv_.wait_for(lock, o.wait, [&] { return interrupted_ || !q.empty(); });
      out = TakeLocked(queue, o.max_messages);
    }
    if (receive_hook_ && !out.empty()) {
      receive_hook_(out);
    }
    return out;
  }
  std::optional<transport::SettleFailure> PublishAckAndReceive(
      const transport::Message& m, std::span<const transport::Outgoing> out,
      transport::SettleReceive& also) override {
    also.received.clear();
    {
      std::lock_guard<std::mutex> lock(mu_);
      fold_requests_.push_back(also.max_messages);
    }
    auto failure = PublishAndAck(m, out);
    if (failure || !fold_receives_) {
      return failure;
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      also.received = TakeLocked(also.queue, also.max_messages);
    }
    if (receive_hook_ && !also.received.empty()) {
      receive_hook_(also.received);
    }
    return std::nullopt;
  }
  Status Publish(std::string_view queue, std::string_view body,
                 const transport::PublishOptions& o) override {
    if (publish_gate_) {
      publish_gate_(queue);
    }
    std::lock_guard<std::mutex> lock(mu_);
    if (fail_publish_) {
      if (auto err = fail_publish_(queue)) {
        return tl::unexpected(*err);
      }
    }
    published_.push_back({std::string(queue), std::string(body), o});
    transport::Message m;
    m.body = std::string(body);
    queues_[std::string(queue)].push_back(std::move(m));
    cv_.notify_all();
    return {};
  }
  Status Ack(const transport::Message& m) override { return Settle(m, SettleKind::kAck, {}); }
  void PublishAndAckAsync(const transport::Message& m,
                          std::span<const transport::Outgoing> outgoing, SettleDone done) override {
    if (!settle_async_ || settle_at_once_) {
      done(PublishAndAck(m, outgoing));
      return;
    }
    std::lock_guard<std::mutex> lock(mu_);
    pending_settles_.push_back(
        {m, std::vector<transport::Outgoing>(outgoing.begin(), outgoing.end()), std::move(done)});
    cv_.notify_all();
  }
  bool SettlesAsync() const override { return settle_async_; }
  Status Nack(const transport::Message& m, Millis delay) override {
    return Settle(m, SettleKind::kNack, delay);
  }
  Status Requeue(const transport::Message& m) override {
    return Settle(m, SettleKind::kRequeue, {});
  }
  Status ExtendVisibility(const transport::Message&, Millis) override {
    std::lock_guard<std::mutex> lock(mu_);
    ++extensions_;
    cv_.notify_all();
    return {};
  }
  bool KeepsHeldBodies() const override { return keep_bodies_; }
  Result<std::string> ReadBody(const transport::Message& m) override {
    std::lock_guard<std::mutex> lock(mu_);
    ++body_reads_;
    auto it = held_bodies_.find(m.receipt);
    if (!keep_bodies_ || fail_read_body_ || it == held_bodies_.end()) {
      return MakeError(ErrorCode::kFailedPrecondition, "read body: stale receipt " + m.receipt);
    }
    return it->second;
  }
  void Interrupt() override {
    std::lock_guard<std::mutex> lock(mu_);
    interrupted_ = true;
    cv_.notify_all();
  }
  void Quiesce(Millis max_wait) override {
    std::lock_guard<std::mutex> lock(mu_);
    quiesced_after_interrupt_ = interrupted_;
    quiesce_wait_ = max_wait;
  }
  // Whether Quiesce() was called after Interrupt(), and with which bound (zero: never called).
  bool QuiescedAfterInterrupt() const {
    std::lock_guard<std::mutex> lock(mu_);
    return quiesced_after_interrupt_;
  }
  Millis QuiesceWait() const {
    std::lock_guard<std::mutex> lock(mu_);
    return quiesce_wait_;
  }
  Status CreateQueue(std::string_view q, const transport::QueueOptions&) override {
    std::lock_guard<std::mutex> lock(mu_);
    queues_[std::string(q)];
    return {};
  }
  Status DeleteQueue(std::string_view q) override {
    std::lock_guard<std::mutex> lock(mu_);
    queues_.erase(std::string(q));
    return {};
  }
  Result<bool> QueueExists(std::string_view q) override {
    std::lock_guard<std::mutex> lock(mu_);
    return queues_.count(std::string(q)) > 0;
  }
  Result<transport::QueueDepth> Depth(std::string_view q) override {
    return transport::QueueDepth{.ready = static_cast<int64_t>(Ready(q)), .inflight = 0};
  }
  Result<std::vector<std::string>> ListQueues() override {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<std::string> out;
    for (const auto& [name, q] : queues_) {
      out.push_back(name);
    }
    return out;
  }
  Status Purge(std::string_view q) override {
    std::lock_guard<std::mutex> lock(mu_);
    queues_[std::string(q)].clear();
    return {};
  }

 private:
  Status Settle(const transport::Message& m, SettleKind kind, Millis delay) {
    std::lock_guard<std::mutex> lock(mu_);
    if (kind != SettleKind::kAck) {
      transport::Message back = m;
      back.delivery_count += kind == SettleKind::kNack ? 1 : 0;
      if (auto it = held_bodies_.find(m.receipt); keep_bodies_ && it != held_bodies_.end()) {
        back.body = it->second;  // the holder may have freed its copy
      }
      queues_[m.queue].push_back(std::move(back));
    }
    held_bodies_.erase(m.receipt);
    held_ -= static_cast<int>(held_receipts_.erase(m.receipt));
    settled_.push_back({m.receipt, kind, delay});
    cv_.notify_all();
    return {};
  }

  // Under mu_: takes up to `max` ready messages of `queue` (none after Interrupt()).
  std::vector<transport::Message> TakeLocked(std::string_view queue, size_t max) {
    auto& q = queues_[std::string(queue)];
    std::vector<transport::Message> out;
    while (!interrupted_ && !q.empty() && out.size() < max) {
      transport::Message m = std::move(q.front());
      q.pop_front();
      m.queue = std::string(queue);
      m.receipt = "r" + std::to_string(++next_receipt_);
      Hold(m);
      held_receipts_.insert(m.receipt);
      max_held_ = std::max(max_held_, ++held_);
      out.push_back(std::move(m));
    }
    return out;
  }

  void Hold(const transport::Message& m) {  // under mu_
    if (keep_bodies_) {
      held_bodies_[m.receipt] = m.body;
    }
  }

  struct PendingSettle {
    transport::Message message;
    std::vector<transport::Outgoing> outgoing;  // views the sidecar keeps valid until `done`
    SettleDone done;
  };

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::string, std::deque<transport::Message>, std::less<>> queues_;
  std::deque<PendingSettle> pending_settles_;
  std::atomic<bool> settle_async_{false};
  std::atomic<bool> settle_at_once_{false};
  std::map<std::string, std::string> held_bodies_;  // by receipt, when keep_bodies_
  std::atomic<bool> keep_bodies_{false};
  std::atomic<bool> fail_read_body_{false};
  std::atomic<int> body_reads_{0};
  std::vector<Published> published_;
  std::vector<Settled> settled_;
  PublishHook fail_publish_;
  std::function<void(std::string_view)> publish_gate_;
  std::atomic<int> receive_failures_{0};
  std::atomic<bool> fold_receives_{false};
  std::function<void(const std::vector<transport::Message>&)> receive_hook_;
  std::vector<size_t> fold_requests_;
  std::set<std::string> held_receipts_;  // handed out by Receive/a folded receive, not settled
  int held_ = 0;
  int max_held_ = 0;
  int extensions_ = 0;
  bool interrupted_ = false;
  bool quiesced_after_interrupt_ = false;
  Millis quiesce_wait_{0};
  int next_receipt_ = 0;
};

// A runtime scripted by `handler`: request body -> response frame body or error. Ready() answers
// from `ready` (or from `ready_hook` when set).
class FakeRuntime : public protocol::RuntimeCaller {
 public:
  using Handler = std::function<Result<std::string>(std::string_view request,
                                                    std::chrono::steady_clock::time_point)>;

  explicit FakeRuntime(Handler handler = nullptr) : handler_(std::move(handler)) {}
  ~FakeRuntime() override {
    std::vector<std::thread> answering;
    {
      std::lock_guard<std::mutex> lock(mu_);
      answering.swap(answering_);
    }
    for (auto& t : answering) {
      t.join();
    }
  }
  FakeRuntime(const FakeRuntime&) = delete;
  FakeRuntime& operator=(const FakeRuntime&) = delete;

  // Like the real client (CallsAsync): CallAsync() returns at once and the handler runs, and its
  // answer is delivered, on a thread of its own. Set before the sidecar runs.
  void AnswerAsynchronously(bool on) { async_ = on; }
  // Whether the calling thread is one that delivers an asynchronous answer.
  static bool OnAnswerThread() { return t_answering; }
  std::atomic<int> async_calls{0};
  std::atomic<int> calls_started_answering{0};  // CallAsync() from a thread delivering an answer
  // Most calls in the handler at once.
  int MaxConcurrentCalls() const { return max_running_; }
  void SetHandler(Handler handler) {
    std::lock_guard<std::mutex> lock(mu_);
    handler_ = std::move(handler);
  }

  std::atomic<bool> ready{true};
  std::function<bool()> ready_hook;  // set before the sidecar runs
  std::atomic<int> ready_probes{0};
  std::atomic<int> resets{0};
  std::atomic<int> calls{0};

  bool Ready(std::chrono::milliseconds) override {
    ++ready_probes;
    return ready_hook ? ready_hook() : ready.load();
  }
  Result<std::string> Call(std::string_view request,
                           std::chrono::steady_clock::time_point deadline) override {
    ++calls;
    Handler h;
    {
      std::lock_guard<std::mutex> lock(mu_);
      h = handler_;
      max_running_ = std::max(max_running_.load(), ++running_);
    }
    auto response = h(request, deadline);
    --running_;
    return response;
  }
  bool CallsAsync() const override { return async_; }
  void CallAsync(std::string_view request, std::chrono::steady_clock::time_point deadline,
                 CallDone done) override {
    if (!async_) {
      done(Call(request, deadline));
      return;
    }
    ++async_calls;
    if (t_answering) {
      ++calls_started_answering;
    }
    std::lock_guard<std::mutex> lock(mu_);
    answering_.emplace_back([this, request, deadline, done = std::move(done)] {
      t_answering = true;
      done(Call(request, deadline));
    });
  }
  // The request is copied before the handler runs, and released (request_done) when the handler
  // answered, as the real client does once the answer starts: a sidecar that used a released body
  // afterwards would send or publish garbage here.
  Result<std::string> CallReleasing(std::string_view request,
                                    std::chrono::steady_clock::time_point deadline,
                                    const std::function<void()>& request_done) override {
    ++releasing_calls;
    const std::string copy(request);
    auto response = Call(copy, deadline);
    if (response) {
      request_done();
    }
    return response;
  }
  std::atomic<int> releasing_calls{0};
  void Reset() override { ++resets; }

 private:
  static inline thread_local bool t_answering = false;
  std::mutex mu_;
  Handler handler_;
  std::atomic<bool> async_{false};
  std::atomic<int> running_{0};
  std::atomic<int> max_running_{0};
  std::vector<std::thread> answering_;  // guarded by mu_
};

// Payload-mode runtime answer: the payload unchanged, route.current + 1.
inline std::string EchoResponse(std::string_view request) {
  json env = json::parse(request);
  json route = env["route"];
  route["current"] = route["current"].get<int64_t>() + 1;
  return json::array({{{"payload", env["payload"]}, {"route", route}}}).dump();
}
inline Result<std::string> Echo(std::string_view request, std::chrono::steady_clock::time_point) {
  return EchoResponse(request);
}

// Counts every call by its labels, e.g. Count("failed", "runtime_error").
class FakeMetrics : public MetricsSink {
 public:
  int Count(const std::string& what, const std::string& labels = "") const {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = counts_.find(what + "|" + labels);
    return it == counts_.end() ? 0 : it->second;
  }
  int Active() const { return active_; }
  // Waits (real time, bounded) until Count(what, labels) >= n.
  bool WaitCount(const std::string& what, int n,
                 std::chrono::seconds limit = std::chrono::seconds(30)) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, limit, [&] { return counts_[what + "|"] >= n; });
  }

  void Received(size_t) override { Add("received", ""); }
  void ReceiveDuration(double) override { Add("receive_duration", ""); }
  void Processed(std::string_view status) override { Add("processed", status); }
  void Sent(std::string_view destination, std::string_view type, size_t) override {
    Add("sent", std::string(destination) + "," + std::string(type));
  }
  void SendDuration(std::string_view destination, double) override {
    Add("send_duration", destination);
  }
  void Failed(std::string_view reason) override { Add("failed", reason); }
  void RuntimeError() override { Add("runtime_errors", ""); }
  void ProcessingDuration(double) override { Add("processing_duration", ""); }
  void RuntimeDuration(double) override { Add("runtime_duration", ""); }
  void ActiveAdd(int delta) override { active_ += delta; }

 private:
  void Add(std::string_view what, std::string_view labels) {
    std::lock_guard<std::mutex> lock(mu_);
    ++counts_[std::string(what) + "|" + std::string(labels)];
    cv_.notify_all();
  }
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::string, int> counts_;
  std::atomic<int> active_{0};
};

class FakeGateway : public GatewaySink {
 public:
  struct Posted {
    PostKind kind;
    std::string path;
    json body;  // discarded (is_discarded()) when the body was not valid JSON
  };
  void Post(PostKind kind, std::string path, std::string body) override {
    std::lock_guard<std::mutex> lock(mu_);
    posts_.push_back({kind, std::move(path), json::parse(body, nullptr, false)});
  }
  std::vector<Posted> Posts() const {
    std::lock_guard<std::mutex> lock(mu_);
    return posts_;
  }
  // Flush(id) calls, each with how many posts came before it; `on_flush` runs in each.
  void Flush(std::string_view id) override {
    std::function<void()> hook;
    {
      std::lock_guard<std::mutex> lock(mu_);
      flushes_.emplace_back(std::string(id), posts_.size());
      hook = on_flush;
    }
    if (hook) {
      hook();
    }
  }
  std::vector<std::pair<std::string, size_t>> Flushes() const {
    std::lock_guard<std::mutex> lock(mu_);
    return flushes_;
  }
  std::function<void()> on_flush;  // set before the sidecar runs

 private:
  mutable std::mutex mu_;
  std::vector<Posted> posts_;
  std::vector<std::pair<std::string, size_t>> flushes_;
};

}  // namespace asya::sidecar::testing
