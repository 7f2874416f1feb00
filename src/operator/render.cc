#include "asya/operator/render.h"

#include <algorithm>
#include <set>
#include <utility>

namespace asya::op {
namespace {

using nlohmann::json;

constexpr const char* kSidecarName = "asya-sidecar";
constexpr const char* kRuntimeName = "asya-runtime";
constexpr const char* kSocketDir = "/var/run/asya";
constexpr const char* kScriptPath = "/opt/asya/asya_runtime.py";
constexpr const char* kProbeCommand =
    "test -S /var/run/asya/asya-runtime.sock && test -f /var/run/asya/runtime-ready";

std::string Where(const actor::ActorSpec& spec) {
  return (spec.source.empty() ? std::string("<input>") : spec.source) + ": actor \"" + spec.name +
         "\"";
}

json EnvValue(const std::string& name, const std::string& value) {
  return json{{"name", name}, {"value", value}};
}

json EnvSecret(const std::string& name, const SecretKeyRef& ref) {
  return json{{"name", name},
              {"valueFrom", {{"secretKeyRef", {{"name", ref.name}, {"key", ref.key}}}}}};
}

json Labels(const actor::ActorSpec& spec) {
  return json{{"app.kubernetes.io/managed-by", "asya-operator"},
              {"app.kubernetes.io/name", spec.name},
              {"app.kubernetes.io/part-of", "asya"},
              {kActorLabel, spec.name}};
}

json Meta(const actor::ActorSpec& spec, const std::string& name, const std::string& ns) {
  return json{{"name", name}, {"namespace", ns}, {"labels", Labels(spec)}};
}

json Probe(int initial_delay, int period, int timeout, int failure_threshold) {
  json p = {{"exec", {{"command", json::array({"sh", "-c", kProbeCommand})}}},
            {"periodSeconds", period},
            {"timeoutSeconds", timeout},
            {"failureThreshold", failure_threshold}};
  if (initial_delay > 0) {
    p["initialDelaySeconds"] = initial_delay;
  }
  return p;
}

void AppendEnv(json& env, const actor::EnvVar& e) {
  env.push_back(EnvValue(e.name, e.value));
}

bool HasEnv(const json& env, const std::string& name) {
  return std::any_of(env.begin(), env.end(),
                     [&](const json& e) { return e.is_object() && e.value("name", "") == name; });
}

// The transport's part of the sidecar environment.
void TransportEnv(const TransportEntry& t, json& env) {
  env.push_back(EnvValue("ASYA_TRANSPORT", t.type));
  if (t.type == "rabbitmq") {
    const RabbitMqConfig& r = t.rabbitmq;
    env.push_back(EnvValue("ASYA_RABBITMQ_HOST", r.host));
    env.push_back(EnvValue("ASYA_RABBITMQ_PORT", std::to_string(r.port)));
    if (r.username_secret) {
      env.push_back(EnvSecret("ASYA_RABBITMQ_USERNAME", *r.username_secret));
    } else {
      env.push_back(EnvValue("ASYA_RABBITMQ_USERNAME", r.username));
    }
    if (r.password_secret) {
      env.push_back(EnvSecret("ASYA_RABBITMQ_PASSWORD", *r.password_secret));
    }
    if (!r.exchange.empty()) {
      env.push_back(EnvValue("ASYA_RABBITMQ_EXCHANGE", r.exchange));
    }
    env.push_back(EnvValue("ASYA_QUEUE_AUTO_CREATE", r.queues.auto_create ? "true" : "false"));
  } else {
    const SqsConfig& s = t.sqs;
    env.push_back(EnvValue("ASYA_AWS_REGION", s.region));
    if (!s.endpoint.empty()) {
      env.push_back(EnvValue("ASYA_SQS_ENDPOINT", s.endpoint));
    }
    if (s.visibility_timeout_s > 0) {
      env.push_back(
          EnvValue("ASYA_SQS_VISIBILITY_TIMEOUT", std::to_string(s.visibility_timeout_s)));
    }
    if (s.wait_time_seconds > 0) {
      env.push_back(EnvValue("ASYA_SQS_WAIT_TIME_SECONDS", std::to_string(s.wait_time_seconds)));
    }
    if (s.access_key_id && s.secret_access_key) {
      env.push_back(EnvSecret("AWS_ACCESS_KEY_ID", *s.access_key_id));
      env.push_back(EnvSecret("AWS_SECRET_ACCESS_KEY", *s.secret_access_key));
    }
    env.push_back(EnvValue("ASYA_QUEUE_AUTO_CREATE", s.queues.auto_create ? "true" : "false"));
  }
}

// Seconds the sidecar drains on SIGTERM before requeueing what it holds; the pod's grace period
// adds gracefulShutdown on top, so the kubelet never kills a sidecar that is still draining.
int DrainSeconds(const actor::ActorSpec& spec) {
  return spec.processing_timeout_s > 0 ? spec.processing_timeout_s : spec.graceful_shutdown_s;
}

json SidecarContainer(const actor::ActorSpec& spec, const OperatorConfig& config,
                      const TransportEntry& t) {
  json env = json::array();
  env.push_back(EnvValue("ASYA_LOG_LEVEL", config.log_level));
  // The operator's gateway, else a literal value in the runtime's env (the original's fallback).
  std::string gateway =
      config.gateway_url.empty() ? spec.RuntimeEnv("ASYA_GATEWAY_URL") : config.gateway_url;
  if (!gateway.empty()) {
    env.push_back(EnvValue("ASYA_GATEWAY_URL", gateway));
  }
  for (const auto& e : actor::SidecarSpecEnv(spec)) {
    AppendEnv(env, e);
  }
  env.push_back(EnvValue("ASYA_ACTOR_HAPPY_END", "happy-end"));
  env.push_back(EnvValue("ASYA_ACTOR_ERROR_END", "error-end"));
  TransportEnv(t, env);
  env.push_back(EnvValue("ASYA_SOCKET_DIR", kSocketDir));
  env.push_back(EnvValue("ASYA_SHUTDOWN_TIMEOUT", std::to_string(DrainSeconds(spec)) + "s"));
  // Explicit (DESIGN §4 (13)): all interfaces, the pod's own IP is how Prometheus reaches it.
  env.push_back(EnvValue("ASYA_METRICS_ADDR", ":8080"));
  for (const auto& e : spec.sidecar_env_json) {
    env.push_back(e);  // last wins: the user's entries override the injected ones
  }
  json c = {
      {"name", kSidecarName},
      {"image", spec.sidecar_image.empty() ? config.sidecar_image : spec.sidecar_image},
      {"imagePullPolicy", spec.sidecar_image_pull_policy},
      {"env", env},
      {"ports", json::array({{{"name", "metrics"}, {"containerPort", 8080}, {"protocol", "TCP"}}})},
      {"volumeMounts", json::array({{{"name", "socket-dir"}, {"mountPath", kSocketDir}},
                                    {{"name", "tmp"}, {"mountPath", "/tmp"}}})}};
  if (!spec.sidecar_resources.empty()) {
    c["resources"] = spec.sidecar_resources;
  }
  return c;
}

void WireRuntime(const actor::ActorSpec& spec, json& c) {
  c["command"] = json::array({spec.python_executable, kScriptPath});
  json& env = c["env"];
  if (!env.is_array()) {
    env = json::array();
  }
  env.push_back(EnvValue("ASYA_SOCKET_DIR", kSocketDir));
  // The sidecar's value (actor::EffectiveRuntimeTimeout), so both processes use one timeout.
  if (std::string timeout = actor::EffectiveRuntimeTimeout(spec);
      !timeout.empty() && !HasEnv(env, "ASYA_RUNTIME_TIMEOUT")) {
    env.push_back(EnvValue("ASYA_RUNTIME_TIMEOUT", timeout));
  }
  // A runtime serving fewer connections than its sidecar keeps in flight stalls the extra
  // messages (the same rule as asya up).
  // (the same rule as asya up: spec.sidecar.concurrency > 1, or the user's
  // ASYA_SIDECAR_CONCURRENCY; otherwise the runtime keeps its own default).
  std::string concurrency =
      spec.sidecar_concurrency > 1 ? std::to_string(spec.sidecar_concurrency) : "";
  for (const auto& e : spec.sidecar_env) {
    if (e.name == "ASYA_SIDECAR_CONCURRENCY" && !e.value.empty() &&
        e.value.find_first_not_of("0123456789") == std::string::npos &&
        e.value.find_first_not_of('0') != std::string::npos) {
      concurrency = e.value;
    }
  }
  if (!concurrency.empty() && !HasEnv(env, "ASYA_RUNTIME_CONCURRENCY")) {
    env.push_back(EnvValue("ASYA_RUNTIME_CONCURRENCY", concurrency));
  }
  if (spec.IsEndActor()) {
    env.push_back(EnvValue("ASYA_ENABLE_VALIDATION", "false"));
  }
  json& mounts = c["volumeMounts"];
  if (!mounts.is_array()) {
    mounts = json::array();
  }
  mounts.push_back({{"name", "socket-dir"}, {"mountPath", kSocketDir}});
  mounts.push_back({{"name", "tmp"}, {"mountPath", "/tmp"}});
  mounts.push_back({{"name", "asya-runtime"},
                    {"mountPath", kScriptPath},
                    {"subPath", kRuntimeScriptKey},
                    {"readOnly", true}});
  if (!c.contains("startupProbe") || c["startupProbe"].is_null()) {
    c["startupProbe"] = Probe(3, 2, 3, 150);
  }
  if (!c.contains("livenessProbe") || c["livenessProbe"].is_null()) {
    c["livenessProbe"] = Probe(0, 30, 5, 3);
  }
  if (!c.contains("readinessProbe") || c["readinessProbe"].is_null()) {
    c["readinessProbe"] = Probe(0, 10, 3, 3);
  }
}

json PodTemplate(const actor::ActorSpec& spec, const OperatorConfig& config,
                 const TransportEntry& t, const std::string& service_account) {
  static const json kEmpty = json::object();
  auto it = spec.pod_template.find("metadata");
  const json& meta = it != spec.pod_template.end() && it->is_object() ? *it : kEmpty;
  json labels =
      meta.contains("labels") && meta["labels"].is_object() ? meta["labels"] : json::object();
  labels[kActorLabel] = spec.name;  // forced: the selector must always match
  json out_meta = {{"labels", std::move(labels)}};
  if (meta.contains("annotations") && meta["annotations"].is_object() &&
      !meta["annotations"].empty()) {
    out_meta["annotations"] = meta["annotations"];
  }
  it = spec.pod_template.find("spec");
  json pod = it != spec.pod_template.end() && it->is_object() ? *it : json::object();
  json& containers = pod["containers"];
  if (!containers.is_array()) {
    containers = json::array();
  }
  for (json& c : containers) {
    if (c.is_object() && c.value("name", "") == kRuntimeName) {
      WireRuntime(spec, c);
    }
  }
  containers.push_back(SidecarContainer(spec, config, t));
  json& volumes = pod["volumes"];
  if (!volumes.is_array()) {
    volumes = json::array();
  }
  volumes.push_back({{"name", "socket-dir"}, {"emptyDir", json::object()}});
  volumes.push_back({{"name", "tmp"}, {"emptyDir", json::object()}});
  volumes.push_back({{"name", "asya-runtime"},
                     {"configMap", {{"name", config.runtime_configmap}, {"defaultMode", 0755}}}});
  pod["terminationGracePeriodSeconds"] = DrainSeconds(spec) + spec.graceful_shutdown_s;
  if (!service_account.empty()) {
    pod["serviceAccountName"] = service_account;
  }
  return json{{"metadata", std::move(out_meta)}, {"spec", std::move(pod)}};
}

json Workload(const actor::ActorSpec& spec, const std::string& ns, json pod_template) {
  const bool sts = spec.workload_kind == "StatefulSet";
  json s = {{"selector", {{"matchLabels", {{kActorLabel, spec.name}}}}},
            {"template", std::move(pod_template)}};
  if (!spec.scaling.enabled) {
    s["replicas"] = spec.workload_replicas;
  }
  if (sts) {
    s["serviceName"] = spec.name;
    s["podManagementPolicy"] = "Parallel";
  }
  return json{{"apiVersion", "apps/v1"},
              {"kind", sts ? "StatefulSet" : "Deployment"},
              {"metadata", Meta(spec, spec.name, ns)},
              {"spec", s}};
}

json HeadlessService(const actor::ActorSpec& spec, const std::string& ns) {
  return json{{"apiVersion", "v1"},
              {"kind", "Service"},
              {"metadata", Meta(spec, spec.name, ns)},
              {"spec",
               {{"clusterIP", "None"},
                {"selector", {{kActorLabel, spec.name}}},
                {"ports", json::array({{{"name", "metrics"}, {"port", 8080}}})}}}};
}

std::string UrlPathEscape(const std::string& s) {
  static const char* kHex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
        c == '.' || c == '_' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

// Returns (trigger, TriggerAuthentication or null).
std::pair<json, json> Trigger(const actor::ActorSpec& spec, const std::string& ns,
                              const TransportEntry& t) {
  const std::string queue = "asya-" + spec.name;
  const std::string auth_name = spec.name + "-trigger-auth";
  json trigger = {{"name", kTriggerName}};
  json auth = nullptr;
  json auth_spec;
  if (t.type == "rabbitmq") {
    const RabbitMqConfig& r = t.rabbitmq;
    const std::string host = r.host + ":" + std::to_string(r.management_port);
    trigger["type"] = "rabbitmq";
    // protocol http = the management API, which counts ready + unacknowledged messages, so an
    // actor busy on its last message is not scaled to zero under it.
    trigger["metadata"] = {
        {"protocol", "http"},    {"host", "http://" + host + "/" + UrlPathEscape(r.vhost)},
        {"vhostName", r.vhost},  {"queueName", queue},
        {"mode", "QueueLength"}, {"value", std::to_string(spec.scaling.queue_length)}};
    if (r.password_secret) {
      SecretKeyRef user =
          r.username_secret.value_or(SecretKeyRef{r.password_secret->name, "username"});
      auth_spec = {
          {"secretTargetRef",
           json::array({{{"parameter", "username"}, {"name", user.name}, {"key", user.key}},
                        {{"parameter", "password"},
                         {"name", r.password_secret->name},
                         {"key", r.password_secret->key}}})}};
    }
  } else {
    const SqsConfig& s = t.sqs;
    std::string base =
        s.endpoint.empty() ? "https://sqs." + s.region + ".amazonaws.com" : s.endpoint;
    trigger["type"] = "aws-sqs-queue";
    trigger["metadata"] = {{"queueURL", base + "/" + s.account_id + "/" + queue},
                           {"queueLength", std::to_string(spec.scaling.queue_length)},
                           {"awsRegion", s.region},
                           {"scaleOnInFlight", "true"}};
    if (!s.endpoint.empty()) {
      trigger["metadata"]["awsEndpoint"] = s.endpoint;
    }
    if (s.access_key_id && s.secret_access_key) {
      auth_spec = {{"secretTargetRef", json::array({{{"parameter", "awsAccessKeyID"},
                                                     {"name", s.access_key_id->name},
                                                     {"key", s.access_key_id->key}},
                                                    {{"parameter", "awsSecretAccessKey"},
                                                     {"name", s.secret_access_key->name},
                                                     {"key", s.secret_access_key->key}}})}};
    } else if (!s.actor_role_arn.empty()) {
      auth_spec = {{"podIdentity", {{"provider", "aws"}, {"identityOwner", "workload"}}}};
    } else {
      auth_spec = {{"podIdentity", {{"provider", "aws"}}}};  // KEDA's own identity
    }
  }
  if (!auth_spec.is_null()) {
    trigger["authenticationRef"] = {{"name", auth_name}};
    auth = {{"apiVersion", "keda.sh/v1alpha1"},
            {"kind", "TriggerAuthentication"},
            {"metadata", Meta(spec, auth_name, ns)},
            {"spec", auth_spec}};
  }
  return {trigger, auth};
}

json ScaledObject(const actor::ActorSpec& spec, const std::string& ns, json trigger) {
  const actor::ScalingSpec& sc = spec.scaling;
  json behavior = {
      {"scaleDown",
       {{"stabilizationWindowSeconds", sc.cooldown_period_s},
        {"selectPolicy", "Max"},
        {"policies", json::array({{{"type", "Pods"}, {"value", 1}, {"periodSeconds", 60}}})}}},
      {"scaleUp",
       {{"stabilizationWindowSeconds", 0},
        {"selectPolicy", "Max"},
        {"policies",
         json::array({{{"type", "Pods"}, {"value", 10}, {"periodSeconds", 60}},
                      {{"type", "Percent"}, {"value", 100}, {"periodSeconds", 60}}})}}}};
  json advanced = {{"horizontalPodAutoscalerConfig", {{"behavior", behavior}}}};
  if (sc.restore_to_original_replica_count) {
    advanced["restoreToOriginalReplicaCount"] = *sc.restore_to_original_replica_count;
  }
  json modifiers = json::object();
  if (!sc.formula.empty()) {
    modifiers["formula"] = sc.formula;
  }
  if (!sc.target.empty()) {
    modifiers["target"] = sc.target;
  }
  if (!sc.activation_target.empty()) {
    modifiers["activationTarget"] = sc.activation_target;
  }
  if (!sc.metric_type.empty()) {
    modifiers["metricType"] = sc.metric_type;
  }
  if (!modifiers.empty()) {
    advanced["scalingModifiers"] = modifiers;
  }
  return json{{"apiVersion", "keda.sh/v1alpha1"},
              {"kind", "ScaledObject"},
              {"metadata", Meta(spec, spec.name, ns)},
              {"spec",
               {{"scaleTargetRef",
                 {{"apiVersion", "apps/v1"}, {"kind", spec.workload_kind}, {"name", spec.name}}},
                {"minReplicaCount", sc.min_replicas},
                {"maxReplicaCount", sc.max_replicas},
                {"pollingInterval", sc.polling_interval_s},
                {"cooldownPeriod", sc.cooldown_period_s},
                {"triggers", json::array({std::move(trigger)})},
                {"advanced", advanced}}}};
}

}  // namespace

std::string ActorNamespace(const actor::ActorSpec& spec, const OperatorConfig& config,
                           const RenderOptions& options) {
  if (!spec.namespace_.empty()) {
    return spec.namespace_;
  }
  return options.namespace_.empty() ? config.namespace_ : options.namespace_;
}

Result<std::vector<json>> RenderActor(const actor::ActorSpec& spec, const OperatorConfig& config,
                                      const RenderOptions& options) {
  auto fail = [&](const std::string& field, const std::string& text) {
    return MakeError(ErrorCode::kInvalidArgument, Where(spec) + ": " + field + ": " + text);
  };
  if (!spec.namespace_.empty() && !options.namespace_.empty() &&
      spec.namespace_ != options.namespace_) {
    return fail("metadata.namespace",
                "is '" + spec.namespace_ + "', but --namespace is '" + options.namespace_ + "'");
  }
  if (spec.transport.empty()) {
    return fail("spec.transport", "is required (the cluster's transport name, e.g. rabbitmq)");
  }
  auto it = config.transports.find(spec.transport);
  if (it == config.transports.end()) {
    std::string known;
    for (const auto& [name, entry] : config.transports) {
      known += (known.empty() ? "" : ", ") + name;
    }
    return fail("spec.transport", "transport '" + spec.transport +
                                      "' is not in the operator's transport registry (known: " +
                                      (known.empty() ? "none" : known) + ")");
  }
  const TransportEntry& t = it->second;
  if (!t.enabled) {
    return fail("spec.transport", "transport '" + spec.transport + "' is disabled");
  }
  if (t.type == "sqs" && spec.scaling.enabled && t.sqs.account_id.empty()) {
    return fail("spec.transport", "transport '" + spec.transport +
                                      "' (sqs) has no accountId; the KEDA trigger needs the "
                                      "queue URL");
  }
  const std::string ns = ActorNamespace(spec, config, options);
  std::vector<json> out;
  std::string service_account;
  if (t.type == "sqs" && !t.sqs.actor_role_arn.empty()) {
    const json& pod = spec.pod_template.value("spec", json::object());
    if (pod.contains("serviceAccountName") && pod["serviceAccountName"].is_string()) {
      return fail("spec.workload.template.spec.serviceAccountName",
                  "cannot be set when transport '" + spec.transport +
                      "' uses IRSA (actorRoleArn); the operator creates asya-" + spec.name);
    }
    service_account = "asya-" + spec.name;
    json meta = Meta(spec, service_account, ns);
    meta["annotations"] = {{"eks.amazonaws.com/role-arn", t.sqs.actor_role_arn}};
    out.push_back({{"apiVersion", "v1"}, {"kind", "ServiceAccount"}, {"metadata", meta}});
  }
  if (spec.workload_kind == "StatefulSet") {
    out.push_back(HeadlessService(spec, ns));
  }
  out.push_back(Workload(spec, ns, PodTemplate(spec, config, t, service_account)));
  if (spec.scaling.enabled) {
    auto [trigger, auth] = Trigger(spec, ns, t);
    if (!auth.is_null()) {
      out.push_back(std::move(auth));
    }
    out.push_back(ScaledObject(spec, ns, std::move(trigger)));
  }
  return out;
}

json RenderRuntimeConfigMap(const std::string& ns, const OperatorConfig& config,
                            const std::string& runtime_script) {
  return json{{"apiVersion", "v1"},
              {"kind", "ConfigMap"},
              {"metadata",
               {{"name", config.runtime_configmap},
                {"namespace", ns},
                {"labels",
                 {{"app.kubernetes.io/component", "asya-runtime"},
                  {"app.kubernetes.io/managed-by", "asya-operator"},
                  {"app.kubernetes.io/name", "asya-runtime"},
                  {"app.kubernetes.io/part-of", "asya"}}}}},
              {"data", {{kRuntimeScriptKey, runtime_script}}}};
}

Result<std::vector<json>> RenderAll(const std::vector<actor::ActorSpec>& specs,
                                    const OperatorConfig& config, const RenderOptions& options) {
  std::vector<json> config_maps;
  std::vector<json> objects;
  std::set<std::string> namespaces;
  std::string errors;
  for (const auto& spec : specs) {
    auto r = RenderActor(spec, config, options);
    if (!r) {
      errors += (errors.empty() ? "" : "\n") + r.error().message;
      continue;
    }
    const std::string ns = ActorNamespace(spec, config, options);
    if (namespaces.insert(ns).second) {
      config_maps.push_back(RenderRuntimeConfigMap(ns, config, options.runtime_script));
    }
    for (auto& o : *r) {
      objects.push_back(std::move(o));
    }
  }
  if (!errors.empty()) {
    return MakeError(ErrorCode::kInvalidArgument, errors);
  }
  config_maps.insert(config_maps.end(), std::make_move_iterator(objects.begin()),
                     std::make_move_iterator(objects.end()));
  return config_maps;
}

std::string ToJsonList(const std::vector<json>& objects) {
  json list = {{"apiVersion", "v1"},
               {"kind", "List"},
               {"metadata", json::object()},
               {"items", json(objects)}};
  return list.dump(2, ' ', false, json::error_handler_t::replace) + "\n";
}

}  // namespace asya::op
