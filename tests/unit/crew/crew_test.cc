#include "asya/crew/crew.h"

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <vector>

#include <sys/wait.h>

#include <gtest/gtest.h>

#include "support/status_matchers.h"
#include "support/temp_dir.h"

namespace asya::crew {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using std::chrono::milliseconds;

json Env(json actors, int current) {
  return {{"id", "abc"}, {"route", {{"actors", actors}, {"current", current}}}, {"payload", 1}};
}

std::string ReadFile(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// Every file under `root`, relative paths.
std::vector<std::string> Files(const std::string& root) {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& e : fs::recursive_directory_iterator(root, ec)) {
    if (e.is_regular_file()) {
      out.push_back(fs::relative(e.path(), root).string());
    }
  }
  return out;
}

TEST(Crew, FiledUnderTheActorTheEnvelopeWasAt) {
  EXPECT_EQ(FiledActor(Env({"a", "b", "c"}, 1)), "b");
  EXPECT_EQ(FiledActor(Env({"a", "b", "c"}, 2)), "c");
  // An error at the first actor is filed under it (the original named the last actor).
  EXPECT_EQ(FiledActor(Env({"a", "b", "c"}, 0)), "a");
  // Past the end (happy-end after the last actor) -> the last actor.
  EXPECT_EQ(FiledActor(Env({"a", "b", "c"}, 3)), "c");
  EXPECT_EQ(FiledActor(Env({"a", "b", "c"}, -1)), "c");
  EXPECT_EQ(FiledActor(json{{"route", {{"actors", {"a", "b"}}}}}), "a");  // current absent = 0
  EXPECT_EQ(FiledActor(Env(json::array(), 0)), "unknown");
  EXPECT_EQ(FiledActor(Env({5}, 0)), "unknown");
  EXPECT_EQ(FiledActor(Env({""}, 0)), "unknown");
  EXPECT_EQ(FiledActor(json{{"id", "x"}}), "unknown");
  EXPECT_EQ(FiledActor(json("text")), "unknown");
}

TEST(Crew, KeyLayout) {
  auto t = std::chrono::system_clock::time_point(std::chrono::microseconds(1'700'000'000'123'456));
  EXPECT_EQ(FormatTimestamp(t), "2023-11-14T22:13:20.123456Z");
  EXPECT_EQ(MakeKey(Env({"a", "b"}, 1), "abc", "results/", t),
            "results/2023-11-14T22:13:20.123456Z/b/abc.json");
}

TEST(Crew, KeysNeverLeaveTheirDirectory) {
  json env = Env({"../x"}, 0);
  std::string key = MakeKey(env, "../../etc/passwd", "results/", std::chrono::system_clock::now());
  EXPECT_EQ(key.find("/../"), std::string::npos) << key;
  EXPECT_NE(key.find("/_._x/_._.._etc_passwd.json"), std::string::npos) << key;
}

TEST(Crew, UsableId) {
  EXPECT_EQ(UsableId(Env({"a"}, 0)), "abc");
  EXPECT_EQ(UsableId(json{{"id", ""}}), "");
  EXPECT_EQ(UsableId(json{{"id", 5}}), "");
  EXPECT_EQ(UsableId(json{{"payload", 1}}), "");
  EXPECT_EQ(UsableId(json::array()), "");
}

TEST(Crew, NewUuidIsVersion4) {
  const std::string a = NewUuid();
  ASSERT_EQ(a.size(), 36u) << a;
  EXPECT_EQ(a[14], '4') << a;
  EXPECT_NE(std::string("89ab").find(a[19]), std::string::npos) << a;
  EXPECT_NE(a, NewUuid());
}

TEST(Crew, StoresPrettyJsonInADirectory) {
  test::TempDir dir("asya-crew");
  DirectorySink sink(dir.path());
  ManualClock clock;
  Crew crew(sink, {.prefix = "results/"}, clock);
  ASSIGN_OR_FAIL(Stored s, crew.Persist(Env({"a", "b"}, 1)));
  EXPECT_EQ(s.id, "abc");
  EXPECT_FALSE(s.generated_id);
  EXPECT_EQ(s.attempts, 1);
  EXPECT_EQ(s.key, "results/" + FormatTimestamp(clock.WallNow()) + "/b/abc.json");
  EXPECT_EQ(s.uri, "file://" + dir.path() + "/" + s.key);
  const std::string text = ReadFile(fs::path(dir.path()) / s.key);
  EXPECT_EQ(json::parse(text), Env({"a", "b"}, 1));
  EXPECT_NE(text.find("\n  \"id\": \"abc\""), std::string::npos) << text;
  EXPECT_EQ(Files(dir.path()), std::vector<std::string>{s.key});  // no temporary file left
  EXPECT_EQ(Crew::Output(Env({"a", "b"}, 1), s), json(nullptr));  // no s3_uri for a directory
}

TEST(Crew, AnEnvelopeWithoutAUsableIdIsStoredUnderAGeneratedOne) {
  test::TempDir dir("asya-crew");
  DirectorySink sink(dir.path());
  ManualClock clock;
  int n = 0;
  Crew crew(sink,
            {.prefix = "errors/", .generate_id = [&] { return "gen-" + std::to_string(++n); }},
            clock);
  // The error envelope of a message that was not JSON (reference-dataplane §2.5).
  const json error_env = {{"id", ""},
                          {"route", {{"actors", {"error-end"}}, {"current", 0}}},
                          {"payload", {{"error", "Failed to parse message: x"}}}};
  ASSIGN_OR_FAIL(Stored a, crew.Persist(error_env));
  EXPECT_TRUE(a.generated_id);
  EXPECT_EQ(a.id, "gen-1");
  EXPECT_EQ(fs::path(a.key).filename(), "gen-1.json");
  EXPECT_EQ(json::parse(ReadFile(fs::path(dir.path()) / a.key)), error_env);  // stored as it came

  ASSIGN_OR_FAIL(Stored b, crew.Persist(json{{"id", 17}, {"payload", 1}}));
  EXPECT_EQ(b.id, "gen-2");
  ASSIGN_OR_FAIL(Stored c, crew.Persist(json("not an object")));
  EXPECT_EQ(c.id, "gen-3");
  EXPECT_NE(c.key.find("/unknown/gen-3.json"), std::string::npos) << c.key;
  EXPECT_EQ(json::parse(ReadFile(fs::path(dir.path()) / c.key)), json("not an object"));
  EXPECT_EQ(Files(dir.path()).size(), 3u);
}

TEST(Crew, TheDefaultGeneratedIdIsAUuid) {
  test::TempDir dir("asya-crew");
  DirectorySink sink(dir.path());
  ManualClock clock;
  Crew crew(sink, {}, clock);
  ASSIGN_OR_FAIL(Stored s, crew.Persist(json{{"payload", 1}}));
  EXPECT_EQ(s.id.rfind("crew-", 0), 0u) << s.id;
  EXPECT_EQ(s.id.size(), 5u + 36u) << s.id;
}

// A sink of our own interface that fails the first `failures` writes with `code`.
class FlakySink : public Sink {
 public:
  FlakySink(int failures, ErrorCode code) : failures_(failures), code_(code) {}
  Status Put(const std::string& key, std::string_view body) override {
    ++calls;
    if (calls <= failures_) {
      return MakeError(code_, "store down");
    }
    written.emplace_back(key, std::string(body));
    return Ok();
  }
  [[nodiscard]] std::string Uri(const std::string& key) const override { return "s3://b/" + key; }
  int calls = 0;
  std::vector<std::pair<std::string, std::string>> written;

 private:
  int failures_;
  ErrorCode code_;
};

TEST(Crew, TransientFailuresAreRetriedWithBackoff) {
  FlakySink sink(3, ErrorCode::kUnavailable);
  ManualClock clock;
  Crew crew(sink, {.retry = {.max_attempts = 5, .initial_backoff = milliseconds(100)}}, clock);
  ASSIGN_OR_FAIL(Stored s, crew.Persist(Env({"a"}, 1)));
  EXPECT_EQ(s.attempts, 4);
  EXPECT_EQ(sink.calls, 4);
  ASSERT_EQ(sink.written.size(), 1u);
  EXPECT_EQ(json::parse(sink.written[0].second), Env({"a"}, 1));
  EXPECT_EQ(clock.Slept(), milliseconds(100 + 200 + 400));
}

TEST(Crew, BackoffIsCapped) {
  FlakySink sink(4, ErrorCode::kUnavailable);
  ManualClock clock;
  Crew crew(sink,
            {.retry = {.max_attempts = 5,
                       .initial_backoff = milliseconds(100),
                       .multiplier = 10,
                       .max_backoff = milliseconds(1500)}},
            clock);
  ASSERT_OK(crew.Persist(Env({"a"}, 1)));
  EXPECT_EQ(clock.Slept(), milliseconds(100 + 1000 + 1500 + 1500));
}

TEST(Crew, NeverReportsSuccessWhenEveryAttemptFailed) {
  FlakySink sink(100, ErrorCode::kUnavailable);
  ManualClock clock;
  Crew crew(sink, {.retry = {.max_attempts = 3, .initial_backoff = milliseconds(100)}}, clock);
  auto r = crew.Persist(Env({"a"}, 1));
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, ErrorCode::kUnavailable);
  EXPECT_NE(r.error().message.find("cannot store envelope abc at s3://b/"), std::string::npos)
      << r.error().message;
  EXPECT_NE(r.error().message.find("attempt 3 of 3"), std::string::npos) << r.error().message;
  EXPECT_NE(r.error().message.find("store down"), std::string::npos) << r.error().message;
  EXPECT_EQ(sink.calls, 3);
  EXPECT_TRUE(sink.written.empty());
}

TEST(Crew, PermanentFailuresAreNotRetried) {
  FlakySink sink(100, ErrorCode::kPermissionDenied);
  ManualClock clock;
  Crew crew(sink, {}, clock);
  auto r = crew.Persist(Env({"a"}, 1));
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, ErrorCode::kPermissionDenied);
  EXPECT_EQ(sink.calls, 1);
  EXPECT_EQ(clock.Slept(), milliseconds(0));
}

TEST(Crew, AnUnwritableDirectoryIsAnErrorAfterTheRetries) {
  test::TempDir dir("asya-crew");
  const std::string file = dir.Write("not-a-dir", "x");
  DirectorySink sink(file);  // the root is a regular file
  ManualClock clock;
  Crew crew(sink, {.retry = {.max_attempts = 2}}, clock);
  auto r = crew.Persist(Env({"a"}, 1));
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().message.find("attempt 2 of 2"), std::string::npos) << r.error().message;
  EXPECT_NE(r.error().message.find("cannot create"), std::string::npos) << r.error().message;
  EXPECT_EQ(ReadFile(file), "x");
}

TEST(Crew, MultiSinkWritesEverySinkAndFailsWhenAnyFails) {
  test::TempDir dir("asya-crew");
  std::vector<std::unique_ptr<Sink>> sinks;
  auto flaky = std::make_unique<FlakySink>(1, ErrorCode::kUnavailable);
  FlakySink* s3 = flaky.get();
  sinks.push_back(std::move(flaky));
  sinks.push_back(std::make_unique<DirectorySink>(dir.path()));
  MultiSink both(std::move(sinks));
  EXPECT_EQ(both.Uri("k.json"), "s3://b/k.json");  // the first sink's
  ManualClock clock;
  Crew crew(both, {.prefix = "results/"}, clock);
  ASSIGN_OR_FAIL(Stored s, crew.Persist(Env({"a"}, 0)));
  EXPECT_EQ(s.attempts, 2);  // the first write failed at the S3 sink, before the directory
  ASSERT_EQ(s3->written.size(), 1u);
  EXPECT_EQ(Files(dir.path()), std::vector<std::string>{s.key});
  EXPECT_EQ(s3->written[0].second, ReadFile(fs::path(dir.path()) / s.key));
}

TEST(Crew, OutputCarriesTheS3UriInRouteMetadata) {
  Stored s{.id = "abc", .key = "k.json", .uri = "s3://bucket/k.json"};
  json env = Env({"a", "b"}, 2);
  env["route"]["metadata"] = {{"job_id", "abc"}};
  json out = Crew::Output(env, s);
  EXPECT_EQ(out, json({{"route",
                        {{"actors", {"a", "b"}},
                         {"current", 2},
                         {"metadata", {{"job_id", "abc"}, {"s3_uri", "s3://bucket/k.json"}}}}}}));
  EXPECT_FALSE(out.contains("payload"));  // the sidecar keeps the incoming payload as the result
  EXPECT_EQ(Crew::Output(json{{"id", "x"}}, s), json(nullptr));
  EXPECT_EQ(Crew::Output(json("text"), s), json(nullptr));
  json bad_current = Env({"a"}, 0);
  bad_current["route"]["current"] = "1";
  EXPECT_EQ(Crew::Output(bad_current, s), json(nullptr));
}

TEST(Crew, S3OptionsAreChecked) {
  EXPECT_OK(ValidateS3Options({.bucket = "asya-results"}));
  EXPECT_OK(ValidateS3Options({.bucket = "my.bucket.1", .endpoint = "http://127.0.0.1:9000"}));
  for (const char* bad : {"", "ab", "Upper", "under_score", "-lead", "trail-", "has space"}) {
    auto st = ValidateS3Options({.bucket = bad});
    ASSERT_FALSE(st.has_value()) << bad;
    EXPECT_EQ(st.error().code, ErrorCode::kInvalidArgument);
    EXPECT_NE(st.error().message.find("S3 bucket name"), std::string::npos) << st.error().message;
  }
  EXPECT_FALSE(ValidateS3Options({.bucket = "abc", .endpoint = "127.0.0.1:9000"}));
  EXPECT_FALSE(ValidateS3Options({.bucket = "abc", .endpoint = "http://h:9/path"}));
  EXPECT_FALSE(ValidateS3Options({.bucket = "abc", .region = ""}));
}

}  // namespace
}  // namespace asya::crew

namespace asya::crew {
namespace {

// asya-crew refuses a bad configuration at start, naming the problem (exit 1).
std::string RunCrew(const std::string& env, int* code) {
  const char* build = std::getenv("ASYA_BUILD_DIR");
  const std::string cmd =
      "env -i " + env + " " + (build ? std::string(build) : ".") + "/bin/asya-crew 2>&1 </dev/null";
  std::string out;
  FILE* p = ::popen(cmd.c_str(), "r");
  char buf[512];
  while (p != nullptr && std::fgets(buf, sizeof(buf), p) != nullptr) {
    out += buf;
  }
  const int status = p != nullptr ? ::pclose(p) : -1;
  *code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return out;
}

TEST(CrewProgram, BadConfigurationIsRefusedAtStart) {
  int code = 0;
  EXPECT_NE(RunCrew("", &code).find("set ASYA_S3_BUCKET (an S3-compatible store) and/or "
                                    "ASYA_CREW_DIR"),
            std::string::npos);
  EXPECT_EQ(code, 1);
  EXPECT_NE(RunCrew("ASYA_S3_BUCKET=Bad_Name", &code).find("S3 bucket name 'Bad_Name'"),
            std::string::npos);
  EXPECT_EQ(code, 1);
  EXPECT_NE(RunCrew("ASYA_S3_BUCKET=abc ASYA_S3_ENDPOINT=localhost:9000", &code)
                .find("S3 endpoint 'localhost:9000'"),
            std::string::npos);
  EXPECT_EQ(code, 1);
  EXPECT_NE(RunCrew("ASYA_S3_BUCKET=abc ASYA_S3_ACCESS_KEY=k", &code)
                .find("set both ASYA_S3_ACCESS_KEY and ASYA_S3_SECRET_KEY, or neither"),
            std::string::npos);
  EXPECT_EQ(code, 1);
  EXPECT_NE(RunCrew("ASYA_S3_BUCKET=abc", &code).find("no AWS credentials for S3"),
            std::string::npos);  // AWS without keys and no credential source
  EXPECT_EQ(code, 1);
  EXPECT_NE(RunCrew("ASYA_CREW_DIR=/tmp ASYA_CREW_RETRY_ATTEMPTS=0", &code)
                .find("ASYA_CREW_RETRY_ATTEMPTS"),
            std::string::npos);
  EXPECT_EQ(code, 1);
}

}  // namespace
}  // namespace asya::crew
