// Placeholder until the sqlite transport lands.
#include "asya/transport/sqlite.h"

namespace asya::transport {

Result<TransportPtr> MakeSqliteTransport(const SqliteSettings& /*settings*/) {
  return MakeError(ErrorCode::kUnimplemented, "the sqlite transport is not built yet");
}

}  // namespace asya::transport
