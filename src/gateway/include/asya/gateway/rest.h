// The REST endpoints and SSE streams of the original gateway (reference-controlplane §7.2, §7.7),
// same paths, bodies and status codes, with these fixes:
//   - unknown envelope on /progress or /final → 404 (not 500); a report for a final envelope is
//     accepted (200) and changes nothing;
//   - POST /envelopes records the fan-out child only (never publishes it); a retried report of
//     the same child → 201 again; an id owned by another parent → 409;
//   - SSE: `id: <seq>` on every event, history then live without gaps or duplicates,
//     `Last-Event-ID` resumes, the final event reaches late subscribers too, the stream closes
//     after the final event; keepalive comments come from the server.
// Additions: GET /tools (the tool list with inputSchema), POST /envelopes/{id}/cancel.
// Error bodies are plain text. `/mcp` and `/mcp/...` go to the `mcp` handler (404 when none).
#pragma once

#include "asya/base/clock.h"
#include "asya/gateway/gateway_service.h"
#include "asya/gateway/http.h"
#include "asya/gateway/service.h"

namespace asya::gateway {

// `callbacks` may be null (then the callback endpoints answer 404). Both must outlive the
// handler and every stream it opened. `clock` decides whether a deadline has passed (/active).
Handler MakeRestHandler(Service& service, Callbacks* callbacks, Handler mcp,
                        Clock& clock = SystemClock());

}  // namespace asya::gateway
