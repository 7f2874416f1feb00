#include "check/service.h"

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "asya/base/file.h"
#include "asya/local/spawn.h"
#include "asya/local/status.h"
#include "check/netns.h"

namespace asya::check::internal {

namespace fs = std::filesystem;

namespace {

double Seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

void Sleep(double s) {
  std::this_thread::sleep_for(std::chrono::duration<double>(s));
}

}  // namespace

void SetEnv(std::vector<std::string>& env, const std::string& name, const std::string& value) {
  const std::string key = name + "=";
  for (std::string& e : env) {
    if (e.compare(0, key.size(), key) == 0) {
      e = key + value;
      return;
    }
  }
  env.push_back(key + value);
}

namespace {

// A TCP socket on 127.0.0.1:`port`: connect (true when something listens) or bind (true when free).
bool LoopbackProbe(int port, bool connect) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    return false;
  }
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  const auto* a = reinterpret_cast<sockaddr*>(&addr);
  bool ok = (connect ? ::connect(fd, a, sizeof addr) : ::bind(fd, a, sizeof addr)) == 0;
  ::close(fd);
  return ok;
}

bool CanBind(int port) {
  return LoopbackProbe(port, /*connect=*/false);
}

}  // namespace

bool PortAccepts(int port) {
  return LoopbackProbe(port, /*connect=*/true);
}

int FreePort() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    return 0;
  }
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = 0;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  int port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    port = ntohs(addr.sin_port);
  }
  ::close(fd);
  return port;
}

int FreeRabbitPort() {
  std::mt19937 rng(std::random_device{}());
  for (int i = 0; i < 200; ++i) {
    int p = 10000 + static_cast<int>(rng() % 5000);
    if (CanBind(p) && CanBind(p + 1) && CanBind(p + 2) && CanBind(p + 20000)) {
      return p;
    }
  }
  return 0;
}

Service::~Service() {
  if (pid_ > 0) {
    Kill();
  }
}

Status Service::Start() {
  const local::ExecArgs exec = local::MakeExecArgs(spec_.argv, spec_.env);
  int out = ::open(spec_.log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (out < 0) {
    return MakeError(ErrorCode::kUnavailable,
                     "cannot open " + spec_.log_path + ": " + std::strerror(errno));
  }
  const pid_t parent = ::getpid();
  pid_t pid = ::fork();
  if (pid < 0) {
    ::close(out);
    return MakeError(ErrorCode::kUnavailable, std::string("fork: ") + std::strerror(errno));
  }
  if (pid == 0) {
    if (spec_.netns_fd >= 0 && ::setns(spec_.netns_fd, CLONE_NEWNET) != 0) {
      ::_exit(126);
    }
    local::ExecChild(exec, spec_.cwd.c_str(), out, parent);
  }
  ::close(out);
  pid_ = pid;
  ::setpgid(pid, pid);
  if (spec_.port > 0) {
    const double until = Seconds() + spec_.start_timeout_s;
    auto accepts = [this] {
      return spec_.host == "127.0.0.1" ? PortAccepts(spec_.port)
                                       : TcpReachable(spec_.host, spec_.port, 500);
    };
    while (!accepts()) {
      if (!Running()) {
        return MakeError(ErrorCode::kUnavailable, spec_.name + " exited at start; " +
                                                      spec_.log_path + " ends:\n" + LogTail());
      }
      if (Seconds() > until) {
        Kill();
        return MakeError(ErrorCode::kDeadlineExceeded,
                         spec_.name + " did not listen on port " + std::to_string(spec_.port) +
                             " on " + spec_.host + " within " +
                             std::to_string(static_cast<int>(spec_.start_timeout_s)) + " s; " +
                             spec_.log_path + " ends:\n" + LogTail());
      }
      Sleep(0.1);
    }
  }
  return {};
}

bool Service::Running() {
  if (pid_ <= 0) {
    return false;
  }
  int status = 0;
  pid_t r = ::waitpid(pid_, &status, WNOHANG);
  if (r == pid_ || (r < 0 && errno == ECHILD)) {
    pid_ = 0;
    return false;
  }
  return true;
}

bool Service::WaitExit(double timeout_s) {
  const double until = Seconds() + timeout_s;
  while (Running()) {
    if (Seconds() > until) {
      return false;
    }
    Sleep(0.05);
  }
  return true;
}

void Service::Stop(double grace_s) {
  if (!Running()) {
    return;
  }
  pid_t pid = pid_;
  ::kill(-pid, SIGTERM);
  ::kill(pid, SIGTERM);
  if (!WaitExit(grace_s)) {
    Kill();
    return;
  }
  ::kill(-pid, SIGKILL);  // whatever of its group is left
}

void Service::Kill() {
  if (pid_ <= 0) {
    return;
  }
  pid_t pid = pid_;
  ::kill(-pid, SIGKILL);
  ::kill(pid, SIGKILL);
  WaitExit(30);
}

std::string Service::LogTail(size_t bytes) const {
  auto text = local::ReadFile(spec_.log_path);
  if (!text) {
    return "";
  }
  return text->size() > bytes ? text->substr(text->size() - bytes) : *text;
}

Result<ServiceSpec> RabbitMqSpec(const std::string& server, const std::string& dir, int port,
                                 const std::vector<std::string>& base_env, bool wipe,
                                 const std::string& ip) {
  std::error_code ec;
  if (wipe) {
    fs::remove_all(dir, ec);
  }
  for (const char* sub : {"mnesia", "log", "home"}) {
    fs::create_directories(dir + "/" + sub, ec);
    if (ec) {
      return MakeError(ErrorCode::kUnavailable, "cannot create " + dir + ": " + ec.message());
    }
  }
  const int mgmt = port + 1;
  std::string conf;
  conf += "listeners.tcp.default = " + ip + ":" + std::to_string(port) + "\n";
  if (ip != "127.0.0.1") {
    conf += "loopback_users.guest = false\n";  // the mesh connects over the veth pair
  }
  conf += "log.console = true\nlog.console.level = warning\nlog.file = false\n";
  conf += "collect_statistics_interval = 500\n";
  conf += "management.tcp.ip = " + ip + "\nmanagement.tcp.port = " + std::to_string(mgmt) + "\n";
  ASYA_RETURN_IF_ERROR(WriteFileAtomic(dir + "/rabbitmq.conf", conf));
  ASYA_RETURN_IF_ERROR(WriteFileAtomic(dir + "/enabled_plugins", "[rabbitmq_management].\n"));
  ASYA_RETURN_IF_ERROR(WriteFileAtomic(dir + "/rabbitmq-env.conf", ""));
  ServiceSpec s;
  s.name = "rabbitmq-server";
  s.argv = {server};
  s.env = base_env;
  SetEnv(s.env, "HOME", dir + "/home");
  SetEnv(s.env, "RABBITMQ_NODENAME", "asyacheck" + std::to_string(port) + "@localhost");
  SetEnv(s.env, "RABBITMQ_CONF_ENV_FILE", dir + "/rabbitmq-env.conf");
  SetEnv(s.env, "RABBITMQ_CONFIG_FILE", dir + "/rabbitmq.conf");
  SetEnv(s.env, "RABBITMQ_ENABLED_PLUGINS_FILE", dir + "/enabled_plugins");
  SetEnv(s.env, "RABBITMQ_MNESIA_BASE", dir + "/mnesia");
  SetEnv(s.env, "RABBITMQ_LOG_BASE", dir + "/log");
  SetEnv(s.env, "RABBITMQ_PID_FILE", dir + "/rabbit.pid");
  SetEnv(s.env, "RABBITMQ_DIST_PORT", std::to_string(port + 20000));
  SetEnv(s.env, "ERL_EPMD_ADDRESS", "127.0.0.1");
  SetEnv(s.env, "ERL_CRASH_DUMP", dir + "/erl_crash.dump");
  SetEnv(s.env, "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS",
         "-kernel inet_dist_use_interface {127,0,0,1}");
  // The script then execs erl, so our child is beam.smp itself.
  SetEnv(s.env, "RUNNING_UNDER_SYSTEMD", "true");
  s.cwd = dir;
  s.log_path = dir + "/log/console.log";
  s.port = port;
  s.host = ip;
  s.start_timeout_s = 90;
  return s;
}

ServiceSpec MotoSpec(const std::string& dir, int port, const std::vector<std::string>& base_env,
                     const std::string& ip) {
  ServiceSpec s;
  s.name = "moto_server";
  s.argv = {"moto_server", "-H", ip, "-p", std::to_string(port)};
  s.host = ip;
  s.env = base_env;
  s.cwd = dir;
  s.log_path = dir + "/moto.log";
  s.port = port;
  s.start_timeout_s = 30;
  return s;
}

}  // namespace asya::check::internal
