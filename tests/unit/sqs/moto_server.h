// A throw-away moto_server (SQS + STS) on a free loopback port, for tests.
//
//   asya::test::MotoServer moto;          // starts `moto_server -H 127.0.0.1 -p <port>`
//   ASSERT_TRUE(moto.Start()) << moto.error();
//   settings.endpoint = moto.endpoint();     // http://127.0.0.1:<port>
//   moto.UseTls(cert, key);                  // before Start(): https://127.0.0.1:<port>
//
// The server is a direct child (killed with SIGKILL in the destructor and reaped with waitpid;
// PR_SET_PDEATHSIG kills it if the test process dies first). Its log goes to a file under /tmp.
#pragma once

#include <chrono>
#include <cstdlib>
#include <string>
#include <thread>
#include <utility>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

namespace asya::test {

class MotoServer {
 public:
  MotoServer() = default;
  MotoServer(const MotoServer&) = delete;
  MotoServer& operator=(const MotoServer&) = delete;
  ~MotoServer() { Stop(); }

  // Serve HTTPS with this PEM certificate and key (call before Start()).
  void UseTls(std::string cert, std::string key) {
    tls_cert_ = std::move(cert);
    tls_key_ = std::move(key);
  }

  // Retries on another port if moto exits at start (a port taken between FreePort() and bind).
  bool Start() {
    for (int attempt = 0; attempt < 3; ++attempt) {
      if (StartOnce()) {
        return true;
      }
    }
    return false;
  }

 private:
  bool StartOnce() {
    port_ = FreePort();
    if (port_ == 0) {
      error_ = "no free port";
      return false;
    }
    log_path_ =
        "/tmp/asya-moto-" + std::to_string(::getpid()) + "-" + std::to_string(port_) + ".log";
    pid_ = ::fork();
    if (pid_ == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      int fd = ::open(log_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      if (fd >= 0) {
        ::dup2(fd, 1);
        ::dup2(fd, 2);
      }
      int null_fd = ::open("/dev/null", O_RDONLY);
      if (null_fd >= 0) {
        ::dup2(null_fd, 0);
      }
      std::string port = std::to_string(port_);
      if (!tls_cert_.empty()) {
        ::execlp("moto_server", "moto_server", "-H", "127.0.0.1", "-p", port.c_str(), "-c",
                 tls_cert_.c_str(), "-k", tls_key_.c_str(), static_cast<char*>(nullptr));
      }
      ::execlp("moto_server", "moto_server", "-H", "127.0.0.1", "-p", port.c_str(),
               static_cast<char*>(nullptr));
      ::_exit(127);
    }
    if (pid_ < 0) {
      error_ = "fork failed";
      return false;
    }
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (std::chrono::steady_clock::now() < deadline) {
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        error_ = "moto_server exited at start (is it on PATH?); log: " + log_path_;
        return false;
      }
      if (Accepts()) {
        return true;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    error_ = "moto_server did not listen within 60 s; log: " + log_path_;
    return false;
  }

 public:
  void Stop() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
      pid_ = -1;
      ::unlink(log_path_.c_str());
    }
  }

  [[nodiscard]] int port() const { return port_; }
  [[nodiscard]] std::string endpoint() const {
    return (tls_cert_.empty() ? "http://127.0.0.1:" : "https://127.0.0.1:") + std::to_string(port_);
  }
  [[nodiscard]] const std::string& error() const { return error_; }

  // A port that was free a moment ago (bind to 0, read it back, close).
  static int FreePort() {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    socklen_t len = sizeof(addr);
    int port = 0;
    if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
      port = ntohs(addr.sin_port);
    }
    ::close(fd);
    return port;
  }

 private:
  [[nodiscard]] bool Accepts() const {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(static_cast<uint16_t>(port_));
    bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
    ::close(fd);
    return ok;
  }

  int port_ = 0;
  std::string tls_cert_, tls_key_;
  pid_t pid_ = -1;
  std::string log_path_;
  std::string error_;
};

}  // namespace asya::test
