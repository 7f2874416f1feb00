#include "asya/envelope/envelope.h"

#include <charconv>
#include <cstring>

#include "envelope/json_util.h"

namespace asya::envelope {

using internal::od::json_type;

namespace {

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

namespace {

// Collects the members of the top-level object.
class TopLevelMembers final : public json::ScanVisitor {
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
    std::string_view key = JsonStringText(raw_key, scratch);
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
      if (options.keep_payload) {
        env.payload_json.assign(raw);
      } else {
        env.payload_json.clear();
      }
    } else if (key == "deadline") {
      ASYA_ASSIGN_OR_RETURN(env.deadline, internal::RawStringOrNull(raw, "deadline"));
    }
  }
  return env;
}

std::string Serialize(const Envelope& envelope) {
  return SerializeWithPayload(envelope, envelope.payload_json);
}

namespace {

// What SerializeWithPayload writes before the payload (up to `"payload":`), and after it.
void AppendHead(std::string& out, const Envelope& envelope) {
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
}

void AppendTail(std::string& out, const Envelope& envelope) {
  if (envelope.deadline) {
    out += ",\"deadline\":";
    AppendJsonString(out, *envelope.deadline);
  }
  out += '}';
}

size_t HeadReserve(const Envelope& envelope) {
  size_t headers_size = 0;
  for (const auto& h : envelope.headers) {
    headers_size += h.first.size() + h.second.size() + 4;
  }
  return envelope.route.metadata_json.size() + headers_size + envelope.id.size() + 64 +
         16 * envelope.route.actors.size();
}

}  // namespace

std::string SerializeWithPayload(const Envelope& envelope, std::string_view payload_json) {
  std::string out;
  out.reserve(payload_json.size() + HeadReserve(envelope));
  AppendHead(out, envelope);
  if (payload_json.empty()) {
    out += "null";
  } else {
    out += payload_json;
  }
  AppendTail(out, envelope);
  return out;
}

std::string SerializeIntoPayload(const Envelope& envelope, std::string&& payload_json) {
  if (payload_json.empty()) {
    return SerializeWithPayload(envelope, std::string_view());
  }
  std::string head;
  std::string tail;
  head.reserve(HeadReserve(envelope));
  AppendHead(head, envelope);
  AppendTail(tail, envelope);
  const size_t n = payload_json.size();
  const size_t total = head.size() + n + tail.size();
  if (total > payload_json.capacity()) {
    return SerializeWithPayload(envelope, std::string_view(payload_json));
  }
  payload_json.resize(total);
  char* p = payload_json.data();
  std::memmove(p + head.size(), p, n);
  std::memcpy(p, head.data(), head.size());
  std::memcpy(p + head.size() + n, tail.data(), tail.size());
  return std::move(payload_json);
}

size_t SerializedSize(const Envelope& envelope, std::string_view payload_json) {
  std::string parts;
  AppendHead(parts, envelope);
  AppendTail(parts, envelope);
  return parts.size() + (payload_json.empty() ? 4 : payload_json.size());
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
