// A small blocking HTTP client over libcurl for AWS-style APIs (SQS, STS, credential endpoints).
//
// Each thread keeps its own curl easy + multi handle (connection reuse where the server allows
// keep-alive; moto answers `Connection: close`). A request can be bound to a CancelToken:
// Cancel() wakes every request blocked on that token at once (curl_multi_wakeup), which is how a
// 20 s SQS long poll is interrupted promptly.
#pragma once

#include <atomic>
#include <chrono>
#include <mutex>
#include <set>
#include <string>

#include "asya/aws/sigv4.h"
#include "asya/base/result.h"

namespace asya::aws {

struct HttpRequest {
  std::string method = "GET";
  std::string url;
  HeaderList headers;
  std::string body;
  std::chrono::milliseconds timeout{30'000};  // whole request
  std::chrono::milliseconds connect_timeout{5'000};
};

struct HttpResponse {
  long status = 0;
  HeaderList headers;  // names as received
  std::string body;

  // Case-insensitive lookup; empty when absent.
  [[nodiscard]] std::string Header(std::string_view name) const;
};

// Cancels requests that run with it. Thread-safe.
class CancelToken {
 public:
  void Cancel();
  [[nodiscard]] bool cancelled() const { return cancelled_.load(std::memory_order_acquire); }

  // Used by Perform(): registers the calling thread's multi handle while a request runs.
  void Register(void* multi);
  void Unregister(void* multi);

 private:
  std::atomic<bool> cancelled_{false};
  std::mutex mu_;
  std::set<void*> multis_;
};

// Performs one request. Transport failures (DNS, refused, timeout) -> kUnavailable naming the
// URL; a cancelled request -> kCancelled. Any HTTP status is a successful Result.
Result<HttpResponse> Perform(const HttpRequest& request, CancelToken* cancel = nullptr);

// Splits "scheme://host[:port]/path?query" into its parts (no user info, no fragment).
struct Url {
  std::string scheme;     // "http" | "https"
  std::string authority;  // host[:port] exactly as written
  std::string host;       // without port
  std::string path;       // "/" when empty
  std::string query;      // raw, without '?'
};
Result<Url> ParseUrl(std::string_view url);

// application/x-www-form-urlencoded body from name/value pairs (SigV4 encoding rules).
std::string FormEncode(const HeaderList& fields);

}  // namespace asya::aws
