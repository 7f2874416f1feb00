// Loading and validating actor declarations for `asya up`.
//
// Two input formats, both exactly as a cluster would receive them:
//   - `AsyncActor` resources (apiVersion asya.sh/v1alpha1), one or many YAML documents per file;
//   - `asya-actor` Helm chart values files (`actors:` list, or single mode with a root `name:`),
//     where `scaling` and `workload` fall back to `default.scaling` / `default.workload` as whole
//     objects (no deep merge between an actor's object and the default).
//
// Validation follows the operator (rules V1-V4) plus the "desired" rules of the reference
// (min <= max, queueLength >= 1, DNS-1123 names, reserved env/volumes/mounts, non-negative
// timeouts, containers with name + image, no duplicates). Every error names the file, the actor
// and the field. Pure: reads files, nothing else.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "asya/base/result.h"

namespace asya::local {

// Annotation naming a native runtime command used instead of `python3 asya_runtime.py`.
inline constexpr std::string_view kLocalCommandAnnotation = "asya.sh/local-command";

struct EnvVar {
  std::string name;
  std::string value;
};

// spec.scaling with CRD defaults applied (§1.2 of the control-plane reference).
struct ScalingSpec {
  bool present = false;  // the manifest had a spec.scaling object (printer columns MIN/MAX)
  bool enabled = false;
  int min_replicas = 0;
  int max_replicas = 50;
  int polling_interval_s = 10;
  int cooldown_period_s = 60;
  int queue_length = 5;
};

struct ActorSpec {
  std::string name;
  std::string source;     // file the actor came from (for messages)
  std::string directory;  // absolute directory of that file: working dir + PYTHONPATH
  std::string transport;  // spec.transport (names the cluster's transport; informative here)
  ScalingSpec scaling;
  std::string workload_kind = "Deployment";
  int workload_replicas = 1;
  std::string python_executable = "python3";
  int processing_timeout_s = 0;     // spec.timeout.processing; 0 = not set
  int graceful_shutdown_s = 30;     // spec.timeout.gracefulShutdown (<= 0 -> 30)
  std::vector<EnvVar> runtime_env;  // env of the asya-runtime container, in order
  std::vector<EnvVar> sidecar_env;  // spec.sidecar.env, in order
  // Native runtime command (annotation asya.sh/local-command, split like a shell would, without
  // expansions); empty = the Python runtime.
  std::vector<std::string> local_command;
  bool is_crew = false;  // happy-end / error-end started by asya up itself

  // Value of an env var of the runtime container, or "" when absent.
  [[nodiscard]] std::string RuntimeEnv(std::string_view key) const;
  // Canonical text of everything that affects the processes; equal fingerprints = no restart.
  [[nodiscard]] std::string Fingerprint() const;
};

struct LoadResult {
  std::vector<ActorSpec> actors;
  std::vector<std::string> warnings;  // e.g. unknown fields, ignored crew manifests
};

// Loads files and directories (every *.yaml / *.yml directly inside a directory, sorted by
// name). Errors: kInvalidArgument with one line per problem ("<file>: actor \"x\": <field>: ...");
// kNotFound for a missing path.
Result<LoadResult> LoadManifests(const std::vector<std::string>& paths);

// Parses one file's text. `source` is used in messages; `directory` becomes ActorSpec::directory.
// Duplicate names are checked by LoadManifests across files, and here within the text.
Result<LoadResult> ParseManifests(std::string_view text, const std::string& source,
                                  const std::string& directory);

// DNS-1123 label check used for actor names: lowercase alphanumerics and '-', starting with a
// letter, ending with an alphanumeric, at most 253 characters.
bool IsValidActorName(std::string_view name);

// Splits a command line on whitespace with '...' and "..." quoting and backslash escapes.
Result<std::vector<std::string>> SplitCommand(std::string_view text);

}  // namespace asya::local
