#include "gateway/mcp_wire.h"

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <ctime>

#include "asya/base/base64.h"

namespace asya::gateway::mcp {

const std::vector<std::string>& LegacyVersions() {
  static const std::vector<std::string> versions = {"2025-11-25", "2025-06-18", "2025-03-26",
                                                    "2024-11-05"};
  return versions;
}

const std::vector<std::string>& SupportedVersions() {
  static const std::vector<std::string> versions = [] {
    std::vector<std::string> v = {std::string(kModernVersion)};
    const auto& legacy = LegacyVersions();
    v.insert(v.end(), legacy.begin(), legacy.end());
    return v;
  }();
  return versions;
}

bool IsLegacyVersion(std::string_view version) {
  const auto& legacy = LegacyVersions();
  return std::find(legacy.begin(), legacy.end(), version) != legacy.end();
}

bool AllowsBatch(std::string_view version) {
  return version == "2024-11-05" || version == "2025-03-26";
}

std::string NegotiateLegacyVersion(std::string_view requested) {
  if (IsLegacyVersion(requested)) {
    return std::string(requested);
  }
  return LegacyVersions().front();
}

std::string Dump(const Json& value) {
  return value.dump(-1, ' ', false, Json::error_handler_t::replace);
}

Json ErrorObject(int code, std::string_view message, Json data) {
  Json error = {{"code", code}, {"message", std::string(message)}};
  if (!data.is_null()) {
    error["data"] = std::move(data);
  }
  return error;
}

Json ErrorResponse(const Json& id, int code, std::string_view message, Json data) {
  Json response = {{"jsonrpc", "2.0"}, {"id", id}};
  response["error"] = ErrorObject(code, message, std::move(data));
  return response;
}

Json ResultResponse(const Json& id, Json result) {
  Json response = {{"jsonrpc", "2.0"}, {"id", id}};
  response["result"] = std::move(result);
  return response;
}

std::optional<std::string> DecodeHeaderValue(std::string_view raw) {
  constexpr std::string_view kPrefix = "=?base64?";
  constexpr std::string_view kSuffix = "?=";
  if (raw.size() >= kPrefix.size() + kSuffix.size() && raw.substr(0, kPrefix.size()) == kPrefix &&
      raw.substr(raw.size() - kSuffix.size()) == kSuffix) {
    return Base64Decode(raw.substr(kPrefix.size(), raw.size() - kPrefix.size() - kSuffix.size()));
  }
  return std::string(raw);
}

Json InputSchema(const Tool& tool) {
  if (!tool.input_schema_json.empty()) {
    Json schema = Json::parse(tool.input_schema_json, nullptr, /*allow_exceptions=*/false);
    if (schema.is_object()) {
      if (!schema.contains("type")) {
        schema["type"] = "object";
      }
      return schema;
    }
  }
  return Json{{"type", "object"}};
}

Json ToolEntry(const Tool& tool, bool with_execution) {
  Json entry = {{"name", tool.name}};
  // Every tool has a description (clients and the conformance suite expect one).
  entry["description"] =
      tool.description.empty() ? "Runs the " + tool.name + " pipeline" : tool.description;
  entry["inputSchema"] = InputSchema(tool);
  // A tool starts a pipeline of actors: it may change state and reach the outside world.
  entry["annotations"] = {{"title", tool.name},
                          {"readOnlyHint", false},
                          {"destructiveHint", true},
                          {"idempotentHint", false},
                          {"openWorldHint", true}};
  if (with_execution) {
    entry["execution"] = {{"taskSupport", tool.task_support}};
  }
  return entry;
}

namespace {

void CollectParamHeaders(const Json& schema, std::vector<std::string>& path,
                         std::vector<ParamHeader>& out) {
  if (!schema.is_object()) {
    return;
  }
  const auto props = schema.find("properties");
  if (props == schema.end() || !props->is_object()) {
    return;
  }
  for (auto it = props->begin(); it != props->end(); ++it) {
    if (!it.value().is_object()) {
      continue;
    }
    path.push_back(it.key());
    const auto header = it.value().find("x-mcp-header");
    if (header != it.value().end() && header->is_string()) {
      out.push_back({header->get<std::string>(), path});
    }
    CollectParamHeaders(it.value(), path, out);
    path.pop_back();
  }
}

}  // namespace

std::vector<ParamHeader> ParamHeaders(const Json& schema) {
  std::vector<ParamHeader> out;
  std::vector<std::string> path;
  CollectParamHeaders(schema, path, out);
  return out;
}

std::optional<std::string> HeaderForm(const Json& value) {
  if (value.is_string()) {
    return value.get<std::string>();
  }
  if (value.is_boolean()) {
    return value.get<bool>() ? "true" : "false";
  }
  if (value.is_number_integer()) {
    return Dump(value);
  }
  if (value.is_number_float()) {
    const double d = value.get<double>();
    if (std::isfinite(d) && std::floor(d) == d && std::fabs(d) < 9007199254740992.0) {
      return std::to_string(static_cast<long long>(d));
    }
  }
  return std::nullopt;
}

Outcome Classify(const store::Envelope& envelope) {
  switch (envelope.status) {
    case store::Status::kSucceeded:
      return Outcome::kSucceeded;
    case store::Status::kCancelled:
      return Outcome::kCancelled;
    case store::Status::kFailed: {
      // The gateway's own failures (reference-controlplane §7.5/§7.6): the envelope never reached
      // an actor, or its deadline passed before any end actor reported.
      return FailedBeforeRunning(envelope.error) ? Outcome::kNotRun : Outcome::kToolError;
    }
    default:
      return Outcome::kRunning;
  }
}

namespace {

bool HasString(const Json& object, const char* key) {
  const auto it = object.find(key);
  return it != object.end() && it->is_string();
}

bool IsContentBlock(const Json& block) {
  if (!block.is_object() || !HasString(block, "type")) {
    return false;
  }
  const std::string type = block["type"].get<std::string>();
  if (type == "text") {
    return HasString(block, "text");
  }
  if (type == "image" || type == "audio") {
    return HasString(block, "data") && HasString(block, "mimeType");
  }
  if (type == "resource") {
    const auto it = block.find("resource");
    return it != block.end() && it->is_object() && HasString(*it, "uri");
  }
  if (type == "resource_link") {
    return HasString(block, "uri") && HasString(block, "name");
  }
  return false;
}

std::string ErrorText(const store::Envelope& envelope, std::string_view fallback) {
  if (!envelope.error.empty()) {
    return envelope.error;
  }
  if (!envelope.message.empty()) {
    return envelope.message;
  }
  return std::string(fallback);
}

}  // namespace

bool IsContentBlocks(const Json& value) {
  return value.is_array() && !value.empty() &&
         std::all_of(value.begin(), value.end(), [](const Json& b) { return IsContentBlock(b); });
}

Json ToolErrorResult(std::string_view message) {
  Json result;
  result["content"] = Json::array({{{"type", "text"}, {"text", std::string(message)}}});
  result["isError"] = true;
  return result;
}

Json CallToolResultOf(const store::Envelope& envelope) {
  switch (Classify(envelope)) {
    case Outcome::kSucceeded:
      break;
    case Outcome::kToolError:
      return ToolErrorResult(ErrorText(envelope, "the tool failed"));
    case Outcome::kNotRun:
      return ToolErrorResult(ErrorText(envelope, "the pipeline could not run"));
    case Outcome::kCancelled:
      return ToolErrorResult("cancelled: " + ErrorText(envelope, "the call was cancelled"));
    case Outcome::kRunning:
      return ToolErrorResult("the pipeline has not finished");
  }
  Json value = envelope.result_json.empty()
                   ? Json(nullptr)
                   : Json::parse(envelope.result_json, nullptr, /*allow_exceptions=*/false);
  if (value.is_discarded()) {
    value = envelope.result_json;  // not JSON: pass the text on
  }
  Json result;
  if (IsContentBlocks(value)) {
    result["content"] = std::move(value);
    return result;
  }
  if (value.is_object() && value.contains("content") && IsContentBlocks(value["content"])) {
    // Already a CallToolResult: content blocks with optional structuredContent / isError.
    result["content"] = value["content"];
    if (value.contains("structuredContent") && value["structuredContent"].is_object()) {
      result["structuredContent"] = value["structuredContent"];
    }
    if (value.contains("isError") && value["isError"].is_boolean()) {
      result["isError"] = value["isError"];
    }
    return result;
  }
  const std::string text = value.is_string() ? value.get<std::string>() : Dump(value);
  result["content"] = Json::array({{{"type", "text"}, {"text", text}}});
  if (value.is_object()) {
    result["structuredContent"] = std::move(value);
  }
  return result;
}

std::string_view TaskStatus(const store::Envelope& envelope) {
  switch (Classify(envelope)) {
    case Outcome::kSucceeded:
    case Outcome::kToolError:
      return "completed";
    case Outcome::kNotRun:
      return "failed";
    case Outcome::kCancelled:
      return "cancelled";
    case Outcome::kRunning:
      break;
  }
  return "working";
}

std::string Iso8601(store::TimePoint t) {
  const auto ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
  const std::time_t secs = static_cast<std::time_t>(ms >= 0 ? ms / 1000 : (ms - 999) / 1000);
  const int millis = static_cast<int>(ms - static_cast<long long>(secs) * 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, millis);
  return buf;
}

Json TaskOf(const store::Envelope& envelope, const TaskTiming& timing, bool detailed) {
  Json task;
  task["taskId"] = envelope.id;
  const std::string_view status = TaskStatus(envelope);
  task["status"] = std::string(status);
  std::string status_message =
      status == "failed" || status == "cancelled" ? ErrorText(envelope, "") : envelope.message;
  if (!status_message.empty()) {
    task["statusMessage"] = std::move(status_message);
  }
  task["createdAt"] = Iso8601(envelope.created_at);
  task["lastUpdatedAt"] = Iso8601(envelope.updated_at < envelope.created_at ? envelope.created_at
                                                                            : envelope.updated_at);
  if (timing.ttl_ms > 0) {
    task["ttlMs"] = timing.ttl_ms;
  } else {
    task["ttlMs"] = nullptr;
  }
  if (timing.poll_interval_ms > 0) {
    task["pollIntervalMs"] = timing.poll_interval_ms;
  }
  if (detailed) {
    if (status == "completed") {
      Json result = {{"resultType", "complete"}};
      Json call_result = CallToolResultOf(envelope);
      for (auto& [key, value] : call_result.items()) {
        result[key] = value;
      }
      task["result"] = std::move(result);
    } else if (status == "failed") {
      task["error"] =
          ErrorObject(kInternalError, ErrorText(envelope, "the pipeline could not run"));
    }
  }
  return task;
}

std::string SseFrame(const Json& message) {
  return "event: message\ndata: " + Dump(message) + "\n\n";
}

}  // namespace asya::gateway::mcp
