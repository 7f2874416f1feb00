#include "asya/local/supervisor.h"

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <map>
#include <set>

#include <fcntl.h>
#include <poll.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "asya/base/crew_layout.h"
#include "asya/base/duration.h"
#include "asya/base/env_names.h"
#include "asya/base/exit_codes.h"
#include "asya/base/redact.h"
#include "asya/base/runtime_files.h"
#include "asya/base/time_format.h"
#include "asya/local/apply.h"
#include "asya/local/autoscaler.h"
#include "asya/local/gateway.h"
#include "asya/local/launch.h"
#include "asya/local/spawn.h"
#include "asya/local/status.h"
#include "asya/transport/transport.h"

namespace asya::local {
namespace fs = std::filesystem;

namespace {

constexpr int64_t kTickMs = 100;
constexpr int64_t kStatusEveryMs = 1000;
constexpr int64_t kDepthEveryMs = 2000;
constexpr size_t kMaxEvents = 20;

int64_t SteadyMs() {
  return SteadyMillis(SystemClock().Now());
}

int64_t WallMs() {
  return UnixMillis(SystemClock().WallNow());
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

struct Proc {
  pid_t pid = 0;
  int out_fd = -1;
  std::string partial;
  int restarts = 0;
  int consecutive_crashes = 0;
  std::string last_exit;
  int64_t started_at = 0;
  int64_t next_start_at = 0;
  bool stop_requested = false;
  int64_t kill_at = 0;  // 0 = no kill scheduled

  [[nodiscard]] ProcessObservation Observe(int64_t now) const {
    return {pid, restarts, consecutive_crashes, last_exit, next_start_at - now};
  }
};

struct Replica {
  int index = 0;
  std::string socket_dir;
  Proc runtime;
  Proc sidecar;
  bool stopping = false;
  int64_t created_wall_ms = 0;
  bool runtime_ready = false;

  [[nodiscard]] ReplicaObservation Observe(int64_t now) const {
    return {index,          stopping, runtime_ready, runtime.Observe(now), sidecar.Observe(now),
            created_wall_ms};
  }
  [[nodiscard]] bool Ready() const { return ReplicaReady(Observe(0)); }
  [[nodiscard]] bool Alive() const { return runtime.pid > 0 || sidecar.pid > 0; }
};

struct Actor {
  actor::ActorSpec spec;
  AutoscalerState scaler;
  int desired = 0;
  int64_t next_scale_at = 0;
  int64_t next_depth_at = 0;
  std::vector<std::unique_ptr<Replica>> replicas;
  bool removing = false;
  int log_fd = -1;
  ActorStatus st;  // persistent parts: created, last scale, events, depths
  int last_ready = 0;
};

class SupervisorImpl final : public Supervisor {
 public:
  explicit SupervisorImpl(SupervisorSettings s) : s_(std::move(s)) {}
  ~SupervisorImpl() override;

  Status Init();
  Status InitGateway();
  Status ApplyTools(const std::vector<std::string>& paths);
  int Run() override;

 private:
  // Desired state.
  Status Apply();
  void AddActor(actor::ActorSpec spec);
  // Processes.
  bool Spawn(Actor& a, Replica& r, Proc& p, bool runtime);
  void StartRuntime(Actor& a, Replica& r);
  void StartSidecar(Actor& a, Replica& r);
  void Signal(Proc& p, int sig);
  void OnExit(pid_t pid, int wstatus);
  void ReadOutput(Proc& p, const std::string& tag, Actor* a, bool flush);
  void EmitLine(Actor* a, const std::string& tag, std::string_view line);
  // Loop.
  void Tick();
  void TickActor(Actor& a, int64_t now);
  void TickReplica(Actor& a, Replica& r, int64_t now);
  void BeginStop(Actor& a, Replica& r, int64_t now);
  void Scale(Actor& a, int64_t now);
  void FinishReplica(Actor& a, Replica& r);
  void Event(Actor& a, const std::string& type, const std::string& reason,
             const std::string& message);
  void WriteStatus();
  [[nodiscard]] bool AnyAlive() const;
  std::string ReplicaSocketDir(const std::string& actor, int index);

  SupervisorSettings s_;
  std::string state_dir_;
  MeshLaunchSettings launch_;
  transport::TransportPtr transport_;
  std::unique_ptr<GatewayProcess> gateway_;  // null without a gateway
  int gateway_log_fd_ = -1;
  int lock_fd_ = -1;
  int signal_fd_ = -1;
  std::map<std::string, std::unique_ptr<Actor>> actors_;
  std::map<pid_t, std::pair<Actor*, Proc*>> by_pid_;
  bool shutting_down_ = false;
  bool force_kill_ = false;
  int64_t generation_ = 0;
  std::string last_error_;
  int64_t started_wall_ms_ = 0;
  int64_t last_status_at_ = 0;
  bool status_dirty_ = true;
};

SupervisorImpl::~SupervisorImpl() {
  gateway_.reset();
  if (gateway_log_fd_ >= 0) {
    ::close(gateway_log_fd_);
  }
  for (auto& [name, a] : actors_) {
    if (a->log_fd >= 0) {
      ::close(a->log_fd);
    }
  }
  if (signal_fd_ >= 0) {
    ::close(signal_fd_);
  }
  if (lock_fd_ >= 0) {
    ::unlink(PidPath(state_dir_).c_str());
    ::close(lock_fd_);
  }
}

Status SupervisorImpl::Init() {
  std::error_code ec;
  fs::create_directories(s_.state_dir, ec);
  state_dir_ = fs::absolute(s_.state_dir, ec).lexically_normal().string();
  if (!state_dir_.empty() && state_dir_.back() == '/') {
    state_dir_.pop_back();
  }
  for (const char* sub : {"logs", "run", crew_layout::kResultsDir, crew_layout::kErrorsDir}) {
    fs::create_directories(state_dir_ + "/" + sub, ec);
    if (ec) {
      return MakeError(ErrorCode::kUnavailable,
                       "cannot create " + state_dir_ + "/" + sub + ": " + ec.message());
    }
  }
  lock_fd_ = ::open(LockPath(state_dir_).c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (lock_fd_ < 0 || ::flock(lock_fd_, LOCK_EX | LOCK_NB) != 0) {
    return MakeError(ErrorCode::kAlreadyExists,
                     "another asya up is already running on " + state_dir_);
  }
  if (auto w = WriteFileAtomic(PidPath(state_dir_), std::to_string(::getpid()) + "\n"); !w) {
    return w;
  }
  if (!s_.make_transport) {
    return MakeError(ErrorCode::kInvalidArgument, "SupervisorSettings.make_transport is not set");
  }
  auto t = s_.make_transport();
  if (!t) {
    return Unexpected(t.error());
  }
  transport_ = std::move(*t);
  sigset_t set;
  sigemptyset(&set);
  for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGCHLD}) {
    sigaddset(&set, sig);
  }
  signal_fd_ = ::signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
  if (signal_fd_ < 0) {
    return MakeError(ErrorCode::kInternal, std::string("signalfd: ") + std::strerror(errno));
  }
  started_wall_ms_ = WallMs();
  launch_ = {state_dir_,     s_.transport_kind, s_.sqlite_path,
             s_.sidecar_bin, s_.python_runtime, s_.base_env};
  if (!s_.gateway_bin.empty()) {
    ASYA_RETURN_IF_ERROR(InitGateway());
  }
  return Ok();
}

Status SupervisorImpl::InitGateway() {
  ASYA_ASSIGN_OR_RETURN(int port, PickLoopbackPort(s_.gateway_port));
  GatewayLaunchSettings g;
  g.bin = s_.gateway_bin;
  g.state_dir = state_dir_;
  g.port = port;
  g.token = NewCallbackToken();
  g.transport_kind = s_.transport_kind;
  g.sqlite_path = s_.sqlite_path;
  g.base_env = s_.base_env;
  launch_.gateway_url = GatewayUrl(port);
  launch_.gateway_token = g.token;
  gateway_log_fd_ = ::open(LogPath(state_dir_, "gateway").c_str(),
                           O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  gateway_ =
      std::make_unique<GatewayProcess>(std::move(g), s_.restart_backoff_base,
                                       s_.restart_backoff_max, [this](const std::string& line) {
                                         std::string out = "[gateway] " + line + "\n";
                                         if (s_.echo_logs) {
                                           (void)!::write(1, out.data(), out.size());
                                         }
                                         if (gateway_log_fd_ >= 0) {
                                           (void)!::write(gateway_log_fd_, out.data(), out.size());
                                         }
                                       });
  return Ok();
}

Status SupervisorImpl::ApplyTools(const std::vector<std::string>& paths) {
  ASYA_ASSIGN_OR_RETURN(auto docs, CollectToolsDocuments(paths));
  ASYA_RETURN_IF_ERROR(CheckToolsDocuments(docs));
  std::string fingerprint;
  for (const auto& d : docs) {
    fingerprint += d.source + ":" + std::to_string(d.first_line) + "\n" + d.text + "\n";
  }
  ASYA_ASSIGN_OR_RETURN(std::string dir, WriteToolsDirectory(state_dir_, docs));
  gateway_->SetTools(dir, fingerprint);
  return Ok();
}

std::string SupervisorImpl::ReplicaSocketDir(const std::string& actor, int index) {
  std::string dir = PreferredSocketDir(state_dir_, actor, index);
  if (dir.empty()) {
    char tmpl[] = "/tmp/asya-XXXXXX";  // a short private directory instead
    if (::mkdtemp(tmpl) != nullptr) {
      return tmpl;
    }
    dir = state_dir_ + "/run/" + actor + "-" + std::to_string(index);
  }
  std::error_code ec;
  fs::create_directories(dir, ec);
  return dir;
}

Status SupervisorImpl::Apply() {
  ASYA_ASSIGN_OR_RETURN(DesiredState desired, ReadDesired(state_dir_));
  generation_ = desired.generation;
  auto loaded = actor::LoadManifests(desired.paths);
  if (!loaded) {
    return Unexpected(loaded.error());
  }
  for (const auto& w : loaded->warnings) {
    EmitLine(nullptr, "asya", "warning: " + w);
  }
  if (gateway_) {
    ASYA_RETURN_IF_ERROR(ApplyTools(desired.paths));
  }
  std::vector<actor::ActorSpec> specs = CrewActors(state_dir_, s_.crew_bin);
  for (auto& a : loaded->actors) {
    specs.push_back(std::move(a));
  }
  std::vector<RunningActor> running;
  for (const auto& [name, a] : actors_) {
    running.push_back({name, a->spec.Fingerprint(), a->removing});
  }
  const ApplyPlan plan = PlanApply(running, specs, desired.prune);
  const int64_t now = SteadyMs();
  for (const ActorChange& c : plan.changes) {
    actor::ActorSpec& spec = specs[c.spec_index];
    if (c.kind == ActorChange::Kind::kAdd) {
      AddActor(std::move(spec));
      continue;
    }
    Actor& a = *actors_.at(spec.name);
    if (c.redeclared) {
      a.removing = false;
      Event(a, "Normal", "Added", "actor declared again");
    }
    if (c.kind == ActorChange::Kind::kUpdate) {
      a.spec = std::move(spec);
      a.scaler = AutoscalerState{};
      for (auto& r : a.replicas) {
        BeginStop(a, *r, now);  // replaced by replicas with the new spec
      }
      a.next_scale_at = 0;
      a.next_depth_at = 0;
      Event(a, "Normal", "Updated", "manifest changed; replacing replicas");
    } else {
      a.spec.source = spec.source;
    }
  }
  for (const auto& name : plan.removed) {
    Actor& a = *actors_.at(name);
    a.removing = true;
    for (auto& r : a.replicas) {
      BeginStop(a, *r, now);
    }
    Event(a, "Normal", "Removed", "actor no longer declared; stopping (queue kept)");
  }
  status_dirty_ = true;
  return Ok();
}

void SupervisorImpl::AddActor(actor::ActorSpec spec) {
  auto a = std::make_unique<Actor>();
  a->spec = std::move(spec);
  a->st.created_ms = WallMs();
  a->log_fd = ::open(LogPath(state_dir_, a->spec.name).c_str(),
                     O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  auto created = transport_->CreateQueue(transport::QueueName(a->spec.name));
  Actor& ref = *a;
  actors_[ref.spec.name] = std::move(a);
  if (!created) {
    Event(ref, "Warning", "QueueError", "cannot create queue: " + created.error().message);
  } else {
    Event(ref, "Normal", "Added",
          "queue " + transport::QueueName(ref.spec.name) + " ready (from " +
              (ref.spec.source.empty() ? "asya up" : ref.spec.source) + ")");
  }
}

bool SupervisorImpl::Spawn(Actor& a, Replica& r, Proc& p, bool runtime) {
  LaunchSpec launch = runtime ? RuntimeLaunchSpec(a.spec, launch_, r.socket_dir)
                              : SidecarLaunchSpec(a.spec, launch_, r.socket_dir);
  for (const auto& e : launch.env) {  // the manifest's secrets stay out of logs and status
    const size_t eq = e.find('=');
    RegisterEnvSecret(std::string_view(e).substr(0, eq),
                      eq == std::string::npos ? "" : std::string_view(e).substr(eq + 1));
  }
  const ExecArgs exec = MakeExecArgs(launch.argv, std::move(launch.env));

  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) {
    EmitLine(&a, "asya", std::string("pipe: ") + std::strerror(errno));
    return false;
  }
  const pid_t parent = ::getpid();
  pid_t pid = ::fork();
  if (pid < 0) {
    ::close(fds[0]);
    ::close(fds[1]);
    EmitLine(&a, "asya", std::string("fork: ") + std::strerror(errno));
    return false;
  }
  if (pid == 0) {
    ExecChild(exec, launch.cwd.c_str(), fds[1], parent);
  }
  ::setpgid(pid, pid);
  ::close(fds[1]);
  ::fcntl(fds[0], F_SETFL, O_NONBLOCK);
  if (p.out_fd >= 0) {
    ::close(p.out_fd);
  }
  p.pid = pid;
  p.out_fd = fds[0];
  p.partial.clear();
  p.started_at = SteadyMs();
  p.stop_requested = false;
  p.kill_at = 0;
  by_pid_[pid] = {&a, &p};
  std::string cmd;
  for (const auto& s : exec.argv_strings) {
    cmd += (cmd.empty() ? "" : " ") + s;
  }
  EmitLine(&a, a.spec.name + "/" + std::to_string(r.index),
           std::string("asya: started ") + (runtime ? "runtime" : "sidecar") + " pid " +
               std::to_string(pid) + ": " + cmd);
  return true;
}

void SupervisorImpl::StartRuntime(Actor& a, Replica& r) {
  std::error_code ec;
  fs::remove(r.socket_dir + "/" + runtime_files::kReadyName, ec);
  fs::remove(r.socket_dir + "/" + runtime_files::kSocketName, ec);
  fs::remove(r.socket_dir + "/" + runtime_files::kExitName, ec);
  r.runtime_ready = false;
  Spawn(a, r, r.runtime, /*runtime=*/true);
}

void SupervisorImpl::StartSidecar(Actor& a, Replica& r) {
  Spawn(a, r, r.sidecar, false);
}

void SupervisorImpl::Signal(Proc& p, int sig) {
  if (p.pid > 0) {
    // The process group: also the handler's own children. The process itself only when it left
    // its group: a second SIGTERM makes the sidecar and the runtime give up draining (exit 1).
    const bool leader = ::getpgid(p.pid) == p.pid;
    ::kill(-p.pid, sig);
    if (!leader) {
      ::kill(p.pid, sig);
    }
  }
}

void SupervisorImpl::EmitLine(Actor* a, const std::string& tag, std::string_view line) {
  std::string out = "[" + tag + "] ";
  out += RedactSecrets(line);  // every child's output passes here (asya/base/redact.h)
  out += '\n';
  if (s_.echo_logs || a == nullptr) {
    (void)!::write(1, out.data(), out.size());
  }
  if (a != nullptr && a->log_fd >= 0) {
    (void)!::write(a->log_fd, out.data(), out.size());
  }
}

void SupervisorImpl::ReadOutput(Proc& p, const std::string& tag, Actor* a, bool flush) {
  if (p.out_fd < 0) {
    return;
  }
  char buf[16384];
  while (true) {
    ssize_t n = ::read(p.out_fd, buf, sizeof(buf));
    if (n > 0) {
      p.partial.append(buf, static_cast<size_t>(n));
      size_t start = 0;
      size_t nl;
      while ((nl = p.partial.find('\n', start)) != std::string::npos) {
        EmitLine(a, tag, std::string_view(p.partial).substr(start, nl - start));
        start = nl + 1;
      }
      p.partial.erase(0, start);
      if (p.partial.size() > 65536) {
        EmitLine(a, tag, p.partial);
        p.partial.clear();
      }
      continue;
    }
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
      ::close(p.out_fd);
      p.out_fd = -1;
      flush = true;
    }
    break;
  }
  if (flush && !p.partial.empty()) {
    EmitLine(a, tag, p.partial);
    p.partial.clear();
  }
}

void SupervisorImpl::Event(Actor& a, const std::string& type, const std::string& reason,
                           const std::string& message) {
  a.st.events.push_back({WallMs(), type, reason, RedactSecrets(message)});
  if (a.st.events.size() > kMaxEvents) {
    a.st.events.erase(a.st.events.begin());
  }
  EmitLine(&a, a.spec.name, "asya: " + reason + ": " + message);
  status_dirty_ = true;
}

void SupervisorImpl::OnExit(pid_t pid, int wstatus) {
  auto it = by_pid_.find(pid);
  if (it == by_pid_.end()) {
    return;
  }
  auto [a, p] = it->second;
  by_pid_.erase(it);
  // Which replica / role?
  Replica* rep = nullptr;
  for (auto& r : a->replicas) {
    if (&r->runtime == p || &r->sidecar == p) {
      rep = r.get();
    }
  }
  const bool is_runtime = rep != nullptr && &rep->runtime == p;
  const std::string tag = a->spec.name + "/" + (rep ? std::to_string(rep->index) : "?");
  ReadOutput(*p, tag, a, /*flush=*/true);
  p->pid = 0;
  p->kill_at = 0;
  p->last_exit = DescribeExit(wstatus);
  if (is_runtime) {
    // For the sidecar: the message in flight failed because the runtime died, and how.
    std::string how = p->last_exit;
    if (WIFSIGNALED(wstatus)) {
      if (const char* abbrev = ::sigabbrev_np(WTERMSIG(wstatus)); abbrev != nullptr) {
        how += std::string(" (SIG") + abbrev + ")";
      }
    }
    (void)WriteFileAtomic(rep->socket_dir + "/" + runtime_files::kExitName, how + "\n");
  }
  status_dirty_ = true;
  const int64_t now = SteadyMs();
  const char* role = is_runtime ? "runtime" : "sidecar";
  if (p->stop_requested || rep == nullptr || rep->stopping || shutting_down_) {
    EmitLine(a, tag, std::string("asya: ") + role + " stopped (" + p->last_exit + ")");
    p->stop_requested = false;
    return;
  }
  p->restarts++;
  if (is_runtime && WIFEXITED(wstatus) &&
      WEXITSTATUS(wstatus) == exit_code::kRuntimeHandlerTimeout) {
    // The runtime stops itself after a handler overran its deadline: restart it at once.
    p->next_start_at = now;
    Event(*a, "Warning", "RuntimeRestarted",
          "replica " + std::to_string(rep->index) +
              ": runtime exited after a handler timeout (exit 3); restarting");
  } else {
    // Kubelet resets the back-off after a container ran long enough.
    if (now - p->started_at > 60 * s_.restart_backoff_base.count()) {
      p->consecutive_crashes = 0;
    }
    p->consecutive_crashes++;
    int64_t backoff = RestartBackoffMs(p->consecutive_crashes, s_.restart_backoff_base.count(),
                                       s_.restart_backoff_max.count());
    p->next_start_at = now + backoff;
    Event(*a, "Warning", "Crashed",
          "replica " + std::to_string(rep->index) + ": " + role + " " + p->last_exit +
              " (restart " + std::to_string(p->restarts) + ", back-off " +
              FormatGoDuration(Millis(backoff)) + ")");
  }
  if (is_runtime && rep->sidecar.pid > 0) {
    // No runtime: stop consuming until it is ready again (the sidecar requeues what it holds).
    rep->sidecar.stop_requested = true;
    Signal(rep->sidecar, SIGTERM);
    rep->sidecar.kill_at = now + int64_t{a->spec.graceful_shutdown_s} * 1000;
  }
  rep->runtime_ready = is_runtime ? false : rep->runtime_ready;
}

void SupervisorImpl::BeginStop(Actor& a, Replica& r, int64_t now) {
  if (r.stopping) {
    return;
  }
  r.stopping = true;
  if (r.sidecar.pid > 0) {
    r.sidecar.stop_requested = true;
    Signal(r.sidecar, SIGTERM);
    r.sidecar.kill_at = now + int64_t{a.spec.graceful_shutdown_s} * 1000;
  }
  status_dirty_ = true;
}

void SupervisorImpl::FinishReplica(Actor& a, Replica& r) {
  ReadOutput(r.runtime, a.spec.name + "/" + std::to_string(r.index), &a, true);
  ReadOutput(r.sidecar, a.spec.name + "/" + std::to_string(r.index), &a, true);
  for (Proc* p : {&r.runtime, &r.sidecar}) {
    if (p->out_fd >= 0) {
      ::close(p->out_fd);
      p->out_fd = -1;
    }
  }
  std::error_code ec;
  fs::remove_all(r.socket_dir, ec);
}

void SupervisorImpl::TickReplica(Actor& a, Replica& r, int64_t now) {
  if (force_kill_) {
    Signal(r.sidecar, SIGKILL);
    Signal(r.runtime, SIGKILL);
    return;
  }
  for (Proc* p : {&r.sidecar, &r.runtime}) {
    if (p->pid > 0 && p->kill_at > 0 && now >= p->kill_at) {
      EmitLine(&a, a.spec.name + "/" + std::to_string(r.index),
               "asya: grace period over; killing pid " + std::to_string(p->pid));
      Signal(*p, SIGKILL);
      p->kill_at = 0;
    }
  }
  if (r.stopping) {
    // Sidecar first (it drains and requeues), then the runtime.
    if (r.sidecar.pid == 0 && r.runtime.pid > 0 && !r.runtime.stop_requested) {
      r.runtime.stop_requested = true;
      Signal(r.runtime, SIGTERM);
      r.runtime.kill_at = now + s_.runtime_stop_grace.count();
    }
    return;
  }
  if (r.runtime.pid > 0 && !r.runtime_ready) {
    r.runtime_ready = ::access((r.socket_dir + "/" + runtime_files::kReadyName).c_str(), F_OK) == 0;
    if (r.runtime_ready) {
      status_dirty_ = true;
    }
  }
  if (r.runtime.pid > 0 && r.runtime_ready &&
      now - r.runtime.started_at > 60 * s_.restart_backoff_base.count()) {
    r.runtime.consecutive_crashes = 0;
  }
  if (r.runtime.pid == 0 && now >= r.runtime.next_start_at) {
    StartRuntime(a, r);
    status_dirty_ = true;
  }
  if (r.runtime.pid > 0 && r.runtime_ready && r.sidecar.pid == 0 &&
      now >= r.sidecar.next_start_at && (!gateway_ || gateway_->SidecarsMayStart(now))) {
    StartSidecar(a, r);
    status_dirty_ = true;
  }
  if (r.sidecar.pid > 0 && now - r.sidecar.started_at > 60 * s_.restart_backoff_base.count()) {
    r.sidecar.consecutive_crashes = 0;
  }
}

void SupervisorImpl::Scale(Actor& a, int64_t now) {
  int current = 0;
  for (auto& r : a.replicas) {
    current += r->stopping ? 0 : 1;
  }
  AutoscalerInput in;
  in.scaling = a.spec.scaling;
  in.workload_replicas = a.spec.workload_replicas;
  in.current = current;
  in.ready_messages = a.st.queued;
  in.inflight_messages = a.st.processing;
  in.now_ms = now;
  int desired = a.removing || shutting_down_ ? 0 : DesiredReplicas(in, a.scaler);
  if (desired != a.desired) {
    Event(a, "Normal", desired > a.desired ? "ScaledUp" : "ScaledDown",
          "desired replicas " + std::to_string(a.desired) + " -> " + std::to_string(desired) +
              " (queue: " + std::to_string(a.st.queued) + " ready, " +
              std::to_string(a.st.processing) + " in flight)");
    a.desired = desired;
  }
  // Start missing replicas at the lowest free index; stop the highest ones.
  while (current < a.desired) {
    std::set<int> used;
    for (auto& r : a.replicas) {
      used.insert(r->index);
    }
    int idx = 0;
    while (used.count(idx) != 0) {
      ++idx;
    }
    auto r = std::make_unique<Replica>();
    r->index = idx;
    r->socket_dir = ReplicaSocketDir(a.spec.name, idx);
    if (::chmod(r->socket_dir.c_str(), 0700) != 0) {  // DESIGN §4 (6): the directory is the guard
      Event(a, "Warning", "SocketDir",
            "cannot make " + r->socket_dir + " private (0700): " + std::strerror(errno));
    }
    r->created_wall_ms = WallMs();
    a.replicas.push_back(std::move(r));
    ++current;
  }
  while (current > a.desired) {
    Replica* victim = nullptr;
    for (auto& r : a.replicas) {
      if (!r->stopping && (victim == nullptr || r->index > victim->index)) {
        victim = r.get();
      }
    }
    if (victim == nullptr) {
      break;
    }
    BeginStop(a, *victim, now);
    --current;
  }
}

void SupervisorImpl::TickActor(Actor& a, int64_t now) {
  if (now >= a.next_depth_at) {  // also while draining: `asya down` shows what is in flight
    auto d = transport_->Depth(transport::QueueName(a.spec.name));
    a.st.transport_ready = d.has_value();
    if (d && d->exact) {  // a recovering queue's 0 is not "empty": keep the last known depth
      a.st.queued = d->ready;
      a.st.processing = d->inflight;
    }
    if (auto dl = transport_->Depth(transport::DlqName(a.spec.name)); dl) {
      a.st.dlq = dl->ready + dl->inflight;
    }
    a.next_depth_at =
        now + std::min<int64_t>(kDepthEveryMs, a.spec.scaling.polling_interval_s * 1000);
    status_dirty_ = true;
  }
  if (now >= a.next_scale_at || shutting_down_ || a.removing) {
    Scale(a, now);
    a.next_scale_at = now + int64_t{a.spec.scaling.polling_interval_s} * 1000;
  }
  for (auto& r : a.replicas) {
    TickReplica(a, *r, now);
  }
  // Drop replicas whose processes are gone.
  for (auto it = a.replicas.begin(); it != a.replicas.end();) {
    Replica& r = **it;
    if (r.stopping && !r.Alive()) {
      FinishReplica(a, r);
      it = a.replicas.erase(it);
      status_dirty_ = true;
    } else {
      ++it;
    }
  }
  int ready = 0;
  for (auto& r : a.replicas) {
    ready += r->Ready() ? 1 : 0;
  }
  if (ready != a.last_ready) {
    a.st.last_scale_ms = WallMs();
    a.st.last_scale_direction = ready > a.last_ready ? "up" : "down";
    a.last_ready = ready;
    status_dirty_ = true;
  }
}

void SupervisorImpl::Tick() {
  const int64_t now = SteadyMs();
  for (auto it = actors_.begin(); it != actors_.end();) {
    Actor& a = *it->second;
    TickActor(a, now);
    if (a.removing && a.replicas.empty()) {
      if (a.log_fd >= 0) {
        ::close(a.log_fd);
      }
      it = actors_.erase(it);
      status_dirty_ = true;
    } else {
      ++it;
    }
  }
}

bool SupervisorImpl::AnyAlive() const {
  for (const auto& [name, a] : actors_) {
    for (const auto& r : a->replicas) {
      if (r->Alive()) {
        return true;
      }
    }
  }
  return false;
}

void SupervisorImpl::WriteStatus() {
  MeshStatus ms;
  ms.pid = ::getpid();
  ms.generation = generation_;
  ms.transport = s_.transport_kind;
  ms.state_dir = state_dir_;
  ms.started_ms = started_wall_ms_;
  ms.updated_ms = WallMs();
  ms.stopping = shutting_down_;
  ms.last_error = RedactSecrets(last_error_);
  const int64_t now = SteadyMs();
  for (const auto& [name, ap] : actors_) {
    const Actor& a = *ap;
    ActorStatus st = a.st;
    const actor::ActorSpec& spec = a.spec;
    st.name = spec.name;
    st.source = spec.source;
    st.crew = spec.is_crew;
    st.handler = spec.is_crew ? "asya-crew" : spec.RuntimeEnv(env_name::kHandler);
    st.handler_mode = spec.is_crew ? "envelope" : spec.RuntimeEnv(env_name::kHandlerMode);
    st.command = RuntimeCommandLine(spec, s_.python_runtime);
    st.workload_kind = spec.workload_kind;
    st.workload_replicas = spec.workload_replicas;
    st.scaling_present = spec.scaling.present;
    st.scaling_enabled = spec.scaling.enabled;
    st.min_replicas = spec.scaling.min_replicas;
    st.max_replicas = spec.scaling.max_replicas;
    st.polling_interval_s = spec.scaling.polling_interval_s;
    st.cooldown_period_s = spec.scaling.cooldown_period_s;
    st.queue_length = spec.scaling.queue_length;
    st.processing_timeout_s = spec.processing_timeout_s;
    {
      // The policy in force: what the sidecar's launch spec sets, manifest env included.
      const LaunchSpec sidecar = SidecarLaunchSpec(spec, launch_, "");
      st.policy.runtime_timeout = EnvValue(sidecar.env, env_name::kRuntimeTimeout);
      st.policy.retry_max_attempts = EnvValue(sidecar.env, "ASYA_RETRY_MAX_ATTEMPTS");
      st.policy.retry_backoff = EnvValue(sidecar.env, "ASYA_RETRY_BACKOFF");
      st.policy.retry_max_backoff = EnvValue(sidecar.env, "ASYA_RETRY_MAX_BACKOFF");
      st.policy.retry_non_retryable = EnvValue(sidecar.env, "ASYA_RETRY_NON_RETRYABLE");
      st.policy.max_deliveries = EnvValue(sidecar.env, "ASYA_MAX_DELIVERIES");
    }
    st.desired = a.desired;
    std::vector<ReplicaObservation> replicas;
    for (const auto& r : a.replicas) {
      replicas.push_back(r->Observe(now));
    }
    SetReplicas(st, replicas);
    st.status = ComputeStatus(st, WallMs());
    ms.actors.push_back(std::move(st));
  }
  (void)WriteFileAtomic(StatusPath(state_dir_), EncodeMeshStatus(ms));
  last_status_at_ = now;
  status_dirty_ = false;
}

int SupervisorImpl::Run() {
  if (auto st = Apply(); !st) {
    EmitLine(nullptr, "asya", "error: " + st.error().message);
    last_error_ = st.error().message;
    WriteStatus();
    return 1;
  }
  EmitLine(nullptr, "asya",
           "mesh up: " + std::to_string(actors_.size()) + " actors, transport " +
               s_.transport_kind + ", state " + state_dir_ + " (Ctrl-C to stop)");
  Tick();
  WriteStatus();
  while (true) {
    std::vector<pollfd> fds;
    std::vector<std::tuple<Actor*, Replica*, Proc*>> owners;
    fds.push_back({signal_fd_, POLLIN, 0});
    owners.emplace_back(nullptr, nullptr, nullptr);
    for (auto& [name, a] : actors_) {
      for (auto& r : a->replicas) {
        for (Proc* p : {&r->runtime, &r->sidecar}) {
          if (p->out_fd >= 0) {
            fds.push_back({p->out_fd, POLLIN, 0});
            owners.emplace_back(a.get(), r.get(), p);
          }
        }
      }
    }
    const size_t gateway_index = fds.size();
    if (gateway_ && gateway_->out_fd() >= 0) {
      fds.push_back({gateway_->out_fd(), POLLIN, 0});
      owners.emplace_back(nullptr, nullptr, nullptr);
    }
    int n = ::poll(fds.data(), fds.size(), static_cast<int>(kTickMs));
    if (n < 0 && errno != EINTR) {
      EmitLine(nullptr, "asya", std::string("poll: ") + std::strerror(errno));
    }
    if (n > 0) {
      for (size_t i = 1; i < fds.size(); ++i) {
        if (i == gateway_index && fds[i].revents != 0) {
          gateway_->ReadOutput(false);
        } else if (fds[i].revents != 0) {
          auto [a, r, p] = owners[i];
          ReadOutput(*p, a->spec.name + "/" + std::to_string(r->index), a, false);
        }
      }
      if (fds[0].revents & POLLIN) {
        signalfd_siginfo si;
        while (::read(signal_fd_, &si, sizeof(si)) == static_cast<ssize_t>(sizeof(si))) {
          if (si.ssi_signo == SIGINT || si.ssi_signo == SIGTERM) {
            if (shutting_down_) {
              EmitLine(nullptr, "asya", "second stop signal: killing every process now");
              force_kill_ = true;
            } else {
              EmitLine(nullptr, "asya", "stopping: draining sidecars, then runtimes");
              shutting_down_ = true;
            }
            status_dirty_ = true;
          } else if (si.ssi_signo == SIGHUP && !shutting_down_) {
            if (auto st = Apply(); !st) {
              last_error_ = st.error().message;
              EmitLine(nullptr, "asya", "reload failed, keeping the running mesh: " + last_error_);
            } else {
              last_error_.clear();
              EmitLine(nullptr, "asya",
                       "applied desired state generation " + std::to_string(generation_));
            }
            status_dirty_ = true;
          }
        }
      }
    }
    // Reap every exited child (SIGCHLD may coalesce).
    int wstatus = 0;
    pid_t pid;
    while ((pid = ::waitpid(-1, &wstatus, WNOHANG)) > 0) {
      if (!gateway_ || !gateway_->OnExit(pid, wstatus, SteadyMs())) {
        OnExit(pid, wstatus);
      }
    }
    Tick();
    const int64_t now = SteadyMs();
    if (gateway_) {
      // Stopped last: the sidecars' final reports must still reach it.
      gateway_->Tick(now, shutting_down_ && !AnyAlive(), force_kill_);
    }
    if (status_dirty_ || now - last_status_at_ >= kStatusEveryMs) {
      WriteStatus();
    }
    if (shutting_down_ && !AnyAlive() && !(gateway_ && gateway_->Alive())) {
      break;
    }
  }
  // What stays queued, for `asya down`'s summary (status.json keeps it after the exit).
  for (auto& [name, a] : actors_) {
    if (auto d = transport_->Depth(transport::QueueName(name)); d) {
      a->st.queued = d->ready;
      a->st.processing = d->inflight;
    }
  }
  EmitLine(nullptr, "asya", "mesh stopped");
  WriteStatus();
  return 0;
}

}  // namespace

Result<std::unique_ptr<Supervisor>> Supervisor::Create(SupervisorSettings settings) {
  auto impl = std::make_unique<SupervisorImpl>(std::move(settings));
  if (auto st = impl->Init(); !st) {
    return Unexpected(st.error());
  }
  return std::unique_ptr<Supervisor>(std::move(impl));
}

void BlockSupervisorSignals() {
  sigset_t set;
  sigemptyset(&set);
  for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGCHLD}) {
    sigaddset(&set, sig);
  }
  ::pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

std::vector<actor::ActorSpec> CrewActors(const std::string& state_dir,
                                         const std::string& crew_bin) {
  std::vector<actor::ActorSpec> out;
  for (auto [name, dir] : {std::pair{"happy-end", crew_layout::kResultsDir},
                           std::pair{"error-end", crew_layout::kErrorsDir}}) {
    actor::ActorSpec a;
    a.name = name;
    a.is_crew = true;
    a.directory = state_dir;
    a.transport = "local";
    a.workload_replicas = 1;
    a.local_command = {crew_bin};
    a.runtime_env = {{env_name::kHandlerMode, "envelope"},
                     {env_name::kCrewDir, state_dir},
                     {env_name::kCrewPrefix, crew_layout::PrefixOf(dir)},
                     {env_name::kRuntimeConcurrency, "8"}};
    // Every envelope of the mesh ends here: take up to 8 at a time (one receive transaction).
    a.sidecar_env = {{env_name::kSidecarConcurrency, "8"}};
    out.push_back(std::move(a));
  }
  return out;
}

std::string StatusPath(const std::string& state_dir) {
  return state_dir + "/status.json";
}
std::string DesiredPath(const std::string& state_dir) {
  return state_dir + "/desired.json";
}
std::string PidPath(const std::string& state_dir) {
  return state_dir + "/supervisor.pid";
}
std::string LockPath(const std::string& state_dir) {
  return state_dir + "/supervisor.lock";
}
std::string LogPath(const std::string& state_dir, const std::string& actor) {
  return state_dir + "/logs/" + actor + ".log";
}

int RunningSupervisorPid(const std::string& state_dir) {
  int fd = ::open(LockPath(state_dir).c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) {
    return 0;
  }
  bool held = ::flock(fd, LOCK_EX | LOCK_NB) != 0;
  ::close(fd);
  if (!held) {
    return 0;
  }
  auto text = ReadFile(PidPath(state_dir));
  if (!text) {
    return -1;  // running, pid unknown (just starting)
  }
  return std::atoi(text->c_str());
}

}  // namespace asya::local
