// JSON views of the store's records, as the original gateway serves them (reference-controlplane
// §7.6 and §7.7), shared by REST and MCP.
#pragma once

#include <string>

#include "asya/store/store.h"

namespace asya::gateway {

// "pending", "running", "succeeded", "failed", "cancelled", "unknown".
const char* StatusText(store::Status status);

// GET /envelopes/{id}: id, parent_id?, status, route{actors,current,metadata?}, payload,
// result?, error?, timeout_seconds?, deadline? (absent when none), progress_percent,
// current_actor_idx, current_actor_name?, message?, actors_completed, total_actors, tool?,
// created_at, updated_at.
std::string EnvelopeJson(const store::Envelope& e);

// One SSE `update` event's data: id (the envelope's), status, message?, result?, error?,
// progress_percent?, actor?, actors?, current_actor_idx?, envelope_state?, timestamp (RFC 3339
// with nanoseconds).
std::string UpdateJson(const store::Update& u);

// "id: <seq>\nevent: update\ndata: <UpdateJson>\n\n" (no id line when seq is 0).
std::string UpdateEvent(const store::Update& u);

}  // namespace asya::gateway
