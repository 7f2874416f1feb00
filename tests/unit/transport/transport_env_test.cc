// TransportSettingsFromEnv: defaults, precedence, URL escaping, errors naming the variable.
#include "bin/common/transport_env.h"

#include <cstdlib>
#include <string>

#include <gtest/gtest.h>

namespace asya::env {
namespace {

using transport::Millis;

constexpr const char* kVars[] = {"ASYA_TRANSPORT",
                                 "ASYA_SQLITE_PATH",
                                 "ASYA_STATE_DIR",
                                 "ASYA_RABBITMQ_URL",
                                 "ASYA_RABBITMQ_HOST",
                                 "ASYA_RABBITMQ_PORT",
                                 "ASYA_RABBITMQ_USERNAME",
                                 "ASYA_RABBITMQ_PASSWORD",
                                 "ASYA_RABBITMQ_EXCHANGE",
                                 "ASYA_RABBITMQ_PREFETCH",
                                 "ASYA_SQS_ENDPOINT",
                                 "AWS_ENDPOINT_URL_SQS",
                                 "AWS_ENDPOINT_URL",
                                 "ASYA_AWS_REGION",
                                 "ASYA_SQS_WAIT_TIME_SECONDS",
                                 "ASYA_QUEUE_RETRY_MAX_ATTEMPTS",
                                 "ASYA_QUEUE_RETRY_BACKOFF"};

class TransportEnvTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const char* v : kVars) {
      ::unsetenv(v);
    }
  }
  void TearDown() override { SetUp(); }
  static void Set(const char* name, const char* value) { ::setenv(name, value, 1); }
  static void ExpectErrorNaming(const char* name) {
    auto s = TransportSettingsFromEnv();
    ASSERT_FALSE(s.has_value()) << name << " accepted";
    EXPECT_EQ(s.error().code, ErrorCode::kInvalidArgument);
    EXPECT_NE(s.error().message.find(name), std::string::npos) << s.error().message;
  }
};

TEST_F(TransportEnvTest, DefaultsMatchTheReference) {
  auto s = TransportSettingsFromEnv();
  ASSERT_TRUE(s.has_value()) << s.error().ToString();
  EXPECT_EQ(s->kind, "rabbitmq");
  EXPECT_EQ(s->sqlite.path, ".asya/queues.db");
  EXPECT_EQ(s->rabbitmq.url, "amqp://guest:guest@localhost:5672/");
  EXPECT_EQ(s->rabbitmq.exchange, "asya");
  EXPECT_EQ(s->rabbitmq.prefetch, 1);
  EXPECT_EQ(s->rabbitmq.queue_retry_max_attempts, 10);
  EXPECT_EQ(s->rabbitmq.queue_retry_backoff, Millis(1000));
  EXPECT_EQ(s->sqs.endpoint, "");
  EXPECT_EQ(s->sqs.region, "us-east-1");
  EXPECT_EQ(s->sqs.wait_time_seconds, 20);
  EXPECT_EQ(s->sqs.queue_retry_max_attempts, 10);
}

TEST_F(TransportEnvTest, KindComesFromOverrideThenVariableThenDefault) {
  TransportEnvOptions cli;
  cli.default_kind = "sqlite";
  EXPECT_EQ(TransportSettingsFromEnv(cli)->kind, "sqlite");
  Set("ASYA_TRANSPORT", "sqs");
  EXPECT_EQ(TransportSettingsFromEnv(cli)->kind, "sqs");
  cli.kind = "rabbitmq";
  EXPECT_EQ(TransportSettingsFromEnv(cli)->kind, "rabbitmq");
  cli.kind = "kafka";
  auto bad = TransportSettingsFromEnv(cli);
  ASSERT_FALSE(bad.has_value());
  EXPECT_NE(bad.error().message.find("--transport"), std::string::npos);
}

TEST_F(TransportEnvTest, SqlitePathPrecedence) {
  Set("ASYA_STATE_DIR", "/tmp/state");
  EXPECT_EQ(TransportSettingsFromEnv()->sqlite.path, "/tmp/state/queues.db");
  Set("ASYA_SQLITE_PATH", "/tmp/explicit.db");
  EXPECT_EQ(TransportSettingsFromEnv()->sqlite.path, "/tmp/explicit.db");
}

TEST_F(TransportEnvTest, RabbitMqUrlIsBuiltWithEscapedCredentials) {
  Set("ASYA_RABBITMQ_HOST", "broker.local");
  Set("ASYA_RABBITMQ_PORT", "5673");
  Set("ASYA_RABBITMQ_USERNAME", "us@er");
  Set("ASYA_RABBITMQ_PASSWORD", "p:a/s%s w");
  EXPECT_EQ(TransportSettingsFromEnv()->rabbitmq.url,
            "amqp://us%40er:p%3Aa%2Fs%25s%20w@broker.local:5673/");
  Set("ASYA_RABBITMQ_URL", "amqps://u:p@h:5671/vh");
  EXPECT_EQ(TransportSettingsFromEnv()->rabbitmq.url, "amqps://u:p@h:5671/vh");
}

TEST_F(TransportEnvTest, SqsEndpointPrecedence) {
  Set("AWS_ENDPOINT_URL", "http://generic:1");
  EXPECT_EQ(TransportSettingsFromEnv()->sqs.endpoint, "http://generic:1");
  Set("AWS_ENDPOINT_URL_SQS", "http://sqs-specific:2");
  EXPECT_EQ(TransportSettingsFromEnv()->sqs.endpoint, "http://sqs-specific:2");
  Set("ASYA_SQS_ENDPOINT", "http://asya:3");
  EXPECT_EQ(TransportSettingsFromEnv()->sqs.endpoint, "http://asya:3");
  Set("ASYA_AWS_REGION", "eu-west-1");
  Set("ASYA_SQS_WAIT_TIME_SECONDS", "0");
  auto s = TransportSettingsFromEnv();
  EXPECT_EQ(s->sqs.region, "eu-west-1");
  EXPECT_EQ(s->sqs.wait_time_seconds, 20) << "0 means 20, as the original";
}

TEST_F(TransportEnvTest, RetryKnobsReachBothBrokers) {
  Set("ASYA_QUEUE_RETRY_MAX_ATTEMPTS", "3");
  Set("ASYA_QUEUE_RETRY_BACKOFF", "250ms");
  auto s = TransportSettingsFromEnv();
  EXPECT_EQ(s->rabbitmq.queue_retry_max_attempts, 3);
  EXPECT_EQ(s->sqs.queue_retry_max_attempts, 3);
  EXPECT_EQ(s->rabbitmq.queue_retry_backoff, Millis(250));
  EXPECT_EQ(s->sqs.queue_retry_backoff, Millis(250));
}

TEST_F(TransportEnvTest, InvalidValuesNameTheirVariable) {
  const std::pair<const char*, const char*> bad[] = {
      {"ASYA_TRANSPORT", "kafka"},
      {"ASYA_RABBITMQ_PORT", "http"},
      {"ASYA_RABBITMQ_PORT", "70000"},
      {"ASYA_RABBITMQ_PREFETCH", "-1"},
      {"ASYA_RABBITMQ_URL", "http://not-amqp"},
      {"ASYA_SQS_WAIT_TIME_SECONDS", "21"},
      {"ASYA_SQS_WAIT_TIME_SECONDS", "soon"},
      {"ASYA_QUEUE_RETRY_MAX_ATTEMPTS", "0"},
      {"ASYA_QUEUE_RETRY_MAX_ATTEMPTS", "ten"},
      {"ASYA_QUEUE_RETRY_BACKOFF", "fast"},
      {"ASYA_QUEUE_RETRY_BACKOFF", "-1s"},
  };
  for (const auto& [name, value] : bad) {
    SetUp();
    Set(name, value);
    SCOPED_TRACE(std::string(name) + "=" + value);
    ExpectErrorNaming(name);
  }
}

}  // namespace
}  // namespace asya::env
