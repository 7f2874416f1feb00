// MakeErrorEnvelope: what error-end receives (reference-dataplane §2.5, DESIGN §4.7).
#include <simdjson.h>

#include "asya/base/base64.h"
#include "asya/base/redact.h"
#include "asya/envelope/envelope.h"
#include "envelope/json_util.h"

namespace asya::envelope {
namespace {

namespace od = internal::od;

// Appends the members of `details_json` other than message/type/traceback, each preceded by ','
// when `need_comma` (updated). Unparseable details are ignored: the known members are kept.
void AppendExtraDetails(std::string& out, const std::string& details_json, bool& need_comma) {
  internal::Document document;
  if (!document.Open(details_json, details_json.size())) {
    return;
  }
  od::object obj;
  if (document.doc().get_object().get(obj)) {
    return;
  }
  std::string extras;
  bool extra_comma = need_comma;
  for (auto field : obj) {
    std::string_view key;
    od::value val;
    if (field.unescaped_key().get(key) || field.value().get(val)) {
      return;
    }
    if (key == "message" || key == "type" || key == "traceback") {
      continue;
    }
    std::string key_copy(key);
    auto raw = internal::RawJson(val);
    if (!raw) {
      return;
    }
    if (extra_comma) {
      extras += ',';
    }
    internal::AppendKey(extras, key_copy);
    extras += *raw;
    extra_comma = true;
  }
  out += extras;
  need_comma = extra_comma;
}

void AppendDetails(std::string& out, const RuntimeErrorInfo& details) {
  out += ",\"details\":{";
  bool comma = false;
  auto member = [&](std::string_view key, const std::string& value) {
    if (value.empty()) {
      return;
    }
    if (comma) {
      out += ',';
    }
    internal::AppendKey(out, key);
    AppendJsonString(out, RedactSecrets(value));  // asya/base/redact.h: no secret in errors
    comma = true;
  };
  member("message", details.message);
  member("type", details.type);
  member("traceback", details.traceback);
  if (!details.details_json.empty()) {
    AppendExtraDetails(out, details.details_json, comma);
  }
  out += '}';
}

}  // namespace

std::string MakeErrorEnvelope(const ErrorEnvelopeInput& input) {
  const Envelope* original = input.original;
  std::string out;
  out.reserve(256 + input.error.size() +
              (original != nullptr ? original->payload_json.size() : input.original_body.size()));
  out += "{\"id\":";
  AppendJsonString(out, original != nullptr ? original->id : std::string());
  if (original != nullptr && original->parent_id) {
    out += ",\"parent_id\":";
    AppendJsonString(out, *original->parent_id);
  }
  out += ",\"route\":{\"actors\":";
  if (original != nullptr && original->has_route && !original->route.actors.empty()) {
    internal::AppendStringArray(out, original->route.actors);
    out += ",\"current\":";
    out += std::to_string(original->route.current);
  } else {
    internal::AppendStringArray(out, {input.error_end_actor});
    out += ",\"current\":0";
  }
  out += '}';
  if (original != nullptr && (original->has_headers || !original->headers.empty())) {
    out += ",\"headers\":";
    internal::AppendHeaders(out, original->headers);
  }

  out += ",\"payload\":{\"error\":";
  AppendJsonString(out, RedactSecrets(input.error));
  if (input.details != nullptr) {
    AppendDetails(out, *input.details);
  }
  if (original != nullptr) {
    if (original->has_payload) {
      out += ",\"original_payload\":";
      out += original->payload_json.empty() ? "null" : original->payload_json;
    }
  } else if (!input.original_body.empty()) {
    const std::string_view body = input.original_body;
    if (body.size() > input.max_original_body_bytes) {
      out += ",\"original_body_bytes\":";
      out += std::to_string(body.size());
    } else if (simdjson::validate_utf8(body.data(), body.size())) {
      out += ",\"original_body\":";
      AppendJsonString(out, body);
    } else {
      out += ",\"original_body_base64\":\"";
      AppendBase64(out, body);
      out += '"';
    }
  }
  for (const auto& [key, raw] : input.extra_payload) {
    out += ',';
    internal::AppendKey(out, key);
    out += raw.empty() ? "null" : raw;
  }
  out += '}';
  if (original != nullptr && original->deadline) {
    out += ",\"deadline\":";
    AppendJsonString(out, *original->deadline);
  }
  out += '}';
  return out;
}

}  // namespace asya::envelope
