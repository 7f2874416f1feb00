#include "asya/envelope/envelope.h"

#include <charconv>

#include "envelope/json_util.h"

namespace asya::envelope {

using internal::od::json_type;

namespace {

void AppendUtf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

const Header* FindHeader(const std::vector<Header>& headers, std::string_view key) {
  for (const auto& h : headers) {
    if (h.first == key) {
      return &h;
    }
  }
  return nullptr;
}

}  // namespace

std::string_view Route::CurrentActor() const {
  if (current < 0 || static_cast<uint64_t>(current) >= actors.size()) {
    return {};
  }
  return actors[static_cast<size_t>(current)];
}

std::optional<std::string> DecodeJsonString(std::string_view raw) {
  if (raw.size() < 2 || raw.front() != '"' || raw.back() != '"') {
    return std::nullopt;
  }
  std::string out;
  out.reserve(raw.size() - 2);
  auto hex4 = [&](size_t at) -> int32_t {
    if (at + 4 > raw.size() - 1) {
      return -1;
    }
    int32_t v = 0;
    for (size_t k = 0; k < 4; ++k) {
      char c = raw[at + k];
      int h = (c >= '0' && c <= '9')   ? c - '0'
              : (c >= 'a' && c <= 'f') ? c - 'a' + 10
              : (c >= 'A' && c <= 'F') ? c - 'A' + 10
                                       : -1;
      if (h < 0) {
        return -1;
      }
      v = (v << 4) | h;
    }
    return v;
  };
  for (size_t i = 1; i + 1 < raw.size(); ++i) {
    char c = raw[i];
    if (c == '"' || static_cast<unsigned char>(c) < 0x20) {
      return std::nullopt;
    }
    if (c != '\\') {
      out += c;
      continue;
    }
    if (++i + 1 >= raw.size()) {
      return std::nullopt;
    }
    switch (raw[i]) {
      case '"':
        out += '"';
        break;
      case '\\':
        out += '\\';
        break;
      case '/':
        out += '/';
        break;
      case 'b':
        out += '\b';
        break;
      case 'f':
        out += '\f';
        break;
      case 'n':
        out += '\n';
        break;
      case 'r':
        out += '\r';
        break;
      case 't':
        out += '\t';
        break;
      case 'u': {
        int32_t cp = hex4(i + 1);
        if (cp < 0 || (cp >= 0xDC00 && cp <= 0xDFFF)) {
          return std::nullopt;
        }
        i += 4;
        if (cp >= 0xD800 && cp <= 0xDBFF) {
          if (i + 2 >= raw.size() - 1 || raw[i + 1] != '\\' || raw[i + 2] != 'u') {
            return std::nullopt;
          }
          int32_t lo = hex4(i + 3);
          if (lo < 0xDC00 || lo > 0xDFFF) {
            return std::nullopt;
          }
          i += 6;
          cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
        }
        AppendUtf8(out, static_cast<uint32_t>(cp));
        break;
      }
      default:
        return std::nullopt;
    }
  }
  return out;
}

namespace {

// Collects the members of the top-level object.
class TopLevelMembers final : public internal::ScanVisitor {
 public:
  void Member(size_t /*depth*/, std::string_view raw_key, std::string_view raw_value) override {
    members.emplace_back(raw_key, raw_value);
  }
  void Element(size_t /*depth*/, std::string_view /*raw_value*/) override {}

  std::vector<std::pair<std::string_view, std::string_view>> members;
};

}  // namespace

Result<Envelope> Parse(std::string_view json, const ParseOptions& options) {
  ASYA_RETURN_IF_ERROR(internal::CheckInput(json, options.max_bytes));
  TopLevelMembers top;
  top.members.reserve(8);
  ASYA_RETURN_IF_ERROR(internal::ScanJson(json, 1, &top));
  json_type top_type = internal::RawType(json.substr(json.find_first_not_of(" \t\r\n"), 1));
  if (top_type != json_type::object) {
    return MakeError(
        ErrorCode::kInvalidArgument,
        "top-level JSON must be an object (got " + std::string(internal::TypeName(top_type)) + ")");
  }
  Envelope env;
  std::string scratch;
  for (const auto& [raw_key, raw] : top.members) {
    std::string_view key = internal::KeyText(raw_key, scratch);
    if (key == "id") {
      // null counts as absent (the router rejects the missing id), as the original decoder does.
      ASYA_ASSIGN_OR_RETURN(auto id, internal::RawStringOrNull(raw, "id"));
      env.id = id.value_or("");
    } else if (key == "parent_id") {
      ASYA_ASSIGN_OR_RETURN(env.parent_id, internal::RawStringOrNull(raw, "parent_id"));
    } else if (key == "route") {
      env.route = Route{};
      env.has_route = internal::RawType(raw) != json_type::null;
      if (env.has_route) {
        ASYA_RETURN_IF_ERROR(internal::ParseRawRoute(raw, "route", env.route));
      }
    } else if (key == "headers") {
      env.headers.clear();
      env.has_headers = internal::RawType(raw) != json_type::null;
      if (env.has_headers) {
        ASYA_RETURN_IF_ERROR(internal::ParseRawHeaders(raw, "headers", env.headers));
      }
    } else if (key == "payload") {
      env.has_payload = true;
      env.payload_json.assign(raw);
    } else if (key == "deadline") {
      ASYA_ASSIGN_OR_RETURN(env.deadline, internal::RawStringOrNull(raw, "deadline"));
    }
  }
  return env;
}

std::string Serialize(const Envelope& envelope) {
  return SerializeWithPayload(envelope, envelope.payload_json);
}

std::string SerializeWithPayload(const Envelope& envelope, std::string_view payload_json) {
  std::string out;
  size_t headers_size = 0;
  for (const auto& h : envelope.headers) {
    headers_size += h.first.size() + h.second.size() + 4;
  }
  out.reserve(payload_json.size() + envelope.route.metadata_json.size() + headers_size +
              envelope.id.size() + 64 + 16 * envelope.route.actors.size());
  out += "{\"id\":";
  AppendJsonString(out, envelope.id);
  if (envelope.parent_id) {
    out += ",\"parent_id\":";
    AppendJsonString(out, *envelope.parent_id);
  }
  const Route& route = envelope.route;
  if (envelope.has_route || !route.actors.empty() || route.current != 0 ||
      !route.metadata_json.empty()) {
    out += ",\"route\":{\"actors\":";
    internal::AppendStringArray(out, route.actors);
    out += ",\"current\":";
    out += std::to_string(route.current);
    if (!route.metadata_json.empty()) {
      out += ",\"metadata\":";
      out += route.metadata_json;
    }
    out += '}';
  }
  if (envelope.has_headers || !envelope.headers.empty()) {
    out += ",\"headers\":";
    internal::AppendHeaders(out, envelope.headers);
  }
  out += ",\"payload\":";
  if (payload_json.empty()) {
    out += "null";
  } else {
    out += payload_json;
  }
  if (envelope.deadline) {
    out += ",\"deadline\":";
    AppendJsonString(out, *envelope.deadline);
  }
  out += '}';
  return out;
}

std::optional<std::string> Envelope::GetHeaderString(std::string_view key) const {
  const Header* h = FindHeader(headers, key);
  if (h == nullptr) {
    return std::nullopt;
  }
  return DecodeJsonString(h->second);
}

std::optional<int64_t> Envelope::GetHeaderInt(std::string_view key) const {
  const Header* h = FindHeader(headers, key);
  if (h == nullptr || h->second.empty()) {
    return std::nullopt;
  }
  const std::string& raw = h->second;
  int64_t value = 0;
  auto [ptr, ec] = std::from_chars(raw.data(), raw.data() + raw.size(), value);
  if (ec != std::errc() || ptr != raw.data() + raw.size()) {
    return std::nullopt;  // not an integer literal (or out of range)
  }
  return value;
}

void Envelope::SetHeaderString(std::string_view key, std::string_view value) {
  std::string raw;
  AppendJsonString(raw, value);
  SetHeaderRaw(key, std::move(raw));
}

void Envelope::SetHeaderInt(std::string_view key, int64_t value) {
  SetHeaderRaw(key, std::to_string(value));
}

void Envelope::SetHeaderRaw(std::string_view key, std::string raw_json) {
  has_headers = true;
  internal::SetHeader(headers, key, std::move(raw_json));
}

}  // namespace asya::envelope
