// Environment variables that cross a process boundary inside a mesh: `asya up` (the supervisor's
// launch specs, src/local/launch.cc) writes them and asya-sidecar, the runtimes (asya_runtime.py,
// the C++ SDK) and asya-crew read them. One spelling for writer and readers;
// tests/unit/local/names_test.cc checks that every variable a launch spec sets is read by the
// program it starts. (Every variable the sidecar reads: docs/sidecar.md.)
//
// Naming rule the test relies on: ASYA_SOME_NAME is `kSomeName`.
#pragma once

namespace asya::env_name {

// ---- Read by asya-sidecar ----
inline constexpr char kActorName[] = "ASYA_ACTOR_NAME";
inline constexpr char kTransport[] = "ASYA_TRANSPORT";  // a transport_kind:: value
inline constexpr char kSqlitePath[] = "ASYA_SQLITE_PATH";
inline constexpr char kIsEndActor[] = "ASYA_IS_END_ACTOR";
inline constexpr char kMetricsEnabled[] = "ASYA_METRICS_ENABLED";
inline constexpr char kMetricsAddr[] = "ASYA_METRICS_ADDR";
inline constexpr char kQueueAutoCreate[] = "ASYA_QUEUE_AUTO_CREATE";
inline constexpr char kSidecarConcurrency[] = "ASYA_SIDECAR_CONCURRENCY";
inline constexpr char kGatewayUrl[] = "ASYA_GATEWAY_URL";
inline constexpr char kGatewayToken[] = "ASYA_GATEWAY_TOKEN";  // also read by asya-gateway
// The client token `asya list|show|call|status|stream` send (one of the gateway's
// ASYA_GATEWAY_TOKENS); distinct from the callback token above.
inline constexpr char kGatewayClientToken[] = "ASYA_GATEWAY_CLIENT_TOKEN";

// ---- Read by the sidecar and the runtimes alike ----
inline constexpr char kSocketDir[] = "ASYA_SOCKET_DIR";
inline constexpr char kRuntimeTimeout[] = "ASYA_RUNTIME_TIMEOUT";  // DESIGN §4 precise 2

// ---- Read by the runtimes ----
inline constexpr char kRuntimeConcurrency[] = "ASYA_RUNTIME_CONCURRENCY";
inline constexpr char kEnableValidation[] = "ASYA_ENABLE_VALIDATION";
inline constexpr char kHandler[] = "ASYA_HANDLER";
inline constexpr char kHandlerMode[] = "ASYA_HANDLER_MODE";

// ---- Read by asya-crew ----
inline constexpr char kCrewDir[] = "ASYA_CREW_DIR";
inline constexpr char kCrewPrefix[] = "ASYA_CREW_PREFIX";

// ---- Read by the `asya` CLI and the transport settings of every program ----
inline constexpr char kStateDir[] = "ASYA_STATE_DIR";

}  // namespace asya::env_name
