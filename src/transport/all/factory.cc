#include "asya/transport/factory.h"

#include "asya/base/transport_kinds.h"

namespace asya::transport {

Result<TransportPtr> MakeTransport(const TransportSettings& settings) {
  if (settings.kind == transport_kind::kSqlite) {
    return MakeSqliteTransport(settings.sqlite);
  }
  if (settings.kind == transport_kind::kRabbitmq) {
    return MakeRabbitMqTransport(settings.rabbitmq);
  }
  if (settings.kind == transport_kind::kSqs) {
    return MakeSqsTransport(settings.sqs);
  }
  return MakeError(ErrorCode::kInvalidArgument,
                   "ASYA_TRANSPORT='" + settings.kind + "' is not one of sqlite|rabbitmq|sqs");
}

}  // namespace asya::transport
