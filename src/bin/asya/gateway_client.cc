#include "bin/asya/gateway_client.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <map>

#include <yaml-cpp/yaml.h>

#include "asya/http/url.h"

namespace asya::cli::gateway {
namespace {

using nlohmann::json;
using std::chrono::milliseconds;

constexpr char kProtocol[] = "2025-06-18";

Error Invalid(std::string message) {
  return Error{ErrorCode::kInvalidArgument, std::move(message)};
}

std::string Lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

std::optional<int64_t> ParseInteger(const std::string& v) {
  if (v.empty()) {
    return std::nullopt;
  }
  errno = 0;
  char* end = nullptr;
  long long n = std::strtoll(v.c_str(), &end, 10);
  if (errno != 0 || end != v.c_str() + v.size() || std::isspace(static_cast<unsigned char>(v[0]))) {
    return std::nullopt;
  }
  return static_cast<int64_t>(n);
}

std::optional<double> ParseNumber(const std::string& v) {
  if (v.empty() || std::isspace(static_cast<unsigned char>(v[0]))) {
    return std::nullopt;
  }
  errno = 0;
  char* end = nullptr;
  double d = std::strtod(v.c_str(), &end);
  if (errno != 0 || end != v.c_str() + v.size() || !std::isfinite(d)) {
    return std::nullopt;
  }
  return d;
}

std::vector<std::string> TypesOf(const json& schema) {
  std::vector<std::string> out;
  if (!schema.is_object()) {
    return out;
  }
  auto t = schema.find("type");
  if (t == schema.end()) {
    return out;
  }
  if (t->is_string()) {
    out.push_back(t->get<std::string>());
  } else if (t->is_array()) {
    for (const auto& x : *t) {
      if (x.is_string()) {
        out.push_back(x.get<std::string>());
      }
    }
  }
  return out;
}

std::string TypeText(const json& schema) {
  auto types = TypesOf(schema);
  if (types.empty()) {
    return "any";
  }
  std::string out;
  for (const auto& t : types) {
    out += (out.empty() ? "" : " | ") + t;
  }
  return out;
}

// One value converted to one JSON type, or nullopt.
std::optional<json> As(const std::string& type, const std::string& v) {
  if (type == "string") {
    return json(v);
  }
  if (type == "integer") {
    if (auto n = ParseInteger(v)) {
      return json(*n);
    }
    return std::nullopt;
  }
  if (type == "number") {
    if (auto n = ParseInteger(v)) {
      return json(*n);
    }
    if (auto d = ParseNumber(v)) {
      return json(*d);
    }
    return std::nullopt;
  }
  if (type == "boolean") {
    const std::string l = Lower(v);
    if (l == "true" || l == "yes" || l == "1") {
      return json(true);
    }
    if (l == "false" || l == "no" || l == "0") {
      return json(false);
    }
    return std::nullopt;
  }
  if (type == "null") {
    return v == "null" ? std::optional<json>(json(nullptr)) : std::nullopt;
  }
  if (type == "array" || type == "object") {
    json j = json::parse(v, nullptr, false);
    if (j.is_discarded() || (type == "array" ? !j.is_array() : !j.is_object())) {
      return std::nullopt;
    }
    return j;
  }
  return std::nullopt;
}

// The original CLI's guess for a parameter without a type.
json Guess(const std::string& v) {
  if (v == "true" || v == "false") {
    return json(v == "true");
  }
  if (v.find('.') != std::string::npos) {
    if (auto d = ParseNumber(v)) {
      return json(*d);
    }
    return json(v);
  }
  if (auto n = ParseInteger(v)) {
    return json(*n);
  }
  return json(v);
}

Result<json> Convert(const std::string& name, const std::string& v, const json& schema) {
  auto types = TypesOf(schema);
  json out;
  if (types.empty()) {
    out = Guess(v);
  } else {
    bool ok = false;
    for (const auto& t : types) {
      if (auto j = As(t, v)) {
        out = std::move(*j);
        ok = true;
        break;
      }
    }
    if (!ok) {
      return tl::unexpected(
          Invalid("--" + name + ": expected " + TypeText(schema) + ", got '" + v + "'"));
    }
  }
  if (schema.is_object() && schema.contains("enum") && schema["enum"].is_array()) {
    const json& options = schema["enum"];
    if (std::find(options.begin(), options.end(), out) == options.end()) {
      std::string list;
      for (const auto& o : options) {
        list += (list.empty() ? "" : ", ") + (o.is_string() ? o.get<std::string>() : o.dump());
      }
      return tl::unexpected(Invalid("--" + name + ": '" + v + "' is not one of: " + list));
    }
  }
  return out;
}

Status CheckRequired(const json& args, const json& schema) {
  if (!schema.is_object() || !schema.contains("required") || !schema["required"].is_array()) {
    return Ok();
  }
  std::string missing;
  for (const auto& r : schema["required"]) {
    if (r.is_string() && !args.contains(r.get<std::string>())) {
      missing += (missing.empty() ? "--" : ", --") + r.get<std::string>();
    }
  }
  if (!missing.empty()) {
    return tl::unexpected(Invalid("missing required parameter(s): " + missing));
  }
  return Ok();
}

std::string ParamList(const json& props) {
  std::string out;
  for (auto it = props.begin(); it != props.end(); ++it) {
    out += (out.empty() ? "--" : ", --") + it.key();
  }
  return out;
}

// ---- YAML ----

// An ordered object: nlohmann::json sorts keys; the tool views keep name/description first by
// using ordered_json.
using ojson = nlohmann::ordered_json;

ojson ToolView(const json& tool, bool detailed) {
  ojson view;
  view["name"] = tool.value("name", "");
  view["description"] = tool.value("description", "");
  ojson params = ojson::object();
  const json schema = tool.value("inputSchema", json::object());
  json required = schema.value("required", json::array());
  if (schema.contains("properties") && schema["properties"].is_object()) {
    for (auto it = schema["properties"].begin(); it != schema["properties"].end(); ++it) {
      ojson p;
      p["type"] = TypeText(it.value());
      p["required"] = std::find(required.begin(), required.end(), json(it.key())) != required.end();
      if (detailed && it.value().is_object()) {
        if (it.value().contains("description")) {
          p["description"] = ojson::parse(it.value()["description"].dump());
        }
        if (it.value().contains("default")) {
          p["default"] = ojson::parse(it.value()["default"].dump());
        }
        if (it.value().contains("enum")) {
          p["options"] = ojson::parse(it.value()["enum"].dump());
        }
      }
      params[it.key()] = std::move(p);
    }
  }
  view["parameters"] = std::move(params);
  return view;
}

void EmitOrdered(YAML::Emitter& out, const ojson& j) {
  switch (j.type()) {
    case ojson::value_t::object:
      if (j.empty()) {
        out << YAML::Flow << YAML::BeginMap << YAML::EndMap;
        break;
      }
      out << YAML::BeginMap;
      for (auto it = j.begin(); it != j.end(); ++it) {
        out << YAML::Key << it.key() << YAML::Value;
        EmitOrdered(out, it.value());
      }
      out << YAML::EndMap;
      break;
    case ojson::value_t::array:
      if (j.empty()) {
        out << YAML::Flow << YAML::BeginSeq << YAML::EndSeq;
        break;
      }
      out << YAML::BeginSeq;
      for (const auto& x : j) {
        EmitOrdered(out, x);
      }
      out << YAML::EndSeq;
      break;
    case ojson::value_t::string:
      out << j.get<std::string>();
      break;
    case ojson::value_t::boolean:
      out << j.get<bool>();
      break;
    case ojson::value_t::null:
      out << YAML::Null;
      break;
    default:
      out << j.dump();
      break;
  }
}

std::string OrderedYaml(const ojson& j) {
  YAML::Emitter out;
  EmitOrdered(out, j);
  return std::string(out.c_str()) + "\n";
}

std::vector<json> SortedTools(const json& tools) {
  std::vector<json> out;
  if (tools.is_array()) {
    out.assign(tools.begin(), tools.end());
  }
  std::sort(out.begin(), out.end(),
            [](const json& a, const json& b) { return a.value("name", "") < b.value("name", ""); });
  return out;
}

std::string Percent(double p) {
  char buf[16];
  std::snprintf(buf, sizeof(buf), "%3.0f%%", std::clamp(p, 0.0, 100.0));
  return buf;
}

std::string TextBlocks(const json& result) {
  std::string out;
  if (result.contains("content") && result["content"].is_array()) {
    for (const auto& c : result["content"]) {
      if (c.is_object() && c.value("type", "") == "text" && c.contains("text") &&
          c["text"].is_string()) {
        out += (out.empty() ? "" : "\n") + c["text"].get<std::string>();
      }
    }
  }
  return out;
}

bool IsSseLine(std::string_view line) {
  return line.starts_with("data:") || line.starts_with("event:") || line.starts_with("id:") ||
         line.starts_with(":") || line.starts_with("retry:");
}

}  // namespace

// ---- arguments ----

Result<json> ParseToolArguments(const std::vector<std::string>& args, const json& input_schema,
                                const std::function<std::string()>& read_stdin) {
  const json props = input_schema.is_object() && input_schema.contains("properties") &&
                             input_schema["properties"].is_object()
                         ? input_schema["properties"]
                         : json::object();
  json out = json::object();
  if (!args.empty() && !args[0].starts_with("--")) {
    if (args.size() > 1) {
      return tl::unexpected(Invalid("unexpected '" + args[1] +
                                    "' after the JSON arguments (give either one JSON object or "
                                    "--name value pairs)"));
    }
    std::string text = args[0];
    if (text == "-") {
      text = read_stdin ? read_stdin() : "";
    }
    out = json::parse(text, nullptr, false);
    if (out.is_discarded()) {
      // Parse again with exceptions for the position and reason.
      std::string why;
      try {
        json unused = json::parse(text);
        (void)unused;
      } catch (const json::parse_error& e) {
        why = e.what();
        if (auto p = why.find("parse error"); p != std::string::npos) {
          why = why.substr(p);
        }
      }
      return tl::unexpected(Invalid("the arguments are not valid JSON: " + why));
    }
    if (!out.is_object()) {
      return tl::unexpected(
          Invalid(std::string("the arguments must be a JSON object, got ") + out.type_name()));
    }
    if (input_schema.is_object() &&
        input_schema.value("additionalProperties", json(true)) == json(false)) {
      for (auto it = out.begin(); it != out.end(); ++it) {
        if (!props.contains(it.key())) {
          return tl::unexpected(Invalid("unknown parameter '" + it.key() + "' (the tool takes " +
                                        ParamList(props) + ")"));
        }
      }
    }
    ASYA_RETURN_IF_ERROR(CheckRequired(out, input_schema));
    return out;
  }
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (!a.starts_with("--") || a.size() == 2) {
      return tl::unexpected(
          Invalid("unexpected argument '" + a + "' (parameters are given as --name value)"));
    }
    std::string name = a.substr(2);
    std::string value;
    bool has_value = false;
    if (auto eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
      has_value = true;
    } else if (i + 1 < args.size() && !args[i + 1].starts_with("--")) {
      value = args[++i];
      has_value = true;
    }
    if (!props.empty() && !props.contains(name)) {
      std::string underscored = name;
      std::replace(underscored.begin(), underscored.end(), '-', '_');
      if (!props.contains(underscored)) {
        return tl::unexpected(
            Invalid("unknown parameter --" + name + " (the tool takes " + ParamList(props) + ")"));
      }
      name = underscored;
    }
    const json schema = props.contains(name) ? props[name] : json::object();
    const auto types = TypesOf(schema);
    if (!has_value) {
      if (types.empty() || std::find(types.begin(), types.end(), "boolean") != types.end()) {
        value = "true";
      } else {
        return tl::unexpected(Invalid("--" + name + " needs a value (" + TypeText(schema) + ")"));
      }
    }
    const bool is_array = types.size() == 1 && types[0] == "array";
    if (is_array && !(value.starts_with("["))) {
      // A repeated array parameter: each value is one element, typed by `items`.
      const json items = schema.value("items", json::object());
      ASYA_ASSIGN_OR_RETURN(json element, Convert(name, value, items));
      if (!out.contains(name)) {
        out[name] = json::array();
      }
      out[name].push_back(std::move(element));
      continue;
    }
    if (out.contains(name)) {
      return tl::unexpected(Invalid("--" + name + " is given more than once"));
    }
    ASYA_ASSIGN_OR_RETURN(json typed, Convert(name, value, schema));
    out[name] = std::move(typed);
  }
  ASYA_RETURN_IF_ERROR(CheckRequired(out, input_schema));
  return out;
}

// ---- list / show ----

std::optional<json> FindTool(const json& tools, std::string_view name) {
  if (tools.is_array()) {
    for (const auto& t : tools) {
      if (t.is_object() && t.value("name", "") == name) {
        return t;
      }
    }
  }
  return std::nullopt;
}

std::string FormatToolList(const json& tools, bool as_json) {
  ojson list = ojson::array();
  for (const auto& t : SortedTools(tools)) {
    list.push_back(ToolView(t, false));
  }
  if (as_json) {
    return list.dump(2) + "\n";
  }
  return list.empty() ? "[]\n" : OrderedYaml(list);
}

std::string FormatTool(const json& tool, bool as_json) {
  ojson view = ToolView(tool, true);
  return as_json ? view.dump(2) + "\n" : OrderedYaml(view);
}

// ---- progress ----

Progress ProgressOfUpdate(const json& u) {
  Progress p;
  if (!u.is_object()) {
    return p;
  }
  if (auto it = u.find("progress_percent"); it != u.end() && it->is_number()) {
    p.percent = it->get<double>();
  }
  const std::string status = u.value("status", "");
  if (status == "succeeded") {
    p.percent = 100;
  }
  std::string actor =
      u.contains("actor") && u["actor"].is_string() ? u["actor"].get<std::string>() : "";
  if (actor.empty() && u.contains("actors") && u["actors"].is_array() &&
      u.contains("current_actor_idx") && u["current_actor_idx"].is_number_integer()) {
    const auto idx = u["current_actor_idx"].get<int64_t>();
    if (idx >= 0 && idx < static_cast<int64_t>(u["actors"].size()) &&
        u["actors"][static_cast<size_t>(idx)].is_string()) {
      actor = u["actors"][static_cast<size_t>(idx)].get<std::string>();
    }
  }
  std::string state = u.contains("envelope_state") && u["envelope_state"].is_string()
                          ? u["envelope_state"].get<std::string>()
                          : status;
  if (IsFinalStatus(status)) {
    state = status;
    actor.clear();
  }
  p.label = actor.empty() ? state : actor + ": " + state;
  if (p.label.empty() && u.contains("message") && u["message"].is_string()) {
    p.label = u["message"].get<std::string>();
  }
  return p;
}

Progress ProgressOfNotification(const json& params) {
  Progress p;
  if (!params.is_object()) {
    return p;
  }
  if (params.contains("progress") && params["progress"].is_number()) {
    const double progress = params["progress"].get<double>();
    if (params.contains("total") && params["total"].is_number() &&
        params["total"].get<double>() > 0) {
      p.percent = 100.0 * progress / params["total"].get<double>();
    } else {
      p.percent = progress <= 1.0 ? progress * 100.0 : progress;
    }
  }
  if (params.contains("message") && params["message"].is_string()) {
    p.label = params["message"].get<std::string>();
  }
  return p;
}

std::string RenderBar(const Progress& p, int width) {
  const std::string pct = p.percent < 0 ? "  ?%" : Percent(p.percent);
  const int bar = std::clamp(width / 3, 10, 40);
  std::string out = "[";
  const int filled =
      p.percent < 0 ? 0 : static_cast<int>(std::clamp(p.percent, 0.0, 100.0) * bar / 100.0);
  out.append(static_cast<size_t>(filled), '#');
  out.append(static_cast<size_t>(bar - filled), '.');
  out += "] " + pct;
  if (!p.label.empty()) {
    out += " " + p.label;
  }
  if (width > 0 && static_cast<int>(out.size()) > width - 1) {
    out.resize(static_cast<size_t>(std::max(0, width - 1)));
  }
  return out;
}

std::string RenderLine(const Progress& p) {
  std::string out = p.percent < 0 ? "?%" : Percent(p.percent);
  out.erase(0, out.find_first_not_of(' '));
  if (!p.label.empty()) {
    out += " " + p.label;
  }
  return out;
}

// ---- results ----

std::string AsyncEnvelopeId(const json& r) {
  auto id_of = [](const json& j) -> std::string {
    if (j.is_object() && j.contains("envelope_id") && j["envelope_id"].is_string() &&
        (j.contains("status_url") || j.contains("stream_url"))) {
      return j["envelope_id"].get<std::string>();
    }
    return "";
  };
  if (!r.is_object()) {
    return "";
  }
  if (r.contains("structuredContent")) {
    if (auto id = id_of(r["structuredContent"]); !id.empty()) {
      return id;
    }
  }
  if (r.contains("content") && r["content"].is_array() && r["content"].size() == 1) {
    const json& c = r["content"][0];
    if (c.is_object() && c.value("type", "") == "text" && c.contains("text") &&
        c["text"].is_string()) {
      return id_of(json::parse(c["text"].get<std::string>(), nullptr, false));
    }
  }
  return "";
}

std::string FormatCallResult(const json& r) {
  if (r.is_object() && r.contains("structuredContent") && !r["structuredContent"].is_null()) {
    return r["structuredContent"].dump(2) + "\n";
  }
  std::string text = TextBlocks(r);
  if (!text.empty()) {
    json j = json::parse(text, nullptr, false);
    return j.is_discarded() ? text + (text.back() == '\n' ? "" : "\n") : j.dump(2) + "\n";
  }
  if (r.is_object() && r.contains("content")) {
    return r["content"].dump(2) + "\n";
  }
  return r.dump(2) + "\n";
}

std::string ErrorText(const json& r) {
  std::string text = TextBlocks(r);
  return text.empty() ? r.dump() : text;
}

bool IsFinalStatus(std::string_view s) {
  return s == "succeeded" || s == "failed";
}

// ---- SSE ----

std::optional<SseParser::Event> SseParser::Feed(std::string_view line) {
  if (!line.empty() && line.back() == '\r') {
    line.remove_suffix(1);
  }
  if (line.empty()) {
    if (!has_data_) {
      current_ = Event{};
      return std::nullopt;
    }
    Event e = std::move(current_);
    current_ = Event{};
    has_data_ = false;
    return e;
  }
  if (line[0] == ':') {
    return std::nullopt;  // comment (keep-alive)
  }
  std::string_view field = line;
  std::string_view value;
  if (auto c = line.find(':'); c != std::string_view::npos) {
    field = line.substr(0, c);
    value = line.substr(c + 1);
    if (!value.empty() && value[0] == ' ') {
      value.remove_prefix(1);
    }
  }
  if (field == "data") {
    if (has_data_) {
      current_.data += '\n';
    }
    current_.data += value;
    has_data_ = true;
  } else if (field == "event") {
    current_.event = std::string(value);
  } else if (field == "id") {
    current_.id = std::string(value);
  }
  return std::nullopt;
}

// ---- client ----

Result<std::string> NormalizeBaseUrl(std::string_view url) {
  std::string u(url);
  while (!u.empty() && u.back() == '/') {
    u.pop_back();
  }
  if (u.ends_with("/mcp")) {
    u.resize(u.size() - 4);
  }
  auto parsed = http::ParseUrl(u);
  if (!parsed || (parsed->scheme != "http" && parsed->scheme != "https") || parsed->host.empty() ||
      !parsed->query.empty()) {
    return tl::unexpected(
        Invalid("gateway URL '" + std::string(url) + "' is not http(s)://host[:port]"));
  }
  return u;
}

Client::Client(ClientOptions options)
    : options_(std::move(options)),
      http_(http::ClientOptions{.base_url = options_.url,
                                .bearer_token = options_.token,
                                .timeout = options_.request_timeout,
                                .connect_timeout = std::chrono::milliseconds(5'000)}) {}

http::Headers Client::McpHeaders() const {
  http::Headers h = {{"Content-Type", "application/json"},
                     {"Accept", "application/json, text/event-stream"}};
  if (!session_.empty()) {
    h.emplace_back("Mcp-Session-Id", session_);
  }
  if (!protocol_.empty()) {
    h.emplace_back("MCP-Protocol-Version", protocol_);
  }
  return h;
}

namespace {

Error HttpFailure(const std::string& what, const http::Response& r) {
  std::string body = r.body.substr(0, 300);
  while (!body.empty() && (body.back() == '\n' || body.back() == '\r')) {
    body.pop_back();
  }
  if (r.status == 401 || r.status == 403) {
    return Error{ErrorCode::kPermissionDenied,
                 what + ": the gateway refused the request (HTTP " + std::to_string(r.status) +
                     "); set ASYA_GATEWAY_CLIENT_TOKEN or --token" + (body.empty() ? "" : ": " + body)};
  }
  if (r.status == 404) {
    return Error{ErrorCode::kNotFound,
                 what + ": not found (HTTP 404)" + (body.empty() ? "" : ": " + body)};
  }
  return Error{r.status >= 500 ? ErrorCode::kUnavailable : ErrorCode::kFailedPrecondition,
               what + ": HTTP " + std::to_string(r.status) + (body.empty() ? "" : ": " + body)};
}

// kDeadlineExceeded when a request failed at (or after) its deadline.
Error Timed(Error e, std::chrono::steady_clock::time_point start, milliseconds timeout) {
  if (e.code == ErrorCode::kUnavailable &&
      std::chrono::steady_clock::now() - start >= timeout - milliseconds(50)) {
    e.code = ErrorCode::kDeadlineExceeded;
  }
  return e;
}

}  // namespace

Result<json> Client::Rpc(const std::string& method, const json& params, milliseconds timeout,
                         const std::function<void(const json&)>& on_notification,
                         bool notification) {
  json msg = {{"jsonrpc", "2.0"}, {"method", method}};
  if (!params.is_null()) {
    msg["params"] = params;
  }
  const int64_t id = next_id_++;
  if (!notification) {
    msg["id"] = id;
  }
  http::Request req;
  req.method = "POST";
  req.url = "/mcp";
  req.headers = McpHeaders();
  req.body = msg.dump();
  req.timeout = timeout;

  bool decided = false;
  bool sse = false;
  std::string json_text;
  SseParser parser;
  std::optional<json> answer;
  auto on_line = [&](std::string_view line) -> bool {
    if (!decided) {
      if (line.empty()) {
        return true;
      }
      decided = true;
      sse = IsSseLine(line);
    }
    if (!sse) {
      json_text.append(line).append("\n");
      return true;
    }
    auto event = parser.Feed(line);
    if (!event || event->data.empty()) {
      return true;
    }
    json m = json::parse(event->data, nullptr, false);
    if (!m.is_object()) {
      return true;
    }
    if (m.contains("id") && m["id"] == json(id) && (m.contains("result") || m.contains("error"))) {
      answer = std::move(m);
      return false;
    }
    if (m.contains("method") && !m.contains("id") && on_notification) {
      on_notification(m);
    }
    return true;
  };
  const auto start = std::chrono::steady_clock::now();
  auto r = http_.Stream(req, on_line);
  if (!r) {
    return tl::unexpected(
        Timed(Error{r.error().code, "MCP " + method + ": " + r.error().message}, start, timeout));
  }
  if (r->status / 100 != 2) {
    return tl::unexpected(HttpFailure("MCP " + method, *r));
  }
  if (method == "initialize") {
    session_ = r->Header("Mcp-Session-Id");
  }
  if (notification) {
    return json(nullptr);
  }
  if (!sse) {
    json m = json::parse(json_text, nullptr, false);
    if (m.is_object() && m.contains("id") && m["id"] == json(id)) {
      answer = std::move(m);
    }
  }
  if (!answer) {
    return tl::unexpected(Error{ErrorCode::kFailedPrecondition,
                                "MCP " + method + ": no JSON-RPC response for the request"});
  }
  if (answer->contains("error")) {
    const json& e = (*answer)["error"];
    std::string text = e.is_object() ? e.value("message", e.dump()) : e.dump();
    if (e.is_object() && e.contains("code")) {
      text += " (JSON-RPC error " + e["code"].dump() + ")";
    }
    return tl::unexpected(Error{ErrorCode::kFailedPrecondition, text});
  }
  return (*answer)["result"];
}

Status Client::Initialize() {
  json params = {{"protocolVersion", kProtocol},
                 {"capabilities", json::object()},
                 {"clientInfo", {{"name", "asya-cli"}, {"version", "0.1.0"}}}};
  ASYA_ASSIGN_OR_RETURN(json result, Rpc("initialize", params, options_.request_timeout, {}));
  protocol_ = result.value("protocolVersion", std::string(kProtocol));
  ASYA_RETURN_IF_ERROR(
      Rpc("notifications/initialized", json(nullptr), options_.request_timeout, {}, true));
  return Ok();
}

Result<json> Client::ListTools() {
  json tools = json::array();
  json params = json(nullptr);
  for (int page = 0; page < 1000; ++page) {
    ASYA_ASSIGN_OR_RETURN(json result, Rpc("tools/list", params, options_.request_timeout, {}));
    if (result.contains("tools") && result["tools"].is_array()) {
      for (auto& t : result["tools"]) {
        tools.push_back(std::move(t));
      }
    }
    if (!result.contains("nextCursor") || !result["nextCursor"].is_string() ||
        result["nextCursor"].get<std::string>().empty()) {
      break;
    }
    params = {{"cursor", result["nextCursor"]}};
  }
  return tools;
}

Result<json> Client::CallTool(const std::string& name, const json& arguments, milliseconds timeout,
                              const std::function<void(const json&)>& on_progress) {
  json params = {{"name", name},
                 {"arguments", arguments},
                 {"_meta", {{"progressToken", "asya-cli-" + std::to_string(next_id_)}}}};
  return Rpc("tools/call", params, timeout, [&](const json& m) {
    if (m.value("method", "") == "notifications/progress" && on_progress) {
      on_progress(m.value("params", json::object()));
    }
  });
}

Result<json> Client::Envelope(const std::string& id) {
  const std::string path = "/envelopes/" + http::PercentEncode(id);
  ASYA_ASSIGN_OR_RETURN(http::Response r, http_.Get(path));
  if (r.status == 404) {
    return tl::unexpected(Error{ErrorCode::kNotFound, "envelope " + id + " not found"});
  }
  if (r.status / 100 != 2) {
    return tl::unexpected(HttpFailure("GET " + path, r));
  }
  json j = json::parse(r.body, nullptr, false);
  if (j.is_discarded()) {
    return tl::unexpected(
        Error{ErrorCode::kFailedPrecondition,
              "GET " + path + ": the answer is not JSON: " + r.body.substr(0, 200)});
  }
  return j;
}

Status Client::Stream(const std::string& id, milliseconds timeout,
                      const std::function<bool(const json&)>& on_update) {
  const std::string path = "/envelopes/" + http::PercentEncode(id) + "/stream";
  http::Request req;
  req.url = path;
  req.headers = {{"Accept", "text/event-stream"}};
  req.timeout = timeout;
  SseParser parser;
  auto on_line = [&](std::string_view line) -> bool {
    auto event = parser.Feed(line);
    if (!event || event->data.empty()) {
      return true;
    }
    json u = json::parse(event->data, nullptr, false);
    if (u.is_discarded()) {
      return true;
    }
    return on_update(u);
  };
  const auto start = std::chrono::steady_clock::now();
  auto r = http_.Stream(req, on_line);
  if (!r) {
    return tl::unexpected(
        Timed(Error{r.error().code, "GET " + path + ": " + r.error().message}, start, timeout));
  }
  if (r->status == 404) {
    return tl::unexpected(Error{ErrorCode::kNotFound, "envelope " + id + " not found"});
  }
  if (r->status / 100 != 2) {
    return tl::unexpected(HttpFailure("GET " + path, *r));
  }
  return Ok();
}

}  // namespace asya::cli::gateway
