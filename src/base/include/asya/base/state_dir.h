// Files of an `asya up` state directory that more than one program opens (the full layout:
// src/local/README.md). The CLI, the supervisor and every program's transport settings
// (ASYA_STATE_DIR) agree on these.
#pragma once

namespace asya::state_dir {

// --state-dir / ASYA_STATE_DIR when unset.
inline constexpr char kDefault[] = ".asya";
// The sqlite transport's database (ASYA_SQLITE_PATH when unset and ASYA_STATE_DIR is set).
inline constexpr char kQueuesFile[] = "queues.db";
// The base URL of the mesh's gateway (one line, e.g. "http://127.0.0.1:8089"), written by
// `asya up` when it starts the gateway; `asya list|show|call|status|stream` read it when neither
// --url nor ASYA_GATEWAY_URL is given.
inline constexpr char kGatewayUrlFile[] = "gateway.url";

}  // namespace asya::state_dir
