#include "asya/local/gateway.h"

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <sstream>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "asya/actor/manifest.h"
#include "asya/base/env_names.h"
#include "asya/base/file.h"
#include "asya/base/state_dir.h"
#include "asya/base/transport_kinds.h"
#include "asya/gateway/tools_config.h"
#include "asya/local/autoscaler.h"
#include "asya/local/status.h"
#include "asya/local/spawn.h"

namespace asya::local {
namespace fs = std::filesystem;

namespace {

constexpr char kToolsDir[] = "gateway-tools";
constexpr char kDatabaseFile[] = "gateway.db";
constexpr char kLoopback[] = "127.0.0.1";
constexpr int64_t kProbeEveryMs = 200;
constexpr int64_t kStopGraceMs = 15'000;  // asya-gateway stops within 10 s
constexpr int64_t kSidecarWaitMs = 10'000;

std::vector<fs::path> InputFiles(const std::vector<std::string>& paths, Status& status) {
  std::vector<fs::path> files;
  for (const auto& p : paths) {
    std::error_code ec;
    if (fs::is_directory(p, ec)) {
      std::vector<fs::path> in_dir;
      for (const auto& e : fs::directory_iterator(p, ec)) {
        auto ext = e.path().extension().string();
        if (e.is_regular_file() && (ext == ".yaml" || ext == ".yml")) {
          in_dir.push_back(e.path());
        }
      }
      std::sort(in_dir.begin(), in_dir.end());
      files.insert(files.end(), in_dir.begin(), in_dir.end());
    } else if (fs::exists(p, ec)) {
      files.emplace_back(p);
    } else {
      status = MakeError(ErrorCode::kNotFound, p + ": no such file or directory");
      return {};
    }
  }
  return files;
}

// A line that starts a new YAML document at column 0: "---" alone or followed by a space/tab.
bool IsDocumentMarker(std::string_view line) {
  if (line.substr(0, 3) != "---") {
    return false;
  }
  return line.size() == 3 || line[3] == ' ' || line[3] == '\t' || line[3] == '\r';
}

struct Chunk {
  int first_line = 1;
  std::string text;
};

// The file's documents, split at "---" lines (and "..." end markers).
std::vector<Chunk> SplitDocuments(const std::string& text) {
  std::vector<Chunk> out(1);
  std::istringstream in(text);
  std::string line;
  int n = 0;
  while (std::getline(in, line)) {
    ++n;
    if (IsDocumentMarker(line) || line == "..." || line == "...\r") {
      out.push_back({n + 1, ""});
      continue;
    }
    out.back().text += line + "\n";
  }
  return out;
}

// The document padded with blank lines so that parser errors carry the file's line numbers.
std::string Padded(const ToolsDocument& d) {
  return std::string(static_cast<size_t>(std::max(0, d.first_line - 1)), '\n') + d.text;
}

std::string DescribeExit(int wstatus) {
  if (WIFEXITED(wstatus)) {
    return "exit " + std::to_string(WEXITSTATUS(wstatus));
  }
  if (WIFSIGNALED(wstatus)) {
    return "signal " + std::to_string(WTERMSIG(wstatus));
  }
  return "unknown";
}

}  // namespace

Result<std::vector<ToolsDocument>> CollectToolsDocuments(const std::vector<std::string>& paths) {
  Status status = Ok();
  std::vector<fs::path> files = InputFiles(paths, status);
  if (!status) {
    return Unexpected(status.error());
  }
  std::vector<ToolsDocument> out;
  for (const auto& f : files) {
    auto text = ReadFile(f.string());
    if (!text) {
      return MakeError(ErrorCode::kNotFound, f.string() + ": cannot read file");
    }
    // Cheap filter: only files that mention a top-level `tools:` key are parsed here.
    if (text->rfind("tools:", 0) != 0 && text->find("\ntools:") == std::string::npos) {
      continue;
    }
    ASYA_ASSIGN_OR_RETURN(auto docs, actor::ParseYamlDocuments(*text, f.string()));
    size_t wanted = std::count_if(docs.begin(), docs.end(), [](const nlohmann::json& d) {
      return actor::IsToolsDocument(d);
    });
    if (wanted == 0) {
      continue;
    }
    size_t found = 0;
    for (auto& chunk : SplitDocuments(*text)) {
      auto parsed = actor::ParseYamlDocuments(chunk.text, f.string());
      if (parsed && parsed->size() == 1 && actor::IsToolsDocument(parsed->front())) {
        out.push_back({f.string(), chunk.first_line, std::move(chunk.text)});
        ++found;
      }
    }
    if (found != wanted) {
      return MakeError(ErrorCode::kInvalidArgument,
                       f.string() +
                           ": cannot separate the gateway tools document from the other "
                           "documents of this file; put it in a file of its own");
    }
  }
  return out;
}

Status CheckToolsDocuments(const std::vector<ToolsDocument>& docs) {
  std::string errors;
  std::map<std::string, std::string> seen;  // tool name -> where
  for (const auto& d : docs) {
    auto tools = gateway::ParseToolsConfig(Padded(d), d.source);
    if (!tools) {
      errors += (errors.empty() ? "" : "\n") + tools.error().message;
      continue;
    }
    for (const auto& t : *tools) {
      auto [it, fresh] = seen.emplace(t.name, d.source);
      if (!fresh) {
        errors += (errors.empty() ? "" : "\n") + d.source + ": tool \"" + t.name +
                  "\" is already declared in " + it->second;
      }
    }
  }
  if (!errors.empty()) {
    return MakeError(ErrorCode::kInvalidArgument, errors);
  }
  return Ok();
}

Result<std::string> WriteToolsDirectory(const std::string& state_dir,
                                        const std::vector<ToolsDocument>& docs) {
  const std::string dir = state_dir + "/" + kToolsDir;
  std::error_code ec;
  fs::remove_all(dir, ec);
  if (docs.empty()) {
    return std::string();
  }
  fs::create_directories(dir, ec);
  if (ec) {
    return MakeError(ErrorCode::kUnavailable, "cannot create " + dir + ": " + ec.message());
  }
  for (size_t i = 0; i < docs.size(); ++i) {
    char name[32];
    std::snprintf(name, sizeof(name), "/%03zu.yaml", i + 1);
    // Line numbers stay those of the source file: the header replaces one padding line.
    std::string text = Padded(docs[i]);
    if (docs[i].first_line > 1) {
      text = "# from " + docs[i].source + "\n" + text.substr(1);
    }
    ASYA_RETURN_IF_ERROR(WriteFileAtomic(dir + name, text));
  }
  return dir;
}

std::string GatewayUrlPath(const std::string& state_dir) {
  return state_dir + "/" + state_dir::kGatewayUrlFile;
}

std::string GatewayUrl(int port) {
  return std::string("http://") + kLoopback + ":" + std::to_string(port);
}

Result<int> PickLoopbackPort(int wanted) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    return MakeError(ErrorCode::kUnavailable, std::string("socket: ") + std::strerror(errno));
  }
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(wanted));
  ::inet_pton(AF_INET, kLoopback, &addr.sin_addr);
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    int err = errno;
    ::close(fd);
    return MakeError(ErrorCode::kAlreadyExists, "cannot use 127.0.0.1:" + std::to_string(wanted) +
                                                    " for the gateway: " + std::strerror(err));
  }
  socklen_t len = sizeof(addr);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return static_cast<int>(ntohs(addr.sin_port));
}

std::string NewCallbackToken() {
  unsigned char bytes[16];
  size_t got = 0;
  while (got < sizeof(bytes)) {
    ssize_t n = ::getrandom(bytes + got, sizeof(bytes) - got, 0);
    if (n <= 0) {
      std::random_device rd;  // fallback; getrandom does not fail on Linux >= 3.17
      for (; got < sizeof(bytes); ++got) {
        bytes[got] = static_cast<unsigned char>(rd());
      }
      break;
    }
    got += static_cast<size_t>(n);
  }
  static const char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned char b : bytes) {
    out += kHex[b >> 4];
    out += kHex[b & 15];
  }
  return out;
}

LaunchSpec GatewayLaunchSpec(const GatewayLaunchSettings& s) {
  LaunchSpec out;
  out.argv = {s.bin};
  out.cwd = s.state_dir;
  out.env = s.base_env;
  auto& env = out.env;
  SetEnvValue(env, "ASYA_GATEWAY_ADDR", kLoopback);
  SetEnvValue(env, "ASYA_GATEWAY_PORT", std::to_string(s.port));
  SetEnvValue(env, "ASYA_DATABASE_URL", "sqlite://" + s.state_dir + "/" + kDatabaseFile);
  env.erase(
      std::remove_if(env.begin(), env.end(),
                     [](const std::string& e) { return e.rfind("ASYA_CONFIG_PATH=", 0) == 0; }),
      env.end());
  if (!s.tools_dir.empty()) {
    SetEnvValue(env, "ASYA_CONFIG_PATH", s.tools_dir);
  }
  SetEnvValue(env, env_name::kGatewayToken, s.token);
  SetEnvValue(env, env_name::kTransport, s.transport_kind);
  if (s.transport_kind == transport_kind::kSqlite) {
    SetEnvValue(env, env_name::kSqlitePath, s.sqlite_path);
  }
  return out;
}

bool GatewayHealthy(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    return false;
  }
  timeval tv{0, 300'000};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  ::inet_pton(AF_INET, kLoopback, &addr.sin_addr);
  bool ok = false;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0) {
    std::string req = "GET /health HTTP/1.1\r\nHost: 127.0.0.1:" + std::to_string(port) +
                      "\r\nConnection: close\r\n\r\n";
    if (::send(fd, req.data(), req.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(req.size())) {
      char buf[64];
      std::string head;
      while (head.size() < 12) {
        ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
        if (n <= 0) {
          break;
        }
        head.append(buf, static_cast<size_t>(n));
      }
      ok = head.rfind("HTTP/1.1 200", 0) == 0 || head.rfind("HTTP/1.0 200", 0) == 0;
    }
  }
  ::close(fd);
  return ok;
}

GatewayProcess::GatewayProcess(GatewayLaunchSettings launch, std::chrono::milliseconds backoff_base,
                               std::chrono::milliseconds backoff_max, LineSink emit)
    : launch_(std::move(launch)),
      backoff_base_(backoff_base),
      backoff_max_(backoff_max),
      emit_(std::move(emit)),
      url_(GatewayUrl(launch_.port)) {
  std::error_code ec;
  fs::remove(GatewayUrlPath(launch_.state_dir), ec);  // a previous run's
}

GatewayProcess::~GatewayProcess() {
  if (out_fd_ >= 0) {
    ::close(out_fd_);
  }
  std::error_code ec;
  fs::remove(GatewayUrlPath(launch_.state_dir), ec);
}

void GatewayProcess::Emit(const std::string& line) {
  emit_(line);
}

void GatewayProcess::SetTools(const std::string& tools_dir, const std::string& fingerprint) {
  if (tools_dir == launch_.tools_dir && fingerprint == fingerprint_) {
    return;
  }
  const bool first = fingerprint_.empty() && launch_.tools_dir.empty() && pid_ == 0;
  launch_.tools_dir = tools_dir;
  fingerprint_ = fingerprint;
  if (!first && pid_ > 0 && !stopping_) {
    Emit("asya: tools changed; restarting the gateway");
    restart_requested_ = true;
    ::kill(pid_, SIGTERM);
    kill_at_ = 0;
  }
}

void GatewayProcess::Start(int64_t now_ms) {
  LaunchSpec spec = GatewayLaunchSpec(launch_);
  const ExecArgs exec = MakeExecArgs(spec.argv, spec.env);
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) {
    Emit(std::string("asya: pipe: ") + std::strerror(errno));
    next_start_at_ = now_ms + backoff_base_.count();
    return;
  }
  const pid_t parent = ::getpid();
  pid_t pid = ::fork();
  if (pid < 0) {
    ::close(fds[0]);
    ::close(fds[1]);
    Emit(std::string("asya: fork: ") + std::strerror(errno));
    next_start_at_ = now_ms + backoff_base_.count();
    return;
  }
  if (pid == 0) {
    ExecChild(exec, spec.cwd.c_str(), fds[1], parent);
  }
  ::setpgid(pid, pid);
  ::close(fds[1]);
  ::fcntl(fds[0], F_SETFL, O_NONBLOCK);
  if (out_fd_ >= 0) {
    ::close(out_fd_);
  }
  out_fd_ = fds[0];
  partial_.clear();
  pid_ = pid;
  started_at_ = now_ms;
  if (first_start_at_ < 0) {
    first_start_at_ = now_ms;
  }
  next_probe_at_ = now_ms;
  healthy_ = false;
  Emit("asya: started gateway pid " + std::to_string(pid) + ": " + launch_.bin + " on " + url_ +
       (launch_.tools_dir.empty() ? " (no tools)" : " (tools: " + launch_.tools_dir + ")"));
}

void GatewayProcess::ReadOutput(bool flush) {
  if (out_fd_ < 0) {
    return;
  }
  char buf[16384];
  while (true) {
    ssize_t n = ::read(out_fd_, buf, sizeof(buf));
    if (n > 0) {
      partial_.append(buf, static_cast<size_t>(n));
      size_t start = 0;
      size_t nl;
      while ((nl = partial_.find('\n', start)) != std::string::npos) {
        Emit(partial_.substr(start, nl - start));
        start = nl + 1;
      }
      partial_.erase(0, start);
      continue;
    }
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
      ::close(out_fd_);
      out_fd_ = -1;
      flush = true;
    }
    break;
  }
  if (flush && !partial_.empty()) {
    Emit(partial_);
    partial_.clear();
  }
}

bool GatewayProcess::OnExit(pid_t pid, int wstatus, int64_t now_ms) {
  if (pid != pid_ || pid_ == 0) {
    return false;
  }
  ReadOutput(/*flush=*/true);
  pid_ = 0;
  kill_at_ = 0;
  healthy_ = false;
  std::error_code ec;
  fs::remove(GatewayUrlPath(launch_.state_dir), ec);
  const std::string how = DescribeExit(wstatus);
  if (stopping_) {
    Emit("asya: gateway stopped (" + how + ")");
    return true;
  }
  if (restart_requested_) {
    restart_requested_ = false;
    next_start_at_ = now_ms;
    return true;
  }
  if (now_ms - started_at_ > 60 * backoff_base_.count()) {
    crashes_ = 0;
  }
  ++crashes_;
  const int64_t backoff = RestartBackoffMs(crashes_, backoff_base_.count(), backoff_max_.count());
  next_start_at_ = now_ms + backoff;
  Emit("asya: gateway " + how + " (restart " + std::to_string(crashes_) + " in " +
       std::to_string(backoff / 1000) + "s; output in logs/gateway.log)");
  return true;
}

bool GatewayProcess::SidecarsMayStart(int64_t now_ms) const {
  return ever_ready_ || stopping_ ||
         (first_start_at_ >= 0 && now_ms - first_start_at_ >= kSidecarWaitMs);
}

void GatewayProcess::Tick(int64_t now_ms, bool stop, bool force_kill) {
  if (force_kill && pid_ > 0) {
    ::kill(-pid_, SIGKILL);
    ::kill(pid_, SIGKILL);
    return;
  }
  if (stop && !stopping_) {
    stopping_ = true;
    if (pid_ > 0) {
      ::kill(pid_, SIGTERM);
      kill_at_ = now_ms + kStopGraceMs;
    }
  }
  if (pid_ > 0 && kill_at_ > 0 && now_ms >= kill_at_) {
    Emit("asya: gateway grace period over; killing pid " + std::to_string(pid_));
    ::kill(-pid_, SIGKILL);
    ::kill(pid_, SIGKILL);
    kill_at_ = 0;
  }
  if (stopping_) {
    return;
  }
  if (pid_ == 0 && now_ms >= next_start_at_) {
    Start(now_ms);
  }
  if (pid_ > 0 && !healthy_ && now_ms >= next_probe_at_) {
    next_probe_at_ = now_ms + kProbeEveryMs;
    if (GatewayHealthy(launch_.port)) {
      healthy_ = true;
      ever_ready_ = true;
      if (auto w = WriteFileAtomic(GatewayUrlPath(launch_.state_dir), url_ + "\n"); !w) {
        Emit("asya: cannot write gateway.url: " + w.error().message);
      }
      Emit("asya: gateway ready at " + url_);
    }
  }
  if (pid_ > 0 && healthy_ && now_ms - started_at_ > 60 * backoff_base_.count()) {
    crashes_ = 0;
  }
}

}  // namespace asya::local
