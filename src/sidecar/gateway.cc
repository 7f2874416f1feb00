#include "asya/sidecar/gateway.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <optional>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "asya/base/json_text.h"
#include "asya/base/log.h"
#include "asya/http/client.h"

namespace asya::sidecar {
namespace {

using Clock = std::chrono::steady_clock;

constexpr std::string_view kBatchPath = "/envelopes/batch";

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
  std::atomic<size_t> requests{0};
  std::atomic<size_t> flush_timeouts{0};
  bool batches = true;     // the gateway may take POST /envelopes/batch (until it refuses one)
  bool busy = false;       // the last request carried several reports: the next one lingers
  bool lingering = false;  // the worker waits for a fuller batch: Post() wakes it only when full
  std::thread worker;
  // Envelopes whose progress the gateway answered 404 (it did not create them, e.g. `asya send`
  // on a mesh that runs a gateway): their later progress posts are dropped without a request.
  // Bounded: the oldest entries are forgotten first. Guarded by mu.
  static constexpr size_t kUnknownCapacity = 4096;
  std::unordered_set<std::string> unknown;
  std::deque<std::string> unknown_order;
  // Flush(): progress posts not tried yet, per "/envelopes/<id>"; how many progress posts were
  // queued and how many had their first try (in queue order); the waiting flushes; and, after a
  // flush timed out, the count of first tries that means "caught up" again (0: not behind).
  std::unordered_map<std::string, size_t> untried;
  uint64_t progress_queued = 0;
  uint64_t progress_tried = 0;
  size_t flushing = 0;
  uint64_t behind_until_tried = 0;

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

  // Under mu: a queued progress post had its first try, or left the queue without one.
  void FirstTryDone(const Pending& p) {
    if (p.kind != PostKind::kProgress || p.attempts != 0) {
      return;
    }
    ++progress_tried;
    if (progress_tried >= behind_until_tried) {
      behind_until_tried = 0;
    }
    auto it = untried.find(std::string(EnvelopeOf(p.path)));
    if (it != untried.end() && --it->second == 0) {
      untried.erase(it);
    }
  }

  // Returns the HTTP status, or 0 on a transport error.
  long Request(const std::string& path, const std::string* body) {
    ++requests;
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

  // POST /envelopes/batch: the HTTP status of each post, in order; nullopt when the gateway does
  // not take batches (then nothing was applied that a single post would not apply again: a
  // gateway that takes the path answers 200 with every status).
  std::optional<std::vector<long>> RequestBatch(const std::vector<Pending>& batch) {
    std::string body = "{\"reports\":[";
    for (size_t i = 0; i < batch.size(); ++i) {
      body += i == 0 ? "{\"path\":" : ",{\"path\":";
      AppendJsonString(body, batch[i].path);
      body += ",\"body\":";
      body += batch[i].body;
      body += '}';
    }
    body += "]}";
    ++requests;
    http::Request request;
    request.url = o.url + std::string(kBatchPath);
    request.method = "POST";
    request.headers = {{"Content-Type", "application/json"}};
    request.body = std::move(body);
    auto response = client->Do(request);
    const long code = response ? response->status : 0;
    if (code == 0 || code >= 500 || code == 429) {
      return std::vector<long>(batch.size(), code);  // down or overloaded: one try each
    }
    if (code == 200) {
      auto answer = nlohmann::json::parse(response->body, nullptr, false);
      if (answer.is_object()) {
        auto st = answer.find("statuses");
        if (st != answer.end() && st->is_array() && st->size() == batch.size()) {
          std::vector<long> codes;
          for (const auto& c : *st) {
            codes.push_back(c.is_number_integer() ? c.get<long>() : 0);
          }
          return codes;
        }
      }
    }
    log::Info("gateway does not take batched reports; posting them one by one",
              {{"url", o.url}, {"http_status", code}, {"answer", response->body.substr(0, 200)}});
    return std::nullopt;
  }

  // Under mu: the outcome of one try of `p` (HTTP status `code`, 0 = transport error): counted,
  // dropped, or queued again for a retry.
  void Settle(Pending p, long code) {
    FirstTryDone(p);
    ++p.attempts;
    const bool final = p.kind == PostKind::kFinal || p.kind == PostKind::kChildFinal;
    bool ok = p.kind == PostKind::kProgress ? code == 200 : (code >= 200 && code < 300);
    if (ok) {
      ++delivered;
      return;
    }
    int max = final ? o.final_max_attempts : o.max_attempts;
    if (code == 404) {
      // The gateway does not know this envelope (not started through it, e.g. `asya send` on a
      // mesh that runs a gateway, or purged): progress is dropped at once, and so is the final
      // status of an envelope without a parent (recorded before it was published, if ever); a
      // fan-out child's final status gets the few tries of a progress post (its record may still
      // be on its way).
      max = p.kind == PostKind::kChildFinal ? std::min(max, o.max_attempts) : 1;
      if (p.kind == PostKind::kProgress) {
        RememberUnknown(p.path);
      }
    }
    if (p.attempts >= max) {
      ++dropped;
      if (final && code != 404) {
        log::Error("gateway final status dropped after retries",
                   {{"path", p.path}, {"attempts", p.attempts}, {"http_status", code}});
      } else {
        log::Debug("gateway post dropped", {{"path", p.path}, {"http_status", code}});
      }
      return;
    }
    auto delay = o.retry_interval;
    if (final) {
      delay = std::min(o.final_max_backoff, std::chrono::milliseconds(o.retry_interval.count()
                                                                      << std::min(p.attempts, 16)));
    }
    p.not_before = Clock::now() + delay;
    queue.push_back(std::move(p));
  }

  void Loop() {
    std::unique_lock<std::mutex> lock(mu);
    while (true) {
      cv.wait(lock, [&] { return stop || !queue.empty(); });
      if (stop) {
        return;
      }
      const size_t limit = batches ? std::max<size_t>(1, o.max_batch) : 1;
      if (busy && limit > 1 && o.linger.count() > 0 && queue.size() < limit) {
        lingering = true;
        cv.wait_for(lock, o.linger,
                    [&] { return stop || !accepting || flushing > 0 || queue.size() >= limit; });
        lingering = false;
        if (stop) {
          return;
        }
      }
      // Take the due posts from the front (at most one request's worth); posts not due yet go
      // behind the others.
      const auto now = Clock::now();
      std::vector<Pending> batch;
      size_t bytes = 0;
      std::vector<Pending> later;
      Clock::time_point next_due = Clock::time_point::max();
      while (!queue.empty() && batch.size() < limit) {
        Pending& p = queue.front();
        if (p.kind == PostKind::kProgress && Unknown(p.path)) {
          ++dropped;  // queued before the gateway said it does not know the envelope
          FirstTryDone(p);
          queue.pop_front();
          continue;
        }
        if (p.not_before > now) {
          next_due = std::min(next_due, p.not_before);
          later.push_back(std::move(p));
          queue.pop_front();
          continue;
        }
        if (!batch.empty() && bytes + p.body.size() > o.max_batch_bytes) {
          break;
        }
        bytes += p.body.size();
        batch.push_back(std::move(p));
        queue.pop_front();
      }
      for (auto& p : later) {
        queue.push_back(std::move(p));
      }
      if (batch.empty()) {
        cv.notify_all();  // Stop() may be waiting for the queue to drain
        if (!queue.empty()) {
          cv.wait_until(lock, std::min(next_due, now + o.retry_interval));
        }
        continue;
      }
      lock.unlock();
      std::optional<std::vector<long>> codes;
      if (batch.size() == 1) {
        codes = std::vector<long>{Request(batch[0].path, &batch[0].body)};
      } else {
        codes = RequestBatch(batch);
      }
      lock.lock();
      busy = batch.size() > 1;
      cv.notify_all();  // Stop() may be waiting for the queue to drain
      if (!codes) {
        // The gateway does not take batches: single posts from now on, these first (no try used).
        batches = false;
        for (auto it = batch.rbegin(); it != batch.rend(); ++it) {
          queue.push_front(std::move(*it));
        }
        continue;
      }
      for (size_t i = 0; i < batch.size(); ++i) {
        Settle(std::move(batch[i]), (*codes)[i]);
      }
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
    auto is_final = [](PostKind k) { return k == PostKind::kFinal || k == PostKind::kChildFinal; };
    if (!is_final(kind)) {
      ++impl_->dropped;
      return;
    }
    // Final statuses matter more than progress: evict the oldest non-final post.
    auto it = std::find_if(impl_->queue.begin(), impl_->queue.end(),
                           [&](const Pending& p) { return !is_final(p.kind); });
    if (it == impl_->queue.end()) {
      ++impl_->dropped;
      log::Error("gateway queue full of final statuses; dropping one", {{"path", path}});
      return;
    }
    impl_->FirstTryDone(*it);
    impl_->queue.erase(it);
    ++impl_->dropped;
  }
  if (kind == PostKind::kProgress) {
    ++impl_->progress_queued;
    ++impl_->untried[std::string(EnvelopeOf(path))];
  }
  impl_->queue.push_back(Pending{kind, std::move(path), std::move(body), 0, Clock::now()});
  if (!impl_->lingering || impl_->queue.size() >= std::max<size_t>(1, impl_->o.max_batch)) {
    impl_->cv.notify_all();
  }
}

void GatewayReporter::Flush(std::string_view id) {
  std::unique_lock<std::mutex> lock(impl_->mu);
  const std::string key = "/envelopes/" + std::string(id);
  auto done = [&] { return impl_->stop || impl_->untried.count(key) == 0; };
  if (impl_->behind_until_tried > 0 || done()) {
    return;
  }
  ++impl_->flushing;
  impl_->cv.notify_all();  // a lingering worker sends now
  if (!impl_->cv.wait_for(lock, impl_->o.flush_wait, done)) {
    impl_->behind_until_tried = impl_->progress_queued;  // caught up once all these were tried
    ++impl_->flush_timeouts;
    log::Warn("gateway slow to take reports; not waiting for them until it catches up",
              {{"url", impl_->o.url}, {"waited", impl_->o.flush_wait.count()}});
  }
  --impl_->flushing;
}

void GatewayReporter::Stop(std::chrono::milliseconds drain) {
  {
    std::unique_lock<std::mutex> lock(impl_->mu);
    impl_->accepting = false;
    impl_->cv.notify_all();  // a lingering worker sends what it has
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
size_t GatewayReporter::Requests() const {
  return impl_->requests;
}
size_t GatewayReporter::FlushTimeouts() const {
  return impl_->flush_timeouts;
}

}  // namespace asya::sidecar
