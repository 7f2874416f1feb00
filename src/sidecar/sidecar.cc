#include "asya/sidecar/sidecar.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <limits>
#include <list>
#include <mutex>
#include <optional>
#include <random>
#include <thread>
#include <utility>
#include <vector>

#include <malloc.h>

#include "asya/base/duration.h"
#include "asya/base/log.h"
#include "asya/envelope/envelope.h"
#include "asya/sidecar/gateway.h"
#include "asya/sidecar/metrics.h"
#include "sidecar/reports.h"

namespace asya::sidecar {
namespace {

using Clock = std::chrono::steady_clock;

constexpr size_t kTrimAfterBytes = 1u << 20;

double Seconds(Clock::duration d) {
  return std::chrono::duration<double>(d).count();
}

double Jitter() {
  thread_local std::mt19937 rng{std::random_device{}()};
  return std::uniform_real_distribution<double>(0.0, 1.0)(rng);
}

// Lifecycle of one received message. Transitions are CAS so that exactly one party settles it.
enum State : int {
  kQueued = 0,     // received, waiting for a worker
  kRunning = 1,    // a worker is validating it / calling the runtime
  kSettling = 2,   // a worker publishes and acks/nacks it; nobody else may touch it
  kAbandoned = 3,  // nacked by the shutdown drain; the worker drops its result
};

struct InFlight {
  transport::Message msg;
  std::atomic<int> state{kQueued};
  bool counted_active = true;  // still holds a runtime slot
  Clock::time_point received_at;
  Clock::time_point last_extended;
};

using InFlightPtr = std::shared_ptr<InFlight>;

}  // namespace

struct Sidecar::Impl : std::enable_shared_from_this<Sidecar::Impl> {
  Settings s;
  transport::Transport& transport;
  protocol::RuntimeClient& runtime;
  Metrics* metrics;
  GatewayReporter* gateway;
  std::string queue;

  std::atomic<bool> stopping{false};
  std::atomic<int> exit_code{0};
  std::atomic<bool> drained{true};

  // Slots and the work queue.
  std::mutex mu;
  std::condition_variable cv;       // held/busy counts reached zero, receiving over (drain)
  std::condition_variable work_cv;  // workers: work queued, a receive may start, exit
  std::condition_variable hb_cv;    // wakes the heartbeat at exit
  std::deque<InFlightPtr> work;
  std::list<InFlightPtr> inflight;  // every held message (heartbeat, drain)
  int active = 0;                   // messages before/in their runtime call
  int held = 0;                     // messages not yet acked/nacked
  int busy_workers = 0;
  bool workers_exit = false;
  bool receiving = false;  // one worker at a time receives (leader/follower)
  int receive_failures = 0;

  // Runtime readiness gate.
  std::mutex gate_mu;
  bool runtime_up = false;
  bool wait_for_exit = false;
  std::atomic<uint64_t> runtime_generation{0};  // +1 each time the runtime is (re)confirmed ready

  // Interruptible sleeps.
  std::mutex sleep_mu;
  std::condition_variable sleep_cv;

  std::vector<std::thread> workers;
  std::thread heartbeat;

  Impl(Settings settings, transport::Transport& t, protocol::RuntimeClient& r, Metrics* m,
       GatewayReporter* g)
      : s(std::move(settings)),
        transport(t),
        runtime(r),
        metrics(m),
        gateway(g),
        queue(transport::QueueName(s.policy.actor)) {}

  // Sleeps up to `d`; returns false if shutdown was requested.
  bool SleepFor(Millis d) {
    std::unique_lock<std::mutex> lock(sleep_mu);
    return !sleep_cv.wait_for(lock, d, [&] { return stopping.load(); });
  }

  void RequestShutdown() {
    if (stopping.exchange(true)) {
      return;
    }
    transport.Interrupt();
    { std::lock_guard<std::mutex> lock(sleep_mu); }
    sleep_cv.notify_all();
    { std::lock_guard<std::mutex> lock(mu); }
    cv.notify_all();
    work_cv.notify_all();
  }

  // ---- runtime readiness ----

  bool WaitForRuntimeAtStartup() {
    const auto deadline = Clock::now() + s.ready_timeout;
    log::Info("waiting for the runtime", {{"socket", s.socket_path}});
    while (!protocol::RuntimeReady(s.socket_path, Millis(2000))) {
      if (Clock::now() >= deadline) {
        log::Error("runtime not ready; giving up",
                   {{"socket", s.socket_path},
                    {"ASYA_RUNTIME_READY_TIMEOUT", FormatGoDuration(s.ready_timeout)}});
        return false;
      }
      if (!SleepFor(s.ready_poll_interval)) {
        return false;
      }
    }
    std::lock_guard<std::mutex> lock(gate_mu);
    runtime_up = true;
    log::Info("runtime ready", {{"socket", s.socket_path}});
    return true;
  }

  // Marks the runtime as gone (timeout, crash): pooled connections are dropped and the next call
  // waits for the runtime to be ready again. After a timeout the runtime exits on its own, so
  // first wait (briefly) for it to disappear, so we do not hand the next message to a dying one.
  // `generation` is the one the failed call started in: failures of calls made to a runtime that
  // has already been replaced do not close the gate again.
  void MarkRuntimeDown(bool after_timeout, uint64_t generation) {
    std::lock_guard<std::mutex> lock(gate_mu);
    if (generation != runtime_generation) {
      return;
    }
    runtime.Reset();
    if (runtime_up) {
      runtime_up = false;
      wait_for_exit = after_timeout;
      log::Warn(after_timeout ? "runtime call timed out; waiting for the runtime to restart"
                              : "runtime unavailable; waiting for it to be ready",
                {{"socket", s.socket_path}});
    }
  }

  // Returns false on shutdown or when the runtime stayed away past ready_timeout.
  bool EnsureRuntimeReady() {
    std::lock_guard<std::mutex> lock(gate_mu);  // one thread polls; the others wait here
    if (runtime_up) {
      return true;
    }
    const Millis poll(100);
    if (wait_for_exit) {
      const auto until = Clock::now() + Millis(2000);
      while (Clock::now() < until && protocol::RuntimeReady(s.socket_path, Millis(200))) {
        if (!SleepFor(Millis(20))) {
          return false;
        }
      }
      wait_for_exit = false;
    }
    const auto deadline = Clock::now() + s.ready_timeout;
    while (!protocol::RuntimeReady(s.socket_path, Millis(2000))) {
      if (stopping) {
        return false;
      }
      if (Clock::now() >= deadline) {
        log::Error("runtime did not come back; shutting down",
                   {{"ASYA_RUNTIME_READY_TIMEOUT", FormatGoDuration(s.ready_timeout)}});
        exit_code = 1;
        RequestShutdown();
        return false;
      }
      if (!SleepFor(poll)) {
        return false;
      }
    }
    runtime.Reset();
    runtime_up = true;
    ++runtime_generation;
    log::Info("runtime ready again", {{"socket", s.socket_path}});
    return true;
  }

  // Calls the runtime; nullopt when the message must be requeued untouched (shutdown).
  std::optional<router::RuntimeOutcome> CallRuntime(std::string_view body) {
    using Kind = router::RuntimeOutcome::Kind;
    router::RuntimeOutcome out;
    for (int connect_failures = 0;;) {
      if (!EnsureRuntimeReady()) {
        return std::nullopt;
      }
      const uint64_t generation = runtime_generation;
      const auto t0 = Clock::now();
      auto r = runtime.Call(body, t0 + s.runtime_timeout);
      if (metrics != nullptr) {
        metrics->RuntimeDuration(Seconds(Clock::now() - t0));
      }
      if (r) {
        auto items =
            envelope::ParseRuntimeResponse(*r, {.max_bytes = std::numeric_limits<size_t>::max()});
        if (!items) {
          out.kind = Kind::kCallError;
          out.error = "failed to parse runtime response: " + items.error().message;
        } else {
          out.items = std::move(*items);
        }
        return out;
      }
      const Error& err = r.error();
      // A runtime that enforces the same timeout exits (EOF here) at about the same moment our
      // deadline fires; a call that lasted the whole timeout is a timeout either way.
      if (err.code == ErrorCode::kDeadlineExceeded || Clock::now() - t0 >= s.runtime_timeout) {
        MarkRuntimeDown(true, generation);
        out.kind = Kind::kTimeout;
        return out;
      }
      if (stopping) {
        return std::nullopt;  // the runtime is going away with us: requeue, do not fail
      }
      // The request never reached the runtime: wait for it and try again (no attempt used).
      if (err.message.rfind("failed to connect", 0) == 0 && ++connect_failures <= 3) {
        MarkRuntimeDown(false, generation);
        continue;
      }
      if (err.code == ErrorCode::kUnavailable) {
        MarkRuntimeDown(false,
                        generation);  // died mid-message: the next message waits for the restart
      }
      out.kind = Kind::kCallError;
      out.error = err.message;
      return out;
    }
  }

  // ---- settling ----

  // Removes a message from the held set (it is about to be acked/nacked).
  void Release(const InFlightPtr& m) {
    std::lock_guard<std::mutex> lock(mu);
    inflight.remove(m);
    if (m->counted_active) {
      m->counted_active = false;
      --active;
    }
    --held;
    if (metrics != nullptr) {
      metrics->ActiveAdd(-1);
    }
    if (held == 0) {
      cv.notify_all();
    }
    if (CanReceive()) {
      work_cv.notify_one();
    }
  }

  // Frees the runtime slot of a message (its runtime call is over).
  void FreeSlot(const InFlightPtr& m) {
    std::lock_guard<std::mutex> lock(mu);
    if (m->counted_active) {
      m->counted_active = false;
      --active;
      if (CanReceive()) {
        work_cv.notify_one();
      }
    }
  }

  // Settle first, then release: the drain must not see the message as gone (and the process
  // exit) while its ack/nack is still on the way.
  void Nack(const InFlightPtr& m, Millis delay, std::string_view why) {
    auto st = transport.Nack(m->msg, delay);
    if (!st) {
      log::Error("nack failed", {{"error", st.error().message}, {"why", std::string(why)}});
    }
    Release(m);
  }

  // Gives a message back unworked because of shutdown (not counted as a delivery where the
  // transport can tell; never dead-lettered or error-ended for it).
  void Requeue(const InFlightPtr& m, std::string_view why) {
    auto st = transport.Requeue(m->msg);
    if (!st) {
      log::Error("requeue failed", {{"error", st.error().message}, {"why", std::string(why)}});
    }
    Release(m);
  }

  // Publishes every message of `d` in order and then acks `m` (one transaction on SQLite). Returns
  // nullopt when all of it happened, or the failure (see transport::SettleFailure).
  std::optional<transport::SettleFailure> PublishAndAck(const InFlightPtr& m,
                                                        const router::Decision& d,
                                                        std::string_view id) {
    std::vector<transport::Outgoing> outgoing;
    outgoing.reserve(d.publishes.size());
    for (const auto& p : d.publishes) {
      outgoing.push_back({.queue = p.queue,
                          .body = p.body,
                          .options = {.delay = p.delay, .headers = p.transport_headers}});
    }
    const auto t0 = Clock::now();
    auto failure = transport.PublishAndAck(m->msg, outgoing);
    const size_t published = failure ? failure->published : d.publishes.size();
    if (metrics != nullptr) {
      const double took = Seconds(Clock::now() - t0);
      for (size_t i = 0; i < published; ++i) {
        const auto& p = d.publishes[i];
        metrics->SendDuration(p.metric_destination, took);
        metrics->Sent(p.metric_destination, router::MessageTypeName(p.type), p.body.size());
      }
    }
    if (failure && !failure->in_ack) {
      log::Error("publish failed", {{"id", std::string(id)},
                                    {"queue", d.publishes[failure->index].queue},
                                    {"error", failure->error.message}});
    } else if (failure) {
      log::Error("ack failed", {{"id", std::string(id)}, {"error", failure->error.message}});
    }
    return failure;
  }

  void Execute(const InFlightPtr& m, const router::Decision& d, std::string_view id) {
    int expected = kRunning;
    if (!m->state.compare_exchange_strong(expected, kSettling)) {
      return;  // nacked by the shutdown drain meanwhile
    }
    FreeSlot(m);
    const router::Decision* done = &d;
    router::Decision fallback;
    std::optional<transport::SettleFailure> failed;
    if (d.action != router::Action::kNack) {
      failed = PublishAndAck(m, d, id);
    }
    if (failed && !failed->in_ack) {
      // Rare path: parse the input again (the hot path freed its copy before publishing).
      const std::string& body = m->msg.body;
      auto parsed = envelope::Parse(body, {.max_bytes = std::numeric_limits<size_t>::max()});
      router::Input in;
      in.body = body;
      in.envelope = parsed ? &*parsed : nullptr;
      in.delivery_count = m->msg.delivery_count;
      in.now = std::chrono::system_clock::now();
      fallback = router::AfterPublishFailure(s.policy, in, d, failed->index, failed->error,
                                             s.publish_failure_nack_delay);
      done = &fallback;
      if (fallback.action != router::Action::kNack) {
        auto again = PublishAndAck(m, fallback, id);
        if (again && !again->in_ack) {
          if (metrics != nullptr) {
            metrics->Failed("error_queue_send_failed");
          }
          Nack(m, s.publish_failure_nack_delay, "error-end publish failed");
          return;
        }
      }
    }
    if (metrics != nullptr) {
      if (!done->failed_reason.empty()) {
        metrics->Failed(done->failed_reason);
      }
      if (!done->processed_status.empty()) {
        metrics->Processed(done->processed_status);
      }
      if (done->runtime_error) {
        metrics->RuntimeError();
      }
    }
    if (done->warn) {
      log::Warn(done->log, {{"id", std::string(id)}});
    } else if (log::Enabled(log::Level::kDebug)) {
      log::Debug(done->log, {{"id", std::string(id)}});
    }
    if (done->action == router::Action::kNack) {
      Nack(m, done->nack_delay, done->log);
      return;
    }
    Release(m);  // acked above (or the ack failed and was logged: the broker redelivers it)
  }

  void Process(const InFlightPtr& m) {
    int expected = kQueued;
    if (!m->state.compare_exchange_strong(expected, kRunning)) {
      return;
    }
    const std::string& body = m->msg.body;
    router::Decision d;
    std::string id;
    {
      auto parsed = envelope::Parse(body, {.max_bytes = std::numeric_limits<size_t>::max()});
      const envelope::Envelope* env = parsed ? &*parsed : nullptr;
      std::string parse_error = parsed ? std::string() : parsed.error().message;
      router::Input in;
      in.body = body;
      in.envelope = env;
      in.parse_error = parse_error;
      in.delivery_count = m->msg.delivery_count;
      in.now = std::chrono::system_clock::now();
      in.jitter = Jitter();
      d = router::Decide(s.policy, in);
      if (env != nullptr) {
        id = env->id;
      }
      if (d.action != router::Action::kCallRuntime) {
        Report(gateway, s.policy, env, body.size()).AfterPrecheck(d);
      }

      if (d.action == router::Action::kCallRuntime) {
        // A large payload is not kept twice (body + parsed copy) through the runtime call: the
        // success path builds its outputs from the runtime's results and needs only id, route,
        // headers and deadline of the input. Other outcomes carry the original payload, so they
        // are decided again from a complete parse (rare, and only for large messages).
        const bool light = parsed && body.size() >= kTrimAfterBytes;
        if (light) {
          std::string().swap(parsed->payload_json);
        }
        Report reporter(gateway, s.policy, env, body.size());
        reporter.BeforeCall();
        const auto t0 = Clock::now();
        auto outcome = CallRuntime(body);
        if (!outcome) {
          expected = kRunning;
          if (m->state.compare_exchange_strong(expected, kSettling)) {
            Requeue(m, "shutdown");
          }
          return;
        }
        in.outcome = &*outcome;
        d = router::Decide(s.policy, in);
        if (light && d.processed_status != "success" && d.processed_status != "end_consumed") {
          if (auto full =
                  envelope::Parse(body, {.max_bytes = std::numeric_limits<size_t>::max()})) {
            *parsed = std::move(*full);
            d = router::Decide(s.policy, in);
          }
        }
        reporter.AfterCall(*outcome, d, Clock::now() - t0);
      }
    }  // the parsed input and the runtime's answer are freed before publishing
    Execute(m, d, id);
    if (metrics != nullptr) {
      metrics->ProcessingDuration(Seconds(Clock::now() - m->received_at));
    }
  }

  // ---- threads ----

  // Under mu: a worker may start a receive (no receive running, a runtime slot free, fewer than
  // 2 x concurrency messages held).
  bool CanReceive() const {
    return !stopping && !receiving && active < s.concurrency && held < 2 * s.concurrency;
  }

  void Handle(const InFlightPtr& m) {
    if (stopping) {
      int expected = kQueued;
      if (m->state.compare_exchange_strong(expected, kSettling)) {
        Requeue(m, "shutdown before processing");
      }
    } else {
      Process(m);
    }
  }

  // Called without mu by the worker holding the receive role. Returns the received messages
  // (empty after a timeout, an error or an interrupt).
  std::vector<transport::Message> ReceiveBatch(size_t want) {
    transport::ReceiveOptions opts;
    opts.max_messages = want;
    opts.wait = s.receive_wait;
    opts.visibility = s.visibility;
    const auto t0 = Clock::now();
    auto r = transport.Receive(queue, opts);
    if (!r) {
      int failures = ++receive_failures;  // only the receive-role holder touches it
      Millis delay = std::min(s.receive_backoff_max, Millis(s.receive_backoff_initial.count()
                                                            << std::min(failures - 1, 20)));
      log::Warn(
          "receive failed; backing off",
          {{"queue", queue}, {"error", r.error().message}, {"retry_in", FormatGoDuration(delay)}});
      SleepFor(delay);
      return {};
    }
    receive_failures = 0;
    if (metrics != nullptr && !r->empty()) {
      metrics->ReceiveDuration(Seconds(Clock::now() - t0));
    }
    return std::move(*r);
  }

  // Leader/follower: an idle worker takes the receive role, keeps the first message it receives
  // and queues the rest for the others, so a message received alone is processed by the thread
  // that received it (no cross-thread wake-up on the message path).
  void WorkerLoop() {
    std::unique_lock<std::mutex> lock(mu);
    while (true) {
      work_cv.wait(lock, [&] { return !work.empty() || workers_exit || CanReceive(); });
      InFlightPtr mine;
      if (!work.empty()) {
        mine = std::move(work.front());
        work.pop_front();
        ++busy_workers;
      } else if (workers_exit) {
        return;
      } else {
        receiving = true;
        ++busy_workers;
        const auto want =
            static_cast<size_t>(std::min({s.concurrency - active, 2 * s.concurrency - held, 10}));
        lock.unlock();
        auto batch = ReceiveBatch(want);
        const auto now = Clock::now();
        lock.lock();
        receiving = false;
        for (auto& msg : batch) {
          auto m = std::make_shared<InFlight>();
          if (metrics != nullptr) {
            metrics->Received(msg.body.size());
            metrics->ActiveAdd(1);
          }
          m->msg = std::move(msg);
          m->received_at = now;
          m->last_extended = now;
          inflight.push_back(m);
          ++active;
          ++held;
          if (!mine) {
            mine = std::move(m);
          } else {
            work.push_back(std::move(m));
          }
        }
        if (stopping) {
          cv.notify_all();  // the drain waits for the receive to be over
        }
      }
      // Pass the baton: queued work or a possible receive for one more worker.
      if (!work.empty() || CanReceive()) {
        if (work.size() > 1) {
          work_cv.notify_all();
        } else {
          work_cv.notify_one();
        }
      }
      if (mine) {
        lock.unlock();
        const size_t bytes = mine->msg.body.size();
        Handle(mine);
        mine.reset();
        if (bytes >= kTrimAfterBytes) {
          // Give the pages of a large message's smaller buffers (frame growth steps, sqlite's
          // copies) back to the OS; the large buffers themselves are mmapped (see main.cc).
          malloc_trim(0);
        }
        lock.lock();
      }
      if (--busy_workers == 0) {
        cv.notify_all();
      }
    }
  }

  void HeartbeatLoop() {
    const Millis interval = std::max(Millis(100), s.visibility / 3);
    std::unique_lock<std::mutex> lock(mu);
    while (!workers_exit) {
      hb_cv.wait_for(lock, interval);
      const auto now = Clock::now();
      std::vector<InFlightPtr> due;
      for (const auto& m : inflight) {
        if (now - m->last_extended >= interval) {
          m->last_extended = now;
          due.push_back(m);
        }
      }
      if (due.empty()) {
        continue;
      }
      lock.unlock();
      for (const auto& m : due) {
        if (m->state.load() >= kAbandoned) {
          continue;
        }
        auto st = transport.ExtendVisibility(m->msg, s.visibility);
        if (!st) {
          log::Warn("visibility extension failed", {{"error", st.error().message}});
        }
      }
      lock.lock();
    }
  }

  // Waits for held messages to settle; past the grace period nacks what is left.
  void Drain() {
    const auto deadline = Clock::now() + s.shutdown_timeout;
    std::unique_lock<std::mutex> lock(mu);
    cv.wait(lock, [&] { return !receiving; });  // Interrupt() ended it; its messages are held
    if (held > 0) {
      log::Info("draining in-flight messages",
                {{"held", held}, {"grace", FormatGoDuration(s.shutdown_timeout)}});
    }
    cv.wait_until(lock, deadline, [&] { return held == 0; });
    if (held > 0) {
      std::vector<InFlightPtr> left(inflight.begin(), inflight.end());
      lock.unlock();
      int nacked = 0;
      for (const auto& m : left) {
        int st = m->state.load();
        if ((st == kQueued || st == kRunning) && m->state.compare_exchange_strong(st, kAbandoned)) {
          Requeue(m, "shutdown grace period over");
          ++nacked;
        }
      }
      log::Warn("shutdown grace period over; requeued unfinished messages", {{"count", nacked}});
      lock.lock();
      // Messages being published/acked right now get a moment more to settle.
      cv.wait_for(lock, Millis(2000), [&] { return held == 0; });
    }
    workers_exit = true;
    cv.notify_all();
    work_cv.notify_all();
    hb_cv.notify_all();
  }

  int Run() {
    if (!WaitForRuntimeAtStartup()) {
      return stopping && exit_code == 0 ? 0 : 1;
    }
    const int n_workers = 2 * s.concurrency;
    workers.reserve(static_cast<size_t>(n_workers));
    for (int i = 0; i < n_workers; ++i) {
      // Each worker owns a reference: a worker detached below may still be in its runtime call
      // after the Sidecar is destroyed, and then frees the state itself when it returns.
      workers.emplace_back([self = shared_from_this()] { self->WorkerLoop(); });
    }
    heartbeat = std::thread([this] { HeartbeatLoop(); });
    log::Info("consuming", {{"queue", queue}, {"concurrency", s.concurrency}});
    {
      std::unique_lock<std::mutex> lock(sleep_mu);
      sleep_cv.wait(lock, [&] { return stopping.load(); });
    }
    Drain();
    heartbeat.join();
    // Join workers that finished; a worker stuck in a runtime call past the grace period is
    // detached (its message was nacked) and the caller exits without running destructors.
    {
      std::unique_lock<std::mutex> lock(mu);
      cv.wait_for(lock, Millis(100), [&] { return busy_workers == 0; });
      drained = busy_workers == 0;
    }
    for (auto& w : workers) {
      if (drained) {
        w.join();
      } else {
        w.detach();
      }
    }
    workers.clear();
    log::Info("sidecar stopped", {{"exit_code", exit_code.load()}});
    return exit_code;
  }
};

Sidecar::Sidecar(Settings settings, transport::Transport& transport,
                 protocol::RuntimeClient& runtime, Metrics* metrics, GatewayReporter* gateway)
    : impl_(std::make_shared<Impl>(std::move(settings), transport, runtime, metrics, gateway)) {
  impl_->s.concurrency = std::max(1, impl_->s.concurrency);
}

Sidecar::~Sidecar() {
  if (impl_ && impl_->drained) {
    impl_->RequestShutdown();
  }
}

int Sidecar::Run() {
  return impl_->Run();
}

void Sidecar::Shutdown() {
  impl_->RequestShutdown();
}

bool Sidecar::Drained() const {
  return impl_->drained;
}

}  // namespace asya::sidecar
