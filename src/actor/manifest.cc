#include "asya/actor/manifest.h"

#include <algorithm>
#include <charconv>
#include <filesystem>
#include <fstream>
#include <optional>
#include <set>
#include <sstream>

#include <yaml-cpp/yaml.h>

#include "actor/yaml_load.h"
#include "asya/base/duration.h"
#include "asya/base/yaml_text.h"

namespace asya::actor {
namespace fs = std::filesystem;

namespace {

// Collects problems of one actor; messages read "<source>: actor "<name>": <field>: <text>".
class Reporter {
 public:
  Reporter(std::string where, std::vector<std::string>* errors, std::vector<std::string>* warnings)
      : where_(std::move(where)), errors_(errors), warnings_(warnings) {}

  void SetActor(const std::string& name) { actor_ = name; }
  void Error(std::string_view field, std::string_view text) {
    errors_->push_back(Line(field, text));
  }
  void Warn(std::string_view field, std::string_view text) {
    warnings_->push_back(Line(field, text));
  }

 private:
  [[nodiscard]] std::string Line(std::string_view field, std::string_view text) const {
    std::string out = where_;
    if (!actor_.empty()) {
      out += ": actor \"" + actor_ + "\"";
    }
    if (!field.empty()) {
      out += ": ";
      out += field;
    }
    out += ": ";
    out += text;
    return out;
  }

  std::string where_;
  std::string actor_;
  std::vector<std::string>* errors_;
  std::vector<std::string>* warnings_;
};

std::string TypeName(const YAML::Node& n) {
  switch (n.Type()) {
    case YAML::NodeType::Map:
      return "an object";
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Scalar:
      return "a scalar ('" + n.Scalar() + "')";
    case YAML::NodeType::Null:
      return "null";
    default:
      return "undefined";
  }
}

// "<source>:<line>: invalid YAML: <why>" (no line when the error is about a whole document).
tl::unexpected<Error> InvalidYaml(const std::string& source, const YAML::Exception& e) {
  return MakeError(ErrorCode::kInvalidArgument,
                   source + (e.mark.is_null() ? "" : ":" + std::to_string(e.mark.line + 1)) +
                       ": invalid YAML: " + e.msg);
}

bool Present(const YAML::Node& n) {
  return n.IsDefined() && !n.IsNull();
}

// YAML -> JSON with YAML 1.2 core-schema typing of plain scalars (what a Kubernetes API server
// reads from `kubectl apply`): true/false -> bool, integers -> number, floats -> number,
// null/~/empty -> null; quoted or tagged scalars stay strings.
nlohmann::json ToJson(const YAML::Node& n) {
  switch (n.Type()) {
    case YAML::NodeType::Map: {
      nlohmann::json out = nlohmann::json::object();
      for (const auto& kv : n) {
        out[kv.first.Scalar()] = ToJson(kv.second);
      }
      return out;
    }
    case YAML::NodeType::Sequence: {
      nlohmann::json out = nlohmann::json::array();
      for (const auto& e : n) {
        out.push_back(ToJson(e));
      }
      return out;
    }
    case YAML::NodeType::Scalar: {
      const std::string& s = n.Scalar();
      if (n.Tag() != "?") {
        return s;
      }
      static const std::set<std::string> kTrue = {"true", "True", "TRUE"};
      static const std::set<std::string> kFalse = {"false", "False", "FALSE"};
      static const std::set<std::string> kNull = {"null", "Null", "NULL", "~", ""};
      if (kTrue.count(s) != 0) {
        return true;
      }
      if (kFalse.count(s) != 0) {
        return false;
      }
      if (kNull.count(s) != 0) {
        return nullptr;
      }
      int64_t i = 0;
      const char* end = s.data() + s.size();
      const char* begin = s.data() + (s[0] == '+' ? 1 : 0);
      if (auto [p, ec] = std::from_chars(begin, end, i); ec == std::errc() && p == end) {
        return i;
      }
      bool numeric = std::all_of(begin, end, [](char c) {
        return (c >= '0' && c <= '9') || c == '.' || c == 'e' || c == 'E' || c == '-' || c == '+';
      });
      double d = 0;
      if (auto [p, ec] = std::from_chars(begin, end, d); numeric && ec == std::errc() && p == end) {
        return d;
      }
      return s;
    }
    default:
      return nullptr;
  }
}

// A plain (unquoted) scalar that YAML would read as a number, bool or null.
bool LooksNonString(const YAML::Node& n) {
  if (n.Tag() != "?") {
    return false;  // quoted or explicitly tagged
  }
  const std::string& s = n.Scalar();
  static const std::set<std::string> kWords = {"true", "false", "True", "False", "TRUE", "FALSE",
                                               "yes",  "no",    "on",   "off",   "null", "~"};
  if (kWords.count(s) != 0) {
    return true;
  }
  double d = 0;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), d);
  return ec == std::errc() && ptr == s.data() + s.size() && !s.empty();
}

// parent[key] for the Get* helpers, which only look further when the child is Present(): a
// missing key gives an undefined node instead of yaml-cpp's invalid one, whose key text yaml-cpp
// formats through a std::stringstream on every miss (most of the lookups of optional fields).
YAML::Node Child(const YAML::Node& parent, const char* key) {
  if (!parent.IsMap()) {
    return parent[key];  // what yaml-cpp does for other types, errors included
  }
  for (const auto& kv : parent) {
    if (kv.first.IsScalar() && kv.first.Scalar() == key) {
      return kv.second;  // the first match, as yaml-cpp's lookup
    }
  }
  return YAML::Node(YAML::NodeType::Undefined);
}

std::optional<std::string> GetString(const YAML::Node& parent, const char* key,
                                     const std::string& field, Reporter& rep,
                                     bool strict_string = false) {
  YAML::Node n = Child(parent, key);
  if (!Present(n)) {
    return std::nullopt;
  }
  if (!n.IsScalar()) {
    rep.Error(field, "must be a string, got " + TypeName(n));
    return std::nullopt;
  }
  if (strict_string && LooksNonString(n)) {
    rep.Error(field,
              "must be a string, got '" + n.Scalar() + "' (quote it: \"" + n.Scalar() + "\")");
    return std::nullopt;
  }
  return n.Scalar();
}

std::optional<int64_t> GetInt(const YAML::Node& parent, const char* key, const std::string& field,
                              Reporter& rep) {
  YAML::Node n = Child(parent, key);
  if (!Present(n)) {
    return std::nullopt;
  }
  if (!n.IsScalar() || n.Tag() != "?") {
    rep.Error(field, "must be an integer, got " + TypeName(n));
    return std::nullopt;
  }
  const std::string& s = n.Scalar();
  int64_t v = 0;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || ptr != s.data() + s.size() || s.empty()) {
    rep.Error(field, "must be an integer, got '" + s + "'");
    return std::nullopt;
  }
  if (v < -(int64_t{1} << 31) || v > (int64_t{1} << 31) - 1) {
    rep.Error(field, "is out of range: " + s);
    return std::nullopt;
  }
  return v;
}

std::optional<bool> GetBool(const YAML::Node& parent, const char* key, const std::string& field,
                            Reporter& rep) {
  YAML::Node n = Child(parent, key);
  if (!Present(n)) {
    return std::nullopt;
  }
  if (n.IsScalar() && (n.Tag() == "?" || n.Tag().empty())) {  // empty: built in code
    static const std::set<std::string> kTrue = {"true", "True", "TRUE", "yes", "on"};
    static const std::set<std::string> kFalse = {"false", "False", "FALSE", "no", "off"};
    if (kTrue.count(n.Scalar()) != 0) {
      return true;
    }
    if (kFalse.count(n.Scalar()) != 0) {
      return false;
    }
  }
  rep.Error(field, "must be a boolean (true|false), got " + TypeName(n));
  return std::nullopt;
}

// Returns the child when it is a map; errors when present with another type.
std::optional<YAML::Node> GetMap(const YAML::Node& parent, const char* key,
                                 const std::string& field, Reporter& rep) {
  YAML::Node n = Child(parent, key);
  if (!Present(n)) {
    return std::nullopt;
  }
  if (!n.IsMap()) {
    rep.Error(field, "must be an object, got " + TypeName(n));
    return std::nullopt;
  }
  return n;
}

std::optional<YAML::Node> GetList(const YAML::Node& parent, const char* key,
                                  const std::string& field, Reporter& rep) {
  YAML::Node n = Child(parent, key);
  if (!Present(n)) {
    return std::nullopt;
  }
  if (!n.IsSequence()) {
    rep.Error(field, "must be a list, got " + TypeName(n));
    return std::nullopt;
  }
  return n;
}

// Case-insensitive edit distance (insert, delete, substitute, swap of neighbours).
size_t EditDistance(std::string_view a, std::string_view b) {
  auto low = [](char c) { return static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c); };
  std::vector<std::vector<size_t>> d(a.size() + 1, std::vector<size_t>(b.size() + 1, 0));
  for (size_t i = 0; i <= a.size(); ++i) {
    d[i][0] = i;
  }
  for (size_t j = 0; j <= b.size(); ++j) {
    d[0][j] = j;
  }
  for (size_t i = 1; i <= a.size(); ++i) {
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t cost = low(a[i - 1]) == low(b[j - 1]) ? 0 : 1;
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
      if (i > 1 && j > 1 && low(a[i - 1]) == low(b[j - 2]) && low(a[i - 2]) == low(b[j - 1])) {
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
      }
    }
  }
  return d[a.size()][b.size()];
}

}  // namespace

std::string UnknownFieldText(std::string_view key, std::initializer_list<std::string_view> known) {
  std::string_view best;
  size_t best_d = std::string_view::npos;
  for (auto k : known) {
    size_t d = EditDistance(key, k);
    if (d < best_d) {
      best_d = d;
      best = k;
    }
  }
  // Close enough to be a typo: up to a third of the longer name (at least 1, at most 3 edits).
  const size_t limit = std::clamp<size_t>(std::max(key.size(), best.size()) / 3, 1, 3);
  std::string out = "unknown field";
  if (!best.empty() && best_d <= limit) {
    out += "; did you mean `" + std::string(best) + "`?";
  } else {
    std::string list;
    for (auto k : known) {
      list += (list.empty() ? "" : ", ") + std::string(k);
    }
    out += " (known: " + list + ")";
  }
  return out;
}

namespace {

// Refuses keys not in `known` (the CRD's and the chart schema's fields: a misspelt key would be
// pruned on a cluster and silently ignored here), suggesting the closest known key.
void RefuseUnknown(const YAML::Node& map, std::initializer_list<std::string_view> known,
                   const std::string& field, Reporter& rep) {
  for (const auto& kv : map) {
    std::string key = kv.first.Scalar();
    if (std::find(known.begin(), known.end(), key) == known.end()) {
      rep.Error(field.empty() ? key : field + "." + key, UnknownFieldText(key, known));
    }
  }
}

void CheckEnum(const std::optional<std::string>& v, std::initializer_list<std::string_view> allowed,
               const std::string& field, Reporter& rep) {
  if (!v || v->empty()) {
    return;
  }
  if (std::find(allowed.begin(), allowed.end(), *v) == allowed.end()) {
    std::string list;
    for (auto a : allowed) {
      list += (list.empty() ? "" : ", ");
      list += a;
    }
    rep.Error(field, "must be one of " + list + ", got '" + *v + "'");
  }
}

const std::set<std::string_view> kReservedEnv = {"ASYA_SOCKET_DIR", "ASYA_ENABLE_VALIDATION"};
const std::set<std::string_view> kReservedVolumes = {"socket-dir", "tmp", "asya-runtime"};
const std::set<std::string_view> kReservedMounts = {"/var/run/asya", "/opt/asya/asya_runtime.py"};

std::vector<EnvVar> ParseEnv(const YAML::Node& list, const std::string& field, Reporter& rep) {
  std::vector<EnvVar> out;
  for (size_t i = 0; i < list.size(); ++i) {
    std::string f = field + "[" + std::to_string(i) + "]";
    const YAML::Node& e = list[i];
    if (!e.IsMap()) {
      rep.Error(f, "must be an object with name and value, got " + TypeName(e));
      continue;
    }
    auto name = GetString(e, "name", f + ".name", rep);
    if (!name || name->empty()) {
      rep.Error(f + ".name", "is required");
      continue;
    }
    f = field + "[" + *name + "]";
    if (kReservedEnv.count(*name) != 0) {
      rep.Error(f, "is reserved (set by asya for every replica); remove it");
      continue;
    }
    if (Present(e["valueFrom"])) {
      rep.Warn(f + ".valueFrom", "is not supported by asya up; variable not set locally");
      continue;
    }
    auto value = GetString(e, "value", f + ".value", rep, /*strict_string=*/true);
    out.push_back({*name, value.value_or("")});
  }
  return out;
}

void ParseScaling(const YAML::Node& s, ActorSpec& a, Reporter& rep) {
  a.scaling.present = true;
  RefuseUnknown(s,
                {"enabled", "minReplicas", "maxReplicas", "pollingInterval", "cooldownPeriod",
                 "queueLength", "advanced"},
                "spec.scaling", rep);
  // A block without `enabled` means scaling on (DESIGN precise behaviour 11).
  auto enabled = GetBool(s, "enabled", "spec.scaling.enabled", rep);
  a.scaling.enabled = enabled.value_or(true);
  auto min = GetInt(s, "minReplicas", "spec.scaling.minReplicas", rep);
  auto max = GetInt(s, "maxReplicas", "spec.scaling.maxReplicas", rep);
  auto polling = GetInt(s, "pollingInterval", "spec.scaling.pollingInterval", rep);
  auto cooldown = GetInt(s, "cooldownPeriod", "spec.scaling.cooldownPeriod", rep);
  auto ql = GetInt(s, "queueLength", "spec.scaling.queueLength", rep);
  if (min) {
    if (*min < 0) {
      rep.Error("spec.scaling.minReplicas", "must be >= 0, got " + std::to_string(*min));
    }
    a.scaling.min_replicas = static_cast<int>(*min);
  }
  if (max) {
    if (*max < 1) {
      rep.Error("spec.scaling.maxReplicas", "must be >= 1, got " + std::to_string(*max));
    }
    a.scaling.max_replicas = static_cast<int>(*max);
  }
  if (a.scaling.min_replicas > a.scaling.max_replicas) {
    rep.Error("spec.scaling.minReplicas", "must be <= maxReplicas (" +
                                              std::to_string(a.scaling.min_replicas) + " > " +
                                              std::to_string(a.scaling.max_replicas) + ")");
  }
  if (polling) {
    if (*polling < 1) {
      rep.Error("spec.scaling.pollingInterval",
                "must be >= 1 second, got " + std::to_string(*polling));
    }
    a.scaling.polling_interval_s = static_cast<int>(*polling);
  }
  if (cooldown) {
    if (*cooldown < 0) {
      rep.Error("spec.scaling.cooldownPeriod", "must be >= 0, got " + std::to_string(*cooldown));
    }
    a.scaling.cooldown_period_s = static_cast<int>(*cooldown);
  }
  if (ql) {
    if (*ql < 1) {
      rep.Error("spec.scaling.queueLength", "must be >= 1, got " + std::to_string(*ql));
    }
    a.scaling.queue_length = static_cast<int>(*ql);
  }
  if (auto adv = GetMap(s, "advanced", "spec.scaling.advanced", rep)) {
    const std::string f = "spec.scaling.advanced";
    RefuseUnknown(
        *adv,
        {"formula", "target", "activationTarget", "metricType", "restoreToOriginalReplicaCount"}, f,
        rep);
    auto metric = GetString(*adv, "metricType", f + ".metricType", rep);
    CheckEnum(metric, {"AverageValue", "Value", "Utilization"}, f + ".metricType", rep);
    a.scaling.metric_type = metric.value_or("");
    a.scaling.formula = GetString(*adv, "formula", f + ".formula", rep).value_or("");
    a.scaling.target = GetString(*adv, "target", f + ".target", rep).value_or("");
    a.scaling.activation_target =
        GetString(*adv, "activationTarget", f + ".activationTarget", rep).value_or("");
    a.scaling.restore_to_original_replica_count =
        GetBool(*adv, "restoreToOriginalReplicaCount", f + ".restoreToOriginalReplicaCount", rep);
    if (!a.scaling.formula.empty()) {
      rep.Warn(f + ".formula",
               "scaling formulas are applied by KEDA only; asya up scales on queue length");
      if (a.scaling.target.empty()) {
        rep.Error(f + ".target", "is required with a formula (KEDA's scalingModifiers)");
      }
    }
  }
  if (!a.scaling.enabled && (min || max)) {
    rep.Warn("spec.scaling.enabled",
             "is false, so minReplicas/maxReplicas are not used; the actor runs "
             "spec.workload.replicas replicas (set enabled: true to autoscale)");
  }
}

void ParseTimeout(const YAML::Node& t, ActorSpec& a, Reporter& rep) {
  RefuseUnknown(t, {"processing", "gracefulShutdown", "visibility"}, "spec.timeout", rep);
  if (auto v = GetInt(t, "processing", "spec.timeout.processing", rep)) {
    if (*v < 0) {
      rep.Error("spec.timeout.processing", "must be >= 0, got " + std::to_string(*v));
    }
    a.processing_timeout_s = static_cast<int>(*v);
  }
  if (auto v = GetInt(t, "gracefulShutdown", "spec.timeout.gracefulShutdown", rep)) {
    if (*v < 0) {
      rep.Error("spec.timeout.gracefulShutdown", "must be >= 0, got " + std::to_string(*v));
    }
    a.graceful_shutdown_s = *v > 0 ? static_cast<int>(*v) : 30;
  }
  if (auto v = GetInt(t, "visibility", "spec.timeout.visibility", rep)) {
    if (*v < 0) {
      rep.Error("spec.timeout.visibility", "must be >= 0, got " + std::to_string(*v));
    }
    a.visibility_timeout_s = static_cast<int>(*v);
  }
}

void ParseRetry(const YAML::Node& r, ActorSpec& a, Reporter& rep) {
  RefuseUnknown(r, {"maxAttempts", "backoff", "maxBackoff", "nonRetryable"}, "spec.retry", rep);
  if (auto v = GetInt(r, "maxAttempts", "spec.retry.maxAttempts", rep)) {
    if (*v < 1) {
      rep.Error("spec.retry.maxAttempts", "must be >= 1, got " + std::to_string(*v));
    }
    a.retry.max_attempts = static_cast<int>(*v);
  }
  for (auto [key, target] :
       {std::pair{"backoff", &a.retry.backoff}, std::pair{"maxBackoff", &a.retry.max_backoff}}) {
    const std::string f = std::string("spec.retry.") + key;
    if (auto v = GetString(r, key, f, rep)) {
      if (auto d = ParseDuration(*v); !d) {
        rep.Error(f, d.error().message);
      } else {
        *target = *v;
      }
    }
  }
  if (auto list = GetList(r, "nonRetryable", "spec.retry.nonRetryable", rep)) {
    for (size_t i = 0; i < list->size(); ++i) {
      const std::string f = "spec.retry.nonRetryable[" + std::to_string(i) + "]";
      const YAML::Node& e = (*list)[i];
      if (!e.IsScalar() || e.Scalar().empty()) {
        rep.Error(f, "must be a non-empty string (an exception class name), got " + TypeName(e));
      } else if (e.Scalar().find_first_of(", \t") != std::string::npos) {
        rep.Error(
            f, "must be one exception class name without ',' or spaces, got '" + e.Scalar() + "'");
      } else {
        a.retry.non_retryable.push_back(e.Scalar());
      }
    }
  }
}

void CheckVolumeMounts(const YAML::Node& c, const std::string& field, Reporter& rep) {
  auto mounts = GetList(c, "volumeMounts", field + ".volumeMounts", rep);
  if (!mounts) {
    return;
  }
  for (size_t i = 0; i < mounts->size(); ++i) {
    const YAML::Node& m = (*mounts)[i];
    if (!m.IsMap()) {
      continue;
    }
    auto path = GetString(m, "mountPath", field + ".volumeMounts[" + std::to_string(i) + "]", rep);
    if (path && kReservedMounts.count(*path) != 0) {
      rep.Error(field + ".volumeMounts[" + std::to_string(i) + "].mountPath",
                "'" + *path + "' is reserved for the asya runtime; mount elsewhere");
    }
  }
}

void ParseWorkload(const YAML::Node& w, ActorSpec& a, Reporter& rep) {
  RefuseUnknown(w, {"kind", "replicas", "pythonExecutable", "template"}, "spec.workload", rep);
  auto kind = GetString(w, "kind", "spec.workload.kind", rep);
  CheckEnum(kind, {"Deployment", "StatefulSet"}, "spec.workload.kind", rep);
  if (kind && !kind->empty()) {
    a.workload_kind = *kind;
  }
  if (auto r = GetInt(w, "replicas", "spec.workload.replicas", rep)) {
    if (*r < 0) {
      rep.Error("spec.workload.replicas", "must be >= 0, got " + std::to_string(*r));
    }
    a.workload_replicas = static_cast<int>(*r);
  }
  if (auto py = GetString(w, "pythonExecutable", "spec.workload.pythonExecutable", rep)) {
    if (!py->empty()) {
      a.python_executable = *py;
    }
  }
  auto tmpl = GetMap(w, "template", "spec.workload.template", rep);
  if (!tmpl) {
    if (!Present(w["template"])) {
      rep.Error("spec.workload.template", "is required");
    }
    return;
  }
  a.pod_template = ToJson(*tmpl);
  if (auto tm = GetMap(*tmpl, "metadata", "spec.workload.template.metadata", rep)) {
    GetMap(*tm, "labels", "spec.workload.template.metadata.labels", rep);
    GetMap(*tm, "annotations", "spec.workload.template.metadata.annotations", rep);
  }
  auto pod = GetMap(*tmpl, "spec", "spec.workload.template.spec", rep);
  if (!pod) {
    if (!Present((*tmpl)["spec"])) {
      rep.Error("spec.workload.template.spec", "is required (it holds the asya-runtime container)");
    }
    return;
  }
  const std::string base = "spec.workload.template.spec";
  if (auto vols = GetList(*pod, "volumes", base + ".volumes", rep)) {
    for (size_t i = 0; i < vols->size(); ++i) {
      const YAML::Node& v = (*vols)[i];
      if (!v.IsMap()) {
        continue;
      }
      auto name = GetString(v, "name", base + ".volumes[" + std::to_string(i) + "].name", rep);
      if (name && kReservedVolumes.count(*name) != 0) {
        rep.Error(base + ".volumes[" + std::to_string(i) + "].name",
                  "'" + *name + "' is reserved (socket-dir, tmp, asya-runtime); rename the volume");
      }
    }
  }
  if (auto inits = GetList(*pod, "initContainers", base + ".initContainers", rep)) {
    for (size_t i = 0; i < inits->size(); ++i) {
      const YAML::Node& c = (*inits)[i];
      if (c.IsMap() && c["name"].IsScalar() && c["name"].Scalar() == "asya-sidecar") {
        rep.Error(base + ".initContainers[" + std::to_string(i) + "].name",
                  "'asya-sidecar' is reserved (the sidecar is injected)");
      }
    }
  }
  auto containers = GetList(*pod, "containers", base + ".containers", rep);
  if (!containers) {
    if (!Present((*pod)["containers"])) {
      rep.Error(base + ".containers", "is required and must contain the asya-runtime container");
    }
    return;
  }
  int runtime_count = 0;
  std::set<std::string> names;
  for (size_t i = 0; i < containers->size(); ++i) {
    const YAML::Node& c = (*containers)[i];
    std::string f = base + ".containers[" + std::to_string(i) + "]";
    if (!c.IsMap()) {
      rep.Error(f, "must be an object, got " + TypeName(c));
      continue;
    }
    auto name = GetString(c, "name", f + ".name", rep);
    if (!name || name->empty()) {
      rep.Error(f + ".name", "is required");
      continue;
    }
    if (!names.insert(*name).second) {
      rep.Error(f + ".name", "duplicate container name '" + *name + "'");
    }
    auto image = GetString(c, "image", f + ".image", rep);
    if (!image || image->empty()) {
      rep.Error(f + ".image", "is required");
    }
    if (*name == "asya-sidecar") {
      rep.Error(f + ".name", "'asya-sidecar' is reserved (the sidecar is injected)");
      continue;
    }
    CheckVolumeMounts(c, f, rep);
    std::vector<EnvVar> env;
    if (auto e = GetList(c, "env", f + ".env", rep)) {
      env = ParseEnv(*e, f + ".env", rep);
    }
    if (*name != "asya-runtime") {
      continue;
    }
    ++runtime_count;
    if (Present(c["command"])) {
      rep.Error(f + ".command",
                "must not be set on asya-runtime (the runtime command is injected; use args or "
                "the annotation asya.sh/local-command for a native runtime)");
    }
    a.runtime_env = std::move(env);
  }
  if (runtime_count != 1) {
    rep.Error(base + ".containers",
              "must contain exactly one container named asya-runtime, found " +
                  std::to_string(runtime_count));
  }
}

// Parses one AsyncActor document into `a`. Returns false when it has errors.
// A map of strings (labels, annotations).
nlohmann::json StringMap(const YAML::Node& parent, const char* key, const std::string& field,
                         Reporter& rep) {
  nlohmann::json out = nlohmann::json::object();
  if (auto m = GetMap(parent, key, field, rep)) {
    for (const auto& kv : *m) {
      const std::string k = kv.first.Scalar();
      if (auto v = GetString(*m, k.c_str(), field + "[" + k + "]", rep, /*strict_string=*/true)) {
        out[k] = *v;
      }
    }
  }
  return out;
}

void ParseSidecar(const YAML::Node& sc, ActorSpec& a, Reporter& rep) {
  RefuseUnknown(sc, {"image", "imagePullPolicy", "resources", "env", "concurrency"}, "spec.sidecar",
                rep);
  if (auto image = GetString(sc, "image", "spec.sidecar.image", rep)) {
    a.sidecar_image = *image;
  }
  auto policy = GetString(sc, "imagePullPolicy", "spec.sidecar.imagePullPolicy", rep);
  CheckEnum(policy, {"Always", "IfNotPresent", "Never"}, "spec.sidecar.imagePullPolicy", rep);
  if (policy && !policy->empty()) {
    a.sidecar_image_pull_policy = *policy;
  }
  if (auto res = GetMap(sc, "resources", "spec.sidecar.resources", rep)) {
    a.sidecar_resources = ToJson(*res);
  }
  if (auto env = GetList(sc, "env", "spec.sidecar.env", rep)) {
    a.sidecar_env = ParseEnv(*env, "spec.sidecar.env", rep);
    a.sidecar_env_json = ToJson(*env);
  }
  if (auto v = GetInt(sc, "concurrency", "spec.sidecar.concurrency", rep)) {
    if (*v < 1) {
      rep.Error("spec.sidecar.concurrency", "must be >= 1, got " + std::to_string(*v));
    }
    a.sidecar_concurrency = static_cast<int>(*v);
  }
}

// ASYA_RUNTIME_TIMEOUT is read by the runtime and the sidecar alike (DESIGN precise 2); both get
// the one value (EffectiveRuntimeTimeout), so two different values in the two containers are
// refused rather than one of them silently dropped.
void CheckRuntimeTimeout(const ActorSpec& a, Reporter& rep) {
  const std::string runtime = a.RuntimeEnv(kRuntimeTimeoutVar);
  std::string sidecar;
  for (const auto& e : a.sidecar_env) {
    if (e.name == kRuntimeTimeoutVar) {
      sidecar = e.value;
    }
  }
  for (const auto& [value, field] :
       {std::pair{runtime, "spec.workload.template.spec.containers[asya-runtime].env[" +
                               std::string(kRuntimeTimeoutVar) + "]"},
        std::pair{sidecar, "spec.sidecar.env[" + std::string(kRuntimeTimeoutVar) + "]"}}) {
    if (!value.empty()) {
      if (auto d = ParseDuration(value); !d) {
        rep.Error(field, d.error().message);
      }
    }
  }
  if (!runtime.empty() && !sidecar.empty()) {
    auto r = ParseDuration(runtime);
    auto s = ParseDuration(sidecar);
    if (r && s && *r != *s) {
      rep.Error("spec.sidecar.env[" + std::string(kRuntimeTimeoutVar) + "]",
                "is " + sidecar + " but the asya-runtime container sets " + runtime +
                    "; the runtime and the sidecar must use one timeout (set it once: "
                    "spec.timeout.processing, or the variable in either container)");
    }
  }
}

void ParseAsyncActor(const YAML::Node& doc, ActorSpec& a, Reporter& rep,
                     const ParseOptions& options) {
  if (const YAML::Node n = Child(Child(doc, "metadata"), "name"); n.IsDefined() && n.IsScalar()) {
    rep.SetActor(n.Scalar());  // so that every line names the actor
  }
  RefuseUnknown(doc, {"apiVersion", "kind", "metadata", "spec", "status"}, "", rep);
  auto api = GetString(doc, "apiVersion", "apiVersion", rep);
  if (!api || *api != kApiVersion) {
    rep.Error("apiVersion",
              "must be " + std::string(kApiVersion) + ", got '" + api.value_or("") + "'");
  }
  auto meta = GetMap(doc, "metadata", "metadata", rep);
  if (!meta) {
    rep.Error("metadata.name", "is required");
    return;
  }
  auto name = GetString(*meta, "name", "metadata.name", rep);
  if (!name || name->empty()) {
    rep.Error("metadata.name", "is required");
    return;
  }
  a.name = *name;
  rep.SetActor(a.name);
  if (!IsValidActorName(a.name)) {
    rep.Error("metadata.name",
              "must be a DNS-1123 label (lowercase letters, digits and '-', starting with a "
              "letter, ending with a letter or digit, at most 253 characters)");
  }
  if (auto ns = GetString(*meta, "namespace", "metadata.namespace", rep)) {
    if (!ns->empty() && !IsValidActorName(*ns)) {
      rep.Error("metadata.namespace", "must be a DNS-1123 label, got '" + *ns + "'");
    }
    a.namespace_ = *ns;
  }
  a.labels = StringMap(*meta, "labels", "metadata.labels", rep);
  a.annotations = StringMap(*meta, "annotations", "metadata.annotations", rep);
  if (auto ann = GetMap(*meta, "annotations", "metadata.annotations", rep)) {
    auto cmd = GetString(*ann, std::string(kLocalCommandAnnotation).c_str(),
                         "metadata.annotations[" + std::string(kLocalCommandAnnotation) + "]", rep);
    if (cmd) {
      auto parts = SplitCommand(*cmd);
      if (!parts || parts->empty()) {
        rep.Error("metadata.annotations[" + std::string(kLocalCommandAnnotation) + "]",
                  parts ? "is empty" : parts.error().message);
      } else {
        a.local_command = std::move(*parts);
      }
    }
  }
  auto spec = GetMap(doc, "spec", "spec", rep);
  if (!spec) {
    if (!Present(doc["spec"])) {
      rep.Error("spec", "is required");
    }
    return;
  }
  RefuseUnknown(
      *spec, {"transport", "sidecar", "timeout", "scaling", "workload", "retry", "maxDeliveries"},
      "spec", rep);
  auto transport = GetString(*spec, "transport", "spec.transport", rep);
  if (transport && !transport->empty()) {
    a.transport = *transport;
  } else if (options.require_transport) {
    rep.Error("spec.transport", "is required (the cluster's transport name, e.g. rabbitmq)");
  }
  if (auto sc = GetMap(*spec, "sidecar", "spec.sidecar", rep)) {
    ParseSidecar(*sc, a, rep);
  }
  if (auto t = GetMap(*spec, "timeout", "spec.timeout", rep)) {
    ParseTimeout(*t, a, rep);
  }
  if (auto r = GetMap(*spec, "retry", "spec.retry", rep)) {
    ParseRetry(*r, a, rep);
  }
  if (auto v = GetInt(*spec, "maxDeliveries", "spec.maxDeliveries", rep)) {
    if (*v < 1) {
      rep.Error("spec.maxDeliveries", "must be >= 1, got " + std::to_string(*v));
    }
    a.max_deliveries = static_cast<int>(*v);
  }
  if (auto s = GetMap(*spec, "scaling", "spec.scaling", rep)) {
    ParseScaling(*s, a, rep);
  }
  auto w = GetMap(*spec, "workload", "spec.workload", rep);
  if (!w) {
    if (!Present((*spec)["workload"])) {
      rep.Error("spec.workload", "is required");
    }
    return;
  }
  ParseWorkload(*w, a, rep);
  CheckRuntimeTimeout(a, rep);
  if (a.local_command.empty() && a.RuntimeEnv("ASYA_HANDLER").empty()) {
    rep.Error("spec.workload.template.spec.containers[asya-runtime].env",
              "ASYA_HANDLER is required (e.g. module.function or module.Class.method)");
  }
}

// ---- asya-actor values files ----

// Keys of the chart's values.schema.json (deploy/helm-charts/asya-actor), which refuses others.
const std::initializer_list<std::string_view> kValuesActorKeys = {
    "name",    "namespace", "transport", "annotations", "labels",        "scaling",
    "timeout", "workload",  "sidecar",   "retry",       "maxDeliveries", "image",
    "handler", "env",       "resources", "healthChecks"};
const std::initializer_list<std::string_view> kValuesDefaultKeys = {
    "namespace", "transport", "annotations", "labels",    "scaling",
    "timeout",   "workload",  "sidecar",     "retry",     "maxDeliveries",
    "image",     "handler",   "env",         "resources", "healthChecks"};
const std::initializer_list<std::string_view> kValuesRootKeys = {
    "name",          "namespace", "transport", "annotations", "labels",
    "scaling",       "timeout",   "workload",  "sidecar",     "retry",
    "maxDeliveries", "image",     "handler",   "env",         "resources",
    "healthChecks",  "actors",    "default",   "global",      "infrastructure",
    "tests"};

// Chart defaults of asya-actor (reference-controlplane §6.2).
YAML::Node ChartDefaults() {
  return YAML::Load(R"(
scaling:
  enabled: true
  minReplicas: 1
  maxReplicas: 10
  pollingInterval: 10
  cooldownPeriod: 60
  queueLength: 5
workload:
  kind: Deployment
  template:
    spec:
      containers:
        - name: asya-runtime
          image: my-actor:latest
          env:
            - name: ASYA_HANDLER
              value: my_module.my_handler
)");
}

// Helm's values merge: maps merge recursively, anything else in `over` replaces `base`.
YAML::Node DeepMerge(const YAML::Node& base, const YAML::Node& over) {
  if (!base.IsMap() || !over.IsMap()) {
    return YAML::Clone(over);
  }
  YAML::Node out = YAML::Clone(base);
  for (const auto& kv : over) {
    const std::string key = kv.first.Scalar();
    if (out[key].IsDefined() && out[key].IsMap() && kv.second.IsMap()) {
      out[key] = DeepMerge(out[key], kv.second);
    } else {
      out[key] = YAML::Clone(kv.second);
    }
  }
  return out;
}

// The seed's shorthand on the asya-runtime container of the merged workload: `image` and
// `resources` replace the container's; env entries named in `env` (and ASYA_HANDLER when
// `handler` is set) are dropped, then `env` and ASYA_HANDLER=<handler> are appended.
void ApplyShorthand(const YAML::Node& merged, YAML::Node& workload) {
  const bool any = Present(merged["image"]) || Present(merged["resources"]) ||
                   Present(merged["env"]) || Present(merged["handler"]);
  if (!any || !workload.IsMap() || !workload["template"].IsMap() ||
      !workload["template"]["spec"].IsMap() ||
      !workload["template"]["spec"]["containers"].IsSequence()) {
    return;
  }
  YAML::Node containers = workload["template"]["spec"]["containers"];
  for (size_t i = 0; i < containers.size(); ++i) {
    YAML::Node c = containers[i];
    if (!c.IsMap() || !c["name"].IsScalar() || c["name"].Scalar() != "asya-runtime") {
      continue;
    }
    for (const char* k : {"image", "resources"}) {
      if (Present(merged[k])) {
        c[k] = YAML::Clone(merged[k]);
      }
    }
    std::set<std::string> replaced;
    // Child(): `merged` is const, and yaml-cpp's const lookup of a missing key gives a node that
    // throws on IsSequence() (a values actor with `handler` but no `env`).
    const YAML::Node env_extra = Child(merged, "env");
    YAML::Node extra = env_extra.IsDefined() && env_extra.IsSequence()
                           ? env_extra
                           : YAML::Node(YAML::NodeType::Sequence);
    for (const auto& e : extra) {
      if (e.IsMap() && e["name"].IsScalar()) {
        replaced.insert(e["name"].Scalar());
      }
    }
    if (Present(merged["handler"])) {
      replaced.insert("ASYA_HANDLER");
    }
    YAML::Node env(YAML::NodeType::Sequence);
    if (c["env"].IsSequence()) {
      for (const auto& e : c["env"]) {
        if (!(e.IsMap() && e["name"].IsScalar() && replaced.count(e["name"].Scalar()) != 0)) {
          env.push_back(e);
        }
      }
    }
    for (const auto& e : extra) {
      env.push_back(YAML::Clone(e));
    }
    if (Present(merged["handler"])) {
      YAML::Node h;
      h["name"] = "ASYA_HANDLER";
      h["value"] = merged["handler"];
      env.push_back(h);
    }
    c["env"] = env;
    // Only the first: a second asya-runtime container is refused anyway, and repeating the
    // copies for each of (aliased) thousands of them would multiply their memory.
    break;
  }
}

// Renders what the chart's template renders for one actor (deploy/README.md, "asya-actor values
// -> AsyncActor"): the actor deep-merged over `default`, the shorthand applied, an AsyncActor.
YAML::Node RenderValuesActor(const YAML::Node& root, const YAML::Node& item,
                             const YAML::Node& defaults) {
  const YAML::Node merged = DeepMerge(defaults, item);
  YAML::Node doc;
  doc["apiVersion"] = std::string(kApiVersion);
  doc["kind"] = std::string(kKind);
  doc["metadata"]["name"] = merged["name"];
  for (const char* k : {"namespace", "transport"}) {
    YAML::Node v = Present(merged[k]) && !(merged[k].IsScalar() && merged[k].Scalar().empty())
                       ? merged[k]
                       : root[k];
    if (Present(v) && !(v.IsScalar() && v.Scalar().empty())) {
      if (std::string(k) == "namespace") {
        doc["metadata"]["namespace"] = v;
      } else {
        doc["spec"]["transport"] = v;
      }
    }
  }
  for (const char* k : {"labels", "annotations"}) {
    if (Present(merged[k])) {
      doc["metadata"][k] = merged[k];
    }
  }
  const YAML::Node scaling = merged["scaling"];
  if (scaling.IsMap()) {
    const YAML::Node en = scaling["enabled"];
    if (en.IsScalar() && (en.Scalar() == "false" || en.Scalar() == "False")) {
      YAML::Node off;
      off["enabled"] = false;
      doc["spec"]["scaling"] = off;
    } else {
      // Every key passes through (a misspelt one is reported, not dropped), with enabled: true.
      YAML::Node on = YAML::Clone(scaling);
      on["enabled"] = true;
      doc["spec"]["scaling"] = on;
    }
  } else if (Present(scaling)) {
    doc["spec"]["scaling"] = scaling;  // let the AsyncActor parser report the type error
  }
  for (const char* k : {"timeout", "sidecar", "retry", "maxDeliveries"}) {
    if (Present(merged[k])) {
      doc["spec"][k] = merged[k];
    }
  }
  if (Present(merged["workload"])) {
    YAML::Node workload = YAML::Clone(merged["workload"]);
    ApplyShorthand(merged, workload);
    doc["spec"]["workload"] = workload;
  }
  return doc;
}

void ParseValues(const YAML::Node& root, const std::string& source, const std::string& directory,
                 const ParseOptions& options, size_t text_size, LoadResult& out,
                 std::vector<std::string>& errors) {
  Reporter file_rep(source, &errors, &out.warnings);
  const YAML::Node listed = Child(root, "actors");
  const bool single = !(listed.IsDefined() && listed.IsSequence() && listed.size() > 0);
  if (const YAML::Node n = Child(root, "name"); single && n.IsDefined() && n.IsScalar()) {
    file_rep.SetActor(n.Scalar());
  }
  RefuseUnknown(root, kValuesRootKeys, "", file_rep);
  YAML::Node defaults = ChartDefaults();
  if (auto d = GetMap(root, "default", "default", file_rep)) {
    RefuseUnknown(*d, kValuesDefaultKeys, "default", file_rep);
    defaults = DeepMerge(defaults, *d);
  }
  std::vector<std::pair<std::string, YAML::Node>> items;  // (location, item)
  if (auto actors = GetList(root, "actors", "actors", file_rep); actors && actors->size() > 0) {
    for (size_t i = 0; i < actors->size(); ++i) {
      const YAML::Node& it = (*actors)[i];
      std::string where = source + ": actors[" + std::to_string(i) + "]";
      if (!it.IsMap()) {
        errors.push_back(where + ": must be an object, got " + TypeName(it));
        continue;
      }
      items.emplace_back(where, it);
    }
  } else if (Present(root["name"])) {
    items.emplace_back(source, root);  // single mode: the root is the actor
  } else {
    errors.push_back(source + ": values file declares no actors (set `actors:` or `name:`)");
    return;
  }
  // Each actor is rendered from a copy of `default` merged with its item, so `default` is copied
  // once per actor: with aliases, a `default` of 10^5 values and 10^4 actors (or one actor listed
  // by alias 10^4 times) would be 10^9 copied values. The copies share one budget for the file.
  YamlExpansionBudget copies(text_size);
  for (auto& [where, item] : items) {
    if (YamlExpansionProblem(defaults, copies) || YamlExpansionProblem(item, copies)) {
      errors.push_back(where + ": each actor is merged with a copy of `default`, and the actors " +
                       "so far expand past " + std::to_string(copies.values_limit) + " values or " +
                       std::to_string(kYamlMaxExpandedBytes >> 20) +
                       " MiB (the limit of one file)");
      break;
    }
    ActorSpec a;
    a.source = source;
    a.directory = directory;
    Reporter rep(where, &errors, &out.warnings);
    if (const YAML::Node n = Child(item, "name"); n.IsDefined() && n.IsScalar()) {
      rep.SetActor(n.Scalar());
    }
    if (!single) {
      RefuseUnknown(item, kValuesActorKeys, "", rep);
    }
    ParseAsyncActor(RenderValuesActor(root, item, defaults), a, rep, options);
    out.actors.push_back(std::move(a));
  }
}

bool IsValuesDocument(const YAML::Node& doc) {
  return !Present(doc["kind"]) && !Present(doc["apiVersion"]) &&
         (Present(doc["actors"]) || Present(doc["default"]) || Present(doc["name"]));
}

}  // namespace

bool IsToolsDocument(const nlohmann::json& doc) {
  if (!doc.is_object() || !doc.contains("tools")) {
    return false;
  }
  for (const char* key : {"kind", "apiVersion", "actors", "name", "default"}) {
    if (doc.contains(key)) {
      return false;
    }
  }
  return true;
}

std::string ActorSpec::RuntimeEnv(std::string_view key) const {
  for (const auto& e : runtime_env) {
    if (e.name == key) {
      return e.value;
    }
  }
  return "";
}

std::string ActorSpec::Fingerprint() const {
  std::ostringstream s;
  s << name << '\n'
    << directory << '\n'
    << scaling.enabled << ' ' << scaling.min_replicas << ' ' << scaling.max_replicas << ' '
    << scaling.polling_interval_s << ' ' << scaling.cooldown_period_s << ' ' << scaling.queue_length
    << '\n'
    << workload_replicas << ' ' << python_executable << ' ' << processing_timeout_s << ' '
    << graceful_shutdown_s << '\n';
  for (const auto& e : SidecarSpecEnv(*this)) {
    s << "E " << e.name << '=' << e.value << '\n';
  }
  for (const auto& e : runtime_env) {
    s << "R " << e.name << '=' << e.value << '\n';
  }
  for (const auto& e : sidecar_env) {
    s << "S " << e.name << '=' << e.value << '\n';
  }
  for (const auto& c : local_command) {
    s << "C " << c << '\n';
  }
  return s.str();
}

bool ActorSpec::IsEndActor() const {
  return is_crew || name == "happy-end" || name == "error-end";
}

std::string EffectiveRuntimeTimeout(const ActorSpec& spec) {
  std::string value;
  for (const auto& e : spec.sidecar_env) {
    if (e.name == kRuntimeTimeoutVar && !e.value.empty()) {
      value = e.value;  // later entries win, as in the container
    }
  }
  if (!value.empty()) {
    return value;
  }
  if (std::string v = spec.RuntimeEnv(kRuntimeTimeoutVar); !v.empty()) {
    return v;
  }
  return spec.processing_timeout_s > 0 ? std::to_string(spec.processing_timeout_s) + "s" : "";
}

std::vector<EnvVar> SidecarSpecEnv(const ActorSpec& spec) {
  std::vector<EnvVar> out;
  out.push_back({"ASYA_ACTOR_NAME", spec.name});
  if (spec.IsEndActor()) {
    out.push_back({"ASYA_IS_END_ACTOR", "true"});
  }
  if (std::string timeout = EffectiveRuntimeTimeout(spec); !timeout.empty()) {
    out.push_back({std::string(kRuntimeTimeoutVar), timeout});
  }
  out.push_back({"ASYA_SIDECAR_CONCURRENCY", std::to_string(spec.sidecar_concurrency)});
  out.push_back({"ASYA_RETRY_MAX_ATTEMPTS", std::to_string(spec.retry.max_attempts)});
  out.push_back({"ASYA_RETRY_BACKOFF", spec.retry.backoff});
  out.push_back({"ASYA_RETRY_MAX_BACKOFF", spec.retry.max_backoff});
  if (!spec.retry.non_retryable.empty()) {
    std::string joined;
    for (const auto& n : spec.retry.non_retryable) {
      joined += (joined.empty() ? "" : ",") + n;
    }
    out.push_back({"ASYA_RETRY_NON_RETRYABLE", joined});
  }
  out.push_back({"ASYA_MAX_DELIVERIES", std::to_string(spec.max_deliveries)});
  if (spec.visibility_timeout_s > 0) {
    out.push_back({"ASYA_VISIBILITY_TIMEOUT", std::to_string(spec.visibility_timeout_s) + "s"});
  }
  return out;
}

std::vector<EnvVar> EffectiveSidecarEnv(const ActorSpec& spec) {
  std::vector<EnvVar> out = SidecarSpecEnv(spec);
  out.insert(out.end(), spec.sidecar_env.begin(), spec.sidecar_env.end());
  return out;
}

bool IsValidActorName(std::string_view name) {
  if (name.empty() || name.size() > 253) {
    return false;
  }
  if (name.front() < 'a' || name.front() > 'z') {
    return false;
  }
  char last = name.back();
  if (!((last >= 'a' && last <= 'z') || (last >= '0' && last <= '9'))) {
    return false;
  }
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
  });
}

Result<std::vector<std::string>> SplitCommand(std::string_view text) {
  std::vector<std::string> out;
  std::string cur;
  bool in_word = false;
  char quote = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (quote != 0) {
      if (c == quote) {
        quote = 0;
      } else if (c == '\\' && quote == '"' && i + 1 < text.size()) {
        cur += text[++i];
      } else {
        cur += c;
      }
      continue;
    }
    if (c == '\'' || c == '"') {
      quote = c;
      in_word = true;
    } else if (c == '\\' && i + 1 < text.size()) {
      cur += text[++i];
      in_word = true;
    } else if (c == ' ' || c == '\t' || c == '\n') {
      if (in_word) {
        out.push_back(std::move(cur));
        cur.clear();
        in_word = false;
      }
    } else {
      cur += c;
      in_word = true;
    }
  }
  if (quote != 0) {
    return MakeError(ErrorCode::kInvalidArgument, "unterminated quote in command");
  }
  if (in_word) {
    out.push_back(std::move(cur));
  }
  return out;
}

Result<std::vector<nlohmann::json>> ParseYamlDocuments(std::string_view text,
                                                       const std::string& source) {
  if (auto problem = YamlTextProblem(text)) {  // before yaml-cpp: it passes bad bytes through
    return MakeError(ErrorCode::kInvalidArgument, source + ":" + *problem);
  }
  try {
    std::vector<nlohmann::json> out;
    for (const auto& doc : detail::LoadAllDocuments(text)) {
      if (Present(doc)) {
        out.push_back(ToJson(doc));
      }
    }
    return out;
  } catch (const YAML::Exception& e) {
    return InvalidYaml(source, e);
  }
}

Result<LoadResult> ParseManifests(std::string_view text, const std::string& source,
                                  const std::string& directory, const ParseOptions& options) {
  if (text.size() > kMaxManifestBytes) {
    return MakeError(ErrorCode::kInvalidArgument, source + ": " + std::to_string(text.size()) +
                                                      " bytes; a manifest file may have at most " +
                                                      std::to_string(kMaxManifestBytes) + " bytes");
  }
  if (auto problem = YamlTextProblem(text)) {
    return MakeError(ErrorCode::kInvalidArgument, source + ":" + *problem);
  }
  std::vector<YAML::Node> docs;
  try {
    docs = detail::LoadAllDocuments(text);
  } catch (const YAML::Exception& e) {
    return InvalidYaml(source, e);
  }
  LoadResult out;
  std::vector<std::string> errors;
  try {
    for (size_t i = 0; i < docs.size(); ++i) {
      const YAML::Node& doc = docs[i];
      if (!Present(doc)) {
        continue;  // empty document (e.g. a trailing ---)
      }
      std::string where =
          docs.size() > 1 ? source + " (document " + std::to_string(i + 1) + ")" : source;
      if (!doc.IsMap()) {
        errors.push_back(where + ": must be a YAML object, got " + TypeName(doc));
        continue;
      }
      if (!Present(doc["kind"]) && Present(doc["tools"]) && IsToolsDocument(ToJson(doc))) {
        continue;  // the gateway's tools (asya up serves them); not an actor
      }
      if (IsValuesDocument(doc)) {
        ParseValues(doc, where, directory, options, text.size(), out, errors);
        continue;
      }
      if (!doc["kind"].IsScalar() || doc["kind"].Scalar() != kKind) {
        errors.push_back(
            where +
            ": kind: must be AsyncActor (or an asya-actor values file with "
            "`actors:`), got " +
            (doc["kind"].IsScalar() ? "'" + doc["kind"].Scalar() + "'" : TypeName(doc["kind"])));
        continue;
      }
      ActorSpec a;
      a.source = source;
      a.directory = directory;
      Reporter rep(where, &errors, &out.warnings);
      ParseAsyncActor(doc, a, rep, options);
      out.actors.push_back(std::move(a));
    }
  } catch (const YAML::Exception& e) {
    errors.push_back(source + ": invalid manifest: " + e.msg);
  }
  std::set<std::string> seen;
  for (const auto& a : out.actors) {
    if (!a.name.empty() && !seen.insert(a.name).second) {
      errors.push_back(source + ": actor \"" + a.name + "\": metadata.name: declared twice");
    }
  }
  if (!errors.empty()) {
    std::string msg;
    for (const auto& e : errors) {
      msg += (msg.empty() ? "" : "\n") + e;
    }
    return MakeError(ErrorCode::kInvalidArgument, msg);
  }
  return out;
}

Result<LoadResult> LoadManifests(const std::vector<std::string>& paths,
                                 const ParseOptions& options) {
  std::vector<fs::path> files;
  for (const auto& p : paths) {
    std::error_code ec;
    fs::path path(p);
    if (fs::is_directory(path, ec)) {
      std::vector<fs::path> in_dir;
      for (const auto& entry : fs::directory_iterator(path, ec)) {
        auto ext = entry.path().extension().string();
        if (entry.is_regular_file() && (ext == ".yaml" || ext == ".yml")) {
          in_dir.push_back(entry.path());
        }
      }
      if (in_dir.empty()) {
        return MakeError(ErrorCode::kInvalidArgument, p + ": directory has no *.yaml/*.yml files");
      }
      std::sort(in_dir.begin(), in_dir.end());
      files.insert(files.end(), in_dir.begin(), in_dir.end());
    } else if (fs::exists(path, ec)) {
      files.push_back(path);
    } else {
      return MakeError(ErrorCode::kNotFound, p + ": no such file or directory");
    }
  }
  LoadResult all;
  std::string errors;
  std::set<std::string> seen;
  for (const auto& f : files) {
    std::error_code size_ec;
    if (auto size = fs::file_size(f, size_ec); !size_ec && size > kMaxManifestBytes) {
      errors += (errors.empty() ? "" : "\n") + f.string() + ": " + std::to_string(size) +
                " bytes; a manifest file may have at most " + std::to_string(kMaxManifestBytes) +
                " bytes";
      continue;  // not read at all
    }
    std::ifstream in(f, std::ios::binary);
    if (!in) {
      return MakeError(ErrorCode::kNotFound, f.string() + ": cannot read file");
    }
    std::stringstream text;
    text << in.rdbuf();
    std::error_code ec;
    fs::path dir = fs::absolute(f, ec).parent_path();
    auto r = ParseManifests(text.str(), f.string(), dir.lexically_normal().string(), options);
    if (!r) {
      errors += (errors.empty() ? "" : "\n") + r.error().message;
      continue;
    }
    for (auto& w : r->warnings) {
      all.warnings.push_back(std::move(w));
    }
    for (auto& a : r->actors) {
      if (options.skip_crew && (a.name == "happy-end" || a.name == "error-end")) {
        all.warnings.push_back(f.string() + ": actor \"" + a.name +
                               "\": ignored; asya up runs its own crew actor with this name");
        continue;
      }
      if (!seen.insert(a.name).second) {
        errors += (errors.empty() ? "" : "\n") + f.string() + ": actor \"" + a.name +
                  "\": metadata.name: declared more than once";
        continue;
      }
      all.actors.push_back(std::move(a));
    }
  }
  if (!errors.empty()) {
    return MakeError(ErrorCode::kInvalidArgument, errors);
  }
  return all;
}

}  // namespace asya::actor
