#include "asya/store/rules.h"

#include <algorithm>
#include <cmath>
#include <string>

#include <nlohmann/json.hpp>

namespace asya::store {
namespace {

double RoundCents(double percent) {
  return std::round(percent * 100.0) / 100.0;
}

}  // namespace

std::string_view StatusName(Status status) {
  switch (status) {
    case Status::kPending:
      return "pending";
    case Status::kRunning:
      return "running";
    case Status::kSucceeded:
      return "succeeded";
    case Status::kFailed:
      return "failed";
    case Status::kCancelled:
      return "cancelled";
    case Status::kUnknown:
      return "unknown";
  }
  return "unknown";
}

std::optional<Status> ParseStatus(std::string_view name) {
  for (Status s : {Status::kPending, Status::kRunning, Status::kSucceeded, Status::kFailed,
                   Status::kCancelled, Status::kUnknown}) {
    if (StatusName(s) == name) {
      return s;
    }
  }
  return std::nullopt;
}

bool IsJsonOrEmpty(std::string_view text) {
  return text.empty() || nlohmann::json::accept(text);
}

int StateWeight(std::string_view state) {
  if (state == "received") {
    return 10;
  }
  if (state == "processing") {
    return 50;
  }
  if (state == "completed") {
    return 100;
  }
  return 0;
}

double RawProgressPercent(int current_actor_idx, std::string_view state, std::size_t total_actors) {
  if (total_actors == 0) {
    return 0;
  }
  double pct = (static_cast<double>(current_actor_idx) * 100.0 + StateWeight(state)) /
               static_cast<double>(total_actors);
  return RoundCents(pct);
}

asya::Status ValidateNewSession(const McpSession& session) {
  if (session.id.empty()) {
    return MakeError(ErrorCode::kInvalidArgument, "session id is empty");
  }
  if (session.protocol_version.empty()) {
    return MakeError(ErrorCode::kInvalidArgument, "session protocol version is empty");
  }
  if (!IsJsonOrEmpty(session.client_capabilities_json)) {
    return MakeError(ErrorCode::kInvalidArgument, "session client capabilities are not valid JSON");
  }
  return Ok();
}

asya::Status ValidateNewEnvelope(const Envelope& envelope) {
  if (envelope.id.empty()) {
    return MakeError(ErrorCode::kInvalidArgument, "envelope id is empty");
  }
  if (IsFinal(envelope.status)) {
    return MakeError(ErrorCode::kInvalidArgument,
                     "a new envelope cannot be " + std::string(StatusName(envelope.status)));
  }
  if (envelope.timeout_seconds < 0) {
    return MakeError(ErrorCode::kInvalidArgument, "timeout_seconds is negative");
  }
  struct Field {
    const char* name;
    const std::string* text;
  };
  for (const Field& f :
       {Field{"payload", &envelope.payload_json}, Field{"result", &envelope.result_json},
        Field{"route.metadata", &envelope.route_metadata_json}}) {
    if (!IsJsonOrEmpty(*f.text)) {
      return MakeError(ErrorCode::kInvalidArgument,
                       std::string("envelope ") + f.name + " is not valid JSON");
    }
  }
  return Ok();
}

Plan PlanCreate(const Envelope& envelope, TimePoint now) {
  Plan plan;
  plan.applied = true;
  plan.after = envelope;
  plan.after.created_at = now;
  plan.after.updated_at = now;
  if (plan.after.total_actors == 0) {
    plan.after.total_actors = static_cast<int>(plan.after.route_actors.size());
  }
  plan.after.progress_percent =
      std::clamp(RoundCents(plan.after.progress_percent), 0.0, kMaxUnfinishedPercent);
  Update& u = plan.update;
  u.envelope_id = envelope.id;
  u.status = plan.after.status;
  u.message = plan.after.message;
  u.progress_percent = plan.after.progress_percent;
  u.timestamp = now;
  return plan;
}

Plan PlanMarkRunning(const Envelope& before, std::string_view message, TimePoint now) {
  Plan plan;
  plan.after = before;
  if (before.status != Status::kPending) {
    return plan;
  }
  plan.applied = true;
  plan.after.status = Status::kRunning;
  if (!message.empty()) {
    plan.after.message = std::string(message);
  }
  plan.after.updated_at = now;
  Update& u = plan.update;
  u.envelope_id = before.id;
  u.status = Status::kRunning;
  u.message = std::string(message);
  u.timestamp = now;
  return plan;
}

Result<Plan> PlanProgress(const Envelope& before, const ProgressReport& report, TimePoint now) {
  if (report.current_actor_idx < 0) {
    return MakeError(ErrorCode::kInvalidArgument,
                     "current_actor_idx is negative: " + std::to_string(report.current_actor_idx));
  }
  if (!report.state.empty() && StateWeight(report.state) == 0) {
    return MakeError(
        ErrorCode::kInvalidArgument,
        "progress state '" + report.state + "' is not one of received, processing, completed");
  }
  Plan plan;
  plan.after = before;
  if (IsFinal(before.status)) {
    return plan;
  }
  const std::vector<std::string>& actors =
      report.actors.size() > before.route_actors.size() ? report.actors : before.route_actors;
  double pct = RawProgressPercent(report.current_actor_idx, report.state, actors.size());
  pct = std::max(before.progress_percent, std::min(pct, kMaxUnfinishedPercent));

  plan.applied = true;
  Envelope& a = plan.after;
  a.status = Status::kRunning;
  a.progress_percent = pct;
  a.current_actor_idx = report.current_actor_idx;
  auto idx = static_cast<std::size_t>(report.current_actor_idx);
  if (idx < actors.size()) {
    a.current_actor_name = actors[idx];
  }
  a.route_actors = actors;
  a.total_actors = static_cast<int>(actors.size());
  if (!report.message.empty()) {
    a.message = report.message;
  }
  a.updated_at = now;

  Update& u = plan.update;
  u.envelope_id = before.id;
  u.status = Status::kRunning;
  u.message = report.message;
  u.actor = idx < actors.size() ? actors[idx] : std::string();
  u.actors = actors;
  u.current_actor_idx = report.current_actor_idx;
  u.progress_percent = pct;
  u.envelope_state = report.state;
  u.timestamp = now;
  return plan;
}

asya::Status ValidateFinalReport(const FinalReport& report) {
  if (!IsFinal(report.status)) {
    return MakeError(ErrorCode::kInvalidArgument,
                     "a final report needs status succeeded, failed or cancelled, not " +
                         std::string(StatusName(report.status)));
  }
  if (!IsJsonOrEmpty(report.result_json)) {
    return MakeError(ErrorCode::kInvalidArgument, "final result is not valid JSON");
  }
  return Ok();
}

Result<Plan> PlanFinish(const Envelope& before, const FinalReport& report, TimePoint now) {
  ASYA_RETURN_IF_ERROR(ValidateFinalReport(report));
  Plan plan;
  plan.after = before;
  if (IsFinal(before.status)) {
    return plan;
  }
  plan.applied = true;
  Envelope& a = plan.after;
  a.status = report.status;
  if (!report.result_json.empty()) {
    a.result_json = report.result_json;
  }
  if (!report.error.empty()) {
    a.error = report.error;
  }
  if (!report.message.empty()) {
    a.message = report.message;
  }
  a.progress_percent = 100;
  a.updated_at = now;

  Update& u = plan.update;
  u.envelope_id = before.id;
  u.status = report.status;
  u.message = report.message;
  u.error = report.error;
  u.result_json = report.result_json;
  u.progress_percent = 100;
  u.timestamp = now;
  return plan;
}

}  // namespace asya::store
