// Gateway reports of one message (reference-dataplane §8): progress events of regular actors,
// fan-out child records, final status of end actors. Builds the JSON bodies and hands them to a
// GatewaySink (the asynchronous GatewayReporter in production); a no-op without a gateway.
// Timestamps come from the given clock.
#pragma once

#include <chrono>
#include <cstddef>

#include "asya/base/clock.h"
#include "asya/router/router.h"
#include "asya/sidecar/gateway_sink.h"
#include "sidecar/parsed_input.h"

namespace asya::sidecar {

class Report {
 public:
  Report(GatewaySink* gateway, const router::Policy& policy, ParsedInput& input, Clock& clock)
      : gateway_(gateway), policy_(policy), input_(input), clock_(clock) {}

  // Progress `received` and `processing` (regular actors).
  void BeforeCall();
  // Progress `completed` + fan-out children (regular actors), final status (end actors). When
  // the result goes to happy-end, waits (GatewaySink::Flush) until the progress is out.
  void AfterCall(const router::RuntimeOutcome& outcome, const router::Decision& decision,
                 std::chrono::steady_clock::duration runtime_time);
  // Whether AfterCall() with `decision` waits for the gateway (GatewaySink::Flush).
  [[nodiscard]] bool AfterCallWaits(const router::Decision& decision) const;
  // The runtime is not called (a check failed first). Final status `failed` when an end actor
  // (happy-end or error-end) dead-letters the message, so the task does not stay "running" at
  // the gateway after the end actor gave up on it.
  void AfterPrecheck(const router::Decision& decision);

 private:
  [[nodiscard]] std::string Timestamp() const;

  GatewaySink* gateway_;
  const router::Policy& policy_;
  ParsedInput& input_;
  Clock& clock_;
};

}  // namespace asya::sidecar
