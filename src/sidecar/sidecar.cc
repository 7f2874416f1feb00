#include "asya/sidecar/sidecar.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
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
#include "sidecar/parsed_input.h"
#include "sidecar/reports.h"

namespace asya::sidecar {
namespace {

using MonoTime = Clock::MonoTime;

constexpr size_t kTrimAfterBytes = kDropPayloadBytes;

double Seconds(Clock::Duration d) {
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
  bool large = false;          // body >= kDropPayloadBytes (counted in held_large)
  MonoTime received_at;
  MonoTime last_extended;
};

using InFlightPtr = std::shared_ptr<InFlight>;

// The sidecar whose worker loop runs on this thread (nullptr elsewhere). A worker that settles a
// message goes back to its loop right after, and there takes the next queued message or starts
// the plain receive itself: it need not wake another worker for that (each wake-up is a context
// switch, the dearest thing a sidecar does per hop).
thread_local const void* t_worker_of = nullptr;

// On a thread that is delivering a runtime answer to a sidecar (AsyncCallDone), where that
// sidecar puts the messages a settle took (see Execute, EndFoldedReceive): the thread starts
// their calls itself once the settle is over, instead of waking a worker for each.
struct AnswerThread {
  const void* sidecar = nullptr;
  std::vector<std::shared_ptr<InFlight>>* folded = nullptr;
};
thread_local AnswerThread t_answering;

}  // namespace

struct Sidecar::Impl : std::enable_shared_from_this<Sidecar::Impl> {
  Settings s;
  transport::Transport& transport;
  protocol::RuntimeCaller& runtime;
  MetricsSink* metrics;
  GatewaySink* gateway;
  Clock& clock;
  std::string queue;

  std::atomic<bool> stopping{false};
  std::atomic<int> exit_code{0};
  std::atomic<bool> drained{true};

  // Slots and the work queue.
  std::mutex mu;
  std::condition_variable cv;       // held/busy counts reached zero, receives over (drain)
  std::condition_variable work_cv;  // workers: work queued, a receive may start, exit
  std::condition_variable hb_cv;    // wakes the heartbeat at exit
  std::deque<InFlightPtr> work;
  std::deque<std::function<void()>> tasks;  // fallbacks of failed async settles (may block)
  std::list<InFlightPtr> inflight;          // every held message (heartbeat, drain)
  int active = 0;                           // messages before/in their runtime call
  int held = 0;                             // messages not yet acked/nacked
  int held_large = 0;                       // of which bodies >= kDropPayloadBytes
  int busy_workers = 0;
  bool workers_exit = false;
  // Receives in progress reserve the messages they may take: `reserved` counts them, so
  // active + reserved <= concurrency and held + reserved <= HeldLimit() when each one starts (see
  // Room()). Plain (blocking) receives are one at a time (leader/follower); receives folded into
  // settles may overlap each other, so settles that overlap each fold one (see FreeSlot).
  int reserved = 0;
  int receives = 0;              // receives in progress, folded or plain (the drain waits for 0)
  bool plain_receiving = false;  // a worker is in a plain receive (ReceiveBatch)
  bool workers_started = false;  // Run() started the workers (ProcessOne() alone has none)
  // Runtime calls may go the asynchronous way (CallsAsync); set by Run() before any worker starts.
  bool async_calls_enabled = false;
  int calls_in_progress = 0;  // asynchronous calls not over yet (StartAsyncCall to EndCall)
  static constexpr int kMaxReceiveBatch = 10;
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

  Impl(Settings settings, transport::Transport& t, protocol::RuntimeCaller& r, MetricsSink* m,
       GatewaySink* g, Clock& c)
      : s(std::move(settings)),
        transport(t),
        runtime(r),
        metrics(m),
        gateway(g),
        clock(c),
        queue(transport::QueueName(s.policy.actor)) {}

  // Sleeps up to `d`; returns false if shutdown was requested.
  bool SleepFor(Millis d) {
    std::unique_lock<std::mutex> lock(sleep_mu);
    return !clock.WaitFor(lock, sleep_cv, d, [&] { return stopping.load(); });
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
    const auto deadline = clock.Now() + s.ready_timeout;
    log::Info("waiting for the runtime", {{"socket", s.socket_path}});
    while (!runtime.Ready(Millis(2000))) {
      if (clock.Now() >= deadline) {
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
      const auto until = clock.Now() + Millis(2000);
      while (clock.Now() < until && runtime.Ready(Millis(200))) {
        if (!SleepFor(Millis(20))) {
          return false;
        }
      }
      wait_for_exit = false;
    }
    const auto deadline = clock.Now() + s.ready_timeout;
    while (!runtime.Ready(Millis(2000))) {
      if (stopping) {
        return false;
      }
      if (clock.Now() >= deadline) {
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
  // `request_done` (may be empty) runs once `body` will not be sent again (see
  // protocol::RuntimeCaller::CallReleasing); after that no retry of the call is made.
  // `connect_failures`: attempts that already failed to reach the runtime (an asynchronous call's).
  std::optional<router::RuntimeOutcome> CallRuntime(std::string_view body,
                                                    const std::function<void()>& request_done,
                                                    int connect_failures = 0) {
    while (true) {
      if (!EnsureRuntimeReady()) {
        return std::nullopt;
      }
      const uint64_t generation = runtime_generation;
      const auto t0 = clock.Now();
      bool released = false;
      auto r = request_done ? runtime.CallReleasing(body, t0 + s.runtime_timeout,
                                                    [&] {
                                                      released = true;
                                                      request_done();
                                                    })
                            : runtime.Call(body, t0 + s.runtime_timeout);
      bool again = false;
      auto out = OutcomeOf(std::move(r), clock.Now() - t0, generation,
                           /*may_retry=*/!released && ++connect_failures <= 3, again);
      if (!again) {
        return out;
      }
    }
  }

  // What a runtime call's result `r` (after `took`, started in runtime `generation`) means for
  // the message: a parsed response, a call error or a timeout; nullopt when it must be requeued
  // untouched (shutdown). `again` is set instead when the request never reached the runtime and
  // `may_retry`: the caller calls again (no attempt used). May block (the readiness gate, the
  // death note) unless `r` holds a response.
  std::optional<router::RuntimeOutcome> OutcomeOf(Result<std::string> r, Clock::Duration took,
                                                  uint64_t generation, bool may_retry,
                                                  bool& again) {
    using Kind = router::RuntimeOutcome::Kind;
    router::RuntimeOutcome out;
    if (metrics != nullptr) {
      metrics->RuntimeDuration(Seconds(took));
    }
    if (r) {
      // The frame is taken: a single large payload becomes that buffer (no copy).
      auto items = envelope::ParseRuntimeResponseTaking(
          std::move(*r), {.max_bytes = std::numeric_limits<size_t>::max()});
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
    if (err.code == ErrorCode::kDeadlineExceeded || took >= s.runtime_timeout) {
      MarkRuntimeDown(true, generation);
      out.kind = Kind::kTimeout;
      return out;
    }
    if (stopping) {
      return std::nullopt;  // the runtime is going away with us: requeue, do not fail
    }
    // The request never reached the runtime: wait for it and try again (no attempt used).
    if (err.message.rfind("failed to connect", 0) == 0 && may_retry) {
      MarkRuntimeDown(false, generation);
      again = true;
      return std::nullopt;
    }
    out.kind = Kind::kCallError;
    out.error = err.message;
    if (err.code == ErrorCode::kUnavailable) {
      // Say that the runtime died (and how, when its supervisor wrote it down), not only what
      // the socket saw.
      if (std::string note = runtime.DeathNote(Millis(500)); !note.empty()) {
        out.error += " (" + note + ")";
      }
      MarkRuntimeDown(false,
                      generation);  // died mid-message: the next message waits for the restart
    }
    return out;
  }

  // ---- settling ----

  // Removes a message from the held set (it is about to be acked/nacked).
  void Release(const InFlightPtr& m) {
    std::unique_lock<std::mutex> lock(mu);
    inflight.remove(m);
    if (m->counted_active) {
      m->counted_active = false;
      --active;
    }
    --held;
    if (m->large) {
      --held_large;
    }
    if (metrics != nullptr) {
      metrics->ActiveAdd(-1);
    }
    const bool drained_all = held == 0;
    // A worker returns to its loop next and may receive itself (see t_worker_of).
    const bool wake_receiver = CanReceive() && t_worker_of != this;
    lock.unlock();  // the woken thread does not block on mu right away
    if (drained_all) {
      cv.notify_all();
    }
    if (wake_receiver) {
      work_cv.notify_one();
    }
  }

  // Frees the runtime slot of a message (its runtime call is over). With `take_receive` (the
  // caller is about to settle the message), a receive that may start now is not handed to an idle
  // worker: the caller folds it into its settle (Transport::PublishAckAndReceive), or receives
  // without waiting right after starting an asynchronous one, also while other folded receives
  // are in progress (each reserves what it may take); returns how many messages it may receive
  // (0: it folds none). Such a receive ends with EndFoldedReceive(returned count, ..). Not while
  // the plain receive is in progress: that one waits for the queue (so a fold would mostly add an
  // empty claim to the settle) and takes the next message itself.
  // With `back_to_loop` (the caller's settle goes on without it) nobody is woken: the caller
  // receives itself, back in its loop.
  size_t FreeSlot(const InFlightPtr& m, bool take_receive = false, bool back_to_loop = false) {
    std::unique_lock<std::mutex> lock(mu);
    if (m->counted_active) {
      m->counted_active = false;
      --active;
      if (CanReceive()) {
        if (take_receive && workers_started) {
          return ReserveReceive();
        }
        if (back_to_loop && t_worker_of == this) {
          return 0;
        }
        lock.unlock();
        work_cv.notify_one();  // receive while this worker publishes
      }
    }
    return 0;
  }

  // Ends a receive folded into a settle that reserved `reserved_for_it` messages: holds what it
  // received and queues it for the workers (the caller, back in its loop, takes one itself).
  void EndFoldedReceive(size_t reserved_for_it, std::vector<transport::Message> batch) {
    std::unique_lock<std::mutex> lock(mu);
    size_t received = 0;
    for (auto& m : EndReceive(reserved_for_it, std::move(batch))) {
      if (t_answering.sidecar == this && CallsAsync(*m)) {
        t_answering.folded->push_back(std::move(m));  // the answer thread starts its call
      } else {
        work.push_back(std::move(m));
        ++received;
      }
    }
    // One of the messages queued now is for the caller; wake a worker for each other one (what
    // other receives queued had wake-ups of their own). A receive that may start now is the
    // caller's too, back in its loop (t_worker_of).
    const bool caller_is_worker = t_worker_of == this;
    size_t wake = received;
    if (wake > 0 && caller_is_worker) {
      --wake;
    } else if (wake == 0 && CanReceive() && !caller_is_worker) {
      wake = 1;
    }
    lock.unlock();
    for (size_t i = 0; i < wake; ++i) {
      work_cv.notify_one();
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
                                                        std::string_view id,
                                                        transport::SettleReceive* also = nullptr) {
    std::vector<transport::Outgoing> outgoing;
    outgoing.reserve(d.publishes.size());
    for (const auto& p : d.publishes) {
      outgoing.push_back({.queue = p.queue,
                          .body = p.body,
                          .options = {.delay = p.delay, .headers = p.transport_headers}});
    }
    const auto t0 = clock.Now();
    auto failure = also != nullptr ? transport.PublishAckAndReceive(m->msg, outgoing, *also)
                                   : transport.PublishAndAck(m->msg, outgoing);
    RecordSettle(d, id, failure, clock.Now() - t0);
    return failure;
  }

  // Metrics of what a settle published, and its failure in the log.
  void RecordSettle(const router::Decision& d, std::string_view id,
                    const std::optional<transport::SettleFailure>& failure, Clock::Duration took) {
    const size_t published = failure ? failure->published : d.publishes.size();
    if (metrics != nullptr) {
      for (size_t i = 0; i < published; ++i) {
        const auto& p = d.publishes[i];
        metrics->SendDuration(p.metric_destination, Seconds(took));
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
  }

  // A settle that goes on without a worker (Transport::SettlesAsync): what its completion, and
  // a fallback after a failed publish, need. Held until the transport calls back.
  struct PendingSettle {
    InFlightPtr m;
    router::Decision d;
    ParsedInput input;
    std::vector<transport::Outgoing> outgoing;  // views into d
    MonoTime t0;
    std::thread::id caller;  // the worker that started it
  };

  [[nodiscard]] static std::string_view IdOf(const ParsedInput& input) {
    const envelope::Envelope* env = input.envelope();
    return env != nullptr ? std::string_view(env->id) : std::string_view();
  }

  // Starts publishing `d` and acking the message; the worker goes back to its loop at once.
  // SettleDone() finishes on the transport's thread (success) or hands a failed publish to a
  // worker (the fallback may block). The message stays held (drain waits) until then.
  void StartAsyncSettle(const InFlightPtr& m, router::Decision d, ParsedInput input) {
    auto ps = std::make_shared<PendingSettle>(PendingSettle{.m = m,
                                                            .d = std::move(d),
                                                            .input = std::move(input),
                                                            .outgoing = {},
                                                            .t0 = clock.Now(),
                                                            .caller = std::this_thread::get_id()});
    ps->outgoing.reserve(ps->d.publishes.size());
    for (const auto& p : ps->d.publishes) {
      ps->outgoing.push_back({.queue = p.queue,
                              .body = p.body,
                              .options = {.delay = p.delay, .headers = p.transport_headers}});
    }
    transport.PublishAndAckAsync(
        m->msg, ps->outgoing,
        [self = shared_from_this(), ps](std::optional<transport::SettleFailure> failed) {
          self->SettleDone(ps, std::move(failed));
        });
  }

  // The transport's answer to StartAsyncSettle. Must not block unless it runs on the worker that
  // started the settle (the transport answered at once).
  void SettleDone(const std::shared_ptr<PendingSettle>& ps,
                  std::optional<transport::SettleFailure> failed) {
    RecordSettle(ps->d, IdOf(ps->input), failed, clock.Now() - ps->t0);
    if (failed && !failed->in_ack && std::this_thread::get_id() != ps->caller) {
      // The fallback (error-end publish or nack) waits for the broker: a worker runs it.
      RunOnWorker([self = shared_from_this(), ps, failed = std::move(failed)] {
        self->Finish(ps->m, ps->d, ps->input, IdOf(ps->input), failed);
        self->RecordProcessed(ps->m);
      });
      return;
    }
    // Recorded first: Finish() releases the message, after which the drain may end and the
    // process tear down the metrics while this (transport) thread is still here.
    RecordProcessed(ps->m);
    Finish(ps->m, ps->d, ps->input, IdOf(ps->input), failed);
  }

  void RecordProcessed(const InFlightPtr& m) {
    if (metrics != nullptr) {
      metrics->ProcessingDuration(Seconds(clock.Now() - m->received_at));
    }
  }

  // Publishes and acks (or nacks) as `d` says. `input` is the message's parsed view; a failed
  // publish decides again from it (router::AfterPublishFailure), without parsing the body again
  // unless its payload was dropped (large bodies).
  // Returns false when the settle goes on asynchronously (StartAsyncSettle: `d` and `input` were
  // moved there and the completion records the processing time).
  bool Execute(const InFlightPtr& m, router::Decision& d, ParsedInput& input) {
    int expected = kRunning;
    if (!m->state.compare_exchange_strong(expected, kSettling)) {
      return true;  // nacked by the shutdown drain meanwhile
    }
    // Only workers settle asynchronously (ProcessOne() has none to run a fallback on).
    const bool async =
        d.action != router::Action::kNack && workers_started && transport.SettlesAsync();
    // The settle takes the next messages too: a synchronous one in its own transaction where the
    // transport can (SQLite); an asynchronous one on the thread delivering runtime answers by a
    // receive that does not wait (RabbitMQ: the deliveries the transport already holds), so no
    // worker wakes to receive them.
    const bool take_receive = d.action != router::Action::kNack &&
                              (async ? t_answering.sidecar == this : s.fold_receive_into_settle);
    const size_t fold = FreeSlot(m, take_receive, /*back_to_loop=*/async);
    if (async) {
      StartAsyncSettle(m, std::move(d), std::move(input));
      if (fold > 0) {
        EndFoldedReceive(fold, ReceiveHeld(fold));
      }
      return false;
    }
    const std::string_view id = IdOf(input);
    std::optional<transport::SettleFailure> failed;
    if (d.action != router::Action::kNack) {
      if (fold > 0) {
        transport::SettleReceive also{
            .queue = queue, .max_messages = fold, .visibility = s.visibility, .received = {}};
        failed = PublishAndAck(m, d, id, &also);
        EndFoldedReceive(fold, std::move(also.received));
      } else {
        failed = PublishAndAck(m, d, id);
      }
    }
    Finish(m, d, input, id, failed);
    return true;
  }

  // The rest of a settle once its publish and ack are over (`failed`: what went wrong): the
  // fallback after a failed publish (router::AfterPublishFailure: error-end publish or nack),
  // metrics, the nack of a kNack decision, Release. Blocks only on a publish failure or kNack.
  void Finish(const InFlightPtr& m, const router::Decision& d, ParsedInput& input,
              std::string_view id, const std::optional<transport::SettleFailure>& failed) {
    const router::Decision* done = &d;
    router::Decision fallback;
    if (failed && !failed->in_ack) {
      if (input.body_released() && !RestoreBody(m, input)) {
        Nack(m, s.publish_failure_nack_delay, "publish failed; message body unreadable");
        return;
      }
      router::Input in;
      in.body = input.body();
      in.envelope = input.WithPayload();
      in.parse_error = input.parse_error();
      in.delivery_count = m->msg.delivery_count;
      in.now = clock.WallNow();
      fallback = router::AfterPublishFailure(s.policy, in, d, failed->index, failed->error,
                                             s.publish_failure_nack_delay);
      done = &fallback;
      if (fallback.action != router::Action::kNack) {
        auto again = PublishAndAck(m, fallback, id);
        if (again && !again->in_ack) {
          if (metrics != nullptr) {
            metrics->Failed(router::FailReasonLabel(router::FailReason::kErrorQueueSend));
          }
          Nack(m, s.publish_failure_nack_delay, "error-end publish failed");
          return;
        }
      }
    }
    if (metrics != nullptr) {
      if (done->failed_reason != router::FailReason::kNone) {
        metrics->Failed(router::FailReasonLabel(done->failed_reason));
      }
      if (done->processed_status != router::Processed::kNone) {
        metrics->Processed(router::ProcessedLabel(done->processed_status));
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

  // Reads back the body a large message freed during its runtime call (the transport keeps it:
  // KeepsHeldBodies). False (logged) when it cannot: the caller nacks the message.
  bool RestoreBody(const InFlightPtr& m, ParsedInput& input) {
    auto body = transport.ReadBody(m->msg);
    if (!body) {
      log::Error("cannot read the message body again", {{"error", body.error().message}});
      return false;
    }
    m->msg.body = std::move(*body);
    input.Rebind(m->msg.body);
    return true;
  }

  // One message from its start to its settle: the parsed input (parsed once; this view travels
  // with the message until it is settled, and a large payload is not copied out of the body:
  // ParsedInput), the router's input and the gateway reports. On the asynchronous path it waits
  // on the heap for the runtime's answer.
  struct Work {
    Work(InFlightPtr msg, GatewaySink* g, const router::Policy& p, Clock& c)
        : m(std::move(msg)), input(m->msg.body), reporter(g, p, input, c) {}
    InFlightPtr m;
    ParsedInput input;
    router::Input in;
    Report reporter;
    MonoTime t0;              // the runtime call's start
    uint64_t generation = 0;  // the runtime's when the call started
  };
  using WorkPtr = std::shared_ptr<Work>;

  // Whether `m`'s runtime call goes the asynchronous way (StartAsyncCall): the runtime client and
  // the transport both answer later, so no thread waits for either. Large messages keep a worker
  // (their body is freed during the call: CallReleasing), so does ProcessOne() (no workers).
  [[nodiscard]] bool CallsAsync(const InFlight& m) const { return async_calls_enabled && !m.large; }

  void Process(const InFlightPtr& m) {
    int expected = kQueued;
    if (!m->state.compare_exchange_strong(expected, kRunning)) {
      return;
    }
    if (CallsAsync(*m)) {
      auto w = std::make_shared<Work>(m, gateway, s.policy, clock);
      if (Precheck(*w)) {
        StartAsyncCall(w);
      }
      return;
    }
    Work w(m, gateway, s.policy, clock);
    if (!Precheck(w)) {
      return;
    }
    // Where the transport keeps the body, a large message's body is freed as soon as the runtime
    // has it (read back on the rare paths that need it), so the message and the runtime's answer
    // are not held at the same time.
    const bool release_body = m->large && !s.policy.is_end_actor && transport.KeepsHeldBodies();
    std::function<void()> release;
    if (release_body) {
      release = [&] {
        w.input.ReleaseBody();
        std::string().swap(m->msg.body);
      };
    }
    w.reporter.BeforeCall();
    w.t0 = clock.Now();
    auto outcome = CallRuntime(w.input.body(), release);
    if (!outcome) {
      RequeueUnworked(m);
      return;
    }
    if (auto d = DecideAfterCall(w, *outcome)) {
      FinishAfterCall(w, *outcome, *d);
    }
  }

  // Decides what to do before calling the runtime. Returns true when the runtime is to be called;
  // else settles the message (a check failed first) and returns false.
  bool Precheck(Work& w) {
    ParsedInput& input = w.input;
    router::Input& in = w.in;
    in.body = input.body();
    in.envelope = input.envelope();
    in.parse_error = input.parse_error();
    in.delivery_count = w.m->msg.delivery_count;
    in.now = clock.WallNow();
    in.jitter = Jitter();
    router::Decision d = router::Decide(s.policy, in);
    if (d.action != router::Action::kCallRuntime && input.payload_dropped()) {
      in.envelope = input.WithPayload();  // the outcome may carry the original payload
      d = router::Decide(s.policy, in);
    }
    if (d.action != router::Action::kCallRuntime) {
      w.reporter.AfterPrecheck(d);
      Settle(w, d);
      return false;
    }
    // A large payload is not kept twice (body + parsed copy) through the runtime call: the
    // success path builds its outputs from the runtime's results and needs only id, route,
    // headers and deadline of the input. Outcomes that carry the original payload decide again
    // with it restored (rare, and only for large messages).
    input.DropPayload();
    return true;
  }

  // Decides from the runtime's answer; nullopt when the message was settled instead (its body
  // could not be read back). A routed result's payload moves from `outcome` into its output.
  std::optional<router::Decision> DecideAfterCall(Work& w, router::RuntimeOutcome& outcome) {
    ParsedInput& input = w.input;
    router::Input& in = w.in;
    in.body = input.body();
    in.outcome = &outcome;
    in.take_payloads = &outcome;
    router::Decision d = router::Decide(s.policy, in);
    if ((input.payload_dropped() || input.body_released()) &&
        d.processed_status != router::Processed::kSuccess &&
        d.processed_status != router::Processed::kEndConsumed) {
      if (input.body_released() && !RestoreBody(w.m, input)) {
        int expected = kRunning;
        if (w.m->state.compare_exchange_strong(expected, kSettling)) {
          Nack(w.m, s.publish_failure_nack_delay, "message body unreadable after the call");
        }
        return std::nullopt;
      }
      in.body = input.body();
      in.envelope = input.WithPayload();
      d = router::Decide(s.policy, in);
    }
    in.outcome = nullptr;
    in.take_payloads = nullptr;
    return d;
  }

  // Reports the call and settles as `d` says. `outcome` is freed before publishing.
  void FinishAfterCall(Work& w, router::RuntimeOutcome& outcome, router::Decision& d) {
    w.reporter.AfterCall(outcome, d, clock.Now() - w.t0);
    outcome = router::RuntimeOutcome();  // the runtime's answer
    Settle(w, d);
  }

  void Settle(Work& w, router::Decision& d) {
    w.input.DropPayload();  // the payload copy of a large input is freed before publishing
    if (Execute(w.m, d, w.input)) {
      RecordProcessed(w.m);
    }
  }

  // A message whose runtime call did not happen because of shutdown goes back untouched.
  void RequeueUnworked(const InFlightPtr& m) {
    int expected = kRunning;
    if (m->state.compare_exchange_strong(expected, kSettling)) {
      Requeue(m, "shutdown");
    }
  }

  // ---- the asynchronous path: no thread waits for the runtime ----

  // Sends `w`'s request; AsyncCallDone() goes on when the answer arrives.
  void StartAsyncCall(const WorkPtr& w) {
    if (!EnsureRuntimeReady()) {
      RequeueUnworked(w->m);
      return;
    }
    w->generation = runtime_generation;
    w->reporter.BeforeCall();
    {
      std::lock_guard<std::mutex> lock(mu);
      ++calls_in_progress;
    }
    w->t0 = clock.Now();
    runtime.CallAsync(w->input.body(), w->t0 + s.runtime_timeout,
                      [self = shared_from_this(), w](Result<std::string> r) {
                        self->AsyncCallDone(w, std::move(r));
                      });
  }

  // The runtime's answer to StartAsyncCall, on the runtime client's thread (or the caller's when
  // the call failed at once). Nothing here blocks on the success path: the decision, the reports
  // and the (asynchronous) settle. What may block (a failed call: the readiness gate and the
  // death note; a report that waits for the gateway) goes on on a worker.
  void AsyncCallDone(const WorkPtr& w, Result<std::string> r) {
    const auto took = clock.Now() - w->t0;
    if (!r) {
      RunOnWorker([self = shared_from_this(), w, took, r = std::move(r)]() mutable {
        bool again = false;
        auto outcome =
            self->OutcomeOf(std::move(r), took, w->generation, /*may_retry=*/true, again);
        if (again) {
          outcome = self->CallRuntime(w->input.body(), {}, /*connect_failures=*/1);
        }
        if (!outcome) {
          self->RequeueUnworked(w->m);
        } else if (auto d = self->DecideAfterCall(*w, *outcome)) {
          self->FinishAfterCall(*w, *outcome, *d);
        }
        self->EndCall();
      });
      return;
    }
    bool unused = false;
    auto outcome = OutcomeOf(std::move(r), took, w->generation, false, unused);
    auto d = DecideAfterCall(*w, *outcome);
    if (d && w->reporter.AfterCallWaits(*d)) {
      RunOnWorker([self = shared_from_this(), w, outcome = std::move(*outcome),
                   d = std::move(*d)]() mutable {
        self->FinishAfterCall(*w, outcome, d);
        self->EndCall();
      });
      return;
    }
    if (d) {
      // The settle may take the next messages (Execute: take_receive): this thread starts their
      // calls, and those of what their own checks settled and took in turn.
      std::vector<InFlightPtr> folded;
      const AnswerThread outer = std::exchange(t_answering, {this, &folded});
      FinishAfterCall(*w, *outcome, *d);
      for (size_t i = 0; i < folded.size(); ++i) {
        InFlightPtr m = folded[i];  // Handle() may append to `folded`
        Handle(m);
      }
      t_answering = outer;
    }
    EndCall();
  }

  // An asynchronous call and everything after it is over.
  void EndCall() {
    std::unique_lock<std::mutex> lock(mu);
    if (--calls_in_progress == 0) {
      lock.unlock();
      cv.notify_all();
    }
  }

  // Queues `task` for a worker (what may block must not run on a transport's or the runtime
  // client's thread).
  void RunOnWorker(std::function<void()> task) {
    {
      std::lock_guard<std::mutex> lock(mu);
      tasks.push_back(std::move(task));
    }
    work_cv.notify_one();
  }

  // ---- threads ----

  // Under mu: how many messages may be held: 2 x concurrency (one publishing while the next is
  // in the runtime), but only concurrency while a large message is held, so large messages are
  // not prefetched (peak memory stays a small multiple of concurrency x message size).
  int HeldLimit() const { return held_large > 0 ? s.concurrency : 2 * s.concurrency; }

  // Under mu: how many more messages receives may take now: runtime slots and held messages
  // (up to HeldLimit()) that neither held messages nor receives in progress have taken.
  int Room() const { return std::min(s.concurrency - active, HeldLimit() - held) - reserved; }

  // Under mu: a receive may start (a plain one, or one folded into a settle: FreeSlot): no plain
  // receive is running and there is room. Folded receives in progress do not stop it.
  bool CanReceive() const { return !stopping && !plain_receiving && Room() > 0; }

  // Under mu: starts a receive (CanReceive() said there is room); returns how many messages it may
  // take, reserved until EndReceive.
  size_t ReserveReceive() {
    const int want = std::min(Room(), kMaxReceiveBatch);
    reserved += want;
    ++receives;
    return static_cast<size_t>(want);
  }

  // Under mu: ends a receive that reserved `reserved_for_it` messages; holds what it received
  // (returned in order, for the caller to process or queue).
  std::vector<InFlightPtr> EndReceive(size_t reserved_for_it,
                                      std::vector<transport::Message> batch) {
    reserved -= static_cast<int>(reserved_for_it);
    --receives;
    std::vector<InFlightPtr> out;
    out.reserve(batch.size());
    const auto now = clock.Now();
    for (auto& msg : batch) {
      out.push_back(Admit(std::move(msg), now));
    }
    if (stopping) {
      cv.notify_all();  // the drain waits for receives to be over
    }
    return out;
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

  // Called without mu by the worker in the plain receive (one at a time). Returns the received
  // messages (empty after a timeout, an error or an interrupt).
  std::vector<transport::Message> ReceiveBatch(size_t want) {
    transport::ReceiveOptions opts;
    opts.max_messages = want;
    opts.wait = s.receive_wait;
    opts.visibility = s.visibility;
    const auto t0 = clock.Now();
    auto r = transport.Receive(queue, opts);
    if (!r) {
      int failures = ++receive_failures;  // only the plain receive touches it
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
      metrics->ReceiveDuration(Seconds(clock.Now() - t0));
    }
    return std::move(*r);
  }

  // Up to `want` messages the transport already holds (a receive that does not wait); none after
  // an error (logged: the plain receive reports and backs off from errors).
  std::vector<transport::Message> ReceiveHeld(size_t want) {
    transport::ReceiveOptions opts;
    opts.max_messages = want;
    opts.wait = Millis(0);
    opts.visibility = s.visibility;
    auto r = transport.Receive(queue, opts);
    if (!r) {
      log::Debug("receive without waiting failed", {{"error", r.error().message}});
      return {};
    }
    return std::move(*r);
  }

  // Under mu: holds a received message (counts a runtime slot and a held message).
  InFlightPtr Admit(transport::Message msg, MonoTime now) {
    auto m = std::make_shared<InFlight>();
    if (metrics != nullptr) {
      metrics->Received(msg.body.size());
      metrics->ActiveAdd(1);
    }
    m->large = msg.body.size() >= kDropPayloadBytes;
    held_large += m->large ? 1 : 0;
    m->msg = std::move(msg);
    m->received_at = now;
    m->last_extended = now;
    inflight.push_back(m);
    ++active;
    ++held;
    return m;
  }

  // Leader/follower: an idle worker takes the plain receive, keeps the first message it receives
  // and queues the rest for the others, so a message received alone is processed by the thread
  // that received it (no cross-thread wake-up on the message path).
  void WorkerLoop() {
    t_worker_of = this;
    std::unique_lock<std::mutex> lock(mu);
    while (true) {
      work_cv.wait(lock,
                   [&] { return !tasks.empty() || !work.empty() || workers_exit || CanReceive(); });
      if (!tasks.empty()) {
        auto task = std::move(tasks.front());
        tasks.pop_front();
        ++busy_workers;
        lock.unlock();
        task();
        task = nullptr;
        lock.lock();
        if (--busy_workers == 0) {
          cv.notify_all();
        }
        continue;
      }
      // What this worker processes itself: one message, or on the asynchronous path every
      // message it received that does not need a worker of its own (starting a call does not
      // wait), so the batch is not handed around.
      std::vector<InFlightPtr> mine;
      if (!work.empty()) {
        mine.push_back(std::move(work.front()));
        work.pop_front();
        ++busy_workers;
      } else if (workers_exit) {
        return;
      } else {
        plain_receiving = true;
        ++busy_workers;
        const size_t want = ReserveReceive();
        lock.unlock();
        auto batch = ReceiveBatch(want);
        lock.lock();
        plain_receiving = false;
        for (auto& m : EndReceive(want, std::move(batch))) {
          if (mine.empty() || (CallsAsync(*m) && CallsAsync(*mine.front()))) {
            mine.push_back(std::move(m));
          } else {
            work.push_back(std::move(m));
          }
        }
      }
      // Pass the baton: one worker per queued message, and one for a receive that may start now
      // (not all of them: the others would wake only to wait again), unless this worker is back
      // to receive as soon as it has started its asynchronous calls. Notified after unlocking mu,
      // so a woken worker does not block on it at once.
      const bool back_soon = !mine.empty() && CallsAsync(*mine.front());
      const size_t wake = work.size() + (CanReceive() && !back_soon ? 1 : 0);
      lock.unlock();
      for (size_t i = 0; i < wake; ++i) {
        work_cv.notify_one();
      }
      for (auto& m : mine) {
        const size_t bytes = m->msg.body.size();
        Handle(m);
        m.reset();
        if (bytes >= kTrimAfterBytes) {
          // Give the pages of a large message's smaller buffers (frame growth steps, sqlite's
          // copies) back to the OS; the large buffers themselves are mmapped (see main.cc).
          malloc_trim(0);
        }
      }
      lock.lock();
      if (--busy_workers == 0) {
        cv.notify_all();
      }
    }
  }

  void HeartbeatLoop() {
    const Millis interval = std::max(Millis(100), s.visibility / 3);
    std::unique_lock<std::mutex> lock(mu);
    while (!workers_exit) {
      clock.WaitFor(lock, hb_cv, interval, [&] { return workers_exit; });
      const auto now = clock.Now();
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
    const auto deadline = clock.Now() + s.shutdown_timeout;
    std::unique_lock<std::mutex> lock(mu);
    // Interrupt() ended a plain receive, a folded one ends with its settle; their messages are
    // held.
    cv.wait(lock, [&] { return receives == 0; });
    if (held > 0) {
      log::Info("draining in-flight messages",
                {{"held", held}, {"grace", FormatGoDuration(s.shutdown_timeout)}});
    }
    clock.WaitFor(lock, cv, std::max(Clock::Duration(0), deadline - clock.Now()),
                  [&] { return held == 0; });
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
      clock.WaitFor(lock, cv, Millis(2000), [&] { return held == 0; });
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
    // A worker that waits for its publish confirm cannot take the next message meanwhile: 2 x
    // concurrency of them keep `concurrency` runtime calls going. Where the transport settles
    // without a worker (SettlesAsync) a worker is free again when its runtime call is answered:
    // `concurrency` in runtime calls, and one more so that a fallback after a failed publish
    // (tasks) never waits behind a receive or the runtime.
    // With asynchronous runtime calls too, the workers are mostly idle: one receives and starts
    // the calls; the others run what may block (large messages, failed calls, fallbacks).
    const int n_workers = transport.SettlesAsync() ? s.concurrency + 1 : 2 * s.concurrency;
    {
      std::lock_guard<std::mutex> lock(mu);
      workers_started = true;
      async_calls_enabled =
          s.async_runtime_calls && runtime.CallsAsync() && transport.SettlesAsync();
    }
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
    // A receive that Shutdown() interrupted may still run at the broker (an SQS long poll): wait
    // for it to end and for whatever it took to be visible again, so no message stays hidden
    // behind a stopped sidecar. Bounded by one receive's wait (the poll started before stopping).
    transport.Quiesce(s.receive_wait + Millis(5000));
    heartbeat.join();
    // Join workers that finished; a worker stuck in a runtime call past the grace period is
    // detached (its message was nacked) and the caller exits without running destructors.
    {
      std::unique_lock<std::mutex> lock(mu);
      clock.WaitFor(lock, cv, Millis(100),
                    [&] { return busy_workers == 0 && calls_in_progress == 0; });
      drained = busy_workers == 0 && calls_in_progress == 0;
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
                 protocol::RuntimeCaller& runtime, MetricsSink* metrics, GatewaySink* gateway,
                 Clock& clock)
    : impl_(std::make_shared<Impl>(std::move(settings), transport, runtime, metrics, gateway,
                                   clock)) {
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

void Sidecar::ProcessOne(transport::Message message) {
  InFlightPtr m;
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    m = impl_->Admit(std::move(message), impl_->clock.Now());
  }
  impl_->Handle(m);
}

void Sidecar::Shutdown() {
  impl_->RequestShutdown();
}

bool Sidecar::Drained() const {
  return impl_->drained;
}

}  // namespace asya::sidecar
