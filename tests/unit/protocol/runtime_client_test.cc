// RuntimeClient against real Unix-socket servers running in the test process.
#include "asya/protocol/runtime_client.h"

#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <ostream>
#include <string>
#include <thread>
#include <tuple>
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
  kStallMidResponse,      // read the request, declare 100 bytes, send 10, keep the connection
  kEchoAfterDelay,        // echo every frame after as many ms as the request's leading digits say
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

  // Waits `ms` (-1: forever) or until the server stops; true when it stops.
  bool WaitForStop(int ms = -1) const {
    pollfd p{stop_pipe_[0], POLLIN, 0};
    return ::poll(&p, 1, ms) > 0;
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
      case Mode::kNeverRead:
        WaitForStop();
        return;
      case Mode::kCloseWithoutResponse:
        ReadRequest(fd, body);
        return;
      case Mode::kPartialHeader:
        if (ReadRequest(fd, body)) {
          WriteAll(fd, std::string("\0\0", 2));
        }
        return;
      case Mode::kCloseMidResponse:
      case Mode::kStallMidResponse:
        if (ReadRequest(fd, body) &&
            WriteAll(fd, std::string("\0\0\0\x64", 4) + std::string(10, 'x')) &&
            mode_ == Mode::kStallMidResponse) {
          WaitForStop();
        }
        return;
      case Mode::kEchoAfterDelay:
        while (ReadRequest(fd, body)) {
          if (WaitForStop(std::atoi(body.c_str())) || !WriteAll(fd, *EncodeFrame(body))) {
            return;
          }
        }
        return;
      case Mode::kOversizeResponse:
        if (ReadRequest(fd, body)) {
          WriteAll(fd, std::string("\x40\0\0\0", 4) + std::string(10, 'x'));
          WaitForStop();
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

// What one CallAsync() ended with: filled by its `done`.
struct AsyncOutcome {
  std::mutex mu;
  std::condition_variable cv;
  std::optional<Result<std::string>> result;
  std::thread::id thread;  // where `done` ran
};

// Starts a CallAsync(); the caller keeps `request` alive until the outcome is in.
std::shared_ptr<AsyncOutcome> StartAsync(RuntimeCaller& client, std::string_view request,
                                         Clock::time_point deadline) {
  auto out = std::make_shared<AsyncOutcome>();
  client.CallAsync(request, deadline, [out](Result<std::string> r) {
    std::lock_guard<std::mutex> lock(out->mu);
    EXPECT_FALSE(out->result.has_value()) << "done ran twice";
    out->result = std::move(r);
    out->thread = std::this_thread::get_id();
    out->cv.notify_all();
  });
  return out;
}

// Waits for the outcome (a minute at most, so that a `done` that never runs fails the test
// instead of hanging it).
Result<std::string> Await(AsyncOutcome& out) {
  std::unique_lock<std::mutex> lock(out.mu);
  if (!out.cv.wait_for(lock, std::chrono::seconds(60), [&] { return out.result.has_value(); })) {
    ADD_FAILURE() << "done did not run";
    return MakeError(ErrorCode::kInternal, "done did not run");
  }
  return *out.result;
}

// How a test calls the client.
enum class Way { kSync, kAsync };

std::string WayName(Way way) {
  return way == Way::kSync ? "Sync" : "Async";
}

void PrintTo(Way way, std::ostream* os) {
  *os << WayName(way);
}

// Call(), or CallAsync() waiting for its `done`; `on_caller_thread` tells whether the result came
// on the calling thread (always for Call()).
Result<std::string> CallWay(Way way, RuntimeClient& client, std::string_view request,
                            Clock::time_point deadline, bool& on_caller_thread) {
  if (way == Way::kSync) {
    on_caller_thread = true;
    return client.Call(request, deadline);
  }
  auto out = StartAsync(client, request, deadline);
  auto result = Await(*out);
  std::lock_guard<std::mutex> lock(out->mu);
  on_caller_thread = out->thread == std::this_thread::get_id();
  return result;
}

// The tests that hold for Call() and for CallAsync() alike.
class RuntimeClientCalls : public testing::TestWithParam<Way> {
 protected:
  Result<std::string> Call(RuntimeClient& client, std::string_view request,
                           Clock::time_point deadline) {
    return CallWay(GetParam(), client, request, deadline, on_caller_thread_);
  }
  // Whether the last Call() ended on the calling thread: always for Call(); for CallAsync() only
  // when it failed before the request was sent.
  [[nodiscard]] bool EndedOnCallerThread() const { return on_caller_thread_; }
  [[nodiscard]] bool Sync() const { return GetParam() == Way::kSync; }

 private:
  bool on_caller_thread_ = false;
};

INSTANTIATE_TEST_SUITE_P(Ways, RuntimeClientCalls, testing::Values(Way::kSync, Way::kAsync),
                         [](const testing::TestParamInfo<Way>& info) {
                           return WayName(info.param);
                         });

TEST_P(RuntimeClientCalls, KeepsOneConnectionForSeveralCalls) {
  TempDir dir;
  FakeRuntime rt(dir.Socket(), Mode::kEcho);
  RuntimeClient client(Options(dir));
  for (int i = 0; i < 5; ++i) {
    std::string req = R"({"id":")" + std::to_string(i) + R"("})";
    auto r = Call(client, req, Clock::now() + kGenerous);
    ASSERT_TRUE(r.has_value()) << r.error().message;
    EXPECT_EQ(*r, req);
    EXPECT_EQ(EndedOnCallerThread(), Sync());  // CallAsync: `done` runs on the event thread
  }
  EXPECT_EQ(rt.connections(), 1);
  EXPECT_EQ(rt.requests(), 5);
}

TEST_P(RuntimeClientCalls, WithoutReuseOpensOneConnectionPerCall) {
  TempDir dir;
  FakeRuntime rt(dir.Socket(), Mode::kEcho);
  RuntimeClient client(Options(dir, /*reuse=*/false));
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(Call(client, "{}", Clock::now() + kGenerous).has_value());
  }
  EXPECT_EQ(rt.connections(), 3);
}

TEST_P(RuntimeClientCalls, EmptyRequestAndResponse) {
  TempDir dir;
  FakeRuntime rt(dir.Socket(), Mode::kEcho);
  RuntimeClient client(Options(dir));
  auto r = Call(client, "", Clock::now() + kGenerous);
  ASSERT_TRUE(r.has_value()) << r.error().message;
  EXPECT_EQ(*r, "");
}

TEST_P(RuntimeClientCalls, LargeRequestAndResponse) {
  TempDir dir;
  FakeRuntime rt(dir.Socket(), Mode::kEcho);
  RuntimeClient client(Options(dir));
  std::string big(5u << 20, 'a');
  auto r = Call(client, big, Clock::now() + kGenerous);
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

TEST_P(RuntimeClientCalls, RuntimeThatClosesAfterEachResponse) {
  TempDir dir;
  FakeRuntime rt(dir.Socket(), Mode::kCloseAfterResponse);
  RuntimeClient client(Options(dir));
  for (int i = 0; i < 10; ++i) {
    std::string req = std::to_string(i);
    auto r = Call(client, req, Clock::now() + kGenerous);
    ASSERT_TRUE(r.has_value()) << i << ": " << r.error().message;
    EXPECT_EQ(*r, req);
  }
  EXPECT_EQ(rt.requests(), 10);
  EXPECT_EQ(rt.connections(), 10);
}

TEST_P(RuntimeClientCalls, RetriesOnceOnFreshConnectionAndStopsReusingAfterThree) {
  TempDir dir;
  FakeRuntime rt(dir.Socket(), Mode::kCloseOnNextRequest);
  RuntimeClient client(Options(dir));
  for (int i = 0; i < 7; ++i) {
    std::string req = "req" + std::to_string(i);
    auto r = Call(client, req, Clock::now() + kGenerous);
    ASSERT_TRUE(r.has_value()) << i << ": " << r.error().message;
    EXPECT_EQ(*r, req);
  }
  // Calls 2-4 found their kept connection closed unread and were re-sent on a new one; after the
  // third such event the client stopped keeping connections, so calls 5-7 were never dropped.
  EXPECT_EQ(rt.dropped(), 3);
  EXPECT_EQ(rt.requests(), 7);
  EXPECT_EQ(rt.connections(), 7);
}

TEST_P(RuntimeClientCalls, ConnectionWithBytesBeyondTheResponseIsNotReused) {
  TempDir dir;
  FakeRuntime rt(dir.Socket(), Mode::kTwoFramesPerRequest);
  RuntimeClient client(Options(dir));
  for (int i = 0; i < 3; ++i) {
    std::string req = "req" + std::to_string(i);
    auto r = Call(client, req, Clock::now() + kGenerous);
    ASSERT_TRUE(r.has_value()) << i << ": " << r.error().message;
    EXPECT_EQ(*r, req);  // never the stray frame meant for nobody
  }
  EXPECT_EQ(rt.connections(), 3);
}

TEST_P(RuntimeClientCalls, ReusedConnectionThatReadTheRequestIsNotRetried) {
  TempDir dir;
  FakeRuntime rt(dir.Socket(), Mode::kDieOnSecondRequest);
  RuntimeClient client(Options(dir));
  ASSERT_TRUE(Call(client, "first", Clock::now() + kGenerous).has_value());
  auto r = Call(client, "second", Clock::now() + kGenerous);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, ErrorCode::kUnavailable);
  EXPECT_EQ(r.error().message,
            "failed to read response from runtime: failed to read length prefix: EOF");
  // The runtime consumed "second" before it went away: re-sending could run it twice.
  EXPECT_EQ(rt.requests(), 2);
  EXPECT_EQ(rt.connections(), 1);
}

TEST_P(RuntimeClientCalls, DeadlineExceededWhenRuntimeNeverAnswers) {
  TempDir dir;
  FakeRuntime rt(dir.Socket(), Mode::kNeverAnswer);
  RuntimeClient client(Options(dir));
  auto r = Call(client, "{}", Soon(200));
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, ErrorCode::kDeadlineExceeded);
  EXPECT_EQ(r.error().message,
            "failed to read response from runtime: deadline exceeded while reading the length "
            "prefix");
  EXPECT_EQ(EndedOnCallerThread(), Sync());
}

TEST_P(RuntimeClientCalls, DeadlineExceededWhileReadingTheBody) {
  TempDir dir;
  FakeRuntime rt(dir.Socket(), Mode::kStallMidResponse);
  RuntimeClient client(Options(dir));
  auto r = Call(client, "{}", Soon(200));
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, ErrorCode::kDeadlineExceeded);
  EXPECT_EQ(r.error().message,
            "failed to read response from runtime: deadline exceeded while reading the response "
            "body");
  ASSERT_FALSE(Call(client, "{}", Soon(200)).has_value());
  EXPECT_EQ(rt.connections(), 2);  // the connection of a call past its deadline is dropped
}

// The client waits in steps of at most one second; a slower answer within the deadline arrives.
TEST_P(RuntimeClientCalls, AnswerAfterSeveralWaitStepsArrives) {
  TempDir dir;
  FakeRuntime rt(dir.Socket(), Mode::kEchoAfterDelay);
  RuntimeClient client(Options(dir));
  auto r = Call(client, "2500:slow", Clock::now() + kGenerous);
  ASSERT_TRUE(r.has_value()) << r.error().message;
  EXPECT_EQ(*r, "2500:slow");
  // The kept connection's wait bound now matches a short deadline instead of overshooting it.
  auto start = Clock::now();
  r = Call(client, "2500:late", Soon(300));
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, ErrorCode::kDeadlineExceeded);
  EXPECT_GE(Clock::now() - start, milliseconds(300));
  EXPECT_LT(Clock::now() - start, milliseconds(2000));  // not after the runtime's late answer
}

TEST_P(RuntimeClientCalls, DeadlineExceededWhileSending) {
  TempDir dir;
  FakeRuntime rt(dir.Socket(), Mode::kNeverRead);
  RuntimeClient client(Options(dir));
  const std::string request(16u << 20, 'x');  // far more than the socket buffer holds
  auto r = Call(client, request, Soon(300));
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, ErrorCode::kDeadlineExceeded);
  EXPECT_EQ(r.error().message, "failed to send message to runtime: deadline exceeded");
  EXPECT_TRUE(EndedOnCallerThread());  // CallAsync: `done` ran before it returned
}

TEST_P(RuntimeClientCalls, DeadlineExceededWhileListenBacklogIsFull) {
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
  auto r = Call(client, "{}", Soon(150));
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, ErrorCode::kDeadlineExceeded);
  EXPECT_EQ(r.error().message,
            "failed to connect to runtime socket: deadline exceeded (listen backlog full)");
  EXPECT_TRUE(EndedOnCallerThread());  // CallAsync: `done` ran before it returned
  for (int fd : fillers) {
    ::close(fd);
  }
  ::close(lfd);
}

TEST_P(RuntimeClientCalls, DeadlineInThePast) {
  TempDir dir;
  FakeRuntime rt(dir.Socket(), Mode::kEcho);
  RuntimeClient client(Options(dir));
  auto r = Call(client, "{}", Clock::now() - milliseconds(1));
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, ErrorCode::kDeadlineExceeded);
  EXPECT_EQ(r.error().message, "deadline passed before the runtime was called");
  EXPECT_TRUE(EndedOnCallerThread());  // CallAsync: `done` ran before it returned
  EXPECT_EQ(rt.connections(), 0);
}

TEST_P(RuntimeClientCalls, MissingSocket) {
  TempDir dir;
  RuntimeClient client(Options(dir));
  auto r = Call(client, "{}", Clock::now() + kGenerous);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, ErrorCode::kUnavailable);
  EXPECT_EQ(r.error().message, "failed to connect to runtime socket: No such file or directory");
  EXPECT_TRUE(EndedOnCallerThread());  // CallAsync: `done` ran before it returned
}

TEST_P(RuntimeClientCalls, SocketWithoutListener) {
  TempDir dir;
  int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, dir.Socket().c_str(), sizeof(addr.sun_path) - 1);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ::close(fd);  // the socket file stays, nobody listens (a crashed runtime)
  RuntimeClient client(Options(dir));
  auto r = Call(client, "{}", Clock::now() + kGenerous);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, ErrorCode::kUnavailable);
  EXPECT_EQ(r.error().message, "failed to connect to runtime socket: Connection refused");
  EXPECT_TRUE(EndedOnCallerThread());  // CallAsync: `done` ran before it returned
}

TEST_P(RuntimeClientCalls, SocketPathTooLong) {
  RuntimeClientOptions o;
  o.socket_path = "/tmp/" + std::string(200, 'x');
  RuntimeClient client(o);
  auto r = Call(client, "{}", Clock::now() + kGenerous);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(r.error().message,
            "failed to connect to runtime socket: socket path must be 1..107 bytes long (got 205)");
  EXPECT_TRUE(EndedOnCallerThread());  // CallAsync: `done` ran before it returned
}

struct ReadFailureCase {
  Mode mode;
  const char* message;
};

class RuntimeClientReadFailures : public testing::TestWithParam<std::tuple<Way, ReadFailureCase>> {
};

TEST_P(RuntimeClientReadFailures, ReportEofPosition) {
  const auto& [way, failure] = GetParam();
  TempDir dir;
  FakeRuntime rt(dir.Socket(), failure.mode);
  RuntimeClient client(Options(dir));
  bool on_caller_thread = false;
  auto r = CallWay(way, client, "{}", Clock::now() + kGenerous, on_caller_thread);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, ErrorCode::kUnavailable);
  EXPECT_EQ(r.error().message, failure.message);
  EXPECT_EQ(rt.requests(), 1);  // a fresh connection is never retried
  EXPECT_EQ(on_caller_thread, way == Way::kSync);
}

INSTANTIATE_TEST_SUITE_P(
    All, RuntimeClientReadFailures,
    testing::Combine(
        testing::Values(Way::kSync, Way::kAsync),
        testing::Values(
            ReadFailureCase{
                Mode::kCloseWithoutResponse,
                "failed to read response from runtime: failed to read length prefix: EOF"},
            ReadFailureCase{
                Mode::kPartialHeader,
                "failed to read response from runtime: failed to read length prefix: EOF "
                "after 2 of 4 bytes"},
            ReadFailureCase{Mode::kCloseMidResponse,
                            "failed to read response from runtime: EOF after 10 of 100 bytes"})));

TEST_P(RuntimeClientCalls, OversizeResponseIsRejectedAndConnectionDropped) {
  TempDir dir;
  FakeRuntime rt(dir.Socket(), Mode::kOversizeResponse);
  RuntimeClientOptions o = Options(dir);
  o.max_frame_bytes = 1024;
  RuntimeClient client(o);
  auto r = Call(client, "{}", Clock::now() + kGenerous);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, ErrorCode::kResourceExhausted);
  EXPECT_EQ(r.error().message,
            "failed to read response from runtime: frame of 1073741824 bytes exceeds the limit of "
            "1024 bytes (ASYA_MAX_MESSAGE_BYTES)");
  ASSERT_FALSE(Call(client, "{}", Clock::now() + kGenerous).has_value());
  EXPECT_EQ(rt.connections(), 2);  // the first connection was not kept
}

TEST_P(RuntimeClientCalls, OversizeRequestIsRejectedBeforeConnecting) {
  TempDir dir;
  FakeRuntime rt(dir.Socket(), Mode::kEcho);
  RuntimeClientOptions o = Options(dir);
  o.max_frame_bytes = 4;
  RuntimeClient client(o);
  auto r = Call(client, "12345", Clock::now() + kGenerous);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, ErrorCode::kResourceExhausted);
  EXPECT_EQ(r.error().message,
            "failed to send message to runtime: message of 5 bytes exceeds the limit of 4 bytes "
            "(ASYA_MAX_MESSAGE_BYTES)");
  EXPECT_EQ(rt.connections(), 0);
  EXPECT_TRUE(EndedOnCallerThread());  // CallAsync: `done` ran before it returned
}

TEST_P(RuntimeClientCalls, ResetDropsIdleConnections) {
  TempDir dir;
  FakeRuntime rt(dir.Socket(), Mode::kEcho);
  RuntimeClient client(Options(dir));
  ASSERT_TRUE(Call(client, "a", Clock::now() + kGenerous).has_value());
  client.Reset();
  ASSERT_TRUE(Call(client, "b", Clock::now() + kGenerous).has_value());
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

TEST(RuntimeClientAsync, SyncAndAsyncCallsShareKeptConnections) {
  TempDir dir;
  FakeRuntime rt(dir.Socket(), Mode::kEcho);
  RuntimeClient client(Options(dir));
  EXPECT_TRUE(client.CallsAsync());
  for (int i = 0; i < 6; ++i) {
    std::string req = "req" + std::to_string(i);
    bool on_caller_thread = false;
    auto r = CallWay(i % 2 == 0 ? Way::kAsync : Way::kSync, client, req, Clock::now() + kGenerous,
                     on_caller_thread);
    ASSERT_TRUE(r.has_value()) << i << ": " << r.error().message;
    EXPECT_EQ(*r, req);
  }
  EXPECT_EQ(rt.connections(), 1);
  EXPECT_EQ(rt.requests(), 6);
}

// 64 calls in flight at once from 4 threads, answered in about the reverse order they were made
// (the runtime waits as many ms as the request starts with), while another thread makes sync
// calls on the same client: every `done` runs once, off the calling thread, with its own answer.
TEST(RuntimeClientAsync, ManyConcurrentCallsEachGetTheirOwnAnswer) {
  TempDir dir;
  FakeRuntime rt(dir.Socket(), Mode::kEchoAfterDelay, /*backlog=*/128);
  RuntimeClient client(Options(dir));
  constexpr int kThreads = 4;
  constexpr int kPerThread = 16;
  constexpr int kSyncCalls = 20;
  std::vector<std::string> requests;
  for (int i = 0; i < kThreads * kPerThread; ++i) {
    requests.push_back(std::to_string((kThreads * kPerThread - i) * 2) + ":call" +
                       std::to_string(i) + std::string(static_cast<size_t>(i) * 101, 'p'));
  }
  std::mutex mu;
  std::condition_variable cv;
  int done_count = 0;
  int right = 0;
  int off_caller_thread = 0;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      const auto caller = std::this_thread::get_id();
      for (int i = t * kPerThread; i < (t + 1) * kPerThread; ++i) {
        client.CallAsync(requests[i], Clock::now() + kGenerous,
                         [&, i, caller](Result<std::string> r) {
                           std::lock_guard<std::mutex> lock(mu);
                           ++done_count;
                           right += r.has_value() && *r == requests[i] ? 1 : 0;
                           off_caller_thread += std::this_thread::get_id() != caller ? 1 : 0;
                           cv.notify_all();
                         });
      }
    });
  }
  int sync_right = 0;
  threads.emplace_back([&] {
    for (int i = 0; i < kSyncCalls; ++i) {
      const std::string req = "0:sync" + std::to_string(i);
      auto r = client.Call(req, Clock::now() + kGenerous);
      sync_right += r.has_value() && *r == req ? 1 : 0;
    }
  });
  for (auto& th : threads) {
    th.join();
  }
  std::unique_lock<std::mutex> lock(mu);
  ASSERT_TRUE(cv.wait_for(lock, std::chrono::seconds(60), [&] {
    return done_count == kThreads * kPerThread;
  })) << done_count;
  EXPECT_EQ(right, kThreads * kPerThread);
  EXPECT_EQ(off_caller_thread, kThreads * kPerThread);
  EXPECT_EQ(sync_right, kSyncCalls);
  EXPECT_EQ(rt.requests(), kThreads * kPerThread + kSyncCalls);
}

// The event thread's timer is armed for the earliest deadline; a new call with an earlier one
// moves it, so that call ends at its own deadline, before the one made first.
TEST(RuntimeClientAsync, AnEarlierDeadlineEndsItsCallFirst) {
  TempDir dir;
  FakeRuntime rt(dir.Socket(), Mode::kNeverAnswer);
  RuntimeClient client(Options(dir));
  auto first = StartAsync(client, "first", Clock::now() + std::chrono::hours(2));
  // Let the first call be registered (the timer armed for it) before the second one.
  while (rt.requests() < 1) {
    std::this_thread::sleep_for(milliseconds(1));
  }
  auto second = StartAsync(client, "second", Soon(100));
  auto r = Await(*second);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, ErrorCode::kDeadlineExceeded);
  std::lock_guard<std::mutex> lock(first->mu);
  EXPECT_FALSE(first->result.has_value());
}

// The timer armed for a call that was answered early fires for nothing; it is then armed for the
// calls still pending, which end at their deadline.
TEST(RuntimeClientAsync, DeadlinesAfterAnEarlyAnsweredCallStillEndTheirCalls) {
  TempDir dir;
  FakeRuntime rt(dir.Socket(), Mode::kEchoAfterDelay);
  RuntimeClient client(Options(dir));
  auto quick = StartAsync(client, "0:quick", Soon(100));
  auto slow = StartAsync(client, "60000:slow", Soon(400));
  auto r = Await(*quick);
  ASSERT_TRUE(r.has_value()) << r.error().message;
  r = Await(*slow);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, ErrorCode::kDeadlineExceeded);
  // And again once the timer had nothing left to wait for.
  auto later = StartAsync(client, "60000:later", Soon(200));
  r = Await(*later);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, ErrorCode::kDeadlineExceeded);
}

// `done` runs with no lock of the client held: it may call again and reset the pool.
TEST(RuntimeClientAsync, DoneMayCallAgainAndReset) {
  TempDir dir;
  FakeRuntime rt(dir.Socket(), Mode::kEcho);
  RuntimeClient client(Options(dir));
  std::shared_ptr<AsyncOutcome> second;
  std::mutex mu;
  std::condition_variable cv;
  bool chained = false;
  client.CallAsync("first", Clock::now() + kGenerous, [&](Result<std::string> r) {
    EXPECT_TRUE(r.has_value());
    client.Reset();
    auto out = StartAsync(client, "second", Clock::now() + kGenerous);
    std::lock_guard<std::mutex> lock(mu);
    second = std::move(out);
    chained = true;
    cv.notify_all();
  });
  {
    std::unique_lock<std::mutex> lock(mu);
    ASSERT_TRUE(cv.wait_for(lock, std::chrono::seconds(60), [&] { return chained; }));
  }
  auto r = Await(*second);
  ASSERT_TRUE(r.has_value()) << r.error().message;
  EXPECT_EQ(*r, "second");
  EXPECT_EQ(rt.requests(), 2);
}

// Destroying the client stops its event thread at once (not at the call's deadline) and drops
// the call: its `done` never runs.
TEST(RuntimeClientAsync, DestroyingTheClientDropsCallsInFlight) {
  TempDir dir;
  FakeRuntime rt(dir.Socket(), Mode::kNeverAnswer);
  std::atomic<int> done_runs{0};
  {
    RuntimeClient client(Options(dir));
    client.CallAsync("{}", Clock::now() + std::chrono::hours(2),
                     [&](const Result<std::string>&) { ++done_runs; });
    while (rt.requests() < 1) {
      std::this_thread::sleep_for(milliseconds(1));
    }
  }
  EXPECT_EQ(done_runs.load(), 0);
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
