// The socket server, in process: real Unix sockets in a temp directory.
#include <atomic>
#include <condition_variable>
#include <fstream>
#include <mutex>
#include <thread>
#include <vector>

#include <sys/stat.h>

#include <gtest/gtest.h>

#include "asya/runtime/serve.h"
#include "unit/runtime/test_client.h"

namespace asya::runtime {
namespace {

using nlohmann::json;
using testing::Call;
using testing::Connect;
using testing::FileExists;
using testing::RecvFrame;
using testing::SeesEof;
using testing::SendFrame;
using testing::TempDir;
using testing::WaitFor;

constexpr std::string_view kMessage =
    R"({"id":"m","route":{"actors":["echo","next"],"current":0},"payload":{"i":1}})";

std::string Msg(int i) {
  return R"({"id":"m","route":{"actors":["echo"],"current":0},"payload":)" + std::to_string(i) +
         "}";
}

Outputs Echo(const Request& r) {
  return r.payload();
}

ServeOptions Opts(const TempDir& dir) {
  ServeOptions o;
  o.socket_dir = dir.path();
  return o;
}

std::unique_ptr<Server> MustStart(Handler h, ServeOptions o) {
  auto s = Server::Start(std::move(h), std::move(o));
  EXPECT_TRUE(s.has_value()) << (s ? "" : s.error().ToString());
  return s ? std::move(*s) : nullptr;
}

// A gate the handler waits on, with a count of handlers inside.
struct Gate {
  std::mutex mu;
  std::condition_variable cv;
  int inside = 0;
  int max_inside = 0;
  bool open = false;

  void Enter() {
    std::unique_lock<std::mutex> lock(mu);
    ++inside;
    max_inside = std::max(max_inside, inside);
    cv.notify_all();
    cv.wait_for(lock, std::chrono::seconds(30), [&] { return open; });
    --inside;
  }
  bool WaitInside(int n) {
    std::unique_lock<std::mutex> lock(mu);
    return cv.wait_for(lock, std::chrono::seconds(30), [&] { return inside >= n; });
  }
  void Open() {
    std::lock_guard<std::mutex> lock(mu);
    open = true;
    cv.notify_all();
  }
};

TEST(ServerTest, ReadyFileSocketModeAndStaleSocket) {
  TempDir dir;
  std::string sock = dir.path() + "/asya-runtime.sock";
  std::ofstream(sock) << "stale";  // left behind by a crashed runtime
  auto o = Opts(dir);
  o.socket_mode = 0660;
  auto server = MustStart(Echo, o);
  ASSERT_TRUE(server);
  EXPECT_EQ(server->socket_path(), sock);
  EXPECT_EQ(server->ready_path(), dir.path() + "/runtime-ready");
  std::ifstream ready(server->ready_path());
  std::string content;
  ready >> content;
  EXPECT_EQ(content, "ready");
  struct stat st {};
  ASSERT_EQ(::stat(sock.c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 07777, 0660u);
  server->Stop();
  EXPECT_FALSE(FileExists(sock));
  EXPECT_FALSE(FileExists(dir.path() + "/runtime-ready"));
  server->Stop();  // idempotent
}

// A ready file that cannot be written (a full disk at start) is retried until it can: a runtime
// without it is never used, so giving up once left `asya up`'s replica unready for good.
TEST(ServerTest, ReadyFileIsRetriedUntilItCanBeWritten) {
  TempDir dir;
  const std::string ready = dir.path() + "/runtime-ready";
  // A non-empty directory in its place makes the rename fail, like ENOSPC would.
  ASSERT_EQ(::mkdir(ready.c_str(), 0700), 0);
  ASSERT_EQ(::mkdir((ready + "/x").c_str(), 0700), 0);
  auto server = MustStart(Echo, Opts(dir));
  ASSERT_TRUE(server);
  struct stat st {};
  ASSERT_EQ(::stat(ready.c_str(), &st), 0);
  EXPECT_TRUE(S_ISDIR(st.st_mode));
  ASSERT_EQ(::rmdir((ready + "/x").c_str()), 0);
  ASSERT_EQ(::rmdir(ready.c_str()), 0);
  bool written = false;
  for (int i = 0; i < 600 && !written; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    written = ::stat(ready.c_str(), &st) == 0 && S_ISREG(st.st_mode);
  }
  EXPECT_TRUE(written);
  server->Stop();
  EXPECT_FALSE(FileExists(ready));
}

TEST(ServerTest, EchoWithNewConnectionPerMessage) {
  TempDir dir;
  auto server = MustStart(Echo, Opts(dir));
  ASSERT_TRUE(server);
  for (int i = 0; i < 20; ++i) {
    auto r = Call(server->socket_path(), Msg(i));
    ASSERT_TRUE(r.has_value());
    auto j = json::parse(*r);
    EXPECT_EQ(j[0]["payload"], i);
    EXPECT_EQ(j[0]["route"]["current"], 1);
  }
}

TEST(ServerTest, SeveralFramesPerConnectionIncludingPipelined) {
  TempDir dir;
  auto server = MustStart(Echo, Opts(dir));
  ASSERT_TRUE(server);
  int fd = Connect(server->socket_path());
  ASSERT_GE(fd, 0);
  for (int i = 0; i < 5; ++i) {  // request, response, request, ...
    ASSERT_TRUE(SendFrame(fd, Msg(i)));
    auto r = RecvFrame(fd);
    ASSERT_TRUE(r.has_value());
    EXPECT_EQ(json::parse(*r)[0]["payload"], i);
  }
  for (int i = 0; i < 5; ++i) {  // five requests written before reading any response
    ASSERT_TRUE(SendFrame(fd, Msg(100 + i)));
  }
  for (int i = 0; i < 5; ++i) {
    auto r = RecvFrame(fd);
    ASSERT_TRUE(r.has_value());
    EXPECT_EQ(json::parse(*r)[0]["payload"], 100 + i);
  }
  ::close(fd);
}

TEST(ServerTest, LargeMessageInManyReads) {
  TempDir dir;
  auto server = MustStart(Echo, Opts(dir));
  ASSERT_TRUE(server);
  std::string big = "\"" + std::string(3u << 20, 'x') + "\"";
  auto r = Call(server->socket_path(), R"({"route":{"actors":["a"]},"payload":)" + big + "}");
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(json::parse(*r)[0]["payload"].get<std::string>().size(), 3u << 20);
}

TEST(ServerTest, ConcurrentConnectionsRunHandlersInParallel) {
  TempDir dir;
  Gate gate;
  auto o = Opts(dir);
  o.concurrency = 4;
  auto server = MustStart(
      [&](const Request& r) {
        gate.Enter();
        return Outputs(r.payload());
      },
      o);
  ASSERT_TRUE(server);
  std::vector<std::thread> clients;
  std::atomic<int> ok{0};
  for (int i = 0; i < 4; ++i) {
    clients.emplace_back([&, i] {
      auto r = Call(server->socket_path(), Msg(i));
      if (r && json::parse(*r)[0]["payload"] == i) {
        ++ok;
      }
    });
  }
  EXPECT_TRUE(gate.WaitInside(4)) << "only " << gate.max_inside << " handlers ran at once";
  gate.Open();
  for (auto& t : clients) {
    t.join();
  }
  EXPECT_EQ(ok.load(), 4);
  EXPECT_EQ(gate.max_inside, 4);
}

TEST(ServerTest, IdleConnectionsDoNotBlockASingleWorker) {
  TempDir dir;
  auto server = MustStart(Echo, Opts(dir));  // concurrency 1
  ASSERT_TRUE(server);
  std::vector<int> idle;
  for (int i = 0; i < 20; ++i) {
    idle.push_back(Connect(server->socket_path()));
    ASSERT_GE(idle.back(), 0);
  }
  ASSERT_TRUE(SendFrame(idle[3], std::string(R"({"payload":1)")));  // a partial frame
  auto r = Call(server->socket_path(), Msg(7));
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(json::parse(*r)[0]["payload"], 7);
  for (int fd : idle) {
    ::close(fd);
  }
}

// The only worker waits on the kept connection it just served (lingering); a new connection and a
// second kept connection must still be served, in any order, and the first one afterwards too.
TEST(ServerTest, LingeringWorkerStillServesOtherConnections) {
  TempDir dir;
  auto server = MustStart(Echo, Opts(dir));  // concurrency 1
  ASSERT_TRUE(server);
  int a = Connect(server->socket_path());
  int b = Connect(server->socket_path());
  ASSERT_GE(a, 0);
  ASSERT_GE(b, 0);
  for (int round = 0; round < 20; ++round) {
    for (int fd : {a, b}) {
      ASSERT_TRUE(SendFrame(fd, Msg(round)));
      auto r = RecvFrame(fd);
      ASSERT_TRUE(r.has_value()) << "round " << round;
      EXPECT_EQ(json::parse(*r)[0]["payload"], round);
    }
    auto fresh = Call(server->socket_path(), Msg(100 + round));  // new connection per message
    ASSERT_TRUE(fresh.has_value()) << "round " << round;
    EXPECT_EQ(json::parse(*fresh)[0]["payload"], 100 + round);
  }
  ::close(a);
  ::close(b);
}

TEST(ServerTest, StopWhileTheWorkerLingersOnAKeptConnection) {
  TempDir dir;
  auto server = MustStart(Echo, Opts(dir));
  ASSERT_TRUE(server);
  int fd = Connect(server->socket_path());
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(SendFrame(fd, Msg(1)));
  ASSERT_TRUE(RecvFrame(fd).has_value());  // the worker now waits for this connection's next frame
  server->Stop();
  EXPECT_TRUE(SeesEof(fd));
  ::close(fd);
}

TEST(ServerTest, OversizeFrameGetsErrorAndConnectionIsClosed) {
  TempDir dir;
  auto o = Opts(dir);
  o.max_message_bytes = 1000;
  auto server = MustStart(Echo, o);
  ASSERT_TRUE(server);
  int fd = Connect(server->socket_path());
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(SendFrame(fd, std::string(5000, ' ')));
  auto r = RecvFrame(fd);
  ASSERT_TRUE(r.has_value());
  auto j = json::parse(*r);
  EXPECT_EQ(j[0]["error"], "msg_parsing_error");
  EXPECT_EQ(j[0]["details"]["type"], "FrameTooLarge");
  EXPECT_EQ(j[0]["details"]["message"],
            "request frame of 5000 bytes exceeds ASYA_MAX_MESSAGE_BYTES=1000");
  EXPECT_TRUE(SeesEof(fd));
  ::close(fd);
  // The server keeps serving.
  EXPECT_TRUE(Call(server->socket_path(), Msg(1)).has_value());
}

TEST(ServerTest, InvalidJsonOverTheSocket) {
  TempDir dir;
  auto server = MustStart(Echo, Opts(dir));
  ASSERT_TRUE(server);
  auto r = Call(server->socket_path(), "{\"payload\":");
  ASSERT_TRUE(r.has_value());
  auto j = json::parse(*r);
  EXPECT_EQ(j[0]["error"], "msg_parsing_error");
  EXPECT_EQ(j[0]["details"]["type"], "JSONDecodeError");
}

TEST(ServerTest, TruncatedFrameGetsConnectionError) {
  TempDir dir;
  auto server = MustStart(Echo, Opts(dir));
  ASSERT_TRUE(server);
  int fd = Connect(server->socket_path());
  ASSERT_GE(fd, 0);
  // Header says 100 bytes, only 10 follow, then the client stops writing.
  std::string partial("\0\0\0\x64", 4);
  partial += "0123456789";
  ASSERT_TRUE(testing::WriteAll(fd, partial));
  ::shutdown(fd, SHUT_WR);
  auto r = RecvFrame(fd);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(json::parse(*r)[0]["error"], "connection_error");
  ::close(fd);
}

TEST(ServerTest, StopFinishesInFlightRequestsAndRemovesFiles) {
  TempDir dir;
  Gate gate;
  auto server = MustStart(
      [&](const Request& r) {
        gate.Enter();
        return Outputs(r.payload());
      },
      Opts(dir));
  ASSERT_TRUE(server);
  std::string sock = server->socket_path();
  int idle = Connect(sock);  // a kept connection with nothing in flight
  ASSERT_GE(idle, 0);
  int busy = Connect(sock);
  ASSERT_GE(busy, 0);
  ASSERT_TRUE(SendFrame(busy, Msg(42)));
  ASSERT_TRUE(gate.WaitInside(1));

  std::thread stopper([&] { server->Stop(); });  // as on SIGTERM
  EXPECT_TRUE(WaitFor([&] { return !FileExists(sock); }));
  EXPECT_FALSE(FileExists(dir.path() + "/runtime-ready"));
  EXPECT_LT(Connect(sock), 0);  // no longer accepting
  gate.Open();
  auto r = RecvFrame(busy);  // the in-flight request still gets its answer
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(json::parse(*r)[0]["payload"], 42);
  stopper.join();
  EXPECT_TRUE(SeesEof(idle));
  EXPECT_TRUE(SeesEof(busy));
  ::close(idle);
  ::close(busy);
}

TEST(ServerTest, StartErrors) {
  TempDir dir;
  auto o = Opts(dir);
  o.socket_name = std::string(120, 's');
  auto s = Server::Start(Echo, o);
  ASSERT_FALSE(s.has_value());
  EXPECT_NE(s.error().message.find("longer than"), std::string::npos);

  o = Opts(dir);
  o.mode = HandlerMode::kEnvelope;
  s = Server::Start(Echo, o);
  ASSERT_FALSE(s.has_value());
  EXPECT_NE(s.error().message.find("ASYA_HANDLER_MODE=envelope"), std::string::npos);

  o = Opts(dir);
  ASSERT_EQ(::mkdir((dir.path() + "/asya-runtime.sock").c_str(), 0700), 0);
  s = Server::Start(Echo, o);
  ASSERT_FALSE(s.has_value());
  EXPECT_NE(s.error().message.find("is a directory"), std::string::npos);

  o = Opts(dir);
  o.concurrency = 0;
  EXPECT_FALSE(Server::Start(Echo, o).has_value());
}

}  // namespace
}  // namespace asya::runtime
