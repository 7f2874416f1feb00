// Placeholder until the rabbitmq transport lands.
#include "asya/transport/rabbitmq.h"

namespace asya::transport {

Result<TransportPtr> MakeRabbitMqTransport(const RabbitMqSettings& /*settings*/) {
  return MakeError(ErrorCode::kUnimplemented, "the rabbitmq transport is not built yet");
}

}  // namespace asya::transport
