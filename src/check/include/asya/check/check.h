// `asya check`: the no-loss checker (issue 12, docs/reliability.md).
//
// Run() brings up its own pipeline through `asya up` (a child process of this one, its own state
// directory), publishes N uniquely numbered envelopes, injects faults on a seeded schedule while
// they travel, then accounts for every expected output at happy-end, error-end or a dead-letter
// queue (accounting.h). It prints the fault log and a progress line while it runs and ends with
// exactly `lost=L duplicated=D unexpected=U`.
//
// The pipeline (pipeline.h): chk-split (fan-out into 2) -> chk-flaky (fails with a non-retryable
// ValueError on known inputs, and once with a transient RuntimeError on others, which the retry
// policy absorbs) -> chk-sink. Every actor retries (ASYA_RETRY_MAX_ATTEMPTS), so a fault that
// kills or stalls a process mid-message must never send an envelope to error-end.
#pragma once

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

#include "asya/base/result.h"
#include "asya/transport/factory.h"

namespace asya::check {

enum class FaultKind {
  kKillSidecar,    // SIGKILL of a random sidecar (crew included)
  kKillRuntime,    // SIGKILL of a random runtime (crew included)
  kStopRuntime,    // SIGSTOP of a random pipeline runtime for its timeout + 1 s, then SIGCONT
  kKillAll,        // SIGKILL of every sidecar and runtime at once (sqlite: WAL recovery)
  kDiskFull,       // sqlite: the state dir is a small tmpfs; fill it for 4 s, then free it
  kBrokerKill,     // RabbitMQ: kill -9 of the broker, started again on the same data
  kBrokerRestart,  // RabbitMQ: graceful stop (SIGTERM), started again
  // Network faults (rabbitmq, sqs; root): the broker (or moto) runs in its own network namespace
  // joined to this machine by a veth pair (src/check/netns.h).
  kPartition,      // every packet to and from the broker dropped for 4 s (connections survive)
  kPartitionLong,  // the same for 35 s: past the AMQP heartbeat timeout and SQS request timeout
  kDelay,          // 200 ms - 2 s added each way for 8 s (an in-process TCP proxy holds bytes)
  kLoss,           // 5 - 30 % of the packets each way dropped for 8 s (nftables numgen)
  kDrop,           // test only: deletes one message from a queue; the checker must see lost=1
};

// True for the network faults (they need the broker in a network namespace, and root).
bool IsNetworkFault(FaultKind kind);

// "kill-sidecar,kill-runtime,stop-runtime,kill-all,disk-full,broker-kill,broker-restart,partition,
// partition-long,delay,loss" (and the test-only "drop"); "" or "none" = no faults. Unknown names:
// kInvalidArgument listing the known.
Result<std::vector<FaultKind>> ParseFaults(std::string_view list);
std::string_view FaultName(FaultKind kind);
// The faults a transport supports (broker faults need rabbitmq, disk-full sqlite, network faults
// rabbitmq or sqs);
// kInvalidArgument otherwise.
Status CheckFaultsFit(const std::vector<FaultKind>& faults, std::string_view transport);

struct Options {
  int64_t envelopes = 1000;
  std::vector<FaultKind> faults;
  double duration_s = 0;        // length of the fault phase; 0 = while envelopes are in flight
  uint64_t seed = 1;            // fault schedule (times, kinds, targets)
  double fault_interval_s = 2;  // mean time between faults (each gap uniform in [0.5, 1.5] x)
  double rate = 0;              // envelopes per second published; 0 = as fast as possible
  double quiet_s = 6;           // settled: queues empty and nothing new for this long
  double timeout_s = 600;       // give up this long after the fault phase ended
  int replicas = 1;             // replicas of each pipeline actor
  int concurrency = 2;          // ASYA_SIDECAR_CONCURRENCY of each pipeline actor
  double progress_interval_s = 2;
  bool process_stats = false;  // RSS and open fds of every process at start and end (soak)
  std::string work_dir;        // "" = a new /tmp/asya-check-XXXXXX (removed unless keep)
  bool keep = false;

  // Transport. For rabbitmq with `start_broker`, Run() starts a throw-away broker
  // (rabbitmq-server, loopback, its own directory and ports) and fills the URLs itself.
  transport::TransportSettings transport;
  bool start_broker = false;
  std::string rabbitmq_server = "/usr/lib/rabbitmq/bin/rabbitmq-server";
  int tmpfs_mb = 64;  // at least this big: the state dir's tmpfs with disk-full (needs root)

  std::string asya_bin;               // the `asya` program (runs `asya up`)
  std::vector<std::string> base_env;  // environment of `asya up` (the caller's environ)
  std::FILE* out = stdout;            // fault log, progress, summary, result line
  // Set by the program's SIGINT/SIGTERM handler: the run stops injecting, accounts what arrived
  // so far, cleans up (mesh, broker, tmpfs) and returns.
  const std::atomic<bool>* interrupted = nullptr;
};

struct Outcome {
  int64_t expected = 0;
  int64_t lost = 0;
  int64_t duplicated = 0;
  int64_t unexpected = 0;
  int64_t dead_lettered = 0;
  int64_t faults = 0;
  double duration_s = 0;
  bool ok() const { return lost == 0 && unexpected == 0; }
};

// Runs one check. An error means the check could not run (bad options, `asya up` failed to start,
// the broker did not come up); a run that found losses returns an Outcome with lost > 0.
Result<Outcome> Run(const Options& options);

}  // namespace asya::check
