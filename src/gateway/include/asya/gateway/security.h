// Authentication and DNS-rebinding protection in front of every route (REST, SSE and MCP).
//
//   - `/health`: open.
//   - callback endpoints (POST /envelopes, POST /envelopes/{id}/progress, POST
//     /envelopes/{id}/final, POST /envelopes/batch — what sidecars and end actors send):
//     `Authorization: Bearer <callback_token>` when a callback token is set (ASYA_GATEWAY_TOKEN,
//     the token the sidecar already sends); open otherwise.
//   - everything else (tools, status, streams, MCP): `Authorization: Bearer <t>` with t one of
//     `client_tokens` when any is set; open otherwise (the program then binds to loopback only).
//   Failures: 401 with `WWW-Authenticate: Bearer realm="asya-gateway"` (plus
//   `error="invalid_token"` when a token was given). Tokens are compared in constant time and
//   never logged.
//   - Origin/Host: when `loopback` (the server listens on a loopback address), a request whose
//     Host is not localhost / 127.0.0.1 / [::1] (any port) is refused with 403, and so is an
//     `Origin` that is neither a loopback origin nor in `allowed_origins`. When not loopback, an
//     `Origin` is checked only if `allowed_origins` is non-empty.
#pragma once

#include <string>
#include <vector>

#include "asya/gateway/http.h"

namespace asya::gateway {

struct GuardOptions {
  std::vector<std::string> client_tokens;
  std::string callback_token;
  bool loopback = true;
  std::vector<std::string> allowed_origins;  // exact "scheme://host[:port]"
};

Handler Guard(GuardOptions options, Handler inner);

// True for the callback endpoints listed above.
bool IsCallbackRoute(const Request& request);

}  // namespace asya::gateway
