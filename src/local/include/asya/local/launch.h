// Launch specs: what `asya up` executes for one replica (argv, environment, working directory of
// its runtime and its sidecar). Pure functions of the actor spec and the mesh settings; the
// supervisor (supervisor.cc) only forks and execs them. Rules: src/local/README.md "Supervisor".
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "asya/actor/manifest.h"
#include "asya/base/result.h"

namespace asya::local {

struct LaunchSpec {
  std::vector<std::string> argv;  // argv[0] is looked up on PATH when it has no '/'
  std::vector<std::string> env;   // NAME=value, the child's whole environment
  std::string cwd;
};

// The parts of the mesh's settings a launch depends on.
struct MeshLaunchSettings {
  std::string state_dir;              // absolute
  std::string transport_kind;         // transport_kind:: value
  std::string sqlite_path;            // used when transport_kind is sqlite
  std::string sidecar_bin;            // asya-sidecar
  std::string python_runtime;         // asya_runtime.py
  std::vector<std::string> base_env;  // environment every child starts from
  std::string gateway_url;            // ASYA_GATEWAY_URL of the sidecars ("" = not set)
  std::string gateway_token;          // ASYA_GATEWAY_TOKEN of the sidecars
};

// The runtime: `local_command` (a relative program path resolved against the manifest's
// directory) or `python3 asya_runtime.py`; the runtime container's env, then ASYA_SOCKET_DIR,
// ASYA_RUNTIME_TIMEOUT, the crew's settings, ASYA_RUNTIME_CONCURRENCY matched to the sidecar's,
// PYTHONPATH (manifest directory and its parent first) and PYTHONUNBUFFERED.
LaunchSpec RuntimeLaunchSpec(const actor::ActorSpec& spec, const MeshLaunchSettings& mesh,
                             const std::string& socket_dir);

// The sidecar: asya-sidecar with ASYA_ACTOR_NAME, ASYA_TRANSPORT (+ ASYA_SQLITE_PATH),
// ASYA_SOCKET_DIR, ASYA_RUNTIME_TIMEOUT, ASYA_IS_END_ACTOR (crew), ASYA_METRICS_ENABLED=false,
// ASYA_QUEUE_AUTO_CREATE=true, ASYA_GATEWAY_URL + ASYA_GATEWAY_TOKEN (when the mesh runs a
// gateway), then spec.sidecar.env (which may override any of them but the metrics host:
// ASYA_METRICS_ADDR is always LoopbackMetricsAddr of the manifest's value, DESIGN §4 (13)).
LaunchSpec SidecarLaunchSpec(const actor::ActorSpec& spec, const MeshLaunchSettings& mesh,
                             const std::string& socket_dir);

// Under `asya up` every server binds to loopback: "127.0.0.1:<port of addr>", port 0 (a free
// one, so replicas do not clash) when `addr` names none ("" or ":" or "host:").
std::string LoopbackMetricsAddr(std::string_view addr);

// Checks, before anything starts, that the runtime's program (RuntimeLaunchSpec's argv[0]) can be
// executed: a path must name an executable regular file, a bare name must be found on `path_env`
// (the PATH the supervisor passes on). kInvalidArgument naming file, actor, field and path, e.g.
// "<file>: actor \"x\": metadata.annotations[asya.sh/local-command]: /p/build/rt: no such file".
Status CheckRuntimeProgram(const actor::ActorSpec& spec, const MeshLaunchSettings& mesh,
                           const std::string& path_env);

// The runtime's command as `asya describe` shows it (the manifest's words, unresolved).
std::string RuntimeCommandLine(const actor::ActorSpec& spec, const std::string& python_runtime);

// <state_dir>/run/<actor>-<index>, or "" when a socket in it would not fit a Unix socket path
// (the supervisor then makes a short private directory under /tmp).
std::string PreferredSocketDir(const std::string& state_dir, const std::string& actor, int index);

// NAME=value lists.
std::string EnvValue(const std::vector<std::string>& env, std::string_view name);  // "" = unset
void SetEnvValue(std::vector<std::string>& env, std::string_view name, std::string_view value);

}  // namespace asya::local
