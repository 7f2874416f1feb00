#include "runtime/processor.h"

#include <cstdio>
#include <cstdlib>
#include <exception>
#include <list>
#include <memory>
#include <optional>
#include <typeinfo>
#include <utility>
#include <vector>

#include <cxxabi.h>

#include "asya/base/json_scan.h"
#include "asya/base/json_text.h"
#include "asya/base/log.h"
#include "runtime/json_scan.h"

namespace asya::runtime {
namespace {

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

// Checks UTF-8 and grammar as Python's json module does; returns the document or a
// msg_parsing_error. `members`, when given, receives the top-level members of an object document.
std::optional<json::Value> Decode(std::string_view request, std::optional<Failure>* failure,
                                  std::vector<Member>* members = nullptr) {
  if (request.empty()) {
    *failure = Failure{kParsingError, std::string(kValueError),
                       "Empty request frame (length 0): expected a JSON envelope"};
    return std::nullopt;
  }
  PyError error;
  auto doc = PyDecode(request, &error, members);
  if (!doc) {
    *failure = Failure{kParsingError, std::move(error.type), std::move(error.message)};
  }
  return doc;
}

// ---- the envelope rules (reference-dataplane §2.4, as asya_runtime.py checks them) ----

// What the rules look at. Read from the scanned request in both modes, and from a handler's
// output (a nlohmann DOM) in envelope mode.
struct EnvelopeView {
  json::Kind kind = json::Kind::kObject;  // of the whole document
  bool has_payload = false;
  std::optional<json::Kind> route;
  std::optional<json::Kind> actors;  // route.actors
  size_t actor_count = 0;
  std::optional<json::Kind> current;       // route.current
  std::optional<std::string> current_int;  // route.current as Python's int (%d), when it is one
  std::optional<json::Kind> headers;
  std::optional<json::Kind> id;
  const nlohmann::json* actor_values = nullptr;  // route.actors of a DOM (outputs)
};

enum class Check {
  kInput,         // validation on (rules 1-9, 12)
  kInputMinimal,  // validation off, payload mode: only what building the outputs needs
  kOutput,        // envelope-mode output: rules 1-9, the route history (DESIGN §4.5), 12
};

// The input route as it was before the handler ran (kOutput).
struct InputRoute {
  const nlohmann::json* actors;
  int64_t current;
};

// Python's int of a JSON value: integer numbers, and booleans (bool is an int in Python).
std::optional<std::string> PyIntText(json::Kind kind, std::string_view text) {
  if (kind == json::Kind::kTrue || kind == json::Kind::kFalse) {
    return std::string(kind == json::Kind::kTrue ? "1" : "0");
  }
  if (kind != json::Kind::kNumber || !json::IsIntegerToken(text)) {
    return std::nullopt;
  }
  return std::string(text == "-0" ? std::string_view("0") : text);
}

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

// The already-processed actors must stay as they were (envelope-mode outputs).
std::optional<std::string> CheckRouteHistory(const nlohmann::json& out_actors,
                                             const InputRoute& in) {
  const nlohmann::json& in_actors = *in.actors;
  auto processed = nlohmann::json::array();
  for (size_t i = 0; i < static_cast<size_t>(in.current) + 1 && i < in_actors.size(); ++i) {
    processed.push_back(in_actors[i]);
  }
  auto prefix = nlohmann::json::array();
  for (size_t i = 0; i < processed.size() && i < out_actors.size(); ++i) {
    prefix.push_back(out_actors[i]);
  }
  if (prefix != processed) {
    return "Route modification error: already-processed actors cannot be erased. Input route had " +
           PyRepr(processed) + " (actors 0-" + std::to_string(in.current) +
           "), but output route starts with " + PyRepr(prefix) +
           ". Runtimes can add future actors but must preserve all actors up to current.";
  }
  auto idx = static_cast<size_t>(in.current);
  if (idx < in_actors.size() && idx < out_actors.size() && out_actors[idx] != in_actors[idx]) {
    return "Route mismatch: input route points to " + PyRepr(in_actors[idx]) + " at position " +
           std::to_string(in.current) + ", but output route has " + PyRepr(out_actors[idx]) +
           " at that position. Actor cannot change its position in the route.";
  }
  return std::nullopt;
}

// The one place that holds the envelope rules, in the order the Python runtime checks them.
// Returns the ValueError message of the first rule broken, or nullopt.
std::optional<std::string> CheckEnvelope(const EnvelopeView& v, Check check,
                                         const InputRoute* in = nullptr) {
  using json::Kind;
  if (v.kind != Kind::kObject) {
    std::string got(json::KindName(v.kind));
    if (check == Check::kOutput) {
      return "Output envelope must be a JSON object, got " + got;
    }
    if (check == Check::kInput && v.kind == Kind::kArray) {
      return "Missing required field 'payload' in envelope";
    }
    return "Envelope must be a JSON object, got " + got;
  }
  if (!v.has_payload) {
    return "Missing required field 'payload' in envelope";
  }
  if (check != Check::kInputMinimal) {
    if (!v.route) {
      return "Missing required field 'route' in envelope";
    }
  }
  if (v.route != Kind::kObject) {
    return "Field 'route' must be a dict";
  }
  if (check != Check::kInputMinimal) {
    if (!v.actors) {
      return "Missing required field 'actors' in route";
    }
    if (v.actors != Kind::kArray) {
      return "Field 'route.actors' must be a list";
    }
  }
  if (v.current && !v.current_int) {
    return "Field 'route.current' must be an integer";
  }
  if (check == Check::kInputMinimal) {
    return std::nullopt;
  }
  if (v.actor_count == 0) {
    return "Field 'route.actors' cannot be empty";
  }
  std::string_view current = v.current ? std::string_view(*v.current_int) : "0";
  auto value = json::ParseInt(current);  // nullopt: too many digits for any route
  if (!value || *value < 0 || static_cast<uint64_t>(*value) > v.actor_count) {
    return "Invalid route.current=" + std::string(current) +
           ": out of bounds for actors of length " + std::to_string(v.actor_count);
  }
  if (v.headers && v.headers != Kind::kObject) {
    return "Field 'headers' must be a dict";
  }
  if (check == Check::kOutput && in != nullptr && v.actor_values != nullptr) {
    if (auto err = CheckRouteHistory(*v.actor_values, *in)) {
      return err;
    }
  }
  if (v.id && v.id != Kind::kString) {
    return "Field 'id' must be a string";
  }
  return std::nullopt;
}

// ---- reading a scanned request (both modes; payload mode never builds a DOM) ----

struct RouteMember {
  std::string_view raw_key;  // with quotes, as in the input
  std::string_view key;      // decoded
  json::Value value;
};

struct ScannedEnvelope {
  EnvelopeView view;
  std::optional<json::Value> payload;
  std::optional<json::Value> route;
  std::optional<json::Value> headers;
  std::vector<RouteMember> route_members;  // input order; a repeated key: the last value wins
  size_t current = SIZE_MAX;               // index of route.current in route_members
  std::list<std::string> decoded_keys;     // storage for route keys that have escapes
};

json::Kind DomKind(const nlohmann::json& v) {
  switch (v.type()) {
    case nlohmann::json::value_t::object:
      return json::Kind::kObject;
    case nlohmann::json::value_t::array:
      return json::Kind::kArray;
    case nlohmann::json::value_t::string:
      return json::Kind::kString;
    case nlohmann::json::value_t::boolean:
      return v.get<bool>() ? json::Kind::kTrue : json::Kind::kFalse;
    case nlohmann::json::value_t::null:
      return json::Kind::kNull;
    default:
      return json::Kind::kNumber;
  }
}

void ReadScanned(json::Value doc, const std::vector<Member>& top, ScannedEnvelope& e) {
  EnvelopeView& v = e.view;
  v.kind = doc.kind;
  if (doc.kind != json::Kind::kObject) {
    return;
  }
  for (const auto& m : top) {  // a repeated key: the last one wins (as in Python)
    if (m.key == "payload") {
      e.payload = m.value;
    } else if (m.key == "route") {
      e.route = m.value;
    } else if (m.key == "headers") {
      e.headers = m.value;
    } else if (m.key == "id") {
      v.id = m.value.kind;
    }
  }
  v.has_payload = e.payload.has_value();
  if (e.headers) {
    v.headers = e.headers->kind;
  }
  if (!e.route) {
    return;
  }
  v.route = e.route->kind;
  if (e.route->kind != json::Kind::kObject) {
    return;
  }
  e.route_members.reserve(4);
  json::ForEachMember(e.route->text, [&](std::string_view raw_key, json::Value value) {
    std::string scratch;
    std::string_view key = JsonStringText(raw_key, scratch);
    if (!scratch.empty()) {
      key = e.decoded_keys.emplace_back(std::move(scratch));
    }
    for (auto& m : e.route_members) {
      if (m.key == key) {
        m.value = value;
        return;
      }
    }
    e.route_members.push_back({raw_key, key, value});
  });
  for (size_t i = 0; i < e.route_members.size(); ++i) {
    const RouteMember& m = e.route_members[i];
    if (m.key == "actors") {
      v.actors = m.value.kind;
      if (m.value.kind == json::Kind::kArray) {
        json::ForEachElement(m.value.text, [&](json::Value) { ++v.actor_count; });
      }
    } else if (m.key == "current") {
      e.current = i;
      v.current = m.value.kind;
      v.current_int = PyIntText(m.value.kind, m.value.text);
    }
  }
}

EnvelopeView ViewOf(const nlohmann::json& e) {
  EnvelopeView v;
  v.kind = DomKind(e);
  if (!e.is_object()) {
    return v;
  }
  v.has_payload = e.contains("payload");
  if (auto it = e.find("headers"); it != e.end()) {
    v.headers = DomKind(*it);
  }
  if (auto it = e.find("id"); it != e.end()) {
    v.id = DomKind(*it);
  }
  auto route = e.find("route");
  if (route == e.end()) {
    return v;
  }
  v.route = DomKind(*route);
  if (!route->is_object()) {
    return v;
  }
  if (auto it = route->find("actors"); it != route->end()) {
    v.actors = DomKind(*it);
    v.actor_count = it->is_array() ? it->size() : 0;
    v.actor_values = &*it;
  }
  if (auto it = route->find("current"); it != route->end()) {
    v.current = DomKind(*it);
    if (it->is_number_integer() || it->is_boolean()) {
      v.current_int = it->is_boolean() ? std::string(it->get<bool>() ? "1" : "0") : it->dump();
    }
  }
  return v;
}

// Rules 12-13 on a DOM that passed CheckEnvelope: route.current defaults to 0; only payload,
// route, id, parent_id and headers are kept.
void Rebuild(nlohmann::json& e) {
  auto& route = e["route"];
  if (!route.contains("current")) {
    route["current"] = 0;
  }
  nlohmann::json out = nlohmann::json::object();
  for (const char* key : {"payload", "route", "id", "parent_id", "headers"}) {
    if (auto it = e.find(key); it != e.end()) {
      out[key] = std::move(*it);
    }
  }
  e = std::move(out);
}

// `integer` + 1 for an integer token of any length (Python ints do not overflow).
std::string PlusOne(std::string_view integer) {
  if (auto v = json::ParseInt(integer)) {
    return std::to_string(*v + 1);
  }
  std::string digits(integer);
  const bool negative = !digits.empty() && digits[0] == '-';
  size_t first = negative ? 1 : 0;
  size_t i = digits.size();
  if (!negative) {  // add one
    while (i > first && digits[i - 1] == '9') {
      digits[--i] = '0';
    }
    if (i == first) {
      digits.insert(first, 1, '1');
    } else {
      ++digits[i - 1];
    }
    return digits;
  }
  while (i > first && digits[i - 1] == '0') {  // subtract one from the magnitude
    digits[--i] = '9';
  }
  --digits[i - 1];
  size_t nonzero = digits.find_first_not_of('0', first);
  digits.erase(first, nonzero - first);  // at least 19 digits long: never all zero
  return digits;
}

}  // namespace

void AppendErrorResponse(std::string& out, std::string_view code, std::string_view type,
                         std::string_view message) {
  out += "[{\"error\":";
  AppendJsonString(out, code);
  out += ",\"details\":{\"message\":";
  AppendJsonString(out, message);
  out += ",\"type\":";
  AppendJsonString(out, type);
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
  std::string route_out;
  ScannedEnvelope in;
  std::vector<Member> top;  // the envelope's members, found while validating
  top.reserve(8);
  if (auto doc = Decode(request, &failure, &top)) {
    ReadScanned(*doc, top, in);
    if (auto err = CheckEnvelope(in.view, validate_ ? Check::kInput : Check::kInputMinimal)) {
      failure = Failure{kParsingError, std::string(kValueError), std::move(*err)};
    }
  }
  if (!failure) {
    // The output route: a copy of the input route with current + 1 (appended when absent).
    route_out.reserve(in.route->text.size() + 16);
    route_out += '{';
    auto add_current = [&]() {
      route_out += "\"current\":";
      route_out += in.current == SIZE_MAX ? std::string("1") : PlusOne(*in.view.current_int);
    };
    for (size_t i = 0; i < in.route_members.size(); ++i) {
      if (i > 0) {
        route_out += ',';
      }
      if (i == in.current) {
        add_current();
        continue;
      }
      route_out += in.route_members[i].raw_key;
      route_out += ':';
      route_out += in.route_members[i].value.text;
    }
    if (in.current == SIZE_MAX) {
      route_out += in.route_members.empty() ? "" : ",";
      add_current();
    }
    route_out += '}';
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
      PyError error;
      if (!PyDecode(payloads[i], &error)) {
        auto bad_utf8 = FindInvalidUtf8(payloads[i]);
        failure =
            Failure{kProcessingError, std::string(kValueError),
                    "handler output[" + std::to_string(i) + "] is not valid JSON: " +
                        (bad_utf8 ? "invalid UTF-8 at byte " + std::to_string(bad_utf8->offset)
                                  : error.message)};
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
  std::vector<Member> top;
  ScannedEnvelope scanned;
  if (auto doc = Decode(request, &failure, validate_ ? &top : nullptr)) {
    if (validate_) {
      ReadScanned(*doc, top, scanned);
      if (auto err = CheckEnvelope(scanned.view, Check::kInput)) {
        failure = Failure{kParsingError, std::string(kValueError), std::move(*err)};
      }
    }
    if (!failure) {
      try {
        env = nlohmann::json::parse(request);
      } catch (const nlohmann::json::exception& e) {
        failure = Failure{kParsingError, "JSONDecodeError", e.what()};
      }
    }
    if (!failure && validate_) {
      Rebuild(env);
      in_actors = env["route"]["actors"];  // the copy taken before the handler runs
      const auto& current = env["route"]["current"];
      in_current = current.is_boolean() ? int64_t{current.get<bool>()} : current.get<int64_t>();
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
      const InputRoute in{&in_actors, in_current};
      for (size_t i = 0; i < items.size(); ++i) {
        if (auto err = CheckEnvelope(ViewOf(items[i]), Check::kOutput, &in)) {
          failure = Failure{kProcessingError, std::string(kValueError),
                            "Invalid output envelope[" + std::to_string(i) + "/" +
                                std::to_string(items.size()) + "]: " + *err};
          break;
        }
        Rebuild(items[i]);
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
  std::string scratch;
  json::ForEachMember(headers_json_, [&](std::string_view raw_key, json::Value v) {
    if (JsonStringText(raw_key, scratch) == key) {
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
  return DecodeJsonString(*raw, LoneSurrogates::kReplace);
}

int64_t Request::Attempt() const {
  auto raw = Header("x-asya-attempt");
  if (!raw) {
    return 1;
  }
  std::string_view text = *raw;
  std::string decoded;
  if (!text.empty() && text[0] == '"') {
    text = JsonStringText(text, decoded);
  }
  auto v = json::ParseInt(text);
  return (v && *v >= 1) ? *v : 1;
}

}  // namespace asya::runtime
