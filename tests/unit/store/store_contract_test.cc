// The store contract: what every backend must do (store.h), run against SQLite and PostgreSQL.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "unit/store/store_fixture.h"

namespace asya::store::testing {
namespace {

using std::chrono::seconds;

bool SameJson(const std::string& a, const std::string& b) {
  return nlohmann::json::parse(a) == nlohmann::json::parse(b);
}

// Collects the feed's updates; Wait blocks until `n` have arrived (or a generous limit passed,
// after which the test fails on the count, not on time).
class FeedLog {
 public:
  std::function<void(const Update&)> Callback() {
    return [this](const Update& u) {
      std::lock_guard<std::mutex> lock(mu_);
      updates_.push_back(u);
      cv_.notify_all();
    };
  }
  std::vector<Update> Wait(std::size_t n) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait_for(lock, std::chrono::seconds(30), [&] { return updates_.size() >= n; });
    return updates_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Update> updates_;
};

TEST_P(StoreTest, CreateThenGetReturnsWhatWasStored) {
  Envelope e = Make("e1", {"a", "b", "c"});
  e.parent_id = "p0";
  e.route_current = 1;
  e.route_metadata_json = R"({"job_id":"e1","k":[1,2]})";
  e.payload_json = R"({"text":"héllo","n":[1,2.5,null],"nested":{"b":true}})";
  e.tool = "echo";
  e.timeout_seconds = 30;
  e.deadline = clock_.WallNow() + seconds(30);
  e.message = "created";
  ASSERT_OK(store_->Create(e));

  ASSIGN_OR_FAIL(Envelope got, store_->Get("e1"));
  EXPECT_EQ(got.id, "e1");
  EXPECT_EQ(got.parent_id, "p0");
  EXPECT_EQ(got.status, Status::kPending);
  EXPECT_EQ(got.route_actors, (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(got.route_current, 1);
  EXPECT_TRUE(SameJson(got.route_metadata_json, e.route_metadata_json));
  EXPECT_TRUE(SameJson(got.payload_json, e.payload_json));
  EXPECT_EQ(got.result_json, "");
  EXPECT_EQ(got.tool, "echo");
  EXPECT_EQ(got.timeout_seconds, 30);
  ASSERT_TRUE(got.deadline.has_value());
  EXPECT_EQ(*got.deadline, *e.deadline);
  EXPECT_EQ(got.message, "created");
  EXPECT_EQ(got.total_actors, 3);
  EXPECT_EQ(got.progress_percent, 0);
  EXPECT_EQ(got.created_at, clock_.WallNow());
  EXPECT_EQ(got.updated_at, clock_.WallNow());

  ASSIGN_OR_FAIL(auto history, store_->History("e1", 0));
  ASSERT_EQ(history.size(), 1u);
  EXPECT_EQ(history[0].status, Status::kPending);
  EXPECT_EQ(history[0].envelope_id, "e1");
  EXPECT_GT(history[0].seq, 0);
}

TEST_P(StoreTest, AbsentFieldsStayAbsent) {
  Envelope e;
  e.id = "bare";
  ASSERT_OK(store_->Create(e));
  ASSIGN_OR_FAIL(Envelope got, store_->Get("bare"));
  EXPECT_TRUE(got.route_actors.empty());
  EXPECT_EQ(got.payload_json, "");
  EXPECT_EQ(got.route_metadata_json, "");
  EXPECT_EQ(got.parent_id, "");
  EXPECT_FALSE(got.deadline.has_value());
}

TEST_P(StoreTest, DuplicateIdIsAlreadyExistsAndChangesNothing) {
  ASSERT_OK(store_->Create(Make("dup")));
  Envelope other = Make("dup", {"z"});
  auto r = store_->Create(other);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, ErrorCode::kAlreadyExists);
  EXPECT_NE(r.error().message.find("dup"), std::string::npos);
  ASSIGN_OR_FAIL(Envelope got, store_->Get("dup"));
  EXPECT_EQ(got.route_actors, (std::vector<std::string>{"a", "b"}));
  ASSIGN_OR_FAIL(auto history, store_->History("dup", 0));
  EXPECT_EQ(history.size(), 1u);
}

TEST_P(StoreTest, BadEnvelopesAreRejectedAndNotStored) {
  Envelope no_id = Make("");
  EXPECT_EQ(store_->Create(no_id).error().code, ErrorCode::kInvalidArgument);

  Envelope bad_json = Make("bad");
  bad_json.payload_json = "{not json";
  auto r = store_->Create(bad_json);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument);
  EXPECT_NE(r.error().message.find("payload"), std::string::npos);

  Envelope final_one = Make("fin");
  final_one.status = Status::kSucceeded;
  EXPECT_EQ(store_->Create(final_one).error().code, ErrorCode::kInvalidArgument);

  EXPECT_EQ(store_->Get("bad").error().code, ErrorCode::kNotFound);
  EXPECT_EQ(store_->Get("fin").error().code, ErrorCode::kNotFound);
}

TEST_P(StoreTest, UnknownIdIsNotFoundEverywhere) {
  EXPECT_EQ(store_->Get("nope").error().code, ErrorCode::kNotFound);
  EXPECT_EQ(store_->MarkRunning("nope", "x").error().code, ErrorCode::kNotFound);
  EXPECT_EQ(store_->ReportProgress("nope", {}).error().code, ErrorCode::kNotFound);
  EXPECT_EQ(store_->Finish("nope", {}).error().code, ErrorCode::kNotFound);
  ASSIGN_OR_FAIL(auto history, store_->History("nope", 0));
  EXPECT_TRUE(history.empty());
  ASSIGN_OR_FAIL(auto children, store_->Children("nope"));
  EXPECT_TRUE(children.empty());
}

TEST_P(StoreTest, MarkRunningMovesOnlyPending) {
  ASSERT_OK(store_->Create(Make("m")));
  clock_.Advance(seconds(1));
  ASSIGN_OR_FAIL(Transition t, store_->MarkRunning("m", "Sending envelope to first actor"));
  EXPECT_TRUE(t.applied);
  EXPECT_EQ(t.envelope.status, Status::kRunning);
  EXPECT_EQ(t.envelope.message, "Sending envelope to first actor");
  ASSERT_TRUE(t.update.has_value());
  EXPECT_EQ(t.update->status, Status::kRunning);
  EXPECT_EQ(t.update->timestamp, clock_.WallNow());

  ASSIGN_OR_FAIL(Transition again, store_->MarkRunning("m", "again"));
  EXPECT_FALSE(again.applied);
  EXPECT_FALSE(again.update.has_value());
  EXPECT_EQ(again.envelope.message, "Sending envelope to first actor");

  ASSIGN_OR_FAIL(Envelope got, store_->Get("m"));
  EXPECT_EQ(got.status, Status::kRunning);
  EXPECT_EQ(got.updated_at, clock_.WallNow());
  ASSIGN_OR_FAIL(auto history, store_->History("m", 0));
  EXPECT_EQ(history.size(), 2u);
}

// The batch form of Create: each envelope stored as Create stores it (fields, first update),
// results in the order given; a taken id, an id repeated in the batch and an invalid envelope are
// refused without stopping the others.
TEST_P(StoreTest, CreateManyStoresEachEnvelopeAsCreateWould) {
  ASSERT_OK(store_->Create(Make("taken")));
  Envelope full = Make("m1", {"a", "b", "c"});
  full.parent_id = "p0";
  full.route_current = 1;
  full.route_metadata_json = R"({"job_id":"m1","k":[1,2]})";
  full.payload_json = R"({"text":"héllo","n":[1,2.5,null]})";
  full.tool = "echo";
  full.timeout_seconds = 30;
  full.deadline = clock_.WallNow() + seconds(30);
  full.message = "created";
  Envelope bad = Make("bad");
  bad.payload_json = "{not json";
  clock_.Advance(seconds(1));
  auto got = store_->CreateMany({full, Make("taken"), Make("m2"), bad, Make("m2"), Make("m3")});
  ASSERT_EQ(got.size(), 6u);
  for (int k : {0, 2, 5}) {
    EXPECT_TRUE(got[k].has_value()) << k << ": " << got[k].error().message;
  }
  ASSERT_FALSE(got[1].has_value());
  EXPECT_EQ(got[1].error().code, ErrorCode::kAlreadyExists);
  ASSERT_FALSE(got[3].has_value());
  EXPECT_EQ(got[3].error().code, ErrorCode::kInvalidArgument);
  ASSERT_FALSE(got[4].has_value());
  EXPECT_EQ(got[4].error().code, ErrorCode::kAlreadyExists);
  EXPECT_EQ(store_->Get("bad").error().code, ErrorCode::kNotFound);

  ASSIGN_OR_FAIL(Envelope m1, store_->Get("m1"));
  EXPECT_EQ(m1.parent_id, "p0");
  EXPECT_EQ(m1.status, Status::kPending);
  EXPECT_EQ(m1.route_actors, (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(m1.route_current, 1);
  EXPECT_TRUE(SameJson(m1.route_metadata_json, full.route_metadata_json));
  EXPECT_TRUE(SameJson(m1.payload_json, full.payload_json));
  EXPECT_EQ(m1.tool, "echo");
  EXPECT_EQ(m1.timeout_seconds, 30);
  ASSERT_TRUE(m1.deadline.has_value());
  EXPECT_EQ(*m1.deadline, *full.deadline);
  EXPECT_EQ(m1.message, "created");
  EXPECT_EQ(m1.total_actors, 3);
  EXPECT_EQ(m1.created_at, clock_.WallNow());
  for (const char* id : {"m1", "m2", "m3"}) {
    ASSIGN_OR_FAIL(auto history, store_->History(id, 0));
    ASSERT_EQ(history.size(), 1u) << id;
    EXPECT_EQ(history[0].status, Status::kPending);
    EXPECT_EQ(history[0].timestamp, clock_.WallNow());
  }
  ASSIGN_OR_FAIL(auto m1h, store_->History("m1", 0));
  ASSIGN_OR_FAIL(auto m3h, store_->History("m3", 0));
  EXPECT_LT(m1h[0].seq, m3h[0].seq);  // history in the order given
  ASSIGN_OR_FAIL(auto taken, store_->History("taken", 0));
  EXPECT_EQ(taken.size(), 1u);
  EXPECT_TRUE(store_->CreateMany({}).empty());
}

// The batch form: each envelope moves as MarkRunning would move it, results in the order asked.
TEST_P(StoreTest, MarkRunningManyMovesEachPendingEnvelopeOnce) {
  for (const char* id : {"b1", "b2", "b3", "b4"}) {
    ASSERT_OK(store_->Create(Make(id)));
  }
  ASSERT_OK(store_->MarkRunning("b2", "earlier"));
  FinalReport fin;
  fin.status = Status::kCancelled;
  ASSERT_OK(store_->Finish("b3", fin));
  clock_.Advance(seconds(1));

  auto got = store_->MarkRunningMany({"b4", "b2", "nope", "b3", "b1"}, "batch");
  ASSERT_EQ(got.size(), 5u);
  for (int k : {0, 4}) {
    ASSERT_TRUE(got[k].has_value()) << got[k].error().message;
    EXPECT_TRUE(got[k]->applied);
    EXPECT_EQ(got[k]->envelope.id, k == 0 ? "b4" : "b1");
    EXPECT_EQ(got[k]->envelope.status, Status::kRunning);
    EXPECT_EQ(got[k]->envelope.message, "batch");
    EXPECT_EQ(got[k]->envelope.updated_at, clock_.WallNow());
    ASSERT_TRUE(got[k]->update.has_value());
    EXPECT_EQ(got[k]->update->status, Status::kRunning);
    EXPECT_EQ(got[k]->update->envelope_id, got[k]->envelope.id);
    EXPECT_EQ(got[k]->update->timestamp, clock_.WallNow());
    ASSIGN_OR_FAIL(auto history, store_->History(got[k]->envelope.id, 0));
    ASSERT_EQ(history.size(), 2u);
    EXPECT_EQ(history[1].seq, got[k]->update->seq);
    EXPECT_EQ(history[1].message, "batch");
  }
  ASSERT_TRUE(got[1].has_value());
  EXPECT_FALSE(got[1]->applied);  // already running
  EXPECT_EQ(got[1]->envelope.message, "earlier");
  ASSERT_FALSE(got[2].has_value());
  EXPECT_EQ(got[2].error().code, ErrorCode::kNotFound);
  ASSERT_TRUE(got[3].has_value());
  EXPECT_FALSE(got[3]->applied);  // final stays final
  EXPECT_EQ(got[3]->envelope.status, Status::kCancelled);
  ASSIGN_OR_FAIL(auto cancelled, store_->History("b3", 0));
  EXPECT_EQ(cancelled.size(), 2u);
  EXPECT_TRUE(store_->MarkRunningMany({}, "none").empty());
}

TEST_P(StoreTest, ProgressFollowsWeightsAndIsMonotonicAndCapped) {
  ASSERT_OK(store_->Create(Make("p", {"a", "b"})));
  auto report = [&](int idx, const char* state) {
    ProgressReport r;
    r.actors = {"a", "b"};
    r.current_actor_idx = idx;
    r.state = state;
    return store_->ReportProgress("p", r);
  };
  ASSIGN_OR_FAIL(Transition t1, report(0, "received"));
  EXPECT_TRUE(t1.applied);
  EXPECT_EQ(t1.envelope.status, Status::kRunning);  // a progress report starts the envelope
  EXPECT_DOUBLE_EQ(t1.envelope.progress_percent, 5);
  EXPECT_EQ(t1.envelope.current_actor_name, "a");
  ASSIGN_OR_FAIL(Transition t2, report(0, "processing"));
  EXPECT_DOUBLE_EQ(t2.envelope.progress_percent, 25);
  ASSIGN_OR_FAIL(Transition t3, report(1, "processing"));
  EXPECT_DOUBLE_EQ(t3.envelope.progress_percent, 75);
  EXPECT_EQ(t3.envelope.current_actor_name, "b");
  EXPECT_EQ(t3.envelope.current_actor_idx, 1);
  // A late report for an earlier actor does not move progress back.
  ASSIGN_OR_FAIL(Transition late, report(0, "received"));
  EXPECT_TRUE(late.applied);
  EXPECT_DOUBLE_EQ(late.envelope.progress_percent, 75);
  // The last actor completed: still below 100 until Finish.
  ASSIGN_OR_FAIL(Transition t4, report(1, "completed"));
  EXPECT_DOUBLE_EQ(t4.envelope.progress_percent, 99.99);
  ASSIGN_OR_FAIL(Envelope got, store_->Get("p"));
  EXPECT_DOUBLE_EQ(got.progress_percent, 99.99);
  EXPECT_EQ(got.status, Status::kRunning);
}

TEST_P(StoreTest, ProgressRoundsToHundredthsAndLongerActorListWins) {
  ASSERT_OK(store_->Create(Make("r", {"a", "b", "c"})));
  ProgressReport r;
  r.current_actor_idx = 0;
  r.state = "received";
  ASSIGN_OR_FAIL(Transition t1, store_->ReportProgress("r", r));
  EXPECT_DOUBLE_EQ(t1.envelope.progress_percent, 3.33);
  ASSIGN_OR_FAIL(Envelope g1, store_->Get("r"));
  EXPECT_DOUBLE_EQ(g1.progress_percent, 3.33);

  // A shorter list in the report keeps the stored one.
  r.actors = {"a"};
  r.state = "processing";
  ASSIGN_OR_FAIL(Transition t2, store_->ReportProgress("r", r));
  EXPECT_EQ(t2.envelope.route_actors, (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_DOUBLE_EQ(t2.envelope.progress_percent, 16.67);

  // A longer one (the route was extended) replaces it.
  r.actors = {"a", "b", "c", "d", "e"};
  r.current_actor_idx = 3;
  r.state = "received";
  r.message = "extended";
  ASSIGN_OR_FAIL(Transition t3, store_->ReportProgress("r", r));
  EXPECT_EQ(t3.envelope.total_actors, 5);
  EXPECT_DOUBLE_EQ(t3.envelope.progress_percent, 62);
  EXPECT_EQ(t3.envelope.current_actor_name, "d");
  ASSIGN_OR_FAIL(Envelope got, store_->Get("r"));
  EXPECT_EQ(got.route_actors, (std::vector<std::string>{"a", "b", "c", "d", "e"}));
  EXPECT_EQ(got.total_actors, 5);
  EXPECT_EQ(got.message, "extended");
  EXPECT_EQ(got.current_actor_name, "d");
}

TEST_P(StoreTest, BadProgressIsRejectedAndChangesNothing) {
  ASSERT_OK(store_->Create(Make("bp")));
  ProgressReport negative;
  negative.current_actor_idx = -1;
  negative.state = "received";
  auto r1 = store_->ReportProgress("bp", negative);
  ASSERT_FALSE(r1.has_value());
  EXPECT_EQ(r1.error().code, ErrorCode::kInvalidArgument);
  ProgressReport bad_state;
  bad_state.state = "exploded";
  auto r2 = store_->ReportProgress("bp", bad_state);
  ASSERT_FALSE(r2.has_value());
  EXPECT_EQ(r2.error().code, ErrorCode::kInvalidArgument);
  EXPECT_NE(r2.error().message.find("exploded"), std::string::npos);

  ASSIGN_OR_FAIL(Envelope got, store_->Get("bp"));
  EXPECT_EQ(got.status, Status::kPending);
  ASSIGN_OR_FAIL(auto history, store_->History("bp", 0));
  EXPECT_EQ(history.size(), 1u);
}

TEST_P(StoreTest, FinishSetsHundredAndStoresTheReport) {
  ASSERT_OK(store_->Create(Make("f")));
  ASSERT_OK(store_->MarkRunning("f", "sent"));
  FinalReport fin;
  fin.status = Status::kSucceeded;
  fin.result_json = R"({"answer":42,"list":["x"]})";
  fin.message = "Envelope completed successfully";
  ASSIGN_OR_FAIL(Transition t, store_->Finish("f", fin));
  EXPECT_TRUE(t.applied);
  EXPECT_EQ(t.envelope.status, Status::kSucceeded);
  EXPECT_DOUBLE_EQ(t.envelope.progress_percent, 100);
  ASSERT_TRUE(t.update.has_value());
  EXPECT_EQ(t.update->status, Status::kSucceeded);
  ASSERT_TRUE(t.update->progress_percent.has_value());
  EXPECT_DOUBLE_EQ(*t.update->progress_percent, 100);

  ASSIGN_OR_FAIL(Envelope got, store_->Get("f"));
  EXPECT_EQ(got.status, Status::kSucceeded);
  EXPECT_DOUBLE_EQ(got.progress_percent, 100);
  EXPECT_TRUE(SameJson(got.result_json, fin.result_json));
  EXPECT_EQ(got.message, "Envelope completed successfully");
  ASSIGN_OR_FAIL(auto history, store_->History("f", 0));
  ASSERT_EQ(history.size(), 3u);
  EXPECT_TRUE(SameJson(history[2].result_json, fin.result_json));
  EXPECT_EQ(history[2].message, "Envelope completed successfully");
}

TEST_P(StoreTest, FinalIsFinal) {
  for (Status final_status : {Status::kSucceeded, Status::kFailed, Status::kCancelled}) {
    std::string id = "ff-" + std::string(StatusName(final_status));
    ASSERT_OK(store_->Create(Make(id)));
    FinalReport fin;
    fin.status = final_status;
    fin.error = final_status == Status::kFailed ? "boom" : "";
    fin.message = "the end";
    ASSIGN_OR_FAIL(Transition first, store_->Finish(id, fin));
    ASSERT_TRUE(first.applied);
    clock_.Advance(seconds(5));

    ProgressReport late;
    late.actors = {"a", "b"};
    late.current_actor_idx = 0;
    late.state = "processing";
    late.message = "late";
    ASSIGN_OR_FAIL(Transition p, store_->ReportProgress(id, late));
    EXPECT_FALSE(p.applied);
    EXPECT_EQ(p.envelope.status, final_status);
    ASSIGN_OR_FAIL(Transition m, store_->MarkRunning(id, "again"));
    EXPECT_FALSE(m.applied);
    FinalReport other;
    other.status = final_status == Status::kFailed ? Status::kSucceeded : Status::kFailed;
    other.error = "envelope timed out";
    ASSIGN_OR_FAIL(Transition f, store_->Finish(id, other));
    EXPECT_FALSE(f.applied);
    EXPECT_FALSE(f.update.has_value());

    ASSIGN_OR_FAIL(Envelope got, store_->Get(id));
    EXPECT_EQ(got.status, final_status);
    EXPECT_EQ(got.message, "the end");
    EXPECT_EQ(got.error, fin.error);
    EXPECT_DOUBLE_EQ(got.progress_percent, 100);
    EXPECT_EQ(got.updated_at, clock_.WallNow() - seconds(5));
    ASSIGN_OR_FAIL(auto history, store_->History(id, 0));
    EXPECT_EQ(history.size(), 2u) << id;
  }
}

TEST_P(StoreTest, FinishNeedsAFinalStatusAndValidJson) {
  ASSERT_OK(store_->Create(Make("fv")));
  FinalReport running;
  running.status = Status::kRunning;
  EXPECT_EQ(store_->Finish("fv", running).error().code, ErrorCode::kInvalidArgument);
  FinalReport bad;
  bad.status = Status::kSucceeded;
  bad.result_json = "[1,";
  EXPECT_EQ(store_->Finish("fv", bad).error().code, ErrorCode::kInvalidArgument);
  ASSIGN_OR_FAIL(Envelope got, store_->Get("fv"));
  EXPECT_EQ(got.status, Status::kPending);
}

TEST_P(StoreTest, HistoryIsOrderedAndFiltersBySeq) {
  ASSERT_OK(store_->Create(Make("h", {"a", "b"})));
  ASSERT_OK(store_->Create(Make("other")));
  ASSERT_OK(store_->MarkRunning("h", "sent"));
  ASSERT_OK(store_->MarkRunning("other", "sent"));
  ProgressReport r;
  r.actors = {"a", "b"};
  r.current_actor_idx = 1;
  r.state = "processing";
  r.message = "working";
  ASSERT_OK(store_->ReportProgress("h", r));
  FinalReport fin;
  fin.status = Status::kFailed;
  fin.error = "boom";
  fin.message = "Envelope failed: boom";
  ASSERT_OK(store_->Finish("h", fin));

  ASSIGN_OR_FAIL(auto all, store_->History("h", 0));
  ASSERT_EQ(all.size(), 4u);
  for (std::size_t i = 1; i < all.size(); ++i) {
    EXPECT_GT(all[i].seq, all[i - 1].seq);
  }
  EXPECT_EQ(all[0].status, Status::kPending);
  EXPECT_EQ(all[1].status, Status::kRunning);
  EXPECT_EQ(all[1].message, "sent");
  const Update& progress = all[2];
  EXPECT_EQ(progress.status, Status::kRunning);
  EXPECT_EQ(progress.envelope_state, "processing");
  EXPECT_EQ(progress.actor, "b");
  EXPECT_EQ(progress.actors, (std::vector<std::string>{"a", "b"}));
  ASSERT_TRUE(progress.current_actor_idx.has_value());
  EXPECT_EQ(*progress.current_actor_idx, 1);
  ASSERT_TRUE(progress.progress_percent.has_value());
  EXPECT_DOUBLE_EQ(*progress.progress_percent, 75);
  EXPECT_EQ(progress.message, "working");
  EXPECT_EQ(all[3].status, Status::kFailed);
  EXPECT_EQ(all[3].error, "boom");
  EXPECT_FALSE(all[1].current_actor_idx.has_value());
  EXPECT_TRUE(all[1].actors.empty());

  ASSIGN_OR_FAIL(auto tail, store_->History("h", all[1].seq));
  ASSERT_EQ(tail.size(), 2u);
  EXPECT_EQ(tail[0].seq, all[2].seq);
  ASSIGN_OR_FAIL(auto none, store_->History("h", all[3].seq));
  EXPECT_TRUE(none.empty());
}

TEST_P(StoreTest, ChildrenAreListedOldestFirst) {
  ASSERT_OK(store_->Create(Make("parent")));
  for (const char* id : {"parent-2", "parent-10", "parent-1"}) {
    Envelope child = Make(id);
    child.parent_id = "parent";
    child.payload_json.clear();
    ASSERT_OK(store_->Create(child));
  }
  clock_.Advance(seconds(1));
  Envelope late = Make("parent-0");
  late.parent_id = "parent";
  ASSERT_OK(store_->Create(late));
  ASSERT_OK(store_->Create(Make("unrelated")));
  ASSIGN_OR_FAIL(auto children, store_->Children("parent"));
  EXPECT_EQ(children, (std::vector<std::string>{"parent-2", "parent-10", "parent-1", "parent-0"}));
  ASSIGN_OR_FAIL(auto none, store_->Children("parent-1"));
  EXPECT_TRUE(none.empty());
}

TEST_P(StoreTest, ExpiredBeforeFindsNonFinalEnvelopesPastTheirDeadline) {
  const TimePoint t0 = clock_.WallNow();
  Envelope soon = Make("soon");
  soon.deadline = t0 + seconds(10);
  Envelope later = Make("later");
  later.deadline = t0 + seconds(20);
  Envelope never = Make("never");
  Envelope done = Make("done");
  done.deadline = t0 + seconds(5);
  for (const Envelope& e : {soon, later, never, done}) {
    ASSERT_OK(store_->Create(e));
  }
  FinalReport fin;
  fin.status = Status::kSucceeded;
  ASSERT_OK(store_->Finish("done", fin));
  ASSERT_OK(store_->MarkRunning("later", "sent"));

  ASSIGN_OR_FAIL(auto none, store_->ExpiredBefore(t0, 10));
  EXPECT_TRUE(none.empty());
  ASSIGN_OR_FAIL(auto one, store_->ExpiredBefore(t0 + seconds(11), 10));
  EXPECT_EQ(one, (std::vector<std::string>{"soon"}));
  ASSIGN_OR_FAIL(auto both, store_->ExpiredBefore(t0 + seconds(60), 10));
  EXPECT_EQ(both, (std::vector<std::string>{"soon", "later"}));
  ASSIGN_OR_FAIL(auto limited, store_->ExpiredBefore(t0 + seconds(60), 1));
  EXPECT_EQ(limited, (std::vector<std::string>{"soon"}));
  // Exactly at the deadline is not yet past it.
  ASSIGN_OR_FAIL(auto at, store_->ExpiredBefore(t0 + seconds(10), 10));
  EXPECT_TRUE(at.empty());
}

TEST_P(StoreTest, PurgeDeletesOnlyFinishedEnvelopesOlderThanTheCutoff) {
  const TimePoint t0 = clock_.WallNow();
  for (const char* id : {"old-done", "old-running", "new-done"}) {
    ASSERT_OK(store_->Create(Make(id)));
  }
  FinalReport fin;
  fin.status = Status::kSucceeded;
  ASSERT_OK(store_->Finish("old-done", fin));
  ASSERT_OK(store_->MarkRunning("old-running", "sent"));
  clock_.Advance(std::chrono::hours(2));
  ASSERT_OK(store_->Finish("new-done", fin));
  ASSIGN_OR_FAIL(auto before, store_->History("new-done", 0));

  ASSIGN_OR_FAIL(std::int64_t purged, store_->PurgeFinishedBefore(t0 + std::chrono::hours(1)));
  EXPECT_EQ(purged, 1);
  EXPECT_EQ(store_->Get("old-done").error().code, ErrorCode::kNotFound);
  ASSIGN_OR_FAIL(auto gone, store_->History("old-done", 0));
  EXPECT_TRUE(gone.empty());
  EXPECT_OK(store_->Get("old-running"));
  EXPECT_OK(store_->Get("new-done"));
  ASSIGN_OR_FAIL(auto kept, store_->History("new-done", 0));
  EXPECT_EQ(kept.size(), before.size());

  ASSIGN_OR_FAIL(std::int64_t again, store_->PurgeFinishedBefore(t0 + std::chrono::hours(1)));
  EXPECT_EQ(again, 0);

  // Seqs keep growing after a purge (an SSE Last-Event-ID never meets a reused id).
  ASSIGN_OR_FAIL(auto last, store_->History("new-done", 0));
  ASSERT_OK(store_->Create(Make("after-purge")));
  ASSIGN_OR_FAIL(auto fresh, store_->History("after-purge", 0));
  ASSERT_EQ(fresh.size(), 1u);
  EXPECT_GT(fresh[0].seq, last.back().seq);
}

TEST_P(StoreTest, FeedDeliversEveryAppliedUpdateInOrder) {
  FeedLog log;
  ASSERT_OK(store_->StartFeed(log.Callback()));
  ASSERT_OK(store_->Create(Make("feed")));
  ASSERT_OK(store_->MarkRunning("feed", "sent"));
  ASSERT_OK(store_->MarkRunning("feed", "not applied"));
  ProgressReport r;
  r.current_actor_idx = 0;
  r.state = "received";
  ASSERT_OK(store_->ReportProgress("feed", r));
  FinalReport fin;
  fin.status = Status::kSucceeded;
  fin.result_json = R"({"ok":true})";
  ASSERT_OK(store_->Finish("feed", fin));
  ASSERT_OK(store_->Finish("feed", fin));  // not applied: no update

  std::vector<Update> got = log.Wait(4);
  ASSIGN_OR_FAIL(auto history, store_->History("feed", 0));
  ASSERT_EQ(history.size(), 4u);
  ASSERT_EQ(got.size(), 4u);
  for (std::size_t i = 0; i < got.size(); ++i) {
    EXPECT_EQ(got[i].seq, history[i].seq);
    EXPECT_EQ(got[i].status, history[i].status);
    EXPECT_EQ(got[i].envelope_id, "feed");
  }
  EXPECT_EQ(got[2].envelope_state, "received");
  EXPECT_TRUE(SameJson(got[3].result_json, R"({"ok":true})"));
}

// Every field of an update reaches the feed as History reads it, for small updates and for one
// too large to ride in a PostgreSQL NOTIFY payload (read back from the table instead).
TEST_P(StoreTest, FeedDeliversEveryFieldOfSmallAndLargeUpdates) {
  FeedLog log;
  ASSERT_OK(store_->StartFeed(log.Callback()));
  ASSERT_OK(store_->Create(Make("fields", {"a", "b\"q", "c"})));
  ProgressReport r;
  r.actors = {"a", "b\"q", "c", "d"};
  r.current_actor_idx = 1;
  r.state = "processing";
  r.message = "step \u00e9\n2";
  ASSERT_OK(store_->ReportProgress("fields", r));
  FinalReport fin;
  fin.status = Status::kFailed;
  fin.error = "boom";
  fin.message = "done";
  fin.result_json = R"({"big":")" + std::string(20000, 'x') + R"(","n":[1,2.5]})";
  ASSERT_OK(store_->Finish("fields", fin));
  ASSERT_OK(store_->Create(Make("fields2")));
  FinalReport small;
  small.status = Status::kSucceeded;
  small.result_json = R"({"k": [1, {"z": null}], "s": "\u00e9"})";
  ASSERT_OK(store_->Finish("fields2", small));

  std::vector<Update> got = log.Wait(5);
  ASSERT_EQ(got.size(), 5u);
  ASSIGN_OR_FAIL(auto h1, store_->History("fields", 0));
  ASSIGN_OR_FAIL(auto h2, store_->History("fields2", 0));
  std::vector<Update> want = h1;
  want.insert(want.end(), h2.begin(), h2.end());
  ASSERT_EQ(want.size(), 5u);
  for (std::size_t i = 0; i < want.size(); ++i) {
    SCOPED_TRACE(i);
    EXPECT_EQ(got[i].seq, want[i].seq);
    EXPECT_EQ(got[i].envelope_id, want[i].envelope_id);
    EXPECT_EQ(got[i].status, want[i].status);
    EXPECT_EQ(got[i].message, want[i].message);
    EXPECT_EQ(got[i].error, want[i].error);
    EXPECT_EQ(got[i].actor, want[i].actor);
    EXPECT_EQ(got[i].actors, want[i].actors);
    EXPECT_EQ(got[i].current_actor_idx, want[i].current_actor_idx);
    EXPECT_EQ(got[i].result_json, want[i].result_json);
    EXPECT_EQ(got[i].progress_percent, want[i].progress_percent);
    EXPECT_EQ(got[i].envelope_state, want[i].envelope_state);
    EXPECT_EQ(got[i].timestamp, want[i].timestamp);
  }
  EXPECT_EQ(got[1].envelope_state, "processing");
  EXPECT_EQ(got[1].actors.size(), 4u);
  EXPECT_GT(got[2].result_json.size(), 20000u);
  EXPECT_TRUE(SameJson(got[4].result_json, small.result_json));
}

// Reports from many threads: the feed delivers one envelope's updates in seq order (an SSE stream
// skips anything at or below the last id it sent, so an out-of-order delivery would lose events).
TEST_P(StoreTest, FeedKeepsSeqOrderUnderConcurrentWriters) {
  FeedLog log;
  ASSERT_OK(store_->StartFeed(log.Callback()));
  ASSERT_OK(store_->Create(Make("order", {"a", "b", "c", "d"})));
  constexpr int kThreads = 8;
  constexpr int kEach = 25;
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&, i] {
      for (int j = 0; j < kEach; ++j) {
        ProgressReport r;
        r.current_actor_idx = (i + j) % 4;
        r.state = "received";
        r.message = std::to_string(i) + "/" + std::to_string(j);
        EXPECT_OK(store_->ReportProgress("order", r));
      }
    });
  }
  for (auto& t : threads) {
    t.join();
  }
  std::vector<Update> got = log.Wait(1 + kThreads * kEach);
  ASSERT_EQ(got.size(), 1u + kThreads * kEach);
  for (std::size_t i = 1; i < got.size(); ++i) {
    EXPECT_LT(got[i - 1].seq, got[i].seq) << "feed position " << i;
  }
}

TEST_P(StoreTest, FeedStartsOnce) {
  ASSERT_OK(store_->StartFeed([](const Update&) {}));
  auto again = store_->StartFeed([](const Update&) {});
  ASSERT_FALSE(again.has_value());
  EXPECT_EQ(again.error().code, ErrorCode::kFailedPrecondition);
}

TEST_P(StoreTest, ConcurrentFinishAppliesExactlyOnce) {
  for (int round = 0; round < 3; ++round) {
    std::string id = "race-" + std::to_string(round);
    ASSERT_OK(store_->Create(Make(id)));
    std::atomic<int> applied{0};
    std::atomic<int> failed{0};
    std::vector<std::thread> threads;
    for (int i = 0; i < 8; ++i) {
      threads.emplace_back([&, i] {
        FinalReport fin;
        fin.status = i % 2 == 0 ? Status::kSucceeded : Status::kFailed;
        fin.message = "thread " + std::to_string(i);
        auto t = store_->Finish(id, fin);
        if (!t.has_value()) {
          failed.fetch_add(1);
        } else if (t->applied) {
          applied.fetch_add(1);
        }
      });
    }
    for (auto& t : threads) {
      t.join();
    }
    EXPECT_EQ(failed.load(), 0);
    EXPECT_EQ(applied.load(), 1);
    ASSIGN_OR_FAIL(auto history, store_->History(id, 0));
    ASSERT_EQ(history.size(), 2u);
    ASSIGN_OR_FAIL(Envelope got, store_->Get(id));
    EXPECT_EQ(got.status, history[1].status);
    EXPECT_EQ(got.message, history[1].message);
  }
}

TEST_P(StoreTest, ConcurrentProgressKeepsEveryReportAndTheHighestPercent) {
  ASSERT_OK(store_->Create(Make("cp", {"a", "b", "c", "d"})));
  std::vector<std::thread> threads;
  for (int i = 0; i < 8; ++i) {
    threads.emplace_back([&, i] {
      ProgressReport r;
      r.current_actor_idx = i % 4;
      r.state = i < 4 ? "received" : "processing";
      EXPECT_OK(store_->ReportProgress("cp", r));
    });
  }
  for (auto& t : threads) {
    t.join();
  }
  ASSIGN_OR_FAIL(Envelope got, store_->Get("cp"));
  EXPECT_DOUBLE_EQ(got.progress_percent, 87.5);  // (3*100 + 50) / 4
  ASSIGN_OR_FAIL(auto history, store_->History("cp", 0));
  EXPECT_EQ(history.size(), 9u);
}

TEST_P(StoreTest, ReopenedStoreKeepsEverything) {
  ASSERT_OK(store_->Create(Make("keep")));
  ASSERT_OK(store_->MarkRunning("keep", "sent"));
  store_.reset();
  auto reopened = OpenAnother();
  ASSERT_NE(reopened, nullptr);
  ASSIGN_OR_FAIL(Envelope got, reopened->Get("keep"));
  EXPECT_EQ(got.status, Status::kRunning);
  ASSIGN_OR_FAIL(auto history, reopened->History("keep", 0));
  EXPECT_EQ(history.size(), 2u);
}

TEST_P(StoreTest, ListFiltersAndPagesNewestFirst) {
  for (int i = 0; i < 5; ++i) {
    Envelope e = Make("l" + std::to_string(i));
    e.tool = i % 2 == 0 ? "even" : "odd";
    ASSERT_OK(store_->Create(e));
    clock_.Advance(seconds(1));
  }
  Envelope child = Make("l0-1");
  child.parent_id = "l0";
  ASSERT_OK(store_->Create(child));
  FinalReport fin;
  fin.status = Status::kSucceeded;
  ASSERT_OK(store_->Finish("l2", fin));

  auto ids = [](const std::vector<Envelope>& envelopes) {
    std::vector<std::string> out;
    for (const auto& e : envelopes) {
      out.push_back(e.id);
    }
    return out;
  };
  ListQuery all;
  ASSIGN_OR_FAIL(auto everything, store_->List(all));
  EXPECT_EQ(ids(everything), (std::vector<std::string>{"l0-1", "l4", "l3", "l2", "l1", "l0"}));
  ListQuery roots;
  roots.roots_only = true;
  roots.limit = 2;
  ASSIGN_OR_FAIL(auto page1, store_->List(roots));
  ASSERT_EQ(ids(page1), (std::vector<std::string>{"l4", "l3"}));
  roots.before_id = page1.back().id;
  ASSIGN_OR_FAIL(auto page2, store_->List(roots));
  EXPECT_EQ(ids(page2), (std::vector<std::string>{"l2", "l1"}));
  ListQuery even;
  even.tool = "even";
  ASSIGN_OR_FAIL(auto evens, store_->List(even));
  EXPECT_EQ(ids(evens), (std::vector<std::string>{"l4", "l2", "l0"}));
  even.status = Status::kSucceeded;
  ASSIGN_OR_FAIL(auto done, store_->List(even));
  ASSERT_EQ(ids(done), (std::vector<std::string>{"l2"}));
  EXPECT_EQ(done[0].status, Status::kSucceeded);

  ListQuery bad_cursor;
  bad_cursor.before_id = "nope";
  EXPECT_EQ(store_->List(bad_cursor).error().code, ErrorCode::kNotFound);
  ListQuery bad_limit;
  bad_limit.limit = 0;
  EXPECT_EQ(store_->List(bad_limit).error().code, ErrorCode::kInvalidArgument);
  bad_limit.limit = 1001;
  EXPECT_EQ(store_->List(bad_limit).error().code, ErrorCode::kInvalidArgument);
}

TEST_P(StoreTest, OneConnectionServesManyThreads) {
  OpenOptions options;
  options.max_connections = 1;
  ASSIGN_OR_FAIL(auto narrow, Open(url_, clock_, options));
  ASSERT_OK(narrow->Create(Make("narrow")));
  std::atomic<int> applied{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 8; ++i) {
    threads.emplace_back([&] {
      ProgressReport r;
      r.state = "received";
      auto t = narrow->ReportProgress("narrow", r);
      EXPECT_TRUE(t.has_value());
      applied.fetch_add(t.has_value() && t->applied ? 1 : 0);
    });
  }
  for (auto& t : threads) {
    t.join();
  }
  EXPECT_EQ(applied.load(), 8);
}

TEST_P(StoreTest, McpSessionsAreSharedByReplicasAndEndOnce) {
  McpSession s;
  s.id = "mcp-session-1";
  s.protocol_version = "2025-06-18";
  s.client_capabilities_json = R"({"sampling":{}})";
  ASSERT_OK(store_->CreateSession(s));
  EXPECT_EQ(store_->CreateSession(s).error().code, ErrorCode::kAlreadyExists);

  auto replica = OpenAnother();  // another gateway on the same database sees the session
  ASSERT_NE(replica, nullptr);
  ASSIGN_OR_FAIL(McpSession got, replica->GetSession("mcp-session-1"));
  EXPECT_EQ(got.protocol_version, "2025-06-18");
  EXPECT_EQ(nlohmann::json::parse(got.client_capabilities_json),
            nlohmann::json::parse(s.client_capabilities_json));
  EXPECT_EQ(got.created_at, clock_.WallNow());
  EXPECT_EQ(got.last_seen_at, clock_.WallNow());

  clock_.Advance(seconds(30));
  ASSERT_OK(replica->TouchSession("mcp-session-1"));
  ASSIGN_OR_FAIL(got, store_->GetSession("mcp-session-1"));
  EXPECT_EQ(got.last_seen_at, clock_.WallNow());
  EXPECT_EQ(got.created_at, clock_.WallNow() - seconds(30));

  ASSIGN_OR_FAIL(bool ended, replica->DeleteSession("mcp-session-1"));
  EXPECT_TRUE(ended);
  ASSIGN_OR_FAIL(ended, store_->DeleteSession("mcp-session-1"));
  EXPECT_FALSE(ended);
  EXPECT_EQ(store_->GetSession("mcp-session-1").error().code, ErrorCode::kNotFound);
  EXPECT_EQ(store_->TouchSession("mcp-session-1").error().code, ErrorCode::kNotFound);
}

TEST_P(StoreTest, McpSessionsWithoutCapabilitiesAndBadOnes) {
  McpSession bare;
  bare.id = "bare";
  bare.protocol_version = "2024-11-05";
  ASSERT_OK(store_->CreateSession(bare));
  ASSIGN_OR_FAIL(McpSession got, store_->GetSession("bare"));
  EXPECT_EQ(got.client_capabilities_json, "");

  McpSession bad = bare;
  bad.id = "";
  EXPECT_EQ(store_->CreateSession(bad).error().code, ErrorCode::kInvalidArgument);
  bad = bare;
  bad.id = "v";
  bad.protocol_version = "";
  EXPECT_EQ(store_->CreateSession(bad).error().code, ErrorCode::kInvalidArgument);
  bad = bare;
  bad.id = "j";
  bad.client_capabilities_json = "{not json";
  EXPECT_EQ(store_->CreateSession(bad).error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(store_->GetSession("j").error().code, ErrorCode::kNotFound);
}

TEST_P(StoreTest, IdleMcpSessionsArePurged) {
  McpSession s;
  s.protocol_version = "2025-03-26";
  s.id = "old";
  ASSERT_OK(store_->CreateSession(s));
  clock_.Advance(std::chrono::hours(2));
  s.id = "recent";
  ASSERT_OK(store_->CreateSession(s));
  ASSIGN_OR_FAIL(std::int64_t purged,
                 store_->PurgeSessionsIdleBefore(clock_.WallNow() - std::chrono::hours(1)));
  EXPECT_EQ(purged, 1);
  EXPECT_EQ(store_->GetSession("old").error().code, ErrorCode::kNotFound);
  ASSERT_OK(store_->GetSession("recent"));
}

INSTANTIATE_TEST_SUITE_P(Backends, StoreTest,
                         ::testing::Values(Backend::kSqlite, Backend::kPostgres), BackendName);

}  // namespace
}  // namespace asya::store::testing
