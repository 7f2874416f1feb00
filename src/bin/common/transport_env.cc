#include "bin/common/transport_env.h"

#include <cstdio>

#include <unistd.h>

#include "asya/aws/http.h"
#include "asya/base/env_names.h"
#include "asya/base/state_dir.h"
#include "asya/base/transport_kinds.h"
#include "asya/http/url.h"
#include "bin/common/env.h"

namespace asya::env {
namespace {

// `source` names where the value came from (the variable or the flag).
Status CheckKind(const std::string& kind, std::string_view source) {
  if (transport_kind::IsKnown(kind)) {
    return Ok();
  }
  return MakeError(ErrorCode::kInvalidArgument,
                   std::string(source) + "='" + kind + "' is not one of sqlite|rabbitmq|sqs");
}

Result<std::string> RabbitMqUrlFromEnv() {
  if (auto url = Get("ASYA_RABBITMQ_URL")) {
    if (url->rfind("amqp://", 0) != 0 && url->rfind("amqps://", 0) != 0) {
      return MakeError(ErrorCode::kInvalidArgument,
                       "ASYA_RABBITMQ_URL must start with amqp:// or amqps://");
    }
    return *url;
  }
  std::string host = GetOr("ASYA_RABBITMQ_HOST", "localhost");
  ASYA_ASSIGN_OR_RETURN(int64_t port, Int("ASYA_RABBITMQ_PORT", 5672, 1, 65535));
  std::string user = GetOr("ASYA_RABBITMQ_USERNAME", "guest");
  std::string password = GetOr("ASYA_RABBITMQ_PASSWORD", "guest");
  return "amqp://" + http::PercentEncode(user) + ":" + http::PercentEncode(password) + "@" + host +
         ":" + std::to_string(port) + "/";
}

// SQS extras (the credential chain: AwsCredentialSourcesFromEnv).
Status SqsCredentialsFromEnv(transport::SqsSettings& sqs) {
  sqs.credential_sources = AwsCredentialSourcesFromEnv(sqs.region);
  ASYA_ASSIGN_OR_RETURN(int64_t redrive, Int("ASYA_SQS_REDRIVE_MAX_RECEIVE_COUNT", 0, 0, 1000));
  sqs.redrive_max_receive_count = static_cast<int>(redrive);
  return Ok();
}

}  // namespace

aws::CredentialSources AwsCredentialSourcesFromEnv(const std::string& region) {
  aws::CredentialSources c;
  c.access_key_id = GetOr("AWS_ACCESS_KEY_ID", "");
  c.secret_access_key = GetOr("AWS_SECRET_ACCESS_KEY", "");
  c.session_token = GetOr("AWS_SESSION_TOKEN", "");
  c.role_arn = GetOr("AWS_ROLE_ARN", "");
  c.web_identity_token_file = GetOr("AWS_WEB_IDENTITY_TOKEN_FILE", "");
  c.role_session_name = GetOr("AWS_ROLE_SESSION_NAME", "");
  c.sts_endpoint = GetOr("AWS_ENDPOINT_URL_STS", GetOr("AWS_ENDPOINT_URL", ""));
  c.region = region;
  if (auto file = Get("AWS_SHARED_CREDENTIALS_FILE")) {
    c.shared_credentials_file = *file;  // explicit: an unreadable file is an error
  } else if (auto home = Get("HOME")) {
    std::string path = *home + "/.aws/credentials";
    if (::access(path.c_str(), R_OK) == 0) {
      c.shared_credentials_file = path;
    }
  }
  c.profile = GetOr("AWS_PROFILE", "default");
  c.container_credentials_full_uri = GetOr("AWS_CONTAINER_CREDENTIALS_FULL_URI", "");
  c.container_credentials_relative_uri = GetOr("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "");
  c.container_authorization_token = GetOr("AWS_CONTAINER_AUTHORIZATION_TOKEN", "");
  c.container_authorization_token_file = GetOr("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", "");
  return c;
}

Result<transport::TransportSettings> TransportSettingsFromEnv(const TransportEnvOptions& options) {
  transport::TransportSettings s;
  if (!options.kind.empty()) {
    s.kind = options.kind;
    ASYA_RETURN_IF_ERROR(CheckKind(s.kind, "--transport"));
  } else {
    s.kind = GetOr(env_name::kTransport, options.default_kind);
    ASYA_RETURN_IF_ERROR(CheckKind(s.kind, env_name::kTransport));
  }

  // Shared by the RabbitMQ consumer start and SQS queue-URL resolution.
  ASYA_ASSIGN_OR_RETURN(int64_t retry_attempts,
                        Int("ASYA_QUEUE_RETRY_MAX_ATTEMPTS", 10, 1, 1'000'000));
  ASYA_ASSIGN_OR_RETURN(Millis retry_backoff, Duration("ASYA_QUEUE_RETRY_BACKOFF", Millis(1000)));

  // sqlite
  if (auto path = Get(env_name::kSqlitePath)) {
    s.sqlite.path = *path;
  } else if (auto dir = Get(env_name::kStateDir)) {
    s.sqlite.path = *dir + "/" + state_dir::kQueuesFile;
  } else {
    s.sqlite.path = std::string(state_dir::kDefault) + "/" + state_dir::kQueuesFile;
  }

  // rabbitmq
  ASYA_ASSIGN_OR_RETURN(s.rabbitmq.url, RabbitMqUrlFromEnv());
  s.rabbitmq.exchange = GetOr("ASYA_RABBITMQ_EXCHANGE", "asya");
  ASYA_ASSIGN_OR_RETURN(int64_t prefetch, Int("ASYA_RABBITMQ_PREFETCH", 1, 0, 65535));
  s.rabbitmq.prefetch = static_cast<int>(prefetch);
  s.rabbitmq.queue_retry_max_attempts = static_cast<int>(retry_attempts);
  s.rabbitmq.queue_retry_backoff = retry_backoff;
  // TLS (amqps:// URLs) and the optional management API (Depth().inflight, ListQueues).
  ASYA_ASSIGN_OR_RETURN(s.rabbitmq.tls_verify, Bool("ASYA_RABBITMQ_TLS_VERIFY", true));
  s.rabbitmq.tls_ca_file = GetOr("ASYA_RABBITMQ_TLS_CA_FILE", "");
  s.rabbitmq.management_url = GetOr("ASYA_RABBITMQ_MGMT_URL", "");

  // sqs
  if (auto e = Get("ASYA_SQS_ENDPOINT")) {
    s.sqs.endpoint = *e;
  } else if (auto e2 = Get("AWS_ENDPOINT_URL_SQS")) {
    s.sqs.endpoint = *e2;
  } else if (auto e3 = Get("AWS_ENDPOINT_URL")) {
    s.sqs.endpoint = *e3;
  }
  s.sqs.region = GetOr("ASYA_AWS_REGION", "us-east-1");
  ASYA_ASSIGN_OR_RETURN(int64_t wait_s, Int("ASYA_SQS_WAIT_TIME_SECONDS", 20, 0, 20));
  s.sqs.wait_time_seconds = wait_s == 0 ? 20 : static_cast<int>(wait_s);
  s.sqs.queue_retry_max_attempts = static_cast<int>(retry_attempts);
  s.sqs.queue_retry_backoff = retry_backoff;
  ASYA_RETURN_IF_ERROR(SqsCredentialsFromEnv(s.sqs));
  // AWS_CA_BUNDLE (the AWS CLI's and SDKs' name): verify SQS/STS endpoints with this PEM bundle.
  if (auto bundle = Get("AWS_CA_BUNDLE")) {
    aws::ConfigureTls({.ca_file = *bundle});
  }
  return s;
}

}  // namespace asya::env
