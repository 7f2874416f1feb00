// The operator's configuration: the transport registry (reference-controlplane §5.1) plus image,
// namespace and gateway settings. The same file feeds `asya render --operator-config` and the
// operator (`ASYA_TRANSPORT_CONFIG`), so both render the same objects.
//
// Format (JSON or YAML), decoded strictly: an unknown key at any level is an error naming it.
//   transports:                      # entries by name; several entries may share a type
//     <name>: {type: rabbitmq|sqs, enabled: true, config: {...}}
//   sidecarImage: asya-sidecar:latest
//   namespace: default               # for actors without metadata.namespace
//   gatewayURL: ""                   # ASYA_GATEWAY_URL of every sidecar ("" = none)
//   logLevel: info                   # ASYA_LOG_LEVEL of every sidecar
//   runtimeConfigMap: asya-runtime   # ConfigMap carrying asya_runtime.py
//
// rabbitmq config: host (required), port (5672), managementPort (15672; KEDA's trigger uses the
// management API so it counts unacknowledged messages too), vhost ("/"), username ("guest"),
// passwordSecretRef {name,key}, usernameSecretRef {name,key} (default: the password secret,
// key "username"), exchange ("" = the sidecar's default "asya"), queues {autoCreate (true),
// forceRecreate, dlq {enabled, maxRetryCount}}.
// sqs config: region (required), accountId (required for the KEDA trigger), endpoint,
// actorRoleArn (IRSA: a ServiceAccount asya-<actor> annotated with the role), visibilityTimeout,
// waitTimeSeconds, credentials {accessKeyIdSecretRef, secretAccessKeySecretRef}, queues {...,
// dlq {enabled, maxRetryCount, retentionDays}}, tags {k: v}.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "asya/base/result.h"

namespace asya::op {

struct SecretKeyRef {
  std::string name;
  std::string key;
};

struct QueueSettings {
  bool auto_create = true;
  bool force_recreate = false;
  bool dlq_enabled = false;
  int dlq_max_retry_count = 3;
  int dlq_retention_days = 14;
};

struct RabbitMqConfig {
  std::string host;
  int port = 5672;
  int management_port = 15672;
  std::string vhost = "/";
  std::string username = "guest";
  std::optional<SecretKeyRef> password_secret;
  std::optional<SecretKeyRef> username_secret;
  std::string exchange;
  QueueSettings queues;
};

struct SqsConfig {
  std::string region;
  std::string account_id;
  std::string endpoint;
  std::string actor_role_arn;
  int visibility_timeout_s = 0;
  int wait_time_seconds = 0;
  std::optional<SecretKeyRef> access_key_id;
  std::optional<SecretKeyRef> secret_access_key;
  QueueSettings queues;
  std::map<std::string, std::string> tags;
};

struct TransportEntry {
  std::string name;
  std::string type;  // "rabbitmq" | "sqs"
  bool enabled = true;
  RabbitMqConfig rabbitmq;
  SqsConfig sqs;
};

struct OperatorConfig {
  std::map<std::string, TransportEntry> transports;
  std::string sidecar_image = "asya-sidecar:latest";
  std::string namespace_ = "default";
  std::string gateway_url;
  std::string log_level = "info";
  std::string runtime_configmap = "asya-runtime";
};

// The registry used when no configuration is given: one `rabbitmq` entry (host `rabbitmq`,
// guest, no secrets). SQS needs a real account and region, so it always needs a config.
OperatorConfig DefaultOperatorConfig();

// Parses the configuration (JSON or YAML). Errors: kInvalidArgument "<source>: <path>: <text>".
Result<OperatorConfig> ParseOperatorConfig(std::string_view text, const std::string& source);

}  // namespace asya::op
