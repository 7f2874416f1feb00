// The state machine's pure rules (rules.h), without a database.
#include "asya/store/rules.h"

#include <gtest/gtest.h>

#include "support/status_matchers.h"

namespace asya::store {
namespace {

const TimePoint kNow = TimePoint(std::chrono::seconds(1'700'000'000));

Envelope Running(std::vector<std::string> actors, double percent = 0) {
  Envelope e;
  e.id = std::string("env");
  e.status = Status::kRunning;
  e.route_actors = std::move(actors);
  e.total_actors = static_cast<int>(e.route_actors.size());
  e.progress_percent = percent;
  return e;
}

TEST(StoreRulesTest, StateWeights) {
  EXPECT_EQ(StateWeight("received"), 10);
  EXPECT_EQ(StateWeight("processing"), 50);
  EXPECT_EQ(StateWeight("completed"), 100);
  EXPECT_EQ(StateWeight(""), 0);
  EXPECT_EQ(StateWeight("Completed"), 0);
}

TEST(StoreRulesTest, RawPercent) {
  EXPECT_DOUBLE_EQ(RawProgressPercent(0, "received", 0), 0);
  EXPECT_DOUBLE_EQ(RawProgressPercent(0, "received", 1), 10);
  EXPECT_DOUBLE_EQ(RawProgressPercent(2, "completed", 3), 100);
  EXPECT_DOUBLE_EQ(RawProgressPercent(1, "processing", 3), 50);
  EXPECT_DOUBLE_EQ(RawProgressPercent(0, "processing", 3), 16.67);
  EXPECT_DOUBLE_EQ(RawProgressPercent(1, "", 3), 33.33);
}

TEST(StoreRulesTest, ProgressIsCappedUntilFinish) {
  ProgressReport r;
  r.current_actor_idx = 5;  // past the end (the original's post-increment index): still capped
  r.state = "completed";
  ASSIGN_OR_FAIL(Plan plan, PlanProgress(Running({"a", "b"}), r, kNow));
  EXPECT_TRUE(plan.applied);
  EXPECT_DOUBLE_EQ(plan.after.progress_percent, kMaxUnfinishedPercent);
  EXPECT_EQ(plan.update.actor, "");
  ASSIGN_OR_FAIL(Plan fin, PlanFinish(plan.after, FinalReport{}, kNow));
  EXPECT_DOUBLE_EQ(fin.after.progress_percent, 100);
}

TEST(StoreRulesTest, ProgressOnPendingStartsTheEnvelope) {
  Envelope e = Running({"a"});
  e.status = Status::kPending;
  ProgressReport r;
  r.state = "received";
  ASSIGN_OR_FAIL(Plan plan, PlanProgress(e, r, kNow));
  EXPECT_EQ(plan.after.status, Status::kRunning);
  EXPECT_EQ(plan.update.status, Status::kRunning);
  EXPECT_EQ(plan.after.updated_at, kNow);
}

TEST(StoreRulesTest, ProgressKeepsALegacyValueAboveTheCap) {
  // A row the original gateway left at 100 while running: never decreases.
  ProgressReport r;
  r.state = "received";
  ASSIGN_OR_FAIL(Plan plan, PlanProgress(Running({"a"}, 100), r, kNow));
  EXPECT_DOUBLE_EQ(plan.after.progress_percent, 100);
}

TEST(StoreRulesTest, FinalEnvelopesPlanNothing) {
  Envelope done = Running({"a"}, 100);
  done.status = Status::kFailed;
  EXPECT_FALSE(PlanMarkRunning(done, "x", kNow).applied);
  ProgressReport r;
  r.state = "processing";
  ASSIGN_OR_FAIL(Plan p, PlanProgress(done, r, kNow));
  EXPECT_FALSE(p.applied);
  EXPECT_EQ(p.after.status, Status::kFailed);
  FinalReport f;
  f.status = Status::kSucceeded;
  ASSIGN_OR_FAIL(Plan q, PlanFinish(done, f, kNow));
  EXPECT_FALSE(q.applied);
}

TEST(StoreRulesTest, FinishKeepsWhatTheReportLeavesEmpty) {
  Envelope e = Running({"a"});
  e.message = "working";
  e.result_json = R"({"partial":1})";
  FinalReport f;
  f.status = Status::kFailed;
  f.error = "boom";
  ASSIGN_OR_FAIL(Plan plan, PlanFinish(e, f, kNow));
  EXPECT_EQ(plan.after.message, "working");
  EXPECT_EQ(plan.after.result_json, R"({"partial":1})");
  EXPECT_EQ(plan.after.error, "boom");
  EXPECT_EQ(plan.update.error, "boom");
}

TEST(StoreRulesTest, ValidateNewEnvelope) {
  Envelope e;
  e.id = "ok";
  EXPECT_OK(ValidateNewEnvelope(e));
  e.route_metadata_json = std::string("[");
  EXPECT_EQ(ValidateNewEnvelope(e).error().code, ErrorCode::kInvalidArgument);
  e.route_metadata_json.clear();
  e.timeout_seconds = -1;
  EXPECT_EQ(ValidateNewEnvelope(e).error().code, ErrorCode::kInvalidArgument);
}

TEST(StoreRulesTest, CreateDefaultsTotalActorsAndStamps) {
  Envelope e;
  e.id = "c";
  e.route_actors = {"a", "b", "c"};
  Plan plan = PlanCreate(e, kNow);
  EXPECT_EQ(plan.after.total_actors, 3);
  EXPECT_EQ(plan.after.created_at, kNow);
  EXPECT_EQ(plan.update.status, Status::kPending);
  EXPECT_EQ(plan.update.timestamp, kNow);
}

}  // namespace
}  // namespace asya::store
