// asya/base/redact.h: credential shapes and registered secrets never reach text for people; the
// logger applies it to every line.
#include "asya/base/redact.h"

#include <cstdio>
#include <string>

#include <fcntl.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "asya/base/log.h"

namespace asya {
namespace {

TEST(Redact, UrlUserInfo) {
  EXPECT_EQ(RedactUrl("amqp://bob:hunter2@rmq:5672/%2F"), "amqp://***@rmq:5672/%2F");
  EXPECT_EQ(RedactUrl("https://only-user@host/x"), "https://***@host/x");
  EXPECT_EQ(RedactUrl("http://host/a@b"), "http://host/a@b");  // '@' in the path is not user-info
  EXPECT_EQ(RedactUrl("no url here"), "no url here");
  EXPECT_EQ(RedactSecrets("cannot connect to amqps://u:p@h:1 (refused); again postgres://a:b@c/d"),
            "cannot connect to amqps://***@h:1 (refused); again postgres://***@c/d");
}

TEST(Redact, CredentialKeysAndAuthSchemes) {
  EXPECT_EQ(RedactSecrets("GET /q?X-Amz-Signature=abc123&X-Amz-Security-Token=tok&Action=Send"),
            "GET /q?X-Amz-Signature=***&X-Amz-Security-Token=***&Action=Send");
  EXPECT_EQ(RedactSecrets("password=pw1 user=bob api_key=k"), "password=*** user=bob api_key=***");
  EXPECT_EQ(RedactSecrets("Authorization: Bearer abc.def"), "Authorization: Bearer ***");
  EXPECT_EQ(RedactSecrets("Basic dXNlcjpwYXNz, rest"), "Basic ***, rest");
  EXPECT_EQ(RedactSecrets("retries=3 queue=asya-x"), "retries=3 queue=asya-x");
  EXPECT_EQ(RedactSecrets("max_tokens=4096 Basic usage"), "max_tokens=4096 Basic usage");
}

TEST(Redact, RegisteredSecretsAndEnvironmentNames) {
  RegisterSecret("short");  // below kMinSecretLength: not registered
  EXPECT_EQ(RedactSecrets("a short word"), "a short word");
  RegisterEnvSecret("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG");
  RegisterEnvSecret("ASYA_GATEWAY_TOKENS", "tok-one-1234, tok-two-5678");
  RegisterEnvSecret("AWS_WEB_IDENTITY_TOKEN_FILE", "/var/run/secrets/token-path");  // a location
  RegisterEnvSecret("ASYA_RABBITMQ_URL", "amqp://asya:rmq-pass-9999@h/");
  RegisterEnvSecret("ASYA_HANDLER", "module.Class.method");  // not a secret name
  EXPECT_EQ(RedactSecrets("key wJalrXUtnFEMI/K7MDENG and wJalrXUtnFEMI%2FK7MDENG"),
            "key *** and ***");
  EXPECT_EQ(RedactSecrets("tokens tok-one-1234 tok-two-5678"), "tokens *** ***");
  EXPECT_EQ(RedactSecrets("pw rmq-pass-9999"), "pw ***");
  EXPECT_EQ(RedactSecrets("/var/run/secrets/token-path module.Class.method"),
            "/var/run/secrets/token-path module.Class.method");
  EXPECT_TRUE(ContainsSecret("x rmq-pass-9999"));
  EXPECT_FALSE(ContainsSecret("nothing"));
}

TEST(Redact, TheLoggerRedactsMessagesAndFields) {
  RegisterSecret("log-secret-424242");
  char path[] = "/tmp/asya-redact-XXXXXX";
  int fd = ::mkstemp(path);
  ASSERT_GE(fd, 0);
  int saved = ::dup(STDERR_FILENO);
  ::dup2(fd, STDERR_FILENO);
  log::Error("connect to amqp://u:pw@h failed: log-secret-424242",
             {{"url", "https://k:v@s3/b"}, {"why", "Bearer log-secret-424242"}});
  ::dup2(saved, STDERR_FILENO);
  ::close(saved);
  std::string text(4096, '\0');
  ssize_t n = ::pread(fd, text.data(), text.size(), 0);
  ::close(fd);
  ::unlink(path);
  ASSERT_GT(n, 0);
  text.resize(static_cast<size_t>(n));
  EXPECT_EQ(text.find("log-secret-424242"), std::string::npos) << text;
  EXPECT_EQ(text.find("u:pw"), std::string::npos) << text;
  EXPECT_EQ(text.find("k:v"), std::string::npos) << text;
  EXPECT_NE(text.find("amqp://***@h"), std::string::npos) << text;
}

}  // namespace
}  // namespace asya
