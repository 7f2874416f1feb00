#include "sidecar/reports.h"

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <string>

#include <nlohmann/json.hpp>

#include "asya/base/json_text.h"
#include "asya/base/time_format.h"

namespace asya::sidecar {
namespace {

void AppendActors(std::string& out, const envelope::Route& route) {
  out += '[';
  for (size_t i = 0; i < route.actors.size(); ++i) {
    if (i > 0) {
      out += ',';
    }
    AppendJsonString(out, route.actors[i]);
  }
  out += ']';
}

PostKind FinalKind(const envelope::Envelope& env) {
  return env.parent_id && !env.parent_id->empty() ? PostKind::kChildFinal : PostKind::kFinal;
}

std::string Progress(const envelope::Envelope& env, std::string_view status,
                     std::string_view message, std::string_view extra) {
  std::string b = "{\"actors\":";
  AppendActors(b, env.route);
  b += ",\"current_actor_idx\":" + std::to_string(env.route.current) + ",\"status\":";
  AppendJsonString(b, status);
  b += ",\"message\":";
  AppendJsonString(b, message);
  b += extra;
  b += '}';
  return b;
}

}  // namespace

std::string Report::Timestamp() const {
  return FormatRfc3339(clock_.WallNow());
}

void Report::BeforeCall() {
  const envelope::Envelope* env = input_.envelope();
  if (gateway_ == nullptr || env == nullptr || env->id.empty() || policy_.is_end_actor) {
    return;
  }
  const double kb = static_cast<double>(input_.body().size()) / 1024.0;
  char text[96];
  std::snprintf(text, sizeof(text), "Received message (%.2f KB)", kb);
  char extra[64];
  std::snprintf(extra, sizeof(extra), ",\"message_size_kb\":%.3f", kb);
  const std::string path = "/envelopes/" + env->id + "/progress";
  gateway_->Post(PostKind::kProgress, path, Progress(*env, "received", text, extra));
  gateway_->Post(PostKind::kProgress, path,
                 Progress(*env, "processing", "Processing in " + policy_.actor, ""));
}

bool Report::AfterCallWaits(const router::Decision& decision) const {
  const envelope::Envelope* env = input_.envelope();
  return gateway_ != nullptr && env != nullptr && !env->id.empty() && !policy_.is_end_actor &&
         decision.processed_status != router::Processed::kNone &&
         std::any_of(decision.publishes.begin(), decision.publishes.end(),
                     [](const auto& p) { return p.type == router::MessageType::kHappyEnd; });
}

void Report::AfterCall(const router::RuntimeOutcome& outcome, const router::Decision& decision,
                       std::chrono::steady_clock::duration runtime_time) {
  const envelope::Envelope* env = input_.envelope();
  if (gateway_ == nullptr || env == nullptr || env->id.empty()) {
    return;
  }
  if (!policy_.is_end_actor) {
    if (decision.processed_status == router::Processed::kNone) {
      return;  // failures are reported by error-end's final status
    }
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(runtime_time).count();
    // DESIGN §4.9: `completed` names the actor that completed (the input's current index).
    gateway_->Post(
        PostKind::kProgress, "/envelopes/" + env->id + "/progress",
        Progress(*env, "completed", "Completed processing in " + std::to_string(ms) + "ms",
                 ",\"duration_ms\":" + std::to_string(ms)));
    for (size_t i = 1; i < outcome.items.size(); ++i) {
      std::string b = "{\"id\":";
      AppendJsonString(b, env->id + "-" + std::to_string(i));
      b += ",\"parent_id\":";
      AppendJsonString(b, env->id);
      b += ",\"actors\":";
      AppendActors(b, outcome.items[i].route);
      b += ",\"current\":" + std::to_string(outcome.items[i].route.current) + "}";
      gateway_->Post(PostKind::kFanout, "/envelopes", std::move(b));
    }
    // The route ends here: happy-end's final status must not reach the gateway before this
    // actor's progress (found by the MCP conformance suite on two gateway replicas under load).
    if (AfterCallWaits(decision)) {
      gateway_->Flush(env->id);
    }
    return;
  }
  if (decision.processed_status != router::Processed::kEndConsumed) {
    return;
  }
  std::string b = "{\"id\":";
  AppendJsonString(b, env->id);
  if (policy_.actor == policy_.happy_end) {
    b += ",\"status\":\"succeeded\",\"timestamp\":\"" + Timestamp() + "\",\"progress\":1.0";
    const std::string* result = nullptr;
    if (!outcome.items.empty() && outcome.items[0].has_payload) {
      result = &outcome.items[0].payload_json;
    } else {
      result = &input_.WithPayload()->payload_json;  // the incoming envelope's payload
    }
    if (*result != "null") {
      b += ",\"result\":" + *result;
    }
  } else if (policy_.actor == policy_.error_end) {
    b += ",\"status\":\"failed\",\"timestamp\":\"" + Timestamp() + "\"";
    nlohmann::json p = nlohmann::json::parse(input_.WithPayload()->payload_json, nullptr, false);
    if (p.is_object()) {
      if (p.contains("error") && p["error"].is_string() && !p["error"].get<std::string>().empty()) {
        b += ",\"error\":" + p["error"].dump();
      }
      if (p.contains("details") && !p["details"].is_null()) {
        b += ",\"error_details\":" + p["details"].dump();
      }
    }
    const auto& route = env->route;
    if (!route.actors.empty()) {
      b += ",\"actors\":";
      AppendActors(b, route);
      b += ",\"current_actor_idx\":" + std::to_string(route.current);
      if (!route.CurrentActor().empty()) {
        b += ",\"current_actor_name\":";
        AppendJsonString(b, route.CurrentActor());
      }
    }
  } else {
    return;
  }
  // The end actor's route.metadata (asya-crew adds `s3_uri`, where it stored the envelope).
  if (!outcome.items.empty() && !outcome.items[0].route.metadata_json.empty()) {
    b += ",\"metadata\":" + outcome.items[0].route.metadata_json;
  }
  b += '}';
  gateway_->Post(FinalKind(*env), "/envelopes/" + env->id + "/final", std::move(b));
}

void Report::AfterPrecheck(const router::Decision& decision) {
  const envelope::Envelope* env = input_.envelope();
  if (gateway_ == nullptr || env == nullptr || env->id.empty() || !policy_.is_end_actor ||
      (policy_.actor != policy_.happy_end && policy_.actor != policy_.error_end)) {
    return;
  }
  for (const auto& p : decision.publishes) {
    if (p.type != router::MessageType::kDeadLetter) {
      continue;
    }
    auto reason = p.transport_headers.find(std::string(router::kHeaderDlqReason));
    std::string error = "dead-lettered by " + policy_.actor;
    if (reason != p.transport_headers.end()) {
      error += ": " + reason->second;
    }
    std::string b = "{\"id\":";
    AppendJsonString(b, env->id);
    b += ",\"status\":\"failed\",\"timestamp\":\"" + Timestamp() + "\",\"error\":";
    AppendJsonString(b, error);
    b += '}';
    gateway_->Post(FinalKind(*env), "/envelopes/" + env->id + "/final", std::move(b));
    return;
  }
}

}  // namespace asya::sidecar
