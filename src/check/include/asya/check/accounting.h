// The checker's bookkeeping, as pure functions (unit-tested in tests/unit/check).
//
// Envelope i (0-based) of a run with prefix P has id P + 8-digit i ("chk1a2b00000042"). chk-split
// fans it out into two: result 0 keeps the id, result 1 is "<id>-1" (docs/sidecar.md). Both go
// through chk-flaky and chk-sink to happy-end, except "<id>-1" of every i with i % 10 == 7, which
// chk-flaky fails with a non-retryable ValueError: its place is error-end. Inputs with
// i % 10 == 3 fail once (a transient RuntimeError on attempt 1) and must still reach happy-end.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace asya::check {

enum class Place { kHappy, kError, kDlq };

std::string EnvelopeId(std::string_view prefix, int64_t i);
// Where the outputs of envelope i belong: {id, place} for result 0 and result 1.
struct Expectation {
  std::string id;
  Place place = Place::kHappy;
};
std::vector<Expectation> ExpectedOutputs(std::string_view prefix, int64_t i);
int64_t ExpectedCount(int64_t envelopes);  // 2 per envelope

// How often one id arrived where.
struct Arrivals {
  int happy = 0;
  int error = 0;
  int dlq = 0;
  int total() const { return happy + error + dlq; }
};
using Seen = std::unordered_map<std::string, Arrivals>;

struct Tally {
  int64_t expected = 0;
  int64_t arrived = 0;        // expected outputs seen at least once
  int64_t lost = 0;           // expected, seen nowhere
  int64_t duplicated = 0;     // seen more than once (anywhere)
  int64_t unexpected = 0;     // seen where it does not belong, or an id nobody expects
  int64_t dead_lettered = 0;  // expected outputs found in a DLQ (accounted for, not lost)
  // A few examples of each, for the report.
  std::vector<std::string> lost_ids;
  std::vector<std::string> duplicated_ids;
  std::vector<std::string> unexpected_notes;  // "<id>: at error-end (expected happy-end)"
};
// Accounts the expected outputs of envelopes [0, envelopes) against `seen`.
Tally Account(std::string_view prefix, int64_t envelopes, const Seen& seen, size_t examples = 10);

// "lost=L duplicated=D unexpected=U"
std::string ResultLine(const Tally& t);

// The id of a crew file name "<id>.json" ("" when the name is not one: temp files, dot files).
std::string IdOfCrewFile(std::string_view file_name);

}  // namespace asya::check
