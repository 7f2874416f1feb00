#include "asya/sidecar/http_server.h"

#include <string>

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

namespace asya::sidecar {
namespace {

std::string Request(int port, const std::string& raw) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(static_cast<uint16_t>(port));
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)), 0);
  EXPECT_EQ(::send(fd, raw.data(), raw.size(), MSG_NOSIGNAL), static_cast<ssize_t>(raw.size()));
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = ::recv(fd, buf, sizeof(buf), 0)) > 0) {
    out.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return out;
}

class HttpServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(server_.Start("127.0.0.1:0").has_value());
    ASSERT_GT(server_.port(), 0);
  }
  HttpServer server_{MetricsHandler([] { return std::string("m_total 1\n"); })};
};

TEST_F(HttpServerTest, MetricsAndHealth) {
  std::string r = Request(server_.port(), "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(r.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << r;
  EXPECT_NE(r.find("Content-Type: text/plain; version=0.0.4"), std::string::npos);
  EXPECT_NE(r.find("Content-Length: 10\r\n"), std::string::npos);
  EXPECT_EQ(r.substr(r.size() - 10), "m_total 1\n");
  r = Request(server_.port(), "GET /health HTTP/1.0\r\n\r\n");
  EXPECT_EQ(r.rfind("HTTP/1.1 200 OK\r\n", 0), 0u);
  EXPECT_EQ(r.substr(r.size() - 2), "OK");
  r = Request(server_.port(), "GET /metrics?x=1 HTTP/1.1\r\n\r\n");
  EXPECT_EQ(r.rfind("HTTP/1.1 200", 0), 0u);
}

TEST_F(HttpServerTest, ErrorsAreClear) {
  EXPECT_EQ(Request(server_.port(), "GET /nope HTTP/1.1\r\n\r\n").rfind("HTTP/1.1 404", 0), 0u);
  EXPECT_EQ(Request(server_.port(), "POST /metrics HTTP/1.1\r\n\r\n").rfind("HTTP/1.1 405", 0), 0u);
  EXPECT_EQ(Request(server_.port(), "garbage\r\n\r\n").rfind("HTTP/1.1 400", 0), 0u);
  std::string huge = "GET /" + std::string(8995, 'a');  // 9000 bytes, no end of headers
  EXPECT_EQ(Request(server_.port(), huge).rfind("HTTP/1.1 400", 0), 0u);
  // Still serving after bad requests.
  EXPECT_EQ(Request(server_.port(), "GET /health HTTP/1.1\r\n\r\n").rfind("HTTP/1.1 200", 0), 0u);
}

TEST(HttpServer, BadAddressesRejected) {
  HttpServer s(MetricsHandler([] { return std::string(); }));
  for (const char* addr : {"8080", ":http", ":70000", "not-an-ip:80"}) {
    auto st = s.Start(addr);
    EXPECT_FALSE(st.has_value()) << addr;
  }
}

TEST(HttpServer, PortInUseIsAnError) {
  HttpServer a(MetricsHandler([] { return std::string(); }));
  ASSERT_TRUE(a.Start("127.0.0.1:0").has_value());
  HttpServer b(MetricsHandler([] { return std::string(); }));
  auto st = b.Start("127.0.0.1:" + std::to_string(a.port()));
  ASSERT_FALSE(st.has_value());
  EXPECT_NE(st.error().message.find("cannot listen"), std::string::npos);
}

}  // namespace
}  // namespace asya::sidecar
