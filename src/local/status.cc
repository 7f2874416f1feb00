#include "asya/local/status.h"

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <set>
#include <sstream>

#include <fcntl.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "asya/base/clock.h"
#include "asya/base/time_format.h"

namespace asya::local {

using nlohmann::json;

namespace {

constexpr int64_t kDegradedAfterMs = 5 * 60 * 1000;
// Container names of a replica, as in a pod (AsyncActor's containers).
constexpr char kRuntimeContainer[] = "asya-runtime";
constexpr char kSidecarContainer[] = "asya-sidecar";

std::string Pad(const std::string& s, size_t width) {
  return s.size() >= width ? s : s + std::string(width - s.size(), ' ');
}

std::string Table(const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> widths;
  for (const auto& r : rows) {
    widths.resize(std::max(widths.size(), r.size()));
    for (size_t i = 0; i < r.size(); ++i) {
      widths[i] = std::max(widths[i], r[i].size());
    }
  }
  std::string out;
  for (const auto& r : rows) {
    std::string line;
    for (size_t i = 0; i < r.size(); ++i) {
      line += i + 1 == r.size() ? r[i] : Pad(r[i], widths[i] + 3);
    }
    out += line + "\n";
  }
  return out;
}

std::string Ago(int64_t ms) {
  int64_t s = std::max<int64_t>(0, ms / 1000);
  if (s < 60) {
    return std::to_string(s) + "s ago";
  }
  if (s < 3600) {
    return std::to_string(s / 60) + "m ago";
  }
  if (s < 86400) {
    return std::to_string(s / 3600) + "h ago";
  }
  return std::to_string(s / 86400) + "d ago";
}

}  // namespace

bool ReplicaReady(const ReplicaObservation& r) {
  return !r.stopping && r.runtime.pid > 0 && r.runtime_ready && r.sidecar.pid > 0;
}

std::string CrashLoopingContainer(const ReplicaObservation& r) {
  if (r.stopping) {
    return "";
  }
  if (r.runtime.consecutive_crashes > 0 && !r.runtime_ready) {
    return kRuntimeContainer;
  }
  if (r.sidecar.consecutive_crashes > 0 && r.sidecar.pid == 0) {
    return kSidecarContainer;
  }
  return "";
}

ReplicaStatus ComputeReplicaStatus(const ReplicaObservation& r) {
  ReplicaStatus rs;
  rs.index = r.index;
  rs.ready = ReplicaReady(r);
  rs.runtime_pid = r.runtime.pid;
  rs.sidecar_pid = r.sidecar.pid;
  rs.runtime_restarts = r.runtime.restarts;
  rs.sidecar_restarts = r.sidecar.restarts;
  rs.runtime_last_exit = r.runtime.last_exit;
  rs.sidecar_last_exit = r.sidecar.last_exit;
  rs.started_ms = r.started_ms;
  const std::string looping = CrashLoopingContainer(r);
  rs.failing = !looping.empty();
  if (r.stopping) {
    rs.phase = "Stopping";
  } else if (rs.failing && (r.runtime.pid == 0 || r.sidecar.pid == 0)) {
    rs.phase = "BackOff";
    const ProcessObservation& p = looping == kRuntimeContainer ? r.runtime : r.sidecar;
    const int64_t wait = std::max<int64_t>(0, p.restart_in_ms);
    rs.waiting_reason = looping + " CrashLoopBackOff: last " + p.last_exit + ", restarting in " +
                        std::to_string((wait + 999) / 1000) + "s";
  } else if (rs.ready) {
    rs.phase = "Running";
  } else {
    rs.phase = "Starting";
  }
  return rs;
}

void SetReplicas(ActorStatus& a, const std::vector<ReplicaObservation>& replicas) {
  a.replicas.clear();
  a.ready = a.total = a.failing = 0;
  a.crash_container.clear();
  for (const auto& r : replicas) {
    ReplicaStatus rs = ComputeReplicaStatus(r);
    if (rs.failing && a.crash_container.empty()) {
      a.crash_container = CrashLoopingContainer(r);
    }
    a.total += r.stopping ? 0 : 1;
    a.ready += rs.ready ? 1 : 0;
    a.failing += rs.failing ? 1 : 0;
    a.replicas.push_back(std::move(rs));
  }
}

std::string ComputeStatus(const ActorStatus& a, int64_t now_ms) {
  if (a.failing > 0 && a.ready < a.desired) {
    return a.crash_container == kSidecarContainer ? "SidecarError" : "RuntimeError";
  }
  if (a.desired == 0 && a.scaling_enabled) {
    return a.total > 0 ? "ScalingDown" : "Napping";
  }
  if (a.total < a.desired && a.desired > 0) {
    return "ScalingUp";
  }
  if (a.total > a.desired) {
    return "ScalingDown";
  }
  if (a.ready < a.total && a.total > 0) {
    bool old = a.last_scale_ms >= 0 && now_ms - a.last_scale_ms > kDegradedAfterMs;
    return old ? "Degraded" : "ScalingUp";
  }
  if (a.ready == a.desired && a.ready > 0) {
    return "Running";
  }
  if (a.ready == 0 && a.desired == 0 && !a.scaling_enabled) {
    return "Running";
  }
  return "Unknown";
}

std::string FormatLastScale(int64_t last_scale_ms, const std::string& direction, int64_t now_ms) {
  if (last_scale_ms < 0) {
    return "-";
  }
  std::string s = Ago(now_ms - last_scale_ms);
  if (!direction.empty()) {
    s += " (" + direction + ")";
  }
  return s;
}

std::string FormatAge(int64_t seconds) {
  seconds = std::max<int64_t>(0, seconds);
  const int64_t m = seconds / 60;
  const int64_t h = seconds / 3600;
  const int64_t d = seconds / 86400;
  if (seconds < 120) {
    return std::to_string(seconds) + "s";
  }
  if (m < 10) {
    int64_t s = seconds % 60;
    return std::to_string(m) + "m" + (s == 0 ? "" : std::to_string(s) + "s");
  }
  if (m < 180) {
    return std::to_string(m) + "m";
  }
  if (h < 8) {
    int64_t mm = m % 60;
    return std::to_string(h) + "h" + (mm == 0 ? "" : std::to_string(mm) + "m");
  }
  if (h < 48) {
    return std::to_string(h) + "h";
  }
  if (h < 24 * 8) {
    int64_t hh = h % 24;
    return std::to_string(d) + "d" + (hh == 0 ? "" : std::to_string(hh) + "h");
  }
  return std::to_string(d) + "d";
}

std::string RenderTable(const std::vector<ActorStatus>& actors, int64_t now_ms, bool wide) {
  std::vector<std::vector<std::string>> rows;
  std::vector<std::string> head = {"NAME",    "STATUS", "RUNNING", "FAILING",    "TOTAL",
                                   "DESIRED", "MIN",    "MAX",     "LAST-SCALE", "AGE"};
  if (wide) {
    for (const char* h : {"WORKLOAD", "TRANSPORT", "SCALING", "QUEUED", "PROCESSING"}) {
      head.emplace_back(h);
    }
  }
  rows.push_back(head);
  for (const auto& a : actors) {
    std::vector<std::string> r = {a.name,
                                  a.status,
                                  std::to_string(a.ready),
                                  std::to_string(a.failing),
                                  std::to_string(a.total),
                                  std::to_string(a.desired),
                                  a.scaling_present ? std::to_string(a.min_replicas) : "<none>",
                                  a.scaling_present ? std::to_string(a.max_replicas) : "<none>",
                                  FormatLastScale(a.last_scale_ms, a.last_scale_direction, now_ms),
                                  FormatAge((now_ms - a.created_ms) / 1000)};
    if (wide) {
      r.push_back(a.workload_kind);
      r.emplace_back(a.transport_ready ? "Ready" : "NotReady");
      r.emplace_back(a.scaling_enabled ? "KEDA" : "Manual");
      r.push_back(std::to_string(a.queued));
      r.push_back(std::to_string(a.processing));
    }
    rows.push_back(std::move(r));
  }
  return Table(rows);
}

namespace {
// Unix milliseconds as RFC 3339 UTC with milliseconds ("2026-12-06T07:00:00.123Z").
std::string Rfc3339Ms(int64_t ms) {
  return FormatRfc3339(Clock::WallTime(std::chrono::milliseconds(ms)), 3);
}
}  // namespace

std::string RenderJson(const std::vector<ActorStatus>& actors, int64_t /*now_ms*/) {
  json arr = json::array();
  for (const auto& a : actors) {
    arr.push_back({
        {"name", a.name},
        {"status", a.status},
        {"running", a.ready},
        {"failing", a.failing},
        {"total", a.total},
        {"desired", a.desired},
        {"min", a.scaling_present ? json(a.min_replicas) : json(nullptr)},
        {"max", a.scaling_present ? json(a.max_replicas) : json(nullptr)},
        {"lastScale",
         a.last_scale_ms < 0
             ? json(nullptr)
             : json{{"time", Rfc3339Ms(a.last_scale_ms)},
                    {"direction", a.last_scale_direction.empty() ? json(nullptr)
                                                                 : json(a.last_scale_direction)}}},
        {"age", a.created_ms <= 0 ? json(nullptr) : json(Rfc3339Ms(a.created_ms))},
        {"workload", a.workload_kind},
        {"transport", a.transport_ready ? "Ready" : "NotReady"},
        {"scaling", a.scaling_enabled ? "KEDA" : "Manual"},
        {"queued", a.queued},
        {"processing", a.processing},
    });
  }
  return arr.dump(2) + "\n";
}

std::string DescribeRetry(const ActorPolicy& p) {
  if (p.retry_max_attempts.empty() || p.retry_max_attempts == "1") {
    return "no retry (maxAttempts 1): a failed message goes to error-end; set "
           "spec.retry.maxAttempts to retry";
  }
  std::string out = "up to " + p.retry_max_attempts + " attempts, back-off " +
                    (p.retry_backoff.empty() ? "1s" : p.retry_backoff) + " doubling to " +
                    (p.retry_max_backoff.empty() ? "5m" : p.retry_max_backoff);
  if (!p.retry_non_retryable.empty()) {
    out += "; not retried: " + p.retry_non_retryable;
  }
  return out;
}

std::string RenderDescribe(const ActorStatus& a, int64_t now_ms) {
  std::ostringstream o;
  o << "Name:            " << a.name << (a.crew ? " (crew)" : "") << "\n";
  o << "Source:          " << (a.source.empty() ? "-" : a.source) << "\n";
  o << "Status:          " << a.status << "\n";
  o << "Age:             " << FormatAge((now_ms - a.created_ms) / 1000) << "\n";
  o << "Handler:         " << (a.handler.empty() ? "-" : a.handler) << " (mode "
    << (a.handler_mode.empty() ? "payload" : a.handler_mode) << ")\n";
  o << "Runtime command: " << a.command << "\n";
  o << "Timeout:         ";
  if (!a.policy.runtime_timeout.empty()) {
    o << a.policy.runtime_timeout << " (ASYA_RUNTIME_TIMEOUT of runtime and sidecar)\n";
  } else {
    o << (a.processing_timeout_s > 0 ? std::to_string(a.processing_timeout_s) + "s" : "default")
      << "\n";
  }
  if (!a.policy.retry_max_attempts.empty()) {
    o << "Retry:           " << DescribeRetry(a.policy) << "\n";
  }
  if (!a.policy.max_deliveries.empty()) {
    o << "Max deliveries:  " << a.policy.max_deliveries << " (then asya-" << a.name << "-dlq)\n";
  }
  o << "Scaling:         ";
  if (a.scaling_enabled) {
    o << "KEDA-style: min " << a.min_replicas << ", max " << a.max_replicas << ", queueLength "
      << a.queue_length << ", pollingInterval " << a.polling_interval_s << "s, cooldownPeriod "
      << a.cooldown_period_s << "s\n";
  } else {
    o << "Manual: " << a.workload_replicas << " replica(s)\n";
  }
  o << "Replicas:        " << a.ready << " ready / " << a.total << " total / " << a.desired
    << " desired, " << a.failing << " failing\n";
  o << "Last scale:      " << FormatLastScale(a.last_scale_ms, a.last_scale_direction, now_ms)
    << "\n";
  o << "Queue:           asya-" << a.name << ": " << a.queued << " queued, " << a.processing
    << " in flight; asya-" << a.name << "-dlq: " << a.dlq << "\n";
  o << "\nReplicas:\n";
  if (a.replicas.empty()) {
    o << "  <none>\n";
  } else {
    std::vector<std::vector<std::string>> rows = {{"  REPLICA", "PHASE", "READY", "RUNTIME-PID",
                                                   "RESTARTS", "LAST-EXIT", "SIDECAR-PID",
                                                   "RESTARTS", "LAST-EXIT", "AGE"}};
    for (const auto& r : a.replicas) {
      rows.push_back({"  " + std::to_string(r.index), r.phase, r.ready ? "true" : "false",
                      r.runtime_pid > 0 ? std::to_string(r.runtime_pid) : "-",
                      std::to_string(r.runtime_restarts),
                      r.runtime_last_exit.empty() ? "-" : r.runtime_last_exit,
                      r.sidecar_pid > 0 ? std::to_string(r.sidecar_pid) : "-",
                      std::to_string(r.sidecar_restarts),
                      r.sidecar_last_exit.empty() ? "-" : r.sidecar_last_exit,
                      FormatAge((now_ms - r.started_ms) / 1000)});
    }
    o << Table(rows);
    for (const auto& r : a.replicas) {
      if (!r.waiting_reason.empty()) {
        o << "  replica " << r.index << ": " << r.waiting_reason << "\n";
      }
    }
  }
  o << "\nEvents:\n";
  if (a.events.empty()) {
    o << "  <none>\n";
  } else {
    std::vector<std::vector<std::string>> rows = {{"  TYPE", "REASON", "AGE", "MESSAGE"}};
    for (const auto& e : a.events) {
      rows.push_back({"  " + e.type, e.reason, FormatAge((now_ms - e.time_ms) / 1000), e.message});
    }
    o << Table(rows);
  }
  return o.str();
}

std::string DrainingLine(const MeshStatus& s) {
  std::string out;
  for (const auto& a : s.actors) {
    if (a.replicas.empty()) {
      continue;
    }
    std::string what;
    if (a.processing > 0) {
      what = std::to_string(a.processing) + " in-flight message" + (a.processing == 1 ? "" : "s") +
             ", ";
    }
    what += std::to_string(a.replicas.size()) + " replica" + (a.replicas.size() == 1 ? "" : "s");
    out += (out.empty() ? "draining " : ", ") + a.name + " (" + what + ")";
  }
  return out;
}

std::string QueuedSummary(const MeshStatus& s) {
  std::vector<std::vector<std::string>> rows;
  for (const auto& a : s.actors) {
    const int64_t left = a.queued + a.processing;
    if (left > 0) {
      rows.push_back({"    " + a.name, std::to_string(left) + " message" + (left == 1 ? "" : "s"),
                      "(queue asya-" + a.name + ")"});
    }
  }
  if (rows.empty()) {
    return "  nothing left queued\n";
  }
  return "  left queued (processed when the mesh runs again):\n" + Table(rows);
}

std::string NotRunningOnRoute(const MeshStatus& s, const std::vector<std::string>& route) {
  std::string out;
  std::set<std::string> seen;
  for (const auto& name : route) {
    if (!seen.insert(name).second) {
      continue;
    }
    auto it = std::find_if(s.actors.begin(), s.actors.end(),
                           [&](const ActorStatus& a) { return a.name == name; });
    std::string why;
    if (it == s.actors.end()) {
      why = "not part of the mesh";
    } else if (it->ready == 0 && !(it->desired == 0 && it->failing == 0)) {
      why = (it->status.empty() ? std::string("not ready") : it->status) + ": see `asya logs " +
            name + "`";
    }
    if (!why.empty()) {
      out += (out.empty() ? "not running on the route: " : ", ") + name + " (" + why + ")";
    }
  }
  return out;
}

std::string EncodeMeshStatus(const MeshStatus& s) {
  json actors = json::array();
  for (const auto& a : s.actors) {
    json replicas = json::array();
    for (const auto& r : a.replicas) {
      replicas.push_back({{"index", r.index},
                          {"phase", r.phase},
                          {"ready", r.ready},
                          {"failing", r.failing},
                          {"runtimePid", r.runtime_pid},
                          {"sidecarPid", r.sidecar_pid},
                          {"runtimeRestarts", r.runtime_restarts},
                          {"sidecarRestarts", r.sidecar_restarts},
                          {"runtimeLastExit", r.runtime_last_exit},
                          {"sidecarLastExit", r.sidecar_last_exit},
                          {"waitingReason", r.waiting_reason},
                          {"startedMs", r.started_ms}});
    }
    json events = json::array();
    for (const auto& e : a.events) {
      events.push_back(
          {{"timeMs", e.time_ms}, {"type", e.type}, {"reason", e.reason}, {"message", e.message}});
    }
    actors.push_back({{"name", a.name},
                      {"source", a.source},
                      {"crew", a.crew},
                      {"handler", a.handler},
                      {"handlerMode", a.handler_mode},
                      {"command", a.command},
                      {"workloadKind", a.workload_kind},
                      {"workloadReplicas", a.workload_replicas},
                      {"scalingPresent", a.scaling_present},
                      {"scalingEnabled", a.scaling_enabled},
                      {"minReplicas", a.min_replicas},
                      {"maxReplicas", a.max_replicas},
                      {"pollingInterval", a.polling_interval_s},
                      {"cooldownPeriod", a.cooldown_period_s},
                      {"queueLength", a.queue_length},
                      {"processingTimeout", a.processing_timeout_s},
                      {"status", a.status},
                      {"ready", a.ready},
                      {"total", a.total},
                      {"failing", a.failing},
                      {"desired", a.desired},
                      {"transportReady", a.transport_ready},
                      {"queued", a.queued},
                      {"processing", a.processing},
                      {"dlq", a.dlq},
                      {"createdMs", a.created_ms},
                      {"lastScaleMs", a.last_scale_ms},
                      {"lastScaleDirection", a.last_scale_direction},
                      {"crashContainer", a.crash_container},
                      {"replicas", replicas},
                      {"events", events}});
    actors.back()["policy"] = {{"runtimeTimeout", a.policy.runtime_timeout},
                               {"retryMaxAttempts", a.policy.retry_max_attempts},
                               {"retryBackoff", a.policy.retry_backoff},
                               {"retryMaxBackoff", a.policy.retry_max_backoff},
                               {"retryNonRetryable", a.policy.retry_non_retryable},
                               {"maxDeliveries", a.policy.max_deliveries}};
  }
  json doc = {{"pid", s.pid},
              {"generation", s.generation},
              {"transport", s.transport},
              {"stateDir", s.state_dir},
              {"startedMs", s.started_ms},
              {"updatedMs", s.updated_ms},
              {"stopping", s.stopping},
              {"lastError", s.last_error},
              {"actors", actors}};
  return doc.dump(1) + "\n";
}

Result<MeshStatus> DecodeMeshStatus(const std::string& text) {
  try {
    json doc = json::parse(text);
    MeshStatus s;
    s.pid = doc.value("pid", 0);
    s.generation = doc.value("generation", int64_t{0});
    s.transport = doc.value("transport", "");
    s.state_dir = doc.value("stateDir", "");
    s.started_ms = doc.value("startedMs", int64_t{0});
    s.updated_ms = doc.value("updatedMs", int64_t{0});
    s.stopping = doc.value("stopping", false);
    s.last_error = doc.value("lastError", "");
    for (const auto& j : doc.at("actors")) {
      ActorStatus a;
      a.name = j.value("name", "");
      a.source = j.value("source", "");
      a.crew = j.value("crew", false);
      a.handler = j.value("handler", "");
      a.handler_mode = j.value("handlerMode", "");
      a.command = j.value("command", "");
      a.workload_kind = j.value("workloadKind", "Deployment");
      a.workload_replicas = j.value("workloadReplicas", 1);
      a.scaling_present = j.value("scalingPresent", false);
      a.scaling_enabled = j.value("scalingEnabled", false);
      a.min_replicas = j.value("minReplicas", 0);
      a.max_replicas = j.value("maxReplicas", 50);
      a.polling_interval_s = j.value("pollingInterval", 10);
      a.cooldown_period_s = j.value("cooldownPeriod", 60);
      a.queue_length = j.value("queueLength", 5);
      a.processing_timeout_s = j.value("processingTimeout", 0);
      a.status = j.value("status", "");
      a.ready = j.value("ready", 0);
      a.total = j.value("total", 0);
      a.failing = j.value("failing", 0);
      a.desired = j.value("desired", 0);
      a.transport_ready = j.value("transportReady", false);
      a.queued = j.value("queued", int64_t{0});
      a.processing = j.value("processing", int64_t{0});
      a.dlq = j.value("dlq", int64_t{0});
      a.created_ms = j.value("createdMs", int64_t{0});
      a.last_scale_ms = j.value("lastScaleMs", int64_t{-1});
      a.last_scale_direction = j.value("lastScaleDirection", "");
      a.crash_container = j.value("crashContainer", "");
      if (j.contains("policy") && j["policy"].is_object()) {
        const json& p = j["policy"];
        a.policy.runtime_timeout = p.value("runtimeTimeout", "");
        a.policy.retry_max_attempts = p.value("retryMaxAttempts", "");
        a.policy.retry_backoff = p.value("retryBackoff", "");
        a.policy.retry_max_backoff = p.value("retryMaxBackoff", "");
        a.policy.retry_non_retryable = p.value("retryNonRetryable", "");
        a.policy.max_deliveries = p.value("maxDeliveries", "");
      }
      for (const auto& r : j.value("replicas", json::array())) {
        ReplicaStatus rs;
        rs.index = r.value("index", 0);
        rs.phase = r.value("phase", "");
        rs.ready = r.value("ready", false);
        rs.failing = r.value("failing", false);
        rs.runtime_pid = r.value("runtimePid", 0);
        rs.sidecar_pid = r.value("sidecarPid", 0);
        rs.runtime_restarts = r.value("runtimeRestarts", 0);
        rs.sidecar_restarts = r.value("sidecarRestarts", 0);
        rs.runtime_last_exit = r.value("runtimeLastExit", "");
        rs.sidecar_last_exit = r.value("sidecarLastExit", "");
        rs.waiting_reason = r.value("waitingReason", "");
        rs.started_ms = r.value("startedMs", int64_t{0});
        a.replicas.push_back(std::move(rs));
      }
      for (const auto& e : j.value("events", json::array())) {
        a.events.push_back({e.value("timeMs", int64_t{0}), e.value("type", ""),
                            e.value("reason", ""), e.value("message", "")});
      }
      s.actors.push_back(std::move(a));
    }
    return s;
  } catch (const json::exception& e) {
    return MakeError(ErrorCode::kInvalidArgument, std::string("invalid status file: ") + e.what());
  }
}

Result<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return MakeError(ErrorCode::kNotFound, path + ": cannot read");
  }
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::string KnownActorNames(const MeshStatus& s) {
  std::string out;
  for (bool crew : {false, true}) {
    for (const auto& a : s.actors) {
      if (a.crew == crew) {
        out += (out.empty() ? "" : ", ") + a.name;
      }
    }
  }
  return out.empty() ? "none" : out;
}

}  // namespace asya::local
