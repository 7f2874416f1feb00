// asya check: see include/asya/check/check.h and README.md.
#include "asya/check/check.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_set>

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "asya/base/clock.h"
#include "asya/check/accounting.h"
#include "asya/check/schedule.h"
#include "asya/local/send.h"
#include "asya/local/status.h"
#include "asya/local/supervisor.h"
#include "check/netns.h"
#include "check/pipeline.h"
#include "check/proxy.h"
#include "check/service.h"

namespace asya::check {

namespace fs = std::filesystem;
using internal::Service;

// ---- Fault names ----

namespace {

struct FaultNameEntry {
  FaultKind kind;
  std::string_view name;
  bool documented;
};
constexpr FaultNameEntry kFaultNames[] = {
    {FaultKind::kKillSidecar, "kill-sidecar", true},
    {FaultKind::kKillRuntime, "kill-runtime", true},
    {FaultKind::kStopRuntime, "stop-runtime", true},
    {FaultKind::kKillAll, "kill-all", true},
    {FaultKind::kDiskFull, "disk-full", true},
    {FaultKind::kBrokerKill, "broker-kill", true},
    {FaultKind::kBrokerRestart, "broker-restart", true},
    {FaultKind::kPartition, "partition", true},
    {FaultKind::kPartitionLong, "partition-long", true},
    {FaultKind::kDelay, "delay", true},
    {FaultKind::kLoss, "loss", true},
    {FaultKind::kDrop, "drop", false},
};

}  // namespace

bool IsNetworkFault(FaultKind kind) {
  return kind == FaultKind::kPartition || kind == FaultKind::kPartitionLong ||
         kind == FaultKind::kDelay || kind == FaultKind::kLoss;
}

std::string_view FaultName(FaultKind kind) {
  for (const auto& e : kFaultNames) {
    if (e.kind == kind) {
      return e.name;
    }
  }
  return "?";
}

Result<std::vector<FaultKind>> ParseFaults(std::string_view list) {
  std::vector<FaultKind> out;
  if (list.empty() || list == "none") {
    return out;
  }
  size_t start = 0;
  while (start <= list.size()) {
    size_t comma = list.find(',', start);
    std::string_view name = list.substr(
        start, comma == std::string_view::npos ? std::string_view::npos : comma - start);
    bool found = false;
    for (const auto& e : kFaultNames) {
      if (e.name == name) {
        if (std::find(out.begin(), out.end(), e.kind) == out.end()) {
          out.push_back(e.kind);
        }
        found = true;
      }
    }
    if (!found) {
      std::string known;
      for (const auto& e : kFaultNames) {
        if (e.documented) {
          known += (known.empty() ? "" : ", ") + std::string(e.name);
        }
      }
      return MakeError(ErrorCode::kInvalidArgument,
                       "unknown fault '" + std::string(name) + "' (known: " + known + ")");
    }
    if (comma == std::string_view::npos) {
      break;
    }
    start = comma + 1;
  }
  return out;
}

Status CheckFaultsFit(const std::vector<FaultKind>& faults, std::string_view transport) {
  for (FaultKind f : faults) {
    if ((f == FaultKind::kBrokerKill || f == FaultKind::kBrokerRestart) &&
        transport != "rabbitmq") {
      return MakeError(ErrorCode::kInvalidArgument,
                       "fault " + std::string(FaultName(f)) + " needs --transport rabbitmq");
    }
    if (f == FaultKind::kDiskFull && transport != "sqlite") {
      return MakeError(ErrorCode::kInvalidArgument, "fault disk-full needs --transport sqlite");
    }
    if (IsNetworkFault(f) && transport != "rabbitmq" && transport != "sqs") {
      return MakeError(ErrorCode::kInvalidArgument,
                       "fault " + std::string(FaultName(f)) +
                           " needs --transport rabbitmq or sqs (sqlite has no network)");
    }
  }
  return {};
}

// ---- The run ----

namespace {

double SecondsSince(Clock::MonoTime t0) {
  return std::chrono::duration<double>(SystemClock().Now() - t0).count();
}

struct Target {
  std::string actor;
  int replica = 0;
  bool runtime = false;  // else sidecar
  int pid = 0;
  bool crew = false;
};

// The parent pid of `pid` ("" when gone), to make sure we signal a child of our supervisor.
int ParentOf(int pid) {
  auto text = local::ReadFile("/proc/" + std::to_string(pid) + "/stat");
  if (!text) {
    return 0;
  }
  size_t close = text->rfind(')');
  if (close == std::string::npos) {
    return 0;
  }
  int ppid = 0;
  char state = 0;
  if (std::sscanf(text->c_str() + close + 1, " %c %d", &state, &ppid) != 2 || state == 'Z') {
    return 0;
  }
  return ppid;
}

struct ProcStat {
  int64_t rss_kb = 0;
  int64_t fds = 0;
};

ProcStat StatOf(int pid) {
  ProcStat s;
  auto text = local::ReadFile("/proc/" + std::to_string(pid) + "/status");
  if (text) {
    size_t at = text->find("VmRSS:");
    if (at != std::string::npos) {
      s.rss_kb = std::atoll(text->c_str() + at + 6);
    }
  }
  std::error_code ec;
  for (auto it = fs::directory_iterator("/proc/" + std::to_string(pid) + "/fd", ec);
       !ec && it != fs::directory_iterator(); it.increment(ec)) {
    ++s.fds;
  }
  return s;
}

// Lists the crew's directory tree <root>/<timestamp>/<actor>/<id>.json incrementally: timestamp
// directories already holding a file are not listed again (progress); Full() lists everything.
class CrewScanner {
 public:
  explicit CrewScanner(std::string root) : root_(std::move(root)) {}

  // Adds new arrivals to `seen` (field `field` of Arrivals); returns how many.
  int64_t ScanNew(Seen& seen, int Arrivals::*field) { return Scan(seen, field, true); }
  int64_t Full(Seen& seen, int Arrivals::*field) { return Scan(seen, field, false); }

 private:
  static std::vector<std::string> List(const std::string& dir) {
    std::vector<std::string> names;
    DIR* d = ::opendir(dir.c_str());
    if (d == nullptr) {
      return names;
    }
    while (dirent* e = ::readdir(d)) {
      std::string_view n = e->d_name;
      if (n != "." && n != "..") {
        names.emplace_back(n);
      }
    }
    ::closedir(d);
    return names;
  }

  int64_t Scan(Seen& seen, int Arrivals::*field, bool incremental) {
    int64_t added = 0;
    for (const std::string& ts : List(root_)) {
      if (incremental && done_.count(ts) != 0) {
        continue;
      }
      bool any = false;
      for (const std::string& actor : List(root_ + "/" + ts)) {
        for (const std::string& file : List(root_ + "/" + ts + "/" + actor)) {
          std::string id = IdOfCrewFile(file);
          if (!id.empty()) {
            ++(seen[id].*field);
            ++added;
            any = true;
          }
        }
      }
      if (incremental && any) {
        done_.insert(ts);
      }
    }
    return added;
  }

  std::string root_;
  std::unordered_set<std::string> done_;
};

class Runner {
 public:
  explicit Runner(const Options& o) : o_(o), out_(o.out) {}
  ~Runner() { Cleanup(); }

  Result<Outcome> Run();

 private:
  void Log(const char* fmt, ...) __attribute__((format(printf, 2, 3)));
  Status Prepare();
  Status StartNet();  // network faults: the namespace (and the delay proxy) for the broker
  Status StartBroker();
  void Heal(bool all);  // ends a network fault when due (or now when `all`)
  Status StartMesh();
  Status WaitReady();
  void Publisher();
  std::vector<Target> Targets();
  bool MeshReady();  // every actor has all its replicas ready (status.json)
  void Inject(const FaultEvent& e);
  void ContinueStopped(bool all);
  int64_t QueuedTotal();
  void Progress(int64_t arrivals);
  void DrainDlqs(Seen& seen);
  void PrintStats(const char* when, std::map<std::string, ProcStat>& into);
  void Cleanup();

  const Options& o_;
  std::FILE* out_;
  std::string work_;
  std::string state_;
  std::string prefix_;
  transport::TransportSettings settings_;
  std::unique_ptr<Service> broker_;
  std::unique_ptr<Service> moto_;
  std::unique_ptr<Service> mesh_;
  std::unique_ptr<internal::NetLab> net_;
  std::unique_ptr<internal::DelayProxy> proxy_;
  std::unique_ptr<Service> epmd_;
  int net_port_ = 0;         // the broker's (moto's) port inside the namespace
  std::string probe_hello_;  // sent through the proxy to show the delay (AMQP header / HTTP GET)
  double net_heal_at_ = -1;  // seconds since t0 when the network fault under way ends
  FaultKind net_kind_{};
  int64_t net_fault_no_ = 0;
  int64_t arrivals_ = 0;           // outputs seen so far (kept by the main loop)
  int64_t arrivals_at_net_ = -1;   // at the first scan after the fault began
  int64_t arrivals_at_half_ = -1;  // at the first scan after half of it
  double net_half_at_ = -1;
  std::vector<std::string> mesh_env_;
  transport::TransportPtr transport_;
  Clock::MonoTime t0_{};
  std::atomic<int64_t> published_{0};
  std::atomic<bool> stop_publisher_{false};
  std::atomic<int64_t> broker_epoch_{0};
  std::thread publisher_;
  std::mutex log_mu_;
  int64_t faults_ = 0;
  bool dropped_ = false;
  std::vector<std::pair<int, double>> stopped_;  // pid, SIGCONT at (seconds since t0)
  bool cleaned_ = false;
  bool made_work_ = false;
  bool mounted_ = false;
  double disk_free_at_ = -1;   // seconds since t0 when the filler goes (disk-full)
  double last_fault_end_ = 0;  // seconds since t0 when the last fault's effect ended
};

void Runner::Log(const char* fmt, ...) {
  std::lock_guard<std::mutex> lock(log_mu_);
  std::fprintf(out_, "[%7.1fs] ", SecondsSince(t0_));
  va_list ap;
  va_start(ap, fmt);
  std::vfprintf(out_, fmt, ap);
  va_end(ap);
  std::fputc('\n', out_);
  std::fflush(out_);
}

Status Runner::Prepare() {
  if (o_.work_dir.empty()) {
    // RAM first: the crew writes three directory levels per output, and removing 100,000s of
    // them from a loaded disk takes longer than the run.
    std::string tmpl = "/dev/shm/asya-check-XXXXXX";
    if (::mkdtemp(tmpl.data()) == nullptr) {
      tmpl = "/tmp/asya-check-XXXXXX";
      if (::mkdtemp(tmpl.data()) == nullptr) {
        return MakeError(ErrorCode::kUnavailable, "cannot create a work directory in /tmp");
      }
    }
    work_ = tmpl;
    made_work_ = true;
  } else {
    work_ = fs::absolute(o_.work_dir).string();
    std::error_code ec;
    fs::create_directories(work_, ec);
    if (ec) {
      return MakeError(ErrorCode::kUnavailable, "cannot create " + work_ + ": " + ec.message());
    }
  }
  state_ = work_ + "/state";
  std::error_code ec;
  fs::remove_all(state_, ec);
  fs::create_directories(work_ + "/pipeline", ec);
  if (std::find(o_.faults.begin(), o_.faults.end(), FaultKind::kDiskFull) != o_.faults.end()) {
    fs::create_directories(state_, ec);
    // Room for the run itself (the crew's files take a page each, plus the queue file): the
    // fault fills what is left; a tmpfs the run outgrows would be a permanent disk full.
    const int64_t mb = std::max<int64_t>(o_.tmpfs_mb, 64 + o_.envelopes * 2 * 16 / 1024);
    const std::string opts = "size=" + std::to_string(mb) + "m,mode=0755";
    if (::mount("tmpfs", state_.c_str(), "tmpfs", 0, opts.c_str()) != 0) {
      return MakeError(ErrorCode::kPermissionDenied, "disk-full: cannot mount a tmpfs on " +
                                                         state_ + ": " + std::strerror(errno) +
                                                         " (needs root)");
    }
    mounted_ = true;
    Log("state dir %s is a %lld MB tmpfs (disk-full)", state_.c_str(), static_cast<long long>(mb));
  }
  if (ec) {
    return MakeError(ErrorCode::kUnavailable, "cannot create " + work_ + ": " + ec.message());
  }
  internal::PipelineSettings ps;
  ps.replicas = o_.replicas;
  ps.concurrency = o_.concurrency;
  ASYA_RETURN_IF_ERROR(internal::WritePipeline(work_ + "/pipeline", ps));
  prefix_ = "chk" + std::to_string(o_.seed) + "n";
  settings_ = o_.transport;
  mesh_env_ = o_.base_env;
  // Messages held by a SIGKILLed sidecar come back after the visibility timeout; the default is
  // 2 x the runtime timeout, 10 min for the crew. 10 s keeps a run short (heartbeats every 3.3 s
  // keep long calls invisible; the pipeline's runtime timeout is 3 s).
  internal::SetEnv(mesh_env_, "ASYA_VISIBILITY_TIMEOUT", "10s");
  if (settings_.kind == "sqlite") {
    settings_.sqlite.path = state_ + "/queues.db";
  }
  return {};
}

Status Runner::StartNet() {
  FaultKind first{};
  bool any = false;
  bool delay = false;
  for (FaultKind f : o_.faults) {
    if (IsNetworkFault(f)) {
      first = any ? first : f;
      any = true;
      delay = delay || f == FaultKind::kDelay;
    }
  }
  if (!any) {
    return {};
  }
  const std::string name(FaultName(first));
  if (settings_.kind == "rabbitmq" && !o_.start_broker) {
    return MakeError(ErrorCode::kInvalidArgument,
                     "fault " + name +
                         " needs the broker asya check starts (unset ASYA_RABBITMQ_URL and "
                         "ASYA_RABBITMQ_HOST)");
  }
  if (settings_.kind == "sqs" && !settings_.sqs.endpoint.empty()) {
    return MakeError(ErrorCode::kInvalidArgument,
                     "fault " + name +
                         " needs the moto_server asya check starts (unset "
                         "ASYA_SQS_ENDPOINT, AWS_ENDPOINT_URL_SQS, AWS_ENDPOINT_URL)");
  }
  auto lab = internal::NetLab::Create();
  if (!lab) {
    return MakeError(lab.error().code, "fault " + name + ": " + lab.error().message);
  }
  net_ = std::move(*lab);
  net_port_ = settings_.kind == "rabbitmq" ? 5672 : 5000;
  Log("network namespace for the %s: veth %s %s <-> %s:%d (nftables table inet asya_check "
      "inside the namespace)",
      settings_.kind == "rabbitmq" ? "broker" : "moto_server", net_->host_if().c_str(),
      net_->host_ip().c_str(), net_->ns_ip().c_str(), net_port_);
  if (delay) {
    auto proxy = internal::DelayProxy::Start(net_->ns_ip(), net_port_);
    if (!proxy) {
      return Unexpected(proxy.error());
    }
    proxy_ = std::move(*proxy);
    probe_hello_ = settings_.kind == "rabbitmq" ? std::string("AMQP\0\0\x09\x01", 8)
                                                : std::string("GET / HTTP/1.0\r\n\r\n");
    Log("delay proxy: 127.0.0.1:%d -> %s:%d (the mesh connects through it)", proxy_->port(),
        net_->ns_ip().c_str(), net_port_);
  }
  return {};
}

Status Runner::StartBroker() {
  ASYA_RETURN_IF_ERROR(StartNet());
  // With network faults the broker listens inside its namespace; with `delay` the mesh reaches it
  // through the proxy (the management API, which only the checker uses, directly).
  std::string ip = net_ ? net_->ns_ip() : "127.0.0.1";
  std::string client_host = proxy_ ? "127.0.0.1" : ip;
  if (settings_.kind == "rabbitmq" && o_.start_broker) {
    int port = net_ ? net_port_ : internal::FreeRabbitPort();
    if (port == 0) {
      return MakeError(ErrorCode::kUnavailable, "no free port for the broker");
    }
    ASYA_ASSIGN_OR_RETURN(auto spec, internal::RabbitMqSpec(o_.rabbitmq_server, work_ + "/rabbitmq",
                                                            port, o_.base_env, true, ip));
    if (net_) {
      // Our own epmd in the namespace (a child that dies with us): the one the broker would
      // start is a daemon that would keep the namespace alive.
      internal::ServiceSpec epmd;
      epmd.name = "epmd";
      epmd.argv = {"epmd"};
      epmd.env = o_.base_env;
      internal::SetEnv(epmd.env, "ERL_EPMD_ADDRESS", "127.0.0.1");
      epmd.log_path = work_ + "/epmd.log";
      epmd.netns_fd = net_->fd();
      epmd_ = std::make_unique<Service>(std::move(epmd));
      ASYA_RETURN_IF_ERROR(epmd_->Start());
      SystemClock().SleepFor(std::chrono::milliseconds(300));
      spec.netns_fd = net_->fd();
    }
    broker_ = std::make_unique<Service>(std::move(spec));
    Log("starting rabbitmq-server on %s:%d (%s/rabbitmq)", ip.c_str(), port, work_.c_str());
    ASYA_RETURN_IF_ERROR(broker_->Start());
    const int client_port = proxy_ ? proxy_->port() : port;
    settings_.rabbitmq.url =
        "amqp://guest:guest@" + client_host + ":" + std::to_string(client_port) + "/";
    settings_.rabbitmq.management_url = "http://guest:guest@" + ip + ":" + std::to_string(port + 1);
    internal::SetEnv(mesh_env_, "ASYA_RABBITMQ_URL", settings_.rabbitmq.url);
    internal::SetEnv(mesh_env_, "ASYA_RABBITMQ_MGMT_URL", settings_.rabbitmq.management_url);
  }
  if (settings_.kind == "sqs" && settings_.sqs.endpoint.empty()) {
    int port = net_ ? net_port_ : internal::FreePort();
    auto spec = internal::MotoSpec(work_, port, o_.base_env, ip);
    if (net_) {
      spec.netns_fd = net_->fd();
    }
    moto_ = std::make_unique<Service>(std::move(spec));
    Log("starting moto_server on %s:%d", ip.c_str(), port);
    ASYA_RETURN_IF_ERROR(moto_->Start());
    settings_.sqs.endpoint =
        "http://" + client_host + ":" + std::to_string(proxy_ ? proxy_->port() : port);
    if (settings_.sqs.access_key_id.empty()) {
      settings_.sqs.access_key_id = "test";
      settings_.sqs.secret_access_key = "test";
    }
    internal::SetEnv(mesh_env_, "ASYA_SQS_ENDPOINT", settings_.sqs.endpoint);
    internal::SetEnv(mesh_env_, "AWS_ACCESS_KEY_ID", settings_.sqs.access_key_id);
    internal::SetEnv(mesh_env_, "AWS_SECRET_ACCESS_KEY", settings_.sqs.secret_access_key);
  }
  return {};
}

Status Runner::StartMesh() {
  internal::ServiceSpec spec;
  spec.name = "asya up";
  spec.argv = {o_.asya_bin,   "up",           work_ + "/pipeline", "--state-dir", state_,
               "--transport", settings_.kind, "--restart-backoff", "200ms",       "--no-gateway"};
  spec.env = mesh_env_;
  spec.cwd = work_;
  spec.log_path = work_ + "/up.log";
  mesh_ = std::make_unique<Service>(std::move(spec));
  Log("asya up %s/pipeline --transport %s (log: %s/up.log)", work_.c_str(), settings_.kind.c_str(),
      work_.c_str());
  ASYA_RETURN_IF_ERROR(mesh_->Start());
  return WaitReady();
}

Status Runner::WaitReady() {
  const auto until = SystemClock().Now() + std::chrono::seconds(180);
  while (true) {
    if (o_.interrupted != nullptr && o_.interrupted->load()) {
      Log("interrupted: accounting what arrived so far");
      break;
    }
    if (!mesh_->Running()) {
      return MakeError(ErrorCode::kUnavailable,
                       "asya up exited at start; " + work_ + "/up.log ends:\n" + mesh_->LogTail());
    }
    if (auto text = local::ReadFile(local::StatusPath(state_))) {
      if (auto st = local::DecodeMeshStatus(*text)) {
        bool ready = st->actors.size() == internal::AllActors().size();
        for (const auto& a : st->actors) {
          ready = ready && a.desired > 0 && a.ready == a.desired && a.total == a.desired;
        }
        if (ready) {
          return {};
        }
      }
    }
    if (SystemClock().Now() > until) {
      return MakeError(ErrorCode::kDeadlineExceeded,
                       "the check's mesh was not ready within 180 s; " + work_ + "/up.log ends:\n" +
                           mesh_->LogTail());
    }
    SystemClock().SleepFor(std::chrono::milliseconds(100));
  }
  return {};  // interrupted: account for what arrived
}

void Runner::Publisher() {
  auto t = transport::MakeTransport(settings_);
  if (!t) {
    Log("publisher: cannot open the transport: %s", t.error().message.c_str());
    return;
  }
  const auto route = internal::Route();
  const auto start = SystemClock().Now();
  const std::string queue = transport::QueueName(internal::kSplit);
  int failures = 0;
  for (int64_t i = 0; i < o_.envelopes && !stop_publisher_; ++i) {
    if (o_.rate > 0) {
      auto due = start + std::chrono::duration_cast<Clock::Duration>(
                             std::chrono::duration<double>(static_cast<double>(i) / o_.rate));
      auto now = SystemClock().Now();
      if (due > now) {
        SystemClock().SleepFor(due - now);
      }
    }
    const std::string body =
        local::BuildEnvelope(EnvelopeId(prefix_, i), route, local::NewTraceparent(),
                             "{\"n\":" + std::to_string(i) + "}");
    // Not published = try again (a broker fault may be under way); a publish that reached the
    // broker but whose confirm was lost shows up as a duplicate, which is what it is.
    while (!stop_publisher_) {
      auto st = (*t)->Publish(queue, body);
      if (st) {
        break;
      }
      if (++failures % 20 == 1) {
        Log("publisher: envelope %lld not published yet: %s", static_cast<long long>(i),
            st.error().message.c_str());
      }
      SystemClock().SleepFor(std::chrono::milliseconds(250));
    }
    published_ = i + 1;
  }
}

bool Runner::MeshReady() {
  auto text = local::ReadFile(local::StatusPath(state_));
  if (!text) {
    return false;
  }
  auto st = local::DecodeMeshStatus(*text);
  if (!st) {
    return false;
  }
  for (const auto& a : st->actors) {
    if (a.desired == 0 || a.ready < a.desired) {
      return false;
    }
  }
  return true;
}

std::vector<Target> Runner::Targets() {
  std::vector<Target> out;
  auto text = local::ReadFile(local::StatusPath(state_));
  if (!text) {
    return out;
  }
  auto st = local::DecodeMeshStatus(*text);
  if (!st) {
    return out;
  }
  for (const auto& a : st->actors) {
    for (const auto& r : a.replicas) {
      if (r.runtime_pid > 0 && ParentOf(r.runtime_pid) == st->pid) {
        out.push_back({a.name, r.index, true, r.runtime_pid, a.crew});
      }
      if (r.sidecar_pid > 0 && ParentOf(r.sidecar_pid) == st->pid) {
        out.push_back({a.name, r.index, false, r.sidecar_pid, a.crew});
      }
    }
  }
  return out;
}

void Runner::Inject(const FaultEvent& e) {
  const std::string name(FaultName(e.kind));
  auto pick_from = [&e](std::vector<Target> v) -> std::optional<Target> {
    if (v.empty()) {
      return std::nullopt;
    }
    return v[e.pick % v.size()];
  };
  auto targets = Targets();
  switch (e.kind) {
    case FaultKind::kKillSidecar:
    case FaultKind::kKillRuntime: {
      const bool runtime = e.kind == FaultKind::kKillRuntime;
      std::vector<Target> v;
      for (const auto& t : targets) {
        if (t.runtime == runtime) {
          v.push_back(t);
        }
      }
      auto t = pick_from(v);
      if (!t) {
        Log("fault %s: no %s running, skipped", name.c_str(), runtime ? "runtime" : "sidecar");
        return;
      }
      ::kill(t->pid, SIGKILL);
      ++faults_;
      Log("fault #%lld %s: SIGKILL %s/%d %s pid %d", static_cast<long long>(faults_), name.c_str(),
          t->actor.c_str(), t->replica, runtime ? "runtime" : "sidecar", t->pid);
      return;
    }
    case FaultKind::kStopRuntime: {
      std::vector<Target> v;
      for (const auto& t : targets) {
        bool already = std::any_of(stopped_.begin(), stopped_.end(),
                                   [&t](const auto& s) { return s.first == t.pid; });
        if (t.runtime && !t.crew && !already) {
          v.push_back(t);
        }
      }
      auto t = pick_from(v);
      if (!t) {
        Log("fault %s: no runtime to stop, skipped", name.c_str());
        return;
      }
      ::kill(t->pid, SIGSTOP);
      const double hold = internal::kRuntimeTimeoutS + 1.0;
      stopped_.emplace_back(t->pid, SecondsSince(t0_) + hold);
      ++faults_;
      Log("fault #%lld %s: SIGSTOP %s/%d runtime pid %d for %.0f s (its timeout is %d s)",
          static_cast<long long>(faults_), name.c_str(), t->actor.c_str(), t->replica, t->pid, hold,
          internal::kRuntimeTimeoutS);
      return;
    }
    case FaultKind::kKillAll: {
      if (targets.empty()) {
        Log("fault %s: no process running, skipped", name.c_str());
        return;
      }
      std::string pids;
      for (const auto& t : targets) {
        ::kill(t.pid, SIGKILL);
        pids += " " + std::to_string(t.pid);
      }
      ++faults_;
      Log("fault #%lld %s: SIGKILL of %zu processes:%s", static_cast<long long>(faults_),
          name.c_str(), targets.size(), pids.c_str());
      return;
    }
    case FaultKind::kDiskFull: {
      if (disk_free_at_ >= 0) {
        return;
      }
      // One big file, then small ones until ENOSPC: not a byte left for SQLite or the crew.
      const std::string filler = state_ + "/filler";
      int fd = ::open(filler.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
      if (fd < 0) {
        Log("fault %s: cannot create %s: %s", name.c_str(), filler.c_str(), std::strerror(errno));
        return;
      }
      struct statvfs vfs {};
      if (::fstatvfs(fd, &vfs) == 0) {
        (void)::posix_fallocate(fd, 0, static_cast<off_t>(vfs.f_bavail * vfs.f_frsize));
      }
      static const std::string kChunk(4096, 'x');
      while (::write(fd, kChunk.data(), kChunk.size()) > 0) {
      }
      ::close(fd);
      const double hold = 4.0;
      disk_free_at_ = SecondsSince(t0_) + hold;
      ++faults_;
      Log("fault #%lld %s: filled the state dir's tmpfs for %.0f s",
          static_cast<long long>(faults_), name.c_str(), hold);
      return;
    }
    case FaultKind::kBrokerKill:
    case FaultKind::kBrokerRestart: {
      if (!broker_) {
        Log("fault %s: the broker was not started by asya check, skipped", name.c_str());
        return;
      }
      ++faults_;
      const bool graceful = e.kind == FaultKind::kBrokerRestart;
      Log("fault #%lld %s: %s of rabbitmq-server pid %d", static_cast<long long>(faults_),
          name.c_str(), graceful ? "SIGTERM (graceful stop)" : "SIGKILL", broker_->pid());
      if (graceful) {
        broker_->Stop(60);
      } else {
        broker_->Kill();
      }
      ++broker_epoch_;
      if (auto st = broker_->Start(); !st) {
        Log("fault %s: the broker did not come back: %s", name.c_str(), st.error().message.c_str());
        return;
      }
      Log("fault #%lld %s: rabbitmq-server back, pid %d", static_cast<long long>(faults_),
          name.c_str(), broker_->pid());
      // Right after a restart the management API reports empty queues and the sidecars are
      // still reconnecting (5 s back-off): nothing may count as settled for a while.
      last_fault_end_ = SecondsSince(t0_) + 10;
      return;
    }
    case FaultKind::kPartition:
    case FaultKind::kPartitionLong:
    case FaultKind::kDelay:
    case FaultKind::kLoss: {
      if (!net_ || net_heal_at_ >= 0) {
        return;
      }
      const std::string where = net_->ns_ip() + ":" + std::to_string(net_port_);
      // How long each lasts: a short partition stays under the AMQP heartbeat timeout (10 s
      // heartbeat, dead after 2 missed), a long one outlasts it and the SQS client's 30 s
      // request timeout.
      double hold = 8;  // delay, loss
      std::string what;
      if (e.kind == FaultKind::kPartition || e.kind == FaultKind::kPartitionLong) {
        hold = e.kind == FaultKind::kPartition ? 4 : 35;
        if (auto st = net_->Partition(); !st) {
          Log("fault %s: %s", name.c_str(), st.error().message.c_str());
          return;
        }
        // From the host side the broker is gone: a connect is not even refused, it times out.
        const bool reachable = internal::TcpReachable(net_->ns_ip(), net_port_, 1000);
        char buf[200];
        std::snprintf(buf, sizeof buf, "broker cut off for %.1fs (host probe: %s %s)", hold,
                      where.c_str(), reachable ? "STILL REACHABLE" : "unreachable");
        what = buf;
      } else if (e.kind == FaultKind::kLoss) {
        const int percent = 5 + static_cast<int>(e.pick % 26);
        if (auto st = net_->Loss(percent); !st) {
          Log("fault %s: %s", name.c_str(), st.error().message.c_str());
          return;
        }
        char buf[200];
        std::snprintf(buf, sizeof buf, "%d%% of the packets to and from %s dropped for %.1fs",
                      percent, where.c_str(), hold);
        what = buf;
      } else {
        if (!proxy_) {
          return;
        }
        const int ms = 200 + static_cast<int>(e.pick % 1801);
        proxy_->SetDelay(std::chrono::milliseconds(ms));
        // A fresh connection's first answer comes back no sooner than twice the delay.
        const int64_t rtt = internal::RoundTripMs(proxy_->port(), probe_hello_, 4 * ms + 5000);
        char buf[200];
        std::snprintf(buf, sizeof buf,
                      "%d ms added each way for %.1fs (probe round trip through the proxy: %lld "
                      "ms)",
                      ms, hold, static_cast<long long>(rtt));
        what = buf;
      }
      ++faults_;
      net_kind_ = e.kind;
      net_fault_no_ = faults_;
      net_heal_at_ = SecondsSince(t0_) + hold;
      net_half_at_ = SecondsSince(t0_) + hold / 2;
      arrivals_at_net_ = -1;
      arrivals_at_half_ = -1;
      Log("fault #%lld %s: %s", static_cast<long long>(faults_), name.c_str(), what.c_str());
      return;
    }
    case FaultKind::kDrop: {
      if (dropped_) {
        return;
      }
      // The sink's sidecars are paused so that the next message into its queue waits there.
      std::vector<int> paused;
      for (const auto& t : targets) {
        if (t.actor == internal::kSink && !t.runtime) {
          ::kill(t.pid, SIGSTOP);
          paused.push_back(t.pid);
        }
      }
      transport::ReceiveOptions ro;
      ro.max_messages = 1;
      ro.wait = std::chrono::milliseconds(3000);
      ro.visibility = std::chrono::milliseconds(60'000);
      auto got = transport_->Receive(transport::QueueName(internal::kSink), ro);
      for (int pid : paused) {
        ::kill(pid, SIGCONT);
      }
      if (!got || got->empty()) {
        Log("fault %s: nothing in asya-%s yet", name.c_str(), internal::kSink);
        return;
      }
      std::string id = "?";
      if (auto j = nlohmann::json::parse((*got)[0].body, nullptr, false);
          j.is_object() && j.contains("id") && j["id"].is_string()) {
        id = j["id"].get<std::string>();
      }
      if (auto st = transport_->Ack((*got)[0]); !st) {
        Log("fault %s: ack failed: %s", name.c_str(), st.error().message.c_str());
        return;
      }
      dropped_ = true;
      ++faults_;
      Log("fault #%lld %s (test only): deleted %s from asya-%s", static_cast<long long>(faults_),
          name.c_str(), id.c_str(), internal::kSink);
      return;
    }
  }
}

void Runner::Heal(bool all) {
  if (net_heal_at_ < 0 || (!all && SecondsSince(t0_) < net_heal_at_)) {
    return;
  }
  net_heal_at_ = -1;
  const std::string name(FaultName(net_kind_));
  const std::string where = net_->ns_ip() + ":" + std::to_string(net_port_);
  // Outputs that arrived while the fault lasted, and in its second half (a partition's first
  // moments still see what was already past the broker).
  const int64_t outputs = arrivals_at_net_ < 0 ? 0 : arrivals_ - arrivals_at_net_;
  const int64_t late = arrivals_at_half_ < 0 ? 0 : arrivals_ - arrivals_at_half_;
  if (net_kind_ == FaultKind::kDelay) {
    proxy_->SetDelay(std::chrono::milliseconds(0));
    Log("fault #%lld %s: over, no delay (%lld outputs arrived meanwhile, %lld in its second half)",
        static_cast<long long>(net_fault_no_), name.c_str(), static_cast<long long>(outputs),
        static_cast<long long>(late));
  } else {
    auto dropped = net_->Heal();
    if (!dropped) {
      Log("fault #%lld %s: cannot heal: %s", static_cast<long long>(net_fault_no_), name.c_str(),
          dropped.error().message.c_str());
    }
    const bool reachable = internal::TcpReachable(net_->ns_ip(), net_port_, 3000);
    Log("fault #%lld %s: healed, %lld packets dropped, %lld outputs arrived meanwhile, %lld in "
        "its second half (host probe: %s %s)",
        static_cast<long long>(net_fault_no_), name.c_str(),
        static_cast<long long>(dropped ? *dropped : -1), static_cast<long long>(outputs),
        static_cast<long long>(late), where.c_str(), reachable ? "reachable" : "STILL UNREACHABLE");
  }
  // The mesh reconnects (back-off up to 5 s) and the management API catches up: nothing may
  // count as settled for a while.
  last_fault_end_ = SecondsSince(t0_) + 10;
}

void Runner::ContinueStopped(bool all) {
  Heal(all);
  const double now = SecondsSince(t0_);
  if (disk_free_at_ >= 0 && (all || now >= disk_free_at_)) {
    ::unlink((state_ + "/filler").c_str());
    disk_free_at_ = -1;
    Log("fault: the state dir has space again");
  }
  for (auto it = stopped_.begin(); it != stopped_.end();) {
    if (all || now >= it->second) {
      ::kill(it->first, SIGCONT);
      Log("fault: SIGCONT pid %d", it->first);
      it = stopped_.erase(it);
    } else {
      ++it;
    }
  }
}

int64_t Runner::QueuedTotal() {
  int64_t total = 0;
  for (const auto& actor : internal::AllActors()) {
    auto d = transport_->Depth(transport::QueueName(actor));
    if (!d || !d->exact) {
      return -1;  // unknown (broker down, or a queue still recovering): not settled
    }
    total += d->ready + std::max<int64_t>(d->inflight, 0);
  }
  return total;
}

void Runner::DrainDlqs(Seen& seen) {
  for (const auto& actor : internal::AllActors()) {
    const std::string dlq = transport::DlqName(actor);
    int64_t n = 0;
    while (true) {
      transport::ReceiveOptions ro;
      ro.max_messages = 10;
      ro.wait = std::chrono::milliseconds(300);
      ro.visibility = std::chrono::milliseconds(60'000);
      auto got = transport_->Receive(dlq, ro);
      if (!got || got->empty()) {
        break;
      }
      for (const auto& m : *got) {
        std::string id = "(unreadable)";
        if (auto j = nlohmann::json::parse(m.body, nullptr, false);
            j.is_object() && j.contains("id") && j["id"].is_string()) {
          id = j["id"].get<std::string>();
        }
        ++seen[id].dlq;
        ++n;
        (void)transport_->Ack(m);
      }
    }
    if (n > 0) {
      Log("%s: %lld dead-lettered message%s", dlq.c_str(), static_cast<long long>(n),
          n == 1 ? "" : "s");
    }
  }
}

void Runner::PrintStats(const char* when, std::map<std::string, ProcStat>& into) {
  auto targets = Targets();
  std::vector<std::pair<std::string, int>> procs;
  for (const auto& t : targets) {
    procs.emplace_back(
        t.actor + "/" + std::to_string(t.replica) + (t.runtime ? " runtime" : " sidecar"), t.pid);
  }
  if (mesh_ && mesh_->pid() > 0) {
    procs.emplace_back("asya up (supervisor)", mesh_->pid());
  }
  if (broker_ && broker_->pid() > 0) {
    procs.emplace_back("rabbitmq-server", broker_->pid());
  }
  std::sort(procs.begin(), procs.end());
  for (const auto& [label, pid] : procs) {
    ProcStat s = StatOf(pid);
    into[label] = s;
    Log("stats %s: %-28s pid %-7d rss %7lld kB  fds %4lld", when, label.c_str(), pid,
        static_cast<long long>(s.rss_kb), static_cast<long long>(s.fds));
  }
}

void Runner::Cleanup() {
  if (cleaned_) {
    return;
  }
  cleaned_ = true;
  stop_publisher_ = true;
  if (transport_) {
    transport_->Interrupt();
  }
  if (publisher_.joinable()) {
    publisher_.join();
  }
  ContinueStopped(true);
  if (mesh_) {
    mesh_->Stop(90);
  }
  transport_.reset();
  if (broker_) {
    broker_->Kill();
  }
  if (moto_) {
    moto_->Kill();
  }
  if (epmd_) {
    epmd_->Kill();
  }
  proxy_.reset();
  if (net_) {
    net_->Destroy();  // kills what runs inside; the veth pair and nftables table go with it
    net_.reset();
  }
  if (mounted_) {
    ::umount2(state_.c_str(), MNT_DETACH);
    mounted_ = false;
  }
  if (made_work_ && !o_.keep) {
    std::error_code ec;
    fs::remove_all(work_, ec);
  }
}

Result<Outcome> Runner::Run() {
  t0_ = SystemClock().Now();
  if (o_.envelopes <= 0) {
    return MakeError(ErrorCode::kInvalidArgument, "--envelopes must be at least 1");
  }
  ASYA_RETURN_IF_ERROR(CheckFaultsFit(o_.faults, o_.transport.kind));
  for (FaultKind f : o_.faults) {
    if (IsNetworkFault(f) && ::geteuid() != 0) {
      return MakeError(ErrorCode::kPermissionDenied,
                       "fault " + std::string(FaultName(f)) +
                           " needs root (it runs the broker in a network namespace joined by a "
                           "veth pair and drops packets with nftables)");
    }
  }
  ASYA_RETURN_IF_ERROR(Prepare());
  std::string fault_list;
  for (FaultKind f : o_.faults) {
    fault_list += (fault_list.empty() ? "" : ",") + std::string(FaultName(f));
  }
  Log("asya check: %lld envelopes, transport %s, faults %s, seed %llu, work dir %s",
      static_cast<long long>(o_.envelopes), o_.transport.kind.c_str(),
      fault_list.empty() ? "none" : fault_list.c_str(), static_cast<unsigned long long>(o_.seed),
      work_.c_str());
  ASYA_RETURN_IF_ERROR(StartBroker());
  ASYA_RETURN_IF_ERROR(StartMesh());
  ASYA_ASSIGN_OR_RETURN(transport_, transport::MakeTransport(settings_));
  Log("mesh ready: %s -> %s -> %s (fan-out 2, retries 5, ValueError non-retryable)",
      internal::kSplit, internal::kFlaky, internal::kSink);
  std::map<std::string, ProcStat> stats_start;
  std::map<std::string, ProcStat> stats_end;

  const auto run_start = SystemClock().Now();
  publisher_ = std::thread([this] { Publisher(); });
  Schedule schedule(o_.faults, o_.seed, o_.fault_interval_s);
  FaultEvent next = schedule.Next();
  const int64_t expected = ExpectedCount(o_.envelopes);
  Seen seen;
  CrewScanner happy(state_ + "/results");
  CrewScanner errors(state_ + "/errors");
  int64_t arrivals = 0;
  int64_t arrivals_at_last_fault = -1;
  int64_t last_arrivals = -1;
  double last_change = 0;
  double last_progress = 0;
  double last_scan = -1;
  double prev_progress_arrivals = 0;
  double fault_phase_end = -1;  // seconds since run_start when faults stopped
  bool complete = false;
  bool timed_out = false;
  while (true) {
    const double now = std::chrono::duration<double>(SystemClock().Now() - run_start).count();
    const bool all_published = published_ == o_.envelopes;
    const bool faults_on = fault_phase_end < 0;
    // A fault waits until the mesh is ready again and at least one output arrived since the
    // previous one, so faults never starve the pipeline (a restarted Python runtime takes seconds
    // on a loaded machine; faults hit a working mesh, like a Jepsen nemesis between healing).
    if (faults_on && !schedule.empty() && now >= next.at_s && net_heal_at_ < 0 &&
        (next.kind == FaultKind::kDrop || (arrivals > arrivals_at_last_fault && MeshReady()))) {
      Inject(next);
      arrivals_at_last_fault = arrivals;
      next = schedule.Next();
    }
    ContinueStopped(false);
    if (now - last_scan >= 0.5) {
      last_scan = now;
      arrivals += happy.ScanNew(seen, &Arrivals::happy);
      arrivals += errors.ScanNew(seen, &Arrivals::error);
      arrivals_ = arrivals;
      if (net_heal_at_ >= 0 && arrivals_at_net_ < 0) {
        arrivals_at_net_ = arrivals;
      }
      if (net_heal_at_ >= 0 && arrivals_at_half_ < 0 && SecondsSince(t0_) >= net_half_at_) {
        arrivals_at_half_ = arrivals;
      }
      if (arrivals != last_arrivals) {
        last_arrivals = arrivals;
        last_change = now;
      }
    }
    if (now - last_progress >= o_.progress_interval_s) {
      const double rate = (static_cast<double>(arrivals) - prev_progress_arrivals) /
                          std::max(0.001, now - last_progress);
      prev_progress_arrivals = static_cast<double>(arrivals);
      last_progress = now;
      Log("progress: published %lld/%lld, outputs %lld/%lld (%.0f/s), faults %lld",
          static_cast<long long>(published_.load()), static_cast<long long>(o_.envelopes),
          static_cast<long long>(arrivals), static_cast<long long>(expected), rate,
          static_cast<long long>(faults_));
    }
    // Process sizes after a warm-up (a tenth of the envelopes published), and at the end.
    if (o_.process_stats && stats_start.empty() && published_ * 10 >= o_.envelopes) {
      PrintStats("start", stats_start);
    }
    // Every expected output arrived somewhere: done.
    if (all_published && static_cast<int64_t>(seen.size()) >= expected) {
      Tally t = Account(prefix_, o_.envelopes, seen, 0);
      if (t.lost == 0) {
        complete = true;
      }
    }
    const bool duration_over = o_.duration_s > 0 && now >= o_.duration_s;
    if (faults_on && (complete || duration_over)) {
      fault_phase_end = now;
      ContinueStopped(true);
      if (!schedule.empty()) {
        Log("fault phase over: %lld faults injected", static_cast<long long>(faults_));
      }
    }
    if (complete && (o_.duration_s <= 0 || duration_over)) {
      break;
    }
    // Settled: everything published, no fault under way, nothing new for quiet_s, queues empty.
    const bool may_settle = all_published && (o_.duration_s <= 0 || duration_over) &&
                            stopped_.empty() && disk_free_at_ < 0 && net_heal_at_ < 0 &&
                            now - last_change >= o_.quiet_s &&
                            SecondsSince(t0_) - last_fault_end_ >= o_.quiet_s;
    if (may_settle && QueuedTotal() == 0) {
      // The queues are empty: whatever the crew wrote is on disk now. Look once more before
      // calling it settled (the last scan may predate the last writes).
      const int64_t before = arrivals;
      arrivals += happy.ScanNew(seen, &Arrivals::happy);
      arrivals += errors.ScanNew(seen, &Arrivals::error);
      if (arrivals == before) {
        break;
      }
      last_arrivals = arrivals;
      last_change = now;
      continue;
    }
    // (Not while a network fault is under way: the queue depths come from the broker, and asking
    // a cut-off broker blocks for its request timeouts.)
    if (fault_phase_end < 0 && o_.duration_s <= 0 && now - last_change >= o_.quiet_s &&
        all_published && net_heal_at_ < 0 && QueuedTotal() == 0) {
      fault_phase_end = now;
    }
    if (fault_phase_end >= 0 && now - fault_phase_end > o_.timeout_s) {
      timed_out = true;
      break;
    }
    if (o_.duration_s <= 0 && now > o_.timeout_s * 4) {
      timed_out = true;
      break;
    }
    if (o_.interrupted != nullptr && o_.interrupted->load()) {
      Log("interrupted: accounting what arrived so far");
      break;
    }
    if (!mesh_->Running()) {
      return MakeError(ErrorCode::kUnavailable, "asya up exited during the check; " + work_ +
                                                    "/up.log ends:\n" + mesh_->LogTail());
    }
    SystemClock().SleepFor(std::chrono::milliseconds(100));
  }
  const double run_s = std::chrono::duration<double>(SystemClock().Now() - run_start).count();
  Log("progress: published %lld/%lld, outputs %lld/%lld, faults %lld (end of run)",
      static_cast<long long>(published_.load()), static_cast<long long>(o_.envelopes),
      static_cast<long long>(arrivals), static_cast<long long>(expected),
      static_cast<long long>(faults_));
  if (timed_out) {
    Log("gave up waiting %.0f s after the fault phase", o_.timeout_s);
  }
  ContinueStopped(true);
  if (o_.process_stats) {
    PrintStats("end", stats_end);
    for (const auto& [label, end] : stats_end) {
      auto it = stats_start.find(label);
      if (it == stats_start.end() || it->second.rss_kb == 0) {
        continue;
      }
      const double rss_growth =
          100.0 * static_cast<double>(end.rss_kb - it->second.rss_kb) / it->second.rss_kb;
      const double fd_growth =
          it->second.fds > 0
              ? 100.0 * static_cast<double>(end.fds - it->second.fds) / it->second.fds
              : 0;
      Log("growth %-28s rss %+6.1f%%  fds %+6.1f%%", label.c_str(), rss_growth, fd_growth);
    }
  }
  // What is left in the queues (messages that never reached an end are lost; say where they are).
  for (const auto& actor : internal::AllActors()) {
    if (auto d = transport_->Depth(transport::QueueName(actor));
        d && (d->ready > 0 || d->inflight > 0 || !d->exact)) {
      Log("left in asya-%s: ready %lld, in flight %lld%s", actor.c_str(),
          static_cast<long long>(d->ready), static_cast<long long>(d->inflight),
          d->exact ? "" : " (not exact: the broker reports no running state for it)");
    }
  }
  stop_publisher_ = true;
  if (publisher_.joinable()) {
    publisher_.join();
  }
  Log("stopping the mesh");
  mesh_->Stop(90);

  Seen final_seen;
  happy.Full(final_seen, &Arrivals::happy);
  errors.Full(final_seen, &Arrivals::error);
  DrainDlqs(final_seen);
  Tally t = Account(prefix_, o_.envelopes, final_seen);

  Outcome outcome;
  outcome.expected = t.expected;
  outcome.lost = t.lost;
  outcome.duplicated = t.duplicated;
  outcome.unexpected = t.unexpected;
  outcome.dead_lettered = t.dead_lettered;
  outcome.faults = faults_;
  outcome.duration_s = run_s;
  auto join = [](const std::vector<std::string>& v) {
    std::string s;
    for (const auto& x : v) {
      s += (s.empty() ? "" : ", ") + x;
    }
    return s;
  };
  Log("summary: %lld envelopes, %lld expected outputs, %lld arrived, %lld dead-lettered, %lld "
      "faults, %.1f s",
      static_cast<long long>(o_.envelopes), static_cast<long long>(t.expected),
      static_cast<long long>(t.arrived), static_cast<long long>(t.dead_lettered),
      static_cast<long long>(faults_), run_s);
  if (!t.lost_ids.empty()) {
    Log("lost (first %zu): %s", t.lost_ids.size(), join(t.lost_ids).c_str());
  }
  if (!t.duplicated_ids.empty()) {
    Log("duplicated (first %zu): %s", t.duplicated_ids.size(), join(t.duplicated_ids).c_str());
  }
  for (const auto& note : t.unexpected_notes) {
    Log("unexpected: %s", note.c_str());
  }
  if (o_.keep || !made_work_) {
    Log("work directory kept: %s", work_.c_str());
  }
  std::fprintf(out_, "%s\n", ResultLine(t).c_str());
  std::fflush(out_);
  Cleanup();
  return outcome;
}

}  // namespace

Result<Outcome> Run(const Options& options) {
  Runner runner(options);
  return runner.Run();
}

}  // namespace asya::check
