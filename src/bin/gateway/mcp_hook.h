// Where asya-gateway routes `/mcp` and `/mcp/...`: the MCP layer (asya/gateway/mcp.h,
// src/gateway/mcp*.cc) over the gateway's Service.
#pragma once

#include <chrono>

#include "asya/gateway/http.h"
#include "asya/gateway/service.h"

namespace asya::gateway {

struct McpHookOptions {
  bool loopback = true;               // the server listens on loopback only
  std::chrono::seconds retention{0};  // finished envelopes kept this long (task ttl)
};

// The handler for /mcp; it owns the MCP layer (destroy it before `service`).
Handler MakeMcpHandler(Service& service, const McpHookOptions& options);

}  // namespace asya::gateway
