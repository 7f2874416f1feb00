// ParseRuntimeResponse: the runtime's response frame (reference-dataplane §3.6, §3.7).
#include "asya/envelope/envelope.h"
#include "envelope/json_util.h"

namespace asya::envelope {

using internal::od::json_type;
namespace od = internal::od;

namespace {

// Reads "details": an object whose message/type/traceback members are strings (or null).
Status ParseDetails(od::value& v, const std::string& prefix, RuntimeErrorInfo& info) {
  ASYA_ASSIGN_OR_RETURN(json_type t, internal::TypeOf(v));
  if (t == json_type::null) {
    return Ok();
  }
  if (t != json_type::object) {
    return internal::FieldError(prefix + "details", "an object", t);
  }
  od::object obj;
  if (auto err = v.get_object().get(obj)) {
    return internal::JsonError(err);
  }
  std::string_view raw;
  if (auto err = obj.raw_json().get(raw)) {
    return internal::JsonError(err);
  }
  info.details_json.assign(raw);
  // raw_json() consumed the object: walk it again from a reset view.
  if (auto err = obj.reset().error()) {
    return internal::JsonError(err);
  }
  for (auto field : obj) {
    std::string_view key;
    if (auto err = field.unescaped_key().get(key)) {
      return internal::JsonError(err);
    }
    std::string* target = key == "message"     ? &info.message
                          : key == "type"      ? &info.type
                          : key == "traceback" ? &info.traceback
                                               : nullptr;
    if (target == nullptr) {
      continue;
    }
    od::value val;
    if (auto err = field.value().get(val)) {
      return internal::JsonError(err);
    }
    ASYA_ASSIGN_OR_RETURN(auto s,
                          internal::StringOrNull(val, prefix + "details." + std::string(key)));
    *target = s.value_or("");
  }
  return Ok();
}

Status ParseItem(od::value& v, size_t index, RuntimeItem& item) {
  const std::string prefix = "[" + std::to_string(index) + "].";
  ASYA_ASSIGN_OR_RETURN(json_type t, internal::TypeOf(v));
  if (t != json_type::object) {
    return MakeError(ErrorCode::kInvalidArgument, "element " + std::to_string(index) +
                                                      " must be an object (got " +
                                                      std::string(internal::TypeName(t)) + ")");
  }
  od::object obj;
  if (auto err = v.get_object().get(obj)) {
    return internal::JsonError(err);
  }
  std::optional<std::string> error_code;
  RuntimeErrorInfo info;
  for (auto field : obj) {
    std::string_view key;
    if (auto err = field.unescaped_key().get(key)) {
      return internal::JsonError(err);
    }
    od::value val;
    if (auto err = field.value().get(val)) {
      return internal::JsonError(err);
    }
    if (key == "payload") {
      ASYA_ASSIGN_OR_RETURN(std::string_view raw, internal::RawJson(val));
      item.has_payload = true;
      item.payload_json.assign(raw);
    } else if (key == "route") {
      ASYA_ASSIGN_OR_RETURN(json_type rt, internal::TypeOf(val));
      item.route = Route{};
      item.has_route = rt != json_type::null;
      if (item.has_route) {
        ASYA_RETURN_IF_ERROR(internal::ParseRoute(val, prefix + "route", item.route));
      }
    } else if (key == "headers") {
      ASYA_ASSIGN_OR_RETURN(json_type ht, internal::TypeOf(val));
      item.headers.clear();
      item.has_headers = ht != json_type::null;
      if (item.has_headers) {
        ASYA_RETURN_IF_ERROR(internal::ParseHeaders(val, prefix + "headers", item.headers));
      }
    } else if (key == "id") {
      ASYA_ASSIGN_OR_RETURN(item.id, internal::StringOrNull(val, prefix + "id"));
    } else if (key == "parent_id") {
      ASYA_ASSIGN_OR_RETURN(item.parent_id, internal::StringOrNull(val, prefix + "parent_id"));
    } else if (key == "error") {
      ASYA_ASSIGN_OR_RETURN(error_code, internal::StringOrNull(val, prefix + "error"));
    } else if (key == "details") {
      info = RuntimeErrorInfo{};
      ASYA_RETURN_IF_ERROR(ParseDetails(val, prefix, info));
    }
  }
  if (error_code && !error_code->empty()) {
    info.code = std::move(*error_code);
    item.error = std::move(info);
  }
  return Ok();
}

}  // namespace

Result<std::vector<RuntimeItem>> ParseRuntimeResponse(std::string_view json,
                                                      const ParseOptions& options) {
  internal::Document document;
  ASYA_RETURN_IF_ERROR(document.Open(json, options.max_bytes));
  od::document& doc = document.doc();
  json_type top;
  if (auto err = doc.type().get(top)) {
    return internal::JsonError(err);
  }
  std::vector<RuntimeItem> items;
  if (top == json_type::null) {
    return items;
  }
  if (top != json_type::array) {
    return MakeError(ErrorCode::kInvalidArgument, "runtime response must be a JSON array (got " +
                                                      std::string(internal::TypeName(top)) + ")");
  }
  od::array arr;
  if (auto err = doc.get_array().get(arr)) {
    return internal::JsonError(err);
  }
  for (auto elem : arr) {
    od::value v;
    if (auto err = elem.get(v)) {
      return internal::JsonError(err);
    }
    RuntimeItem item;
    ASYA_RETURN_IF_ERROR(ParseItem(v, items.size(), item));
    items.push_back(std::move(item));
  }
  return items;
}

}  // namespace asya::envelope
