// AWS Signature Version 4 (HMAC-SHA256) for HTTP requests, with OpenSSL and no AWS SDK.
//
// Example:
//   aws::SigningRequest req{.method = "POST", .path = "/",
//                           .headers = {{"Host", "sqs.us-east-1.amazonaws.com"},
//                                       {"Content-Type", "application/x-amz-json-1.0"}},
//                           .payload = body};
//   aws::SigningParams p{.region = "us-east-1", .service = "sqs", .time = now};
//   aws::Signature sig = aws::Sign(req, credentials, p);
//   // send req.headers + sig.added_headers (X-Amz-Date, X-Amz-Security-Token?, Authorization)
//
// The signer is pure (no I/O) and thread-safe. Paths and query parameters are given decoded; the
// signer applies the SigV4 URI-encoding rules itself (RFC 3986 unreserved characters are kept,
// everything else becomes %XX with upper-case hex; '/' is kept in paths).
#pragma once

#include <chrono>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace asya::aws {

struct Credentials {
  std::string access_key_id;
  std::string secret_access_key;
  std::string session_token;  // empty = long-term credentials
  // When the credentials stop working (zero = never expire).
  std::chrono::system_clock::time_point expiration{};
  std::string source;  // where they came from ("environment", "web-identity", ...) for logs
};

using HeaderList = std::vector<std::pair<std::string, std::string>>;

struct SigningRequest {
  std::string method = "GET";
  std::string path = "/";  // decoded path, e.g. "/123456789012/asya-x"
  HeaderList query;        // decoded name/value pairs
  HeaderList headers;      // every header here is signed; must contain Host
  std::string_view payload;
};

struct SigningParams {
  std::string region;
  std::string service;
  std::chrono::system_clock::time_point time;
  // Remove "." / ".." segments and collapse repeated slashes before encoding (every service but
  // S3).
  bool normalize_path = true;
  // Also send and sign x-amz-content-sha256 (S3 requires it).
  bool add_content_sha256_header = false;
};

struct Signature {
  std::string canonical_request;
  std::string string_to_sign;
  std::string signature;  // lower-case hex
  std::string authorization;
  // Headers the caller must send in addition to SigningRequest::headers.
  HeaderList added_headers;
};

// Computes the signature; X-Amz-Date (and X-Amz-Security-Token when the credentials carry a
// session token) are added to the signed headers unless the request already has them.
Signature Sign(const SigningRequest& request, const Credentials& credentials,
               const SigningParams& params);

// Building blocks, exposed for tests.
std::string Sha256Hex(std::string_view data);
std::string HmacSha256(std::string_view key, std::string_view data);  // raw 32 bytes
std::string HexEncode(std::string_view bytes);
// SigV4 URI encoding of one string; '/' is kept when `keep_slash`.
std::string UriEncode(std::string_view text, bool keep_slash);
std::string NormalizePath(std::string_view path);
std::string CanonicalQuery(const HeaderList& query);
std::string FormatAmzDate(std::chrono::system_clock::time_point time);  // 20150830T123600Z
std::string DeriveSigningKey(std::string_view secret, std::string_view date,
                             std::string_view region, std::string_view service);

}  // namespace asya::aws
