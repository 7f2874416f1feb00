// End-actor persistence (the runtime of happy-end and error-end, DESIGN §5 `crew`): every envelope
// the crew receives is written, pretty-printed, to a Sink under the original crew's key layout
//   <prefix><UTC timestamp "YYYY-MM-DDTHH:MM:SS.ffffffZ">/<actor>/<id>.json
// (reference-dataplane §9), where <actor> is the actor the envelope was at: route.actors[current]
// when current is in range (for an error envelope, the actor that failed), else the route's last
// actor, else "unknown".
//
// Sinks: a directory (DirectorySink: atomic temp + rename) or an S3-compatible object store
// (S3Sink: SigV4-signed PUT, bucket created when missing). Crew::Persist retries transient sink
// failures (kUnavailable) with exponential backoff on the given Clock and returns an error when
// the envelope could not be written: it never reports success for a failed write (the caller turns
// the error into a processing_error, which the end-actor sidecar nacks for redelivery and, past
// ASYA_MAX_DELIVERIES, dead-letters).
//
// An envelope without a usable id (missing, empty or not a string: e.g. the error envelope of a
// message that was not JSON) is still stored, under a generated id ("crew-<uuid4>"); a body that is
// not a JSON object is stored as it came, under a generated id and actor "unknown".
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "asya/aws/credentials.h"
#include "asya/base/clock.h"
#include "asya/base/result.h"
#include "asya/http/client.h"

namespace asya::crew {

// actors[current] if 0 <= current < len(actors), else actors[-1], else "unknown".
std::string FiledActor(const nlohmann::json& envelope);

// "2025-01-02T03:04:05.123456Z"
std::string FormatTimestamp(std::chrono::system_clock::time_point t);

// The envelope's id when it is a non-empty string, else "".
std::string UsableId(const nlohmann::json& envelope);

// Key of one envelope stored under `id`. Path separators and leading dots in the id or actor name
// are replaced with '_' so a key never leaves its directory.
std::string MakeKey(const nlohmann::json& envelope, std::string_view id, std::string_view prefix,
                    std::chrono::system_clock::time_point now);

// The stored text: indent 2, invalid UTF-8 replaced, trailing newline.
std::string Render(const nlohmann::json& envelope);

// Where envelopes go. Implementations are thread-safe.
class Sink {
 public:
  virtual ~Sink() = default;
  // Writes `body` under `key`. kUnavailable = transient (worth retrying); any other error code is
  // permanent for this attempt (bad credentials, a bucket owned by someone else, ...).
  virtual Status Put(const std::string& key, std::string_view body) = 0;
  // Where the object of `key` lives: "s3://<bucket>/<key>" or "file://<absolute path>".
  [[nodiscard]] virtual std::string Uri(const std::string& key) const = 0;
};

// Files under `root` (created as needed), written atomically (WriteFileAtomic).
class DirectorySink final : public Sink {
 public:
  explicit DirectorySink(std::string root);
  Status Put(const std::string& key, std::string_view body) override;
  [[nodiscard]] std::string Uri(const std::string& key) const override;

 private:
  std::string root_;
};

// Writes to every sink in order (an S3 store and `asya up`'s directory); fails when any fails.
// Uri() is the first sink's.
class MultiSink final : public Sink {
 public:
  explicit MultiSink(std::vector<std::unique_ptr<Sink>> sinks);
  Status Put(const std::string& key, std::string_view body) override;
  [[nodiscard]] std::string Uri(const std::string& key) const override;

 private:
  std::vector<std::unique_ptr<Sink>> sinks_;
};

struct S3Options {
  std::string bucket;
  // "" = AWS: https://<bucket>.s3.<region>.amazonaws.com (path style on s3.<region>... when the
  // bucket name has a '.'); otherwise an S3-compatible endpoint (moto, MinIO, LocalStack), path
  // style: <endpoint>/<bucket>/<key>.
  std::string endpoint;
  std::string region = "us-east-1";
  bool create_bucket = true;  // CreateBucket when a PUT answers NoSuchBucket
  http::Millis timeout{30'000};
  http::Millis connect_timeout{5'000};
  http::TlsOptions tls;  // ca_file: AWS_CA_BUNDLE (verification is always on)
};

// Checks the options (bucket name, endpoint URL); kInvalidArgument names the problem.
Status ValidateS3Options(const S3Options& options);

class S3Sink final : public Sink {
 public:
  // `options` must pass ValidateS3Options. Timestamps for signing come from `clock`.
  S3Sink(S3Options options, aws::CredentialProviderPtr credentials, Clock& clock);
  ~S3Sink() override;
  Status Put(const std::string& key, std::string_view body) override;
  [[nodiscard]] std::string Uri(const std::string& key) const override;
  // CreateBucket (with a LocationConstraint outside us-east-1); a bucket we already own
  // (BucketAlreadyOwnedByYou) is success. Put() calls it when the bucket is missing.
  Status EnsureBucket();

 private:
  struct Target;
  // One signed request; `path` is decoded ("/<bucket>/<key>" or "/<key>").
  Result<http::Response> Send(const std::string& method, const std::string& path,
                              std::string_view body, const std::string& content_type);

  S3Options options_;
  aws::CredentialProviderPtr credentials_;
  Clock& clock_;
  std::unique_ptr<Target> target_;
  http::Client client_;
};

struct RetryOptions {
  int max_attempts = 5;  // writes per envelope (1 = no retry)
  http::Millis initial_backoff{200};
  double multiplier = 2.0;
  http::Millis max_backoff{5'000};
};

struct CrewOptions {
  std::string prefix = "happy-asya/";
  RetryOptions retry;
  // Generates the id of an envelope without a usable one; default "crew-<uuid4>".
  std::function<std::string()> generate_id;
};

struct Stored {
  std::string id;  // the envelope's id, or the generated one
  bool generated_id = false;
  std::string key;
  std::string uri;  // Sink::Uri(key)
  int attempts = 0;
};

class Crew {
 public:
  Crew(Sink& sink, CrewOptions options, Clock& clock);

  // Stores one envelope (any JSON value). Retries kUnavailable failures with backoff; the error
  // (after the last attempt, or at once for a permanent one) names the key and the reason.
  Result<Stored> Persist(const nlohmann::json& envelope);

  // What the crew runtime answers the sidecar (envelope mode) after storing `envelope` in an S3
  // store: {"route": {actors, current, metadata: {..., "s3_uri": <uri>}}} and no payload, so the
  // end-actor sidecar keeps the incoming payload as the result and passes route.metadata on to the
  // gateway's /final (which reports "results stored at <s3_uri>"). null (no output) when the URI is
  // not an s3:// one or the envelope has no route to carry it.
  static nlohmann::json Output(const nlohmann::json& envelope, const Stored& stored);

 private:
  Sink& sink_;
  CrewOptions options_;
  Clock& clock_;
};

// A random UUID version 4 string.
std::string NewUuid();

}  // namespace asya::crew
