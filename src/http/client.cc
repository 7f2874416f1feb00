#include "asya/http/client.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <condition_variable>
#include <optional>

#include <curl/curl.h>

#include "asya/base/log.h"
#include "asya/base/redact.h"

namespace asya::http {
namespace {

struct CurlGlobal {
  CurlGlobal() { curl_global_init(CURL_GLOBAL_DEFAULT); }
};

void InitCurlOnce() {
  static CurlGlobal global;
}

bool IEquals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

// The URL without its user-info (RabbitMQ's management URL carries credentials), for errors.
std::string Redact(std::string_view url) {
  return RedactSecrets(RedactUrl(url));
}

bool IsAbsolute(std::string_view url) {
  return url.rfind("http://", 0) == 0 || url.rfind("https://", 0) == 0;
}

// Failures that a new attempt may not meet again: nothing reached the server's application.
bool IsConnectionError(CURLcode code) {
  switch (code) {
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_GOT_NOTHING:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
      return true;
    default:
      return false;
  }
}

// Problems with the caller's own TLS material, not with the peer.
bool IsLocalTlsError(CURLcode code) {
  return code == CURLE_SSL_CACERT_BADFILE || code == CURLE_SSL_CERTPROBLEM ||
         code == CURLE_SSL_CIPHER;
}

struct Transfer {
  CURL* easy = nullptr;
  Response* response = nullptr;
  const LineHandler* on_line = nullptr;
  std::string partial;     // streamed bytes after the last '\n'
  bool streaming = false;  // decided at the first body byte (2xx + handler)
  bool decided = false;
  bool stopped = false;  // the handler asked to stop
  bool delivered = false;
  size_t max_bytes = 0;     // ClientOptions::max_response_bytes
  bool too_large = false;   // a body or a streamed line passed max_bytes
  size_t header_count = 0;  // of the final response
};

bool DeliverLines(Transfer* t, std::string_view data) {
  t->partial.append(data);
  size_t start = 0;
  while (true) {
    size_t nl = t->partial.find('\n', start);
    if (nl == std::string::npos) {
      break;
    }
    std::string_view line(t->partial.data() + start, nl - start);
    if (!line.empty() && line.back() == '\r') {
      line.remove_suffix(1);
    }
    t->delivered = true;
    if (!(*t->on_line)(line)) {
      t->stopped = true;
      return false;
    }
    start = nl + 1;
  }
  t->partial.erase(0, start);
  return true;
}

size_t WriteBody(char* data, size_t size, size_t count, void* user) {
  auto* t = static_cast<Transfer*>(user);
  const size_t n = size * count;
  if (!t->decided) {
    t->decided = true;
    long status = 0;
    curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &status);
    t->streaming = t->on_line != nullptr && status >= 200 && status < 300;
  }
  if (!t->streaming) {
    if (t->response->body.size() + n > t->max_bytes) {
      t->too_large = true;
      return 0;  // ends the transfer with CURLE_WRITE_ERROR
    }
    t->response->body.append(data, n);
    return n;
  }
  if (!DeliverLines(t, std::string_view(data, n))) {
    return 0;
  }
  if (t->partial.size() > t->max_bytes) {  // one line without end
    t->too_large = true;
    return 0;
  }
  return n;
}

size_t WriteHeader(char* data, size_t size, size_t count, void* user) {
  auto* t = static_cast<Transfer*>(user);
  Response* response = t->response;
  std::string_view line(data, size * count);
  if (line.rfind("HTTP/", 0) == 0) {
    response->headers.clear();  // a new response (e.g. after 100-continue)
    return size * count;
  }
  size_t colon = line.find(':');
  if (colon != std::string_view::npos) {
    std::string_view name = line.substr(0, colon);
    std::string_view value = line.substr(colon + 1);
    while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) {
      value.remove_prefix(1);
    }
    while (!value.empty() &&
           (value.back() == '\r' || value.back() == '\n' || value.back() == ' ')) {
      value.remove_suffix(1);
    }
    if (response->headers.size() >= kMaxResponseHeaders) {
      t->too_large = true;
      return 0;
    }
    response->headers.emplace_back(std::string(name), std::string(value));
  }
  return size * count;
}

void SetBlob(CURL* easy, CURLoption option, const std::string& data) {
  curl_blob blob{const_cast<char*>(data.data()), data.size(), CURL_BLOB_COPY};
  curl_easy_setopt(easy, option, &blob);
}

// Seconds of a `Retry-After: <seconds>` header (the HTTP-date form is not used by our servers).
std::optional<Millis> RetryAfter(const Response& response) {
  std::string value = response.Header("Retry-After");
  int64_t seconds = 0;
  auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), seconds);
  if (value.empty() || ec != std::errc() || end != value.data() + value.size() || seconds < 0) {
    return std::nullopt;
  }
  return Millis(seconds * 1000);
}

}  // namespace

std::string FindHeader(const Headers& headers, std::string_view name) {
  for (const auto& [key, value] : headers) {
    if (IEquals(key, name)) {
      return value;
    }
  }
  return "";
}

// ---- CancelToken ----------------------------------------------------------------------------

namespace {
// Backoff sleeps wait on this so Cancel() can end them; one for all tokens (cancels are rare).
std::mutex g_cancel_mu;
std::condition_variable g_cancel_cv;
}  // namespace

void CancelToken::Cancel() {
  cancelled_.store(true, std::memory_order_release);
  {
    std::lock_guard lock(mu_);
    for (void* multi : multis_) {
      curl_multi_wakeup(static_cast<CURLM*>(multi));
    }
  }
  std::lock_guard lock(g_cancel_mu);
  g_cancel_cv.notify_all();
}

void CancelToken::Register(void* multi) {
  std::lock_guard lock(mu_);
  multis_.insert(multi);
}

void CancelToken::Unregister(void* multi) {
  std::lock_guard lock(mu_);
  multis_.erase(multi);
}

// ---- Client ---------------------------------------------------------------------------------

struct Client::Handle {
  CURL* easy = nullptr;
  CURLM* multi = nullptr;  // holds the connection cache, so keep-alive survives between requests
  Handle() {
    InitCurlOnce();
    easy = curl_easy_init();
    multi = curl_multi_init();
  }
  ~Handle() {
    curl_multi_cleanup(multi);
    curl_easy_cleanup(easy);
  }
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
};

Client::Client(ClientOptions options)
    : options_(std::move(options)),
      clock_(options_.clock != nullptr ? options_.clock : &SystemClock()) {
  while (!options_.base_url.empty() && options_.base_url.back() == '/') {
    options_.base_url.pop_back();
  }
  if (options_.retry.max_attempts < 1) {
    options_.retry.max_attempts = 1;
  }
}

Client::~Client() = default;

std::unique_ptr<Client::Handle> Client::Acquire() const {
  {
    std::lock_guard lock(pool_mu_);
    if (!idle_.empty()) {
      auto handle = std::move(idle_.back());
      idle_.pop_back();
      return handle;
    }
  }
  return std::make_unique<Handle>();
}

void Client::Release(std::unique_ptr<Handle> handle) const {
  std::lock_guard lock(pool_mu_);
  idle_.push_back(std::move(handle));
}

Result<Response> Client::Do(const Request& request, CancelToken* cancel) const {
  return Run(request, nullptr, cancel);
}

Result<Response> Client::Stream(const Request& request, const LineHandler& on_line,
                                CancelToken* cancel) const {
  return Run(request, &on_line, cancel);
}

Result<Response> Client::Get(std::string url, CancelToken* cancel) const {
  Request request;
  request.url = std::move(url);
  return Do(request, cancel);
}

Result<Response> Client::Post(std::string url, std::string body, std::string content_type,
                              CancelToken* cancel) const {
  Request request;
  request.method = "POST";
  request.url = std::move(url);
  request.body = std::move(body);
  request.headers.emplace_back("Content-Type", std::move(content_type));
  return Do(request, cancel);
}

Result<Response> Client::Run(const Request& request, const LineHandler* on_line,
                             CancelToken* cancel) const {
  const RetryPolicy& policy = options_.retry;
  Millis backoff = policy.initial_backoff;
  for (int attempt = 1;; ++attempt) {
    bool retryable = false;
    bool streamed = false;
    Result<Response> result = Once(request, on_line, cancel, &retryable, &streamed);
    if (attempt >= policy.max_attempts || !retryable || streamed) {
      return result;
    }
    Millis wait = backoff;
    if (result.has_value()) {
      if (auto after = RetryAfter(*result); after.has_value()) {
        wait = std::min(*after, policy.max_backoff);
      }
    }
    log::Debug("http: retrying",
               {{"url", Redact(request.url)},
                {"attempt", attempt},
                {"wait_ms", static_cast<int64_t>(wait.count())},
                {"reason", result.has_value() ? "HTTP " + std::to_string(result->status)
                                              : result.error().message}});
    if (cancel == nullptr) {
      clock_->SleepFor(wait);
    } else {
      std::unique_lock lock(g_cancel_mu);
      if (clock_->WaitFor(lock, g_cancel_cv, wait, [&] { return cancel->cancelled(); })) {
        return MakeError(ErrorCode::kCancelled,
                         "request to " + Redact(request.url) + " was cancelled");
      }
    }
    backoff = std::min(
        policy.max_backoff,
        Millis(static_cast<int64_t>(static_cast<double>(backoff.count()) * policy.multiplier)));
  }
}

Result<Response> Client::Once(const Request& request, const LineHandler* on_line,
                              CancelToken* cancel, bool* retryable, bool* streamed) const {
  std::string url = request.url;
  if (!IsAbsolute(url)) {
    if (options_.base_url.empty()) {
      return MakeError(ErrorCode::kInvalidArgument,
                       "URL '" + Redact(url) + "' is relative and the HTTP client has no base URL");
    }
    url = options_.base_url + url;
  }
  if (cancel != nullptr && cancel->cancelled()) {
    return MakeError(ErrorCode::kCancelled, "request to " + Redact(url) + " was cancelled");
  }

  std::unique_ptr<Handle> h = Acquire();
  CURL* easy = h->easy;
  curl_easy_reset(easy);
  char error_buffer[CURL_ERROR_SIZE] = {0};  // curl's detail, e.g. which certificate check failed
  curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, error_buffer);

  Response response;
  Transfer transfer{easy, &response, on_line};
  transfer.max_bytes = options_.max_response_bytes;
  curl_slist* headers = nullptr;
  for (const auto& [name, value] : options_.default_headers) {
    headers = curl_slist_append(headers, (name + ": " + value).c_str());
  }
  if (!options_.bearer_token.empty()) {
    headers =
        curl_slist_append(headers, ("Authorization: Bearer " + options_.bearer_token).c_str());
  }
  for (const auto& [name, value] : request.headers) {
    headers = curl_slist_append(headers, (name + ": " + value).c_str());
  }
  // No "Expect: 100-continue" round trip for bodies above 1 KiB.
  headers = curl_slist_append(headers, "Expect:");

  const Millis timeout = request.timeout.count() > 0 ? request.timeout : options_.timeout;
  const Millis connect_timeout =
      request.connect_timeout.count() > 0 ? request.connect_timeout : options_.connect_timeout;
  curl_easy_setopt(easy, CURLOPT_URL, url.c_str());
  curl_easy_setopt(easy, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, static_cast<long>(timeout.count()));
  curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(connect_timeout.count()));
  curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, WriteBody);
  curl_easy_setopt(easy, CURLOPT_WRITEDATA, &transfer);
  curl_easy_setopt(easy, CURLOPT_HEADERFUNCTION, WriteHeader);
  curl_easy_setopt(easy, CURLOPT_HEADERDATA, &transfer);

  const TlsOptions& tls = options_.tls;
  if (!tls.ca_file.empty()) {
    curl_easy_setopt(easy, CURLOPT_CAINFO, tls.ca_file.c_str());
  }
  if (!tls.ca_data.empty()) {
    SetBlob(easy, CURLOPT_CAINFO_BLOB, tls.ca_data);
  }
  if (!tls.client_cert_file.empty()) {
    curl_easy_setopt(easy, CURLOPT_SSLCERT, tls.client_cert_file.c_str());
  }
  if (!tls.client_key_file.empty()) {
    curl_easy_setopt(easy, CURLOPT_SSLKEY, tls.client_key_file.c_str());
  }
  if (!tls.client_cert_data.empty()) {
    SetBlob(easy, CURLOPT_SSLCERT_BLOB, tls.client_cert_data);
  }
  if (!tls.client_key_data.empty()) {
    SetBlob(easy, CURLOPT_SSLKEY_BLOB, tls.client_key_data);
  }
  if (tls.insecure_skip_verify) {
    curl_easy_setopt(easy, CURLOPT_SSL_VERIFYPEER, 0L);
    curl_easy_setopt(easy, CURLOPT_SSL_VERIFYHOST, 0L);
  }

  if (request.method == "GET") {
    curl_easy_setopt(easy, CURLOPT_HTTPGET, 1L);
  } else if (request.method == "HEAD") {
    curl_easy_setopt(easy, CURLOPT_NOBODY, 1L);
  } else {
    curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST, request.method.c_str());
    curl_easy_setopt(easy, CURLOPT_POSTFIELDS, request.body.data());
    curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE,
                     static_cast<curl_off_t>(request.body.size()));
  }

  CURLcode result = CURLE_OK;
  bool cancelled = false;
  bool multi_failed = false;
  curl_multi_add_handle(h->multi, easy);
  if (cancel != nullptr) {
    cancel->Register(h->multi);
  }
  while (true) {
    if (cancel != nullptr && cancel->cancelled()) {
      cancelled = true;
      break;
    }
    int running = 0;
    if (curl_multi_perform(h->multi, &running) != CURLM_OK) {
      multi_failed = true;
      break;
    }
    if (running == 0) {
      int queued = 0;
      while (CURLMsg* msg = curl_multi_info_read(h->multi, &queued)) {
        if (msg->msg == CURLMSG_DONE) {
          result = msg->data.result;
        }
      }
      break;
    }
    curl_multi_poll(h->multi, nullptr, 0, 1000, nullptr);
  }
  if (cancel != nullptr) {
    cancel->Unregister(h->multi);
  }
  curl_multi_remove_handle(h->multi, easy);
  curl_slist_free_all(headers);
  curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &response.status);
  curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, nullptr);
  const std::string detail = error_buffer;
  Release(std::move(h));

  *streamed = transfer.delivered;
  if (cancelled) {
    return MakeError(ErrorCode::kCancelled, "request to " + Redact(url) + " was cancelled");
  }
  if (multi_failed) {
    return MakeError(ErrorCode::kInternal, "curl_multi_perform failed for " + Redact(url));
  }
  if (result == CURLE_WRITE_ERROR && transfer.stopped) {
    result = CURLE_OK;  // the line handler ended the stream
  }
  if (result == CURLE_WRITE_ERROR && transfer.too_large) {
    return MakeError(ErrorCode::kResourceExhausted,
                     "response from " + Redact(url) + " exceeds the limit of " +
                         std::to_string(options_.max_response_bytes) + " bytes (body or line) or " +
                         std::to_string(kMaxResponseHeaders) + " headers");
  }
  if (result != CURLE_OK) {
    *retryable = options_.retry.on_connection_error && IsConnectionError(result);
    return MakeError(
        IsLocalTlsError(result) ? ErrorCode::kInvalidArgument : ErrorCode::kUnavailable,
        "cannot reach " + Redact(url) + ": " + curl_easy_strerror(result) +
            (detail.empty() ? "" : " (" + detail + ")"));
  }
  if (transfer.streaming && !transfer.stopped && !transfer.partial.empty()) {
    std::string_view last = transfer.partial;
    if (last.back() == '\r') {
      last.remove_suffix(1);
    }
    transfer.delivered = true;
    *streamed = true;
    (*on_line)(last);
  }
  *retryable = (options_.retry.on_5xx && response.status >= 500 && response.status <= 599) ||
               (options_.retry.on_429 && response.status == 429);
  return response;
}

}  // namespace asya::http
