// Where the sidecar sends its gateway reports (reference-dataplane §8): progress events, fan-out
// child records and final statuses, each a POST of a JSON body to a path under the gateway URL.
// GatewayReporter (gateway.h) is the HTTP implementation; tests record the posts with a fake.
#pragma once

#include <string>

namespace asya::sidecar {

enum class PostKind { kProgress, kFanout, kFinal };

class GatewaySink {
 public:
  virtual ~GatewaySink() = default;
  // Hands over POST <gateway><path> with a JSON body. Thread-safe; must not block the message
  // path (the HTTP implementation only enqueues).
  virtual void Post(PostKind kind, std::string path, std::string body) = 0;
};

}  // namespace asya::sidecar
