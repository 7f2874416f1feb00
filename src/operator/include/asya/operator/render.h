// Render: AsyncActor + operator configuration -> the Kubernetes objects the operator applies.
// Pure and deterministic (same input, byte-identical output); `asya render` prints exactly these
// and the reconcile loop applies exactly these (adding owner references, which need the UID).
//
// Per actor `<a>` in namespace `<ns>` (DESIGN §4.12, reference-controlplane §2.4-2.6, §3, with
// the §10 defects fixed):
//   - ConfigMap `asya-runtime` (once per namespace, first): data `asya_runtime.py`.
//   - ServiceAccount `asya-<a>` with `eks.amazonaws.com/role-arn` (sqs entries with
//     actorRoleArn only).
//   - Deployment or StatefulSet `<a>` (StatefulSet: plus a headless Service `<a>` named by
//     serviceName, podManagementPolicy Parallel): selector `asya.sh/actor=<a>` (forced on the pod
//     template, whatever the user's labels say); replicas only when scaling is off (the HPA owns
//     them otherwise); the runtime wiring (command `<python> /opt/asya/asya_runtime.py`,
//     ASYA_SOCKET_DIR, socket-dir/tmp emptyDirs, the script mount, startup/liveness/readiness
//     probes when the user set none) and the injected `asya-sidecar` container (appended last)
//     whose environment is actor::SidecarSpecEnv plus the transport's;
//     terminationGracePeriodSeconds = drain (processing timeout, the sidecar's
//     ASYA_SHUTDOWN_TIMEOUT) + gracefulShutdown, so a rollout or scale-down never kills a message
//     in flight.
//   - TriggerAuthentication `<a>-trigger-auth` and ScaledObject `<a>` (scaling on only): one
//     trigger named `queueLength` (so `spec.scaling.advanced.formula` can name it); RabbitMQ
//     through the management API (protocol http: ready + unacknowledged messages), SQS with
//     scaleOnInFlight, so a busy actor never scales to zero under its last message.
// Objects are nlohmann::json with sorted keys.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "asya/actor/manifest.h"
#include "asya/base/result.h"
#include "asya/operator/config.h"

namespace asya::op {

inline constexpr const char* kActorLabel = "asya.sh/actor";
inline constexpr const char* kTriggerName = "queueLength";
inline constexpr const char* kRuntimeScriptKey = "asya_runtime.py";

struct RenderOptions {
  std::string namespace_;      // --namespace: for actors without one ("" = config namespace)
  std::string runtime_script;  // content of asya_runtime.py for the runtime ConfigMap
};

// The namespace an actor lands in: metadata.namespace, else options, else the config's.
std::string ActorNamespace(const actor::ActorSpec& spec, const OperatorConfig& config,
                           const RenderOptions& options);

// Objects of one actor (without the shared runtime ConfigMap). Errors (kInvalidArgument) name
// the file, actor and field like the manifest loader: unknown transport, a disabled entry, an
// SQS entry without accountId, a custom serviceAccountName with IRSA, a namespace conflict.
Result<std::vector<nlohmann::json>> RenderActor(const actor::ActorSpec& spec,
                                                const OperatorConfig& config,
                                                const RenderOptions& options);

// The runtime ConfigMap of one namespace.
nlohmann::json RenderRuntimeConfigMap(const std::string& ns, const OperatorConfig& config,
                                      const std::string& runtime_script);

// All actors: one runtime ConfigMap per namespace (in order of first use), then each actor's
// objects in input order. Every actor's errors are reported, one line each.
Result<std::vector<nlohmann::json>> RenderAll(const std::vector<actor::ActorSpec>& specs,
                                              const OperatorConfig& config,
                                              const RenderOptions& options);

// Output formats of `asya render`: a YAML multi-document stream ("---" before each document),
// or a `v1` `List` as indented JSON. Both end with a newline.
std::string ToYamlStream(const std::vector<nlohmann::json>& objects);
std::string ToJsonList(const std::vector<nlohmann::json>& objects);

// One JSON value as block YAML (keys in the object's order; strings quoted when YAML would
// read them as anything else; multi-line strings as literal blocks).
std::string ToYaml(const nlohmann::json& value);

}  // namespace asya::op
