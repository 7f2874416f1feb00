// Gateway reports of one message (reference-dataplane §8): progress events of regular actors,
// fan-out child records, final status of end actors. Builds the JSON bodies and hands them to
// the asynchronous GatewayReporter; a no-op without a gateway.
#pragma once

#include <chrono>
#include <cstddef>

#include "asya/envelope/envelope.h"
#include "asya/router/router.h"
#include "asya/sidecar/gateway.h"

namespace asya::sidecar {

class Report {
 public:
  Report(GatewayReporter* gateway, const router::Policy& policy, const envelope::Envelope* env,
         size_t body_size)
      : gateway_(gateway), policy_(policy), env_(env), body_size_(body_size) {}

  // Progress `received` and `processing` (regular actors).
  void BeforeCall();
  // Progress `completed` + fan-out children (regular actors), final status (end actors).
  void AfterCall(const router::RuntimeOutcome& outcome, const router::Decision& decision,
                 std::chrono::steady_clock::duration runtime_time);
  // The runtime is not called (a check failed first). Final status `failed` when an end actor
  // (happy-end or error-end) dead-letters the message, so the task does not stay "running" at
  // the gateway after the end actor gave up on it.
  void AfterPrecheck(const router::Decision& decision);

 private:
  GatewayReporter* gateway_;
  const router::Policy& policy_;
  const envelope::Envelope* env_;
  size_t body_size_;
};

}  // namespace asya::sidecar
