// Fills asya::transport::TransportSettings from the environment (programs under src/bin/ only).
//
// Variables (reference-dataplane §6; empty = unset):
//   ASYA_TRANSPORT             sqlite | rabbitmq | sqs (default: TransportEnvOptions::default_kind)
//   ASYA_SQLITE_PATH           sqlite file ($ASYA_STATE_DIR/queues.db, else .asya/queues.db)
//   ASYA_RABBITMQ_URL          amqp[s]://user:pass@host:port/vhost; when unset the URL is built
//                              from ASYA_RABBITMQ_HOST/_PORT/_USERNAME/_PASSWORD (localhost,
//                              5672, guest, guest; user and password are percent-escaped)
//   ASYA_RABBITMQ_EXCHANGE     topic exchange (asya)
//   ASYA_RABBITMQ_PREFETCH     basic.qos prefetch (1)
//   ASYA_SQS_ENDPOINT          SQS endpoint override (else AWS_ENDPOINT_URL_SQS, AWS_ENDPOINT_URL)
//   ASYA_AWS_REGION            SQS region (us-east-1)
//   ASYA_SQS_WAIT_TIME_SECONDS long-poll seconds (20; 0 -> 20)
//   ASYA_QUEUE_RETRY_MAX_ATTEMPTS  missing-queue retries (10)
//   ASYA_QUEUE_RETRY_BACKOFF   initial missing-queue backoff, Go duration (1s)
//   AWS credentials for SQS (asya/aws/credentials.h):
//     AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_ROLE_ARN,
//     AWS_WEB_IDENTITY_TOKEN_FILE, AWS_ROLE_SESSION_NAME, AWS_ENDPOINT_URL_STS (else
//     AWS_ENDPOINT_URL), AWS_SHARED_CREDENTIALS_FILE (else $HOME/.aws/credentials when readable),
//     AWS_PROFILE, AWS_CONTAINER_CREDENTIALS_FULL_URI, AWS_CONTAINER_CREDENTIALS_RELATIVE_URI,
//     AWS_CONTAINER_AUTHORIZATION_TOKEN(_FILE)
//   ASYA_SQS_REDRIVE_MAX_RECEIVE_COUNT  > 0: SQS RedrivePolicy on queues we create (0 = off)
// Unlike the original (which silently falls back to defaults), an unparsable value is an error
// (kInvalidArgument) whose message names the variable.
#pragma once

#include <string>
#include <string_view>

#include "asya/aws/credentials.h"
#include "asya/base/result.h"
#include "asya/transport/factory.h"

namespace asya::env {

// The AWS credential chain's variables listed above (asya/aws/credentials.h), for `region`.
aws::CredentialSources AwsCredentialSourcesFromEnv(const std::string& region);

struct TransportEnvOptions {
  // Used when ASYA_TRANSPORT is unset: the sidecar keeps the original's "rabbitmq"; the `asya`
  // CLI uses "sqlite".
  std::string default_kind = "rabbitmq";
  // When non-empty, used instead of ASYA_TRANSPORT (a command-line flag such as --transport).
  std::string kind;
};

Result<transport::TransportSettings> TransportSettingsFromEnv(
    const TransportEnvOptions& options = {});

}  // namespace asya::env
