// Fuzzes what the sidecar does with a queue message and with a runtime's response frame. The
// input is read both ways: as a message body (envelope::Parse, then the router's first Decide,
// which validates route, hops and deadline before any runtime call), and as a response frame:
// envelope::ParseRuntimeResponse (with the sidecar's options) followed by router::Decide, as
// sidecar.cc CallRuntime/Settle do, for a few incoming envelopes (a middle actor, the last actor of
// a route, a retried message) under a policy with retries, and router::AfterPublishFailure for a
// permanent publish error.
//
// Invariants:
// - Parsing never crashes; a rejected response becomes a RuntimeCallError-style outcome.
// - Every message the router asks the sidecar to publish goes to a non-empty queue and is an
//   envelope that envelope::Parse accepts with a payload (nothing the runtime answers can make the
//   sidecar publish an unreadable message); the decision acks or nacks, never calls the runtime;
//   after a permanent publish failure nothing goes to the queue that failed.
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>
#include <string_view>

#include "asya/envelope/envelope.h"
#include "asya/router/router.h"
#include "fuzz_check.h"

namespace {

using asya::router::Action;
using asya::router::Decision;
using asya::router::Input;
using asya::router::Policy;
using asya::router::RuntimeOutcome;

constexpr std::string_view kIncoming[] = {
    R"({"id":"m-1","route":{"actors":["prep","work","post"],"current":1},"headers":{"trace":"t"},"payload":{"n":1}})",
    R"({"id":"m-2","parent_id":"p","route":{"actors":["prep","work"],"current":1,"metadata":{"k":"v"}},"payload":[1,2],"deadline":"2099-01-01T00:00:00Z"})",
    R"({"id":"m-3","route":{"actors":["work"],"current":0},"headers":{"x-asya-attempt":2,"x-asya-fanout":[3]},"payload":null})",
};

Policy MakePolicy() {
  Policy p;
  p.actor = "work";
  p.retry_max_attempts = 3;
  p.non_retryable = {"ValueError"};
  p.max_message_bytes = 1u << 20;
  return p;
}

// `unparsed_body`: the consumed message when it is not an envelope (its dead letter keeps it
// byte for byte, as DESIGN §4.8 wants); nullopt when it parsed.
void CheckDecision(const Decision& d, std::optional<std::string_view> unparsed_body = {}) {
  FUZZ_CHECK(d.action == Action::kAck || d.action == Action::kNack);
  for (const auto& p : d.publishes) {
    FUZZ_CHECK(!p.queue.empty());
    if (unparsed_body && p.type == asya::router::MessageType::kDeadLetter) {
      FUZZ_CHECK(p.body == *unparsed_body);
      continue;
    }
    auto env = asya::envelope::Parse(p.body);
    if (!env) {
      std::fprintf(stderr, "published body does not parse: %s\n%s\n", env.error().message.c_str(),
                   p.body.c_str());
    }
    FUZZ_CHECK(env.has_value());
    FUZZ_CHECK(env->has_payload);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  static const Policy policy = MakePolicy();

  // The input as a consumed queue message: the router's first decision.
  {
    auto env = asya::envelope::Parse(in, {.max_bytes = policy.max_message_bytes});
    Input input;
    input.body = in;
    input.envelope = env ? &*env : nullptr;
    const std::string error = env ? "" : env.error().message;
    input.parse_error = error;
    input.delivery_count = static_cast<int64_t>(size % 8);
    input.now = std::chrono::system_clock::time_point(std::chrono::seconds(1'700'000'000));
    const Decision first = asya::router::Decide(policy, input);
    if (first.action != Action::kCallRuntime) {
      CheckDecision(first, env ? std::nullopt : std::optional<std::string_view>(in));
    } else {
      FUZZ_CHECK(env.has_value() && first.publishes.empty());
    }
  }

  RuntimeOutcome outcome;
  auto items = asya::envelope::ParseRuntimeResponse(in, {.max_bytes = SIZE_MAX});
  if (items) {
    outcome.items = std::move(*items);
  } else {
    FUZZ_CHECK(!items.error().message.empty());
    outcome.kind = RuntimeOutcome::Kind::kCallError;
    outcome.error = "failed to parse runtime response: " + items.error().message;
  }

  for (std::string_view body : kIncoming) {
    auto env = asya::envelope::Parse(body);
    FUZZ_CHECK(env.has_value());
    Input input;
    input.body = body;
    input.envelope = &*env;
    input.delivery_count = 1;
    input.now = std::chrono::system_clock::time_point(std::chrono::seconds(1'700'000'000));
    input.outcome = &outcome;
    const Decision d = asya::router::Decide(policy, input);
    CheckDecision(d);
    if (!d.publishes.empty()) {
      const Decision after = asya::router::AfterPublishFailure(
          policy, input, d, 0, asya::Error{asya::ErrorCode::kInvalidArgument, "too large"},
          std::chrono::milliseconds(10));
      CheckDecision(after);
      for (const auto& p : after.publishes) {
        FUZZ_CHECK(p.queue != d.publishes[0].queue);  // never the queue that failed
      }
    }
  }
  return 0;
}
