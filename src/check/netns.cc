#include "check/netns.h"

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <thread>

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <net/if.h>

#include "asya/local/spawn.h"

namespace asya::check::internal {

namespace {

constexpr char kTable[] = "asya_check";
constexpr char kNsIf[] = "veth0";
constexpr char kPath[] = "PATH=/usr/sbin:/usr/bin:/sbin:/bin";

std::string ReadLink(const std::string& path) {
  char buf[256];
  ssize_t n = ::readlink(path.c_str(), buf, sizeof buf - 1);
  return n > 0 ? std::string(buf, static_cast<size_t>(n)) : std::string();
}

// A /30 of 10.201.0.0/16 no local address falls in: {host ip, namespace ip}, or {"", ""}.
std::pair<std::string, std::string> FreeSubnet() {
  std::mt19937 rng(std::random_device{}());
  for (int attempt = 0; attempt < 100; ++attempt) {
    const uint32_t block = 0x0AC90000u | ((rng() % 16384u) << 2);  // 10.201.x.y/30
    bool used = false;
    ifaddrs* list = nullptr;
    if (::getifaddrs(&list) == 0) {
      for (ifaddrs* a = list; a != nullptr; a = a->ifa_next) {
        if (a->ifa_addr != nullptr && a->ifa_addr->sa_family == AF_INET) {
          uint32_t ip = ntohl(reinterpret_cast<sockaddr_in*>(a->ifa_addr)->sin_addr.s_addr);
          used = used || (ip & ~3u) == block;
        }
      }
      ::freeifaddrs(list);
    }
    if (!used) {
      auto text = [](uint32_t ip) {
        return std::to_string(ip >> 24) + "." + std::to_string((ip >> 16) & 255) + "." +
               std::to_string((ip >> 8) & 255) + "." + std::to_string(ip & 255);
      };
      return {text(block + 1), text(block + 2)};
    }
  }
  return {"", ""};
}

}  // namespace

bool TcpReachable(const std::string& ip, int port, int timeout_ms) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  if (::inet_pton(AF_INET, ip.c_str(), &addr.sin_addr) != 1) {
    return false;
  }
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) {
    return false;
  }
  bool ok = false;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) {
    ok = true;
  } else if (errno == EINPROGRESS) {
    pollfd p{fd, POLLOUT, 0};
    if (::poll(&p, 1, timeout_ms) == 1) {
      int err = 0;
      socklen_t len = sizeof err;
      ok = ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err == 0;
    }
  }
  ::close(fd);
  return ok;
}

int64_t RoundTripMs(int port, const std::string& hello, int timeout_ms) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    return -1;
  }
  const auto t0 = std::chrono::steady_clock::now();
  int64_t ms = -1;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
      ::send(fd, hello.data(), hello.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(hello.size())) {
    pollfd p{fd, POLLIN, 0};
    char c;
    if (::poll(&p, 1, timeout_ms) == 1 && ::recv(fd, &c, 1, 0) == 1) {
      ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                                 t0)
               .count();
    }
  }
  ::close(fd);
  return ms;
}

Result<std::unique_ptr<NetLab>> NetLab::Create() {
  std::unique_ptr<NetLab> lab(new NetLab());
  // The holder: a child in a new network namespace that only waits (and dies with us).
  int sync[2];
  if (::pipe2(sync, O_CLOEXEC) != 0) {
    return MakeError(ErrorCode::kUnavailable, std::string("pipe: ") + std::strerror(errno));
  }
  const pid_t parent = ::getpid();
  pid_t pid = ::fork();
  if (pid < 0) {
    ::close(sync[0]);
    ::close(sync[1]);
    return MakeError(ErrorCode::kUnavailable, std::string("fork: ") + std::strerror(errno));
  }
  if (pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) {
      ::_exit(1);
    }
    char c = ::unshare(CLONE_NEWNET) == 0 ? 'K' : 'E';
    (void)!::write(sync[1], &c, 1);
    if (c != 'K') {
      ::_exit(1);
    }
    while (true) {
      ::pause();
    }
  }
  ::close(sync[1]);
  lab->holder_ = pid;
  char c = 0;
  ssize_t n = ::read(sync[0], &c, 1);
  ::close(sync[0]);
  if (n != 1 || c != 'K') {
    return MakeError(ErrorCode::kPermissionDenied,
                     "cannot create a network namespace (unshare CLONE_NEWNET; needs root)");
  }
  const std::string ns_path = "/proc/" + std::to_string(pid) + "/ns/net";
  lab->fd_ = ::open(ns_path.c_str(), O_RDONLY | O_CLOEXEC);
  if (lab->fd_ < 0) {
    return MakeError(ErrorCode::kUnavailable,
                     "cannot open " + ns_path + ": " + std::string(std::strerror(errno)));
  }
  lab->ns_inode_ = ReadLink(ns_path);
  char hex[8];
  std::snprintf(hex, sizeof hex, "%02x", static_cast<unsigned>(std::random_device{}() & 255));
  lab->host_if_ = "ack" + std::to_string(parent) + "-" + hex;  // at most 3 + 7 + 3 = 13
  auto [hip, nip] = FreeSubnet();
  if (hip.empty()) {
    return MakeError(ErrorCode::kUnavailable, "no free /30 in 10.201.0.0/16 for the veth pair");
  }
  lab->host_ip_ = hip;
  lab->ns_ip_ = nip;
  const std::string h = lab->host_if_;
  ASYA_RETURN_IF_ERROR(lab->Tool(
      {"ip", "link", "add", h, "type", "veth", "peer", "name", kNsIf, "netns", std::to_string(pid)},
      false));
  ASYA_RETURN_IF_ERROR(lab->Tool({"ip", "addr", "add", hip + "/30", "dev", h}, false));
  ASYA_RETURN_IF_ERROR(lab->Tool({"ip", "link", "set", h, "up"}, false));
  ASYA_RETURN_IF_ERROR(lab->Tool({"ip", "link", "set", "lo", "up"}, true));
  ASYA_RETURN_IF_ERROR(lab->Tool({"ip", "addr", "add", nip + "/30", "dev", kNsIf}, true));
  ASYA_RETURN_IF_ERROR(lab->Tool({"ip", "link", "set", kNsIf, "up"}, true));
  ASYA_RETURN_IF_ERROR(lab->Tool({"nft", "add", "table", "inet", kTable}, true));
  ASYA_RETURN_IF_ERROR(lab->Tool({"nft", "add chain inet " + std::string(kTable) +
                                             " in { type filter hook input priority 0 ; }"},
                                 true));
  ASYA_RETURN_IF_ERROR(lab->Tool({"nft", "add chain inet " + std::string(kTable) +
                                             " out { type filter hook output priority 0 ; }"},
                                 true));
  // Both ends up: wait (briefly) until the host end reports carrier.
  for (int i = 0; i < 100; ++i) {
    std::FILE* f = std::fopen(("/sys/class/net/" + h + "/carrier").c_str(), "r");
    int carrier = 0;
    if (f != nullptr) {
      if (std::fscanf(f, "%d", &carrier) != 1) {
        carrier = 0;
      }
      std::fclose(f);
    }
    if (carrier == 1) {
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return lab;
}

Result<std::string> NetLab::Tool(const std::vector<std::string>& argv, bool inside) {
  int out[2];
  if (::pipe2(out, O_CLOEXEC) != 0) {
    return MakeError(ErrorCode::kUnavailable, std::string("pipe: ") + std::strerror(errno));
  }
  // An absolute path: execvpe searches the caller's PATH, which may lack the sbin directories.
  std::vector<std::string> args = argv;
  for (const char* dir : {"/usr/sbin/", "/sbin/", "/usr/bin/", "/bin/"}) {
    if (::access((dir + args[0]).c_str(), X_OK) == 0) {
      args[0] = dir + args[0];
      break;
    }
  }
  const local::ExecArgs exec = local::MakeExecArgs(args, {kPath});
  const pid_t parent = ::getpid();
  const int ns = inside ? fd_ : -1;
  pid_t pid = ::fork();
  if (pid < 0) {
    ::close(out[0]);
    ::close(out[1]);
    return MakeError(ErrorCode::kUnavailable, std::string("fork: ") + std::strerror(errno));
  }
  if (pid == 0) {
    if (ns >= 0 && ::setns(ns, CLONE_NEWNET) != 0) {
      ::_exit(126);
    }
    local::ExecChild(exec, "", out[1], parent);
  }
  ::close(out[1]);
  std::string text;
  char buf[1024];
  ssize_t n;
  while ((n = ::read(out[0], buf, sizeof buf)) > 0 || (n < 0 && errno == EINTR)) {
    if (n > 0) {
      text.append(buf, static_cast<size_t>(n));
    }
  }
  ::close(out[0]);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    std::string cmd;
    for (const auto& a : argv) {
      cmd += (cmd.empty() ? "" : " ") + a;
    }
    while (!text.empty() && text.back() == '\n') {
      text.pop_back();
    }
    return MakeError(ErrorCode::kUnavailable,
                     "'" + cmd + "'" + (inside ? " (in the namespace)" : "") + " failed: " + text);
  }
  return text;
}

Status NetLab::Partition() {
  return Loss(100);
}

Status NetLab::Loss(int percent) {
  ASYA_RETURN_IF_ERROR(Heal());
  const std::string t = std::string(" inet ") + kTable;
  const std::string cond =
      (percent >= 100 ? std::string() : "numgen random mod 100 < " + std::to_string(percent)) +
      " counter drop";
  ASYA_RETURN_IF_ERROR(
      Tool({"nft", "add rule" + t + " in iifname \"" + kNsIf + "\" " + cond}, true));
  ASYA_RETURN_IF_ERROR(
      Tool({"nft", "add rule" + t + " out oifname \"" + kNsIf + "\" " + cond}, true));
  return {};
}

Result<int64_t> NetLab::Heal() {
  const std::string t = std::string(" inet ") + kTable;
  ASYA_ASSIGN_OR_RETURN(std::string rules, Tool({"nft", "list table" + t}, true));
  int64_t dropped = 0;
  for (size_t at = rules.find("packets "); at != std::string::npos;
       at = rules.find("packets ", at + 8)) {
    dropped += std::atoll(rules.c_str() + at + 8);
  }
  ASYA_RETURN_IF_ERROR(Tool({"nft", "flush chain" + t + " in"}, true));
  ASYA_RETURN_IF_ERROR(Tool({"nft", "flush chain" + t + " out"}, true));
  return dropped;
}

NetLab::~NetLab() {
  Destroy();
}

void NetLab::Destroy() {
  if (holder_ <= 0) {
    return;
  }
  // Whatever still runs inside (a daemonised epmd): SIGKILL, or it keeps the namespace alive.
  if (!ns_inode_.empty()) {
    if (DIR* d = ::opendir("/proc")) {
      while (dirent* e = ::readdir(d)) {
        const pid_t pid = static_cast<pid_t>(std::atoi(e->d_name));
        if (pid > 0 && pid != holder_ &&
            ReadLink("/proc/" + std::string(e->d_name) + "/ns/net") == ns_inode_) {
          ::kill(pid, SIGKILL);
        }
      }
      ::closedir(d);
    }
  }
  ::kill(holder_, SIGKILL);
  while (::waitpid(holder_, nullptr, 0) < 0 && errno == EINTR) {
  }
  holder_ = 0;
  if (fd_ >= 0) {
    ::close(fd_);
    fd_ = -1;
  }
  // The kernel dismantles the namespace (and with it both ends of the veth pair) asynchronously.
  for (int i = 0; i < 100 && !host_if_.empty() && ::if_nametoindex(host_if_.c_str()) != 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  if (!host_if_.empty() && ::if_nametoindex(host_if_.c_str()) != 0) {
    (void)Tool({"ip", "link", "del", host_if_}, false);
  }
}

}  // namespace asya::check::internal
