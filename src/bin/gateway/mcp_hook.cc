#include "bin/gateway/mcp_hook.h"

namespace asya::gateway {

// MERGE POINT: with the MCP layer (asya/gateway/mcp.h) this becomes
//   McpOptions o; o.task_ttl_ms = retention in ms; if (options.loopback) o.allowed_hosts = {...};
//   static McpHandler mcp(service, SystemClock(), o); return mcp.AsHandler();
Handler MakeMcpHandler(Service& /*service*/, const McpHookOptions& /*options*/) {
  return {};
}

}  // namespace asya::gateway
