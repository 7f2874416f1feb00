// The `asya up` supervisor: runs every actor of a mesh as (sidecar + runtime) process pairs on
// one machine, scales them with the local autoscaler, restarts crashed processes with kubelet-style
// back-off and writes <state>/status.json for `asya get` / `asya describe`.
//
// Lifecycle: Create() (validates settings, opens the transport, creates state directories) ->
// Run() (blocks until SIGINT/SIGTERM, then drains: SIGTERM sidecars, wait, SIGTERM runtimes, kill
// after the grace period; returns once every child is reaped). Single-threaded: Run() multiplexes
// child output pipes and a signalfd with poll(). The CALLER must block SIGINT, SIGTERM, SIGHUP and
// SIGCHLD in every thread (BlockSupervisorSignals()) before creating any thread, so that they are
// delivered through the signalfd only. SIGHUP = re-read <state>/desired.json and apply it.
//
// State directory layout (see src/local/README.md):
//   queues.db         sqlite transport (when --transport sqlite)
//   desired.json      {"generation": N, "paths": [...], "transport": "sqlite"} (asya up; apply.h)
//   status.json       MeshStatus, rewritten about once a second and on every change
//   supervisor.pid    pid of the supervisor; supervisor.lock is flock()ed while it runs
//   logs/<actor>.log  prefixed output of the actor's processes; logs/asya.log (detached runs)
//   results/, errors/ written by the crew (happy-end / error-end; crew_layout.h)
//   run/<actor>-<n>/  per-replica socket directory (mode 0700), unless the path would be too long
//   gateway.url, gateway.db, gateway-tools/, logs/gateway.log  the gateway (gateway.h)
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "asya/actor/manifest.h"
#include "asya/base/result.h"
#include "asya/local/apply.h"
#include "asya/transport/transport.h"

namespace asya::local {

struct SupervisorSettings {
  std::string state_dir = ".asya";  // absolute or relative to the cwd
  // The mesh's transport. The supervisor is written against the Transport interface only: the
  // program that links the implementations (src/bin/asya) passes the factory.
  std::string transport_kind;  // sqlite | rabbitmq | sqs: status and the sidecars' environment
  std::string sqlite_path;     // the queue file, when transport_kind is sqlite
  std::function<Result<transport::TransportPtr>()> make_transport;
  // Programs.
  std::string sidecar_bin;     // asya-sidecar
  std::string crew_bin;        // asya-crew (end-actor runtime)
  std::string python_runtime;  // path of asya_runtime.py
  // The mesh's asya-gateway (gateway.h): started when set; gateway_port 0 = a free loopback port.
  std::string gateway_bin;
  int gateway_port = 0;
  // Kubelet-style restart back-off: base doubles per consecutive crash up to max.
  std::chrono::milliseconds restart_backoff_base{10'000};
  std::chrono::milliseconds restart_backoff_max{300'000};
  // Runtime processes get SIGTERM this long after their sidecar was asked to stop; then SIGKILL
  // after the same time again.
  std::chrono::milliseconds runtime_stop_grace{5'000};
  // Also print the actors' prefixed log lines on stdout (foreground mode); the supervisor's own
  // lines ("[asya] ...") always go to stdout.
  bool echo_logs = true;
  // Environment every child starts from (normally the caller's environ).
  std::vector<std::string> base_env;
};

class Supervisor {
 public:
  static Result<std::unique_ptr<Supervisor>> Create(SupervisorSettings settings);
  virtual ~Supervisor() = default;

  // Applies <state>/desired.json, then supervises until a stop signal. Returns 0 after a clean
  // shutdown, 1 when the initial desired state could not be applied.
  virtual int Run() = 0;
};

// Blocks SIGINT, SIGTERM, SIGHUP, SIGCHLD in the calling thread (threads created later inherit it).
void BlockSupervisorSignals();

// ---- Helpers shared with the CLI (the desired state and the apply protocol: apply.h) ----

// The crew actors asya up always runs (happy-end, error-end), writing under `state_dir`.
std::vector<actor::ActorSpec> CrewActors(const std::string& state_dir, const std::string& crew_bin);

// Path helpers.
std::string StatusPath(const std::string& state_dir);
std::string DesiredPath(const std::string& state_dir);
std::string PidPath(const std::string& state_dir);
std::string LockPath(const std::string& state_dir);
std::string LogPath(const std::string& state_dir, const std::string& actor);

// Returns the pid of the supervisor running on `state_dir`, or 0 when none holds the lock.
int RunningSupervisorPid(const std::string& state_dir);

}  // namespace asya::local
