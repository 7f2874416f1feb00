// Asynchronous gateway callbacks (reference-dataplane §8, DESIGN §4.9): the production
// GatewaySink.
//
// Post() only enqueues (bounded queue, never blocks the message path); one worker thread sends
// the POSTs with libcurl. Progress and fan-out posts get `max_attempts` tries; final-status posts
// are retried (with backoff) up to `final_max_attempts` and then dropped with an error log.
// HTTP 404 (an envelope the gateway does not know): progress is dropped at once, and so is the
// final status of an envelope without a parent (kFinal: the gateway records such an envelope
// before it is published, so it will never know it); a fan-out child's final status (kChildFinal)
// gets `max_attempts` tries, without an error log. After a 404 to an envelope's progress, its
// later progress posts (queued or new) are dropped without a request (the last 4,096 such
// envelopes are remembered).
// Success = HTTP 200 for progress (as the original), any 2xx otherwise.
//
// Batches: when several posts are due at once (a busy sidecar), up to `max_batch` of them (and
// about `max_batch_bytes` of bodies) go in one `POST <url>/envelopes/batch` request
// ({"reports":[{"path","body"},...]} -> {"statuses":[HTTP status of each, in order]}); the gateway
// handles each report exactly as the single POST of that path, in order, so every report keeps its
// own status, tries and 404 rule. A single due post is sent as the single POST, as the original.
// A gateway that refuses the batch path (any 4xx, or a 200 without one status per report; an
// older gateway answers 405) gets single POSTs from then on; the refused posts are not counted
// as tries.
// Linger: after a request that carried several reports (the sidecar is busy), the next request
// waits up to `linger` for more reports (or until `max_batch` are due), so a busy sidecar sends
// fewer, fuller batches (each request is a wake-up and a round trip for both processes). A
// reporter whose last request carried one report (an idle sidecar) sends at once; a lingering
// reporter is woken only when a batch is full (or at Stop() or Flush()).
// Flush(id) (before a result goes to happy-end) ends a linger and waits until the envelope's
// queued progress posts have had their first try, at most `flush_wait`. A flush that times out
// (a slow or hung gateway) makes later flushes return at once until the reporter has tried
// everything queued, so a gateway in trouble slows the mesh by one `flush_wait`, not one per
// message.
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>

#include "asya/sidecar/gateway_sink.h"

namespace asya::sidecar {

struct GatewayOptions {
  std::string url;                 // ASYA_GATEWAY_URL, without a trailing slash
  std::string token;               // bearer token for sidecar callbacks (optional)
  size_t queue_capacity = 10'000;  // pending posts; newest progress posts dropped when full
  int max_attempts = 5;            // progress / fan-out posts
  int final_max_attempts = 30;     // final-status posts
  std::chrono::milliseconds retry_interval{200};
  std::chrono::milliseconds final_max_backoff{10'000};
  std::chrono::milliseconds http_timeout{5'000};
  size_t max_batch = 64;                // posts per batch request; 1 = never batch
  size_t max_batch_bytes = 256 * 1024;  // bodies per batch (a larger single post goes alone)
  std::chrono::milliseconds linger{5};  // see "Linger" above; 0 = never wait
  std::chrono::milliseconds flush_wait{1'000};  // Flush()'s bound
};

class GatewayReporter final : public GatewaySink {
 public:
  explicit GatewayReporter(GatewayOptions options);
  ~GatewayReporter() override;  // Stop(0) if still running
  GatewayReporter(const GatewayReporter&) = delete;
  GatewayReporter& operator=(const GatewayReporter&) = delete;

  // GET <url>/health once (startup check of reference §4.1 step 7); true on HTTP 200.
  bool Healthy();

  // Enqueues POST <url><path> with a JSON body. Thread-safe; never blocks.
  void Post(PostKind kind, std::string path, std::string body) override;
  void Flush(std::string_view id) override;

  // Stops accepting posts, lets the queue drain for up to `drain`, then stops the worker.
  void Stop(std::chrono::milliseconds drain);

  // Counters for tests and logs.
  [[nodiscard]] size_t Delivered() const;
  [[nodiscard]] size_t Dropped() const;
  [[nodiscard]] size_t Requests() const;       // HTTP requests sent (a batch counts once)
  [[nodiscard]] size_t FlushTimeouts() const;  // flushes that gave up after `flush_wait`

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace asya::sidecar
