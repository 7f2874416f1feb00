// Embedded transport: durable queues in one SQLite file (WAL), shared by many processes.
#pragma once

#include <string>

#include "asya/transport/transport.h"

namespace asya::transport {

struct SqliteSettings {
  std::string path = ".asya/queues.db";  // ASYA_SQLITE_PATH
};

Result<TransportPtr> MakeSqliteTransport(const SqliteSettings& settings);

}  // namespace asya::transport
