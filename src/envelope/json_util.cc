#include "envelope/json_util.h"

#include <algorithm>
#include <cstring>

namespace asya::envelope::internal {
namespace {

// Documents up to this size reuse one parser and buffer per thread.
constexpr size_t kSmallDocumentBytes = 1u << 20;

struct ThreadState {
  od::parser parser;
  std::string buffer;
};

ThreadState& LocalState() {
  thread_local ThreadState state;
  return state;
}

bool IsJsonSpace(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

}  // namespace

Status CheckInput(std::string_view json, size_t max_bytes) {
  if (json.size() > max_bytes) {
    return MakeError(ErrorCode::kResourceExhausted,
                     "message of " + std::to_string(json.size()) + " bytes exceeds the limit of " +
                         std::to_string(max_bytes) + " bytes (ASYA_MAX_MESSAGE_BYTES)");
  }
  if (!simdjson::validate_utf8(json.data(), json.size())) {
    return MakeError(ErrorCode::kInvalidArgument, "invalid UTF-8 in JSON text");
  }
  return Ok();
}

Status Document::Open(std::string_view json, size_t max_bytes) {
  ASYA_RETURN_IF_ERROR(CheckInput(json, max_bytes));
  ASYA_RETURN_IF_ERROR(ValidateJson(json));
  return OpenChecked(json);
}

Status Document::OpenChecked(std::string_view json) {
  od::parser* parser;
  std::string* buffer;
  if (json.size() <= kSmallDocumentBytes) {
    parser = &LocalState().parser;
    buffer = &LocalState().buffer;
  } else {
    own_parser_ = std::make_unique<od::parser>();
    parser = own_parser_.get();
    buffer = &own_buffer_;
  }
  size_t capacity = json.size() + simdjson::SIMDJSON_PADDING;
  if (buffer->size() < capacity) {
    buffer->resize(capacity);
  }
  if (!json.empty()) {
    std::memcpy(buffer->data(), json.data(), json.size());
  }
  std::memset(buffer->data() + json.size(), 0, simdjson::SIMDJSON_PADDING);
  if (auto err = parser->iterate(buffer->data(), json.size(), buffer->size()).get(doc_)) {
    return JsonError(err);
  }
  return Ok();
}

std::string_view TypeName(od::json_type type) {
  switch (type) {
    case od::json_type::array:
      return "array";
    case od::json_type::object:
      return "object";
    case od::json_type::number:
      return "number";
    case od::json_type::string:
      return "string";
    case od::json_type::boolean:
      return "boolean";
    case od::json_type::null:
      return "null";
  }
  return "unknown";
}

od::json_type RawType(std::string_view raw) {
  switch (raw.empty() ? 'n' : raw.front()) {
    case '{':
      return od::json_type::object;
    case '[':
      return od::json_type::array;
    case '"':
      return od::json_type::string;
    case 't':
    case 'f':
      return od::json_type::boolean;
    case 'n':
      return od::json_type::null;
    default:
      return od::json_type::number;
  }
}

tl::unexpected<Error> JsonError(simdjson::error_code code) {
  return MakeError(ErrorCode::kInvalidArgument,
                   std::string("invalid JSON: ") + simdjson::error_message(code));
}

tl::unexpected<Error> FieldError(std::string_view field, std::string_view expected,
                                 od::json_type got) {
  std::string msg = "field '";
  msg += field;
  msg += "' must be ";
  msg += expected;
  msg += " (got ";
  msg += TypeName(got);
  msg += ")";
  return MakeError(ErrorCode::kInvalidArgument, std::move(msg));
}

Result<od::json_type> TypeOf(od::value& v) {
  od::json_type t;
  if (auto err = v.type().get(t)) {
    return JsonError(err);
  }
  return t;
}

Result<std::string_view> RawJson(od::value& v) {
  ASYA_ASSIGN_OR_RETURN(od::json_type t, TypeOf(v));
  std::string_view raw;
  simdjson::error_code err;
  if (t == od::json_type::object) {
    od::object o;
    err = v.get_object().get(o);
    if (!err) {
      err = o.raw_json().get(raw);
    }
  } else if (t == od::json_type::array) {
    od::array a;
    err = v.get_array().get(a);
    if (!err) {
      err = a.raw_json().get(raw);
    }
  } else {
    raw = v.raw_json_token();
    err = simdjson::SUCCESS;
    while (!raw.empty() && IsJsonSpace(raw.back())) {
      raw.remove_suffix(1);
    }
  }
  if (err) {
    return JsonError(err);
  }
  return raw;
}

Result<std::optional<std::string>> StringOrNull(od::value& v, std::string_view field) {
  ASYA_ASSIGN_OR_RETURN(od::json_type t, TypeOf(v));
  if (t == od::json_type::null) {
    return std::optional<std::string>();
  }
  if (t != od::json_type::string) {
    return FieldError(field, "a string", t);
  }
  std::string_view s;
  if (auto err = v.get_string().get(s)) {
    return JsonError(err);
  }
  return std::optional<std::string>(std::string(s));
}

Status ParseRoute(od::value& v, std::string_view prefix, Route& route) {
  ASYA_ASSIGN_OR_RETURN(od::json_type t, TypeOf(v));
  if (t != od::json_type::object) {
    return FieldError(prefix, "an object", t);
  }
  od::object obj;
  if (auto err = v.get_object().get(obj)) {
    return JsonError(err);
  }
  std::string name(prefix);
  const size_t base = name.size();
  for (auto field : obj) {
    std::string_view key;
    if (auto err = field.unescaped_key().get(key)) {
      return JsonError(err);
    }
    od::value val;
    if (auto err = field.value().get(val)) {
      return JsonError(err);
    }
    name.resize(base);
    name += '.';
    name += key;
    ASYA_ASSIGN_OR_RETURN(od::json_type vt, TypeOf(val));
    if (key == "actors") {
      route.actors.clear();
      if (vt == od::json_type::null) {
        continue;
      }
      if (vt != od::json_type::array) {
        return FieldError(name, "an array of strings", vt);
      }
      od::array arr;
      if (auto err = val.get_array().get(arr)) {
        return JsonError(err);
      }
      for (auto elem : arr) {
        od::value ev;
        if (auto err = elem.get(ev)) {
          return JsonError(err);
        }
        ASYA_ASSIGN_OR_RETURN(od::json_type et, TypeOf(ev));
        if (et != od::json_type::string) {
          return FieldError(name + "[" + std::to_string(route.actors.size()) + "]", "a string", et);
        }
        std::string_view s;
        if (auto err = ev.get_string().get(s)) {
          return JsonError(err);
        }
        route.actors.emplace_back(s);
      }
    } else if (key == "current") {
      if (vt == od::json_type::null) {
        route.current = 0;
        continue;
      }
      if (vt != od::json_type::number) {
        return FieldError(name, "an integer", vt);
      }
      int64_t n = 0;
      if (val.get_int64().get(n)) {
        std::string_view token = val.raw_json_token();
        bool fractional = token.find_first_of(".eE") != std::string_view::npos;
        return MakeError(ErrorCode::kInvalidArgument,
                         "field '" + name + "' must be an integer (got " +
                             (fractional ? "a non-integer number" : "an integer out of range") +
                             ")");
      }
      route.current = n;
    } else if (key == "metadata") {
      route.metadata_json.clear();
      if (vt == od::json_type::null) {
        continue;
      }
      if (vt != od::json_type::object) {
        return FieldError(name, "an object", vt);
      }
      ASYA_ASSIGN_OR_RETURN(std::string_view raw, RawJson(val));
      if (!IsEmptyObjectText(raw)) {
        route.metadata_json.assign(raw);
      }
    }
    // Other route keys are ignored (the original sidecar drops them as well).
  }
  return Ok();
}

Status ParseHeaders(od::value& v, std::string_view field, std::vector<Header>& headers) {
  ASYA_ASSIGN_OR_RETURN(od::json_type t, TypeOf(v));
  if (t != od::json_type::object) {
    return FieldError(field, "an object", t);
  }
  od::object obj;
  if (auto err = v.get_object().get(obj)) {
    return JsonError(err);
  }
  headers.clear();
  for (auto member : obj) {
    std::string_view key;
    if (auto err = member.unescaped_key().get(key)) {
      return JsonError(err);
    }
    std::string key_copy(key);  // the key view is invalidated by the next read
    od::value val;
    if (auto err = member.value().get(val)) {
      return JsonError(err);
    }
    ASYA_ASSIGN_OR_RETURN(std::string_view raw, RawJson(val));
    SetHeader(headers, key_copy, std::string(raw));
  }
  return Ok();
}

Result<std::optional<std::string>> RawStringOrNull(std::string_view raw, std::string_view field) {
  od::json_type t = RawType(raw);
  if (t == od::json_type::null) {
    return std::optional<std::string>();
  }
  if (t != od::json_type::string) {
    return FieldError(field, "a string", t);
  }
  if (raw.find('\\') == std::string_view::npos) {
    return std::optional<std::string>(std::string(raw.substr(1, raw.size() - 2)));
  }
  auto decoded = DecodeJsonString(raw);
  if (!decoded) {
    return MakeError(ErrorCode::kInvalidArgument,
                     "field '" + std::string(field) + "' is not a valid JSON string");
  }
  return decoded;
}

namespace {

// Opens `raw` (an object span that passed ScanJson) and hands its root value to `read`.
template <typename Read>
Status WithObject(std::string_view raw, std::string_view field, Read read) {
  od::json_type t = RawType(raw);
  if (t != od::json_type::object) {
    return FieldError(field, "an object", t);
  }
  Document document;
  ASYA_RETURN_IF_ERROR(document.OpenChecked(raw));
  od::value v;
  if (auto err = document.doc().get_value().get(v)) {
    return JsonError(err);
  }
  return read(v);
}

}  // namespace

Status ParseRawRoute(std::string_view raw, std::string_view prefix, Route& route) {
  return WithObject(raw, prefix, [&](od::value& v) { return ParseRoute(v, prefix, route); });
}

Status ParseRawHeaders(std::string_view raw, std::string_view field, std::vector<Header>& headers) {
  return WithObject(raw, field, [&](od::value& v) { return ParseHeaders(v, field, headers); });
}

bool IsEmptyObjectText(std::string_view raw) {
  return std::all_of(raw.begin(), raw.end(),
                     [](char c) { return c == '{' || c == '}' || IsJsonSpace(c); });
}

void SetHeader(std::vector<Header>& headers, std::string_view key, std::string raw_json) {
  for (auto& h : headers) {
    if (h.first == key) {
      h.second = std::move(raw_json);
      return;
    }
  }
  headers.emplace_back(std::string(key), std::move(raw_json));
}

void AppendKey(std::string& out, std::string_view key) {
  AppendJsonString(out, key);
  out += ':';
}

void AppendStringArray(std::string& out, const std::vector<std::string>& items) {
  out += '[';
  for (size_t i = 0; i < items.size(); ++i) {
    if (i > 0) {
      out += ',';
    }
    AppendJsonString(out, items[i]);
  }
  out += ']';
}

void AppendHeaders(std::string& out, const std::vector<Header>& headers) {
  out += '{';
  for (size_t i = 0; i < headers.size(); ++i) {
    if (i > 0) {
      out += ',';
    }
    AppendKey(out, headers[i].first);
    out += headers[i].second.empty() ? "null" : headers[i].second;
  }
  out += '}';
}

}  // namespace asya::envelope::internal
