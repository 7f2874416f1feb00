// Placeholder until the sqs transport lands.
#include "asya/transport/sqs.h"

namespace asya::transport {

Result<TransportPtr> MakeSqsTransport(const SqsSettings& /*settings*/) {
  return MakeError(ErrorCode::kUnimplemented, "the sqs transport is not built yet");
}

}  // namespace asya::transport
