// The pieces behind `asya check`'s network faults: the delay proxy (holds bytes, keeps their
// order, passes EOF on) and the network namespace with its veth pair (a partition really cuts the
// namespace off, healing brings it back, nothing is left behind). The namespace needs root.
#include <algorithm>
#include <chrono>
#include <cstring>
#include <future>
#include <string>
#include <thread>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>
#include <net/if.h>

#include "check/netns.h"
#include "check/proxy.h"

namespace asya::check::internal {
namespace {

// A TCP listener on ip (port chosen by the kernel) that echoes one connection until EOF.
class Echo {
 public:
  explicit Echo(const std::string& ip = "127.0.0.1", int netns_fd = -1) {
    auto port = ready_.get_future();
    thread_ = std::thread([this, ip, netns_fd] {
      if (netns_fd >= 0) {
        ::setns(netns_fd, CLONE_NEWNET);  // this thread only: its sockets live in the namespace
      }
      listen_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      sockaddr_in a{};
      a.sin_family = AF_INET;
      ::inet_pton(AF_INET, ip.c_str(), &a.sin_addr);
      socklen_t len = sizeof a;
      ::bind(listen_, reinterpret_cast<sockaddr*>(&a), sizeof a);
      ::listen(listen_, 8);
      ::getsockname(listen_, reinterpret_cast<sockaddr*>(&a), &len);
      ready_.set_value(ntohs(a.sin_port));
      while (true) {
        int c = ::accept(listen_, nullptr, nullptr);
        if (c < 0) {
          return;
        }
        char buf[4096];
        ssize_t n;
        while ((n = ::read(c, buf, sizeof buf)) > 0) {
          ::send(c, buf, static_cast<size_t>(n), MSG_NOSIGNAL);
        }
        ::close(c);
      }
    });
    port_ = port.get();
  }
  ~Echo() {
    ::shutdown(listen_, SHUT_RDWR);
    thread_.join();
    ::close(listen_);
  }
  int port() const { return port_; }

 private:
  std::promise<int> ready_;
  std::thread thread_;
  int listen_ = -1;
  int port_ = 0;
};

int Connect(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  return fd;
}

std::string ReadN(int fd, size_t n) {
  std::string out;
  char buf[8192];
  while (out.size() < n) {
    ssize_t r = ::read(fd, buf, std::min(sizeof buf, n - out.size()));
    if (r <= 0) {
      break;
    }
    out.append(buf, static_cast<size_t>(r));
  }
  return out;
}

TEST(DelayProxy, PassesBytesInOrderAcrossDelayChangesAndPassesEof) {
  Echo echo;
  auto proxy = DelayProxy::Start("127.0.0.1", echo.port());
  ASSERT_TRUE(proxy.has_value()) << proxy.error().message;
  int fd = Connect((*proxy)->port());
  std::string sent;
  for (int i = 0; i < 3000; ++i) {
    if (i == 1000) {
      (*proxy)->SetDelay(std::chrono::milliseconds(300));
    }
    if (i == 1010) {
      (*proxy)->SetDelay(std::chrono::milliseconds(0));  // later bytes must not overtake
    }
    std::string piece = "piece-" + std::to_string(i) + ";";
    ASSERT_EQ(::send(fd, piece.data(), piece.size(), MSG_NOSIGNAL),
              static_cast<ssize_t>(piece.size()));
    sent += piece;
  }
  EXPECT_EQ(ReadN(fd, sent.size()), sent);
  ::shutdown(fd, SHUT_WR);  // EOF travels to the echo server, which closes: EOF comes back
  char c;
  EXPECT_EQ(::read(fd, &c, 1), 0);
  ::close(fd);
  EXPECT_EQ((*proxy)->connections(), 1);
}

TEST(DelayProxy, HoldsBytesForTheDelayEachWay) {
  Echo echo;
  auto proxy = DelayProxy::Start("127.0.0.1", echo.port());
  ASSERT_TRUE(proxy.has_value()) << proxy.error().message;
  (*proxy)->SetDelay(std::chrono::milliseconds(250));
  // A lower bound only: a chunk is never written before its release time, each way.
  const int64_t ms = RoundTripMs((*proxy)->port(), "hello", 30'000);
  EXPECT_GE(ms, 500);
}

TEST(NetLab, PartitionCutsTheNamespaceOffAndHealBringsItBack) {
  if (::geteuid() != 0) {
    GTEST_SKIP() << "network namespaces need root";
  }
  auto lab = NetLab::Create();
  ASSERT_TRUE(lab.has_value()) << lab.error().message;
  const std::string host_if = (*lab)->host_if();
  EXPECT_NE(::if_nametoindex(host_if.c_str()), 0u);
  {
    Echo echo((*lab)->ns_ip(), (*lab)->fd());
    ASSERT_TRUE(TcpReachable((*lab)->ns_ip(), echo.port(), 5000));
    ASSERT_TRUE((*lab)->Partition().has_value());
    EXPECT_FALSE(TcpReachable((*lab)->ns_ip(), echo.port(), 1000));
    auto dropped = (*lab)->Heal();
    ASSERT_TRUE(dropped.has_value()) << dropped.error().message;
    EXPECT_GE(*dropped, 1);  // at least the SYN of the probe above
    EXPECT_TRUE(TcpReachable((*lab)->ns_ip(), echo.port(), 5000));
    ASSERT_TRUE((*lab)->Loss(100).has_value());  // 100 % loss is a partition too
    EXPECT_FALSE(TcpReachable((*lab)->ns_ip(), echo.port(), 1000));
    ASSERT_TRUE((*lab)->Heal().has_value());
  }
  (*lab)->Destroy();
  EXPECT_EQ(::if_nametoindex(host_if.c_str()), 0u);  // the veth pair went with the namespace
}

}  // namespace
}  // namespace asya::check::internal
