#include "asya/operator/config.h"

#include <initializer_list>
#include <vector>

#include <nlohmann/json.hpp>

#include "asya/actor/manifest.h"

namespace asya::op {
namespace {

using nlohmann::json;

// Strict decoding of one JSON object; collects "<source>: <path>: <text>" lines.
class Decoder {
 public:
  explicit Decoder(std::string source) : source_(std::move(source)) {}

  void Error(const std::string& path, const std::string& text) {
    errors_.push_back(source_ + ": " + path + ": " + text);
  }
  [[nodiscard]] const std::vector<std::string>& errors() const { return errors_; }

  // False (with an error) when `j` is not an object; errors for keys not in `known`.
  bool Object(const json& j, const std::string& path,
              std::initializer_list<std::string_view> known) {
    if (!j.is_object()) {
      Error(path, "must be an object, got " + std::string(j.type_name()));
      return false;
    }
    for (const auto& [k, v] : j.items()) {
      bool ok = false;
      for (auto n : known) {
        ok = ok || n == k;
      }
      if (!ok) {
        Error(Join(path, k), "unknown field");
      }
    }
    return true;
  }
  void String(const json& j, const char* key, const std::string& path, std::string& out) {
    if (!Has(j, key)) {
      return;
    }
    if (!j[key].is_string()) {
      Error(Join(path, key), "must be a string, got " + std::string(j[key].type_name()));
      return;
    }
    out = j[key].get<std::string>();
  }
  void Int(const json& j, const char* key, const std::string& path, int& out, int min, int max) {
    if (!Has(j, key)) {
      return;
    }
    if (!j[key].is_number_integer()) {
      Error(Join(path, key), "must be an integer, got " + j[key].dump());
      return;
    }
    auto v = j[key].get<int64_t>();
    if (v < min || v > max) {
      Error(Join(path, key), "must be between " + std::to_string(min) + " and " +
                                 std::to_string(max) + ", got " + std::to_string(v));
      return;
    }
    out = static_cast<int>(v);
  }
  void Bool(const json& j, const char* key, const std::string& path, bool& out) {
    if (!Has(j, key)) {
      return;
    }
    if (!j[key].is_boolean()) {
      Error(Join(path, key), "must be a boolean, got " + j[key].dump());
      return;
    }
    out = j[key].get<bool>();
  }
  void SecretRef(const json& j, const char* key, const std::string& path,
                 std::optional<SecretKeyRef>& out) {
    if (!Has(j, key)) {
      return;
    }
    const std::string p = Join(path, key);
    if (!Object(j[key], p, {"name", "key", "optional"})) {
      return;
    }
    SecretKeyRef ref;
    String(j[key], "name", p, ref.name);
    String(j[key], "key", p, ref.key);
    if (ref.name.empty() || ref.key.empty()) {
      Error(p, "needs both name and key");
      return;
    }
    out = ref;
  }
  void Queues(const json& j, const std::string& path, QueueSettings& q, bool sqs) {
    if (!Has(j, "queues")) {
      return;
    }
    const std::string p = Join(path, "queues");
    if (!Object(j["queues"], p, {"autoCreate", "forceRecreate", "dlq"})) {
      return;
    }
    const json& qj = j["queues"];
    q.auto_create = false;  // the original: true only when `queues` is absent altogether
    Bool(qj, "autoCreate", p, q.auto_create);
    Bool(qj, "forceRecreate", p, q.force_recreate);
    if (Has(qj, "dlq")) {
      const std::string d = Join(p, "dlq");
      bool ok = sqs ? Object(qj["dlq"], d, {"enabled", "maxRetryCount", "retentionDays"})
                    : Object(qj["dlq"], d, {"enabled", "maxRetryCount"});
      if (ok) {
        Bool(qj["dlq"], "enabled", d, q.dlq_enabled);
        Int(qj["dlq"], "maxRetryCount", d, q.dlq_max_retry_count, 0, 1000);
        if (q.dlq_max_retry_count == 0) {
          q.dlq_max_retry_count = 3;
        }
        if (sqs) {
          Int(qj["dlq"], "retentionDays", d, q.dlq_retention_days, 0, 14);
          if (q.dlq_retention_days == 0) {
            q.dlq_retention_days = 14;
          }
        }
      }
    }
  }

  static bool Has(const json& j, const char* key) {
    return j.is_object() && j.contains(key) && !j[key].is_null();
  }
  static std::string Join(const std::string& path, std::string_view key) {
    return path.empty() ? std::string(key) : path + "." + std::string(key);
  }

 private:
  std::string source_;
  std::vector<std::string> errors_;
};

void DecodeRabbitMq(const json& c, const std::string& p, Decoder& d, RabbitMqConfig& r) {
  if (!d.Object(c, p,
                {"host", "port", "managementPort", "vhost", "username", "passwordSecretRef",
                 "usernameSecretRef", "exchange", "queues"})) {
    return;
  }
  d.String(c, "host", p, r.host);
  if (r.host.empty()) {
    d.Error(Decoder::Join(p, "host"), "is required");
  } else if (r.host.find_first_of(":/") != std::string::npos) {
    d.Error(Decoder::Join(p, "host"),
            "must be a host name without scheme or port (use port and managementPort), got '" +
                r.host + "'");
  }
  d.Int(c, "port", p, r.port, 0, 65535);
  if (r.port == 0) {
    r.port = 5672;
  }
  d.Int(c, "managementPort", p, r.management_port, 1, 65535);
  d.String(c, "vhost", p, r.vhost);
  if (r.vhost.empty()) {
    r.vhost = "/";
  }
  d.String(c, "username", p, r.username);
  if (r.username.empty()) {
    r.username = "guest";
  }
  d.SecretRef(c, "passwordSecretRef", p, r.password_secret);
  d.SecretRef(c, "usernameSecretRef", p, r.username_secret);
  d.String(c, "exchange", p, r.exchange);
  d.Queues(c, p, r.queues, /*sqs=*/false);
}

void DecodeSqs(const json& c, const std::string& p, Decoder& d, SqsConfig& s) {
  if (!d.Object(c, p,
                {"region", "accountId", "endpoint", "actorRoleArn", "visibilityTimeout",
                 "waitTimeSeconds", "credentials", "queues", "tags"})) {
    return;
  }
  d.String(c, "region", p, s.region);
  if (s.region.empty()) {
    d.Error(Decoder::Join(p, "region"), "is required");
  }
  if (Decoder::Has(c, "accountId") && c["accountId"].is_number_integer()) {
    s.account_id = std::to_string(c["accountId"].get<int64_t>());  // unquoted in YAML
  } else {
    d.String(c, "accountId", p, s.account_id);
  }
  d.String(c, "endpoint", p, s.endpoint);
  while (!s.endpoint.empty() && s.endpoint.back() == '/') {
    s.endpoint.pop_back();
  }
  d.String(c, "actorRoleArn", p, s.actor_role_arn);
  d.Int(c, "visibilityTimeout", p, s.visibility_timeout_s, 0, 43200);
  d.Int(c, "waitTimeSeconds", p, s.wait_time_seconds, 0, 20);
  if (Decoder::Has(c, "credentials")) {
    const std::string cp = Decoder::Join(p, "credentials");
    if (d.Object(c["credentials"], cp, {"accessKeyIdSecretRef", "secretAccessKeySecretRef"})) {
      d.SecretRef(c["credentials"], "accessKeyIdSecretRef", cp, s.access_key_id);
      d.SecretRef(c["credentials"], "secretAccessKeySecretRef", cp, s.secret_access_key);
      if (s.access_key_id.has_value() != s.secret_access_key.has_value()) {
        d.Error(cp, "needs both accessKeyIdSecretRef and secretAccessKeySecretRef");
      }
    }
  }
  d.Queues(c, p, s.queues, /*sqs=*/true);
  if (Decoder::Has(c, "tags")) {
    const std::string tp = Decoder::Join(p, "tags");
    if (!c["tags"].is_object()) {
      d.Error(tp, "must be an object");
    } else {
      for (const auto& [k, v] : c["tags"].items()) {
        if (!v.is_string()) {
          d.Error(tp + "." + k, "must be a string");
        } else {
          s.tags[k] = v.get<std::string>();
        }
      }
    }
  }
}

}  // namespace

OperatorConfig DefaultOperatorConfig() {
  OperatorConfig c;
  TransportEntry rabbit;
  rabbit.name = "rabbitmq";
  rabbit.type = "rabbitmq";
  rabbit.rabbitmq.host = "rabbitmq";
  c.transports[rabbit.name] = rabbit;
  return c;
}

Result<OperatorConfig> ParseOperatorConfig(std::string_view text, const std::string& source) {
  ASYA_ASSIGN_OR_RETURN(auto docs, actor::ParseYamlDocuments(text, source));
  if (docs.size() != 1) {
    return MakeError(
        ErrorCode::kInvalidArgument,
        source + ": must hold exactly one document, got " + std::to_string(docs.size()));
  }
  const json& root = docs[0];
  Decoder d(source);
  OperatorConfig cfg;
  if (d.Object(root, "",
               {"transports", "sidecarImage", "namespace", "gatewayURL", "logLevel",
                "runtimeConfigMap"})) {
    d.String(root, "sidecarImage", "", cfg.sidecar_image);
    d.String(root, "namespace", "", cfg.namespace_);
    if (!actor::IsValidActorName(cfg.namespace_)) {
      d.Error("namespace", "must be a DNS-1123 label, got '" + cfg.namespace_ + "'");
    }
    d.String(root, "gatewayURL", "", cfg.gateway_url);
    d.String(root, "logLevel", "", cfg.log_level);
    d.String(root, "runtimeConfigMap", "", cfg.runtime_configmap);
    if (Decoder::Has(root, "transports")) {
      const json& ts = root["transports"];
      if (!ts.is_object()) {
        d.Error("transports", "must be an object of entries by name");
      } else {
        for (const auto& [name, entry] : ts.items()) {
          const std::string p = "transports." + name;
          if (!actor::IsValidActorName(name)) {
            d.Error(p, "name must be a DNS-1123 label (lowercase letters, digits and '-')");
            continue;
          }
          if (!d.Object(entry, p, {"type", "enabled", "config"})) {
            continue;
          }
          TransportEntry t;
          t.name = name;
          d.String(entry, "type", p, t.type);
          d.Bool(entry, "enabled", p, t.enabled);
          json config = Decoder::Has(entry, "config") ? entry["config"] : json::object();
          if (t.type == "rabbitmq") {
            DecodeRabbitMq(config, p + ".config", d, t.rabbitmq);
          } else if (t.type == "sqs") {
            DecodeSqs(config, p + ".config", d, t.sqs);
          } else {
            d.Error(p + ".type", "must be rabbitmq or sqs, got '" + t.type + "'");
            continue;
          }
          cfg.transports[name] = std::move(t);
        }
      }
    }
  }
  if (!d.errors().empty()) {
    std::string msg;
    for (const auto& e : d.errors()) {
      msg += (msg.empty() ? "" : "\n") + e;
    }
    return MakeError(ErrorCode::kInvalidArgument, msg);
  }
  return cfg;
}

}  // namespace asya::op
