#include "support/rabbitmq_fixture.h"

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <thread>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

namespace asya::test {
namespace {

bool PortAccepts(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) {
    return false;
  }
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bool ok = connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  close(fd);
  return ok;
}

std::string ScriptPath() {
  const char* src = std::getenv("ASYA_SOURCE_DIR");  // NOLINT(concurrency-mt-unsafe)
  std::string root = src != nullptr ? src : ASYA_TEST_SOURCE_DIR;
  return root + "/tools/rabbitmq-test-broker.sh";
}

Result<std::string> RunScript(const std::string& command) {
  FILE* p = popen(command.c_str(), "r");
  if (p == nullptr) {
    return MakeError(ErrorCode::kInternal, "popen failed: " + command);
  }
  std::string out;
  char buf[256];
  while (fgets(buf, sizeof(buf), p) != nullptr) {
    out += buf;
  }
  int rc = pclose(p);
  if (rc != 0) {
    return MakeError(ErrorCode::kInternal, "'" + command + "' failed: " + out);
  }
  while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) {
    out.pop_back();
  }
  return out;
}

}  // namespace

Result<std::unique_ptr<RabbitMqBroker>> RabbitMqBroker::Start(const Options& options) {
  std::unique_ptr<RabbitMqBroker> broker(new RabbitMqBroker());
  broker->script_ = ScriptPath();
  char tmpl[] = "/tmp/asya-rmq-XXXXXX";
  if (mkdtemp(tmpl) == nullptr) {
    return MakeError(ErrorCode::kInternal, "mkdtemp failed");
  }
  broker->dir_ = tmpl;
  Status last = Ok();
  for (int attempt = 0; attempt < 3; ++attempt) {  // a port taken meanwhile kills the boot
    ASYA_ASSIGN_OR_RETURN(std::string port, RunScript(broker->script_ + " free-port"));
    broker->port_ = std::stoi(port);
    broker->mgmt_port_ = options.management ? broker->port_ + 1 : 0;
    broker->tls_port_ = options.tls ? broker->port_ + 2 : 0;
    std::string tls_env =
        options.tls ? "RMQ_TLS_PORT=" + std::to_string(broker->tls_port_) + " " : std::string();
    ASYA_ASSIGN_OR_RETURN(std::string ignored,
                          RunScript(tls_env + broker->script_ + " init " + broker->dir_ + " " +
                                    port + " " + std::to_string(broker->mgmt_port_)));
    last = broker->Launch();
    if (last) {
      return broker;
    }
    broker->Stop(false);
  }
  return Unexpected(last.error());
}

Status RabbitMqBroker::Launch() {
  pid_t pid = fork();
  if (pid < 0) {
    return MakeError(ErrorCode::kInternal, "fork failed");
  }
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);  // never outlive the test binary
    std::string log = dir_ + "/log/console.log";
    int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
      dup2(fd, 1);
      dup2(fd, 2);
    }
    int devnull = open("/dev/null", O_RDONLY);
    if (devnull >= 0) {
      dup2(devnull, 0);
    }
    execl("/bin/bash", "bash", script_.c_str(), "run", dir_.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  pid_ = pid;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(90);
  while (std::chrono::steady_clock::now() < deadline) {
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return MakeError(ErrorCode::kUnavailable,
                       "rabbitmq-server exited during start-up; see " + dir_ + "/log/console.log");
    }
    if (PortAccepts(port_) && (mgmt_port_ == 0 || PortAccepts(mgmt_port_)) &&
        (tls_port_ == 0 || PortAccepts(tls_port_))) {
      return Ok();
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return MakeError(ErrorCode::kDeadlineExceeded,
                   "rabbitmq-server did not open port " + std::to_string(port_) + " within 90 s");
}

void RabbitMqBroker::Stop(bool clean) {
  if (pid_ <= 0) {
    return;
  }
  kill(pid_, clean ? SIGTERM : SIGKILL);
  int status = 0;
  waitpid(pid_, &status, 0);
  pid_ = -1;
}

Status RabbitMqBroker::Restart() {
  Stop(false);
  return Launch();
}

RabbitMqBroker::~RabbitMqBroker() {
  Stop(false);
  if (!dir_.empty()) {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
}

std::string RabbitMqBroker::url() const {
  return "amqp://guest:guest@127.0.0.1:" + std::to_string(port_) + "/";
}

std::string RabbitMqBroker::management_url() const {
  if (mgmt_port_ == 0) {
    return {};
  }
  return "http://guest:guest@127.0.0.1:" + std::to_string(mgmt_port_);
}

std::string RabbitMqBroker::tls_url() const {
  if (tls_port_ == 0) {
    return {};
  }
  return "amqps://guest:guest@localhost:" + std::to_string(tls_port_) + "/";
}

RabbitMqBroker& RabbitMqBroker::Shared() {
  static std::unique_ptr<RabbitMqBroker> shared = [] {
    auto broker = Start(Options{});
    if (!broker) {
      std::fprintf(stderr, "cannot start a test RabbitMQ broker: %s\n",
                   broker.error().ToString().c_str());
      std::abort();
    }
    return std::move(*broker);
  }();
  return *shared;
}

}  // namespace asya::test
