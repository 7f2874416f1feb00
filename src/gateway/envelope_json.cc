#include "asya/gateway/envelope_json.h"

#include <cmath>
#include <cstdio>

#include "asya/base/json_text.h"
#include "asya/base/time_format.h"

namespace asya::gateway {
namespace {

void Key(std::string& out, const char* key) {
  out += ",\"";
  out += key;
  out += "\":";
}

void Str(std::string& out, const char* key, const std::string& v) {
  Key(out, key);
  AppendJsonString(out, v);
}

std::string Number(double v) {
  if (!std::isfinite(v)) {
    return "0";
  }
  char b[32];
  std::snprintf(b, sizeof(b), "%.2f", v);
  std::string s(b);
  // Trim "50.00" → "50", "33.30" → "33.3".
  while (!s.empty() && s.back() == '0')
    s.pop_back();
  if (!s.empty() && s.back() == '.')
    s.pop_back();
  return s;
}

void Actors(std::string& out, const std::vector<std::string>& actors) {
  out += '[';
  for (size_t i = 0; i < actors.size(); ++i) {
    if (i > 0)
      out += ',';
    AppendJsonString(out, actors[i]);
  }
  out += ']';
}

}  // namespace

const char* StatusText(store::Status s) {
  switch (s) {
    case store::Status::kPending:
      return "pending";
    case store::Status::kRunning:
      return "running";
    case store::Status::kSucceeded:
      return "succeeded";
    case store::Status::kFailed:
      return "failed";
    case store::Status::kCancelled:
      return "cancelled";
    case store::Status::kUnknown:
      break;
  }
  return "unknown";
}

std::string EnvelopeJson(const store::Envelope& e) {
  std::string o = "{\"id\":";
  AppendJsonString(o, e.id);
  if (!e.parent_id.empty())
    Str(o, "parent_id", e.parent_id);
  Str(o, "status", StatusText(e.status));
  Key(o, "route");
  o += "{\"actors\":";
  Actors(o, e.route_actors);
  o += ",\"current\":" + std::to_string(e.route_current);
  if (!e.route_metadata_json.empty())
    o += ",\"metadata\":" + e.route_metadata_json;
  o += '}';
  Key(o, "payload");
  o += e.payload_json.empty() ? std::string("null") : e.payload_json;
  if (!e.result_json.empty()) {
    Key(o, "result");
    o += e.result_json;
  }
  if (!e.error.empty())
    Str(o, "error", e.error);
  if (e.timeout_seconds > 0) {
    Key(o, "timeout_seconds");
    o += std::to_string(e.timeout_seconds);
  }
  if (e.deadline)
    Str(o, "deadline", FormatRfc3339(*e.deadline, 0));
  Key(o, "progress_percent");
  o += Number(e.progress_percent);
  Key(o, "current_actor_idx");
  o += std::to_string(e.current_actor_idx);
  if (!e.current_actor_name.empty())
    Str(o, "current_actor_name", e.current_actor_name);
  if (!e.message.empty())
    Str(o, "message", e.message);
  int completed = e.status == store::Status::kSucceeded ? e.total_actors : e.current_actor_idx;
  Key(o, "actors_completed");
  o += std::to_string(std::max(0, completed));
  Key(o, "total_actors");
  o += std::to_string(e.total_actors);
  if (!e.tool.empty())
    Str(o, "tool", e.tool);
  Str(o, "created_at", FormatRfc3339(e.created_at, 9));
  Str(o, "updated_at", FormatRfc3339(e.updated_at, 9));
  o += '}';
  return o;
}

std::string UpdateJson(const store::Update& u) {
  std::string o = "{\"id\":";
  AppendJsonString(o, u.envelope_id);
  Str(o, "status", StatusText(u.status));
  if (!u.message.empty())
    Str(o, "message", u.message);
  if (!u.result_json.empty()) {
    Key(o, "result");
    o += u.result_json;
  }
  if (!u.error.empty())
    Str(o, "error", u.error);
  if (u.progress_percent) {
    Key(o, "progress_percent");
    o += Number(*u.progress_percent);
  }
  if (!u.actor.empty())
    Str(o, "actor", u.actor);
  if (!u.actors.empty()) {
    Key(o, "actors");
    Actors(o, u.actors);
  }
  if (u.current_actor_idx) {
    Key(o, "current_actor_idx");
    o += std::to_string(*u.current_actor_idx);
  }
  if (!u.envelope_state.empty())
    Str(o, "envelope_state", u.envelope_state);
  if (u.seq > 0) {
    Key(o, "seq");
    o += std::to_string(u.seq);
  }
  Str(o, "timestamp", FormatRfc3339(u.timestamp, 9));
  o += '}';
  return o;
}

std::string UpdateEvent(const store::Update& u) {
  std::string e;
  if (u.seq > 0) {
    e += "id: " + std::to_string(u.seq) + "\n";
  }
  e += "event: update\ndata: ";
  e += UpdateJson(u);
  e += "\n\n";
  return e;
}

}  // namespace asya::gateway
