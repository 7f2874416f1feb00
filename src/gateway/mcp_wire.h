// MCP wire helpers without I/O: protocol versions, JSON-RPC messages, header value decoding, and
// the mapping of tools and envelopes to MCP results and tasks. Private to the gateway library
// (mcp.cc and the unit tests use it).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "asya/gateway/service.h"
#include "asya/store/store.h"

namespace asya::gateway::mcp {

using Json = nlohmann::ordered_json;

inline constexpr std::string_view kModernVersion = "2026-07-28";
inline constexpr std::string_view kTasksExtension = "io.modelcontextprotocol/tasks";
inline constexpr std::string_view kMetaProtocolVersion = "io.modelcontextprotocol/protocolVersion";
inline constexpr std::string_view kMetaClientCapabilities =
    "io.modelcontextprotocol/clientCapabilities";
inline constexpr std::string_view kMetaClientInfo = "io.modelcontextprotocol/clientInfo";
inline constexpr std::string_view kMetaServerInfo = "io.modelcontextprotocol/serverInfo";

// JSON-RPC and MCP error codes.
inline constexpr int kParseError = -32700;
inline constexpr int kInvalidRequest = -32600;
inline constexpr int kMethodNotFound = -32601;
inline constexpr int kInvalidParams = -32602;
inline constexpr int kInternalError = -32603;
inline constexpr int kSessionNotFound = -32001;
inline constexpr int kHeaderMismatch = -32020;
inline constexpr int kMissingClientCapability = -32021;
inline constexpr int kUnsupportedProtocolVersion = -32022;

// Session-based revisions, newest first.
const std::vector<std::string>& LegacyVersions();
// Every revision served, the modern one first (server/discover's `supportedVersions`).
const std::vector<std::string>& SupportedVersions();
bool IsLegacyVersion(std::string_view version);
// Revisions whose streamable HTTP accepts JSON-RPC batches (2024-11-05 and 2025-03-26).
bool AllowsBatch(std::string_view version);
// The version an `initialize` asking for `requested` gets: `requested` when served, else the
// newest legacy revision.
std::string NegotiateLegacyVersion(std::string_view requested);

// Compact JSON text of `value`. Strings with invalid UTF-8 (header values a client sent, echoed
// in an error) are written with U+FFFD instead of throwing (found by fuzz/gateway_http_fuzz:
// nlohmann's dump() threw type_error 316 and took the gateway down). Every answer uses this.
std::string Dump(const Json& value);

Json ErrorObject(int code, std::string_view message, Json data = nullptr);
Json ErrorResponse(const Json& id, int code, std::string_view message, Json data = nullptr);
Json ResultResponse(const Json& id, Json result);

// A header value that may use the `=?base64?...?=` sentinel: the decoded text, the value itself
// when it has no sentinel, nullopt for a sentinel with invalid Base64 (characters or padding).
std::optional<std::string> DecodeHeaderValue(std::string_view raw);

// The JSON object of a tool's input schema (`{"type":"object"}` when the tool has none or it is
// not a JSON object). Key order and every keyword are preserved.
Json InputSchema(const Tool& tool);
// The `tools/list` entry: name, description, inputSchema, annotations, and for 2025-11-25
// `execution.taskSupport` (`with_execution`).
Json ToolEntry(const Tool& tool, bool with_execution);

// `x-mcp-header` annotations of a schema: header name suffix -> property path (the chain of
// `properties` keys from the root).
struct ParamHeader {
  std::string header;             // the value of x-mcp-header
  std::vector<std::string> path;  // property names from the schema root
};
std::vector<ParamHeader> ParamHeaders(const Json& schema);
// The header form of an argument value (string as is, integer in decimal, boolean as
// true/false); nullopt for a value that cannot be mirrored (null, number with a fraction,
// object, array).
std::optional<std::string> HeaderForm(const Json& value);

// How an envelope ended, for the MCP result.
enum class Outcome {
  kRunning,    // not final
  kSucceeded,  // reached happy-end
  kToolError,  // reached error-end: the tool ran and failed (isError)
  kNotRun,     // the pipeline could not run: publish failed or the deadline passed
  kCancelled,
};
Outcome Classify(const store::Envelope& envelope);

// True when `value` is a non-empty array of MCP content blocks (text, image, audio, resource,
// resource_link) with their required fields.
bool IsContentBlocks(const Json& value);

// The CallToolResult of a final envelope: a succeeded envelope's result becomes
// `structuredContent` (objects) plus one text block, a list of content blocks (or a
// CallToolResult-shaped object) is passed as is; a tool error, a pipeline that could not run and a
// cancelled envelope become `isError: true` with the error text.
Json CallToolResultOf(const store::Envelope& envelope);
// The tool error result for `message` (`isError: true`, one text block).
Json ToolErrorResult(std::string_view message);

struct TaskTiming {
  std::int64_t ttl_ms = 0;  // <= 0: null (unlimited)
  std::int64_t poll_interval_ms = 0;
};
// "working" | "completed" | "failed" | "cancelled".
std::string_view TaskStatus(const store::Envelope& envelope);
// The Task fields of an envelope (taskId = envelope id). `detailed` adds the final payload:
// `result` (completed; a CallToolResult with resultType "complete") or `error` (failed; a
// JSON-RPC error object).
Json TaskOf(const store::Envelope& envelope, const TaskTiming& timing, bool detailed);

// ISO 8601 / RFC 3339 UTC with milliseconds.
std::string Iso8601(store::TimePoint t);

// The SSE frame of one JSON-RPC message ("event: message\ndata: ...\n\n").
std::string SseFrame(const Json& message);

}  // namespace asya::gateway::mcp
