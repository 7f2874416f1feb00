// The AsyncActor model: spec types, defaults, validation and loading. One library for `asya up`,
// `asya render` and the operator, so a manifest means the same thing everywhere.
//
// Two input formats, both exactly as a cluster would receive them:
//   - `AsyncActor` resources (apiVersion asya.sh/v1alpha1), one or many YAML documents per file;
//   - `asya-actor` Helm chart values files (`actors:` list, or single mode with a root `name:`),
//     read exactly as the chart renders them (deploy/README.md): each actor deep-merged over
//     `default`, the seed's shorthand (`image`, `handler`, `env`, `resources`) applied to the
//     asya-runtime container, `transport`/`namespace` falling back to the root's.
//
// Validation follows the operator (rules V1-V4) plus the "desired" rules of the reference
// (min <= max, queueLength >= 1, DNS-1123 names, reserved env/volumes/mounts, non-negative
// timeouts, containers with name + image, no duplicates) and our additions (concurrency, retry
// policy, max deliveries, visibility). Unknown fields (outside metadata and the pod template) are
// refused as the CRD's strict validation and the chart's values.schema.json do, with the closest
// known name: "spec.scaling.minReplica: unknown field; did you mean `minReplicas`?". Every error
// names the file, the actor and the field:
//   "<file>: actor \"<name>\": <field>: <text>"
// Pure: reads files, nothing else.
//
// Defaults (one set, used by asya up, render, the operator and the CRD; where the original's code
// fallbacks disagree with its CRD, the CRD wins):
//   spec.timeout.processing 300 s, gracefulShutdown 30 s (also when spec.timeout is omitted);
//   spec.scaling: a block without `enabled` means scaling ON (DESIGN precise 11); minReplicas 0,
//   maxReplicas 50, pollingInterval 10, cooldownPeriod 60 (the original's code used 300),
//   queueLength 5; no block = scaling off, spec.workload.replicas (default 1) replicas;
//   spec.workload.kind Deployment, pythonExecutable python3; spec.sidecar.imagePullPolicy
//   IfNotPresent; spec.sidecar.concurrency 1; spec.retry.maxAttempts 1 (no retry), backoff 1s,
//   maxBackoff 5m; spec.maxDeliveries 5; spec.timeout.visibility 0 = the sidecar's default
//   (2 x processing).
#pragma once

#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "asya/base/result.h"

namespace asya::actor {

inline constexpr std::string_view kApiVersion = "asya.sh/v1alpha1";
inline constexpr std::string_view kKind = "AsyncActor";
// Annotation naming a native runtime command used instead of `python3 asya_runtime.py`.
inline constexpr std::string_view kLocalCommandAnnotation = "asya.sh/local-command";

struct EnvVar {
  std::string name;
  std::string value;
  friend bool operator==(const EnvVar&, const EnvVar&) = default;
};

// spec.scaling with defaults applied.
struct ScalingSpec {
  bool present = false;  // the manifest had a spec.scaling object (printer columns MIN/MAX)
  bool enabled = false;  // present and not `enabled: false`
  int min_replicas = 0;
  int max_replicas = 50;
  int polling_interval_s = 10;
  int cooldown_period_s = 60;
  int queue_length = 5;
  // spec.scaling.advanced (KEDA only; asya up scales on queue length).
  std::string formula;
  std::string target;
  std::string activation_target;
  std::string metric_type;
  std::optional<bool> restore_to_original_replica_count;
};

// spec.retry (DESIGN §4.3 and precise behaviour 1).
struct RetrySpec {
  int max_attempts = 1;                    // all attempts at one actor, the first included
  std::string backoff = "1s";              // Go duration
  std::string max_backoff = "5m";          // Go duration
  std::vector<std::string> non_retryable;  // exception class names
};

struct ActorSpec {
  std::string name;
  std::string namespace_;  // metadata.namespace ("" = not set)
  std::string source;      // file the actor came from (for messages)
  std::string directory;   // absolute directory of that file: working dir + PYTHONPATH
  std::string transport;   // spec.transport ("" = omitted; only asya up accepts that)
  ScalingSpec scaling;
  std::string workload_kind = "Deployment";
  int workload_replicas = 1;
  std::string python_executable = "python3";
  int processing_timeout_s = 300;   // spec.timeout.processing; 0 = no deadline from the spec
  int graceful_shutdown_s = 30;     // spec.timeout.gracefulShutdown (<= 0 -> 30)
  int visibility_timeout_s = 0;     // spec.timeout.visibility; 0 = the sidecar's default
  int sidecar_concurrency = 1;      // spec.sidecar.concurrency
  RetrySpec retry;                  // spec.retry
  int max_deliveries = 5;           // spec.maxDeliveries
  std::vector<EnvVar> runtime_env;  // env of the asya-runtime container with a `value`, in order
  std::vector<EnvVar> sidecar_env;  // spec.sidecar.env entries with a `value`, in order
  // Native runtime command (annotation asya.sh/local-command, split like a shell would, without
  // expansions); empty = the Python runtime.
  std::vector<std::string> local_command;
  bool is_crew = false;  // happy-end / error-end started by asya up itself

  // What only a cluster uses, kept as JSON exactly as declared (YAML scalars typed as YAML 1.2
  // core: plain true/false -> bool, integers -> number, ~/null -> null, quoted -> string).
  nlohmann::json labels = nlohmann::json::object();             // metadata.labels
  nlohmann::json annotations = nlohmann::json::object();        // metadata.annotations
  nlohmann::json pod_template = nlohmann::json::object();       // spec.workload.template
  std::string sidecar_image;                                    // spec.sidecar.image ("" = default)
  std::string sidecar_image_pull_policy = "IfNotPresent";       // spec.sidecar.imagePullPolicy
  nlohmann::json sidecar_resources = nlohmann::json::object();  // spec.sidecar.resources
  nlohmann::json sidecar_env_json = nlohmann::json::array();    // spec.sidecar.env, all entries

  // Value of an env var of the runtime container, or "" when absent.
  [[nodiscard]] std::string RuntimeEnv(std::string_view key) const;
  // Canonical text of everything that affects the processes; equal fingerprints = no restart.
  [[nodiscard]] std::string Fingerprint() const;
  // happy-end / error-end (by name, in a cluster; asya up also marks its own crew with is_crew).
  [[nodiscard]] bool IsEndActor() const;
};

inline constexpr std::string_view kRuntimeTimeoutVar = "ASYA_RUNTIME_TIMEOUT";

// The one handler timeout both the runtime and the sidecar get (as ASYA_RUNTIME_TIMEOUT): the
// variable from spec.sidecar.env, else from the asya-runtime container's env, else
// spec.timeout.processing ("<n>s"); "" when none (processing 0). Two different values in the two
// containers are refused when parsing.
std::string EffectiveRuntimeTimeout(const ActorSpec& spec);

// The sidecar environment that follows from the spec alone, in order: ASYA_ACTOR_NAME,
// ASYA_IS_END_ACTOR (end actors only), ASYA_RUNTIME_TIMEOUT (EffectiveRuntimeTimeout, when set),
// ASYA_SIDECAR_CONCURRENCY, ASYA_RETRY_MAX_ATTEMPTS, ASYA_RETRY_BACKOFF, ASYA_RETRY_MAX_BACKOFF,
// ASYA_RETRY_NON_RETRYABLE (comma-joined, when not empty), ASYA_MAX_DELIVERIES,
// ASYA_VISIBILITY_TIMEOUT (when > 0). The one mapping both `asya up` and render use; where the
// sidecar runs (transport, socket dir, metrics) is added by each of them.
std::vector<EnvVar> SidecarSpecEnv(const ActorSpec& spec);
// SidecarSpecEnv(spec) followed by spec.sidecar_env (the user's entries; later names win).
std::vector<EnvVar> EffectiveSidecarEnv(const ActorSpec& spec);

struct LoadResult {
  std::vector<ActorSpec> actors;
  std::vector<std::string> warnings;  // e.g. ignored crew manifests, valueFrom, KEDA-only fields
};

struct ParseOptions {
  // asya up picks the transport itself (DESIGN precise 9); render and the operator require it.
  bool require_transport = false;
  // asya up runs its own happy-end / error-end: skip such manifests with a warning.
  bool skip_crew = true;
};

// Largest manifest file (or text) accepted: Kubernetes stores objects of at most ~1.5 MiB, and a
// file holds a handful. Larger input is refused with its size, before it is read or parsed.
inline constexpr size_t kMaxManifestBytes = 4u << 20;

// Loads files and directories (every *.yaml / *.yml directly inside a directory, sorted by
// name). Errors: kInvalidArgument with one line per problem ("<file>: actor \"x\": <field>: ...");
// kNotFound for a missing path.
Result<LoadResult> LoadManifests(const std::vector<std::string>& paths,
                                 const ParseOptions& options = {});

// Parses one file's text. `source` is used in messages; `directory` becomes ActorSpec::directory.
// Duplicate names are checked by LoadManifests across files, and here within the text.
Result<LoadResult> ParseManifests(std::string_view text, const std::string& source,
                                  const std::string& directory, const ParseOptions& options = {});

// Parses a YAML (or JSON) stream into one JSON value per non-empty document, typed as
// ActorSpec::pod_template is. Errors: kInvalidArgument "<source>:<line>: invalid YAML: ...".
Result<std::vector<nlohmann::json>> ParseYamlDocuments(std::string_view text,
                                                       const std::string& source);

// "unknown field; did you mean `<closest>`?" when a known name is within a few edits of `key`
// (case-insensitive Damerau-Levenshtein), else "unknown field (known: a, b, ...)".
std::string UnknownFieldText(std::string_view key, std::initializer_list<std::string_view> known);

// A gateway tools document (reference-controlplane §7.3) among the manifests: an object with a
// top-level `tools:` key and no `kind`/`apiVersion` (nor a values file's `actors`/`name`/
// `default`). LoadManifests and ParseManifests skip such documents; `asya up` hands them to its
// gateway (src/local/gateway.h).
bool IsToolsDocument(const nlohmann::json& doc);

// DNS-1123 label check used for actor names: lowercase alphanumerics and '-', starting with a
// letter, ending with an alphanumeric, at most 253 characters.
bool IsValidActorName(std::string_view name);

// Splits a command line on whitespace with '...' and "..." quoting and backslash escapes.
Result<std::vector<std::string>> SplitCommand(std::string_view text);

}  // namespace asya::actor
