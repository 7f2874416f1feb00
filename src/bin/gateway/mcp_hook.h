// Where asya-gateway routes `/mcp` and `/mcp/...` (the MCP layer, src/gateway/mcp*.cc, written
// separately). Until that layer is linked in, MakeMcpHandler returns an empty Handler and the
// REST handler answers /mcp with 404.
#pragma once

#include <chrono>

#include "asya/gateway/http.h"
#include "asya/gateway/service.h"

namespace asya::gateway {

struct McpHookOptions {
  bool loopback = true;               // the server listens on loopback only
  std::chrono::seconds retention{0};  // finished envelopes kept this long (task ttl)
};

// The handler for /mcp (must outlive the server), or an empty Handler when MCP is not built in.
Handler MakeMcpHandler(Service& service, const McpHookOptions& options);

}  // namespace asya::gateway
