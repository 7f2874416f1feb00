// Fuzzes the gateway's tools configuration (ParseToolsConfig: YAML from the operator's ConfigMap
// or `asya up`'s manifests), the argument checker every tools/call goes through (CheckArguments)
// and the MCP wire helpers that read a tool's schema and client headers (mcp_wire.h).
//
// Input: YAML config, optionally followed by a line "#--" and the arguments of a call (JSON text,
// checked against every tool's schema). Without the separator the arguments are the whole input.
//
// Invariants:
// - Parsing never crashes or throws; every error names the source.
// - Accepted tools have unique non-empty names, a non-empty route, a non-negative timeout, an
//   inputSchema that is a JSON object and metadata that is empty or a JSON object.
// - CheckArguments answers a JSON object or an error naming what is wrong; checking its answer
//   again gives the same answer (defaults filled in once are valid and stable).
// - DecodeHeaderValue of a value without the sentinel is the value itself.
#include <cstdint>
#include <set>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "asya/gateway/tools_config.h"
#include "fuzz_check.h"
#include "gateway/mcp_wire.h"

namespace {

void CheckTool(const asya::gateway::Tool& tool, std::string_view args) {
  using asya::gateway::mcp::Json;
  FUZZ_CHECK(!tool.name.empty());
  FUZZ_CHECK(!tool.route.empty());
  FUZZ_CHECK(tool.timeout_seconds >= 0);
  const Json schema = Json::parse(tool.input_schema_json, nullptr, false);
  FUZZ_CHECK(schema.is_object());
  if (!tool.metadata_json.empty()) {
    FUZZ_CHECK(Json::parse(tool.metadata_json, nullptr, false).is_object());
  }
  FUZZ_CHECK(asya::gateway::mcp::InputSchema(tool).is_object());
  (void)asya::gateway::mcp::ToolEntry(tool, true).dump();
  for (const auto& ph : asya::gateway::mcp::ParamHeaders(schema)) {
    FUZZ_CHECK(!ph.path.empty());
  }

  auto checked = asya::gateway::CheckArguments(tool.input_schema_json, args);
  if (checked) {
    const Json value = Json::parse(*checked, nullptr, false);
    FUZZ_CHECK(value.is_object());
    auto again = asya::gateway::CheckArguments(tool.input_schema_json, *checked);
    if (!again) {
      std::fprintf(stderr, "checked arguments fail a second check: %s\n%s\n",
                   again.error().message.c_str(), checked->c_str());
    }
    FUZZ_CHECK(again.has_value() && *again == *checked);
    for (const auto& [key, v] : value.items()) {
      (void)asya::gateway::mcp::HeaderForm(v);
    }
  } else {
    FUZZ_CHECK(!checked.error().message.empty());
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  std::string_view yaml = in;
  std::string_view args = in;
  if (size_t sep = in.find("\n#--\n"); sep != std::string_view::npos) {
    yaml = in.substr(0, sep);
    args = in.substr(sep + 5);
  }

  auto tools = asya::gateway::ParseToolsConfig(yaml, "fuzz.yaml");
  if (tools) {
    std::set<std::string> names;
    for (const auto& tool : *tools) {
      FUZZ_CHECK(names.insert(tool.name).second);
      CheckTool(tool, args);
    }
  } else {
    FUZZ_CHECK(tools.error().message.find("fuzz.yaml") != std::string::npos);
  }

  // Header values as a client sends them.
  auto decoded = asya::gateway::mcp::DecodeHeaderValue(args);
  if (args.rfind("=?base64?", 0) != 0) {
    FUZZ_CHECK(decoded.has_value() && *decoded == args);
  }
  return 0;
}
