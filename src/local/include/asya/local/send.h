// `asya send ROUTE PAYLOAD [--jsonl] [--wait]`, split into its steps: route parsing, payload
// reading and checking, envelope building (through the envelope library) and waiting for the
// crew's result file (crew_layout.h). The CLI (src/bin/asya/local_cmd.cc) only wires flags,
// the transport and output to these.
#pragma once

#include <functional>
#include <istream>
#include <map>
#include <set>
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

// ---- --wait: every result of the envelope trees ----
//
// A fan-out keeps the id on element 0 and gives element i >= 1 the id "<id>-<i>" (nested:
// "X-1-2"); the sidecar records the size of every fan-out of an id in header x-asya-fanout
// (router.h kHeaderFanout) of the envelope that keeps the id. A tree is final when its root's
// final envelope (happy-end or error-end) is stored and, for every stored final envelope P with
// record [n1, n2, ...], the ids P-1 .. P-(max n - 1) are final too; and at least
// 1 + sum(n - 1) final envelopes were stored (ids of two fan-outs of one id coincide).

// One final envelope as the crew stored it.
struct FinalEnvelope {
  std::string root;  // the id that was sent
  std::string id;    // root, or a fan-out child of it (root-1, root-1-2, ...)
  bool succeeded = false;
  std::string path;             // <state>/results/... or <state>/errors/...
  std::string body;             // the file's JSON text
  std::vector<int64_t> fanout;  // its x-asya-fanout record (empty: none)
};

// The root among `roots` that `id` belongs to (id itself, or id with "-<n>" suffixes removed),
// or "" when none.
std::string RootOf(const std::string& id, const std::vector<std::string>& roots);

// Pure: is the tree of `root` final, given its final envelopes so far (see above)?
bool TreeComplete(const std::string& root, const std::vector<FinalEnvelope>& finals);

// Watches <state>/results and <state>/errors for the final envelopes of the trees of `roots`
// (crew directories named at or after `since`).
class ResultWatcher {
 public:
  ResultWatcher(std::string state_dir, std::string since, std::vector<std::string> roots);
  // Scans once; returns the final envelopes not returned before, oldest directory first.
  std::vector<FinalEnvelope> Poll();
  bool Complete(const std::string& root) const;
  size_t CompleteCount() const;  // roots whose tree is final
  bool AllComplete() const { return CompleteCount() == roots_.size(); }
  const std::vector<std::string>& roots() const { return roots_; }

 private:
  std::string state_dir_;
  std::string since_;
  std::vector<std::string> roots_;
  std::set<std::string> root_set_;
  std::set<std::string> seen_;                                // paths already returned
  std::map<std::string, std::vector<FinalEnvelope>> finals_;  // by root
  std::set<std::string> complete_;
};

enum class SendOutcome { kSucceeded, kFailed, kTimedOut };
struct WaitSummary {
  SendOutcome outcome = SendOutcome::kTimedOut;
  std::vector<FinalEnvelope> finals;  // every final envelope, in arrival order
  size_t succeeded = 0;
  size_t failed = 0;
  std::vector<std::string> incomplete;  // roots whose tree was not final in time
};
// Polls `watcher` until every tree is final or `timeout` passes on `clock`, calling `on_final`
// for each final envelope as it arrives and `on_poll` after each scan (progress). Outcome:
// kTimedOut when a tree is not final, else kFailed when any final envelope is at error-end, else
// kSucceeded.
WaitSummary WaitForTrees(ResultWatcher& watcher, Clock::Duration timeout, Clock& clock,
                         const std::function<void(const FinalEnvelope&)>& on_final = nullptr,
                         const std::function<void(const ResultWatcher&)>& on_poll = nullptr);
// `json` without the whitespace outside its strings (one line, bytes otherwise unchanged): the
// crew stores envelopes indented, `asya send --wait` prints one per line.
std::string CompactJson(std::string_view json);
// "3 results: 2 succeeded, 1 failed" ("1 result: 1 succeeded, 0 failed").
std::string CountLine(size_t succeeded, size_t failed);
// exit_code::kOk succeeded, kFailed failed, kNothingArrived timed out (DESIGN §4 precise 12).
int ExitCodeOf(SendOutcome outcome);

}  // namespace asya::local
