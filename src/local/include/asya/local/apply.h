// The up/apply protocol between `asya up` and the supervisor, in one place:
//
//   1. `asya up PATHS [--prune]` computes the next desired state (NextDesired: generation + 1, the
//      paths, the transport, prune; a running mesh keeps its transport) and writes
//      <state>/desired.json.
//   2. A running supervisor gets SIGHUP (SignalAndWaitApplied); otherwise a new one starts.
//   3. The supervisor reads desired.json (ReadDesired), diffs it against the actors it runs
//      (PlanApply), applies the plan and writes status.json with that generation; a refused
//      change leaves the running mesh alone and sets status.last_error. Like `kubectl apply`,
//      running actors the paths do not declare are kept unless `prune` is set.
//   4. `asya up` waits (WaitApplied) until status.json shows the supervisor's pid with that
//      generation or later, or until the supervisor exits, and prints SummariseApply's lists.
//
// Pure decisions (NextDesired, CheckApplied, PlanApply, SummariseApply) are separate from the
// file, signal and waiting code so that tests drive them directly.
#pragma once

#include <chrono>
#include <functional>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "asya/actor/manifest.h"
#include "asya/base/clock.h"
#include "asya/base/result.h"
#include "asya/local/status.h"

namespace asya::local {

// <state>/desired.json: {"generation": N, "paths": [...], "transport": "sqlite", "prune": false}.
struct DesiredState {
  int64_t generation = 0;
  std::vector<std::string> paths;  // absolute manifest paths
  std::string transport = "sqlite";
  bool prune = false;  // stop running actors the paths do not declare (`asya up --prune`)
};
std::string EncodeDesired(const DesiredState& d);
Result<DesiredState> DecodeDesired(const std::string& json);
Result<DesiredState> ReadDesired(const std::string& state_dir);
Status WriteDesired(const std::string& state_dir, const DesiredState& d);

// The desired state `asya up PATHS --transport T` writes. `previous` is desired.json as found
// (nullopt when missing or unreadable). Generation = previous + 1. When a supervisor is running
// (`running`), its transport cannot change: kFailedPrecondition naming both transports.
Result<DesiredState> NextDesired(const std::optional<DesiredState>& previous,
                                 std::vector<std::string> paths, const std::string& transport,
                                 bool running, const std::string& state_dir, bool prune = false);

// Where applying generation N stands, from the latest status.json (nullopt = none readable).
enum class ApplyProgress {
  kWaiting,  // not applied yet, supervisor alive
  kApplied,  // status.json of this supervisor shows generation >= N (last_error = refused)
  kExited,   // the supervisor exited first
};
ApplyProgress CheckApplied(const std::optional<MeshStatus>& status, int pid, int64_t generation,
                           bool supervisor_exited);

// Polls status.json until CheckApplied says applied (returns that status) or exited
// (kFailedPrecondition with the supervisor's last_error, else kUnavailable pointing at
// logs/asya.log), or `timeout` passes on `clock` (kDeadlineExceeded). `exited` tells whether
// the supervisor process is gone.
Result<MeshStatus> WaitApplied(const std::string& state_dir, int pid, int64_t generation,
                               Clock::Duration timeout, const std::function<bool()>& exited,
                               Clock& clock);

// A running supervisor `pid` (not our child): SIGHUP, then WaitApplied.
Result<MeshStatus> SignalAndWaitApplied(const std::string& state_dir, int pid, int64_t generation,
                                        Clock::Duration timeout, Clock& clock);

// True when `pid` is gone: our child (`is_child`, reaped here) or any process.
bool SupervisorExited(int pid, bool is_child);

// The supervisor's diff of a desired state against the actors it runs (names are unique).
struct RunningActor {
  std::string name;
  std::string fingerprint;  // ActorSpec::Fingerprint() of the spec it runs
  bool removing = false;    // being drained after an earlier apply removed it
};
struct ActorChange {
  enum class Kind {
    kAdd,     // new: create its queue, start replicas
    kUpdate,  // effective spec changed: drain and replace every replica
    kKeep,    // same spec (only `source` may differ)
  };
  size_t spec_index = 0;  // into the desired specs
  Kind kind = Kind::kKeep;
  bool redeclared = false;  // was being removed; declared again
};
struct ApplyPlan {
  std::vector<ActorChange> changes;     // one per desired spec, in order
  std::vector<std::string> removed;     // running, not declared, not already removing (prune)
  std::vector<std::string> undeclared;  // the same without prune: kept running as they are
};
ApplyPlan PlanApply(const std::vector<RunningActor>& running,
                    const std::vector<actor::ActorSpec>& desired, bool prune = false);

// What `asya up` reports after applying to a running mesh (user actors only, sorted as given).
struct ApplySummary {
  std::vector<std::string> added;
  std::vector<std::string> kept;        // restarted when their manifest changed
  std::vector<std::string> removed;     // with prune
  std::vector<std::string> undeclared;  // without prune: running, not in the paths, left alone
};
ApplySummary SummariseApply(const std::set<std::string>& before,
                            const std::vector<actor::ActorSpec>& desired, bool prune = false);

// ---- Readiness after an apply (`asya up --detach`, `asya up` on a running mesh) ----

// Where the actors stand: ready = every desired replica ready (a napping actor, desired 0, is
// ready); failing = a replica crash-looping (RuntimeError / SidecarError); starting = neither yet.
struct Readiness {
  std::vector<std::string> ready;
  std::vector<std::string> failing;
  std::vector<std::string> starting;
  [[nodiscard]] bool Settled() const { return starting.empty(); }
};
// The actors named in `names` (empty = every actor of `status`, crew included), in status order;
// a named actor missing from `status` is starting.
Readiness CheckReadiness(const MeshStatus& status, const std::set<std::string>& names);

// Polls status.json until CheckReadiness is settled or `timeout` passes on `clock`; calls
// `progress` (may be empty) after each poll. Returns the last readiness (starting not empty =
// timed out). An unreadable status.json counts as every named actor starting.
Readiness WaitReady(const std::string& state_dir, const std::set<std::string>& names,
                    Clock::Duration timeout, const std::function<void(const Readiness&)>& progress,
                    Clock& clock);

}  // namespace asya::local
