#include "asya/transport/factory.h"

namespace asya::transport {

Result<TransportPtr> MakeTransport(const TransportSettings& settings) {
  if (settings.kind == "sqlite") {
    return MakeSqliteTransport(settings.sqlite);
  }
  if (settings.kind == "rabbitmq") {
    return MakeRabbitMqTransport(settings.rabbitmq);
  }
  if (settings.kind == "sqs") {
    return MakeSqsTransport(settings.sqs);
  }
  return MakeError(ErrorCode::kInvalidArgument,
                   "ASYA_TRANSPORT='" + settings.kind + "' is not one of sqlite|rabbitmq|sqs");
}

}  // namespace asya::transport
