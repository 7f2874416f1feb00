// The no-loss checker's bookkeeping (src/check): expected outputs, lost / duplicated / unexpected,
// crew file names, fault names and the seeded schedule.
#include "asya/check/accounting.h"

#include <algorithm>

#include <gtest/gtest.h>

#include "asya/check/check.h"
#include "asya/check/schedule.h"

namespace asya::check {
namespace {

Seen AllArrived(std::string_view prefix, int64_t n) {
  Seen seen;
  for (int64_t i = 0; i < n; ++i) {
    for (const auto& e : ExpectedOutputs(prefix, i)) {
      if (e.place == Place::kHappy) {
        ++seen[e.id].happy;
      } else {
        ++seen[e.id].error;
      }
    }
  }
  return seen;
}

TEST(CheckAccounting, IdsAndPlaces) {
  EXPECT_EQ(EnvelopeId("chk1n", 42), "chk1n00000042");
  auto seven = ExpectedOutputs("p", 17);
  ASSERT_EQ(seven.size(), 2u);
  EXPECT_EQ(seven[0].id, "p00000017");
  EXPECT_EQ(seven[0].place, Place::kHappy);
  EXPECT_EQ(seven[1].id, "p00000017-1");
  EXPECT_EQ(seven[1].place, Place::kError);
  EXPECT_EQ(ExpectedOutputs("p", 3)[1].place, Place::kHappy);  // transient failure: retried
  EXPECT_EQ(ExpectedCount(10), 20);
}

TEST(CheckAccounting, EverythingWhereItBelongsIsClean) {
  Tally t = Account("p", 30, AllArrived("p", 30));
  EXPECT_EQ(t.expected, 60);
  EXPECT_EQ(t.arrived, 60);
  EXPECT_EQ(ResultLine(t), "lost=0 duplicated=0 unexpected=0");
}

TEST(CheckAccounting, MissingIsLost) {
  Seen seen = AllArrived("p", 30);
  seen.erase("p00000005-1");
  Tally t = Account("p", 30, seen);
  EXPECT_EQ(ResultLine(t), "lost=1 duplicated=0 unexpected=0");
  ASSERT_EQ(t.lost_ids.size(), 1u);
  EXPECT_EQ(t.lost_ids[0], "p00000005-1");
}

TEST(CheckAccounting, TwiceIsDuplicatedNotLost) {
  Seen seen = AllArrived("p", 30);
  ++seen["p00000004"].happy;  // twice at happy-end
  ++seen["p00000017-1"].dlq;  // at error-end and in a DLQ
  Tally t = Account("p", 30, seen);
  EXPECT_EQ(ResultLine(t), "lost=0 duplicated=2 unexpected=0");
  EXPECT_EQ(t.dead_lettered, 1);
}

TEST(CheckAccounting, DeadLetteredIsAccountedFor) {
  Seen seen = AllArrived("p", 30);
  seen["p00000002"] = Arrivals{0, 0, 1};
  Tally t = Account("p", 30, seen);
  EXPECT_EQ(ResultLine(t), "lost=0 duplicated=0 unexpected=0");
  EXPECT_EQ(t.dead_lettered, 1);
}

TEST(CheckAccounting, WrongEndIsUnexpected) {
  Seen seen = AllArrived("p", 30);
  seen["p00000003-1"] = Arrivals{0, 1, 0};  // should have been retried to happy-end
  seen["p00000027-1"] = Arrivals{1, 0, 0};  // should have failed
  Tally t = Account("p", 30, seen);
  EXPECT_EQ(ResultLine(t), "lost=0 duplicated=0 unexpected=2");
  ASSERT_EQ(t.unexpected_notes.size(), 2u);
  EXPECT_EQ(t.unexpected_notes[0], "p00000003-1: at error-end (expected happy-end)");
}

TEST(CheckAccounting, UnknownIdsAreUnexpected) {
  Seen seen = AllArrived("p", 30);
  ++seen["p00000003-2"].happy;  // a fan-out that should not exist
  ++seen["p00000030"].happy;    // beyond N
  ++seen["other"].error;
  Tally t = Account("p", 30, seen);
  EXPECT_EQ(ResultLine(t), "lost=0 duplicated=0 unexpected=3");
}

TEST(CheckAccounting, CrewFileNames) {
  EXPECT_EQ(IdOfCrewFile("p00000001-1.json"), "p00000001-1");
  EXPECT_EQ(IdOfCrewFile("p00000001.json.tmp.12.3"), "");
  EXPECT_EQ(IdOfCrewFile(".json"), "");
  EXPECT_EQ(IdOfCrewFile("readme"), "");
}

TEST(CheckFaults, ParseNames) {
  auto f = ParseFaults("kill-sidecar,stop-runtime,kill-sidecar");
  ASSERT_TRUE(f.has_value());
  ASSERT_EQ(f->size(), 2u);
  EXPECT_EQ((*f)[0], FaultKind::kKillSidecar);
  EXPECT_EQ((*f)[1], FaultKind::kStopRuntime);
  EXPECT_TRUE(ParseFaults("none")->empty());
  EXPECT_TRUE(ParseFaults("")->empty());
  auto bad = ParseFaults("kill-sidecar,explode");
  ASSERT_FALSE(bad.has_value());
  EXPECT_EQ(bad.error().code, ErrorCode::kInvalidArgument);
  EXPECT_NE(bad.error().message.find("unknown fault 'explode'"), std::string::npos);
  EXPECT_EQ(bad.error().message.find("drop"), std::string::npos);  // test-only, not advertised
  EXPECT_FALSE(CheckFaultsFit({FaultKind::kBrokerKill}, "sqlite").has_value());
  EXPECT_TRUE(CheckFaultsFit({FaultKind::kBrokerKill}, "rabbitmq").has_value());
}

TEST(CheckFaults, NetworkFaults) {
  auto f = ParseFaults("partition,partition-long,delay,loss");
  ASSERT_TRUE(f.has_value());
  ASSERT_EQ(f->size(), 4u);
  EXPECT_EQ((*f)[0], FaultKind::kPartition);
  EXPECT_EQ((*f)[1], FaultKind::kPartitionLong);
  EXPECT_EQ((*f)[2], FaultKind::kDelay);
  EXPECT_EQ((*f)[3], FaultKind::kLoss);
  for (FaultKind k : *f) {
    EXPECT_TRUE(IsNetworkFault(k));
    EXPECT_TRUE(CheckFaultsFit({k}, "rabbitmq").has_value());
    EXPECT_TRUE(CheckFaultsFit({k}, "sqs").has_value());
    auto bad = CheckFaultsFit({k}, "sqlite");
    ASSERT_FALSE(bad.has_value());
    EXPECT_NE(bad.error().message.find("needs --transport rabbitmq or sqs"), std::string::npos);
  }
  EXPECT_FALSE(IsNetworkFault(FaultKind::kBrokerKill));
  EXPECT_NE(ParseFaults("x").error().message.find("partition-long"), std::string::npos);
}

TEST(CheckSchedule, SameSeedSameSchedule) {
  std::vector<FaultKind> kinds = {FaultKind::kKillSidecar, FaultKind::kKillRuntime};
  Schedule a(kinds, 7, 2.0);
  Schedule b(kinds, 7, 2.0);
  Schedule c(kinds, 8, 2.0);
  bool differs = false;
  double last = 0;
  for (int i = 0; i < 50; ++i) {
    FaultEvent x = a.Next();
    FaultEvent y = b.Next();
    FaultEvent z = c.Next();
    EXPECT_EQ(x.at_s, y.at_s);
    EXPECT_EQ(x.kind, y.kind);
    EXPECT_EQ(x.pick, y.pick);
    EXPECT_GE(x.at_s - last, 1.0);  // gaps in [0.5, 1.5] x 2 s
    EXPECT_LE(x.at_s - last, 3.0);
    last = x.at_s;
    differs = differs || x.pick != z.pick;
  }
  EXPECT_TRUE(differs);
}

TEST(CheckSchedule, EveryKindOncePerRound) {
  std::vector<FaultKind> kinds = {FaultKind::kKillSidecar, FaultKind::kKillRuntime,
                                  FaultKind::kStopRuntime, FaultKind::kKillAll};
  Schedule s(kinds, 11, 1.0);
  for (int round = 0; round < 20; ++round) {
    std::vector<FaultKind> got;
    for (size_t i = 0; i < kinds.size(); ++i) {
      got.push_back(s.Next().kind);
    }
    std::sort(got.begin(), got.end());
    EXPECT_EQ(got, kinds) << "round " << round;
  }
}

}  // namespace
}  // namespace asya::check
