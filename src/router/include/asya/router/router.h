// The routing decision: what happens to one consumed message.
//
// Pure: no I/O, no clock, no randomness (the caller passes `now` and a jitter sample). The sidecar
// calls Decide() twice per message: first without a runtime outcome (the router answers
// kCallRuntime, or settles the message without calling the runtime: dead-lettering, parse and
// validation errors, route mismatch, hop limit, deadline), then with the runtime's outcome.
//
// The sidecar executes a Decision in this order: publish every entry of `publishes` (in order,
// each confirmed by the broker), then Ack/Nack as `action` says. If any publish fails, the
// message is nacked instead (never acked after a failed publish, DESIGN §4.1).
//
// The full table is in docs/sidecar.md ("Routing outcomes").
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "asya/base/time_format.h"
#include "asya/envelope/envelope.h"

namespace asya::router {

using Millis = std::chrono::milliseconds;

// Envelope header names the mesh uses (DESIGN §4 "Names the mesh itself uses").
inline constexpr std::string_view kHeaderAttempt = "x-asya-attempt";
inline constexpr std::string_view kHeaderAttemptHistory = "x-asya-attempt-history";
inline constexpr std::string_view kHeaderHops = "x-asya-hops";
inline constexpr std::string_view kHeaderDlqReason = "x-asya-dlq-reason";
inline constexpr std::string_view kHeaderDeliveries = "x-asya-deliveries";
// Fan-out record: a JSON array of the sizes of every fan-out this envelope's id went through, in
// order. A fan-out into n > 1 results appends n to element 0 (which keeps the id) and removes the
// header from elements 1..n-1 (new ids "<id>-<i>", whose own fan-outs start a new record). So
// each fan-out is recorded exactly once, on the lineage that ends in the parent id's final
// envelope, and a reader of happy-end/error-end knows every id of the tree (`asya send --wait`).
inline constexpr std::string_view kHeaderFanout = "x-asya-fanout";

// details.type of the error envelopes the sidecar itself produces (every error envelope carries
// payload.error, payload.details.type and payload.details.message; a runtime error response
// keeps its own type, or its error code when it has none). Also matched by
// ASYA_RETRY_NON_RETRYABLE like exception class names.
namespace error_type {
inline constexpr std::string_view kParse = "ParseError";                 // body not an envelope
inline constexpr std::string_view kValidation = "ValidationError";       // missing id, bad deadline
inline constexpr std::string_view kMessageTooLarge = "MessageTooLarge";  // input too large
inline constexpr std::string_view kRouteMismatch = "RouteMismatch";
inline constexpr std::string_view kHopLimit = "HopLimitExceeded";
inline constexpr std::string_view kDeadline = "DeadlineExceeded";
inline constexpr std::string_view kRuntimeTimeout = "RuntimeTimeout";  // ASYA_RUNTIME_TIMEOUT
inline constexpr std::string_view kRuntimeCall = "RuntimeCallError";   // connect/send/read, EOF
inline constexpr std::string_view kRuntimeResponse = "InvalidRuntimeResponse";  // unparsable
inline constexpr std::string_view kResultTooLarge = "ResultTooLarge";
inline constexpr std::string_view kPublish = "PublishError";  // permanent publish failure
}  // namespace error_type

struct Policy {
  std::string actor;  // ASYA_ACTOR_NAME
  std::string happy_end = "happy-end";
  std::string error_end = "error-end";
  bool is_end_actor = false;
  int64_t max_hops = 1000;                  // ASYA_MAX_HOPS
  int64_t max_deliveries = 5;               // ASYA_MAX_DELIVERIES (0 = no limit)
  size_t max_message_bytes = 64u << 20;     // ASYA_MAX_MESSAGE_BYTES
  Millis runtime_timeout{Millis(300'000)};  // ASYA_RUNTIME_TIMEOUT (for the error text)
  int64_t retry_max_attempts = 1;       // ASYA_RETRY_MAX_ATTEMPTS (all attempts, first included)
  Millis retry_backoff{Millis(1'000)};  // ASYA_RETRY_BACKOFF
  Millis retry_max_backoff{Millis(300'000)};  // ASYA_RETRY_MAX_BACKOFF
  std::vector<std::string> non_retryable;     // ASYA_RETRY_NON_RETRYABLE (exception class names)
};

// What the runtime call produced.
struct RuntimeOutcome {
  enum class Kind {
    kResponse,   // a response frame was parsed into `items` (possibly empty)
    kCallError,  // connect/send/read failure, EOF, unparsable response: `error` holds the text
    kTimeout,    // ASYA_RUNTIME_TIMEOUT expired
  };
  Kind kind = Kind::kResponse;
  std::vector<envelope::RuntimeItem> items;
  std::string error;
};

struct Input {
  std::string_view body;                         // the queue message, exact bytes
  const envelope::Envelope* envelope = nullptr;  // parsed body; nullptr when parsing failed
  std::string_view parse_error;                  // decoder message when envelope == nullptr
  int64_t delivery_count = 1;                    // broker delivery count (0 = unknown)
  std::chrono::system_clock::time_point now;
  const RuntimeOutcome* outcome = nullptr;  // nullptr: the runtime has not been called
  double jitter = 0.5;                      // uniform sample in [0, 1) for the retry delay
  // Optional, the same object as `outcome`: a decision that routes the runtime's results
  // (kSuccess) moves each large result payload (>= 64 KiB) into its output body instead of
  // copying it (held once; see envelope::SerializeIntoPayload), leaving those payloads empty.
  // Any other decision leaves the outcome untouched, so the caller may decide again with it.
  RuntimeOutcome* take_payloads = nullptr;
};

// metrics label `message_type` of messages_sent_total.
enum class MessageType { kRouting, kHappyEnd, kErrorEnd, kRetry, kDeadLetter };
std::string_view MessageTypeName(MessageType type);

struct Publish {
  std::string queue;  // broker queue name, e.g. "asya-next"
  std::string body;
  Millis delay{0};
  std::map<std::string, std::string> transport_headers;
  MessageType type = MessageType::kRouting;
  std::string metric_destination;  // label `destination_queue` (reference-dataplane §7 quirk)
};

enum class Action { kCallRuntime, kAck, kNack };

// How a message was processed successfully: messages_processed_total{status}.
enum class Processed { kNone, kSuccess, kEmptyResponse, kEndConsumed };
// Why a message failed: messages_failed_total{reason}.
enum class FailReason {
  kNone,
  kParse,
  kValidation,
  kRouteMismatch,
  kRuntime,
  kHopLimit,
  kDeadline,
  kDeadLettered,
  kRouting,
  kErrorQueueSend,
};
// Metric label values (reference-dataplane §7); "" for kNone (= not counted).
std::string_view ProcessedLabel(Processed status);
std::string_view FailReasonLabel(FailReason reason);

struct Decision {
  Action action = Action::kAck;
  Millis nack_delay{0};
  std::vector<Publish> publishes;
  // Metrics (labels: ProcessedLabel / FailReasonLabel); kNone = not counted.
  FailReason failed_reason = FailReason::kNone;
  Processed processed_status = Processed::kNone;
  bool runtime_error = false;  // runtime_errors_total{error_type="execution_error"}
  bool warn = false;           // log `log` at WARN (otherwise DEBUG)
  std::string log;             // one-line summary, without payloads
};

Decision Decide(const Policy& policy, const Input& input);

// What to do when `decision.publishes[index]` failed with `error` (the publishes before it went
// out). A kInvalidArgument error is permanent: the transport rejected the message itself (e.g.
// larger than the broker allows, invalid queue name), so retrying would only loop until the
// message is dead-lettered. For a result (routing, happy-end, retry) of a regular actor it becomes
// an error envelope to error-end naming the error ("failed to publish to <queue>: <error>") and
// the input is acked (metric reason `routing_error`). Any other error, a failed error-end or
// dead-letter publish, and end actors: nack after `nack_delay` (reasons `routing_error` /
// `error_queue_send_failed`). The returned decision never publishes to the queue that failed.
Decision AfterPublishFailure(const Policy& policy, const Input& input, const Decision& decision,
                             size_t index, const Error& error, Millis nack_delay);

// Retry delay before attempt `attempt + 1`: min(backoff * 2^(attempt-1), max_backoff), scaled by
// a jitter factor in [0.8, 1.2) and capped at max_backoff.
Millis RetryDelay(const Policy& policy, int64_t attempt, double jitter);

}  // namespace asya::router
