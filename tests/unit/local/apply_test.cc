// The up/apply protocol's decisions: next desired state, progress of an apply, the supervisor's
// diff and the summary `asya up` prints. Plus the file and wait parts on a temp dir.
#include "asya/local/apply.h"

#include <filesystem>

#include <unistd.h>

#include <gtest/gtest.h>

#include "asya/local/supervisor.h"

namespace asya::local {
namespace {

namespace fs = std::filesystem;

actor::ActorSpec Spec(const std::string& name, int timeout = 10) {
  actor::ActorSpec a;
  a.name = name;
  a.processing_timeout_s = timeout;
  return a;
}

TEST(NextDesired, FirstUpStartsAtGenerationOne) {
  auto d = NextDesired(std::nullopt, {"/m"}, "rabbitmq", /*running=*/false, "/s");
  ASSERT_TRUE(d.has_value());
  EXPECT_EQ(d->generation, 1);
  EXPECT_EQ(d->paths, std::vector<std::string>{"/m"});
  EXPECT_EQ(d->transport, "rabbitmq");
}

TEST(NextDesired, GenerationKeepsGrowingAcrossRestarts) {
  DesiredState old{7, {"/old"}, "sqs"};
  auto d = NextDesired(old, {"/new"}, "sqlite", /*running=*/false, "/s");
  ASSERT_TRUE(d.has_value());
  EXPECT_EQ(d->generation, 8);  // a stopped mesh may switch transports
  EXPECT_EQ(d->transport, "sqlite");
  EXPECT_EQ(d->paths, std::vector<std::string>{"/new"});
}

TEST(NextDesired, RunningMeshKeepsItsTransport) {
  DesiredState old{3, {"/a"}, "sqlite"};
  auto same = NextDesired(old, {"/a", "/b"}, "sqlite", /*running=*/true, "/s");
  ASSERT_TRUE(same.has_value());
  EXPECT_EQ(same->generation, 4);
  auto other = NextDesired(old, {"/a"}, "rabbitmq", /*running=*/true, "/state");
  ASSERT_FALSE(other.has_value());
  EXPECT_EQ(other.error().code, ErrorCode::kFailedPrecondition);
  EXPECT_EQ(other.error().message,
            "the mesh running in /state uses transport sqlite; stop it with `asya down` before "
            "switching to rabbitmq");
  // No readable desired.json: a running mesh counts as sqlite (the default).
  EXPECT_FALSE(NextDesired(std::nullopt, {"/a"}, "sqs", true, "/s").has_value());
  EXPECT_TRUE(NextDesired(std::nullopt, {"/a"}, "sqlite", true, "/s").has_value());
}

TEST(CheckApplied, Decisions) {
  MeshStatus st;
  st.pid = 42;
  st.generation = 5;
  EXPECT_EQ(CheckApplied(st, 42, 5, false), ApplyProgress::kApplied);
  EXPECT_EQ(CheckApplied(st, 42, 4, false), ApplyProgress::kApplied);  // a later apply won
  EXPECT_EQ(CheckApplied(st, 42, 6, false), ApplyProgress::kWaiting);
  EXPECT_EQ(CheckApplied(st, 42, 6, true), ApplyProgress::kExited);
  EXPECT_EQ(CheckApplied(st, 43, 5, false), ApplyProgress::kWaiting);  // an older supervisor's
  EXPECT_EQ(CheckApplied(std::nullopt, 42, 1, false), ApplyProgress::kWaiting);
  EXPECT_EQ(CheckApplied(std::nullopt, 42, 1, true), ApplyProgress::kExited);
  EXPECT_EQ(CheckApplied(st, 42, 5, true), ApplyProgress::kApplied);  // applied, then stopped
}

TEST(PlanApply, AddsUpdatesKeepsAndRemoves) {
  std::vector<actor::ActorSpec> desired = {Spec("new"), Spec("same"), Spec("changed", 99),
                                           Spec("back")};
  std::vector<RunningActor> running = {
      {"back", Spec("back").Fingerprint(), /*removing=*/true},
      {"changed", Spec("changed").Fingerprint(), false},
      {"gone", Spec("gone").Fingerprint(), false},
      {"going", Spec("going").Fingerprint(), /*removing=*/true},
      {"same", Spec("same").Fingerprint(), false},
  };
  ApplyPlan plan = PlanApply(running, desired, /*prune=*/true);
  ASSERT_EQ(plan.changes.size(), 4u);
  using K = ActorChange::Kind;
  EXPECT_EQ(plan.changes[0].kind, K::kAdd);
  EXPECT_EQ(plan.changes[1].kind, K::kKeep);
  EXPECT_EQ(plan.changes[2].kind, K::kUpdate);
  EXPECT_EQ(plan.changes[3].kind, K::kKeep);
  EXPECT_TRUE(plan.changes[3].redeclared);
  EXPECT_FALSE(plan.changes[1].redeclared);
  for (size_t i = 0; i < plan.changes.size(); ++i) {
    EXPECT_EQ(plan.changes[i].spec_index, i);
  }
  // "going" is already being removed: not removed twice.
  EXPECT_EQ(plan.removed, std::vector<std::string>{"gone"});
  EXPECT_TRUE(plan.undeclared.empty());
}

// Issue 11 item 6: like `kubectl apply`, an apply without --prune only adds and updates.
TEST(PlanApply, WithoutPruneUndeclaredActorsKeepRunning) {
  std::vector<RunningActor> running = {{"a", Spec("a").Fingerprint(), false},
                                       {"b", Spec("b").Fingerprint(), false},
                                       {"going", Spec("going").Fingerprint(), true}};
  ApplyPlan plan = PlanApply(running, {Spec("a", 99), Spec("c")});
  ASSERT_EQ(plan.changes.size(), 2u);
  EXPECT_EQ(plan.changes[0].kind, ActorChange::Kind::kUpdate);
  EXPECT_EQ(plan.changes[1].kind, ActorChange::Kind::kAdd);
  EXPECT_TRUE(plan.removed.empty());
  EXPECT_EQ(plan.undeclared, std::vector<std::string>{"b"});
}

TEST(PlanApply, OnlyTheSourceChangedIsAKeep) {
  actor::ActorSpec moved = Spec("a");
  moved.source = "/elsewhere/a.yaml";
  ApplyPlan plan = PlanApply({{"a", Spec("a").Fingerprint(), false}}, {moved});
  ASSERT_EQ(plan.changes.size(), 1u);
  EXPECT_EQ(plan.changes[0].kind, ActorChange::Kind::kKeep);
}

TEST(PlanApply, EmptyDesiredRemovesEverything) {
  ApplyPlan plan = PlanApply({{"a", "x", false}, {"b", "y", false}}, {}, /*prune=*/true);
  EXPECT_TRUE(plan.changes.empty());
  EXPECT_EQ(plan.removed, (std::vector<std::string>{"a", "b"}));
}

TEST(SummariseApply, AddedKeptRemoved) {
  ApplySummary s =
      SummariseApply({"a", "b", "c"}, {Spec("b"), Spec("d"), Spec("a")}, /*prune=*/true);
  EXPECT_EQ(s.added, std::vector<std::string>{"d"});
  EXPECT_EQ(s.kept, (std::vector<std::string>{"b", "a"}));
  EXPECT_EQ(s.removed, std::vector<std::string>{"c"});
  s = SummariseApply({"a", "b", "c"}, {Spec("b"), Spec("d"), Spec("a")});
  EXPECT_TRUE(s.removed.empty());
  EXPECT_EQ(s.undeclared, std::vector<std::string>{"c"});
}

TEST(NextDesired, CarriesPrune) {
  auto d = NextDesired(std::nullopt, {"/m"}, "sqlite", /*running=*/true, "/s", /*prune=*/true);
  ASSERT_TRUE(d.has_value());
  EXPECT_TRUE(d->prune);
  auto round = DecodeDesired(EncodeDesired(*d));
  ASSERT_TRUE(round.has_value());
  EXPECT_TRUE(round->prune);
  EXPECT_FALSE(DecodeDesired(R"({"generation":1,"paths":[]})")->prune);
}

// Issue 11 item 4: `asya up --detach` waits until each actor is ready or failing.
TEST(CheckReadiness, ReadyFailingStarting) {
  MeshStatus st;
  auto actor = [](const std::string& name, int ready, int total, int desired, int failing) {
    ActorStatus a;
    a.name = name;
    a.ready = ready;
    a.total = total;
    a.desired = desired;
    a.failing = failing;
    return a;
  };
  st.actors = {actor("ok", 2, 2, 2, 0), actor("napping", 0, 0, 0, 0), actor("broken", 0, 1, 1, 1),
               actor("half", 1, 2, 2, 0), actor("partly-broken", 1, 2, 2, 1)};
  Readiness r = CheckReadiness(st, {});
  EXPECT_EQ(r.ready, (std::vector<std::string>{"ok", "napping"}));
  EXPECT_EQ(r.failing, (std::vector<std::string>{"broken", "partly-broken"}));
  EXPECT_EQ(r.starting, std::vector<std::string>{"half"});
  EXPECT_FALSE(r.Settled());
  r = CheckReadiness(st, {"ok", "broken", "not-yet"});
  EXPECT_EQ(r.ready, std::vector<std::string>{"ok"});
  EXPECT_EQ(r.failing, std::vector<std::string>{"broken"});
  EXPECT_EQ(r.starting, std::vector<std::string>{"not-yet"});
}

class ApplyFiles : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = (fs::temp_directory_path() / ("asya-apply-" + std::to_string(::getpid()))).string();
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  void WriteStatus(int pid, int64_t generation, const std::string& last_error = "") {
    MeshStatus st;
    st.pid = pid;
    st.generation = generation;
    st.last_error = last_error;
    ASSERT_TRUE(WriteFileAtomic(StatusPath(dir_), EncodeMeshStatus(st)).has_value());
  }
  std::string dir_;
};

TEST_F(ApplyFiles, DesiredRoundTrip) {
  EXPECT_FALSE(ReadDesired(dir_).has_value());
  DesiredState d{4, {"/a", "/b c"}, "sqs"};
  ASSERT_TRUE(WriteDesired(dir_, d).has_value());
  auto back = ReadDesired(dir_);
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(back->generation, 4);
  EXPECT_EQ(back->paths, d.paths);
  EXPECT_EQ(back->transport, "sqs");
  auto bad = DecodeDesired("{\"paths\": []}");
  ASSERT_FALSE(bad.has_value());
  EXPECT_EQ(bad.error().code, ErrorCode::kInvalidArgument);
  auto old = DecodeDesired("{\"generation\": 2, \"paths\": []}");  // before --transport existed
  ASSERT_TRUE(old.has_value());
  EXPECT_EQ(old->transport, "sqlite");
}

TEST_F(ApplyFiles, WaitAppliedReturnsTheAppliedStatus) {
  WriteStatus(77, 3);
  ManualClock clock;
  auto st = WaitApplied(
      dir_, 77, 3, std::chrono::seconds(30), [] { return false; }, clock);
  ASSERT_TRUE(st.has_value());
  EXPECT_EQ(st->generation, 3);
}

TEST_F(ApplyFiles, WaitAppliedTimesOut) {
  WriteStatus(77, 2);
  ManualClock clock;
  auto st = WaitApplied(
      dir_, 77, 3, std::chrono::seconds(30), [] { return false; }, clock);
  ASSERT_FALSE(st.has_value());
  EXPECT_EQ(st.error().code, ErrorCode::kDeadlineExceeded);
  EXPECT_GE(clock.Slept(), std::chrono::seconds(30));
}

TEST_F(ApplyFiles, WaitReadyReturnsOnceSettledOrTimedOut) {
  MeshStatus st;
  st.pid = 77;
  ActorStatus a;
  a.name = "slow";
  a.total = 1;
  a.desired = 1;  // starting: not ready yet
  st.actors.push_back(a);
  ASSERT_TRUE(WriteFileAtomic(StatusPath(dir_), EncodeMeshStatus(st)).has_value());
  ManualClock clock;
  int polls = 0;
  Readiness r = WaitReady(
      dir_, {}, std::chrono::seconds(10), [&](const Readiness&) { ++polls; }, clock);
  EXPECT_EQ(r.starting, std::vector<std::string>{"slow"});
  EXPECT_GE(clock.Slept(), std::chrono::seconds(10));
  EXPECT_GT(polls, 1);
  st.actors[0].failing = 1;
  ASSERT_TRUE(WriteFileAtomic(StatusPath(dir_), EncodeMeshStatus(st)).has_value());
  ManualClock again;
  r = WaitReady(dir_, {}, std::chrono::seconds(10), nullptr, again);
  EXPECT_EQ(r.failing, std::vector<std::string>{"slow"});
  EXPECT_EQ(again.Slept(), Clock::Duration::zero());
}

TEST_F(ApplyFiles, WaitAppliedReportsAnExitedSupervisor) {
  WriteStatus(77, 0, "actor x: spec.scaling.minReplicas: must be >= 0");
  ManualClock clock;
  auto refused = WaitApplied(
      dir_, 77, 1, std::chrono::seconds(30), [] { return true; }, clock);
  ASSERT_FALSE(refused.has_value());
  EXPECT_EQ(refused.error().code, ErrorCode::kFailedPrecondition);
  EXPECT_EQ(refused.error().message, "actor x: spec.scaling.minReplicas: must be >= 0");
  WriteStatus(77, 0);
  auto exited = WaitApplied(
      dir_, 77, 1, std::chrono::seconds(30), [] { return true; }, clock);
  ASSERT_FALSE(exited.has_value());
  EXPECT_EQ(exited.error().code, ErrorCode::kUnavailable);
  EXPECT_NE(exited.error().message.find("logs/asya.log"), std::string::npos);
}

}  // namespace
}  // namespace asya::local
