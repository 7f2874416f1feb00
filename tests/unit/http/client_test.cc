// The HTTP client against a real local server (tests/unit/http/test_server.py): round trips,
// transport failures, retries on a ManualClock, TLS with certificates made by the openssl CLI,
// chunked streaming, keep-alive and concurrent use.
#include "asya/http/client.h"

#include <atomic>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "support/temp_dir.h"

namespace asya::http {
namespace {

using json = nlohmann::json;
using std::chrono::milliseconds;
using std::chrono::seconds;

using test::TempDir;

std::string ReadAll(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// test_server.py as a child process; extra arguments select TLS.
class Server {
 public:
  explicit Server(std::vector<std::string> args = {}) {
    port_file_ = dir_.path() + "/port";
    pid_ = ::fork();
    if (pid_ == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      std::string script = std::string(ASYA_HTTP_TESTDIR) + "/test_server.py";
      std::vector<const char*> argv = {ASYA_PYTHON, script.c_str(), port_file_.c_str()};
      for (const auto& a : args) {
        argv.push_back(a.c_str());
      }
      argv.push_back(nullptr);
      ::execvp(ASYA_PYTHON, const_cast<char* const*>(argv.data()));
      ::_exit(127);
    }
    for (int i = 0; i < 600 && port_.empty(); ++i) {
      std::ifstream in(port_file_);
      std::getline(in, port_);
      if (port_.empty()) {
        std::this_thread::sleep_for(milliseconds(50));
      }
    }
    EXPECT_FALSE(port_.empty()) << "test_server.py did not start";
  }
  ~Server() {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
  }
  [[nodiscard]] std::string url(const std::string& path, const std::string& host = "127.0.0.1",
                                const std::string& scheme = "http") const {
    return scheme + "://" + host + ":" + port_ + path;
  }

 private:
  TempDir dir_{"asya-http"};
  std::string port_file_;
  std::string port_;
  pid_t pid_ = -1;
};

// One plain server for every test that needs no TLS (python starts slowly on a busy machine).
const Server& Plain() {
  static Server server;
  return server;
}

// A port nothing listens on (bound once, then closed).
int ClosedPort() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  socklen_t len = sizeof(addr);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

// ---- requests ---------------------------------------------------------------------------------

TEST(Client, RoundTripsMethodHeadersAndBody) {
  const Server& server = Plain();
  Client client({.default_headers = {{"X-Default", "d"}}, .bearer_token = "tok"});
  auto r = client.Do({.method = "PUT",
                      .url = server.url("/echo?status=201"),
                      .headers = {{"X-Test", "a b"}, {"Content-Type", "text/plain"}},
                      .body = std::string("hello\0world", 11)});
  ASSERT_TRUE(r.has_value()) << r.error().message;
  EXPECT_EQ(r->status, 201);
  EXPECT_EQ(r->Header("x-echo"), "yes");  // case-insensitive
  EXPECT_EQ(r->Header("X-ECHO"), "yes");
  EXPECT_EQ(r->Header("X-Absent"), "");
  json doc = json::parse(r->body);
  EXPECT_EQ(doc["method"], "PUT");
  EXPECT_EQ(doc["path"], "/echo?status=201");
  EXPECT_EQ(doc["body"], std::string("hello\0world", 11));
  EXPECT_EQ(doc["headers"]["x-test"], "a b");
  EXPECT_EQ(doc["headers"]["x-default"], "d");
  EXPECT_EQ(doc["headers"]["authorization"], "Bearer tok");
  EXPECT_EQ(doc["headers"]["content-type"], "text/plain");
  EXPECT_FALSE(doc["headers"].contains("expect"));
}

TEST(Client, AnyStatusIsAResultAndHelpersWork) {
  const Server& server = Plain();
  Client client({.base_url = server.url("/")});  // trailing '/' dropped
  auto get = client.Get("/echo?status=404");
  ASSERT_TRUE(get.has_value());
  EXPECT_EQ(get->status, 404);
  EXPECT_EQ(json::parse(get->body)["method"], "GET");
  auto post = client.Post("/echo", "{\"a\":1}", "application/json");
  ASSERT_TRUE(post.has_value());
  json doc = json::parse(post->body);
  EXPECT_EQ(doc["method"], "POST");
  EXPECT_EQ(doc["body"], "{\"a\":1}");
  EXPECT_EQ(doc["headers"]["content-type"], "application/json");
  auto head = client.Do({.method = "HEAD", .url = "/echo"});
  ASSERT_TRUE(head.has_value());
  EXPECT_EQ(head->status, 200);
  EXPECT_EQ(head->body, "");
  // An absolute URL ignores base_url.
  EXPECT_EQ(client.Get(server.url("/echo?status=202"))->status, 202);
}

TEST(Client, RelativeUrlWithoutBaseIsInvalid) {
  Client client;
  auto r = client.Get("/echo");
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument);
  EXPECT_NE(r.error().message.find("relative"), std::string::npos);
}

TEST(Client, ConnectionRefusedIsUnavailableAndHidesCredentials) {
  Client client;
  std::string url = "http://user:s3cret@127.0.0.1:" + std::to_string(ClosedPort()) + "/api";
  auto r = client.Get(url);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, ErrorCode::kUnavailable);
  EXPECT_NE(r.error().message.find("127.0.0.1"), std::string::npos) << r.error().message;
  EXPECT_EQ(r.error().message.find("s3cret"), std::string::npos) << r.error().message;
}

TEST(Client, ResponsesAreBounded) {
  const Server& server = Plain();
  Client small({.max_response_bytes = 64});
  auto r = small.Get(server.url("/echo?pad=" + std::string(100, 'x')));
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, ErrorCode::kResourceExhausted);
  EXPECT_NE(r.error().message.find("exceeds the limit of 64 bytes"), std::string::npos)
      << r.error().message;
  Client client;
  EXPECT_TRUE(client.Get(server.url("/headers?n=900")).has_value());
  auto many = client.Get(server.url("/headers?n=1200"));
  ASSERT_FALSE(many.has_value());
  EXPECT_EQ(many.error().code, ErrorCode::kResourceExhausted);
  EXPECT_NE(many.error().message.find("1000 headers"), std::string::npos) << many.error().message;
  // A streamed line without end (a watch) is bounded the same way.
  auto line =
      small.Stream({.url = server.url("/stream?lines=1")}, [](std::string_view) { return true; });
  EXPECT_TRUE(line.has_value());
  Client tiny({.max_response_bytes = 3});
  auto endless =
      tiny.Stream({.url = server.url("/stream?lines=1")}, [](std::string_view) { return true; });
  ASSERT_FALSE(endless.has_value());
  EXPECT_EQ(endless.error().code, ErrorCode::kResourceExhausted);
}

TEST(Client, TotalTimeoutEndsTheRequest) {
  const Server& server = Plain();
  Client client({.timeout = milliseconds(300)});
  auto r = client.Get(server.url("/sleep?ms=5000"));
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, ErrorCode::kUnavailable);
  EXPECT_NE(r.error().message.find("imeout"), std::string::npos) << r.error().message;
  // A per-request timeout overrides the client's.
  Client patient({.timeout = milliseconds(300)});
  auto ok = patient.Do({.url = server.url("/sleep?ms=500"), .timeout = seconds(30)});
  ASSERT_TRUE(ok.has_value()) << ok.error().message;
  EXPECT_EQ(ok->body, "slept");
}

TEST(Client, CancelTokenEndsARequestInFlight) {
  const Server& server = Plain();
  Client client;
  CancelToken token;
  std::thread canceller([&] {
    std::this_thread::sleep_for(milliseconds(200));
    token.Cancel();
  });
  auto r = client.Do({.url = server.url("/sleep?ms=30000")}, &token);
  canceller.join();
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, ErrorCode::kCancelled);
  // A cancelled token stays cancelled.
  EXPECT_EQ(client.Get(server.url("/echo"), &token).error().code, ErrorCode::kCancelled);
}

TEST(Client, KeepsTheConnectionAlive) {
  const Server& server = Plain();
  Client client;
  auto a = client.Get(server.url("/peer"));
  auto b = client.Get(server.url("/peer"));
  ASSERT_TRUE(a.has_value() && b.has_value());
  EXPECT_EQ(a->body, b->body);  // same client port = same TCP connection
}

TEST(Client, IsSafeToShareBetweenThreads) {
  const Server& server = Plain();
  Client client({.base_url = server.url("")});
  std::atomic<int> ok{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 6; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 10; ++i) {
        std::string body = std::to_string(t) + "-" + std::to_string(i);
        auto r = client.Post("/echo", body, "text/plain");
        if (r && r->status == 200 && json::parse(r->body)["body"] == body) {
          ++ok;
        }
      }
    });
  }
  for (auto& th : threads) {
    th.join();
  }
  EXPECT_EQ(ok.load(), 60);
}

// ---- retries ----------------------------------------------------------------------------------

RetryPolicy Retries(int attempts) {
  return RetryPolicy{.max_attempts = attempts,
                     .initial_backoff = milliseconds(100),
                     .multiplier = 2.0,
                     .max_backoff = milliseconds(10'000)};
}

int Count(const Server& server, const std::string& key) {
  return std::stoi(Client().Get(server.url("/count?key=" + key))->body);
}

TEST(Retry, RetriesServerErrorsWithBackoffOnTheClock) {
  const Server& server = Plain();
  ManualClock clock;
  Client client({.retry = Retries(5), .clock = &clock});
  auto r = client.Get(server.url("/flaky?key=a&fail=3&status=503"));
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "ok");
  EXPECT_EQ(Count(server, "a"), 4);
  EXPECT_EQ(clock.Slept(), milliseconds(100 + 200 + 400));
}

TEST(Retry, GivesUpAfterMaxAttemptsWithTheLastResponse) {
  const Server& server = Plain();
  ManualClock clock;
  Client client({.retry = Retries(2), .clock = &clock});
  auto r = client.Get(server.url("/flaky?key=b&fail=5&status=500"));
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 500);
  EXPECT_EQ(Count(server, "b"), 2);
  EXPECT_EQ(clock.Slept(), milliseconds(100));
}

TEST(Retry, HonoursRetryAfterOn429CappedByMaxBackoff) {
  const Server& server = Plain();
  ManualClock clock;
  Client client({.retry = Retries(3), .clock = &clock});
  auto r = client.Get(server.url("/flaky?key=c&fail=2&status=429&retry_after=7"));
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(clock.Slept(), seconds(7) + seconds(7));
  ManualClock clock2;
  Client capped({.retry = Retries(2), .clock = &clock2});
  ASSERT_EQ(capped.Get(server.url("/flaky?key=d&fail=1&status=429&retry_after=3600"))->status, 200);
  EXPECT_EQ(clock2.Slept(), milliseconds(10'000));
}

TEST(Retry, RetriesConnectionErrorsButNotClientErrors) {
  ManualClock clock;
  Client client({.retry = Retries(3), .clock = &clock});
  auto refused = client.Get("http://127.0.0.1:" + std::to_string(ClosedPort()) + "/");
  ASSERT_FALSE(refused.has_value());
  EXPECT_EQ(refused.error().code, ErrorCode::kUnavailable);
  EXPECT_EQ(clock.Slept(), milliseconds(100 + 200));

  const Server& server = Plain();
  ManualClock clock2;
  Client client2({.retry = Retries(3), .clock = &clock2});
  auto closed = client2.Get(server.url("/close"));  // empty reply: a connection error
  ASSERT_FALSE(closed.has_value());
  EXPECT_EQ(clock2.Slept(), milliseconds(100 + 200));
  auto not_found = client2.Get(server.url("/flaky?key=e&fail=9&status=404"));
  ASSERT_TRUE(not_found.has_value());
  EXPECT_EQ(not_found->status, 404);
  EXPECT_EQ(Count(server, "e"), 1);
  EXPECT_EQ(clock2.Slept(), milliseconds(300));  // unchanged
}

TEST(Retry, PolicyFlagsTurnKindsOff) {
  const Server& server = Plain();
  ManualClock clock;
  RetryPolicy policy = Retries(3);
  policy.on_5xx = false;
  Client client({.retry = policy, .clock = &clock});
  EXPECT_EQ(client.Get(server.url("/flaky?key=f&fail=1&status=503"))->status, 503);
  EXPECT_EQ(Count(server, "f"), 1);
  EXPECT_EQ(clock.Slept(), milliseconds(0));
}

TEST(Retry, NoRetriesByDefault) {
  const Server& server = Plain();
  Client client;
  EXPECT_EQ(client.Get(server.url("/flaky?key=g&fail=1&status=503"))->status, 503);
  EXPECT_EQ(Count(server, "g"), 1);
}

TEST(Retry, ACancelledTokenStopsRetrying) {
  const Server& server = Plain();
  ManualClock clock;
  Client client({.retry = Retries(5), .clock = &clock});
  CancelToken token;
  token.Cancel();
  auto r = client.Get(server.url("/flaky?key=h&fail=9&status=503"), &token);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, ErrorCode::kCancelled);
  EXPECT_EQ(Count(server, "h"), 0);
}

// ---- streaming --------------------------------------------------------------------------------

TEST(Stream, DeliversAChunkedBodyLineByLine) {
  const Server& server = Plain();
  Client client;
  std::vector<std::string> lines;
  auto r = client.Stream({.url = server.url("/stream?lines=5")}, [&](std::string_view line) {
    lines.emplace_back(line);
    return true;
  });
  ASSERT_TRUE(r.has_value()) << r.error().message;
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "");
  EXPECT_EQ(r->Header("Transfer-Encoding"), "chunked");
  EXPECT_EQ(lines, (std::vector<std::string>{"line 0", "line 1", "line 2", "line 3", "line 4"}));
}

TEST(Stream, TheHandlerCanStopTheStream) {
  const Server& server = Plain();
  Client client;
  std::vector<std::string> lines;
  auto r = client.Stream({.url = server.url("/stream?lines=50")}, [&](std::string_view line) {
    lines.emplace_back(line);
    return lines.size() < 2;
  });
  ASSERT_TRUE(r.has_value()) << r.error().message;
  EXPECT_EQ(lines, (std::vector<std::string>{"line 0", "line 1"}));
  // The handle is reusable afterwards.
  EXPECT_EQ(client.Get(server.url("/echo"))->status, 200);
}

TEST(Stream, AnErrorStatusGoesToTheBodyNotTheHandler) {
  const Server& server = Plain();
  Client client;
  int calls = 0;
  auto r = client.Stream({.url = server.url("/stream?status=410")}, [&](std::string_view) {
    ++calls;
    return true;
  });
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 410);
  EXPECT_EQ(json::parse(r->body)["code"], 410);
  EXPECT_EQ(calls, 0);
}

// ---- TLS --------------------------------------------------------------------------------------

// A self-signed server certificate for localhost/127.0.0.1 and a client certificate, made by the
// openssl CLI.
class Certs {
 public:
  Certs() {
    const std::string d = dir_.path();
    Run("openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost "
        "-addext subjectAltName=DNS:localhost,IP:127.0.0.1 -keyout " +
        d + "/server.key -out " + d + "/server.pem");
    Run("openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=asya-client -keyout " + d +
        "/client.key -out " + d + "/client.pem");
  }
  [[nodiscard]] std::string file(const std::string& name) const { return dir_.path() + "/" + name; }

 private:
  static void Run(const std::string& cmd) {
    ASSERT_EQ(std::system((cmd + " >/dev/null 2>&1").c_str()), 0) << cmd;
  }
  TempDir dir_;
};

// The certificates, a TLS server and a TLS server that requires a client certificate.
struct TlsEnv {
  Certs certs;
  Server server{{"--cert", certs.file("server.pem"), "--key", certs.file("server.key")}};
  Server mutual{{"--cert", certs.file("server.pem"), "--key", certs.file("server.key"),
                 "--client-ca", certs.file("client.pem")}};
};
const TlsEnv& Tls() {
  static TlsEnv env;
  return env;
}

TEST(Tls, VerifiesWithTheCaAndFailsWithoutIt) {
  const Certs& certs = Tls().certs;
  const Server& server = Tls().server;
  const std::string url = server.url("/echo", "localhost", "https");

  Client with_file({.tls = {.ca_file = certs.file("server.pem")}});
  auto a = with_file.Get(url);
  ASSERT_TRUE(a.has_value()) << a.error().message;
  EXPECT_EQ(a->status, 200);

  Client with_data({.tls = {.ca_data = ReadAll(certs.file("server.pem"))}});
  auto b = with_data.Get(server.url("/echo", "127.0.0.1", "https"));
  ASSERT_TRUE(b.has_value()) << b.error().message;
  EXPECT_EQ(b->status, 200);

  Client without;
  auto c = without.Get(url);
  ASSERT_FALSE(c.has_value());
  EXPECT_EQ(c.error().code, ErrorCode::kUnavailable);
  EXPECT_NE(c.error().message.find("certificate"), std::string::npos) << c.error().message;

  Client insecure({.tls = {.insecure_skip_verify = true}});
  auto d = insecure.Get(url);
  ASSERT_TRUE(d.has_value()) << d.error().message;
  EXPECT_EQ(d->status, 200);
}

TEST(Tls, AnUnreadableCaFileIsInvalidArgument) {
  const Certs& certs = Tls().certs;
  const Server& server = Tls().server;
  Client client({.tls = {.ca_file = certs.file("missing.pem")}});
  auto r = client.Get(server.url("/echo", "localhost", "https"));
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument) << r.error().message;
}

TEST(Tls, PresentsAClientCertificate) {
  const Certs& certs = Tls().certs;
  const Server& server = Tls().mutual;
  const std::string url = server.url("/echo", "localhost", "https");

  Client files({.tls = {.ca_file = certs.file("server.pem"),
                        .client_cert_file = certs.file("client.pem"),
                        .client_key_file = certs.file("client.key")}});
  auto a = files.Get(url);
  ASSERT_TRUE(a.has_value()) << a.error().message;
  EXPECT_EQ(a->status, 200);

  Client data({.tls = {.ca_file = certs.file("server.pem"),
                       .client_cert_data = ReadAll(certs.file("client.pem")),
                       .client_key_data = ReadAll(certs.file("client.key"))}});
  auto b = data.Get(url);
  ASSERT_TRUE(b.has_value()) << b.error().message;
  EXPECT_EQ(b->status, 200);

  Client none({.tls = {.ca_file = certs.file("server.pem")}});
  auto c = none.Get(url);
  EXPECT_FALSE(c.has_value() && c->status == 200);
}

}  // namespace
}  // namespace asya::http
