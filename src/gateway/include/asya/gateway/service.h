// The gateway's core, shared by the REST endpoints and MCP: the tool registry, starting a
// pipeline for a tool call, envelope status, history and live updates, cancellation.
//
// REST (rest.cc) and MCP (mcp_*.cc) are thin protocol layers over this interface; the real
// implementation (service.cc) sits on an asya::store::Store and a transport to publish with.
// Unit tests of the protocol layers use a fake Service.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "asya/base/result.h"
#include "asya/store/store.h"

namespace asya::gateway {

// The errors the gateway itself finishes an envelope with (reference-controlplane §7.5/§7.6): the
// pipeline never reached an actor, or its deadline passed first. MCP reports these as a task
// that `failed` (could not run), every other failure as a tool error.
inline constexpr std::string_view kSendFailedError = "failed to send envelope";
inline constexpr std::string_view kTimedOutError = "envelope timed out";
inline bool FailedBeforeRunning(std::string_view error) {
  return error.starts_with(kSendFailedError) || error.starts_with(kTimedOutError);
}

// A tool as configured (tools YAML, reference-controlplane §7.3) after defaults are applied.
struct Tool {
  std::string name;
  std::string description;
  std::string input_schema_json;   // the JSON Schema object advertised as `inputSchema`
  std::vector<std::string> route;  // resolved actors
  bool progress = false;
  int timeout_seconds = 300;  // 0: no deadline
  std::string metadata_json;  // JSON object or empty
  // MCP Tasks: "forbidden" (answer synchronously), "optional" or "required".
  std::string task_support = "optional";
};

// Live updates of one envelope. Dropping the handle (or Cancel) unsubscribes.
class Subscription {
 public:
  virtual ~Subscription() = default;
  virtual void Cancel() = 0;
};

class Service {
 public:
  virtual ~Service() = default;

  // Every tool, sorted by name.
  [[nodiscard]] virtual std::vector<Tool> Tools() const = 0;
  // nullptr when there is no such tool.
  [[nodiscard]] virtual const Tool* FindTool(std::string_view name) const = 0;

  // Validates `arguments_json` (a JSON object) against the tool's parameters — kInvalidArgument
  // with a message naming the parameter for a missing, unknown or wrong-typed argument; kNotFound
  // for an unknown tool — then stores a pending envelope and publishes it to the route's first
  // actor (asynchronously; a publish failure finishes the envelope as failed). Returns the
  // stored envelope.
  virtual Result<store::Envelope> CallTool(std::string_view name,
                                           std::string_view arguments_json) = 0;

  // kNotFound for an unknown id.
  virtual Result<store::Envelope> Get(std::string_view id) = 0;
  virtual Result<std::vector<store::Update>> History(std::string_view id,
                                                     std::int64_t after_seq) = 0;
  virtual Result<std::vector<std::string>> Children(std::string_view id) = 0;
  // Finishes a non-final envelope as cancelled (applied = false when it was already final).
  virtual Result<store::Transition> Cancel(std::string_view id, std::string_view reason) = 0;

  // Calls `on_update` (on any thread; must not block) for every update of envelope `id` appended
  // from now on, by this replica or another. Replaying history is the caller's job (History with
  // the last seq it has), which avoids both gaps and duplicates when done after subscribing.
  virtual std::unique_ptr<Subscription> Subscribe(
      std::string_view id, std::function<void(const store::Update&)> on_update) = 0;

  // Sessions of the session-based MCP revisions, shared by every replica (they live in the
  // store). OpenSession: kAlreadyExists for a taken id. FindSession: kNotFound for an unknown,
  // ended or expired session; it counts as use of the session (idle sessions expire).
  virtual Result<void> OpenSession(const store::McpSession& session) = 0;
  virtual Result<store::McpSession> FindSession(std::string_view id) = 0;
  // false when there was no such session.
  virtual Result<bool> EndSession(std::string_view id) = 0;
};

}  // namespace asya::gateway
