#include "asya/gateway/tools_config.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <unordered_map>

#include <nlohmann/json.hpp>
#include <yaml-cpp/yaml.h>

#include "asya/base/json_text.h"
#include "asya/base/yaml_text.h"

namespace asya::gateway {
namespace {

using json = nlohmann::ordered_json;
namespace fs = std::filesystem;

constexpr int kBuiltinTimeout = 300;

tl::unexpected<Error> Bad(const std::string& source, const YAML::Node& at,
                          const std::string& what) {
  std::string where = source;
  if (at.IsDefined() && at.Mark().line >= 0) {
    where.push_back(':');
    where.append(std::to_string(at.Mark().line + 1));
  }
  where.append(": ");
  where.append(what);
  return MakeError(ErrorCode::kInvalidArgument, std::move(where));
}

// A YAML node as JSON: plain scalars typed (null, bool, int, float, else string), quoted
// scalars are strings.
json ToJson(const YAML::Node& n) {
  switch (n.Type()) {
    case YAML::NodeType::Null:
    case YAML::NodeType::Undefined:
      return nullptr;
    case YAML::NodeType::Sequence: {
      json a = json::array();
      for (const auto& e : n) {
        a.push_back(ToJson(e));
      }
      return a;
    }
    case YAML::NodeType::Map: {
      json o = json::object();
      for (const auto& kv : n) {
        o[kv.first.Scalar()] = ToJson(kv.second);
      }
      return o;
    }
    case YAML::NodeType::Scalar:
      break;
  }
  const std::string& s = n.Scalar();
  if (n.Tag() != "?") {
    return s;
  }
  if (s == "~" || s == "null" || s == "Null" || s == "NULL") {
    return nullptr;
  }
  if (s == "true" || s == "True" || s == "TRUE") {
    return true;
  }
  if (s == "false" || s == "False" || s == "FALSE") {
    return false;
  }
  if (!s.empty()) {
    char* end = nullptr;
    errno = 0;
    long long i = std::strtoll(s.c_str(), &end, 10);
    if (end && *end == '\0' && errno == 0) {
      return i;
    }
    end = nullptr;
    double d = std::strtod(s.c_str(), &end);
    if (end && *end == '\0' && std::isfinite(d)) {
      return d;
    }
  }
  return s;
}

Result<bool> Bool(const std::string& src, const YAML::Node& n, const std::string& key) {
  json v = ToJson(n);
  if (!v.is_boolean()) {
    return Bad(src, n, "'" + key + "' must be true or false");
  }
  return v.get<bool>();
}

Result<long long> Int(const std::string& src, const YAML::Node& n, const std::string& key) {
  json v = ToJson(n);
  if (!v.is_number_integer()) {
    return Bad(src, n, "'" + key + "' must be an integer");
  }
  return v.get<long long>();
}

Result<std::string> Str(const std::string& src, const YAML::Node& n, const std::string& key) {
  if (!n.IsScalar()) {
    return Bad(src, n, "'" + key + "' must be a string");
  }
  return n.Scalar();
}

Status CheckKeys(const std::string& src, const YAML::Node& n, const std::set<std::string>& allowed,
                 const std::string& where) {
  if (!n.IsMap()) {
    return Bad(src, n, where + " must be a mapping");
  }
  for (const auto& kv : n) {
    const std::string& k = kv.first.Scalar();
    if (allowed.count(k) == 0) {
      return Bad(src, kv.first, "unknown key '" + k + "' in " + where);
    }
  }
  return {};
}

const std::set<std::string> kTypes = {"string", "number", "integer", "boolean", "object", "array"};
const std::set<std::string> kSchemaExtras = {
    "title",     "format",           "pattern",          "minimum",
    "maximum",   "exclusiveMinimum", "exclusiveMaximum", "minLength",
    "maxLength", "minItems",         "maxItems",         "examples"};

std::string TypeOf(const json& v) {
  if (v.is_null())
    return "null";
  if (v.is_boolean())
    return "boolean";
  if (v.is_number_integer() || v.is_number_unsigned())
    return "integer";
  if (v.is_number())
    return "number";
  if (v.is_string())
    return "string";
  if (v.is_array())
    return "array";
  return "object";
}

bool HasType(const json& v, const std::string& type) {
  if (type == "number")
    return v.is_number();
  if (type == "integer") {
    if (v.is_number_integer() || v.is_number_unsigned())
      return true;
    if (v.is_number_float()) {
      double d = v.get<double>();
      return std::isfinite(d) && std::floor(d) == d;
    }
    return false;
  }
  return TypeOf(v) == type;
}

// One parameter → its JSON Schema. `path` names it in errors.
Result<json> ParamSchema(const std::string& src, const YAML::Node& n, const std::string& path,
                         bool* required) {
  std::set<std::string> allowed = {"type",    "description", "required",   "default",
                                   "options", "enum",        "properties", "items"};
  allowed.insert(kSchemaExtras.begin(), kSchemaExtras.end());
  ASYA_RETURN_IF_ERROR(CheckKeys(src, n, allowed, "parameter '" + path + "'"));
  if (!n["type"]) {
    return Bad(src, n, "parameter '" + path + "' has no type");
  }
  ASYA_ASSIGN_OR_RETURN(std::string type, Str(src, n["type"], "type"));
  if (kTypes.count(type) == 0) {
    return Bad(src, n["type"],
               "parameter '" + path + "' has invalid type '" + type +
                   "' (string, number, integer, boolean, object or array)");
  }
  json s = json::object();
  s["type"] = type;
  if (n["description"]) {
    ASYA_ASSIGN_OR_RETURN(std::string d, Str(src, n["description"], "description"));
    s["description"] = d;
  }
  if (required != nullptr) {
    *required = false;
    if (n["required"]) {
      ASYA_ASSIGN_OR_RETURN(*required, Bool(src, n["required"], "required"));
    }
  } else if (n["required"]) {
    ASYA_ASSIGN_OR_RETURN(bool r, Bool(src, n["required"], "required"));
    (void)r;  // items: `required` has no meaning; accepted for compatibility
  }
  if (n["options"] && n["enum"]) {
    return Bad(src, n["enum"], "parameter '" + path + "': give either options or enum");
  }
  const YAML::Node opts = n["options"] ? n["options"] : n["enum"];
  if (opts) {
    if (!opts.IsSequence() || opts.size() == 0) {
      return Bad(src, opts, "parameter '" + path + "': options must be a non-empty list");
    }
    json e = json::array();
    for (const auto& o : opts) {
      json v = ToJson(o);
      if (type == "string" && !v.is_string()) {
        v = o.Scalar();  // `options: [1, 2]` on a string parameter means the strings
      }
      if (!HasType(v, type)) {
        return Bad(src, o, "parameter '" + path + "': option " + v.dump() + " is not a " + type);
      }
      e.push_back(v);
    }
    s["enum"] = e;
  }
  for (const auto& k : kSchemaExtras) {
    if (n[k]) {
      s[k] = ToJson(n[k]);
    }
  }
  if (n["properties"]) {
    if (type != "object") {
      return Bad(src, n["properties"], "parameter '" + path + "': properties need type object");
    }
    const YAML::Node props = n["properties"];
    if (!props.IsMap()) {
      return Bad(src, props, "parameter '" + path + "': properties must be a mapping");
    }
    json p = json::object();
    json req = json::array();
    for (const auto& kv : props) {
      bool r = false;
      const std::string name = kv.first.Scalar();
      ASYA_ASSIGN_OR_RETURN(json sub, ParamSchema(src, kv.second, path + "." + name, &r));
      p[name] = sub;
      if (r) {
        req.push_back(name);
      }
    }
    s["properties"] = p;
    if (!req.empty()) {
      s["required"] = req;
    }
  }
  if (n["items"]) {
    if (type != "array") {
      return Bad(src, n["items"], "parameter '" + path + "': items need type array");
    }
    ASYA_ASSIGN_OR_RETURN(json it, ParamSchema(src, n["items"], path + "[]", nullptr));
    s["items"] = it;
  }
  if (n["default"]) {
    json d = ToJson(n["default"]);
    if (type == "string" && !d.is_string() && n["default"].IsScalar()) {
      d = n["default"].Scalar();
    }
    if (!HasType(d, type)) {
      return Bad(src, n["default"],
                 "parameter '" + path + "': default " + d.dump() + " is not a " + type);
    }
    s["default"] = d;
  }
  return s;
}

struct RawTool {
  std::string source;
  YAML::Node node;
  Tool tool;
  std::optional<bool> progress;
  std::optional<int> timeout;
  std::vector<std::string> route_list;
  std::string route_template;
};

struct RawConfig {
  std::optional<bool> default_progress;
  std::optional<int> default_timeout;
  std::map<std::string, std::vector<std::string>> routes;
  std::vector<RawTool> tools;
  bool saw_tools = false;
};

Status ParseDocument(std::string_view yaml, const std::string& src, RawConfig& cfg) {
  if (auto problem = YamlTextProblem(yaml)) {  // before yaml-cpp: it passes bad bytes through
    return MakeError(ErrorCode::kInvalidArgument, src + ":" + *problem);
  }
  YAML::Node root;
  try {
    root = YAML::Load(std::string(yaml));
  } catch (const YAML::Exception& e) {
    return MakeError(ErrorCode::kInvalidArgument,
                     src + ":" + std::to_string(e.mark.line + 1) + ": invalid YAML: " + e.msg);
  }
  if (auto problem = YamlExpansionProblem(root)) {
    return MakeError(ErrorCode::kInvalidArgument,
                     src + ": invalid YAML: " + *problem);
  }
  if (root.IsNull()) {
    return {};  // an empty file contributes nothing
  }
  ASYA_RETURN_IF_ERROR(CheckKeys(src, root, {"defaults", "routes", "tools"}, "the top level"));
  try {
    if (auto d = root["defaults"]) {
      if (!d.IsNull()) {
        ASYA_RETURN_IF_ERROR(CheckKeys(src, d, {"progress", "timeout"}, "defaults"));
        cfg.default_progress.reset();
        cfg.default_timeout.reset();
        if (d["progress"]) {
          ASYA_ASSIGN_OR_RETURN(bool p, Bool(src, d["progress"], "progress"));
          cfg.default_progress = p;
        }
        if (d["timeout"]) {
          ASYA_ASSIGN_OR_RETURN(long long t, Int(src, d["timeout"], "timeout"));
          if (t < 0 || t > 365LL * 86400) {
            return Bad(src, d["timeout"], "defaults.timeout must be between 0 and 31536000");
          }
          cfg.default_timeout = static_cast<int>(t);
        }
      }
    }
    if (auto r = root["routes"]) {
      if (!r.IsNull()) {
        if (!r.IsMap()) {
          return Bad(src, r, "routes must be a mapping of name to actor list");
        }
        for (const auto& kv : r) {
          const std::string name = kv.first.Scalar();
          if (cfg.routes.count(name) != 0) {
            return Bad(src, kv.first, "route '" + name + "' is defined twice");
          }
          if (!kv.second.IsSequence()) {
            return Bad(src, kv.second, "route '" + name + "' must be a list of actors");
          }
          std::vector<std::string> actors;
          for (const auto& a : kv.second) {
            ASYA_ASSIGN_OR_RETURN(std::string s, Str(src, a, "route actor"));
            actors.push_back(s);
          }
          cfg.routes[name] = actors;
        }
      }
    }
    if (auto t = root["tools"]) {
      cfg.saw_tools = true;
      if (t.IsNull()) {
        return {};
      }
      if (!t.IsSequence()) {
        return Bad(src, t, "tools must be a list");
      }
      for (const YAML::Node& tn : t) {
        ASYA_RETURN_IF_ERROR(
            CheckKeys(src, tn,
                      {"name", "description", "parameters", "input_schema", "inputSchema", "route",
                       "progress", "timeout", "metadata", "task_support"},
                      "a tool"));
        RawTool rt;
        rt.source = src;
        rt.node = tn;
        if (tn["name"]) {
          ASYA_ASSIGN_OR_RETURN(rt.tool.name, Str(src, tn["name"], "name"));
        }
        if (rt.tool.name.empty()) {
          return Bad(src, tn, "a tool has an empty name");
        }
        const std::string where = "tool '" + rt.tool.name + "'";
        if (tn["description"]) {
          ASYA_ASSIGN_OR_RETURN(rt.tool.description, Str(src, tn["description"], "description"));
        }
        if (tn["progress"]) {
          ASYA_ASSIGN_OR_RETURN(bool p, Bool(src, tn["progress"], "progress"));
          rt.progress = p;
        }
        if (tn["timeout"]) {
          ASYA_ASSIGN_OR_RETURN(long long to, Int(src, tn["timeout"], "timeout"));
          if (to < 0 || to > 365LL * 86400) {
            return Bad(src, tn["timeout"], where + ": timeout must be between 0 and 31536000");
          }
          rt.timeout = static_cast<int>(to);
        }
        if (tn["task_support"]) {
          ASYA_ASSIGN_OR_RETURN(std::string ts, Str(src, tn["task_support"], "task_support"));
          if (ts != "forbidden" && ts != "optional" && ts != "required") {
            return Bad(src, tn["task_support"],
                       where + ": task_support must be forbidden, optional or required");
          }
          rt.tool.task_support = ts;
        }
        if (auto m = tn["metadata"]) {
          if (!m.IsMap()) {
            return Bad(src, m, where + ": metadata must be a mapping of strings");
          }
          json md = json::object();
          for (const auto& kv : m) {
            if (!kv.second.IsScalar()) {
              return Bad(src, kv.second, where + ": metadata values must be strings");
            }
            md[kv.first.Scalar()] = kv.second.Scalar();
          }
          rt.tool.metadata_json = md.dump();
        }
        if (auto r = tn["route"]) {
          if (r.IsSequence()) {
            for (const auto& a : r) {
              ASYA_ASSIGN_OR_RETURN(std::string s, Str(src, a, "route actor"));
              rt.route_list.push_back(s);
            }
          } else if (r.IsScalar()) {
            rt.route_template = r.Scalar();
          } else {
            return Bad(src, r, where + ": route must be a list of actors or a route name");
          }
        }
        const YAML::Node params = tn["parameters"];
        const YAML::Node raw_schema = tn["input_schema"] ? tn["input_schema"] : tn["inputSchema"];
        if (params && raw_schema) {
          return Bad(src, raw_schema, where + ": give either parameters or input_schema");
        }
        json schema;
        if (raw_schema) {
          schema = ToJson(raw_schema);
          if (!schema.is_object()) {
            return Bad(src, raw_schema, where + ": input_schema must be a JSON Schema object");
          }
          if (!schema.contains("type")) {
            schema["type"] = "object";
          }
          if (schema["type"] != "object") {
            return Bad(src, raw_schema, where + ": input_schema must have type object");
          }
        } else {
          schema = json::object();
          schema["type"] = "object";
          json props = json::object();
          json req = json::array();
          if (params && !params.IsNull()) {
            if (!params.IsMap()) {
              return Bad(src, params, where + ": parameters must be a mapping");
            }
            for (const auto& kv : params) {
              bool r = false;
              const std::string pname = kv.first.Scalar();
              auto ps = ParamSchema(src, kv.second, pname, &r);
              if (!ps) {
                return MakeError(ErrorCode::kInvalidArgument,
                                 ps.error().message + " (" + where + ")");
              }
              props[pname] = *ps;
              if (r) {
                req.push_back(pname);
              }
            }
          }
          schema["properties"] = props;
          if (!req.empty()) {
            schema["required"] = req;
          }
          schema["additionalProperties"] = false;
        }
        rt.tool.input_schema_json = schema.dump();
        cfg.tools.push_back(std::move(rt));
      }
    }
  } catch (const YAML::Exception& e) {
    return MakeError(ErrorCode::kInvalidArgument,
                     src + ":" + std::to_string(e.mark.line + 1) + ": " + e.msg);
  }
  return {};
}

Result<std::vector<Tool>> Resolve(RawConfig& cfg, const std::string& source) {
  if (cfg.tools.empty()) {
    return MakeError(ErrorCode::kInvalidArgument, source + ": the tools config defines no tools");
  }
  std::set<std::string> names;
  std::vector<Tool> out;
  for (auto& rt : cfg.tools) {
    Tool t = rt.tool;
    const std::string where = "tool '" + t.name + "'";
    if (!names.insert(t.name).second) {
      return Bad(rt.source, rt.node, "duplicate tool name '" + t.name + "'");
    }
    if (!rt.route_template.empty()) {
      auto it = cfg.routes.find(rt.route_template);
      if (it == cfg.routes.end()) {
        return Bad(rt.source, rt.node["route"],
                   where + ": unknown route '" + rt.route_template + "'");
      }
      t.route = it->second;
    } else {
      t.route = rt.route_list;
    }
    if (t.route.empty()) {
      return Bad(rt.source, rt.node, where + ": route resolves to no actors");
    }
    for (const auto& a : t.route) {
      if (a.empty() || a.find_first_of(" /\t\n") != std::string::npos) {
        return Bad(rt.source, rt.node["route"], where + ": invalid actor name '" + a + "'");
      }
    }
    t.progress = rt.progress.value_or(cfg.default_progress.value_or(false));
    t.timeout_seconds = rt.timeout.value_or(cfg.default_timeout.value_or(kBuiltinTimeout));
    out.push_back(std::move(t));
  }
  std::sort(out.begin(), out.end(), [](const Tool& a, const Tool& b) { return a.name < b.name; });
  return out;
}

// ---- argument checking ----

std::string Quote(const std::string& path) {
  return "'" + path + "'";
}

Status Check(const json& schema, const json& v, const std::string& path) {
  if (!schema.is_object()) {
    return {};
  }
  const std::string name = path.empty() ? std::string("arguments") : "parameter " + Quote(path);
  if (auto t = schema.find("type"); t != schema.end()) {
    bool ok = false;
    std::string expected;
    if (t->is_string()) {
      expected = t->get<std::string>();
      ok = HasType(v, expected);
    } else if (t->is_array()) {
      for (const auto& e : *t) {
        if (e.is_string()) {
          expected += (expected.empty() ? "" : " or ") + e.get<std::string>();
          ok = ok || HasType(v, e.get<std::string>());
        }
      }
    } else {
      ok = true;
    }
    if (!ok) {
      return MakeError(ErrorCode::kInvalidArgument,
                       name + ": expected " + expected + ", got " + TypeOf(v));
    }
  }
  if (auto e = schema.find("enum"); e != schema.end() && e->is_array()) {
    if (std::find(e->begin(), e->end(), v) == e->end()) {
      return MakeError(ErrorCode::kInvalidArgument, name + ": must be one of " + e->dump());
    }
  }
  if (auto c = schema.find("const"); c != schema.end() && *c != v) {
    return MakeError(ErrorCode::kInvalidArgument, name + ": must be " + c->dump());
  }
  auto num = [&](const char* k) -> std::optional<double> {
    auto it = schema.find(k);
    if (it == schema.end() || !it->is_number())
      return std::nullopt;
    return it->get<double>();
  };
  if (v.is_number()) {
    double d = v.get<double>();
    if (auto m = num("minimum"); m && d < *m)
      return MakeError(ErrorCode::kInvalidArgument, name + ": must be >= " + json(*m).dump());
    if (auto m = num("maximum"); m && d > *m)
      return MakeError(ErrorCode::kInvalidArgument, name + ": must be <= " + json(*m).dump());
    if (auto m = num("exclusiveMinimum"); m && d <= *m)
      return MakeError(ErrorCode::kInvalidArgument, name + ": must be > " + json(*m).dump());
    if (auto m = num("exclusiveMaximum"); m && d >= *m)
      return MakeError(ErrorCode::kInvalidArgument, name + ": must be < " + json(*m).dump());
  }
  if (v.is_string()) {
    // Length in code points.
    const auto& s = v.get_ref<const std::string&>();
    double len = static_cast<double>(std::count_if(
        s.begin(), s.end(), [](char c) { return (static_cast<unsigned char>(c) & 0xC0) != 0x80; }));
    if (auto m = num("minLength"); m && len < *m)
      return MakeError(ErrorCode::kInvalidArgument, name + ": shorter than " + json(*m).dump());
    if (auto m = num("maxLength"); m && len > *m)
      return MakeError(ErrorCode::kInvalidArgument, name + ": longer than " + json(*m).dump());
  }
  if (v.is_array()) {
    double n = static_cast<double>(v.size());
    if (auto m = num("minItems"); m && n < *m)
      return MakeError(ErrorCode::kInvalidArgument,
                       name + ": fewer than " + json(*m).dump() + " items");
    if (auto m = num("maxItems"); m && n > *m)
      return MakeError(ErrorCode::kInvalidArgument,
                       name + ": more than " + json(*m).dump() + " items");
    if (auto it = schema.find("items"); it != schema.end() && it->is_object()) {
      for (size_t i = 0; i < v.size(); ++i) {
        ASYA_RETURN_IF_ERROR(Check(*it, v[i], path + "[" + std::to_string(i) + "]"));
      }
    }
  }
  if (v.is_object()) {
    const std::string prefix = path.empty() ? "" : path + ".";
    if (auto r = schema.find("required"); r != schema.end() && r->is_array()) {
      for (const auto& k : *r) {
        if (k.is_string() && !v.contains(k.get<std::string>())) {
          return MakeError(ErrorCode::kInvalidArgument,
                           "missing required parameter: " + prefix + k.get<std::string>());
        }
      }
    }
    const json* props = nullptr;
    if (auto p = schema.find("properties"); p != schema.end() && p->is_object()) {
      props = &*p;
    }
    auto extra = schema.find("additionalProperties");
    for (const auto& [k, sub] : v.items()) {
      if (props != nullptr && props->contains(k)) {
        ASYA_RETURN_IF_ERROR(Check((*props)[k], sub, prefix + k));
        continue;
      }
      if (extra != schema.end()) {
        if (extra->is_boolean() && !extra->get<bool>()) {
          return MakeError(ErrorCode::kInvalidArgument, "unknown parameter: " + prefix + k);
        }
        if (extra->is_object()) {
          ASYA_RETURN_IF_ERROR(Check(*extra, sub, prefix + k));
        }
      }
    }
  }
  return {};
}

}  // namespace

Result<std::vector<Tool>> ParseToolsConfig(std::string_view yaml, std::string_view source) {
  RawConfig cfg;
  ASYA_RETURN_IF_ERROR(ParseDocument(yaml, std::string(source), cfg));
  return Resolve(cfg, std::string(source));
}

Result<std::vector<Tool>> LoadToolsConfig(const std::string& path) {
  std::error_code ec;
  std::vector<std::string> files;
  if (fs::is_directory(path, ec)) {
    for (const auto& e : fs::directory_iterator(path, ec)) {
      auto ext = e.path().extension().string();
      if (e.is_regular_file() && (ext == ".yaml" || ext == ".yml")) {
        files.push_back(e.path().string());
      }
    }
    if (ec) {
      return MakeError(ErrorCode::kInvalidArgument, "cannot list " + path + ": " + ec.message());
    }
    std::sort(files.begin(), files.end());
    if (files.empty()) {
      return MakeError(ErrorCode::kInvalidArgument, path + ": no *.yaml or *.yml files");
    }
  } else if (fs::exists(path, ec)) {
    files.push_back(path);
  } else {
    return MakeError(ErrorCode::kInvalidArgument, "tools config " + path + " does not exist");
  }
  RawConfig cfg;
  for (const auto& f : files) {
    std::ifstream in(f, std::ios::binary);
    if (!in) {
      return MakeError(ErrorCode::kInvalidArgument, "cannot read " + f);
    }
    std::stringstream ss;
    ss << in.rdbuf();
    ASYA_RETURN_IF_ERROR(ParseDocument(ss.str(), f, cfg));
  }
  return Resolve(cfg, path);
}

Result<std::string> CheckArguments(std::string_view schema_json, std::string_view arguments_json) {
  // A tool's schema is the same text on every call: each thread keeps the parsed form of the
  // schemas it has seen (a few tools; dropped wholesale past a bound).
  thread_local std::unordered_map<std::string, json> parsed_schemas;
  auto cached = parsed_schemas.find(std::string(schema_json));
  if (cached == parsed_schemas.end()) {
    json parsed = json::parse(schema_json, nullptr, false);
    if (parsed.is_discarded()) {
      return MakeError(ErrorCode::kInternal, "tool input schema is not JSON");
    }
    if (parsed_schemas.size() >= 256) {
      parsed_schemas.clear();
    }
    cached = parsed_schemas.emplace(std::string(schema_json), std::move(parsed)).first;
  }
  const json& schema = cached->second;
  json args;
  if (arguments_json.find_first_not_of(" \t\r\n") == std::string_view::npos) {
    args = json::object();
  } else {
    args = json::parse(arguments_json, nullptr, false);
    if (args.is_discarded()) {
      return MakeError(ErrorCode::kInvalidArgument, "arguments are not valid JSON");
    }
  }
  if (args.is_null()) {
    args = json::object();
  }
  if (!args.is_object()) {
    return MakeError(ErrorCode::kInvalidArgument, "arguments must be a JSON object");
  }
  bool filled = false;
  if (auto p = schema.find("properties"); p != schema.end() && p->is_object()) {
    for (const auto& [k, sub] : p->items()) {
      if (!args.contains(k) && sub.is_object() && sub.contains("default")) {
        args[k] = sub["default"];
        filled = true;
      }
    }
  }
  ASYA_RETURN_IF_ERROR(Check(schema, args, ""));
  if (!filled && args.size() > 0) {
    return std::string(arguments_json);  // verbatim
  }
  return args.dump(-1, ' ', false, json::error_handler_t::replace);
}

}  // namespace asya::gateway
