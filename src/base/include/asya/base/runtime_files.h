// Names of the files a runtime and its sidecar share in the socket directory (ASYA_SOCKET_DIR),
// reference-dataplane §3.1. The one spelling for the C++ SDK, the sidecar, the runtime client,
// `asya up` and the tests; asya_runtime.py spells the same names (DEFAULT_SOCKET_NAME,
// READY_FILE_NAME) and tests/unit/local/names_test.cc checks that it does.
#pragma once

namespace asya::runtime_files {

// The runtime's Unix socket (the runtime's ASYA_SOCKET_NAME may override it; the sidecar always
// connects to this name).
inline constexpr char kSocketName[] = "asya-runtime.sock";
// Created by the runtime once it accepts connections; removed when it stops.
inline constexpr char kReadyName[] = "runtime-ready";
// Written by a supervisor that reaped the runtime (`asya up`): how it ended, "exit 1" or
// "signal 9 (SIGKILL)"; removed before the runtime starts again. The sidecar puts it into the
// error of the message the runtime was processing.
inline constexpr char kExitName[] = "runtime-exit";
// ASYA_SOCKET_DIR when unset (a pod's shared emptyDir).
inline constexpr char kDefaultSocketDir[] = "/var/run/asya";

}  // namespace asya::runtime_files
