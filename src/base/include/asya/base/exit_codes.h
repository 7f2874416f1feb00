// Exit codes that another process acts on: the `asya` commands (DESIGN §4 precise 12), the
// runtime's handler-timeout exit that `asya up` restarts at once (DESIGN §4.4), and the sidecar's.
#pragma once

namespace asya::exit_code {

// ---- `asya` commands (DESIGN §4 precise 12): one table for every command ----
inline constexpr int kOk = 0;              // succeeded
inline constexpr int kFailed = 1;          // the envelope or the operation failed
inline constexpr int kUsage = 2;           // usage or invalid input (flags, JSON, unknown names)
inline constexpr int kNothingArrived = 3;  // nothing (or not everything) arrived within the
                                           // timeout: `queue get --wait`, `send --wait`
// The table as every `asya` command's --help prints it (README "Exit codes" says the same).
inline constexpr char kHelpTable[] =
    "Exit codes: 0 succeeded, 1 failed, 2 usage or invalid input, 3 nothing arrived within the "
    "timeout.";

// ---- Runtimes (asya_runtime.py and the C++ SDK) ----
// A handler ran past ASYA_RUNTIME_TIMEOUT and the runtime exited; `asya up` restarts it at once
// instead of backing off.
inline constexpr int kRuntimeHandlerTimeout = 3;

// ---- asya-sidecar (docs/sidecar.md) ----
inline constexpr int kSidecarStopped = 0;      // graceful shutdown
inline constexpr int kSidecarUnavailable = 1;  // runtime never ready / transport did not start
inline constexpr int kSidecarBadConfig = 2;    // invalid configuration

}  // namespace asya::exit_code
