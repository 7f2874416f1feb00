// The sidecar loop: consume from `asya-<actor>` -> call the runtime -> route -> ack.
//
// Written against interfaces only: transport::Transport, protocol::RuntimeCaller, MetricsSink,
// GatewaySink and asya::Clock (every wait, deadline and timestamp), so tests drive it with fakes
// and a ManualClock. Configured by a plain Settings struct (only src/bin/sidecar reads the
// environment).
//
// Threads: 2 x concurrency workers (concurrency + 1 where the transport settles asynchronously,
// Transport::SettlesAsync: RabbitMQ) and one visibility heartbeat. Workers take turns receiving
// (leader/follower): an idle worker asks the transport for up to the free slots (at most 10 at a
// time), keeps the first message for itself and queues the rest for the others, so a message that
// arrives alone is processed by the thread that received it. A slot is freed when a message's
// runtime call is over, so the publish/ack of one message overlaps the receive and runtime call
// of the next. Where the transport settles asynchronously the worker does not wait for the
// publisher confirm at all: it starts Transport::PublishAndAckAsync and takes the next message;
// the transport's thread finishes the message when the ack is queued (metrics, release), and a
// failed publish comes back to a worker for the fallback (error-end or nack), which may block.
// Lifecycle: Run() waits for the runtime, consumes until Shutdown(), drains in-flight
// messages for up to `shutdown_timeout`, nacks the rest (no delay, never error-end), waits for
// receives still running at the broker to end (Transport::Quiesce: an SQS long poll in flight
// would otherwise hide the next message for its visibility timeout) and returns.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "asya/base/clock.h"
#include "asya/protocol/runtime_client.h"
#include "asya/router/router.h"
#include "asya/sidecar/gateway_sink.h"
#include "asya/sidecar/metrics_sink.h"
#include "asya/transport/transport.h"

namespace asya::sidecar {

using Millis = std::chrono::milliseconds;

struct Settings {
  router::Policy policy;  // actor name, end names, limits, retry policy
  std::string socket_path;
  int concurrency = 1;                               // ASYA_SIDECAR_CONCURRENCY
  Millis runtime_timeout{Millis(300'000)};           // ASYA_RUNTIME_TIMEOUT
  Millis ready_timeout{Millis(300'000)};             // ASYA_RUNTIME_READY_TIMEOUT
  Millis ready_poll_interval{Millis(500)};           // startup readiness poll (reference §3.1)
  Millis visibility{Millis(600'000)};                // ASYA_VISIBILITY_TIMEOUT
  Millis receive_wait{Millis(20'000)};               // long-poll wait of one Receive()
  Millis shutdown_timeout{Millis(25'000)};           // ASYA_SHUTDOWN_TIMEOUT
  Millis publish_failure_nack_delay{Millis(1'000)};  // requeue delay after a failed publish
  Millis receive_backoff_max{Millis(30'000)};        // receive errors: 1, 2, 4 ... this many
  Millis receive_backoff_initial{Millis(1'000)};
  // A worker that frees a runtime slot folds its next receive into its settle
  // (Transport::PublishAckAndReceive). Only for transports that do both in one step (SQLite);
  // elsewhere a separate receive overlaps the settle (a publisher confirm) instead.
  bool fold_receive_into_settle = false;
  // Where both the runtime client and the transport answer later (RuntimeCaller::CallsAsync,
  // Transport::SettlesAsync: RabbitMQ), no thread waits for a message's runtime call or settle:
  // the worker that receives starts the calls, and the runtime client's thread decides, starts
  // the settles and takes the next messages the transport holds as the answers arrive. Messages
  // of 1 MiB and more keep a worker each. (SQLite keeps a worker per call: its settles commit
  // together when they overlap, which one thread settling them all loses; docs/benchmarks.md.)
  bool async_runtime_calls = true;
};

class Sidecar {
 public:
  // `metrics` and `gateway` may be null. All referenced objects must outlive the Sidecar.
  Sidecar(Settings settings, transport::Transport& transport, protocol::RuntimeCaller& runtime,
          MetricsSink* metrics, GatewaySink* gateway = nullptr, Clock& clock = SystemClock());
  ~Sidecar();
  Sidecar(const Sidecar&) = delete;
  Sidecar& operator=(const Sidecar&) = delete;

  // Blocks: readiness gate, then the consume loop until Shutdown(), then the drain. Returns the
  // process exit code: 0 after a graceful shutdown, 1 when the runtime did not become ready
  // within ready_timeout (at startup or after a runtime restart).
  int Run();

  // Processes one received message on the calling thread exactly as a worker of Run() does
  // (runtime readiness gate, runtime call, routing, publish and ack/nack, metrics, gateway
  // reports) and returns once it is settled. Lets tests drive the loop message by message,
  // deterministically; do not call it while Run() is running.
  void ProcessOne(transport::Message message);

  // Requests a graceful shutdown. Thread-safe and idempotent (call it from a signal thread); the
  // caller keeps this Sidecar alive until the call has returned (Run() may return before then).
  void Shutdown();

  // False when Run() returned while some worker was still stuck in a runtime call past the
  // grace period (its message was nacked); the caller should then exit without destructors.
  // (Destroying the Sidecar anyway is memory-safe for its own state, which such a worker keeps
  // alive until it returns; the transport and runtime client must still outlive that worker.)
  [[nodiscard]] bool Drained() const;

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;  // shared with the worker threads (detached ones outlive Run())
};

}  // namespace asya::sidecar
