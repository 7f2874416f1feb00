// ParseRuntimeResponse: the runtime's response frame (reference-dataplane §3.6, §3.7).
#include <cstring>

#include "asya/envelope/envelope.h"
#include "envelope/json_util.h"

namespace asya::envelope {

using internal::od::json_type;
namespace od = internal::od;

namespace {

using MemberList = std::vector<std::pair<std::string_view, std::string_view>>;

// Groups the members of each top-level array element (depth 2) by element (depth 1).
class ResponseElements final : public json::ScanVisitor {
 public:
  void Member(size_t depth, std::string_view raw_key, std::string_view raw_value) override {
    if (depth == 2) {
      current_.emplace_back(raw_key, raw_value);
    }
  }
  void Element(size_t depth, std::string_view raw_value) override {
    if (depth == 1) {
      elements.emplace_back(raw_value, std::move(current_));
      current_.clear();
    }
  }

  std::vector<std::pair<std::string_view, MemberList>> elements;

 private:
  MemberList current_;
};

// Reads "details": an object whose message/type/traceback members are strings (or null).
Status ParseDetails(std::string_view raw, const std::string& prefix, RuntimeErrorInfo& info) {
  json_type t = internal::RawType(raw);
  if (t == json_type::null) {
    return Ok();
  }
  if (t != json_type::object) {
    return internal::FieldError(prefix + "details", "an object", t);
  }
  info.details_json.assign(raw);
  internal::Document document;
  ASYA_RETURN_IF_ERROR(document.OpenChecked(raw));
  od::object obj;
  if (auto err = document.doc().get_object().get(obj)) {
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

// `taken_payload`: when set, the payload is not copied into the item but its raw span returned
// here (the caller moves it into place).
Status ParseItem(std::string_view raw_item, const MemberList& members, size_t index,
                 RuntimeItem& item, std::string_view* taken_payload = nullptr) {
  json_type t = internal::RawType(raw_item);
  if (t != json_type::object) {
    return MakeError(ErrorCode::kInvalidArgument, "element " + std::to_string(index) +
                                                      " must be an object (got " +
                                                      std::string(internal::TypeName(t)) + ")");
  }
  const std::string prefix = "[" + std::to_string(index) + "].";
  std::optional<std::string> error_code;
  RuntimeErrorInfo info;
  std::string scratch;
  for (const auto& [raw_key, raw] : members) {
    std::string_view key = JsonStringText(raw_key, scratch);
    if (key == "payload") {
      item.has_payload = true;
      if (taken_payload != nullptr) {
        *taken_payload = raw;
        item.payload_json.clear();
      } else {
        item.payload_json.assign(raw);
      }
    } else if (key == "route") {
      item.route = Route{};
      item.has_route = internal::RawType(raw) != json_type::null;
      if (item.has_route) {
        ASYA_RETURN_IF_ERROR(internal::ParseRawRoute(raw, prefix + "route", item.route));
      }
    } else if (key == "headers") {
      item.headers.clear();
      item.has_headers = internal::RawType(raw) != json_type::null;
      if (item.has_headers) {
        ASYA_RETURN_IF_ERROR(internal::ParseRawHeaders(raw, prefix + "headers", item.headers));
      }
    } else if (key == "id") {
      ASYA_ASSIGN_OR_RETURN(item.id, internal::RawStringOrNull(raw, prefix + "id"));
    } else if (key == "parent_id") {
      ASYA_ASSIGN_OR_RETURN(item.parent_id, internal::RawStringOrNull(raw, prefix + "parent_id"));
    } else if (key == "error") {
      ASYA_ASSIGN_OR_RETURN(error_code, internal::RawStringOrNull(raw, prefix + "error"));
    } else if (key == "details") {
      info = RuntimeErrorInfo{};
      ASYA_RETURN_IF_ERROR(ParseDetails(raw, prefix, info));
    }
  }
  if (error_code && !error_code->empty()) {
    info.code = std::move(*error_code);
    item.error = std::move(info);
  }
  return Ok();
}

}  // namespace

namespace {

constexpr size_t kTakePayloadBytes = 64u << 10;

// Both ParseRuntimeResponse overloads. With `frame` (the buffer `json` views), a single item's
// large payload is moved to the start of the buffer, which becomes that item's payload_json.
Result<std::vector<RuntimeItem>> ParseResponse(std::string_view json, const ParseOptions& options,
                                               std::string* frame) {
  ASYA_RETURN_IF_ERROR(internal::CheckInput(json, options.max_bytes));
  ResponseElements scan;
  ASYA_RETURN_IF_ERROR(internal::ScanJson(json, 2, &scan));
  size_t first = json.find_first_not_of(" \t\r\n");
  json_type top = internal::RawType(json.substr(first, 1));
  std::vector<RuntimeItem> items;
  if (top == json_type::null) {
    return items;
  }
  if (top != json_type::array) {
    return MakeError(ErrorCode::kInvalidArgument, "runtime response must be a JSON array (got " +
                                                      std::string(internal::TypeName(top)) + ")");
  }
  items.resize(scan.elements.size());
  const bool take = frame != nullptr && items.size() == 1 && json.size() >= kTakePayloadBytes;
  std::string_view taken;
  for (size_t i = 0; i < items.size(); ++i) {
    ASYA_RETURN_IF_ERROR(ParseItem(scan.elements[i].first, scan.elements[i].second, i, items[i],
                                   take ? &taken : nullptr));
  }
  if (take && items[0].has_payload) {
    // Every other member was copied out above; the payload moves down inside the frame.
    std::memmove(frame->data(), taken.data(), taken.size());
    frame->resize(taken.size());
    items[0].payload_json = std::move(*frame);
  }
  return items;
}

}  // namespace

Result<std::vector<RuntimeItem>> ParseRuntimeResponse(std::string_view json,
                                                      const ParseOptions& options) {
  return ParseResponse(json, options, nullptr);
}

Result<std::vector<RuntimeItem>> ParseRuntimeResponseTaking(std::string&& json,
                                                            const ParseOptions& options) {
  return ParseResponse(json, options, &json);
}

}  // namespace asya::envelope
