#include "asya/router/router.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <utility>

#include "asya/base/duration.h"
#include "asya/base/json_text.h"
#include "asya/transport/transport.h"

namespace asya::router {
namespace {

using envelope::Envelope;
using envelope::RuntimeErrorInfo;
using transport::DlqName;
using transport::QueueName;

void RemoveHeader(Envelope& env, std::string_view key) {
  auto& h = env.headers;
  h.erase(std::remove_if(h.begin(), h.end(), [&](const auto& kv) { return kv.first == key; }),
          h.end());
}

int64_t Hops(const Envelope& env) {
  return std::max<int64_t>(0, env.GetHeaderInt(kHeaderHops).value_or(0));
}

int64_t Attempt(const Envelope& env) {
  return std::max<int64_t>(1, env.GetHeaderInt(kHeaderAttempt).value_or(1));
}

Decision Ack(std::string log) {
  Decision d;
  d.action = Action::kAck;
  d.log = std::move(log);
  return d;
}

// The details every error envelope carries: the runtime's own (type falling back to its error
// code, message to `error`), or for errors of the sidecar itself {type, message = error}.
RuntimeErrorInfo FilledDetails(const std::string& error, std::string_view type,
                               const RuntimeErrorInfo* details) {
  RuntimeErrorInfo out = details != nullptr ? *details : RuntimeErrorInfo{};
  if (out.type.empty()) {
    out.type = !out.code.empty() ? out.code : std::string(type);
  }
  if (out.message.empty()) {
    out.message = error;
  }
  return out;
}

// Publishes an error envelope to error-end and acks. `type` is details.type when `details` has
// none (error_type::*).
Decision ErrorEnd(const Policy& policy, const Input& in, std::string error, FailReason reason,
                  std::string_view type, const RuntimeErrorInfo* details = nullptr,
                  const Envelope* original_override = nullptr,
                  std::vector<std::pair<std::string, std::string>> extra_payload = {}) {
  const RuntimeErrorInfo filled = FilledDetails(error, type, details);
  envelope::ErrorEnvelopeInput e;
  e.original_body = in.body;
  e.original = original_override != nullptr ? original_override : in.envelope;
  e.error = error;
  e.details = &filled;
  e.error_end_actor = policy.error_end;
  e.extra_payload = std::move(extra_payload);

  Decision d;
  d.action = Action::kAck;
  d.failed_reason = reason;
  d.warn = true;
  d.log = "to error-end: " + error;
  Publish p;
  p.queue = QueueName(policy.error_end);
  p.body = envelope::MakeErrorEnvelope(e);
  p.type = MessageType::kErrorEnd;
  p.metric_destination = policy.error_end;
  d.publishes.push_back(std::move(p));
  return d;
}

// Publishes the message to this actor's dead-letter queue with the reason, then acks.
Decision DeadLetter(const Policy& policy, const Input& in, const std::string& reason,
                    FailReason metric_reason) {
  Publish p;
  p.queue = DlqName(policy.actor);
  p.metric_destination = p.queue;
  p.type = MessageType::kDeadLetter;
  p.transport_headers.emplace(std::string(kHeaderDlqReason), reason);
  p.transport_headers.emplace(std::string(kHeaderDeliveries), std::to_string(in.delivery_count));
  if (in.envelope != nullptr) {
    Envelope copy = *in.envelope;
    copy.SetHeaderString(kHeaderDlqReason, reason);
    copy.SetHeaderInt(kHeaderDeliveries, in.delivery_count);
    p.body = envelope::Serialize(copy);
  } else {
    p.body = std::string(in.body);
  }
  Decision d;
  d.action = Action::kAck;
  d.failed_reason = metric_reason;
  d.warn = true;
  d.log = "dead-lettered to " + p.queue + ": " + reason;
  d.publishes.push_back(std::move(p));
  return d;
}

// Input checks that fail before the runtime is called: error-end for regular actors, the
// dead-letter queue for end actors (a message never goes back to the end actor it failed in).
Decision Reject(const Policy& policy, const Input& in, std::string error, FailReason reason,
                std::string_view type, const Envelope* original_override = nullptr) {
  if (policy.is_end_actor) {
    return DeadLetter(policy, in, error, reason);
  }
  return ErrorEnd(policy, in, std::move(error), reason, type, nullptr, original_override);
}

Decision Precheck(const Policy& policy, const Input& in) {
  if (policy.max_deliveries > 0 && in.delivery_count > policy.max_deliveries) {
    return DeadLetter(policy, in,
                      "max deliveries exceeded: delivered " + std::to_string(in.delivery_count) +
                          " times (ASYA_MAX_DELIVERIES=" + std::to_string(policy.max_deliveries) +
                          ")",
                      FailReason::kDeadLettered);
  }
  if (in.body.size() > policy.max_message_bytes) {
    std::string error =
        "Message too large: " + std::to_string(in.body.size()) +
        " bytes exceeds ASYA_MAX_MESSAGE_BYTES=" + std::to_string(policy.max_message_bytes);
    if (in.envelope == nullptr || policy.is_end_actor) {
      return Reject(policy, in, std::move(error), FailReason::kValidation,
                    error_type::kMessageTooLarge);
    }
    // Keep id, route and headers so the failure stays traceable, but not the huge payload.
    Envelope stripped = *in.envelope;
    stripped.has_payload = false;
    stripped.payload_json = "null";
    return Reject(policy, in, std::move(error), FailReason::kValidation,
                  error_type::kMessageTooLarge, &stripped);
  }
  if (in.envelope == nullptr) {
    return Reject(policy, in, "Failed to parse message: " + std::string(in.parse_error),
                  FailReason::kParse, error_type::kParse);
  }
  const Envelope& env = *in.envelope;
  Decision call;
  call.action = Action::kCallRuntime;
  call.log = "call runtime";
  if (env.id.empty()) {
    // error-end records even an error envelope without an id (that of a message which was not
    // JSON): its runtime (asya-crew) stores it under a generated id rather than losing it to a DLQ.
    if (policy.is_end_actor && policy.actor == policy.error_end) {
      return call;
    }
    return Reject(policy, in, "Envelope missing required 'id' field", FailReason::kValidation,
                  error_type::kValidation);
  }
  if (policy.is_end_actor) {
    return call;
  }
  std::string_view actual = env.route.CurrentActor();
  if (actual != policy.actor) {
    return ErrorEnd(policy, in,
                    "Route mismatch: message routed to wrong actor (expected: " + policy.actor +
                        ", actual: " + std::string(actual) + ")",
                    FailReason::kRouteMismatch, error_type::kRouteMismatch);
  }
  if (Hops(env) >= policy.max_hops) {
    Decision d =
        ErrorEnd(policy, in, "hop limit exceeded", FailReason::kHopLimit, error_type::kHopLimit);
    d.log += " (" + std::to_string(Hops(env)) +
             " hops, ASYA_MAX_HOPS=" + std::to_string(policy.max_hops) + ")";
    return d;
  }
  if (env.deadline) {
    auto deadline = ParseRfc3339(*env.deadline);
    if (!deadline) {
      return ErrorEnd(policy, in,
                      "Invalid deadline '" + *env.deadline + "': " + deadline.error().message,
                      FailReason::kValidation, error_type::kValidation);
    }
    if (std::chrono::time_point_cast<std::chrono::microseconds>(in.now) > *deadline) {
      return ErrorEnd(policy, in, "deadline exceeded", FailReason::kDeadline,
                      error_type::kDeadline);
    }
  }
  return call;
}

// One failed attempt (runtime call error, timeout or error response) at a regular actor:
// retry (re-enqueue to our own queue with a delay) while attempts remain, else error-end.
// `type`: details.type when the runtime gave none (timeouts and call errors have no details).
Decision Failure(const Policy& policy, const Input& in, std::string error, std::string_view type,
                 const RuntimeErrorInfo* runtime_details, bool runtime_call_error) {
  const Envelope& env = *in.envelope;
  const RuntimeErrorInfo filled = FilledDetails(error, type, runtime_details);
  const RuntimeErrorInfo* details = &filled;
  int64_t attempt = Attempt(env);

  std::string entry = "{\"attempt\":" + std::to_string(attempt) + ",\"error\":";
  AppendJsonString(entry, error);
  if (details != nullptr) {
    if (!details->type.empty()) {
      entry += ",\"type\":";
      AppendJsonString(entry, details->type);
    }
    if (!details->message.empty()) {
      entry += ",\"message\":";
      AppendJsonString(entry, details->message);
    }
  }
  entry += '}';
  // Append to the history carried in the header (a raw JSON array); start afresh if malformed.
  std::string history;
  for (const auto& [key, raw] : env.headers) {
    if (key == kHeaderAttemptHistory && raw.size() >= 2 && raw.front() == '[' &&
        raw.back() == ']') {
      history = raw;
    }
  }
  if (history.size() > 2) {
    history.pop_back();
    history += ',' + entry + ']';
  } else {
    history = '[' + entry + ']';
  }

  bool non_retryable = false;
  if (details != nullptr) {
    non_retryable = details->code == "msg_parsing_error" ||
                    std::find(policy.non_retryable.begin(), policy.non_retryable.end(),
                              details->type) != policy.non_retryable.end();
  }

  if (!non_retryable && attempt < policy.retry_max_attempts) {
    Envelope copy = env;
    copy.SetHeaderInt(kHeaderAttempt, attempt + 1);
    copy.SetHeaderRaw(kHeaderAttemptHistory, history);
    Publish p;
    p.queue = QueueName(policy.actor);
    p.metric_destination = p.queue;
    p.type = MessageType::kRetry;
    p.delay = RetryDelay(policy, attempt, in.jitter);
    p.body = envelope::Serialize(copy);
    Decision d;
    d.action = Action::kAck;
    d.runtime_error = runtime_call_error;
    d.warn = true;
    d.log = "attempt " + std::to_string(attempt) + "/" + std::to_string(policy.retry_max_attempts) +
            " failed (" + error + "); retrying in " + FormatGoDuration(p.delay);
    d.publishes.push_back(std::move(p));
    return d;
  }

  Envelope original = env;
  RemoveHeader(original, kHeaderAttemptHistory);
  std::vector<std::pair<std::string, std::string>> extra;
  if (policy.retry_max_attempts > 1) {
    extra.emplace_back("attempts", history);
  }
  Decision d = ErrorEnd(policy, in, std::move(error), FailReason::kRuntime, type, details,
                        &original, std::move(extra));
  d.runtime_error = runtime_call_error;
  if (non_retryable && policy.retry_max_attempts > 1) {
    d.log += " (non-retryable)";
  }
  return d;
}

// Builds the outgoing envelope for one successful runtime item, without its payload (serialised
// from item.payload_json directly, so a large payload is copied once, into the output body).
Envelope Forward(const Envelope& in, const envelope::RuntimeItem& item, size_t index) {
  Envelope out;
  if (index == 0) {
    out.id = in.id;
    out.parent_id = in.parent_id;
  } else {
    out.id = in.id + "-" + std::to_string(index);
    out.parent_id = in.id;
  }
  out.has_route = item.has_route;
  out.route = item.route;
  out.has_headers = item.has_headers || in.has_headers;
  out.headers = item.has_headers ? item.headers : in.headers;
  out.has_payload = item.has_payload;
  out.payload_json.clear();
  out.deadline = in.deadline;
  return out;
}

// Records a fan-out into `n` results (kHeaderFanout): appended on element 0, removed from the
// others. A malformed record is replaced.
void RecordFanout(Envelope& env, size_t index, size_t n) {
  if (index != 0) {
    RemoveHeader(env, kHeaderFanout);
    return;
  }
  std::string record;
  for (const auto& [key, raw] : env.headers) {
    if (key == kHeaderFanout && raw.size() >= 2 && raw.front() == '[' && raw.back() == ']') {
      record = raw;
    }
  }
  if (record.size() > 2) {
    record.pop_back();
    record += ',' + std::to_string(n) + ']';
  } else {
    record = '[' + std::to_string(n) + ']';
  }
  env.has_headers = true;
  env.SetHeaderRaw(kHeaderFanout, record);
}

// Prepares an envelope that leaves this actor: per-actor attempt state removed, one more hop.
void LeaveActor(Envelope& env, int64_t hops) {
  RemoveHeader(env, kHeaderAttempt);
  RemoveHeader(env, kHeaderAttemptHistory);
  env.has_headers = true;
  env.SetHeaderInt(kHeaderHops, hops + 1);
}

Decision AfterRuntime(const Policy& policy, const Input& in) {
  const RuntimeOutcome& out = *in.outcome;
  if (in.envelope == nullptr) {  // not reachable through Precheck; settle it safely
    return ErrorEnd(policy, in, "Failed to parse message: " + std::string(in.parse_error),
                    FailReason::kParse, error_type::kParse);
  }
  const Envelope& env = *in.envelope;
  switch (out.kind) {
    case RuntimeOutcome::Kind::kTimeout:
      return Failure(policy, in,
                     "Runtime timeout exceeded after " + FormatGoDuration(policy.runtime_timeout),
                     error_type::kRuntimeTimeout, nullptr, true);
    case RuntimeOutcome::Kind::kCallError:
      return Failure(policy, in, out.error,
                     out.error.rfind("failed to parse runtime response", 0) == 0
                         ? error_type::kRuntimeResponse
                         : error_type::kRuntimeCall,
                     nullptr, true);
    case RuntimeOutcome::Kind::kResponse:
      break;
  }
  for (const auto& item : out.items) {
    if (item.error) {
      return Failure(policy, in, item.error->code, {}, &*item.error, false);
    }
  }
  const int64_t hops = Hops(env);
  Decision d;
  d.action = Action::kAck;
  if (out.items.empty()) {
    Envelope copy = env;
    LeaveActor(copy, hops);
    Publish p;
    p.queue = QueueName(policy.happy_end);
    p.metric_destination = policy.happy_end;
    p.type = MessageType::kHappyEnd;
    p.body = envelope::Serialize(copy);
    d.publishes.push_back(std::move(p));
    d.processed_status = Processed::kEmptyResponse;
    d.log = "empty response: original envelope to happy-end";
    return d;
  }
  // Large payloads are taken (in.take_payloads) only once every result is known to fit, so a
  // decision that does not route the results leaves the outcome as it was. Small ones are copied
  // (cheaper than building the envelope's text twice).
  constexpr size_t kTakePayloadBytes = 64u << 10;
  RuntimeOutcome* take = in.take_payloads == &out ? in.take_payloads : nullptr;
  std::vector<std::pair<size_t, Envelope>> taken;
  d.publishes.reserve(out.items.size());
  for (size_t i = 0; i < out.items.size(); ++i) {
    Envelope next = Forward(env, out.items[i], i);
    LeaveActor(next, hops);
    if (out.items.size() > 1) {
      RecordFanout(next, i, out.items.size());
    }
    const auto& actors = next.route.actors;
    const int64_t cur = next.route.current;
    Publish p;
    if (cur >= 0 && static_cast<size_t>(cur) < actors.size() && !actors[cur].empty()) {
      p.queue = QueueName(actors[cur]);
      p.type = MessageType::kRouting;
    } else {
      p.queue = QueueName(policy.happy_end);
      p.type = MessageType::kHappyEnd;
    }
    p.metric_destination = p.queue;
    size_t size = 0;
    if (take != nullptr && out.items[i].payload_json.size() >= kTakePayloadBytes) {
      size = envelope::SerializedSize(next, out.items[i].payload_json);
      taken.emplace_back(i, std::move(next));
    } else {
      p.body = envelope::SerializeWithPayload(next, out.items[i].payload_json);
      size = p.body.size();
    }
    if (size > policy.max_message_bytes) {
      // Outgoing messages obey the same bound as incoming ones; nothing has been published yet.
      return ErrorEnd(
          policy, in,
          "Result too large: result " + std::to_string(i) + " of " +
              std::to_string(out.items.size()) + " is " + std::to_string(size) +
              " bytes, exceeds ASYA_MAX_MESSAGE_BYTES=" + std::to_string(policy.max_message_bytes),
          FailReason::kRouting, error_type::kResultTooLarge);
    }
    d.publishes.push_back(std::move(p));
  }
  for (auto& [i, next] : taken) {
    d.publishes[i].body =
        envelope::SerializeIntoPayload(next, std::move(take->items[i].payload_json));
    take->items[i].payload_json.clear();
  }
  d.processed_status = Processed::kSuccess;
  d.log = "routed " + std::to_string(out.items.size()) + " result(s)";
  return d;
}

Decision AfterEndActor(const Policy& policy, const Input& in) {
  const RuntimeOutcome& out = *in.outcome;
  std::string error;
  switch (out.kind) {
    case RuntimeOutcome::Kind::kTimeout:
      error = "Runtime timeout exceeded after " + FormatGoDuration(policy.runtime_timeout);
      break;
    case RuntimeOutcome::Kind::kCallError:
      error = out.error;
      break;
    case RuntimeOutcome::Kind::kResponse:
      for (const auto& item : out.items) {
        if (item.error) {
          error = item.error->code + ": " + item.error->message;
          break;
        }
      }
      break;
  }
  if (error.empty()) {
    Decision d = Ack("end actor consumed the envelope");
    d.processed_status = Processed::kEndConsumed;
    return d;
  }
  // Requeue with backoff; the delivery count grows and eventually dead-letters the message.
  Decision d;
  d.action = Action::kNack;
  d.nack_delay = RetryDelay(policy, std::max<int64_t>(1, in.delivery_count), 0.5);
  d.failed_reason = FailReason::kRuntime;
  d.runtime_error = out.kind != RuntimeOutcome::Kind::kResponse;
  d.warn = true;
  d.log = "end actor failed (" + error + "); requeued in " + FormatGoDuration(d.nack_delay);
  return d;
}

}  // namespace

std::string_view MessageTypeName(MessageType type) {
  switch (type) {
    case MessageType::kRouting:
      return "routing";
    case MessageType::kHappyEnd:
      return "happy_end";
    case MessageType::kErrorEnd:
      return "error_end";
    case MessageType::kRetry:
      return "retry";
    case MessageType::kDeadLetter:
      return "dead_letter";
  }
  return "routing";
}

std::string_view ProcessedLabel(Processed status) {
  switch (status) {
    case Processed::kNone:
      return "";
    case Processed::kSuccess:
      return "success";
    case Processed::kEmptyResponse:
      return "empty_response";
    case Processed::kEndConsumed:
      return "end_consumed";
  }
  return "";
}

std::string_view FailReasonLabel(FailReason reason) {
  switch (reason) {
    case FailReason::kNone:
      return "";
    case FailReason::kParse:
      return "parse_error";
    case FailReason::kValidation:
      return "validation_error";
    case FailReason::kRouteMismatch:
      return "route_mismatch";
    case FailReason::kRuntime:
      return "runtime_error";
    case FailReason::kHopLimit:
      return "hop_limit_exceeded";
    case FailReason::kDeadline:
      return "deadline_exceeded";
    case FailReason::kDeadLettered:
      return "dead_lettered";
    case FailReason::kRouting:
      return "routing_error";
    case FailReason::kErrorQueueSend:
      return "error_queue_send_failed";
  }
  return "";
}

Millis RetryDelay(const Policy& policy, int64_t attempt, double jitter) {
  const double max_ms = static_cast<double>(policy.retry_max_backoff.count());
  const double exponent = static_cast<double>(std::clamp<int64_t>(attempt - 1, 0, 62));
  double ms =
      std::min(static_cast<double>(policy.retry_backoff.count()) * std::exp2(exponent), max_ms);
  ms *= 0.8 + 0.4 * std::clamp(jitter, 0.0, 1.0);
  ms = std::min(ms, max_ms);
  return Millis(static_cast<int64_t>(std::max(0.0, ms)));
}

Decision AfterPublishFailure(const Policy& policy, const Input& input, const Decision& decision,
                             size_t index, const Error& error, Millis nack_delay) {
  const Publish& failed = decision.publishes.at(index);
  const bool result = failed.type == MessageType::kRouting ||
                      failed.type == MessageType::kHappyEnd || failed.type == MessageType::kRetry;
  if (error.code == ErrorCode::kInvalidArgument && result && !policy.is_end_actor &&
      input.envelope != nullptr) {
    Decision d =
        ErrorEnd(policy, input, "failed to publish to " + failed.queue + ": " + error.message,
                 FailReason::kRouting, error_type::kPublish);
    d.log = "permanent publish error; " + d.log;
    return d;
  }
  Decision d;
  d.action = Action::kNack;
  d.nack_delay = nack_delay;
  d.failed_reason =
      failed.type == MessageType::kErrorEnd ? FailReason::kErrorQueueSend : FailReason::kRouting;
  d.warn = true;
  d.log = "publish to " + failed.queue + " failed (" + error.message + "); message requeued";
  return d;
}

Decision Decide(const Policy& policy, const Input& input) {
  if (input.outcome == nullptr) {
    return Precheck(policy, input);
  }
  return policy.is_end_actor ? AfterEndActor(policy, input) : AfterRuntime(policy, input);
}

}  // namespace asya::router
