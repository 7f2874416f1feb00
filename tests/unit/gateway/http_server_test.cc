// The gateway's HTTP server over real sockets: limits, keep-alive, deferred answers, streams,
// slow readers, disconnects and graceful stop.
#include "asya/gateway/http_server.h"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <future>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

namespace asya::gateway {
namespace {

using namespace std::chrono_literals;

int Connect(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
    ::close(fd);
    return -1;
  }
  timeval tv{10, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  return fd;
}

void SendAll(int fd, const std::string& s) {
  size_t off = 0;
  while (off < s.size()) {
    ssize_t n = ::send(fd, s.data() + off, s.size() - off, MSG_NOSIGNAL);
    if (n <= 0) {
      return;
    }
    off += static_cast<size_t>(n);
  }
}

// Reads until `needle` appears (or EOF / timeout); returns what was read.
std::string ReadUntil(int fd, const std::string& needle) {
  std::string out;
  char buf[4096];
  while (out.find(needle) == std::string::npos) {
    ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
    if (n <= 0) {
      break;
    }
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

std::string ReadToEof(int fd) {
  return ReadUntil(fd, std::string("\x01\x02never", 7));
}

int ThreadCount() {
  int n = 0;
  if (DIR* d = opendir("/proc/self/task")) {
    while (dirent* e = readdir(d)) {
      n += e->d_name[0] != '.';
    }
    closedir(d);
  }
  return n;
}

class ServerTest : public ::testing::Test {
 protected:
  void Start(Handler h, ServerOptions o = {}) {
    o.address = "127.0.0.1";
    o.port = 0;
    server_ = std::make_unique<HttpServer>(o, std::move(h));
    ASSERT_TRUE(server_->Start().has_value());
  }
  int port() const { return server_->port(); }
  std::unique_ptr<HttpServer> server_;
};

Handler Echo() {
  return [](Request r, Responder resp) {
    Response out;
    out.body = r.method + " " + r.path + " q=" + r.query + " body=" + r.body +
               " x=" + std::string(r.Header("x-test"));
    resp.Reply(std::move(out));
  };
}

TEST_F(ServerTest, AnswersAndKeepsTheConnectionAlive) {
  Start(Echo());
  int fd = Connect(port());
  ASSERT_GE(fd, 0);
  SendAll(fd, "POST /a/b?x=1 HTTP/1.1\r\nHost: h\r\nX-Test: yes\r\nContent-Length: 3\r\n\r\nabc");
  std::string first = ReadUntil(fd, "x=yes");
  EXPECT_NE(first.find("HTTP/1.1 200"), std::string::npos) << first;
  EXPECT_NE(first.find("POST /a/b q=x=1 body=abc x=yes"), std::string::npos) << first;
  SendAll(fd, "GET /second HTTP/1.1\r\nHost: h\r\n\r\n");
  std::string second = ReadUntil(fd, "x=");
  EXPECT_NE(second.find("GET /second q= body="), std::string::npos) << second;
  ::close(fd);
}

TEST_F(ServerTest, OversizeBodyIs413WithTheLimitAndNeverReachesTheHandler) {
  std::atomic<int> calls{0};
  ServerOptions o;
  o.max_body_bytes = 100;
  Start(
      [&](Request, Responder r) {
        ++calls;
        r.Reply({});
      },
      o);
  int fd = Connect(port());
  SendAll(fd,
          "POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 1000\r\n\r\n" + std::string(1000, 'a'));
  std::string out = ReadToEof(fd);
  EXPECT_NE(out.find("413"), std::string::npos) << out;
  EXPECT_NE(out.find("exceeds the limit of 100 bytes"), std::string::npos) << out;
  EXPECT_EQ(calls.load(), 0);
  ::close(fd);
  // Chunked bodies are limited as well.
  fd = Connect(port());
  SendAll(fd, "POST /x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n96\r\n" +
                  std::string(150, 'b') + "\r\n0\r\n\r\n");
  out = ReadToEof(fd);
  EXPECT_NE(out.find("413"), std::string::npos) << out;
  EXPECT_EQ(calls.load(), 0);
  ::close(fd);
}

TEST_F(ServerTest, ExpectContinueIsAnswered) {
  Start(Echo());
  int fd = Connect(port());
  SendAll(fd, "POST /x HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n");
  std::string cont = ReadUntil(fd, "\r\n\r\n");
  EXPECT_NE(cont.find("100 Continue"), std::string::npos) << cont;
  SendAll(fd, "hi");
  EXPECT_NE(ReadUntil(fd, "body=hi").find("body=hi"), std::string::npos);
  ::close(fd);
}

TEST_F(ServerTest, OversizeHeadersAndUrlsAreRefused) {
  ServerOptions o;
  o.max_header_bytes = 1024;
  o.max_url_bytes = 100;
  Start(Echo(), o);
  int fd = Connect(port());
  SendAll(fd, "GET /x HTTP/1.1\r\nHost: h\r\nX-Big: " + std::string(4000, 'a') + "\r\n\r\n");
  EXPECT_NE(ReadToEof(fd).find("431"), std::string::npos);
  ::close(fd);
  fd = Connect(port());
  SendAll(fd, "GET /" + std::string(200, 'u') + " HTTP/1.1\r\nHost: h\r\n\r\n");
  EXPECT_NE(ReadToEof(fd).find("414"), std::string::npos);
  ::close(fd);
  fd = Connect(port());
  SendAll(fd, "NOT HTTP AT ALL\r\n\r\n");
  EXPECT_NE(ReadToEof(fd).find("400"), std::string::npos);
  ::close(fd);
}

TEST_F(ServerTest, DeferredAnswerFromAnotherThreadAndUnansweredIs500) {
  std::vector<std::thread> workers;
  std::mutex mu;
  Start([&](Request r, Responder resp) {
    if (r.path == "/drop") {
      return;  // responder dropped unanswered
    }
    std::lock_guard lock(mu);
    workers.emplace_back([resp] {
      std::this_thread::sleep_for(50ms);
      Response out;
      out.status = 202;
      out.body = "later";
      resp.Reply(out);
    });
  });
  int fd = Connect(port());
  SendAll(fd, "GET /later HTTP/1.1\r\nHost: h\r\n\r\n");
  std::string out = ReadUntil(fd, "later");
  EXPECT_NE(out.find("202"), std::string::npos) << out;
  SendAll(fd, "GET /drop HTTP/1.1\r\nHost: h\r\n\r\n");
  out = ReadUntil(fd, "not answered");
  EXPECT_NE(out.find("500"), std::string::npos) << out;
  ::close(fd);
  std::lock_guard lock(mu);
  for (auto& t : workers) {
    t.join();
  }
}

TEST_F(ServerTest, StreamSendsChunksAndEnds) {
  Start([](Request, Responder resp) {
    auto s = resp.OpenStream(200, {{"Content-Type", "text/event-stream"}});
    EXPECT_TRUE(s->Send("data: one\n\n"));
    EXPECT_TRUE(s->Send("data: two\n\n"));
    s->Close();
    EXPECT_FALSE(s->Send("data: late\n\n"));
  });
  int fd = Connect(port());
  SendAll(fd, "GET /s HTTP/1.1\r\nHost: h\r\n\r\n");
  std::string out = ReadToEof(fd);
  EXPECT_NE(out.find("Transfer-Encoding: chunked"), std::string::npos) << out;
  // The server closes after the stream: the client must not keep the connection for reuse.
  EXPECT_NE(out.find("Connection: close\r\n"), std::string::npos) << out;
  EXPECT_NE(out.find("text/event-stream"), std::string::npos) << out;
  EXPECT_NE(out.find("data: one\n\n"), std::string::npos) << out;
  EXPECT_NE(out.find("data: two\n\n"), std::string::npos) << out;
  EXPECT_NE(out.find("0\r\n\r\n"), std::string::npos) << out;
  EXPECT_EQ(out.find("late"), std::string::npos) << out;
  ::close(fd);
}

TEST_F(ServerTest, KeepaliveCommentsOnIdleEventStreams) {
  ServerOptions o;
  o.stream_keepalive = 50ms;
  std::shared_ptr<EventStream> keep;
  Start(
      [&](Request, Responder resp) {
        keep = resp.OpenStream(200, {{"Content-Type", "text/event-stream"}});
      },
      o);
  int fd = Connect(port());
  SendAll(fd, "GET /s HTTP/1.1\r\nHost: h\r\n\r\n");
  EXPECT_NE(ReadUntil(fd, ": keepalive").find(": keepalive\n\n"), std::string::npos);
  ::close(fd);
}

TEST_F(ServerTest, ClientDisconnectFiresOnClose) {
  std::promise<void> closed;
  std::promise<std::shared_ptr<EventStream>> opened;
  Start([&](Request, Responder resp) {
    auto s = resp.OpenStream(200, {{"Content-Type", "text/event-stream"}});
    s->OnClose([&] { closed.set_value(); });
    opened.set_value(s);
  });
  int fd = Connect(port());
  SendAll(fd, "GET /s HTTP/1.1\r\nHost: h\r\n\r\n");
  auto stream = opened.get_future().get();
  ::close(fd);
  EXPECT_EQ(closed.get_future().wait_for(10s), std::future_status::ready);
  EXPECT_TRUE(stream->Closed());
  EXPECT_FALSE(stream->Send("data: x\n\n"));
}

TEST_F(ServerTest, SlowReaderIsDisconnectedNotBufferedForever) {
  ServerOptions o;
  o.stream_queue_bytes = 64 << 10;
  std::promise<std::shared_ptr<EventStream>> opened;
  Start([&](Request, Responder resp) { opened.set_value(resp.OpenStream(200, {})); }, o);
  int fd = Connect(port());
  int small = 4096;
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
  SendAll(fd, "GET /s HTTP/1.1\r\nHost: h\r\n\r\n");
  auto s = opened.get_future().get();
  std::promise<void> closed;
  s->OnClose([&] { closed.set_value(); });
  const std::string chunk(16 << 10, 'z');
  bool refused = false;
  for (int i = 0; i < 100'000 && !refused; ++i) {  // up to 1.6 GB offered; never read
    refused = !s->Send(chunk);
  }
  EXPECT_TRUE(refused);
  EXPECT_EQ(closed.get_future().wait_for(10s), std::future_status::ready);
  ::close(fd);
}

TEST_F(ServerTest, ManyIdleStreamsUseNoExtraThreadsAndStopEndsThem) {
  std::mutex mu;
  std::vector<std::shared_ptr<EventStream>> streams;
  Start([&](Request, Responder resp) {
    auto s = resp.OpenStream(200, {{"Content-Type", "text/event-stream"}});
    std::lock_guard lock(mu);
    streams.push_back(s);
  });
  const int before = ThreadCount();
  std::vector<int> fds;
  for (int i = 0; i < 300; ++i) {
    int fd = Connect(port());
    ASSERT_GE(fd, 0);
    SendAll(fd, "GET /s HTTP/1.1\r\nHost: h\r\n\r\n");
    fds.push_back(fd);
  }
  for (int fd : fds) {
    ReadUntil(fd, "\r\n\r\n");
  }
  EXPECT_EQ(server_->Connections(), 300u);
  EXPECT_EQ(ThreadCount(), before);
  server_->Stop(2s);
  EXPECT_EQ(server_->Connections(), 0u);
  for (int fd : fds) {
    std::string rest = ReadToEof(fd);
    ::close(fd);
  }
  std::lock_guard lock(mu);
  for (auto& s : streams) {
    EXPECT_TRUE(s->Closed());
  }
  // A stopped server accepts nothing.
  int fd = Connect(port());
  if (fd >= 0) {
    SendAll(fd, "GET / HTTP/1.1\r\nHost: h\r\n\r\n");
    EXPECT_EQ(ReadToEof(fd), "");
    ::close(fd);
  }
}

TEST_F(ServerTest, StopWaitsForARequestInFlight) {
  std::promise<Responder> held;
  Start([&](Request, Responder resp) { held.set_value(resp); });
  int fd = Connect(port());
  SendAll(fd, "GET /slow HTTP/1.1\r\nHost: h\r\n\r\n");
  auto responder = held.get_future().get();
  std::thread answer([responder] {
    std::this_thread::sleep_for(100ms);
    Response r;
    r.body = "done";
    responder.Reply(r);
  });
  server_->Stop(10s);
  answer.join();
  std::string out = ReadToEof(fd);
  EXPECT_NE(out.find("done"), std::string::npos) << out;
  EXPECT_NE(out.find("Connection: close"), std::string::npos) << out;
  ::close(fd);
}

// Every handler call of one keep-alive connection runs on one I/O thread (a request does not hop
// between threads), and connections are spread over all the I/O threads.
TEST_F(ServerTest, AConnectionStaysOnOneIoThreadAndConnectionsUseThemAll) {
  std::mutex mu;
  std::map<std::string, std::set<std::thread::id>> threads_of;  // by peer (one per connection)
  ServerOptions o;
  o.io_threads = 4;
  Start(
      [&](Request r, Responder resp) {
        {
          std::lock_guard lock(mu);
          threads_of[r.peer].insert(std::this_thread::get_id());
        }
        Response out;
        out.body = "ok";
        resp.Reply(std::move(out));
      },
      o);
  std::vector<int> fds;
  for (int i = 0; i < 8; ++i) {
    int fd = Connect(port());
    ASSERT_GE(fd, 0);
    fds.push_back(fd);
  }
  for (int round = 0; round < 20; ++round) {
    for (int fd : fds) {
      SendAll(fd, "POST /report HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\n{}");
    }
    for (int fd : fds) {
      std::string out = ReadUntil(fd, "\r\n\r\nok");
      ASSERT_NE(out.find("HTTP/1.1 200"), std::string::npos) << out;
    }
  }
  for (int fd : fds) {
    ::close(fd);
  }
  std::lock_guard lock(mu);
  ASSERT_EQ(threads_of.size(), fds.size());
  std::set<std::thread::id> all;
  for (const auto& [peer, ids] : threads_of) {
    EXPECT_EQ(ids.size(), 1u) << peer;
    all.insert(ids.begin(), ids.end());
  }
  EXPECT_EQ(all.size(), 4u);
}

// A handler that blocks its I/O thread does not stall a connection served by another one.
TEST_F(ServerTest, ABlockedIoThreadDoesNotStallConnectionsOfTheOthers) {
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  ServerOptions o;
  o.io_threads = 2;
  Start(
      [released](Request r, Responder resp) {
        if (r.path == "/block") {
          released.wait();
        }
        Response out;
        out.body = "answered " + r.path;
        resp.Reply(std::move(out));
      },
      o);
  int a = Connect(port());
  int b = Connect(port());
  ASSERT_GE(a, 0);
  ASSERT_GE(b, 0);
  SendAll(a, "GET /block HTTP/1.1\r\nHost: h\r\n\r\n");
  SendAll(b, "GET /free HTTP/1.1\r\nHost: h\r\n\r\n");
  std::string out = ReadUntil(b, "answered /free");
  release.set_value();
  EXPECT_NE(out.find("answered /free"), std::string::npos) << out;
  out = ReadUntil(a, "answered /block");
  EXPECT_NE(out.find("answered /block"), std::string::npos) << out;
  ::close(a);
  ::close(b);
}

}  // namespace
}  // namespace asya::gateway
