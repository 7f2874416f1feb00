#include "asya/sidecar/gateway.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <string_view>
#include <thread>
#include <unordered_set>
#include <utility>

#include "asya/base/log.h"
#include "asya/http/client.h"

namespace asya::sidecar {
namespace {

using Clock = std::chrono::steady_clock;

struct Pending {
  PostKind kind;
  std::string path;
  std::string body;
  int attempts = 0;
  Clock::time_point not_before;
};

// "/envelopes/<id>" of a progress path "/envelopes/<id>/progress"; empty for other paths.
std::string_view EnvelopeOf(std::string_view path) {
  constexpr std::string_view kSuffix = "/progress";
  if (path.size() <= kSuffix.size() || path.substr(path.size() - kSuffix.size()) != kSuffix) {
    return {};
  }
  return path.substr(0, path.size() - kSuffix.size());
}

}  // namespace

struct GatewayReporter::Impl {
  GatewayOptions o;
  std::unique_ptr<http::Client> client;  // thread-safe: the worker and Healthy() share it
  std::mutex mu;
  std::condition_variable cv;
  std::deque<Pending> queue;
  bool accepting = true;
  bool stop = false;
  std::atomic<size_t> delivered{0};
  std::atomic<size_t> dropped{0};
  std::thread worker;
  // Envelopes whose progress the gateway answered 404 (it did not create them, e.g. `asya send`
  // on a mesh that runs a gateway): their later progress posts are dropped without a request.
  // Bounded: the oldest entries are forgotten first. Guarded by mu.
  static constexpr size_t kUnknownCapacity = 4096;
  std::unordered_set<std::string> unknown;
  std::deque<std::string> unknown_order;

  // Under mu.
  bool Unknown(std::string_view path) const {
    std::string_view envelope = EnvelopeOf(path);
    return !envelope.empty() && unknown.count(std::string(envelope)) > 0;
  }
  void RememberUnknown(std::string_view path) {
    std::string envelope(EnvelopeOf(path));
    if (envelope.empty() || !unknown.insert(envelope).second) {
      return;
    }
    unknown_order.push_back(std::move(envelope));
    if (unknown_order.size() > kUnknownCapacity) {
      unknown.erase(unknown_order.front());
      unknown_order.pop_front();
    }
  }

  // Returns the HTTP status, or 0 on a transport error.
  long Request(const std::string& path, const std::string* body) {
    http::Request request;
    request.url = o.url + path;
    if (body != nullptr) {
      request.method = "POST";
      request.headers = {{"Content-Type", "application/json"}};
      request.body = *body;
    }
    auto response = client->Do(request);
    return response ? response->status : 0;
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
      if (p.kind == PostKind::kProgress && Unknown(p.path)) {
        ++dropped;  // queued before the gateway said it does not know the envelope
        cv.notify_all();
        continue;
      }
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
      if (code == 404) {
        // The gateway does not know this envelope (not started through it, e.g. `asya send` on a
        // mesh that runs a gateway, or purged): progress is dropped at once; a final status gets
        // the few tries of a progress post (a fan-out child's record may still be on its way).
        max = p.kind == PostKind::kFinal ? std::min(max, o.max_attempts) : 1;
        if (p.kind == PostKind::kProgress) {
          RememberUnknown(p.path);
        }
      }
      if (p.attempts >= max) {
        ++dropped;
        if (p.kind == PostKind::kFinal && code != 404) {
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
  impl_->client =
      std::make_unique<http::Client>(http::ClientOptions{.bearer_token = impl_->o.token,
                                                         .timeout = impl_->o.http_timeout,
                                                         .connect_timeout = impl_->o.http_timeout});
  impl_->worker = std::thread([this] { impl_->Loop(); });
}

GatewayReporter::~GatewayReporter() {
  Stop(std::chrono::milliseconds(0));
}

bool GatewayReporter::Healthy() {
  return impl_->Request("/health", nullptr) == 200;
}

void GatewayReporter::Post(PostKind kind, std::string path, std::string body) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  if (!impl_->accepting || (kind == PostKind::kProgress && impl_->Unknown(path))) {
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
