// `asya send`'s pure steps: route parsing, payload reading and checking, envelope building.
#include "asya/local/send.h"

#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>

#include <unistd.h>

#include <gtest/gtest.h>

#include "asya/base/exit_codes.h"
#include "asya/envelope/envelope.h"

namespace asya::local {
namespace {

namespace fs = std::filesystem;

TEST(SendRoute, NamesAreTrimmedAndChecked) {
  auto r = ParseRoute("a, b ,c");
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(*r, (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(*ParseRoute("one"), std::vector<std::string>{"one"});
  for (auto [route, bad] :
       {std::pair{"Bad_Actor", "Bad_Actor"}, std::pair{"a,", ""}, std::pair{",a", ""},
        std::pair{"", ""}, std::pair{"a,,b", ""}, std::pair{"a,-b", "-b"}}) {
    auto e = ParseRoute(route);
    ASSERT_FALSE(e.has_value()) << route;
    EXPECT_EQ(e.error().code, ErrorCode::kInvalidArgument);
    EXPECT_EQ(e.error().message,
              std::string("ROUTE must be comma-separated actor names (DNS-1123 labels); '") + bad +
                  "' is not one");
  }
}

TEST(SendPayload, ArgumentStdinOrFile) {
  std::istringstream in("{\"from\":\"stdin\"}");
  EXPECT_EQ(*ReadPayloadText("{\"n\":1}", false, in), "{\"n\":1}");
  EXPECT_EQ(*ReadPayloadText("-", false, in), "{\"from\":\"stdin\"}");
  std::istringstream lines("1\n2\n");
  EXPECT_EQ(*ReadPayloadText("-", true, lines), "1\n2\n");
  const std::string path =
      (fs::temp_directory_path() / ("asya-send-" + std::to_string(::getpid()))).string();
  std::ofstream(path) << "{}\n[]\n";
  std::istringstream unused;
  EXPECT_EQ(*ReadPayloadText(path, true, unused), "{}\n[]\n");
  fs::remove(path);
  auto missing = ReadPayloadText(path, true, unused);
  ASSERT_FALSE(missing.has_value());
  EXPECT_EQ(missing.error().message, "cannot read " + path);
}

TEST(SendPayload, OneOrManyChecked) {
  EXPECT_EQ(*SplitPayloads(" {\"n\": 1} ", false), std::vector<std::string>{" {\"n\": 1} "});
  EXPECT_EQ(*SplitPayloads("{\"n\":1}\n\n  \n[2]\r\n\"x\"", true),
            (std::vector<std::string>{"{\"n\":1}", "[2]\r", "\"x\""}));
  auto bad = SplitPayloads("{not json", false);
  ASSERT_FALSE(bad.has_value());
  EXPECT_EQ(bad.error().message.rfind("PAYLOAD is not valid JSON: ", 0), 0u) << bad.error().message;
  auto bad_line = SplitPayloads("{\"n\": 1}\n{oops}\n", true);
  ASSERT_FALSE(bad_line.has_value());
  EXPECT_EQ(bad_line.error().message.rfind("payload 2 is not valid JSON: ", 0), 0u);
  auto bad_utf8 = SplitPayloads("\"\xff\"", false);
  ASSERT_FALSE(bad_utf8.has_value());
  EXPECT_NE(bad_utf8.error().message.find("UTF-8"), std::string::npos);
  EXPECT_FALSE(SplitPayloads("", false).has_value());
  EXPECT_FALSE(SplitPayloads("{} {}", false).has_value());  // trailing data
  auto none = SplitPayloads("\n \n", true);
  ASSERT_FALSE(none.has_value());
  EXPECT_EQ(none.error().message, "no payloads given");
}

TEST(SendEnvelope, PayloadIsEmbeddedByteForByte) {
  const std::string payload = "{\"b\": 1.50, \"a\": [1e3]}";
  const std::string text = BuildEnvelope("id-1", {"x", "y"}, "00-aa-bb-01", payload);
  EXPECT_NE(text.find("\"payload\":" + payload), std::string::npos) << text;
  auto e = envelope::Parse(text);
  ASSERT_TRUE(e.has_value()) << e.error().message;
  EXPECT_EQ(e->id, "id-1");
  EXPECT_EQ(e->route.actors, (std::vector<std::string>{"x", "y"}));
  EXPECT_EQ(e->route.current, 0);
  EXPECT_EQ(e->GetHeaderString("traceparent"), "00-aa-bb-01");
  EXPECT_EQ(e->payload_json, payload);
  EXPECT_FALSE(e->parent_id.has_value());
}

TEST(SendEnvelope, IdsAndTraceparentsAreWellFormed) {
  const std::regex uuid("[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}");
  const std::regex tp("00-[0-9a-f]{32}-[0-9a-f]{16}-01");
  for (int i = 0; i < 50; ++i) {
    EXPECT_TRUE(std::regex_match(NewEnvelopeId(), uuid));
    EXPECT_TRUE(std::regex_match(NewTraceparent(), tp));
  }
  EXPECT_NE(NewEnvelopeId(), NewEnvelopeId());
}

TEST(SendWait, StampFloorIsTwoSecondsEarlierInUtc) {
  // 2023-11-14T22:13:20Z
  Clock::WallTime t{std::chrono::seconds(1'700'000'000)};
  EXPECT_EQ(CrewStampFloor(t), "2023-11-14T22:13:18");
  // A crew directory name of that second sorts after the floor.
  EXPECT_GT(std::string("2023-11-14T22:13:18.000001Z"), CrewStampFloor(t));
}

void Store(const fs::path& root, const std::string& dir, const std::string& stamp,
           const std::string& id, const std::string& headers = "{}") {
  fs::create_directories(root / dir / stamp / "a");
  std::ofstream(root / dir / stamp / "a" / (id + ".json"))
      << R"({"id":")" << id << R"(","headers":)" << headers << R"(,"payload":1})";
}

TEST(SendWait, FindsOnlyDirectoriesFromTheSendOn) {
  const fs::path root = fs::temp_directory_path() / ("asya-wait-" + std::to_string(::getpid()));
  fs::remove_all(root);
  Store(root, "results", "2023-11-14T22:13:10.000000Z", "old");
  Store(root, "errors", "2023-11-14T22:13:19.000000Z", "new");
  const std::string since = "2023-11-14T22:13:18";
  ManualClock clock;
  ResultWatcher w(root.string(), since, {"new"});
  WaitSummary r = WaitForTrees(w, std::chrono::seconds(5), clock);
  EXPECT_EQ(r.outcome, SendOutcome::kFailed);
  ASSERT_EQ(r.finals.size(), 1u);
  EXPECT_EQ(r.finals[0].path, (root / "errors/2023-11-14T22:13:19.000000Z/a/new.json").string());
  EXPECT_EQ(ExitCodeOf(r.outcome), exit_code::kFailed);
  ResultWatcher old(root.string(), since, {"old"});
  WaitSummary none = WaitForTrees(old, std::chrono::seconds(5), clock);
  EXPECT_EQ(none.outcome, SendOutcome::kTimedOut);
  EXPECT_TRUE(none.finals.empty());
  EXPECT_EQ(none.incomplete, std::vector<std::string>{"old"});
  // DESIGN precise 12: nothing arrived within the timeout is 3, not a usage error (2).
  EXPECT_EQ(ExitCodeOf(none.outcome), exit_code::kNothingArrived);
  EXPECT_EQ(ExitCodeOf(none.outcome), 3);
  EXPECT_GE(clock.Slept(), std::chrono::seconds(5));
  fs::remove_all(root);
}

TEST(SendWait, CompactJsonKeepsStringsByteForByte) {
  EXPECT_EQ(CompactJson("{\n  \"a b\": [1, 2.50],\n  \"s\": \"x \\\" \\n\\t y\"\n}\n"),
            "{\"a b\":[1,2.50],\"s\":\"x \\\" \\n\\t y\"}");
}

TEST(SendWait, RootOfFanOutChildren) {
  const std::vector<std::string> roots = {"5f0c-aa", "x"};
  EXPECT_EQ(RootOf("5f0c-aa", roots), "5f0c-aa");
  EXPECT_EQ(RootOf("5f0c-aa-1", roots), "5f0c-aa");
  EXPECT_EQ(RootOf("5f0c-aa-12-3", roots), "5f0c-aa");
  EXPECT_EQ(RootOf("x-2", roots), "x");
  EXPECT_EQ(RootOf("5f0c", roots), "");
  EXPECT_EQ(RootOf("x-a", roots), "");
  EXPECT_EQ(RootOf("y-1", roots), "");
  EXPECT_EQ(RootOf("x-", roots), "");
}

FinalEnvelope F(std::string id, std::vector<int64_t> fanout = {}) {
  FinalEnvelope f;
  f.root = "x";
  f.id = std::move(id);
  f.fanout = std::move(fanout);
  return f;
}

TEST(SendWait, TreeIsCompleteWhenEveryRecordedChildIsFinal) {
  EXPECT_FALSE(TreeComplete("x", {}));
  EXPECT_TRUE(TreeComplete("x", {F("x")}));
  // A child arrives before the root: the root's record is still unknown.
  EXPECT_FALSE(TreeComplete("x", {F("x-1"), F("x-2")}));
  EXPECT_FALSE(TreeComplete("x", {F("x", {3}), F("x-1")}));
  EXPECT_TRUE(TreeComplete("x", {F("x", {3}), F("x-2"), F("x-1")}));
  // Nested: x-1 split again into x-1, x-1-1.
  EXPECT_FALSE(TreeComplete("x", {F("x", {3}), F("x-1", {2}), F("x-2")}));
  EXPECT_TRUE(TreeComplete("x", {F("x", {3}), F("x-1", {2}), F("x-2"), F("x-1-1")}));
  // The same id split twice (3, then 2): ids x-1 coincide, so count the files too.
  EXPECT_FALSE(TreeComplete("x", {F("x", {3, 2}), F("x-1"), F("x-2")}));
  EXPECT_TRUE(TreeComplete("x", {F("x", {3, 2}), F("x-1"), F("x-2"), F("x-1")}));
}

TEST(SendWait, WaitsForEveryResultOfAFanOut) {
  const fs::path root = fs::temp_directory_path() / ("asya-tree-" + std::to_string(::getpid()));
  fs::remove_all(root);
  const std::string since = "2023-11-14T22:13:18";
  Store(root, "results", "2023-11-14T22:13:19.000001Z", "r-1");
  Store(root, "results", "2023-11-14T22:13:19.000002Z", "other-1");
  ResultWatcher w(root.string(), since, {"r"});
  auto first = w.Poll();
  ASSERT_EQ(first.size(), 1u);
  EXPECT_EQ(first[0].id, "r-1");
  EXPECT_FALSE(w.Complete("r"));
  EXPECT_TRUE(w.Poll().empty());  // each file is returned once
  Store(root, "results", "2023-11-14T22:13:19.000003Z", "r", R"({"x-asya-fanout":[3]})");
  Store(root, "errors", "2023-11-14T22:13:19.000004Z", "r-2");
  ManualClock clock;
  std::vector<std::string> seen;
  WaitSummary sum = WaitForTrees(w, std::chrono::seconds(5), clock,
                                 [&](const FinalEnvelope& f) { seen.push_back(f.id); });
  EXPECT_EQ(seen, (std::vector<std::string>{"r", "r-2"}));
  EXPECT_EQ(sum.outcome, SendOutcome::kFailed);
  EXPECT_EQ(sum.succeeded, 1u);  // r-1 was returned by the first Poll, outside this wait
  EXPECT_EQ(sum.failed, 1u);
  EXPECT_TRUE(w.Complete("r"));
  EXPECT_EQ(CountLine(2, 1), "3 results: 2 succeeded, 1 failed");
  EXPECT_EQ(CountLine(1, 0), "1 result: 1 succeeded, 0 failed");
  fs::remove_all(root);
}

}  // namespace
}  // namespace asya::local
