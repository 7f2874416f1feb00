#include "bin/gateway/mcp_hook.h"

#include <memory>

#include "asya/base/clock.h"
#include "asya/gateway/mcp.h"

namespace asya::gateway {

// The MCP layer on /mcp. Host/Origin checks are the Guard's (it also honours
// ASYA_GATEWAY_ALLOWED_ORIGINS), so McpOptions::allowed_hosts stays empty. The returned Handler
// owns the McpHandler: it lives as long as the last copy of the Handler (the server's), which
// main declares after the Service it uses.
Handler MakeMcpHandler(Service& service, const McpHookOptions& options) {
  McpOptions o;
  o.task_ttl_ms = std::chrono::duration_cast<std::chrono::milliseconds>(options.retention).count();
  auto mcp = std::make_shared<McpHandler>(service, SystemClock(), o);
  return [mcp](Request request, Responder responder) {
    mcp->Handle(std::move(request), std::move(responder));
  };
}

}  // namespace asya::gateway
