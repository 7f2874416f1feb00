#include "asya/aws/http.h"

#include <algorithm>
#include <cstring>

#include <curl/curl.h>

namespace asya::aws {
namespace {

struct CurlGlobal {
  CurlGlobal() { curl_global_init(CURL_GLOBAL_DEFAULT); }
};

// One easy + multi handle per thread, reused for every request of that thread.
struct ThreadHandles {
  CURL* easy = nullptr;
  CURLM* multi = nullptr;
  ThreadHandles() {
    static CurlGlobal global;
    easy = curl_easy_init();
    multi = curl_multi_init();
  }
  ~ThreadHandles() {
    curl_multi_cleanup(multi);
    curl_easy_cleanup(easy);
  }
  ThreadHandles(const ThreadHandles&) = delete;
  ThreadHandles& operator=(const ThreadHandles&) = delete;
};

ThreadHandles& Handles() {
  thread_local ThreadHandles handles;
  return handles;
}

size_t WriteBody(char* data, size_t size, size_t count, void* user) {
  static_cast<std::string*>(user)->append(data, size * count);
  return size * count;
}

size_t WriteHeader(char* data, size_t size, size_t count, void* user) {
  auto* response = static_cast<HttpResponse*>(user);
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
    response->headers.emplace_back(std::string(name), std::string(value));
  }
  return size * count;
}

bool IEquals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

}  // namespace

std::string HttpResponse::Header(std::string_view name) const {
  for (const auto& [key, value] : headers) {
    if (IEquals(key, name)) {
      return value;
    }
  }
  return "";
}

void CancelToken::Cancel() {
  cancelled_.store(true, std::memory_order_release);
  std::lock_guard lock(mu_);
  for (void* multi : multis_) {
    curl_multi_wakeup(static_cast<CURLM*>(multi));
  }
}

void CancelToken::Register(void* multi) {
  std::lock_guard lock(mu_);
  multis_.insert(multi);
}

void CancelToken::Unregister(void* multi) {
  std::lock_guard lock(mu_);
  multis_.erase(multi);
}

Result<HttpResponse> Perform(const HttpRequest& request, CancelToken* cancel) {
  ThreadHandles& h = Handles();
  CURL* easy = h.easy;
  curl_easy_reset(easy);

  HttpResponse response;
  curl_slist* headers = nullptr;
  for (const auto& [name, value] : request.headers) {
    headers = curl_slist_append(headers, (name + ": " + value).c_str());
  }
  // No "Expect: 100-continue" round trip for bodies above 1 KiB.
  headers = curl_slist_append(headers, "Expect:");

  curl_easy_setopt(easy, CURLOPT_URL, request.url.c_str());
  curl_easy_setopt(easy, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, static_cast<long>(request.timeout.count()));
  curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS,
                   static_cast<long>(request.connect_timeout.count()));
  curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, WriteBody);
  curl_easy_setopt(easy, CURLOPT_WRITEDATA, &response.body);
  curl_easy_setopt(easy, CURLOPT_HEADERFUNCTION, WriteHeader);
  curl_easy_setopt(easy, CURLOPT_HEADERDATA, &response);
  if (request.method == "GET") {
    curl_easy_setopt(easy, CURLOPT_HTTPGET, 1L);
  } else {
    curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST, request.method.c_str());
    curl_easy_setopt(easy, CURLOPT_POSTFIELDS, request.body.data());
    curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE,
                     static_cast<curl_off_t>(request.body.size()));
  }

  CURLcode result = CURLE_OK;
  bool cancelled = false;
  curl_multi_add_handle(h.multi, easy);
  if (cancel != nullptr) {
    cancel->Register(h.multi);
  }
  while (true) {
    if (cancel != nullptr && cancel->cancelled()) {
      cancelled = true;
      break;
    }
    int running = 0;
    CURLMcode mc = curl_multi_perform(h.multi, &running);
    if (mc != CURLM_OK) {
      result = CURLE_FAILED_INIT;
      break;
    }
    if (running == 0) {
      int queued = 0;
      while (CURLMsg* msg = curl_multi_info_read(h.multi, &queued)) {
        if (msg->msg == CURLMSG_DONE) {
          result = msg->data.result;
        }
      }
      break;
    }
    curl_multi_poll(h.multi, nullptr, 0, 1000, nullptr);
  }
  if (cancel != nullptr) {
    cancel->Unregister(h.multi);
  }
  curl_multi_remove_handle(h.multi, easy);
  curl_slist_free_all(headers);

  if (cancelled) {
    return MakeError(ErrorCode::kCancelled, "request to " + request.url + " was cancelled");
  }
  if (result != CURLE_OK) {
    return MakeError(ErrorCode::kUnavailable,
                     "cannot reach " + request.url + ": " + curl_easy_strerror(result));
  }
  curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &response.status);
  return response;
}

Result<Url> ParseUrl(std::string_view url) {
  Url out;
  size_t scheme_end = url.find("://");
  if (scheme_end == std::string_view::npos) {
    return MakeError(ErrorCode::kInvalidArgument,
                     "URL '" + std::string(url) + "' has no scheme (expected http:// or https://)");
  }
  out.scheme = std::string(url.substr(0, scheme_end));
  if (out.scheme != "http" && out.scheme != "https") {
    return MakeError(ErrorCode::kInvalidArgument,
                     "URL '" + std::string(url) + "' must start with http:// or https://");
  }
  std::string_view rest = url.substr(scheme_end + 3);
  size_t path_start = rest.find_first_of("/?#");
  out.authority = std::string(rest.substr(0, path_start));
  if (out.authority.empty() || out.authority.find('@') != std::string::npos) {
    return MakeError(ErrorCode::kInvalidArgument,
                     "URL '" + std::string(url) + "' has no host (or carries user info)");
  }
  if (out.authority.front() == '[') {
    out.host = out.authority.substr(0, out.authority.find(']') + 1);
  } else {
    out.host = out.authority.substr(0, out.authority.find(':'));
  }
  if (path_start == std::string_view::npos) {
    out.path = "/";
    return out;
  }
  rest = rest.substr(path_start);
  size_t fragment = rest.find('#');
  if (fragment != std::string_view::npos) {
    rest = rest.substr(0, fragment);
  }
  size_t query = rest.find('?');
  out.path = std::string(rest.substr(0, query));
  if (out.path.empty()) {
    out.path = "/";
  }
  if (query != std::string_view::npos) {
    out.query = std::string(rest.substr(query + 1));
  }
  return out;
}

std::string FormEncode(const HeaderList& fields) {
  std::string out;
  for (const auto& [name, value] : fields) {
    if (!out.empty()) {
      out.push_back('&');
    }
    out += UriEncode(name, false) + "=" + UriEncode(value, false);
  }
  return out;
}

}  // namespace asya::aws
