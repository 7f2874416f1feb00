// GatewayReporter against a real HTTP endpoint on loopback (a few lines of socket code that
// record each request's path and answer 200, or 404 for envelopes it does not know).
#include <atomic>
#include <chrono>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "asya/sidecar/gateway.h"

namespace asya::sidecar {
namespace {

class FakeGateway {
 public:
  FakeGateway() {
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
  std::vector<std::string> Paths() {
    std::lock_guard<std::mutex> lock(mu_);
    return paths_;
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
      buf.erase(0, end + 4 + length);
      {
        std::lock_guard<std::mutex> lock(mu_);
        paths_.push_back(path);
      }
      const bool known = path.find("/envelopes/unknown") != 0;
      std::string answer = known ? "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
                                 : "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n";
      ::send(c, answer.data(), answer.size(), MSG_NOSIGNAL);
    }
  }

  int fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  std::mutex mu_;
  std::vector<std::string> paths_;
};

size_t Count(const std::vector<std::string>& paths, const std::string& path) {
  size_t n = 0;
  for (const auto& p : paths) {
    n += p == path ? 1 : 0;
  }
  return n;
}

TEST(GatewayReporterTest, ProgressOfAnEnvelopeTheGatewayDoesNotKnowStopsAfterThe404) {
  FakeGateway gw;
  GatewayReporter r({.url = gw.url(), .retry_interval = std::chrono::milliseconds(10)});
  r.Post(PostKind::kProgress, "/envelopes/unknown-1/progress", R"({"status":"received"})");
  r.Post(PostKind::kProgress, "/envelopes/known-1/progress", R"({"status":"received"})");
  // Wait until both were answered, then post more for each envelope.
  for (int i = 0; i < 500 && r.Delivered() + r.Dropped() < 2; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_EQ(r.Delivered(), 1u);
  ASSERT_EQ(r.Dropped(), 1u);
  r.Post(PostKind::kProgress, "/envelopes/unknown-1/progress", R"({"status":"processing"})");
  r.Post(PostKind::kProgress, "/envelopes/unknown-1/progress", R"({"status":"completed"})");
  r.Post(PostKind::kProgress, "/envelopes/known-1/progress", R"({"status":"processing"})");
  r.Post(PostKind::kProgress, "/envelopes/unknown-2/progress", R"({"status":"received"})");
  // A final status of the unknown envelope is still sent (and retried: a fan-out child's record
  // may be late).
  r.Post(PostKind::kFinal, "/envelopes/unknown-1/final", R"({"status":"succeeded"})");
  for (int i = 0; i < 500 && r.Delivered() + r.Dropped() < 7; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  r.Stop(std::chrono::milliseconds(0));
  auto paths = gw.Paths();
  EXPECT_EQ(Count(paths, "/envelopes/unknown-1/progress"), 1u);  // the later two: no request
  EXPECT_EQ(Count(paths, "/envelopes/known-1/progress"), 2u);
  EXPECT_EQ(Count(paths, "/envelopes/unknown-2/progress"), 1u);  // another envelope: asked
  EXPECT_EQ(Count(paths, "/envelopes/unknown-1/final"), 5u);     // max_attempts tries
  EXPECT_EQ(r.Delivered(), 2u);
  EXPECT_EQ(r.Dropped(), 5u);  // unknown-1 x3, unknown-2, the final
}

}  // namespace
}  // namespace asya::sidecar
