// Credential chain: static keys, shared credentials file + profile, web identity through moto's
// STS, container credentials through a local HTTP server, refresh before expiry, and the errors
// of every malformed or failing source.
#include "asya/aws/credentials.h"

#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "asya/aws/http.h"
#include "asya/transport/sqs.h"
#include "support/temp_dir.h"
#include "unit/sqs/moto_server.h"

namespace asya::aws {
namespace {

using Clock = std::chrono::system_clock;

using asya::test::TempDir;

// tests/unit/sqs/cred_server.py as a child process.
class CredServer {
 public:
  explicit CredServer(const std::string& token) {
    port_file_ = dir_.path() + "/port";
    pid_ = ::fork();
    if (pid_ == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      std::string script = std::string(ASYA_SQS_TESTDIR) + "/cred_server.py";
      ::execlp(ASYA_PYTHON, ASYA_PYTHON, script.c_str(), port_file_.c_str(), token.c_str(),
               static_cast<char*>(nullptr));
      ::_exit(127);
    }
    for (int i = 0; i < 600 && port_.empty(); ++i) {
      std::ifstream in(port_file_);
      std::getline(in, port_);
      if (port_.empty()) {
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
      }
    }
  }
  ~CredServer() {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
  }
  [[nodiscard]] std::string url(const std::string& path) const {
    return "http://127.0.0.1:" + port_ + path;
  }
  int Count() const {
    auto response = Perform({.url = url("/count")});
    return response ? std::stoi(response->body) : -1;
  }

 private:
  TempDir dir_;
  std::string port_file_;
  std::string port_;
  pid_t pid_ = -1;
};

TEST(SharedCredentialsFile, ReadsTheSelectedProfile) {
  const std::string text =
      "# comment\n[default]\naws_access_key_id = AKIDDEFAULT\naws_secret_access_key=s1\n\n"
      "[work]\naws_access_key_id = AKIDWORK\n aws_secret_access_key = s2 \n"
      "aws_session_token = tok\n";
  auto def = ParseSharedCredentials(text, "default", "creds");
  ASSERT_TRUE(def) << def.error().ToString();
  EXPECT_EQ(def->access_key_id, "AKIDDEFAULT");
  EXPECT_EQ(def->secret_access_key, "s1");
  EXPECT_EQ(def->session_token, "");
  auto work = ParseSharedCredentials(text, "work", "creds");
  ASSERT_TRUE(work) << work.error().ToString();
  EXPECT_EQ(work->access_key_id, "AKIDWORK");
  EXPECT_EQ(work->secret_access_key, "s2");
  EXPECT_EQ(work->session_token, "tok");
}

TEST(SharedCredentialsFile, MalformedInputGivesClearErrors) {
  auto missing = ParseSharedCredentials("[default]\naws_access_key_id=a\n", "other", "f");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, ErrorCode::kNotFound);
  EXPECT_EQ(missing.error().message, "profile 'other' not found in f");

  auto bad_line = ParseSharedCredentials("[default]\naws_access_key_id\n", "default", "f");
  ASSERT_FALSE(bad_line);
  EXPECT_EQ(bad_line.error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(bad_line.error().message, "f:2: expected 'key = value', got 'aws_access_key_id'");

  auto bad_section = ParseSharedCredentials("[default\n", "default", "f");
  ASSERT_FALSE(bad_section);
  EXPECT_EQ(bad_section.error().message, "f:1: malformed section header '[default'");

  auto no_secret = ParseSharedCredentials("[default]\naws_access_key_id=a\n", "default", "f");
  ASSERT_FALSE(no_secret);
  EXPECT_EQ(no_secret.error().message,
            "profile 'default' in f lacks aws_access_key_id or aws_secret_access_key");
}

TEST(CredentialAnswers, StsAndContainerBodies) {
  auto sts = ParseAssumeRoleResponse(
      200,
      "<AssumeRoleWithWebIdentityResponse><AssumeRoleWithWebIdentityResult><Credentials>"
      "<AccessKeyId>ASIA1</AccessKeyId><SecretAccessKey>s</SecretAccessKey>"
      "<SessionToken>t</SessionToken><Expiration>2026-11-28T12:00:00Z</Expiration>"
      "</Credentials></AssumeRoleWithWebIdentityResult></AssumeRoleWithWebIdentityResponse>",
      "arn:r");
  ASSERT_TRUE(sts) << sts.error().ToString();
  EXPECT_EQ(sts->access_key_id, "ASIA1");
  EXPECT_EQ(sts->session_token, "t");
  auto denied = ParseAssumeRoleResponse(
      400, "<Error><Code>InvalidIdentityToken</Code><Message>bad aud</Message></Error>", "arn:r");
  ASSERT_FALSE(denied);
  EXPECT_EQ(denied.error().message,
            "STS AssumeRoleWithWebIdentity for arn:r failed (HTTP 400 InvalidIdentityToken: bad "
            "aud)");
  auto container = ParseContainerCredentials(
      200, R"({"AccessKeyId":"A","SecretAccessKey":"S","Token":"T"})", "http://c");
  ASSERT_TRUE(container) << container.error().ToString();
  EXPECT_EQ(container->session_token, "T");
  EXPECT_FALSE(ParseContainerCredentials(200, R"({"AccessKeyId":"A","SecretAccessKey":1})", "u"));
}

// Found by fuzz/aws_response_fuzz: a year-9999 expiration overflowed system_clock (UB).
TEST(CredentialAnswers, FarAwayExpirationIsAClearError) {
  for (const char* when : {"9999-12-31T23:59:59Z", "0001-01-01T00:00:00Z"}) {
    auto c = ParseContainerCredentials(
        200,
        std::string(R"({"AccessKeyId":"A","SecretAccessKey":"S","Expiration":")") + when + "\"}",
        "http://c");
    ASSERT_FALSE(c) << when;
    EXPECT_NE(c.error().message.find("out of range"), std::string::npos) << c.error().message;
    auto s = ParseAssumeRoleResponse(
        200,
        std::string("<AccessKeyId>A</AccessKeyId><SecretAccessKey>S</SecretAccessKey><Expiration>") +
            when + "</Expiration>",
        "arn:r");
    ASSERT_FALSE(s) << when;
  }
}

TEST(CredentialProvider, StaticKeysWin) {
  CredentialSources sources;
  sources.access_key_id = "AK";
  sources.secret_access_key = "SK";
  sources.session_token = "ST";
  sources.shared_credentials_file = "/nonexistent";
  CredentialProvider provider(sources);
  auto got = provider.Get();
  ASSERT_TRUE(got) << got.error().ToString();
  EXPECT_EQ(got->access_key_id, "AK");
  EXPECT_EQ(got->session_token, "ST");
  EXPECT_EQ(got->source, "environment");
}

TEST(CredentialProvider, KeyWithoutSecretIsAnError) {
  CredentialSources sources;
  sources.access_key_id = "AK";
  auto got = CredentialProvider(sources).Get();
  ASSERT_FALSE(got);
  EXPECT_EQ(got.error().code, ErrorCode::kInvalidArgument);
  EXPECT_NE(got.error().message.find("AWS_SECRET_ACCESS_KEY"), std::string::npos);
}

TEST(CredentialProvider, NothingConfiguredNamesTheVariables) {
  auto got = CredentialProvider(CredentialSources{}).Get();
  ASSERT_FALSE(got);
  EXPECT_EQ(got.error().code, ErrorCode::kFailedPrecondition);
  EXPECT_NE(got.error().message.find("AWS_ACCESS_KEY_ID"), std::string::npos);
}

TEST(CredentialProvider, SharedFileAndProfile) {
  TempDir dir;
  CredentialSources sources;
  sources.shared_credentials_file =
      dir.Write("credentials",
                "[default]\naws_access_key_id=A1\naws_secret_access_key=S1\n"
                "[ci]\naws_access_key_id=A2\naws_secret_access_key=S2\n");
  sources.profile = "ci";
  auto got = CredentialProvider(sources).Get();
  ASSERT_TRUE(got) << got.error().ToString();
  EXPECT_EQ(got->access_key_id, "A2");
  EXPECT_EQ(got->source, "shared-file");

  sources.shared_credentials_file = dir.path() + "/missing";
  auto missing = CredentialProvider(sources).Get();
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().message,
            "AWS shared credentials file '" + dir.path() + "/missing' cannot be read");
}

TEST(CredentialProvider, WebIdentityThroughMotoSts) {
  asya::test::MotoServer moto;
  ASSERT_TRUE(moto.Start()) << moto.error();
  TempDir dir;
  CredentialSources sources;
  sources.role_arn = "arn:aws:iam::123456789012:role/asya-sidecar";
  sources.web_identity_token_file = dir.Write("token", "eyJhbGciOiJSUzI1NiJ9.e30.c2ln\n");
  sources.role_session_name = "asya-test";
  sources.sts_endpoint = moto.endpoint();
  CredentialProvider provider(sources);
  auto got = provider.Get();
  ASSERT_TRUE(got) << got.error().ToString();
  EXPECT_EQ(got->source, "web-identity");
  EXPECT_EQ(got->access_key_id.rfind("ASIA", 0), 0u) << got->access_key_id;
  EXPECT_FALSE(got->secret_access_key.empty());
  EXPECT_FALSE(got->session_token.empty());
  EXPECT_GT(got->expiration, Clock::now());

  // The SQS transport runs on them (moto accepts the session token it issued).
  transport::SqsSettings settings;
  settings.endpoint = moto.endpoint();
  settings.credential_sources = sources;
  auto sqs = transport::MakeSqsTransport(settings);
  ASSERT_TRUE(sqs) << sqs.error().ToString();
  ASSERT_TRUE((*sqs)->CreateQueue("asya-webid", {.create_dlq = false}));
  auto exists = (*sqs)->QueueExists("asya-webid");
  ASSERT_TRUE(exists && *exists);
}

TEST(CredentialProvider, WebIdentityErrors) {
  TempDir dir;
  CredentialSources sources;
  sources.role_arn = "arn:aws:iam::123456789012:role/x";
  sources.web_identity_token_file = dir.path() + "/no-token";
  sources.sts_endpoint = "http://127.0.0.1:1";
  auto no_file = CredentialProvider(sources).Get();
  ASSERT_FALSE(no_file);
  EXPECT_EQ(no_file.error().message,
            "AWS_WEB_IDENTITY_TOKEN_FILE '" + dir.path() + "/no-token' cannot be read");

  sources.web_identity_token_file = dir.Write("token", "t");
  auto unreachable = CredentialProvider(sources).Get();
  ASSERT_FALSE(unreachable);
  EXPECT_EQ(unreachable.error().code, ErrorCode::kUnavailable);
  EXPECT_NE(unreachable.error().message.find("cannot reach http://127.0.0.1:1"), std::string::npos);

  CredServer server("unused");
  sources.sts_endpoint = server.url("/sts");
  auto rejected = CredentialProvider(sources).Get();
  ASSERT_FALSE(rejected);
  EXPECT_EQ(rejected.error().code, ErrorCode::kPermissionDenied);
  EXPECT_EQ(rejected.error().message,
            "STS AssumeRoleWithWebIdentity for arn:aws:iam::123456789012:role/x failed (HTTP 400 "
            "InvalidIdentityToken: Token is expired)");

  sources.role_arn.clear();
  auto half = CredentialProvider(sources).Get();
  ASSERT_FALSE(half);
  EXPECT_EQ(half.error().message,
            "web identity needs both AWS_ROLE_ARN and AWS_WEB_IDENTITY_TOKEN_FILE");
}

TEST(CredentialProvider, ContainerCredentialsWithTokenAndFile) {
  CredServer server("Bearer s3cret");
  TempDir dir;
  CredentialSources sources;
  sources.container_credentials_full_uri = server.url("/creds?ttl=3600");
  sources.container_authorization_token = "Bearer s3cret";
  CredentialProvider provider(sources);
  auto got = provider.Get();
  ASSERT_TRUE(got) << got.error().ToString();
  EXPECT_EQ(got->source, "container");
  EXPECT_EQ(got->access_key_id, "ASIACONTAINER1");
  EXPECT_EQ(got->session_token, "token1");
  // Far from expiry: cached.
  ASSERT_TRUE(provider.Get());
  EXPECT_EQ(server.Count(), 1);

  // The token file wins over the inline token and is read at every fetch.
  sources.container_authorization_token = "wrong";
  sources.container_authorization_token_file = dir.Write("token", "Bearer s3cret\n");
  auto from_file = CredentialProvider(sources).Get();
  ASSERT_TRUE(from_file) << from_file.error().ToString();
  EXPECT_EQ(from_file->access_key_id, "ASIACONTAINER2");
}

TEST(CredentialProvider, RefreshesBeforeExpiry) {
  CredServer server("tok");
  CredentialSources sources;
  sources.container_credentials_full_uri = server.url("/creds?ttl=600");  // 10 min left
  sources.container_authorization_token = "tok";
  sources.refresh_margin = std::chrono::minutes(15);  // always inside the refresh window
  CredentialProvider provider(sources);
  auto first = provider.Get();
  auto second = provider.Get();
  ASSERT_TRUE(first && second);
  EXPECT_EQ(first->access_key_id, "ASIACONTAINER1");
  EXPECT_EQ(second->access_key_id, "ASIACONTAINER2");
  EXPECT_EQ(server.Count(), 2);

  sources.refresh_margin = std::chrono::minutes(5);  // outside the window: cached
  CredentialProvider cached(sources);
  ASSERT_TRUE(cached.Get());
  ASSERT_TRUE(cached.Get());
  EXPECT_EQ(server.Count(), 3);

  // Invalidate() forces a fetch.
  cached.Invalidate();
  ASSERT_TRUE(cached.Get());
  EXPECT_EQ(server.Count(), 4);
}

TEST(CredentialProvider, ContainerErrors) {
  CredServer server("tok");
  CredentialSources sources;
  sources.container_credentials_full_uri = server.url("/creds");
  sources.container_authorization_token = "bad";
  auto denied = CredentialProvider(sources).Get();
  ASSERT_FALSE(denied);
  EXPECT_EQ(denied.error().code, ErrorCode::kPermissionDenied);
  EXPECT_NE(denied.error().message.find("answered HTTP 401"), std::string::npos);

  sources.container_credentials_full_uri = server.url("/not-json");
  auto garbage = CredentialProvider(sources).Get();
  ASSERT_FALSE(garbage);
  EXPECT_EQ(garbage.error().code, ErrorCode::kInvalidArgument);
  EXPECT_NE(garbage.error().message.find("did not return a JSON object"), std::string::npos);
}

}  // namespace
}  // namespace asya::aws
