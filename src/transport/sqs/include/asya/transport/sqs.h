// Amazon SQS transport (JSON protocol over libcurl, SigV4 signing).
#pragma once

#include <string>

#include "asya/aws/credentials.h"
#include "asya/transport/transport.h"

namespace asya::transport {

struct SqsSettings {
  std::string endpoint;              // ASYA_SQS_ENDPOINT / AWS_ENDPOINT_URL_SQS / AWS_ENDPOINT_URL
  std::string region = "us-east-1";  // ASYA_AWS_REGION
  int wait_time_seconds = 20;        // ASYA_SQS_WAIT_TIME_SECONDS (0 -> 20)
  int queue_retry_max_attempts = 10;
  Millis queue_retry_backoff{1000};
  // Credentials: filled by the program from the environment / files (see sqs README); empty ->
  // the transport resolves them itself with the default chain of `credential_sources` below.
  std::string access_key_id;
  std::string secret_access_key;
  std::string session_token;

  // ---- additions (sqs transport) ----
  // The default credential chain (env keys, web identity, shared file, container); see
  // include/asya/aws/credentials.h. Used when access_key_id above is empty.
  aws::CredentialSources credential_sources;
  // ASYA_SQS_REDRIVE_MAX_RECEIVE_COUNT: > 0 -> CreateQueue sets a RedrivePolicy on the queue
  // pointing at "<name>-dlq" with this maxReceiveCount (SQS moves the message itself). 0 (default)
  // -> no RedrivePolicy: the sidecar dead-letters past ASYA_MAX_DELIVERIES with the reason in
  // headers. QueueOptions::attributes["maxReceiveCount"] overrides it per queue.
  int redrive_max_receive_count = 0;
  // ListQueues() lists queues whose names start with this prefix.
  std::string list_prefix = "asya-";
  // Timeout of one SQS API call other than a long poll (a long poll gets its wait + this).
  Millis request_timeout{Millis(30'000)};
};

Result<TransportPtr> MakeSqsTransport(const SqsSettings& settings);

}  // namespace asya::transport
