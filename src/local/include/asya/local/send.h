// `asya send ROUTE PAYLOAD [--jsonl] [--wait]`, split into its steps: route parsing, payload
// reading and checking, envelope building (through the envelope library) and waiting for the
// crew's result file (crew_layout.h). The CLI (src/bin/asya/local_cmd.cc) only wires flags,
// the transport and output to these.
#pragma once

#include <istream>
#include <string>
#include <string_view>
#include <vector>

#include "asya/base/clock.h"
#include "asya/base/result.h"

namespace asya::local {

// "a,b, c" -> {"a","b","c"} (blanks around names trimmed). Every name must be a DNS-1123 label;
// else kInvalidArgument "ROUTE must be comma-separated actor names (DNS-1123 labels); 'X' is
// not one" (an empty name, as in "a,", is one too).
Result<std::vector<std::string>> ParseRoute(std::string_view route);

// The payload text PAYLOAD stands for: the argument itself, or, when it is "-", standard input
// (`in`); with --jsonl the argument is a file name ("-" = `in`). kInvalidArgument "cannot read
// FILE" when the file cannot be opened.
Result<std::string> ReadPayloadText(const std::string& arg, bool jsonl, std::istream& in);

// One payload, or (jsonl) one per non-blank line. Each must be valid JSON (RFC 8259, UTF-8), all
// are checked before anything is sent: kInvalidArgument "PAYLOAD is not valid JSON: ..." or
// (jsonl) "payload N is not valid JSON: ..."; none -> "no payloads given".
Result<std::vector<std::string>> SplitPayloads(const std::string& text, bool jsonl);

// A new envelope: {"id", "route": {"actors", "current": 0}, "headers": {"traceparent"}, "payload"}
// with the payload text embedded byte for byte (numbers and key order kept).
std::string BuildEnvelope(const std::string& id, const std::vector<std::string>& actors,
                          const std::string& traceparent, std::string_view payload_json);
std::string NewEnvelopeId();   // random UUID v4
std::string NewTraceparent();  // W3C "00-<32 hex trace id>-<16 hex span id>-01"

// ---- --wait ----

// The crew names its directories by UTC timestamp; results of a message sent at `sent_at` sit in
// directories whose names sort at or after this ("YYYY-MM-DDTHH:MM:SS", 2 s earlier for clock
// skew between processes).
std::string CrewStampFloor(Clock::WallTime sent_at);

// <dir>/<timestamp>/<actor>/<id>.json with timestamp >= `since`, or "" when there is none.
std::string FindCrewFile(const std::string& dir, const std::string& id, const std::string& since);

enum class SendOutcome { kSucceeded, kFailed, kTimedOut };
struct SendResult {
  SendOutcome outcome = SendOutcome::kTimedOut;
  std::string path;  // the crew's file (results/ or errors/)
};
// Polls <state>/results and <state>/errors for the envelope `id` until `timeout` passes on
// `clock`.
SendResult WaitForResult(const std::string& state_dir, const std::string& id,
                         const std::string& since, Clock::Duration timeout, Clock& clock);
// 0 succeeded, 1 failed, exit_code::kSendWaitTimedOut.
int ExitCodeOf(SendOutcome outcome);

}  // namespace asya::local
