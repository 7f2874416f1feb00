#include "asya/sidecar/gateway.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>
#include <utility>

#include <curl/curl.h>

#include "asya/base/log.h"

namespace asya::sidecar {
namespace {

using Clock = std::chrono::steady_clock;

size_t Discard(char* /*ptr*/, size_t size, size_t nmemb, void* /*userdata*/) {
  return size * nmemb;
}

struct Pending {
  PostKind kind;
  std::string path;
  std::string body;
  int attempts = 0;
  Clock::time_point not_before;
};

}  // namespace

struct GatewayReporter::Impl {
  GatewayOptions o;
  CURL* curl = nullptr;
  curl_slist* headers = nullptr;
  std::mutex mu;
  std::condition_variable cv;
  std::deque<Pending> queue;
  bool accepting = true;
  bool stop = false;
  std::atomic<size_t> delivered{0};
  std::atomic<size_t> dropped{0};
  std::thread worker;

  // Returns the HTTP status, or 0 on a transport error.
  long Request(const std::string& path, const std::string* body) {
    std::string url = o.url + path;
    curl_easy_reset(curl);
    curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, static_cast<long>(o.http_timeout.count()));
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, Discard);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    if (body != nullptr) {
      curl_easy_setopt(curl, CURLOPT_POST, 1L);
      curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body->data());
      curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, static_cast<long>(body->size()));
    }
    if (curl_easy_perform(curl) != CURLE_OK) {
      return 0;
    }
    long code = 0;
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &code);
    return code;
  }

  void Loop() {
    std::unique_lock<std::mutex> lock(mu);
    while (true) {
      cv.wait(lock, [&] { return stop || !queue.empty(); });
      if (stop) {
        return;
      }
      Pending p = std::move(queue.front());
      queue.pop_front();
      auto now = Clock::now();
      if (p.not_before > now) {
        // Not due yet: put it back behind the others and wait a little.
        queue.push_back(std::move(p));
        cv.wait_until(lock, std::min(queue.front().not_before, now + o.retry_interval));
        continue;
      }
      lock.unlock();
      long code = Request(p.path, &p.body);
      ++p.attempts;
      bool ok = p.kind == PostKind::kProgress ? code == 200 : (code >= 200 && code < 300);
      lock.lock();
      cv.notify_all();  // Stop() may be waiting for the queue to drain
      if (ok) {
        ++delivered;
        continue;
      }
      int max = p.kind == PostKind::kFinal ? o.final_max_attempts : o.max_attempts;
      if (p.attempts >= max) {
        ++dropped;
        if (p.kind == PostKind::kFinal) {
          log::Error("gateway final status dropped after retries",
                     {{"path", p.path}, {"attempts", p.attempts}, {"http_status", code}});
        } else {
          log::Debug("gateway post dropped", {{"path", p.path}, {"http_status", code}});
        }
        continue;
      }
      auto delay = o.retry_interval;
      if (p.kind == PostKind::kFinal) {
        delay = std::min(
            o.final_max_backoff,
            std::chrono::milliseconds(o.retry_interval.count() << std::min(p.attempts, 16)));
      }
      p.not_before = Clock::now() + delay;
      queue.push_back(std::move(p));
    }
  }
};

GatewayReporter::GatewayReporter(GatewayOptions options) : impl_(std::make_unique<Impl>()) {
  impl_->o = std::move(options);
  while (!impl_->o.url.empty() && impl_->o.url.back() == '/') {
    impl_->o.url.pop_back();
  }
  curl_global_init(CURL_GLOBAL_DEFAULT);
  impl_->curl = curl_easy_init();
  impl_->headers = curl_slist_append(nullptr, "Content-Type: application/json");
  if (!impl_->o.token.empty()) {
    impl_->headers =
        curl_slist_append(impl_->headers, ("Authorization: Bearer " + impl_->o.token).c_str());
  }
  impl_->worker = std::thread([this] { impl_->Loop(); });
}

GatewayReporter::~GatewayReporter() {
  Stop(std::chrono::milliseconds(0));
  curl_slist_free_all(impl_->headers);
  curl_easy_cleanup(impl_->curl);
}

bool GatewayReporter::Healthy() {
  // Runs on the caller's thread before the worker has anything to do; use a separate handle.
  CURL* c = curl_easy_init();
  std::string url = impl_->o.url + "/health";
  curl_easy_setopt(c, CURLOPT_URL, url.c_str());
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, static_cast<long>(impl_->o.http_timeout.count()));
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, Discard);
  long code = 0;
  if (curl_easy_perform(c) == CURLE_OK) {
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
  }
  curl_easy_cleanup(c);
  return code == 200;
}

void GatewayReporter::Post(PostKind kind, std::string path, std::string body) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  if (!impl_->accepting) {
    ++impl_->dropped;
    return;
  }
  if (impl_->queue.size() >= impl_->o.queue_capacity) {
    if (kind != PostKind::kFinal) {
      ++impl_->dropped;
      return;
    }
    // Final statuses matter more than progress: evict the oldest non-final post.
    auto it = std::find_if(impl_->queue.begin(), impl_->queue.end(),
                           [](const Pending& p) { return p.kind != PostKind::kFinal; });
    if (it == impl_->queue.end()) {
      ++impl_->dropped;
      log::Error("gateway queue full of final statuses; dropping one", {{"path", path}});
      return;
    }
    impl_->queue.erase(it);
    ++impl_->dropped;
  }
  impl_->queue.push_back(Pending{kind, std::move(path), std::move(body), 0, Clock::now()});
  impl_->cv.notify_all();
}

void GatewayReporter::Stop(std::chrono::milliseconds drain) {
  {
    std::unique_lock<std::mutex> lock(impl_->mu);
    impl_->accepting = false;
    if (drain.count() > 0) {
      impl_->cv.wait_for(lock, drain, [&] { return impl_->queue.empty(); });
    }
    impl_->stop = true;
    impl_->cv.notify_all();
  }
  if (impl_->worker.joinable()) {
    impl_->worker.join();
  }
}

size_t GatewayReporter::Delivered() const {
  return impl_->delivered;
}
size_t GatewayReporter::Dropped() const {
  return impl_->dropped;
}

}  // namespace asya::sidecar
