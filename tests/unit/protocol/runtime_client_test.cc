// RuntimeClient against real Unix-socket servers running in the test process.
#include "asya/protocol/runtime_client.h"

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "asya/protocol/frame.h"
#include "support/temp_dir.h"

namespace asya::protocol {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr auto kGenerous = std::chrono::seconds(30);  // deadline for calls that must succeed

// A temporary directory with the runtime socket path inside it.
class TempDir : public asya::test::TempDir {
 public:
  TempDir() : asya::test::TempDir("asya-rc") {}
  [[nodiscard]] std::string Socket() const { return File("rt.sock"); }
};

int Listen(const std::string& path, int backlog) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      ::listen(fd, backlog) != 0) {
    ADD_FAILURE() << "bind/listen " << path << ": " << std::strerror(errno);
  }
  return fd;
}

bool WriteAll(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n <= 0) {
      return false;
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

// What the fake runtime does with each connection.
enum class Mode {
  kEcho,                  // answer every frame with the same bytes, keep the connection
  kCloseAfterResponse,    // answer one frame, close (like the original asya_runtime.py)
  kCloseOnNextRequest,    // answer one frame; when the next request arrives close without reading
  kDieOnSecondRequest,    // answer one frame; read the next request fully, then close (a crash)
  kNeverAnswer,           // read the request, never answer
  kNeverRead,             // accept, never read
  kCloseWithoutResponse,  // read the request, close
  kPartialHeader,         // read the request, send 2 bytes of a header, close
  kCloseMidResponse,      // read the request, declare 100 bytes, send 10, close
  kOversizeResponse,      // read the request, declare 1 GiB, keep the connection open
  kTwoFramesPerRequest,   // answer every frame twice ("stray" second frame), in one write
  kAnswerAfter2500Ms,     // read the request, answer after 2.5 s, keep the connection
};

class FakeRuntime {
 public:
  FakeRuntime(std::string path, Mode mode, int backlog = 16)
      : path_(std::move(path)), mode_(mode), listen_fd_(Listen(path_, backlog)) {
    if (::pipe(stop_pipe_) != 0) {
      ADD_FAILURE() << "pipe";
    }
    acceptor_ = std::thread([this] { AcceptLoop(); });
  }
  ~FakeRuntime() {
    char c = 'x';
    (void)!::write(stop_pipe_[1], &c, 1);
    acceptor_.join();
    std::vector<std::thread> workers;
    {
      std::lock_guard<std::mutex> lock(mu_);
      workers.swap(workers_);
    }
    for (auto& t : workers) {
      t.join();
    }
    ::close(listen_fd_);
    ::close(stop_pipe_[0]);
    ::close(stop_pipe_[1]);
  }

  int connections() const { return connections_.load(); }
  int requests() const { return requests_.load(); }
  int dropped() const { return dropped_.load(); }

 private:
  // Waits until fd is readable; false when the server is stopping.
  bool WaitReadable(int fd) const {
    pollfd p[2] = {{fd, POLLIN, 0}, {stop_pipe_[0], POLLIN, 0}};
    while (::poll(p, 2, -1) < 0) {
    }
    return p[1].revents == 0;
  }

  bool ReadExact(int fd, char* buf, size_t n) const {
    size_t got = 0;
    while (got < n) {
      if (!WaitReadable(fd)) {
        return false;
      }
      ssize_t r = ::recv(fd, buf + got, n - got, 0);
      if (r <= 0) {
        return false;
      }
      got += static_cast<size_t>(r);
    }
    return true;
  }

  bool ReadRequest(int fd, std::string& body) {
    unsigned char h[kHeaderBytes];
    if (!ReadExact(fd, reinterpret_cast<char*>(h), kHeaderBytes)) {
      return false;
    }
    auto n = DecodeHeader(h, UINT32_MAX);
    body.resize(*n);
    if (!ReadExact(fd, body.data(), body.size())) {
      return false;
    }
    ++requests_;
    return true;
  }

  void AcceptLoop() {
    while (WaitReadable(listen_fd_)) {
      int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) {
        continue;
      }
      ++connections_;
      std::lock_guard<std::mutex> lock(mu_);
      workers_.emplace_back([this, fd] {
        Serve(fd);
        ::close(fd);
      });
    }
  }

  void Serve(int fd) {
    std::string body;
    switch (mode_) {
      case Mode::kEcho:
        while (ReadRequest(fd, body) && WriteAll(fd, *EncodeFrame(body))) {
        }
        return;
      case Mode::kTwoFramesPerRequest:
        while (ReadRequest(fd, body) &&
               WriteAll(fd, *EncodeFrame(body) + *EncodeFrame("stray:" + body))) {
        }
        return;
      case Mode::kAnswerAfter2500Ms:
        while (ReadRequest(fd, body)) {
          std::this_thread::sleep_for(milliseconds(2500));
          if (!WriteAll(fd, *EncodeFrame(body))) {
            return;
          }
        }
        return;
      case Mode::kCloseAfterResponse:
        if (ReadRequest(fd, body)) {
          WriteAll(fd, *EncodeFrame(body));
        }
        return;
      case Mode::kCloseOnNextRequest:
        if (ReadRequest(fd, body) && WriteAll(fd, *EncodeFrame(body)) && WaitReadable(fd)) {
          char c;
          if (::recv(fd, &c, 1, MSG_PEEK) == 1) {
            ++dropped_;  // a request arrived on the kept connection: drop it unread
          }
        }
        return;
      case Mode::kDieOnSecondRequest:
        if (ReadRequest(fd, body) && WriteAll(fd, *EncodeFrame(body))) {
          ReadRequest(fd, body);
        }
        return;
      case Mode::kNeverAnswer:
        if (ReadRequest(fd, body)) {
          char c;
          while (WaitReadable(fd) && ::recv(fd, &c, 1, 0) > 0) {
          }
        }
        return;
      case Mode::kNeverRead: {
        pollfd p{stop_pipe_[0], POLLIN, 0};
        ::poll(&p, 1, -1);
        return;
      }
      case Mode::kCloseWithoutResponse:
        ReadRequest(fd, body);
        return;
      case Mode::kPartialHeader:
        if (ReadRequest(fd, body)) {
          WriteAll(fd, std::string("\0\0", 2));
        }
        return;
      case Mode::kCloseMidResponse:
        if (ReadRequest(fd, body)) {
          WriteAll(fd, std::string("\0\0\0\x64", 4) + std::string(10, 'x'));
        }
        return;
      case Mode::kOversizeResponse:
        if (ReadRequest(fd, body)) {
          WriteAll(fd, std::string("\x40\0\0\0", 4) + std::string(10, 'x'));
          pollfd p{stop_pipe_[0], POLLIN, 0};
          ::poll(&p, 1, -1);
        }
        return;
    }
  }

  std::string path_;
  Mode mode_;
  int listen_fd_;
  int stop_pipe_[2] = {-1, -1};
  std::thread acceptor_;
  std::mutex mu_;
  std::vector<std::thread> workers_;
  std::atomic<int> connections_{0};
  std::atomic<int> requests_{0};
  std::atomic<int> dropped_{0};
};

RuntimeClientOptions Options(const TempDir& dir, bool reuse = true) {
  RuntimeClientOptions o;
  o.socket_path = dir.Socket();
  o.reuse_connections = reuse;
  return o;
}

Clock::time_point Soon(int ms) {
  return Clock::now() + milliseconds(ms);
}

TEST(RuntimeClient, KeepsOneConnectionForSeveralCalls) {
  TempDir dir;
  FakeRuntime rt(dir.Socket(), Mode::kEcho);
  RuntimeClient client(Options(dir));
  for (int i = 0; i < 5; ++i) {
    std::string req = R"({"id":")" + std::to_string(i) + R"("})";
    auto r = client.Call(req, Clock::now() + kGenerous);
    ASSERT_TRUE(r.has_value()) << r.error().message;
    EXPECT_EQ(*r, req);
  }
  EXPECT_EQ(rt.connections(), 1);
  EXPECT_EQ(rt.requests(), 5);
}

TEST(RuntimeClient, WithoutReuseOpensOneConnectionPerCall) {
  TempDir dir;
  FakeRuntime rt(dir.Socket(), Mode::kEcho);
  RuntimeClient client(Options(dir, /*reuse=*/false));
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(client.Call("{}", Clock::now() + kGenerous).has_value());
  }
  EXPECT_EQ(rt.connections(), 3);
}

TEST(RuntimeClient, EmptyRequestAndResponse) {
  TempDir dir;
  FakeRuntime rt(dir.Socket(), Mode::kEcho);
  RuntimeClient client(Options(dir));
  auto r = client.Call("", Clock::now() + kGenerous);
  ASSERT_TRUE(r.has_value()) << r.error().message;
  EXPECT_EQ(*r, "");
}

TEST(RuntimeClient, LargeRequestAndResponse) {
  TempDir dir;
  FakeRuntime rt(dir.Socket(), Mode::kEcho);
  RuntimeClient client(Options(dir));
  std::string big(5u << 20, 'a');
  auto r = client.Call(big, Clock::now() + kGenerous);
  ASSERT_TRUE(r.has_value()) << r.error().message;
  EXPECT_EQ(*r, big);
}

// CallReleasing: the request may be freed once the answer starts (here it is, inside the
// callback), and the callback runs exactly once per answered call.
TEST(RuntimeClient, CallReleasingLetsTheCallerFreeTheRequestOnceTheAnswerStarts) {
  TempDir dir;
  FakeRuntime rt(dir.Socket(), Mode::kEcho);
  RuntimeClient client(Options(dir));
  const std::string big(3u << 20, 'b');
  std::string request = big;
  int released = 0;
  auto r = client.CallReleasing(request, Clock::now() + kGenerous, [&] {
    ++released;
    std::string().swap(request);
  });
  ASSERT_TRUE(r.has_value()) << r.error().message;
  EXPECT_TRUE(*r == big);
  EXPECT_EQ(released, 1);
  EXPECT_TRUE(request.empty());
}

// A kept connection the runtime closed unread is retried with the same request: the callback has
// not run yet then. A call that gets no answer never runs it (the caller keeps its request).
TEST(RuntimeClient, CallReleasingKeepsTheRequestForARetryAndForAFailure) {
  TempDir dir;
  {
    FakeRuntime rt(dir.Socket(), Mode::kCloseOnNextRequest);
    RuntimeClient client(Options(dir));
    for (int i = 0; i < 3; ++i) {
      std::string request = "req" + std::to_string(i);
      const std::string sent = request;
      int released = 0;
      auto r = client.CallReleasing(request, Clock::now() + kGenerous, [&] {
        ++released;
        std::string().swap(request);
      });
      ASSERT_TRUE(r.has_value()) << i << ": " << r.error().message;
      EXPECT_EQ(*r, sent);
      EXPECT_EQ(released, 1);
    }
    EXPECT_GE(rt.dropped(), 1);  // at least one call was re-sent after the first attempt
  }
  TempDir other;
  FakeRuntime rt(other.Socket(), Mode::kCloseWithoutResponse);
  RuntimeClient client(Options(other));
  int released = 0;
  auto r = client.CallReleasing("x", Clock::now() + kGenerous, [&] { ++released; });
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(released, 0);
}

TEST(RuntimeClient, RuntimeThatClosesAfterEachResponse) {
  TempDir dir;
  FakeRuntime rt(dir.Socket(), Mode::kCloseAfterResponse);
  RuntimeClient client(Options(dir));
  for (int i = 0; i < 10; ++i) {
    std::string req = std::to_string(i);
    auto r = client.Call(req, Clock::now() + kGenerous);
    ASSERT_TRUE(r.has_value()) << i << ": " << r.error().message;
    EXPECT_EQ(*r, req);
  }
  EXPECT_EQ(rt.requests(), 10);
  EXPECT_EQ(rt.connections(), 10);
}

TEST(RuntimeClient, RetriesOnceOnFreshConnectionAndStopsReusingAfterThree) {
  TempDir dir;
  FakeRuntime rt(dir.Socket(), Mode::kCloseOnNextRequest);
  RuntimeClient client(Options(dir));
  for (int i = 0; i < 7; ++i) {
    std::string req = "req" + std::to_string(i);
    auto r = client.Call(req, Clock::now() + kGenerous);
    ASSERT_TRUE(r.has_value()) << i << ": " << r.error().message;
    EXPECT_EQ(*r, req);
  }
  // Calls 2-4 found their kept connection closed unread and were re-sent on a new one; after the
  // third such event the client stopped keeping connections, so calls 5-7 were never dropped.
  EXPECT_EQ(rt.dropped(), 3);
  EXPECT_EQ(rt.requests(), 7);
  EXPECT_EQ(rt.connections(), 7);
}

TEST(RuntimeClient, ConnectionWithBytesBeyondTheResponseIsNotReused) {
  TempDir dir;
  FakeRuntime rt(dir.Socket(), Mode::kTwoFramesPerRequest);
  RuntimeClient client(Options(dir));
  for (int i = 0; i < 3; ++i) {
    std::string req = "req" + std::to_string(i);
    auto r = client.Call(req, Clock::now() + kGenerous);
    ASSERT_TRUE(r.has_value()) << i << ": " << r.error().message;
    EXPECT_EQ(*r, req);  // never the stray frame meant for nobody
  }
  EXPECT_EQ(rt.connections(), 3);
}

TEST(RuntimeClient, ReusedConnectionThatReadTheRequestIsNotRetried) {
  TempDir dir;
  FakeRuntime rt(dir.Socket(), Mode::kDieOnSecondRequest);
  RuntimeClient client(Options(dir));
  ASSERT_TRUE(client.Call("first", Clock::now() + kGenerous).has_value());
  auto r = client.Call("second", Clock::now() + kGenerous);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, ErrorCode::kUnavailable);
  EXPECT_EQ(r.error().message,
            "failed to read response from runtime: failed to read length prefix: EOF");
  // The runtime consumed "second" before it went away: re-sending could run it twice.
  EXPECT_EQ(rt.requests(), 2);
  EXPECT_EQ(rt.connections(), 1);
}

TEST(RuntimeClient, DeadlineExceededWhenRuntimeNeverAnswers) {
  TempDir dir;
  FakeRuntime rt(dir.Socket(), Mode::kNeverAnswer);
  RuntimeClient client(Options(dir));
  auto r = client.Call("{}", Soon(200));
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, ErrorCode::kDeadlineExceeded);
  EXPECT_EQ(r.error().message,
            "failed to read response from runtime: deadline exceeded while reading the length "
            "prefix");
}

// The client waits in steps of at most one second; a slower answer within the deadline arrives.
TEST(RuntimeClient, AnswerAfterSeveralWaitStepsArrives) {
  TempDir dir;
  FakeRuntime rt(dir.Socket(), Mode::kAnswerAfter2500Ms);
  RuntimeClient client(Options(dir));
  auto r = client.Call("slow", Clock::now() + kGenerous);
  ASSERT_TRUE(r.has_value()) << r.error().message;
  EXPECT_EQ(*r, "slow");
  // The kept connection's wait bound now matches a short deadline instead of overshooting it.
  auto start = Clock::now();
  r = client.Call("late", Soon(300));
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, ErrorCode::kDeadlineExceeded);
  EXPECT_GE(Clock::now() - start, milliseconds(300));
  EXPECT_LT(Clock::now() - start, milliseconds(2000));  // not after the runtime's late answer
}

TEST(RuntimeClient, DeadlineExceededWhileSending) {
  TempDir dir;
  FakeRuntime rt(dir.Socket(), Mode::kNeverRead);
  RuntimeClient client(Options(dir));
  const std::string request(16u << 20, 'x');  // far more than the socket buffer holds
  auto r = client.Call(request, Soon(300));
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, ErrorCode::kDeadlineExceeded);
  EXPECT_EQ(r.error().message, "failed to send message to runtime: deadline exceeded");
}

TEST(RuntimeClient, DeadlineExceededWhileListenBacklogIsFull) {
  TempDir dir;
  int lfd = Listen(dir.Socket(), 0);  // never accepts
  // Fill the backlog with connections the server never accepts.
  std::vector<int> fillers;
  for (int i = 0; i < 4; ++i) {
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, dir.Socket().c_str(), sizeof(addr.sun_path) - 1);
    ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
    fillers.push_back(fd);
  }
  RuntimeClient client(Options(dir));
  auto r = client.Call("{}", Soon(150));
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, ErrorCode::kDeadlineExceeded);
  EXPECT_EQ(r.error().message,
            "failed to connect to runtime socket: deadline exceeded (listen backlog full)");
  for (int fd : fillers) {
    ::close(fd);
  }
  ::close(lfd);
}

TEST(RuntimeClient, DeadlineInThePast) {
  TempDir dir;
  FakeRuntime rt(dir.Socket(), Mode::kEcho);
  RuntimeClient client(Options(dir));
  auto r = client.Call("{}", Clock::now() - milliseconds(1));
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, ErrorCode::kDeadlineExceeded);
  EXPECT_EQ(r.error().message, "deadline passed before the runtime was called");
  EXPECT_EQ(rt.connections(), 0);
}

TEST(RuntimeClient, MissingSocket) {
  TempDir dir;
  RuntimeClient client(Options(dir));
  auto r = client.Call("{}", Clock::now() + kGenerous);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, ErrorCode::kUnavailable);
  EXPECT_EQ(r.error().message, "failed to connect to runtime socket: No such file or directory");
}

TEST(RuntimeClient, SocketWithoutListener) {
  TempDir dir;
  int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, dir.Socket().c_str(), sizeof(addr.sun_path) - 1);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ::close(fd);  // the socket file stays, nobody listens (a crashed runtime)
  RuntimeClient client(Options(dir));
  auto r = client.Call("{}", Clock::now() + kGenerous);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, ErrorCode::kUnavailable);
  EXPECT_EQ(r.error().message, "failed to connect to runtime socket: Connection refused");
}

TEST(RuntimeClient, SocketPathTooLong) {
  RuntimeClientOptions o;
  o.socket_path = "/tmp/" + std::string(200, 'x');
  RuntimeClient client(o);
  auto r = client.Call("{}", Clock::now() + kGenerous);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(r.error().message,
            "failed to connect to runtime socket: socket path must be 1..107 bytes long (got 205)");
}

struct ReadFailureCase {
  Mode mode;
  const char* message;
};

class RuntimeClientReadFailures : public testing::TestWithParam<ReadFailureCase> {};

TEST_P(RuntimeClientReadFailures, ReportEofPosition) {
  TempDir dir;
  FakeRuntime rt(dir.Socket(), GetParam().mode);
  RuntimeClient client(Options(dir));
  auto r = client.Call("{}", Clock::now() + kGenerous);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, ErrorCode::kUnavailable);
  EXPECT_EQ(r.error().message, GetParam().message);
  EXPECT_EQ(rt.requests(), 1);  // a fresh connection is never retried
}

INSTANTIATE_TEST_SUITE_P(
    All, RuntimeClientReadFailures,
    testing::Values(
        ReadFailureCase{Mode::kCloseWithoutResponse,
                        "failed to read response from runtime: failed to read length prefix: EOF"},
        ReadFailureCase{Mode::kPartialHeader,
                        "failed to read response from runtime: failed to read length prefix: EOF "
                        "after 2 of 4 bytes"},
        ReadFailureCase{Mode::kCloseMidResponse,
                        "failed to read response from runtime: EOF after 10 of 100 bytes"}));

TEST(RuntimeClient, OversizeResponseIsRejectedAndConnectionDropped) {
  TempDir dir;
  FakeRuntime rt(dir.Socket(), Mode::kOversizeResponse);
  RuntimeClientOptions o = Options(dir);
  o.max_frame_bytes = 1024;
  RuntimeClient client(o);
  auto r = client.Call("{}", Clock::now() + kGenerous);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, ErrorCode::kResourceExhausted);
  EXPECT_EQ(r.error().message,
            "failed to read response from runtime: frame of 1073741824 bytes exceeds the limit of "
            "1024 bytes (ASYA_MAX_MESSAGE_BYTES)");
  ASSERT_FALSE(client.Call("{}", Clock::now() + kGenerous).has_value());
  EXPECT_EQ(rt.connections(), 2);  // the first connection was not kept
}

TEST(RuntimeClient, OversizeRequestIsRejectedBeforeConnecting) {
  TempDir dir;
  FakeRuntime rt(dir.Socket(), Mode::kEcho);
  RuntimeClientOptions o = Options(dir);
  o.max_frame_bytes = 4;
  RuntimeClient client(o);
  auto r = client.Call("12345", Clock::now() + kGenerous);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, ErrorCode::kResourceExhausted);
  EXPECT_EQ(r.error().message,
            "failed to send message to runtime: message of 5 bytes exceeds the limit of 4 bytes "
            "(ASYA_MAX_MESSAGE_BYTES)");
  EXPECT_EQ(rt.connections(), 0);
}

TEST(RuntimeClient, ResetDropsIdleConnections) {
  TempDir dir;
  FakeRuntime rt(dir.Socket(), Mode::kEcho);
  RuntimeClient client(Options(dir));
  ASSERT_TRUE(client.Call("a", Clock::now() + kGenerous).has_value());
  client.Reset();
  ASSERT_TRUE(client.Call("b", Clock::now() + kGenerous).has_value());
  EXPECT_EQ(rt.connections(), 2);
}

TEST(RuntimeClient, ConcurrentCallsFromEightThreads) {
  TempDir dir;
  FakeRuntime rt(dir.Socket(), Mode::kEcho);
  RuntimeClient client(Options(dir));
  constexpr int kThreads = 8;
  constexpr int kCalls = 50;
  std::atomic<int> ok{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kCalls; ++i) {
        std::string req = "t" + std::to_string(t) + "-" + std::to_string(i) +
                          std::string(static_cast<size_t>(i * 97), 'p');
        auto r = client.Call(req, Clock::now() + kGenerous);
        if (r.has_value() && *r == req) {
          ++ok;
        }
      }
    });
  }
  for (auto& th : threads) {
    th.join();
  }
  EXPECT_EQ(ok.load(), kThreads * kCalls);
  EXPECT_EQ(rt.requests(), kThreads * kCalls);
  EXPECT_LE(rt.connections(), kThreads);  // pooled: never more connections than callers
}

TEST(RuntimeReady, NeedsReadyFileSocketAndListener) {
  TempDir dir;
  const std::string ready = dir.path() + "/runtime-ready";
  EXPECT_FALSE(RuntimeReady(dir.Socket(), milliseconds(200)));  // nothing there
  {
    FakeRuntime rt(dir.Socket(), Mode::kEcho);
    EXPECT_FALSE(RuntimeReady(dir.Socket(), milliseconds(200)));  // no ready file yet
    FILE* f = std::fopen(ready.c_str(), "w");
    std::fputs("ready", f);
    std::fclose(f);
    EXPECT_TRUE(RuntimeReady(dir.Socket(), milliseconds(200)));
  }
  // Listener gone, socket file left behind (crashed runtime).
  EXPECT_FALSE(RuntimeReady(dir.Socket(), milliseconds(200)));
  std::filesystem::remove(dir.Socket());
  FILE* f = std::fopen(dir.Socket().c_str(), "w");  // a regular file is not a socket
  std::fclose(f);
  EXPECT_FALSE(RuntimeReady(dir.Socket(), milliseconds(200)));
}

}  // namespace
}  // namespace asya::protocol
