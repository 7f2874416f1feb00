// Where the sidecar sends its gateway reports (reference-dataplane §8): progress events, fan-out
// child records and final statuses, each a POST of a JSON body to a path under the gateway URL.
// GatewayReporter (gateway.h) is the HTTP implementation; tests record the posts with a fake.
#pragma once

#include <string>
#include <string_view>

namespace asya::sidecar {

// kFinal is the final status of an envelope without a parent_id: the gateway records such an
// envelope before anything publishes it, so a 404 to it is definitive. kChildFinal is the final
// status of a fan-out child, whose record the parent's sidecar posts asynchronously (it may
// arrive after the child's final status).
enum class PostKind { kProgress, kFanout, kFinal, kChildFinal };

class GatewaySink {
 public:
  virtual ~GatewaySink() = default;
  // Hands over POST <gateway><path> with a JSON body. Thread-safe; must not block the message
  // path (the HTTP implementation only enqueues).
  virtual void Post(PostKind kind, std::string path, std::string body) = 0;
  // Returns once every progress post queued so far for envelope `id` has had its first try
  // (answered, refused or failed), or after the sink's own bound. The sidecar calls it before a
  // result leaves for happy-end: happy-end's final status must not overtake this actor's progress
  // at the gateway, which refuses progress once an envelope is final.
  virtual void Flush(std::string_view /*id*/) {}
};

}  // namespace asya::sidecar
