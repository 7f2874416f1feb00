// The envelope state machine as pure functions, shared by both store backends (and usable by the
// gateway to predict or explain an outcome). A backend loads the envelope inside its transaction,
// asks one of the Plan* functions what to do, and when the plan is applied writes `after` and
// appends `update` (whose seq it assigns) in the same transaction.
//
// Rules (reference-controlplane §7.6–7.9, with the original's W21 fixed):
//   - final states are final: a plan for a final envelope is never applied;
//   - MarkRunning moves only a pending envelope;
//   - progress (§7.8): the longer of the stored and the reported actor list wins; the weight of
//     a state is 10 (received), 50 (processing), 100 (completed); percent = (idx*100 + w) / N,
//     rounded to 0.01, never below the stored value and never above kMaxUnfinishedPercent until
//     Finish, which sets 100;
//   - Finish stores what the FinalReport says (the gateway writes the messages of §7.9).
#pragma once

#include <string_view>

#include "asya/base/result.h"
#include "asya/store/store.h"

namespace asya::store {

// The highest progress an envelope that is not final can show.
inline constexpr double kMaxUnfinishedPercent = 99.99;

// 10, 50, 100 for received, processing, completed; 0 for anything else.
int StateWeight(std::string_view state);

// The progress a report yields, before the monotonic and cap rules: (idx*100 + w) / N rounded to
// 0.01; 0 when N is 0.
double RawProgressPercent(int current_actor_idx, std::string_view state, std::size_t total_actors);

struct Plan {
  bool applied = false;
  Envelope after;  // equals `before` when not applied
  Update update;   // meaningful when applied; seq is 0 (the backend assigns it)
};

// kInvalidArgument for an empty id, a final status, or a JSON field that is not valid JSON.
asya::Status ValidateNewEnvelope(const Envelope& envelope);
// kInvalidArgument for an empty id or protocol version, or capabilities that are not JSON.
asya::Status ValidateNewSession(const McpSession& session);
// The envelope as stored by Create (timestamps `now`, total_actors defaulted to the route's
// length) and its first Update.
Plan PlanCreate(const Envelope& envelope, TimePoint now);

Plan PlanMarkRunning(const Envelope& before, std::string_view message, TimePoint now);

// kInvalidArgument for a negative index or a state other than received/processing/completed
// (or empty).
Result<Plan> PlanProgress(const Envelope& before, const ProgressReport& report, TimePoint now);

// kInvalidArgument when report.status is not final or result_json is not valid JSON.
asya::Status ValidateFinalReport(const FinalReport& report);
// ValidateFinalReport's errors; else the envelope as ended by `report` (empty fields keep the
// stored value; progress 100).
Result<Plan> PlanFinish(const Envelope& before, const FinalReport& report, TimePoint now);

// True when `text` is empty (absent) or one valid JSON value.
bool IsJsonOrEmpty(std::string_view text);

}  // namespace asya::store
