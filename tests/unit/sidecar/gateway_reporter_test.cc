// GatewayReporter against a real HTTP endpoint on loopback (a few lines of socket code that
// record each report's path and answer 200, or 404 for envelopes it does not know; batches
// (POST /envelopes/batch) are taken item by item, or refused with 405 as an older gateway does).
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "asya/sidecar/gateway.h"

namespace asya::sidecar {
namespace {

class FakeGateway {
 public:
  explicit FakeGateway(bool takes_batches = true) : takes_batches_(takes_batches) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)), 0);
    EXPECT_EQ(::listen(fd_, 16), 0);
    socklen_t len = sizeof(sa);
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&sa), &len);
    port_ = ntohs(sa.sin_port);
    thread_ = std::thread([this] { Serve(); });
  }
  ~FakeGateway() {
    stop_ = true;
    ::shutdown(fd_, SHUT_RDWR);
    thread_.join();
    ::close(fd_);
  }
  [[nodiscard]] std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  // Every report's path (a batch's items one by one; a refused batch is not recorded).
  std::vector<std::string> Paths() {
    std::lock_guard<std::mutex> lock(mu_);
    return paths_;
  }
  // Requests answered, and how many of them were (taken) batches.
  size_t Requests() {
    std::lock_guard<std::mutex> lock(mu_);
    return requests_;
  }
  size_t Arrived() {  // requests read, answered or not
    std::lock_guard<std::mutex> lock(mu_);
    return arrived_;
  }
  size_t Batches() {
    std::lock_guard<std::mutex> lock(mu_);
    return batches_;
  }
  // Holds the answer to the next request until Open(): posts pile up behind it.
  void Close() {
    std::lock_guard<std::mutex> lock(mu_);
    closed_ = true;
  }
  void Open() {
    std::lock_guard<std::mutex> lock(mu_);
    closed_ = false;
    cv_.notify_all();
  }

 private:
  void Serve() {
    while (!stop_) {
      int c = ::accept(fd_, nullptr, nullptr);
      if (c < 0) {
        return;
      }
      std::thread([this, c] { Connection(c); }).detach();
    }
  }
  // Keep-alive: several requests per connection, as libcurl sends them.
  void Connection(int c) {
    std::string buf;
    char tmp[4096];
    while (true) {
      size_t end = buf.find("\r\n\r\n");
      while (end == std::string::npos) {
        ssize_t n = ::recv(c, tmp, sizeof(tmp), 0);
        if (n <= 0) {
          ::close(c);
          return;
        }
        buf.append(tmp, static_cast<size_t>(n));
        end = buf.find("\r\n\r\n");
      }
      size_t length = 0;
      if (auto p = buf.find("Content-Length: "); p != std::string::npos && p < end) {
        length = std::stoul(buf.substr(p + 16));
      }
      while (buf.size() < end + 4 + length) {
        ssize_t n = ::recv(c, tmp, sizeof(tmp), 0);
        if (n <= 0) {
          ::close(c);
          return;
        }
        buf.append(tmp, static_cast<size_t>(n));
      }
      const size_t sp = buf.find(' ');
      std::string path = buf.substr(sp + 1, buf.find(' ', sp + 1) - sp - 1);
      std::string body = buf.substr(end + 4, length);
      buf.erase(0, end + 4 + length);
      std::string answer;
      {
        std::unique_lock<std::mutex> lock(mu_);
        ++arrived_;
        cv_.wait(lock, [&] { return !closed_; });
        ++requests_;
        if (path != "/envelopes/batch") {
          paths_.push_back(path);
          answer = Known(path) ? "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
                               : "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n";
        } else if (!takes_batches_) {
          answer = "HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n";
        } else {
          ++batches_;
          std::string statuses;
          const auto request = nlohmann::json::parse(body);
          for (const auto& report : request["reports"]) {
            const std::string p = report["path"];
            paths_.push_back(p);
            statuses += (statuses.empty() ? "" : ",") + std::string(Known(p) ? "200" : "404");
          }
          const std::string json = "{\"statuses\":[" + statuses + "]}";
          answer = "HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(json.size()) +
                   "\r\n\r\n" + json;
        }
      }
      ::send(c, answer.data(), answer.size(), MSG_NOSIGNAL);
    }
  }

  static bool Known(const std::string& path) { return path.find("/envelopes/unknown") != 0; }

  const bool takes_batches_;
  int fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool closed_ = false;
  size_t arrived_ = 0;
  size_t requests_ = 0;
  size_t batches_ = 0;
  std::vector<std::string> paths_;
};

size_t Count(const std::vector<std::string>& paths, const std::string& path) {
  size_t n = 0;
  for (const auto& p : paths) {
    n += p == path ? 1 : 0;
  }
  return n;
}

// Every test runs against a gateway that takes batches and one that refuses them (405).
class GatewayReporterTest : public ::testing::TestWithParam<bool> {};

INSTANTIATE_TEST_SUITE_P(Batches, GatewayReporterTest, ::testing::Values(true, false),
                         [](const auto& p) {
                           return p.param ? "GatewayTakesBatches" : "GatewayRefusesBatches";
                         });

void WaitFor(const GatewayReporter& r, size_t settled) {
  for (int i = 0; i < 1000 && r.Delivered() + r.Dropped() < settled; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

TEST_P(GatewayReporterTest, ProgressOfAnEnvelopeTheGatewayDoesNotKnowStopsAfterThe404) {
  FakeGateway gw(GetParam());
  GatewayReporter r({.url = gw.url(), .retry_interval = std::chrono::milliseconds(10)});
  r.Post(PostKind::kProgress, "/envelopes/unknown-1/progress", R"({"status":"received"})");
  r.Post(PostKind::kProgress, "/envelopes/known-1/progress", R"({"status":"received"})");
  // Wait until both were answered, then post more for each envelope.
  WaitFor(r, 2);
  ASSERT_EQ(r.Delivered(), 1u);
  ASSERT_EQ(r.Dropped(), 1u);
  r.Post(PostKind::kProgress, "/envelopes/unknown-1/progress", R"({"status":"processing"})");
  r.Post(PostKind::kProgress, "/envelopes/unknown-1/progress", R"({"status":"completed"})");
  r.Post(PostKind::kProgress, "/envelopes/known-1/progress", R"({"status":"processing"})");
  r.Post(PostKind::kProgress, "/envelopes/unknown-2/progress", R"({"status":"received"})");
  // A fan-out child's final status is still sent and retried (its record may be late); the final
  // status of an envelope without a parent is asked once (the gateway records such envelopes
  // before they are published).
  r.Post(PostKind::kChildFinal, "/envelopes/unknown-1-1/final", R"({"status":"succeeded"})");
  r.Post(PostKind::kFinal, "/envelopes/unknown-3/final", R"({"status":"succeeded"})");
  WaitFor(r, 8);
  r.Stop(std::chrono::milliseconds(0));
  auto paths = gw.Paths();
  EXPECT_EQ(Count(paths, "/envelopes/unknown-1/progress"), 1u);  // the later two: no request
  EXPECT_EQ(Count(paths, "/envelopes/known-1/progress"), 2u);
  EXPECT_EQ(Count(paths, "/envelopes/unknown-2/progress"), 1u);  // another envelope: asked
  EXPECT_EQ(Count(paths, "/envelopes/unknown-1-1/final"), 5u);   // max_attempts tries
  EXPECT_EQ(Count(paths, "/envelopes/unknown-3/final"), 1u);
  EXPECT_EQ(r.Delivered(), 2u);
  EXPECT_EQ(r.Dropped(), 6u);  // unknown-1 x3, unknown-2, the two finals
}

TEST_P(GatewayReporterTest, PostsDueAtOnceGoInOneBatchEachWithItsOwnOutcome) {
  FakeGateway gw(GetParam());
  GatewayReporter r({.url = gw.url(), .retry_interval = std::chrono::milliseconds(10)});
  gw.Close();  // the first post waits for its answer while the others pile up
  r.Post(PostKind::kProgress, "/envelopes/known-0/progress", R"({"status":"received"})");
  for (int i = 0; i < 1000 && gw.Arrived() == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ASSERT_EQ(gw.Arrived(), 1u);
  constexpr int kEnvelopes = 40;
  for (int i = 1; i <= kEnvelopes; ++i) {
    const std::string e =
        "/envelopes/" + std::string(i % 4 == 0 ? "unknown-" : "known-") + std::to_string(i);
    r.Post(PostKind::kProgress, e + "/progress", R"({"status":"received"})");
    r.Post(PostKind::kProgress, e + "/progress", R"({"status":"processing"})");
    r.Post(i % 4 == 0 ? PostKind::kFinal : PostKind::kFanout,
           i % 4 == 0 ? e + "/final" : std::string("/envelopes"), R"({"status":"succeeded"})");
  }
  gw.Open();
  WaitFor(r, 1 + 3 * kEnvelopes);
  r.Stop(std::chrono::milliseconds(0));
  auto paths = gw.Paths();
  // Every report reached the gateway once, as single posts would have; in a batch the second
  // progress of an unknown envelope goes with the first (the 404 is not known yet), alone it is
  // dropped after the first one's 404.
  EXPECT_EQ(Count(paths, "/envelopes/known-0/progress"), 1u);
  for (int i = 1; i <= kEnvelopes; ++i) {
    const bool unknown = i % 4 == 0;
    const std::string e =
        "/envelopes/" + std::string(unknown ? "unknown-" : "known-") + std::to_string(i);
    EXPECT_EQ(Count(paths, e + "/progress"), unknown && !GetParam() ? 1u : 2u) << e;
    EXPECT_EQ(Count(paths, e + "/final"), i % 4 == 0 ? 1u : 0u) << e;
  }
  EXPECT_EQ(Count(paths, "/envelopes"), static_cast<size_t>(kEnvelopes - kEnvelopes / 4));
  EXPECT_EQ(r.Delivered(), static_cast<size_t>(1 + 3 * (kEnvelopes - kEnvelopes / 4)));
  EXPECT_EQ(r.Dropped(), static_cast<size_t>(3 * kEnvelopes / 4));
  if (GetParam()) {
    // 120 posts behind the first: two batches of at most 64.
    EXPECT_EQ(gw.Batches(), 2u);
    EXPECT_EQ(r.Requests(), 3u);
  } else {
    // One refused batch, then every post alone (an unknown envelope: its first progress and
    // its final status).
    EXPECT_EQ(gw.Batches(), 0u);
    EXPECT_EQ(r.Requests(), 2u + 3 * (kEnvelopes - kEnvelopes / 4) + 2 * (kEnvelopes / 4));
  }
  EXPECT_EQ(gw.Requests(), r.Requests());
}

// After a request with several reports, the reporter waits for a full batch (here the linger is
// an hour, so nothing but a full batch or Stop() can end it); a reporter whose last request
// carried one report sends at once.
TEST(GatewayReporterLingerTest, ABusyReporterWaitsForAFullBatchAnIdleOneSendsAtOnce) {
  FakeGateway gw(true);
  GatewayReporter r({.url = gw.url(),
                     .retry_interval = std::chrono::milliseconds(10),
                     .max_batch = 5,
                     .linger = std::chrono::hours(1)});
  gw.Close();
  r.Post(PostKind::kProgress, "/envelopes/known-0/progress", R"({"status":"received"})");
  for (int i = 0; i < 1000 && gw.Arrived() == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ASSERT_EQ(gw.Arrived(), 1u);  // idle: no linger
  for (int i = 1; i <= 6; ++i) {
    r.Post(PostKind::kProgress, "/envelopes/known-" + std::to_string(i) + "/progress",
           R"({"status":"received"})");
  }
  gw.Open();
  WaitFor(r, 6);  // the single post, then a full batch of 5; the 6th report lingers
  EXPECT_EQ(r.Delivered(), 6u);
  for (int i = 7; i <= 10; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    EXPECT_EQ(r.Delivered(), 6u) << "a lingering report went before its batch was full";
    r.Post(PostKind::kProgress, "/envelopes/known-" + std::to_string(i) + "/progress",
           R"({"status":"received"})");
  }
  WaitFor(r, 11);  // the 10th report filled the batch
  EXPECT_EQ(r.Delivered(), 11u);
  EXPECT_EQ(r.Requests(), 3u);
  EXPECT_EQ(gw.Batches(), 2u);
  // Stop() ends a linger: what is left is sent.
  r.Post(PostKind::kProgress, "/envelopes/known-11/progress", R"({"status":"received"})");
  r.Stop(std::chrono::milliseconds(10'000));
  EXPECT_EQ(r.Delivered(), 12u);
  EXPECT_EQ(Count(gw.Paths(), "/envelopes/known-11/progress"), 1u);
}

// Flush(id) (before a result goes to happy-end) returns once the envelope's progress has had its
// first try, ending a linger; a flush that gives up on a gateway that does not answer makes the
// next flushes return at once until the reporter has tried what was queued.
TEST(GatewayReporterFlushTest, FlushSendsTheEnvelopesProgressAndGivesUpOnAStuckGatewayOnce) {
  FakeGateway gw(true);
  GatewayReporter r({.url = gw.url(),
                     .retry_interval = std::chrono::milliseconds(10),
                     .max_batch = 5,
                     .linger = std::chrono::hours(1),
                     .flush_wait = std::chrono::milliseconds(300)});
  r.Flush("nothing-queued");  // nothing pending: returns at once
  EXPECT_EQ(r.FlushTimeouts(), 0u);
  gw.Close();  // the gateway holds its answers
  r.Post(PostKind::kProgress, "/envelopes/known-a/progress", R"({"status":"received"})");
  r.Flush("known-a");
  EXPECT_EQ(r.FlushTimeouts(), 1u);
  r.Post(PostKind::kProgress, "/envelopes/known-b/progress", R"({"status":"received"})");
  r.Post(PostKind::kProgress, "/envelopes/known-b/progress", R"({"status":"processing"})");
  r.Flush("known-b");  // behind: does not wait again
  EXPECT_EQ(r.FlushTimeouts(), 1u);
  gw.Open();
  WaitFor(r, 3);  // a alone, then b's two in one batch: the reporter is busy (it lingers now)
  ASSERT_EQ(r.Delivered(), 3u);
  r.Post(PostKind::kProgress, "/envelopes/known-c/progress", R"({"status":"completed"})");
  r.Flush("known-c");  // caught up: waits, and ends the linger
  EXPECT_EQ(Count(gw.Paths(), "/envelopes/known-c/progress"), 1u);
  EXPECT_EQ(r.FlushTimeouts(), 1u);
  r.Stop(std::chrono::milliseconds(10'000));
}

}  // namespace
}  // namespace asya::sidecar
