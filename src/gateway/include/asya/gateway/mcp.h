// MCP over streamable HTTP (`/mcp`): a Handler over the gateway's Service.
//
// One endpoint serves every revision a client may speak:
//   - 2026-07-28 (modern, stateless): each POST carries its protocol version and client
//     capabilities in `params._meta` and the `MCP-Protocol-Version`, `Mcp-Method` and `Mcp-Name`
//     headers, which must match the body (400, -32020 HeaderMismatch); an unsupported version is
//     400, -32022 with the supported list; `server/discover`; results carry `resultType` and the
//     list/read results caching hints (`ttlMs`, `cacheScope`); GET and DELETE are 405. With the
//     Tasks extension (`io.modelcontextprotocol/tasks` in the request's client capabilities) a
//     tool call answers a durable CreateTaskResult whose task id is the envelope id, served by
//     `tasks/get`, `tasks/update` and `tasks/cancel`.
//   - 2025-11-25, 2025-06-18, 2025-03-26, 2024-11-05 (legacy, session based): `initialize`
//     negotiates the version and issues `Mcp-Session-Id`; later requests must carry a live session
//     id (400 without, 404 for an unknown or terminated one); DELETE ends the session; GET opens
//     the session's notification stream; JSON-RPC batches where the revision allows them.
// A request with the era's markers of neither kind is served as legacy (a client older than
// 2025-06-18 sends no version header).
//
// A tool call without a task waits for its pipeline (Subscribe, then Get; bounded by the tool's
// timeout and McpOptions::max_sync_wait) and answers a CallToolResult; when the client sent a
// progress token and accepts `text/event-stream`, the answer is an SSE stream that carries
// `notifications/progress` from the envelope's updates before the result. The handler never
// blocks the calling (I/O) thread. Legacy sessions live in the store (Service::OpenSession), so
// any replica serves any request of either era; only a session's GET notification stream belongs
// to the replica that holds its connection.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "asya/base/clock.h"
#include "asya/gateway/http.h"
#include "asya/gateway/service.h"

namespace asya::gateway {

struct McpOptions {
  std::string server_name = "asya-gateway";
  std::string server_version = "0.1.0";
  std::string instructions;  // optional `instructions` for initialize/server/discover
  // Upper bound of a synchronous tool call's wait (the tool's own timeout, plus a grace period
  // for the store's deadline to finish the envelope, bounds it first).
  std::chrono::milliseconds max_sync_wait{std::chrono::minutes(10)};
  // Grace added to the tool's timeout before a synchronous wait gives up on its own.
  std::chrono::milliseconds sync_grace{std::chrono::seconds(5)};
  // Advertised on tasks (`ttlMs`): how long a finished task stays readable (the store's
  // retention). 0 or less: unlimited (null).
  std::int64_t task_ttl_ms = 24LL * 3600 * 1000;
  std::int64_t task_poll_interval_ms = 500;
  // Caching hints on tools/list, prompts/list, resources/list, resources/templates/list,
  // server/discover (public) and resources/read (private).
  std::int64_t list_ttl_ms = 60'000;
  // DNS-rebinding protection: when non-empty, requests whose Host (without port) is not in this
  // list, or whose Origin names another host, get 403. The gateway sets {"localhost",
  // "127.0.0.1", "[::1]", "::1"} when it is bound to loopback.
  std::vector<std::string> allowed_hosts;
  // How often notification streams (GET) of this replica are checked against the store, so a
  // stream whose session was ended on another replica, or expired, is closed. 0: never.
  std::chrono::milliseconds session_check_interval{std::chrono::seconds(30)};
};

class McpHandler {
 public:
  McpHandler(Service& service, Clock& clock, McpOptions options = {});
  ~McpHandler();
  McpHandler(const McpHandler&) = delete;
  McpHandler& operator=(const McpHandler&) = delete;

  // Serves one request to the MCP endpoint (any method; GET/DELETE/POST as above, 405 else).
  void Handle(Request request, Responder responder);
  // A Handler bound to this object (which must outlive the server's use of it).
  Handler AsHandler();

  class Impl;

 private:
  std::shared_ptr<Impl> impl_;
};

}  // namespace asya::gateway
