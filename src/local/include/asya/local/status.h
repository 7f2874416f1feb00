// Status of a local mesh: the file the supervisor writes (<state>/status.json), the STATUS rules
// (reference-controlplane §4.2, the ones that make sense locally) and the `asya get actors`
// table / JSON. Pure apart from the file helpers.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "asya/base/file.h"
#include "asya/base/result.h"

namespace asya::local {

struct ReplicaStatus {
  int index = 0;
  std::string phase;  // Starting, Running, BackOff, Stopping
  bool ready = false;
  bool failing = false;
  int runtime_pid = 0;  // 0 = not running
  int sidecar_pid = 0;
  int runtime_restarts = 0;
  int sidecar_restarts = 0;
  std::string runtime_last_exit;  // e.g. "exit 1", "signal 9", "" = never exited
  std::string sidecar_last_exit;
  std::string waiting_reason;  // e.g. "runtime CrashLoopBackOff (restart in 20s)"
  int64_t started_ms = 0;
};

struct ActorEvent {
  int64_t time_ms = 0;
  std::string type;    // Normal | Warning
  std::string reason;  // ScaledUp, ScaledDown, Crashed, Started, Stopped, Updated
  std::string message;
};

// What an actor's sidecar and runtime run with, as `asya describe actor` shows it: the values of
// the variables the replicas get (spec fields, then the containers' env), not the spec's fields.
struct ActorPolicy {
  std::string runtime_timeout;      // ASYA_RUNTIME_TIMEOUT of runtime and sidecar ("" = default)
  std::string retry_max_attempts;   // ASYA_RETRY_MAX_ATTEMPTS (1 = no retry)
  std::string retry_backoff;        // ASYA_RETRY_BACKOFF
  std::string retry_max_backoff;    // ASYA_RETRY_MAX_BACKOFF
  std::string retry_non_retryable;  // ASYA_RETRY_NON_RETRYABLE (comma-separated)
  std::string max_deliveries;       // ASYA_MAX_DELIVERIES
};
// "no retry: a failed message goes to error-end (set spec.retry.maxAttempts to retry)", or
// "up to 5 attempts, back-off 100ms doubling to 5m; not retried: ValueError".
std::string DescribeRetry(const ActorPolicy& p);

struct ActorStatus {
  std::string name;
  std::string source;
  bool crew = false;
  std::string handler;
  std::string handler_mode;
  std::string command;  // runtime command line, for describe
  std::string workload_kind = "Deployment";
  int workload_replicas = 1;
  bool scaling_present = false;
  bool scaling_enabled = false;
  int min_replicas = 0;
  int max_replicas = 50;
  int polling_interval_s = 10;
  int cooldown_period_s = 60;
  int queue_length = 5;
  int processing_timeout_s = 0;
  // Observed.
  std::string status;
  int ready = 0;
  int total = 0;
  int failing = 0;
  int desired = 0;
  bool transport_ready = false;
  int64_t queued = 0;
  int64_t processing = 0;
  int64_t dlq = 0;
  int64_t created_ms = 0;
  int64_t last_scale_ms = -1;        // -1 = never
  std::string last_scale_direction;  // up | down | ""
  std::string crash_container;       // asya-runtime | asya-sidecar | "" (the crash-looping one)
  ActorPolicy policy;
  std::vector<ReplicaStatus> replicas;
  std::vector<ActorEvent> events;  // oldest first, bounded
};

struct MeshStatus {
  int pid = 0;             // supervisor pid
  int64_t generation = 0;  // generation of the desired-state file last applied
  std::string transport;
  std::string state_dir;
  int64_t started_ms = 0;
  int64_t updated_ms = 0;
  bool stopping = false;
  std::string last_error;  // e.g. a reload that failed validation
  std::vector<ActorStatus> actors;
};

// ---- Replica phases (kubelet's view of one pod), computed from what the supervisor observes ----

// One process of a replica (runtime or sidecar) as the supervisor sees it.
struct ProcessObservation {
  int pid = 0;  // 0 = not running
  int restarts = 0;
  int consecutive_crashes = 0;  // crashes since it last ran long enough (back-off counter)
  std::string last_exit;        // "exit 1", "signal 9", "" = never exited
  int64_t restart_in_ms = 0;    // time until the next start attempt (when not running)
};

struct ReplicaObservation {
  int index = 0;
  bool stopping = false;       // being drained (scale-down, update, removal, shutdown)
  bool runtime_ready = false;  // runtime-ready seen since the runtime last started
  ProcessObservation runtime;
  ProcessObservation sidecar;
  int64_t started_ms = 0;  // wall time the replica was created
};

// Ready = serving: not stopping, runtime running and ready, sidecar running.
bool ReplicaReady(const ReplicaObservation& r);
// The crash-looping container ("asya-runtime" | "asya-sidecar"), or "" when neither is: a runtime
// that crashed and is not ready again, a sidecar that crashed and is not running. A stopping
// replica never is.
std::string CrashLoopingContainer(const ReplicaObservation& r);
// Phase (Stopping > BackOff > Running > Starting), ready, failing and the BackOff reason
// ("asya-runtime CrashLoopBackOff: last exit 1, restarting in 20s").
ReplicaStatus ComputeReplicaStatus(const ReplicaObservation& r);
// Sets a.replicas and the counts derived from them: total (replicas not stopping), ready, failing
// and crash_container (of the first failing replica).
void SetReplicas(ActorStatus& a, const std::vector<ReplicaObservation>& replicas);

// STATUS value (first matching rule wins): RuntimeError/SidecarError (replicas crash-looping and
// ready < desired), Napping, ScalingUp, ScalingDown, Degraded, Running, Unknown.
std::string ComputeStatus(const ActorStatus& a, int64_t now_ms);

// `-`, `30s ago (up)`, `5m ago (down)`, `2h ago`, `3d ago (up)`.
std::string FormatLastScale(int64_t last_scale_ms, const std::string& direction, int64_t now_ms);
// kubectl's AGE column: 45s, 5m12s, 42m, 5h3m, 20h, 3d4h, 12d.
std::string FormatAge(int64_t seconds);

// `asya get actors` table (kubectl columns; `wide` adds WORKLOAD..PROCESSING).
std::string RenderTable(const std::vector<ActorStatus>& actors, int64_t now_ms, bool wide);
// JSON array with keys of DESIGN precise 9, holding machine values (not the table's text): counts
// as numbers, `age` the creation time as RFC 3339 UTC ("2026-12-06T07:00:00.123Z"), `lastScale`
// {"time": RFC 3339, "direction": "up"|"down"|null} or null when never scaled. `now_ms` is unused.
std::string RenderJson(const std::vector<ActorStatus>& actors, int64_t now_ms);
// `asya describe actor` text.
std::string RenderDescribe(const ActorStatus& a, int64_t now_ms);

// `asya down`, while the mesh drains: "draining slow (1 in-flight message, 1 replica), tag (1
// replica)" for the actors with replicas left; "" when none.
std::string DrainingLine(const MeshStatus& s);
// `asya down`, after the mesh stopped (the supervisor's last status.json): one line per
// actor with messages left in its queue ("  left queued: asya-slow 12 (processed at the next
// `asya up`)"), or "  nothing left queued\n".
std::string QueuedSummary(const MeshStatus& s);

// `asya send --wait` that timed out: the actors of `route` that serve no replica, with why
// ("not running on the route: broken (RuntimeError: see `asya logs broken`), nosuch (not part of
// the mesh)"); "" when every one has a ready replica or is napping (it wakes on the message).
std::string NotRunningOnRoute(const MeshStatus& s, const std::vector<std::string>& route);

std::string EncodeMeshStatus(const MeshStatus& s);
Result<MeshStatus> DecodeMeshStatus(const std::string& json);

Result<std::string> ReadFile(const std::string& path);

// "a, b, happy-end, error-end": the mesh's actors, crew last, for "did you mean" messages
// ("none" when there are none).
std::string KnownActorNames(const MeshStatus& s);

}  // namespace asya::local
