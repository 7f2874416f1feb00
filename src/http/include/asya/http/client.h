// The one HTTP client (libcurl) for SQS, S3, STS, gateway callbacks, the RabbitMQ management API
// and the Kubernetes API.
//
// A Client holds options shared by its requests (base URL, default headers, bearer token,
// timeouts, TLS, retries) and a pool of curl handles: a request takes an idle handle (or makes
// one) and gives it back afterwards, so connections are kept alive between requests and any
// number of threads may call one Client at the same time.
//
// Results: any HTTP status is a successful Result (the caller decides what a 404 means);
// transport failures (DNS, refused, TLS handshake, timeouts) are kUnavailable naming the URL
// and curl's reason; a cancelled request is kCancelled; bad input (a relative URL without a
// base_url, an unreadable CA file or client key) is kInvalidArgument.
//
// Retries (RetryPolicy, off by default): connection failures, 5xx and 429 are retried with
// exponential backoff, sleeping on the Client's Clock (a ManualClock in tests). A 429/503 with a
// `Retry-After: <seconds>` header waits that long instead (capped by max_backoff). Only opt in
// for requests that are safe to repeat.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "asya/base/clock.h"
#include "asya/base/result.h"

namespace asya::http {

using Millis = std::chrono::milliseconds;
// Ordered name/value pairs; names keep the caller's spelling; repeated names are allowed.
using Headers = std::vector<std::pair<std::string, std::string>>;

// Case-insensitive lookup of the first header called `name`; empty when absent.
std::string FindHeader(const Headers& headers, std::string_view name);

struct Request {
  std::string method = "GET";
  std::string url;    // absolute "http(s)://...", or a path appended to ClientOptions::base_url
  Headers headers;    // sent after the Client's default headers
  std::string body;   // sent for every method but GET and HEAD
  Millis timeout{0};  // whole request; 0 = the Client's
  Millis connect_timeout{0};  // 0 = the Client's
};

struct Response {
  long status = 0;
  Headers headers;   // of the final response (after 100-continue), names as received
  std::string body;  // empty for a streamed 2xx body (it went to the line handler)

  // Case-insensitive lookup; empty when absent.
  [[nodiscard]] std::string Header(std::string_view name) const {
    return FindHeader(headers, name);
  }
};

struct TlsOptions {
  std::string ca_file;           // PEM bundle to verify the server with (instead of the system's)
  std::string ca_data;           // the same as PEM text (a kubeconfig's certificate-authority-data)
  std::string client_cert_file;  // PEM client certificate (mutual TLS)
  std::string client_key_file;   // PEM private key of client_cert_file
  std::string client_cert_data;  // the same two as PEM text
  std::string client_key_data;
  bool insecure_skip_verify = false;  // no peer or host name check: tests only
};

struct RetryPolicy {
  int max_attempts = 1;  // 1 = no retries
  Millis initial_backoff{100};
  double multiplier = 2.0;
  Millis max_backoff{10'000};
  bool on_connection_error = true;  // refused, DNS, reset, empty reply (not the total timeout)
  bool on_5xx = true;
  bool on_429 = true;
};

// Bounds on what a server sends back (a misbehaving or hostile endpoint cannot exhaust memory).
inline constexpr size_t kMaxResponseHeaders = 1000;

struct ClientOptions {
  std::string base_url;  // prefix for relative request URLs; trailing '/' removed
  Headers default_headers;
  std::string bearer_token;  // adds "Authorization: Bearer <token>" when not empty
  Millis timeout{30'000};
  Millis connect_timeout{5'000};
  TlsOptions tls;
  RetryPolicy retry;
  // Largest response body (or streamed line) accepted; past it the request fails with
  // kResourceExhausted naming the URL and the limit. Also: at most kMaxResponseHeaders headers.
  size_t max_response_bytes = 256u << 20;
  Clock* clock = nullptr;  // backoff sleeps; nullptr = SystemClock()
};

// Cancels the requests that run with it (and backoff sleeps between their retries). Thread-safe;
// once cancelled it stays cancelled.
class CancelToken {
 public:
  void Cancel();
  [[nodiscard]] bool cancelled() const { return cancelled_.load(std::memory_order_acquire); }

  // Used by Client while a request runs: wakes `multi` (a CURLM*) on Cancel().
  void Register(void* multi);
  void Unregister(void* multi);

 private:
  std::atomic<bool> cancelled_{false};
  std::mutex mu_;
  std::set<void*> multis_;
};

// Receives a streamed 2xx body one line at a time (without the '\n'; a last line without '\n'
// is delivered at the end). Return false to stop reading: the request then ends successfully.
using LineHandler = std::function<bool(std::string_view line)>;

class Client {
 public:
  explicit Client(ClientOptions options = {});
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // Performs `request` (with retries when the policy allows). Thread-safe.
  Result<Response> Do(const Request& request, CancelToken* cancel = nullptr) const;

  // Like Do, but a 2xx body goes to `on_line` line by line as it arrives (a Kubernetes watch);
  // other statuses are collected into Response::body. Never retried once lines were delivered.
  Result<Response> Stream(const Request& request, const LineHandler& on_line,
                          CancelToken* cancel = nullptr) const;

  Result<Response> Get(std::string url, CancelToken* cancel = nullptr) const;
  Result<Response> Post(std::string url, std::string body, std::string content_type,
                        CancelToken* cancel = nullptr) const;

  [[nodiscard]] const ClientOptions& options() const { return options_; }

 private:
  struct Handle;
  Result<Response> Run(const Request& request, const LineHandler* on_line,
                       CancelToken* cancel) const;
  Result<Response> Once(const Request& request, const LineHandler* on_line, CancelToken* cancel,
                        bool* retryable, bool* streamed) const;
  std::unique_ptr<Handle> Acquire() const;
  void Release(std::unique_ptr<Handle> handle) const;

  ClientOptions options_;
  Clock* clock_;
  mutable std::mutex pool_mu_;
  mutable std::vector<std::unique_ptr<Handle>> idle_;  // handles not in use (keep-alive)
};

}  // namespace asya::http
