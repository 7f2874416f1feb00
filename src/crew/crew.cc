#include "asya/crew/crew.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <random>

#include "asya/aws/sigv4.h"
#include "asya/base/crew_layout.h"
#include "asya/base/file.h"
#include "asya/base/log.h"
#include "asya/base/time_format.h"
#include "asya/http/url.h"

namespace asya::crew {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

std::string SafeComponent(std::string s) {
  if (s.empty()) {
    return "_";
  }
  for (char& c : s) {
    if (c == '/' || c == '\\' || c == '\0') {
      c = '_';
    }
  }
  if (s[0] == '.') {
    s[0] = '_';
  }
  return s;
}

// The text of <tag>...</tag> in an S3 XML error body, or "".
std::string XmlField(const std::string& body, const std::string& tag) {
  const std::string open = "<" + tag + ">";
  auto b = body.find(open);
  if (b == std::string::npos) {
    return "";
  }
  b += open.size();
  auto e = body.find("</" + tag + ">", b);
  return e == std::string::npos ? "" : body.substr(b, e - b);
}

bool IsCredentialError(const std::string& code) {
  return code == "ExpiredToken" || code == "InvalidAccessKeyId" || code == "InvalidToken" ||
         code == "SignatureDoesNotMatch" || code == "TokenRefreshRequired";
}

}  // namespace

std::string FiledActor(const json& envelope) {
  if (!envelope.is_object()) {
    return "unknown";
  }
  auto route = envelope.find("route");
  if (route == envelope.end() || !route->is_object()) {
    return "unknown";
  }
  auto actors = route->find("actors");
  if (actors == route->end() || !actors->is_array() || actors->empty()) {
    return "unknown";
  }
  int64_t current = -1;
  if (auto c = route->find("current"); c != route->end() && c->is_number_integer()) {
    current = c->get<int64_t>();
  } else if (c == route->end()) {
    current = 0;  // absent = 0, as the sidecar reads it
  }
  const auto& pick = (current >= 0 && current < static_cast<int64_t>(actors->size()))
                         ? (*actors)[static_cast<size_t>(current)]
                         : actors->back();
  return pick.is_string() && !pick.get<std::string>().empty() ? pick.get<std::string>() : "unknown";
}

std::string FormatTimestamp(std::chrono::system_clock::time_point t) {
  return FormatRfc3339(t, 6);
}

std::string UsableId(const json& envelope) {
  if (!envelope.is_object()) {
    return "";
  }
  auto id = envelope.find("id");
  if (id == envelope.end() || !id->is_string()) {
    return "";
  }
  return id->get<std::string>();
}

std::string MakeKey(const json& envelope, std::string_view id, std::string_view prefix,
                    std::chrono::system_clock::time_point now) {
  return crew_layout::Key(prefix, FormatTimestamp(now), SafeComponent(FiledActor(envelope)),
                          SafeComponent(std::string(id)));
}

std::string Render(const json& envelope) {
  return envelope.dump(2, ' ', false, json::error_handler_t::replace) + "\n";
}

std::string NewUuid() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  uint64_t hi = rng();
  uint64_t lo = rng();
  hi = (hi & 0xffffffffffff0fffULL) | 0x0000000000004000ULL;  // version 4
  lo = (lo & 0x3fffffffffffffffULL) | 0x8000000000000000ULL;  // variant 10
  char out[37];
  std::snprintf(out, sizeof(out), "%08x-%04x-%04x-%04x-%012llx", static_cast<unsigned>(hi >> 32),
                static_cast<unsigned>((hi >> 16) & 0xffff), static_cast<unsigned>(hi & 0xffff),
                static_cast<unsigned>(lo >> 48),
                static_cast<unsigned long long>(lo & 0xffffffffffffULL));
  return out;
}

// ---- DirectorySink ----

DirectorySink::DirectorySink(std::string root) : root_(std::move(root)) {}

Status DirectorySink::Put(const std::string& key, std::string_view body) {
  fs::path path = fs::path(root_) / key;
  std::error_code ec;
  fs::create_directories(path.parent_path(), ec);
  if (ec) {
    return MakeError(ErrorCode::kUnavailable,
                     "cannot create " + path.parent_path().string() + ": " + ec.message());
  }
  return WriteFileAtomic(path.string(), body);
}

std::string DirectorySink::Uri(const std::string& key) const {
  std::error_code ec;
  fs::path abs = fs::absolute(fs::path(root_) / key, ec);
  return "file://" + (ec ? (fs::path(root_) / key) : abs).lexically_normal().string();
}

// ---- MultiSink ----

MultiSink::MultiSink(std::vector<std::unique_ptr<Sink>> sinks) : sinks_(std::move(sinks)) {}

Status MultiSink::Put(const std::string& key, std::string_view body) {
  for (auto& sink : sinks_) {
    ASYA_RETURN_IF_ERROR(sink->Put(key, body));
  }
  return Ok();
}

std::string MultiSink::Uri(const std::string& key) const {
  return sinks_.empty() ? "" : sinks_.front()->Uri(key);
}

// ---- S3Sink ----

struct S3Sink::Target {
  std::string base;         // scheme://authority
  std::string host;         // Host header (authority)
  std::string path_prefix;  // "/<bucket>" (path style) or "" (virtual-hosted)
};

Status ValidateS3Options(const S3Options& o) {
  const std::string& b = o.bucket;
  if (b.size() < 3 || b.size() > 63) {
    return MakeError(ErrorCode::kInvalidArgument,
                     "S3 bucket name '" + b + "' must be 3 to 63 characters long");
  }
  for (char c : b) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.')) {
      return MakeError(
          ErrorCode::kInvalidArgument,
          "S3 bucket name '" + b + "' may contain only lower-case letters, digits, '-' and '.'");
    }
  }
  if (!std::isalnum(static_cast<unsigned char>(b.front())) ||
      !std::isalnum(static_cast<unsigned char>(b.back()))) {
    return MakeError(ErrorCode::kInvalidArgument,
                     "S3 bucket name '" + b + "' must begin and end with a letter or digit");
  }
  if (!o.endpoint.empty()) {
    auto url = http::ParseUrl(o.endpoint);
    if (!url) {
      return MakeError(ErrorCode::kInvalidArgument,
                       "S3 endpoint '" + o.endpoint + "': " + url.error().message);
    }
    if (url->path != "/" || !url->query.empty()) {
      return MakeError(ErrorCode::kInvalidArgument,
                       "S3 endpoint '" + o.endpoint + "' must be scheme://host[:port] only");
    }
  }
  if (o.region.empty()) {
    return MakeError(ErrorCode::kInvalidArgument, "S3 region is empty");
  }
  return Ok();
}

S3Sink::S3Sink(S3Options options, aws::CredentialProviderPtr credentials, Clock& clock)
    : options_(std::move(options)),
      credentials_(std::move(credentials)),
      clock_(clock),
      target_(std::make_unique<Target>()),
      client_(http::ClientOptions{.timeout = options_.timeout,
                                  .connect_timeout = options_.connect_timeout,
                                  .tls = options_.tls,
                                  .clock = &clock}) {
  if (!options_.endpoint.empty()) {
    auto url = http::ParseUrl(options_.endpoint);  // validated by ValidateS3Options
    target_->base = url ? url->scheme + "://" + url->authority : options_.endpoint;
    target_->host = url ? url->authority : "";
    target_->path_prefix = "/" + options_.bucket;
  } else if (options_.bucket.find('.') != std::string::npos) {
    target_->host = "s3." + options_.region + ".amazonaws.com";
    target_->base = "https://" + target_->host;
    target_->path_prefix = "/" + options_.bucket;
  } else {
    target_->host = options_.bucket + ".s3." + options_.region + ".amazonaws.com";
    target_->base = "https://" + target_->host;
  }
}

S3Sink::~S3Sink() = default;

std::string S3Sink::Uri(const std::string& key) const {
  return "s3://" + options_.bucket + "/" + key;
}

Result<http::Response> S3Sink::Send(const std::string& method, const std::string& path,
                                    std::string_view body, const std::string& content_type) {
  auto credentials = credentials_->Get();
  if (!credentials) {
    return MakeError(credentials.error().code,
                     "cannot get AWS credentials: " + credentials.error().message);
  }
  http::Request request;
  request.method = method;
  request.url = target_->base + http::PercentEncode(path, /*keep_slash=*/true);
  request.body = std::string(body);
  request.headers = {{"Host", target_->host}};
  if (!content_type.empty()) {
    request.headers.emplace_back("Content-Type", content_type);
  }
  aws::SigningRequest to_sign{method, path, {}, request.headers, request.body};
  aws::Signature sig = aws::Sign(to_sign, *credentials,
                                 aws::SigningParams{.region = options_.region,
                                                    .service = "s3",
                                                    .time = clock_.WallNow(),
                                                    .normalize_path = false,
                                                    .add_content_sha256_header = true});
  for (auto& h : sig.added_headers) {
    request.headers.push_back(std::move(h));
  }
  return client_.Do(request);
}

namespace {

Error S3Failure(const std::string& what, const http::Response& r, bool* credential_error) {
  const std::string code = XmlField(r.body, "Code");
  const std::string message = XmlField(r.body, "Message");
  *credential_error = IsCredentialError(code);
  ErrorCode ec = ErrorCode::kInvalidArgument;
  if (r.status >= 500 || r.status == 429 || r.status == 408 || code == "SlowDown" ||
      code == "RequestTimeout" || code == "ExpiredToken" || code == "TokenRefreshRequired") {
    ec = ErrorCode::kUnavailable;
  } else if (r.status == 403) {
    ec = ErrorCode::kPermissionDenied;
  } else if (r.status == 404) {
    ec = ErrorCode::kNotFound;
  } else if (r.status == 409) {
    ec = ErrorCode::kAlreadyExists;
  }
  std::string text = what + ": HTTP " + std::to_string(r.status);
  if (!code.empty()) {
    text += " " + code;
  }
  if (!message.empty()) {
    text += ": " + message;
  }
  return Error{ec, text};
}

}  // namespace

Status S3Sink::EnsureBucket() {
  std::string body;
  if (options_.region != "us-east-1") {
    body =
        "<CreateBucketConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
        "<LocationConstraint>" +
        options_.region + "</LocationConstraint></CreateBucketConfiguration>";
  }
  const std::string path = target_->path_prefix.empty() ? "/" : target_->path_prefix;
  ASYA_ASSIGN_OR_RETURN(http::Response r, Send("PUT", path, body, "application/xml"));
  if (r.status / 100 == 2) {
    log::Info("created S3 bucket", {{"bucket", options_.bucket}});
    return Ok();
  }
  if (XmlField(r.body, "Code") == "BucketAlreadyOwnedByYou") {
    return Ok();
  }
  bool cred = false;
  Error e = S3Failure("S3 CreateBucket '" + options_.bucket + "'", r, &cred);
  if (cred) {
    credentials_->Invalidate();
  }
  return tl::unexpected<Error>(std::move(e));
}

Status S3Sink::Put(const std::string& key, std::string_view body) {
  for (int round = 0; round < 2; ++round) {
    ASYA_ASSIGN_OR_RETURN(http::Response r,
                          Send("PUT", target_->path_prefix + "/" + key, body, "application/json"));
    if (r.status / 100 == 2) {
      return Ok();
    }
    if (round == 0 && options_.create_bucket && r.status == 404 &&
        XmlField(r.body, "Code") == "NoSuchBucket") {
      ASYA_RETURN_IF_ERROR(EnsureBucket());
      continue;
    }
    bool cred = false;
    Error e = S3Failure("S3 PutObject s3://" + options_.bucket + "/" + key, r, &cred);
    if (cred) {
      credentials_->Invalidate();
    }
    return tl::unexpected<Error>(std::move(e));
  }
  return MakeError(ErrorCode::kUnavailable,
                   "S3 PutObject s3://" + options_.bucket + "/" + key +
                       ": the bucket was created but the object was still refused");
}

// ---- Crew ----

Crew::Crew(Sink& sink, CrewOptions options, Clock& clock)
    : sink_(sink), options_(std::move(options)), clock_(clock) {
  if (!options_.generate_id) {
    options_.generate_id = [] { return "crew-" + NewUuid(); };
  }
  options_.retry.max_attempts = std::max(1, options_.retry.max_attempts);
}

Result<Stored> Crew::Persist(const json& envelope) {
  Stored s;
  s.id = UsableId(envelope);
  if (s.id.empty()) {
    s.id = options_.generate_id();
    s.generated_id = true;
    log::Warn("envelope without a usable id: stored under a generated one", {{"id", s.id}});
  }
  s.key = MakeKey(envelope, s.id, options_.prefix, clock_.WallNow());
  s.uri = sink_.Uri(s.key);
  const std::string body = Render(envelope);
  http::Millis backoff = options_.retry.initial_backoff;
  for (s.attempts = 1;; ++s.attempts) {
    Status st = sink_.Put(s.key, body);
    if (st) {
      return s;
    }
    const bool transient = st.error().code == ErrorCode::kUnavailable;
    if (!transient || s.attempts >= options_.retry.max_attempts) {
      return MakeError(st.error().code, "cannot store envelope " + s.id + " at " + s.uri +
                                            " (attempt " + std::to_string(s.attempts) + " of " +
                                            std::to_string(options_.retry.max_attempts) +
                                            "): " + st.error().message);
    }
    log::Warn("storing the envelope failed; retrying",
              {{"id", s.id},
               {"attempt", s.attempts},
               {"backoff_ms", static_cast<int64_t>(backoff.count())},
               {"error", st.error().message}});
    clock_.SleepFor(backoff);
    backoff = std::min(options_.retry.max_backoff,
                       http::Millis(static_cast<int64_t>(static_cast<double>(backoff.count()) *
                                                         options_.retry.multiplier)));
  }
}

json Crew::Output(const json& envelope, const Stored& stored) {
  if (stored.uri.rfind("s3://", 0) != 0 || !envelope.is_object()) {
    return nullptr;
  }
  auto route = envelope.find("route");
  if (route == envelope.end() || !route->is_object()) {
    return nullptr;
  }
  auto actors = route->find("actors");
  if (actors == route->end() || !actors->is_array()) {
    return nullptr;
  }
  json out_route = {{"actors", *actors}, {"current", route->value("current", json(0))}};
  if (!out_route["current"].is_number_integer()) {
    return nullptr;
  }
  json metadata = json::object();
  if (auto m = route->find("metadata"); m != route->end() && m->is_object()) {
    metadata = *m;
  }
  metadata["s3_uri"] = stored.uri;
  out_route["metadata"] = std::move(metadata);
  return json{{"route", std::move(out_route)}};
}

}  // namespace asya::crew
