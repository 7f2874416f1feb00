#include "runtime/processor.h"

#include <cstdio>
#include <cstdlib>
#include <exception>
#include <memory>
#include <optional>
#include <typeinfo>
#include <utility>
#include <vector>

#include <cxxabi.h>

#include "asya/base/log.h"
#include "runtime/json_scan.h"

namespace asya::runtime {
namespace {

namespace scan = ::asya::runtime::json;

constexpr std::string_view kValueError = "ValueError";

// A failed step: error code + details.type + details.message.
struct Failure {
  std::string_view code;
  std::string type;
  std::string message;
};

std::string Demangle(const char* name) {
  int status = 0;
  std::unique_ptr<char, void (*)(void*)> out(abi::__cxa_demangle(name, nullptr, nullptr, &status),
                                             std::free);
  return (status == 0 && out) ? std::string(out.get()) : std::string(name);
}

// Runs `fn` and converts anything it throws into a Failure (processing_error).
template <typename Fn>
auto Guard(Fn&& fn, std::optional<Failure>* failure) -> std::optional<decltype(fn())> {
  try {
    return fn();
  } catch (const HandlerError& e) {
    *failure = Failure{kProcessingError, e.type, e.message};
  } catch (const std::exception& e) {
    *failure = Failure{kProcessingError, Demangle(typeid(e).name()), e.what()};
  } catch (...) {
    const std::type_info* t = abi::__cxa_current_exception_type();
    *failure = Failure{kProcessingError, t != nullptr ? Demangle(t->name()) : "unknown",
                       "handler threw a non-std::exception value"};
  }
  return std::nullopt;
}

void LogFailure(const Failure& f) {
  log::Write(f.code == kProcessingError ? log::Level::kError : log::Level::kWarn, "request failed",
             {{"error", f.code}, {"type", f.type}, {"message", f.message}});
}

// Checks UTF-8 and grammar; returns the document or a msg_parsing_error.
// `members`, when given, receives the top-level members of an object document.
std::optional<scan::Value> Decode(std::string_view request, std::optional<Failure>* failure,
                                  std::vector<scan::Member>* members = nullptr) {
  if (request.empty()) {
    *failure = Failure{kParsingError, std::string(kValueError),
                       "Empty request frame (length 0): expected a JSON envelope"};
    return std::nullopt;
  }
  if (auto bad = scan::FindInvalidUtf8(request)) {
    char buf[160];
    std::snprintf(buf, sizeof buf, "'utf-8' codec can't decode byte 0x%02x in position %zu: %.*s",
                  static_cast<unsigned char>(request[bad->offset]), bad->offset,
                  static_cast<int>(bad->reason.size()), bad->reason.data());
    *failure = Failure{kParsingError, "UnicodeDecodeError", buf};
    return std::nullopt;
  }
  std::string error;
  auto doc = scan::ScanDocument(request, &error, members);
  if (!doc) {
    *failure = Failure{kParsingError, "JSONDecodeError", std::move(error)};
  }
  return doc;
}

std::string NotAnObject(std::string_view prefix, std::string_view type_name) {
  return std::string(prefix) + " must be a JSON object, got " + std::string(type_name);
}

// ---- envelope mode (nlohmann DOM) ----

// Python repr of a JSON value, enough for actor lists: ['a', 'b'].
std::string PyRepr(const nlohmann::json& v) {
  if (v.is_string()) {
    std::string out = "'";
    for (char c : v.get_ref<const std::string&>()) {
      if (c == '\'' || c == '\\') {
        out += '\\';
      }
      out += c;
    }
    return out + "'";
  }
  if (v.is_array()) {
    std::string out = "[";
    for (size_t i = 0; i < v.size(); ++i) {
      out += (i ? ", " : "") + PyRepr(v[i]);
    }
    return out + "]";
  }
  if (v.is_boolean()) {
    return v.get<bool>() ? "True" : "False";
  }
  if (v.is_null()) {
    return "None";
  }
  return v.dump();
}

// Rules 1-9 of reference-dataplane §2.4 (defaults route.current to 0), then 12-13 (rebuild).
// Returns an error message, or nullopt with `e` replaced by the rebuilt envelope.
std::optional<std::string> ValidateEnvelope(nlohmann::json& e) {
  if (!e.contains("payload")) {
    return "Missing required field 'payload' in envelope";
  }
  if (!e.contains("route")) {
    return "Missing required field 'route' in envelope";
  }
  auto& route = e["route"];
  if (!route.is_object()) {
    return "Field 'route' must be a dict";
  }
  if (!route.contains("actors")) {
    return "Missing required field 'actors' in route";
  }
  const auto& actors = route["actors"];
  if (!actors.is_array()) {
    return "Field 'route.actors' must be a list";
  }
  if (!route.contains("current")) {
    route["current"] = 0;
  }
  const auto& current = route["current"];
  if (!current.is_number_integer()) {
    return "Field 'route.current' must be an integer";
  }
  if (actors.empty()) {
    return "Field 'route.actors' cannot be empty";
  }
  auto n = static_cast<int64_t>(actors.size());
  int64_t c = current.is_number_unsigned() && current.get<uint64_t>() > INT64_MAX
                  ? INT64_MAX
                  : current.get<int64_t>();
  if (c < 0 || c > n) {
    return "Invalid route.current=" + current.dump() + ": out of bounds for actors of length " +
           std::to_string(n);
  }
  if (e.contains("headers") && !e["headers"].is_object()) {
    return "Field 'headers' must be a dict";
  }
  nlohmann::json out = nlohmann::json::object();
  out["payload"] = std::move(e["payload"]);
  out["route"] = std::move(e["route"]);
  if (e.contains("id")) {
    if (!e["id"].is_string()) {
      return "Field 'id' must be a string";
    }
    out["id"] = std::move(e["id"]);
  }
  for (const char* key : {"parent_id", "headers"}) {
    if (e.contains(key)) {
      out[key] = std::move(e[key]);
    }
  }
  e = std::move(out);
  return std::nullopt;
}

std::optional<std::string> ValidateOutput(nlohmann::json& e, const nlohmann::json& in_actors,
                                          int64_t in_current) {
  if (!e.is_object()) {
    return NotAnObject("Output envelope", e.type_name());
  }
  if (auto err = ValidateEnvelope(e)) {
    return err;
  }
  const auto& out_actors = e["route"]["actors"];
  auto processed_len = static_cast<size_t>(in_current) + 1;
  auto processed = nlohmann::json::array();
  for (size_t i = 0; i < processed_len && i < in_actors.size(); ++i) {
    processed.push_back(in_actors[i]);
  }
  auto prefix = nlohmann::json::array();
  for (size_t i = 0; i < processed.size() && i < out_actors.size(); ++i) {
    prefix.push_back(out_actors[i]);
  }
  if (prefix != processed) {
    return "Route modification error: already-processed actors cannot be erased. Input route had " +
           PyRepr(processed) + " (actors 0-" + std::to_string(in_current) +
           "), but output route starts with " + PyRepr(prefix) +
           ". Runtimes can add future actors but must preserve all actors up to current.";
  }
  auto idx = static_cast<size_t>(in_current);
  if (idx < in_actors.size() && idx < out_actors.size() && out_actors[idx] != in_actors[idx]) {
    return "Route mismatch: input route points to " + PyRepr(in_actors[idx]) + " at position " +
           std::to_string(in_current) + ", but output route has " + PyRepr(out_actors[idx]) +
           " at that position. Actor cannot change its position in the route.";
  }
  return std::nullopt;
}

// ---- payload mode (scanner, no DOM) ----

struct PayloadInput {
  std::optional<scan::Value> payload;
  std::optional<scan::Value> route;
  std::optional<scan::Value> headers;
  std::optional<scan::Value> id;
};

}  // namespace

void AppendErrorResponse(std::string& out, std::string_view code, std::string_view type,
                         std::string_view message) {
  out += "[{\"error\":";
  scan::AppendString(out, code);
  out += ",\"details\":{\"message\":";
  scan::AppendString(out, message);
  out += ",\"type\":";
  scan::AppendString(out, type);
  out += ",\"traceback\":\"\"}}]";
}

Outputs OutputsFromJson(const nlohmann::json& result) {
  Outputs outputs;
  if (result.is_null()) {
    return outputs;
  }
  if (result.is_array()) {
    for (const auto& item : result) {
      outputs.Add(item.dump());
    }
    return outputs;
  }
  outputs.Add(result.dump());
  return outputs;
}

void Processor::Process(std::string_view request, std::string& out) const {
  size_t base = out.size();
  if (handler_.mode() == HandlerMode::kEnvelope) {
    ProcessEnvelope(request, out);
  } else {
    ProcessPayload(request, out);
  }
  size_t n = out.size() - base;
  if (n > max_bytes_) {
    out.resize(base);
    Failure f{kProcessingError, "ResponseTooLarge",
              "response of " + std::to_string(n) +
                  " bytes exceeds ASYA_MAX_MESSAGE_BYTES=" + std::to_string(max_bytes_)};
    LogFailure(f);
    AppendErrorResponse(out, f.code, f.type, f.message);
  }
}

void Processor::ProcessPayload(std::string_view request, std::string& out) const {
  std::optional<Failure> failure;
  auto fail = [&](std::string_view code, std::string_view type, std::string message) {
    failure = Failure{code, std::string(type), std::move(message)};
  };
  std::string route_out;
  PayloadInput in;
  std::vector<scan::Member> top;  // the envelope's members, found while validating
  top.reserve(8);
  auto doc = Decode(request, &failure, &top);
  if (doc) {
    do {
      if (doc->kind != scan::Kind::kObject) {
        if (validate_ && doc->kind == scan::Kind::kArray) {
          fail(kParsingError, kValueError, "Missing required field 'payload' in envelope");
        } else {
          fail(kParsingError, kValueError, NotAnObject("Envelope", scan::KindName(doc->kind)));
        }
        break;
      }
      for (const auto& [key, v] : top) {  // a repeated key: the last one wins (as in Python)
        if (key == "payload") {
          in.payload = v;
        } else if (key == "route") {
          in.route = v;
        } else if (key == "headers") {
          in.headers = v;
        } else if (key == "id") {
          in.id = v;
        }
      }
      if (!in.payload) {
        fail(kParsingError, kValueError, "Missing required field 'payload' in envelope");
        break;
      }
      if (validate_ && !in.route) {
        fail(kParsingError, kValueError, "Missing required field 'route' in envelope");
        break;
      }
      if (!in.route || in.route->kind != scan::Kind::kObject) {
        fail(kParsingError, kValueError, "Field 'route' must be a dict");
        break;
      }
      // Route members in order, last duplicate wins (as a Python dict).
      std::vector<std::pair<std::string_view, scan::Value>> members;
      scan::ForEachMember(in.route->text, [&](std::string_view key, scan::Value v) {
        for (auto& m : members) {
          if (m.first == key) {
            m.second = v;
            return;
          }
        }
        members.emplace_back(key, v);
      });
      const scan::Value* actors = nullptr;
      const scan::Value* current = nullptr;
      for (const auto& m : members) {
        if (m.first == "actors") {
          actors = &m.second;
        } else if (m.first == "current") {
          current = &m.second;
        }
      }
      if (validate_ && actors == nullptr) {
        fail(kParsingError, kValueError, "Missing required field 'actors' in route");
        break;
      }
      if (validate_ && actors->kind != scan::Kind::kArray) {
        fail(kParsingError, kValueError, "Field 'route.actors' must be a list");
        break;
      }
      int64_t cur = 0;
      if (current != nullptr) {
        if (current->kind != scan::Kind::kNumber || !scan::IsIntegerToken(current->text)) {
          fail(kParsingError, kValueError, "Field 'route.current' must be an integer");
          break;
        }
        auto parsed = scan::ParseInt(current->text);
        if (!parsed) {
          fail(kParsingError, kValueError,
               "Invalid route.current=" + std::string(current->text) + ": out of range");
          break;
        }
        cur = *parsed;
      }
      if (validate_) {
        int64_t n = 0;
        scan::ForEachElement(actors->text, [&](scan::Value) { ++n; });
        if (n == 0) {
          fail(kParsingError, kValueError, "Field 'route.actors' cannot be empty");
          break;
        }
        if (cur < 0 || cur > n) {
          fail(kParsingError, kValueError,
               "Invalid route.current=" + std::to_string(cur) +
                   ": out of bounds for actors of length " + std::to_string(n));
          break;
        }
        if (in.headers && in.headers->kind != scan::Kind::kObject) {
          fail(kParsingError, kValueError, "Field 'headers' must be a dict");
          break;
        }
        if (in.id && in.id->kind != scan::Kind::kString) {
          fail(kParsingError, kValueError, "Field 'id' must be a string");
          break;
        }
      }
      // The output route: a copy of the input route with current + 1.
      route_out.reserve(in.route->text.size() + 16);
      route_out += '{';
      bool first = true;
      auto add_current = [&]() {
        route_out += first ? "\"current\":" : ",\"current\":";
        route_out += std::to_string(cur + 1);
        first = false;
      };
      for (const auto& m : members) {
        if (&m.second == current) {
          add_current();
          continue;
        }
        route_out += first ? "\"" : ",\"";
        route_out += m.first;
        route_out += "\":";
        route_out += m.second.text;
        first = false;
      }
      if (current == nullptr) {
        add_current();
      }
      route_out += '}';
    } while (false);
  }
  if (failure) {
    LogFailure(*failure);
    AppendErrorResponse(out, failure->code, failure->type, failure->message);
    return;
  }

  Request req(in.payload->text, in.headers ? in.headers->text : std::string_view());
  auto outputs = Guard([&] { return handler_.raw()(req); }, &failure);
  if (outputs && !outputs->ok()) {
    failure = Failure{kProcessingError, outputs->error().type, outputs->error().message};
  }
  if (!failure) {
    const auto& payloads = outputs->payloads();
    for (size_t i = 0; i < payloads.size(); ++i) {
      if (payloads[i] == in.payload->text) {
        continue;  // the input payload, returned unchanged: validated with the request
      }
      std::string error;
      auto bad_utf8 = scan::FindInvalidUtf8(payloads[i]);
      if (bad_utf8 || !scan::ScanDocument(payloads[i], &error)) {
        failure = Failure{
            kProcessingError, std::string(kValueError),
            "handler output[" + std::to_string(i) + "] is not valid JSON: " +
                (bad_utf8 ? "invalid UTF-8 at byte " + std::to_string(bad_utf8->offset) : error)};
        break;
      }
    }
  }
  if (failure) {
    LogFailure(*failure);
    AppendErrorResponse(out, failure->code, failure->type, failure->message);
    return;
  }
  const auto& payloads = outputs->payloads();
  size_t need = 2;
  for (const auto& p : payloads) {
    need += p.size() + route_out.size() + (in.headers ? in.headers->text.size() : 0) + 40;
  }
  out.reserve(out.size() + need);
  out += '[';
  for (size_t i = 0; i < payloads.size(); ++i) {
    out += i == 0 ? "{\"payload\":" : ",{\"payload\":";
    out += payloads[i];
    out += ",\"route\":";
    out += route_out;
    if (in.headers) {
      out += ",\"headers\":";
      out += in.headers->text;
    }
    out += '}';
  }
  out += ']';
}

void Processor::ProcessEnvelope(std::string_view request, std::string& out) const {
  std::optional<Failure> failure;
  nlohmann::json env;
  nlohmann::json in_actors;
  int64_t in_current = 0;
  if (auto doc = Decode(request, &failure)) {
    try {
      env = nlohmann::json::parse(request);
    } catch (const nlohmann::json::exception& e) {
      failure = Failure{kParsingError, "JSONDecodeError", e.what()};
    }
    if (!failure && validate_) {
      std::optional<std::string> err;
      if (!env.is_object()) {
        err = env.is_array() ? std::string("Missing required field 'payload' in envelope")
                             : NotAnObject("Envelope", env.type_name());
      } else {
        err = ValidateEnvelope(env);
      }
      if (err) {
        failure = Failure{kParsingError, std::string(kValueError), std::move(*err)};
      } else {
        in_actors = env["route"]["actors"];  // the copy taken before the handler runs
        in_current = env["route"]["current"].get<int64_t>();
      }
    }
  }
  std::optional<nlohmann::json> result;
  if (!failure) {
    result = Guard([&] { return handler_.envelope()(std::move(env)); }, &failure);
  }
  if (!failure) {
    std::vector<nlohmann::json> items;
    if (result->is_array()) {
      items.reserve(result->size());
      for (auto& item : *result) {
        items.push_back(std::move(item));
      }
    } else if (!result->is_null()) {
      items.push_back(std::move(*result));
    }
    if (validate_) {
      for (size_t i = 0; i < items.size(); ++i) {
        if (auto err = ValidateOutput(items[i], in_actors, in_current)) {
          failure = Failure{kProcessingError, std::string(kValueError),
                            "Invalid output envelope[" + std::to_string(i) + "/" +
                                std::to_string(items.size()) + "]: " + *err};
          break;
        }
      }
    }
    if (!failure) {
      size_t base = out.size();
      try {
        out += nlohmann::json(std::move(items)).dump();
        return;
      } catch (const nlohmann::json::exception& e) {
        out.resize(base);
        failure = Failure{kProcessingError, Demangle(typeid(e).name()),
                          std::string("handler result cannot be sent as JSON: ") + e.what()};
      }
    }
  }
  LogFailure(*failure);
  AppendErrorResponse(out, failure->code, failure->type, failure->message);
}

// ---- Request ----

std::optional<std::string_view> Request::Header(std::string_view key) const {
  if (headers_json_.empty() || headers_json_[0] != '{') {
    return std::nullopt;
  }
  std::optional<std::string_view> found;
  scan::ForEachMember(headers_json_, [&](std::string_view k, scan::Value v) {
    if (k == key) {
      found = v.text;
    }
  });
  return found;
}

std::optional<std::string> Request::HeaderString(std::string_view key) const {
  auto raw = Header(key);
  if (!raw || raw->empty() || (*raw)[0] != '"') {
    return std::nullopt;
  }
  return scan::DecodeString(*raw);
}

int64_t Request::Attempt() const {
  auto raw = Header("x-asya-attempt");
  if (!raw) {
    return 1;
  }
  std::string_view text = *raw;
  std::string decoded;
  if (!text.empty() && text[0] == '"') {
    decoded = scan::DecodeString(text);
    text = decoded;
  }
  auto v = scan::ParseInt(text);
  return (v && *v >= 1) ? *v : 1;
}

}  // namespace asya::runtime
