// asya-crew: runtime of the end actors happy-end and error-end (envelope mode). Reads the
// environment and serves asya::crew (src/crew) through the C++ handler SDK.
//
// Environment (besides the SDK's ASYA_SOCKET_DIR, ASYA_RUNTIME_CONCURRENCY, ...):
//   ASYA_S3_BUCKET          store in this S3 bucket (created when missing)
//   ASYA_S3_ENDPOINT        S3-compatible endpoint (moto, MinIO, LocalStack), path style; unset:
//                           AWS in AWS_REGION
//   ASYA_S3_ACCESS_KEY / ASYA_S3_SECRET_KEY
//                           keys; with ASYA_S3_ENDPOINT each defaults to `minioadmin` (as the
//                           original); without it both must be set, else the AWS credential chain
//   AWS_REGION              signing region (us-east-1)
//   AWS_CA_BUNDLE           PEM bundle to verify an https:// S3 endpoint with (default: the
//                           system's); verification is always on
//   ASYA_S3_RESULTS_PREFIX  key prefix of happy-end (happy-asya/)
//   ASYA_S3_ERRORS_PREFIX   key prefix of error-end (error-asya/)
//   ASYA_CREW_DIR           store in this directory (with ASYA_S3_BUCKET too: in both, so
//                           `asya send --wait` still finds results when `asya up` runs with S3)
//   ASYA_CREW_PREFIX        key prefix for either store, overriding the two above (`asya up` sets
//                           `results/` or `errors/`)
//   ASYA_HANDLER            which end actor this is, for the prefix: `error-end` or the original's
//                           `handlers.end_handlers.error_end_handler` mean error-end; anything else
//                           happy-end
//   ASYA_CREW_RETRY_ATTEMPTS / ASYA_CREW_RETRY_BACKOFF
//                           writes per envelope (5) and the first backoff (200ms, doubling, at
//                           most 5s)
// An envelope that cannot be written after the retries is a processing_error: the end-actor
// sidecar nacks it for redelivery (and dead-letters it past ASYA_MAX_DELIVERIES).
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "asya/base/env_names.h"
#include "asya/base/log.h"
#include "asya/crew/crew.h"
#include "asya/runtime/serve.h"
#include "bin/common/env.h"
#include "bin/common/transport_env.h"

namespace {

int Fail(const std::string& message) {
  std::fprintf(stderr, "asya-crew: %s\n", message.c_str());
  return 1;
}

bool IsErrorEnd(const std::string& handler) {
  return handler == "error-end" || handler.ends_with("error_end_handler");
}

}  // namespace

int main() {
  asya::env::RegisterSecretsFromEnvironment();  // no secret in any log line or error
  namespace env = asya::env;
  auto attempts = env::Int("ASYA_CREW_RETRY_ATTEMPTS", 5, 1, 100);
  if (!attempts) {
    return Fail(attempts.error().message);
  }
  auto backoff = env::Duration("ASYA_CREW_RETRY_BACKOFF", asya::Millis(200));
  if (!backoff) {
    return Fail(backoff.error().message);
  }
  const bool error_end = IsErrorEnd(env::GetOr(asya::env_name::kHandler, ""));
  asya::crew::CrewOptions options;
  options.retry.max_attempts = static_cast<int>(*attempts);
  options.retry.initial_backoff = *backoff;
  options.retry.max_backoff = std::max(*backoff, asya::Millis(5'000));

  std::vector<std::unique_ptr<asya::crew::Sink>> sinks;
  options.prefix = error_end ? "error-asya/" : "happy-asya/";
  if (auto bucket = env::Get("ASYA_S3_BUCKET")) {
    asya::crew::S3Options s3;
    s3.bucket = *bucket;
    s3.endpoint = env::GetOr("ASYA_S3_ENDPOINT", "");
    s3.region = env::GetOr("AWS_REGION", "us-east-1");
    s3.tls.ca_file = env::GetOr("AWS_CA_BUNDLE", "");
    if (auto st = asya::crew::ValidateS3Options(s3); !st) {
      return Fail(st.error().message);
    }
    asya::aws::CredentialSources sources;
    auto access = env::Get("ASYA_S3_ACCESS_KEY");
    auto secret = env::Get("ASYA_S3_SECRET_KEY");
    if (!s3.endpoint.empty()) {
      sources.access_key_id = access.value_or("minioadmin");
      sources.secret_access_key = secret.value_or("minioadmin");
    } else if (access && secret) {
      sources.access_key_id = *access;
      sources.secret_access_key = *secret;
    } else if (access || secret) {
      return Fail("set both ASYA_S3_ACCESS_KEY and ASYA_S3_SECRET_KEY, or neither");
    } else {
      sources = env::AwsCredentialSourcesFromEnv(s3.region);
    }
    sources.region = s3.region;
    auto provider = std::make_shared<asya::aws::CredentialProvider>(std::move(sources));
    if (auto source = provider->SourceName(); !source) {
      return Fail("no AWS credentials for S3: " + source.error().message);
    }
    options.prefix = error_end ? env::GetOr("ASYA_S3_ERRORS_PREFIX", "error-asya/")
                               : env::GetOr("ASYA_S3_RESULTS_PREFIX", "happy-asya/");
    asya::log::Info("storing envelopes in S3",
                    {{"bucket", s3.bucket}, {"endpoint", s3.endpoint}, {"region", s3.region}});
    sinks.push_back(std::make_unique<asya::crew::S3Sink>(std::move(s3), std::move(provider),
                                                         asya::SystemClock()));
  }
  if (auto dir = env::Get(asya::env_name::kCrewDir)) {
    asya::log::Info("storing envelopes in a directory", {{"dir", *dir}});
    sinks.push_back(std::make_unique<asya::crew::DirectorySink>(*dir));
  }
  if (sinks.empty()) {
    return Fail(
        "set ASYA_S3_BUCKET (an S3-compatible store) and/or ASYA_CREW_DIR (a directory) to store "
        "envelopes in");
  }
  auto sink = std::make_unique<asya::crew::MultiSink>(std::move(sinks));
  if (auto prefix = env::Get(asya::env_name::kCrewPrefix)) {
    options.prefix = *prefix;
  }

  auto crew = std::make_shared<asya::crew::Crew>(*sink, std::move(options), asya::SystemClock());
  auto handler = asya::runtime::Handler::Envelope([crew](nlohmann::json envelope) {
    auto stored = crew->Persist(envelope);
    if (!stored) {
      throw asya::runtime::HandlerError{"OSError", stored.error().message};
    }
    asya::log::Debug("stored envelope", {{"id", stored->id}, {"uri", stored->uri}});
    return asya::crew::Crew::Output(envelope, *stored);
  });
  return asya::runtime::Serve(std::move(handler));
}
