// The S3 sink against a real moto_server (S3) started by the test.
#include <chrono>
#include <memory>

#include <gtest/gtest.h>

#include "asya/aws/credentials.h"
#include "asya/aws/http.h"
#include "asya/aws/sigv4.h"
#include "asya/crew/crew.h"
#include "asya/http/url.h"
#include "support/status_matchers.h"
#include "unit/sqs/moto_server.h"

namespace asya::crew {
namespace {

using nlohmann::json;
using std::chrono::milliseconds;

aws::CredentialProviderPtr Keys() {
  return std::make_shared<aws::CredentialProvider>(
      aws::CredentialSources{.access_key_id = "testing", .secret_access_key = "testing"});
}

class CrewS3 : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(moto_.Start()) << moto_.error(); }

  S3Options Options(std::string bucket, std::string region = "us-east-1") {
    return {.bucket = std::move(bucket), .endpoint = moto_.endpoint(), .region = std::move(region)};
  }

  // A signed GET of s3://<bucket>/<key> (path style): status, body, Content-Type.
  http::Response Get(const std::string& bucket, const std::string& key) {
    const std::string path = "/" + bucket + (key.empty() ? "" : "/" + key);
    const std::string host = "127.0.0.1:" + std::to_string(moto_.port());
    aws::HttpRequest req;
    req.url = moto_.endpoint() + http::PercentEncode(path, true);
    req.headers = {{"Host", host}};
    aws::Signature sig = aws::Sign({"GET", path, {}, req.headers, ""}, *Keys()->Get(),
                                   {.region = "us-east-1",
                                    .service = "s3",
                                    .time = std::chrono::system_clock::now(),
                                    .normalize_path = false,
                                    .add_content_sha256_header = true});
    for (auto& h : sig.added_headers) {
      req.headers.push_back(h);
    }
    auto r = aws::Perform(req);
    EXPECT_TRUE(r.has_value()) << r.error().message;
    return r ? *r : http::Response{};
  }

  test::MotoServer moto_;
};

json Env(std::string id) {
  return {{"id", std::move(id)},
          {"route", {{"actors", {"prep", "infer"}}, {"current", 1}, {"metadata", {{"k", 1}}}}},
          {"payload", {{"answer", 42}, {"text", "caf\xc3\xa9 <&>"}}}};
}

TEST_F(CrewS3, StoresEachEnvelopeCreatingTheBucketWhenMissing) {
  S3Sink sink(Options("asya-results"), Keys(), SystemClock());
  Crew crew(sink, {.prefix = "happy-asya/"}, SystemClock());
  EXPECT_EQ(Get("asya-results", "").status, 404);  // no bucket yet

  ASSIGN_OR_FAIL(Stored a, crew.Persist(Env("id-1")));
  EXPECT_EQ(a.uri, "s3://asya-results/" + a.key);
  EXPECT_EQ(a.key.rfind("happy-asya/", 0), 0u) << a.key;
  EXPECT_NE(a.key.find("/infer/id-1.json"), std::string::npos) << a.key;
  http::Response got = Get("asya-results", a.key);
  ASSERT_EQ(got.status, 200) << got.body;
  EXPECT_EQ(json::parse(got.body), Env("id-1"));
  EXPECT_EQ(got.body, Render(Env("id-1")));  // pretty-printed, as the directory store
  EXPECT_EQ(got.Header("Content-Type"), "application/json");

  // The bucket exists now: the second write goes straight in.
  ASSIGN_OR_FAIL(Stored b, crew.Persist(Env("id 2+%/x")));  // characters that need encoding
  EXPECT_EQ(b.attempts, 1);
  got = Get("asya-results", b.key);
  ASSERT_EQ(got.status, 200) << b.key << ": " << got.body;
  EXPECT_EQ(json::parse(got.body)["id"], "id 2+%/x");

  json out = Crew::Output(Env("id-1"), a);
  EXPECT_EQ(out["route"]["metadata"]["s3_uri"], a.uri);
  EXPECT_EQ(out["route"]["metadata"]["k"], 1);
}

TEST_F(CrewS3, ErrorEnvelopeWithoutIdIsStoredUnderAGeneratedId) {
  S3Sink sink(Options("asya-errors"), Keys(), SystemClock());
  Crew crew(sink, {.prefix = "error-asya/"}, SystemClock());
  const json error_env = {{"id", ""},
                          {"route", {{"actors", {"error-end"}}, {"current", 0}}},
                          {"payload", {{"error", "Failed to parse message: x"}}}};
  ASSIGN_OR_FAIL(Stored s, crew.Persist(error_env));
  EXPECT_TRUE(s.generated_id);
  http::Response got = Get("asya-errors", s.key);
  ASSERT_EQ(got.status, 200) << got.body;
  EXPECT_EQ(json::parse(got.body), error_env);
}

TEST_F(CrewS3, EnsureBucketAcceptsABucketWeAlreadyOwn) {
  for (const char* region : {"us-east-1", "eu-west-1"}) {
    S3Sink sink(Options(std::string("owned-") + region, region), Keys(), SystemClock());
    ASSERT_OK(sink.EnsureBucket());
    EXPECT_OK(sink.EnsureBucket());  // BucketAlreadyOwnedByYou outside us-east-1
    Crew crew(sink, {}, SystemClock());
    EXPECT_OK(crew.Persist(Env("x")));
  }
}

TEST_F(CrewS3, AStoppedStoreIsRetriedThenReportedAsAFailure) {
  S3Sink sink(Options("asya-results"), Keys(), SystemClock());
  ManualClock clock;
  Crew crew(sink, {.retry = {.max_attempts = 3, .initial_backoff = milliseconds(100)}}, clock);
  ASSERT_OK(crew.Persist(Env("before")));
  moto_.Stop();
  auto r = crew.Persist(Env("during"));
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, ErrorCode::kUnavailable);
  EXPECT_NE(r.error().message.find("attempt 3 of 3"), std::string::npos) << r.error().message;
  EXPECT_EQ(clock.Slept(), milliseconds(100 + 200));  // it waited between the attempts
}

TEST_F(CrewS3, NoCredentialsIsAFailureNotASuccess) {
  S3Sink sink(Options("asya-results"),
              std::make_shared<aws::CredentialProvider>(aws::CredentialSources{}), SystemClock());
  ManualClock clock;
  Crew crew(sink, {}, clock);
  auto r = crew.Persist(Env("x"));
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().message.find("cannot get AWS credentials"), std::string::npos)
      << r.error().message;
  EXPECT_EQ(Get("asya-results", "").status, 404);  // nothing was created
}

}  // namespace
}  // namespace asya::crew
