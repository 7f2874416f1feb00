// Embedded transport: durable queues in one SQLite file (WAL), shared by many processes.
//
// Each process opens its own connection; receivers that find their queue empty block in poll()
// on a per-call FIFO under "<path>.wake/<queue>/" and publishers wake them after their commit,
// so idle consumers cost no CPU and wake within a millisecond (src/transport/sqlite/README.md).
#pragma once

#include <string>

#include "asya/transport/transport.h"

namespace asya::transport {

struct SqliteSettings {
  std::string path = ".asya/queues.db";  // ASYA_SQLITE_PATH
  // PRAGMA synchronous: "NORMAL" (default; a power loss may lose the last commits, a process crash
  // loses nothing) or "FULL" (fsync on every commit). See the README for measurements.
  std::string synchronous = "NORMAL";
  Millis busy_timeout{Millis(30'000)};  // how long a write waits for another process's lock
  // Longest a blocked Receive() sleeps without re-checking the database (guards against a lost
  // wake-up, e.g. when the wake-up directory is not writable).
  Millis safety_poll{Millis(1000)};
  Millis default_visibility{Millis(30'000)};  // used when ReceiveOptions.visibility <= 0
};

Result<TransportPtr> MakeSqliteTransport(const SqliteSettings& settings);

}  // namespace asya::transport
