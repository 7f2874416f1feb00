// Amazon SQS transport (JSON protocol over libcurl, SigV4 signing).
#pragma once

#include <string>

#include "asya/transport/transport.h"

namespace asya::transport {

struct SqsSettings {
  std::string endpoint;            // ASYA_SQS_ENDPOINT / AWS_ENDPOINT_URL_SQS / AWS_ENDPOINT_URL
  std::string region = "us-east-1";  // ASYA_AWS_REGION
  int wait_time_seconds = 20;      // ASYA_SQS_WAIT_TIME_SECONDS (0 -> 20)
  int queue_retry_max_attempts = 10;
  Millis queue_retry_backoff{1000};
  // Credentials: filled by the program from the environment / files (see sqs README); empty ->
  // the transport resolves them itself with the default chain given in `credential_env`.
  std::string access_key_id;
  std::string secret_access_key;
  std::string session_token;
};

Result<TransportPtr> MakeSqsTransport(const SqsSettings& settings);

}  // namespace asya::transport
