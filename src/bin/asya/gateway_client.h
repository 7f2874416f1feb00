// The gateway client behind `asya list|show|call|status|stream` (reference-controlplane §8, the
// original `asya-mcp`): an MCP session over streamable HTTP (initialize, tools/list, tools/call),
// the REST status endpoint and the SSE stream of an envelope, plus the pure pieces the commands
// print with (tool YAML, --param typing against a tool's inputSchema, progress lines). No
// environment access here: gateway_cmd.cc resolves URL and token.
#pragma once

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "asya/base/result.h"
#include "asya/http/client.h"

namespace asya::cli::gateway {

// ---- arguments of `asya call TOOL ...` ----

// Builds the tool's arguments from what follows TOOL on the command line:
//   - nothing                      -> {}
//   - one JSON object ("-" = read from `stdin_text`)
//   - --name value | --name=value | --flag (true)   typed by inputSchema.properties[name].type:
//       string (as is), integer, number, boolean (true/false/yes/no/1/0), array / object (JSON
//       text; an array property may also be repeated, each value typed by `items`), null; a type
//       list tries each in order. Without a type (or without a schema) the original's guess:
//       true/false -> bool, a number with '.' -> float, an integer, else the string.
// A name the schema does not list is refused when the schema lists properties (naming the ones it
// takes), and so is a missing `required` one. Every error is kInvalidArgument with a message for
// the user (exit 2).
Result<nlohmann::json> ParseToolArguments(const std::vector<std::string>& args,
                                          const nlohmann::json& input_schema,
                                          const std::function<std::string()>& read_stdin = {});

// ---- what list / show print ----

// `asya list`: YAML (or JSON when `json`) of [{name, description, parameters: {p: {type,
// required}}}], sorted by name. `asya show`: one tool, with each parameter's description, default
// and options (enum) too.
std::string FormatToolList(const nlohmann::json& tools, bool json);
std::string FormatTool(const nlohmann::json& tool, bool json);
// The tool called `name` in a tools/list result, or nullopt.
std::optional<nlohmann::json> FindTool(const nlohmann::json& tools, std::string_view name);

// ---- progress ----

struct Progress {
  double percent = -1;  // 0..100, or < 0 when unknown
  std::string label;    // "actor: state" or a message
};
// From an SSE update of /envelopes/{id}/stream (EnvelopeUpdate) or an MCP notifications/progress
// params object.
Progress ProgressOfUpdate(const nlohmann::json& update);
Progress ProgressOfNotification(const nlohmann::json& params);
// "[#########...........]  45% prep: processing" fitted to `width` columns (a terminal).
std::string RenderBar(const Progress& p, int width);
// "45% prep: processing" (not a terminal: one plain line per change).
std::string RenderLine(const Progress& p);

// The envelope id of a pipeline that is still running: the original gateway's acknowledgement
// ({"envelope_id", "message", "status_url", ...} as text content) or asya-gateway's answer when a
// synchronous call outlives its bounded wait (isError with structuredContent {envelope_id,
// status_url}); "" when the result is the tool's final answer.
std::string AsyncEnvelopeId(const nlohmann::json& call_result);
// What `call` prints for a final tools/call result: structuredContent pretty-printed, else the text
// blocks (a text that is JSON is pretty-printed), else the content array as JSON.
std::string FormatCallResult(const nlohmann::json& call_result);
// The text of an isError result (its text blocks), for stderr.
std::string ErrorText(const nlohmann::json& call_result);

// ---- SSE ----

// Splits an event stream fed line by line (without '\n') into events.
class SseParser {
 public:
  struct Event {
    std::string event = "message";
    std::string data;
    std::string id;
  };
  // Returns the event a blank line completes, if any.
  std::optional<Event> Feed(std::string_view line);

 private:
  Event current_;
  bool has_data_ = false;
};

// ---- the client ----

struct ClientOptions {
  std::string url;    // gateway base URL, e.g. http://127.0.0.1:8089 (a trailing /mcp is dropped)
  std::string token;  // bearer token; empty = none
  std::chrono::milliseconds request_timeout{10'000};
};

// Normalises a base URL: trims a trailing '/' and a trailing "/mcp". kInvalidArgument when it is
// not http(s)://host[:port][/path].
Result<std::string> NormalizeBaseUrl(std::string_view url);

class Client {
 public:
  explicit Client(ClientOptions options);

  // MCP initialize (protocol 2025-06-18, or what the server answers: 2024-11-05 ... 2025-11-25)
  // + notifications/initialized. Keeps Mcp-Session-Id and the negotiated version.
  Status Initialize();
  [[nodiscard]] const std::string& protocol_version() const { return protocol_; }

  Result<nlohmann::json> ListTools();  // every page of tools/list
  // tools/call with a progress token; notifications/progress go to `on_progress`. Waits up to
  // `timeout` (kDeadlineExceeded after it). A JSON-RPC error is kFailedPrecondition with its
  // message.
  Result<nlohmann::json> CallTool(const std::string& name, const nlohmann::json& arguments,
                                  std::chrono::milliseconds timeout,
                                  const std::function<void(const nlohmann::json&)>& on_progress);

  // GET /envelopes/{id}: the envelope JSON; kNotFound for 404.
  Result<nlohmann::json> Envelope(const std::string& id);
  // GET /envelopes/{id}/stream: each update (the data of an `update` event) to `on_update` until
  // it returns false, the stream ends, or `timeout` (kDeadlineExceeded).
  Status Stream(const std::string& id, std::chrono::milliseconds timeout,
                const std::function<bool(const nlohmann::json&)>& on_update);

 private:
  // One JSON-RPC request (or notification when `id` is null) on POST /mcp. JSON or SSE answers.
  Result<nlohmann::json> Rpc(const std::string& method, const nlohmann::json& params,
                             std::chrono::milliseconds timeout,
                             const std::function<void(const nlohmann::json&)>& on_notification,
                             bool notification = false);
  [[nodiscard]] http::Headers McpHeaders() const;

  ClientOptions options_;
  http::Client http_;
  std::string session_;
  std::string protocol_;
  int64_t next_id_ = 1;
};

// True for a final envelope status (succeeded / failed).
bool IsFinalStatus(std::string_view status);

}  // namespace asya::cli::gateway
