// `asya up|down|get|describe|logs|send`: the local mesh (DESIGN §6). The supervisor itself lives in
// the `local` library; this file reads flags and the environment, and talks to a running
// supervisor through the files of its state directory (see src/local/README.md).
#include <algorithm>
#include <chrono>
#include <climits>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "asya/actor/manifest.h"
#include "asya/base/clock.h"
#include "asya/base/env_names.h"
#include "asya/base/exit_codes.h"
#include "asya/base/redact.h"
#include "asya/base/state_dir.h"
#include "asya/base/time_format.h"
#include "asya/base/transport_kinds.h"
#include "asya/local/apply.h"
#include "asya/local/gateway.h"
#include "asya/local/launch.h"
#include "asya/local/send.h"
#include "asya/local/status.h"
#include "asya/local/supervisor.h"
#include "asya/transport/factory.h"
#include "bin/asya/commands.h"
#include "bin/common/env.h"
#include "bin/common/transport_env.h"

extern char** environ;  // NOLINT

namespace asya::cli {
namespace {

namespace fs = std::filesystem;
using local::MeshStatus;

constexpr int kExitOk = exit_code::kOk;
constexpr int kExitFailed = exit_code::kFailed;
constexpr int kExitUsage = exit_code::kUsage;
constexpr auto kApplyTimeout = std::chrono::seconds(30);

int64_t WallMs() {
  return UnixMillis(SystemClock().WallNow());
}

std::string DefaultStateDir() {
  return env::GetOr(env_name::kStateDir, state_dir::kDefault);
}

std::string AbsoluteDir(const std::string& dir) {
  std::error_code ec;
  std::string out = fs::absolute(dir, ec).lexically_normal().string();
  while (out.size() > 1 && out.back() == '/') {
    out.pop_back();
  }
  return out;
}

std::string ExeDir() {
  std::error_code ec;
  fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  return ec ? std::string(".") : exe.parent_path().string();
}

// First existing candidate, else the first candidate (so the error names where we looked).
std::string FindFile(const char* env_name, const std::vector<std::string>& candidates) {
  if (auto v = env::Get(env_name)) {
    return *v;
  }
  for (const auto& c : candidates) {
    std::error_code ec;
    if (fs::exists(c, ec)) {
      return fs::path(c).lexically_normal().string();
    }
  }
  return candidates.front();
}

struct Programs {
  std::string sidecar;
  std::string crew;
  std::string python_runtime;
  std::string gateway;
};

Programs LocatePrograms() {
  const std::string dir = ExeDir();
  Programs p;
  p.sidecar = FindFile("ASYA_SIDECAR_BIN", {dir + "/asya-sidecar"});
  p.crew = FindFile("ASYA_CREW_BIN", {dir + "/asya-crew"});
  p.gateway = FindFile("ASYA_GATEWAY_BIN", {dir + "/asya-gateway"});
  p.python_runtime =
      FindFile("ASYA_PYTHON_RUNTIME",
               {dir + "/asya_runtime.py", dir + "/../../src/runtime/python/asya_runtime.py",
                dir + "/../src/runtime/python/asya_runtime.py"});
  return p;
}

Result<transport::TransportSettings> TransportFor(const std::string& kind,
                                                  const std::string& state_dir) {
  env::TransportEnvOptions opts;
  opts.default_kind = kind;
  ASYA_ASSIGN_OR_RETURN(auto settings, env::TransportSettingsFromEnv(opts));
  settings.kind = kind;
  settings.sqlite.path = state_dir + "/" + state_dir::kQueuesFile;
  return settings;
}

Result<MeshStatus> ReadStatus(const std::string& state_dir) {
  auto text = local::ReadFile(local::StatusPath(state_dir));
  if (!text) {
    return MakeError(ErrorCode::kNotFound, "no mesh status in " + state_dir);
  }
  return local::DecodeMeshStatus(*text);
}

// Status of the running mesh, or an error naming the state dir.
Result<MeshStatus> RunningStatus(const std::string& state_dir) {
  if (local::RunningSupervisorPid(state_dir) == 0) {
    return MakeError(ErrorCode::kNotFound,
                     "no mesh is running in " + state_dir + " (start one with `asya up PATH`)");
  }
  return ReadStatus(state_dir);
}

void PrintLines(const std::string& text, const char* prefix) {
  size_t start = 0;
  while (start < text.size()) {
    size_t nl = text.find('\n', start);
    if (nl == std::string::npos) {
      nl = text.size();
    }
    std::fprintf(stderr, "%s%s\n", prefix, text.substr(start, nl - start).c_str());
    start = nl + 1;
  }
}

// ---------------------------------------------------------------------------------------------
// up

struct UpArgs {
  std::vector<std::string> paths;
  std::string state_dir;
  std::string transport = transport_kind::kSqlite;
  bool detach = false;
  bool prune = false;
  double ready_timeout_s = 120;  // --timeout: how long --detach waits for ready-or-failing
  std::string restart_backoff;
  bool no_gateway = false;         // --no-gateway
  int gateway_port = 0;            // --gateway-port (0 = a free port)
  std::vector<std::string> tools;  // --tools FILE|DIR
  bool gateway = false;            // decided by Up(): start asya-gateway
};

std::optional<local::DesiredState> PreviousDesired(const std::string& state_dir) {
  if (auto d = local::ReadDesired(state_dir)) {
    return *d;
  }
  return std::nullopt;
}

void PrintList(const char* label, const std::vector<std::string>& names, const char* suffix) {
  std::string text;
  for (const auto& n : names) {
    text += " " + n;
  }
  std::printf("  %s%s%s\n", label, text.empty() ? " -" : text.c_str(), suffix);
}

int ApplyToRunning(const UpArgs& args, const std::vector<actor::ActorSpec>& specs, int pid) {
  auto desired = local::NextDesired(PreviousDesired(args.state_dir), args.paths, args.transport,
                                    /*running=*/true, args.state_dir, args.prune);
  if (!desired) {
    std::fprintf(stderr, "asya up: %s\n", asya::RedactSecrets(desired.error().message).c_str());
    return kExitUsage;
  }
  std::set<std::string> before;
  if (auto st = ReadStatus(args.state_dir)) {
    for (const auto& a : st->actors) {
      if (!a.crew) {
        before.insert(a.name);
      }
    }
  }
  if (auto w = local::WriteDesired(args.state_dir, *desired); !w) {
    std::fprintf(stderr, "asya up: %s\n", asya::RedactSecrets(w.error().message).c_str());
    return kExitFailed;
  }
  auto st = local::SignalAndWaitApplied(args.state_dir, pid, desired->generation, kApplyTimeout,
                                        SystemClock());
  if (!st) {
    std::fprintf(stderr, "asya up: %s\n", asya::RedactSecrets(st.error().message).c_str());
    return kExitFailed;
  }
  if (!st->last_error.empty()) {
    std::fprintf(stderr, "asya up: the running mesh refused the change:\n");
    PrintLines(st->last_error, "  ");
    return kExitFailed;
  }
  const local::ApplySummary summary = local::SummariseApply(before, specs, args.prune);
  std::printf("asya up: applied to the running mesh (pid %d, generation %lld)\n", pid,
              static_cast<long long>(desired->generation));
  PrintList("added:  ", summary.added, "");
  PrintList("kept:   ", summary.kept, " (restarted if their manifest changed)");
  if (args.prune) {
    PrintList("removed:", summary.removed, "");
  } else if (!summary.undeclared.empty()) {
    PrintList("running:", summary.undeclared, " (not in these manifests; --prune removes them)");
  }
  return kExitOk;
}

// spec.transport names a cluster's transport; asya up runs every actor on its own (DESIGN
// precise 9). Say so once when a manifest names another one, so nobody expects a broker to be used.
void NoteClusterTransports(const std::vector<actor::ActorSpec>& specs, const std::string& mesh) {
  std::set<std::string> others;
  for (const auto& a : specs) {
    if (!a.transport.empty() && a.transport != mesh) {
      others.insert(a.transport);
    }
  }
  if (others.empty()) {
    return;
  }
  std::string list;
  for (const auto& t : others) {
    list += (list.empty() ? "" : ", ") + t;
  }
  std::fprintf(stderr,
               "asya up: note: spec.transport (%s) names a cluster's transport and is used by "
               "asya render and the operator; asya up runs every actor on --transport %s "
               "(spec.transport may be omitted here)\n",
               list.c_str(), mesh.c_str());
}

std::string Joined(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& n : names) {
    out += (out.empty() ? "" : ", ") + n;
  }
  return out;
}

// Waits until every actor in `names` (empty = all) is ready or failing (progress on a terminal),
// prints the `asya get actors` table of those actors and returns the exit code: 0 all ready,
// 1 some failing (named, with `asya logs`), 3 some still starting after `timeout_s`.
int ReportReadiness(const std::string& state_dir, const std::set<std::string>& names,
                    double timeout_s) {
  const bool tty = ::isatty(STDERR_FILENO) != 0;
  const auto timeout = std::chrono::duration_cast<Clock::Duration>(
      std::chrono::milliseconds(static_cast<int64_t>(timeout_s * 1000)));
  const local::Readiness r = local::WaitReady(
      state_dir, names, timeout,
      [tty](const local::Readiness& now) {
        if (tty) {
          std::string waiting = now.starting.empty() ? "" : " (" + Joined(now.starting) + ")";
          std::fprintf(
              stderr, "\r\033[Kasya up: waiting for actors: %zu ready, %zu failing, %zu starting%s",
              now.ready.size(), now.failing.size(), now.starting.size(), waiting.c_str());
        }
      },
      SystemClock());
  if (tty) {
    std::fprintf(stderr, "\r\033[K");
  }
  if (auto st = ReadStatus(state_dir)) {
    std::vector<local::ActorStatus> rows;
    for (const auto& a : st->actors) {
      if (names.empty() || names.count(a.name) != 0) {
        rows.push_back(a);
      }
    }
    std::string table = local::RenderTable(rows, WallMs(), /*wide=*/false);
    std::fwrite(table.data(), 1, table.size(), stdout);
  }
  if (!r.failing.empty()) {
    std::fprintf(stderr, "asya up: %zu actor%s failing: %s; see `asya logs %s`%s\n",
                 r.failing.size(), r.failing.size() == 1 ? "" : "s", Joined(r.failing).c_str(),
                 r.failing.front().c_str(), r.failing.size() == 1 ? "" : " (and the others' logs)");
    return kExitFailed;
  }
  if (!r.starting.empty()) {
    std::fprintf(stderr,
                 "asya up: not ready within %.0fs: %s (still starting; follow with `asya get "
                 "actors` and `asya logs ACTOR`)\n",
                 timeout_s, Joined(r.starting).c_str());
    return exit_code::kNothingArrived;
  }
  return kExitOk;
}

int RunSupervisor(const UpArgs& args, bool echo) {
  local::BlockSupervisorSignals();
  std::signal(SIGPIPE, SIG_IGN);  // a closed stdout must not kill the supervisor
  local::SupervisorSettings s;
  s.state_dir = args.state_dir;
  auto transport = TransportFor(args.transport, args.state_dir);
  if (!transport) {
    std::fprintf(stderr, "asya up: %s\n", asya::RedactSecrets(transport.error().message).c_str());
    return kExitUsage;
  }
  s.transport_kind = transport->kind;
  s.sqlite_path = transport->sqlite.path;
  s.make_transport = [settings = *transport] { return transport::MakeTransport(settings); };
  Programs programs = LocatePrograms();
  s.sidecar_bin = programs.sidecar;
  s.crew_bin = programs.crew;
  s.python_runtime = programs.python_runtime;
  if (args.gateway) {
    s.gateway_bin = programs.gateway;
    s.gateway_port = args.gateway_port;
  }
  if (!args.restart_backoff.empty()) {
    auto d = env::ParseDurationVar("--restart-backoff", args.restart_backoff);
    if (!d) {
      std::fprintf(stderr, "asya up: %s\n", asya::RedactSecrets(d.error().message).c_str());
      return kExitUsage;
    }
    s.restart_backoff_base = *d;
  } else if (auto d = env::Duration("ASYA_UP_RESTART_BACKOFF", s.restart_backoff_base); d) {
    s.restart_backoff_base = *d;
  } else {
    std::fprintf(stderr, "asya up: %s\n", asya::RedactSecrets(d.error().message).c_str());
    return kExitUsage;
  }
  s.echo_logs = echo;
  for (char** e = environ; *e != nullptr; ++e) {
    s.base_env.emplace_back(*e);
  }
  auto sup = local::Supervisor::Create(std::move(s));
  if (!sup) {
    std::fprintf(stderr, "asya up: %s\n", asya::RedactSecrets(sup.error().message).c_str());
    return kExitFailed;
  }
  return (*sup)->Run();
}

int Up(UpArgs args) {
  args.state_dir = AbsoluteDir(args.state_dir);
  if (!transport_kind::IsKnown(args.transport)) {
    std::fprintf(stderr, "asya up: --transport must be sqlite, rabbitmq or sqs, got '%s'\n",
                 args.transport.c_str());
    return kExitUsage;
  }
  for (auto& p : args.paths) {
    p = AbsoluteDir(p);
  }
  // --tools paths join the inputs (so a later `asya up` on the running mesh sees them too); each
  // must hold at least one tools document.
  for (auto& t : args.tools) {
    t = AbsoluteDir(t);
    auto docs = local::CollectToolsDocuments({t});
    if (!docs) {
      std::fprintf(stderr, "asya up: --tools %s\n",
                   asya::RedactSecrets(docs.error().message).c_str());
      return kExitUsage;
    }
    if (docs->empty()) {
      std::fprintf(stderr,
                   "asya up: --tools %s: no gateway tools document in it (a YAML object with a "
                   "top-level `tools:` list)\n",
                   t.c_str());
      return kExitUsage;
    }
    if (std::find(args.paths.begin(), args.paths.end(), t) == args.paths.end()) {
      args.paths.push_back(t);
    }
  }
  auto loaded = actor::LoadManifests(args.paths);
  if (!loaded) {
    std::fprintf(stderr, "asya up: refusing invalid manifests:\n");
    PrintLines(loaded.error().message, "  ");
    return kExitUsage;
  }
  for (const auto& w : loaded->warnings) {
    std::fprintf(stderr, "asya up: warning: %s\n", w.c_str());
  }
  NoteClusterTransports(loaded->actors, args.transport);
  auto tool_docs = local::CollectToolsDocuments(args.paths);
  if (tool_docs) {
    if (auto st = local::CheckToolsDocuments(*tool_docs); !st) {
      tool_docs = Unexpected(st.error());
    }
  }
  if (!tool_docs) {
    std::fprintf(stderr, "asya up: refusing invalid gateway tools:\n");
    PrintLines(tool_docs.error().message, "  ");
    return kExitUsage;
  }
  // The mesh's own gateway, unless turned off or an external one is configured for the sidecars.
  const auto external_gateway = env::Get(env_name::kGatewayUrl);
  args.gateway = !args.no_gateway && !external_gateway;
  if (!args.no_gateway && external_gateway) {
    std::fprintf(stderr,
                 "asya up: ASYA_GATEWAY_URL is set (%s): the sidecars report there; not starting "
                 "a gateway\n",
                 external_gateway->c_str());
  }
  if (!args.gateway && !tool_docs->empty()) {
    std::fprintf(stderr,
                 "asya up: warning: %zu gateway tools document(s) not served (no gateway)\n",
                 tool_docs->size());
  }
  if (args.gateway_port < 0 || args.gateway_port > 65535) {
    std::fprintf(stderr, "asya up: --gateway-port must be 1..65535, got %d\n", args.gateway_port);
    return kExitUsage;
  }
  Programs programs = LocatePrograms();
  std::vector<std::pair<const char*, std::string>> needed = {
      {"asya-sidecar", programs.sidecar},
      {"asya-crew", programs.crew},
      {"asya_runtime.py", programs.python_runtime}};
  if (args.gateway) {
    needed.emplace_back("asya-gateway (or pass --no-gateway)", programs.gateway);
  }
  for (const auto& [what, path] : needed) {
    std::error_code ec;
    if (!fs::exists(path, ec)) {
      std::fprintf(stderr, "asya up: cannot find %s (looked at %s); build it or set its variable\n",
                   what, path.c_str());
      return kExitFailed;
    }
  }
  {
    // A runtime command that cannot be executed would only crash-loop (exit 127): refuse it now.
    local::MeshLaunchSettings mesh;
    mesh.state_dir = args.state_dir;
    mesh.python_runtime = programs.python_runtime;
    std::string problems;
    for (const auto& a : loaded->actors) {
      if (auto ok = local::CheckRuntimeProgram(a, mesh, env::GetOr("PATH", "")); !ok) {
        problems += (problems.empty() ? "" : "\n") + ok.error().message;
      }
    }
    if (!problems.empty()) {
      std::fprintf(stderr, "asya up: refusing runtime commands that cannot be executed:\n");
      PrintLines(problems, "  ");
      return kExitUsage;
    }
  }
  std::error_code ec;
  fs::create_directories(args.state_dir + "/logs", ec);
  if (ec) {
    std::fprintf(stderr, "asya up: cannot create state dir %s: %s\n", args.state_dir.c_str(),
                 ec.message().c_str());
    return kExitFailed;
  }
  if (int pid = local::RunningSupervisorPid(args.state_dir); pid != 0) {
    if (pid < 0) {
      std::fprintf(stderr, "asya up: a supervisor is starting on %s; retry in a moment\n",
                   args.state_dir.c_str());
      return kExitFailed;
    }
    return ApplyToRunning(args, loaded->actors, pid);
  }
  auto next = local::NextDesired(PreviousDesired(args.state_dir), args.paths, args.transport,
                                 /*running=*/false, args.state_dir);
  if (!next) {
    std::fprintf(stderr, "asya up: %s\n", asya::RedactSecrets(next.error().message).c_str());
    return kExitUsage;
  }
  const local::DesiredState& desired = *next;
  if (auto w = local::WriteDesired(args.state_dir, desired); !w) {
    std::fprintf(stderr, "asya up: %s\n", asya::RedactSecrets(w.error().message).c_str());
    return kExitFailed;
  }
  if (!args.detach) {
    return RunSupervisor(args, /*echo=*/true);
  }
  std::fflush(stdout);
  std::fflush(stderr);
  pid_t child = ::fork();
  if (child < 0) {
    std::perror("asya up: fork");
    return kExitFailed;
  }
  if (child == 0) {
    ::setsid();
    int null_fd = ::open("/dev/null", O_RDONLY);
    int log_fd =
        ::open((args.state_dir + "/logs/asya.log").c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (null_fd >= 0) {
      ::dup2(null_fd, 0);
    }
    if (log_fd >= 0) {
      ::dup2(log_fd, 1);
      ::dup2(log_fd, 2);
    }
    std::_Exit(RunSupervisor(args, /*echo=*/false));
  }
  auto st = local::WaitApplied(
      args.state_dir, child, desired.generation, kApplyTimeout,
      [child] { return local::SupervisorExited(child, /*is_child=*/true); }, SystemClock());
  if (!st) {
    std::fprintf(stderr, "asya up: %s\n", asya::RedactSecrets(st.error().message).c_str());
    return kExitFailed;
  }
  const int ready_rc = ReportReadiness(args.state_dir, {}, args.ready_timeout_s);
  std::printf("asya up: mesh running in the background (pid %d): %zu actors + crew, transport %s\n",
              child, loaded->actors.size(), args.transport.c_str());
  std::printf(
      "  state: %s\n  logs:  asya logs ACTOR  (supervisor: %s/logs/asya.log)\n"
      "  stop:  asya down%s\n",
      args.state_dir.c_str(), args.state_dir.c_str(),
      args.state_dir == AbsoluteDir(DefaultStateDir())
          ? ""
          : (" --state-dir " + args.state_dir).c_str());
  return ready_rc;
}

// ---------------------------------------------------------------------------------------------
// down

// True for a live process that is not a zombie.
bool ProcessAlive(int pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  size_t paren = stat.rfind(')');
  return paren != std::string::npos && paren + 2 < stat.size() && stat[paren + 2] != 'Z';
}

int Down(const std::string& state_dir_arg, double timeout_s) {
  const std::string state_dir = AbsoluteDir(state_dir_arg);
  int pid = local::RunningSupervisorPid(state_dir);
  if (pid == 0) {
    std::printf("asya down: no mesh is running in %s\n", state_dir.c_str());
    return kExitOk;
  }
  if (pid < 0) {
    std::fprintf(stderr, "asya down: a supervisor holds %s but wrote no pid yet; retry\n",
                 local::LockPath(state_dir).c_str());
    return kExitFailed;
  }
  ::kill(pid, SIGTERM);
  auto deadline = std::chrono::steady_clock::now() +
                  std::chrono::milliseconds(static_cast<int64_t>(timeout_s * 1000));
  const bool tty = ::isatty(STDERR_FILENO) != 0;
  std::string shown;
  auto next_progress = std::chrono::steady_clock::now();
  while (std::chrono::steady_clock::now() < deadline) {
    // The lock is released as the process exits; then wait for the exit itself (a zombie
    // waiting for PID 1 to reap it counts as gone).
    if (local::RunningSupervisorPid(state_dir) == 0 && !ProcessAlive(pid)) {
      if (tty && !shown.empty()) {
        std::fprintf(stderr, "\r\033[K");
      }
      std::printf("asya down: mesh stopped (pid %d)\n", pid);
      if (auto st = ReadStatus(state_dir)) {
        std::string left = local::QueuedSummary(*st);
        std::fwrite(left.data(), 1, left.size(), stdout);
      }
      return kExitOk;
    }
    if (std::chrono::steady_clock::now() >= next_progress) {
      next_progress += std::chrono::milliseconds(500);
      if (auto st = ReadStatus(state_dir); st && st->stopping) {
        std::string line = local::DrainingLine(*st);
        if (!line.empty() && line != shown) {
          std::fprintf(stderr, tty ? "\r\033[Kasya down: %s" : "asya down: %s\n", line.c_str());
          shown = line;
        }
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  if (tty && !shown.empty()) {
    std::fprintf(stderr, "\n");
  }
  std::fprintf(stderr, "asya down: the mesh did not stop within %.0fs; sending SIGKILL to %d\n",
               timeout_s, pid);
  ::kill(pid, SIGKILL);
  return kExitFailed;
}

// ---------------------------------------------------------------------------------------------
// get / describe / logs

int Get(const std::string& what, const std::vector<std::string>& names, const std::string& output,
        const std::string& state_dir) {
  static const std::set<std::string> kKinds = {"actors", "actor",       "asya",
                                               "asyas",  "asyncactors", "asyncactor"};
  if (kKinds.count(what) == 0) {
    std::fprintf(stderr, "asya get: unknown resource '%s' (use: asya get actors)\n", what.c_str());
    return kExitUsage;
  }
  if (!output.empty() && output != "wide" && output != "json") {
    std::fprintf(stderr, "asya get: -o must be wide or json, got '%s'\n", output.c_str());
    return kExitUsage;
  }
  auto st = RunningStatus(AbsoluteDir(state_dir));
  if (!st) {
    std::fprintf(stderr, "asya get: %s\n", asya::RedactSecrets(st.error().message).c_str());
    return kExitFailed;
  }
  std::vector<local::ActorStatus> rows;
  for (const auto& n : names) {
    auto it = std::find_if(st->actors.begin(), st->actors.end(),
                           [&](const local::ActorStatus& a) { return a.name == n; });
    if (it == st->actors.end()) {
      std::fprintf(stderr, "asya get: actor \"%s\" not found; actors in this mesh: %s\n", n.c_str(),
                   local::KnownActorNames(*st).c_str());
      return kExitUsage;
    }
    rows.push_back(*it);
  }
  if (names.empty()) {
    rows = st->actors;
  }
  const int64_t now = WallMs();
  std::string out = output == "json" ? local::RenderJson(rows, now)
                                     : local::RenderTable(rows, now, output == "wide");
  std::fwrite(out.data(), 1, out.size(), stdout);
  return kExitOk;
}

int Describe(const std::string& what, const std::string& name, const std::string& state_dir) {
  if (what != "actor" && what != "actors" && what != "asya" && what != "asyncactor") {
    std::fprintf(stderr, "asya describe: unknown resource '%s' (use: asya describe actor NAME)\n",
                 what.c_str());
    return kExitUsage;
  }
  auto st = RunningStatus(AbsoluteDir(state_dir));
  if (!st) {
    std::fprintf(stderr, "asya describe: %s\n", asya::RedactSecrets(st.error().message).c_str());
    return kExitFailed;
  }
  for (const auto& a : st->actors) {
    if (a.name == name) {
      std::string out = local::RenderDescribe(a, WallMs());
      std::fwrite(out.data(), 1, out.size(), stdout);
      return kExitOk;
    }
  }
  std::fprintf(stderr, "asya describe: actor \"%s\" not found; actors in this mesh: %s\n",
               name.c_str(), local::KnownActorNames(*st).c_str());
  return kExitUsage;
}

volatile std::sig_atomic_t g_stop_follow = 0;

// Actors with a log file in <state>/logs (the supervisor's own asya.log aside), sorted.
std::string ActorsWithLogs(const std::string& state_dir) {
  std::set<std::string> names;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(state_dir + "/logs", ec)) {
    const fs::path& f = e.path();
    if (f.extension() == ".log" && f.stem() != "asya") {
      names.insert(f.stem().string());
    }
  }
  std::string out;
  for (const auto& n : names) {
    out += (out.empty() ? "" : ", ") + n;
  }
  return out.empty() ? "none" : out;
}

// `-f` follows until Ctrl-C or until the mesh of the state dir stops (what was written up to
// then is printed first).
int Logs(const std::string& actor, bool follow, const std::string& state_dir_arg) {
  const std::string state_dir = AbsoluteDir(state_dir_arg);
  const std::string path = local::LogPath(state_dir, actor);
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    std::string known;
    if (auto st = ReadStatus(state_dir)) {
      known = local::KnownActorNames(*st);
    } else {
      known = ActorsWithLogs(state_dir);
    }
    std::fprintf(stderr, "asya logs: no logs for actor \"%s\" in %s; actors: %s\n", actor.c_str(),
                 state_dir.c_str(), known.c_str());
    return kExitUsage;
  }
  if (follow) {
    std::signal(SIGINT, [](int) { g_stop_follow = 1; });
    std::signal(SIGTERM, [](int) { g_stop_follow = 1; });
  }
  constexpr auto kPoll = std::chrono::milliseconds(200);
  constexpr int kMeshCheckEvery = 5;  // polls between looks at the supervisor lock (~1 s)
  int idle_polls = 0;
  bool mesh_gone = false;
  char buf[65536];
  while (true) {
    ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n > 0) {
      std::fwrite(buf, 1, static_cast<size_t>(n), stdout);
      continue;
    }
    if (!follow || g_stop_follow != 0 || mesh_gone) {
      break;
    }
    std::fflush(stdout);
    if (++idle_polls % kMeshCheckEvery == 1 && local::RunningSupervisorPid(state_dir) == 0) {
      mesh_gone = true;  // one more read drains what the last processes wrote
      continue;
    }
    std::this_thread::sleep_for(kPoll);
  }
  ::close(fd);
  std::fflush(stdout);
  if (mesh_gone) {
    std::fprintf(stderr, "asya logs: no mesh is running in %s; stopped following\n",
                 state_dir.c_str());
  }
  return kExitOk;
}

// ---------------------------------------------------------------------------------------------
// send

struct SendArgs {
  std::string route;
  std::string payload;  // JSON text, or a file name with --jsonl, or "-" = stdin
  bool jsonl = false;
  bool wait = false;
  bool enqueue = false;  // publish even when no mesh runs / the route names unknown actors
  double timeout_s = 60;
  std::string output;  // "" | text | json
  std::string state_dir;
  std::string transport;  // "" = the mesh's
};

// The transport `asya send` publishes on: the flag, else the mesh's (desired.json), else sqlite.
std::string SendTransportKind(const SendArgs& args, const std::string& state_dir) {
  if (!args.transport.empty()) {
    return args.transport;
  }
  if (auto desired = local::ReadDesired(state_dir)) {
    return desired->transport;
  }
  return transport_kind::kSqlite;
}

// The route's actors the running mesh does not run (crew actors count as run).
std::vector<std::string> UnknownActors(const MeshStatus& st,
                                       const std::vector<std::string>& route) {
  std::vector<std::string> unknown;
  for (const auto& name : route) {
    bool known = std::any_of(st.actors.begin(), st.actors.end(),
                             [&](const local::ActorStatus& a) { return a.name == name; });
    if (!known && std::find(unknown.begin(), unknown.end(), name) == unknown.end()) {
      unknown.push_back(name);
    }
  }
  return unknown;
}

bool StderrIsTerminal() {
  return ::isatty(STDERR_FILENO) == 1;
}

// ANSI colour on a terminal only (and not with NO_COLOR set).
std::string Paint(const std::string& text, const char* code) {
  static const bool colour = StderrIsTerminal() && !env::Get("NO_COLOR").has_value();
  return colour ? std::string("\033[") + code + "m" + text + "\033[0m" : text;
}

std::string ColouredCount(size_t succeeded, size_t failed) {
  std::string line = local::CountLine(succeeded, failed);
  if (failed > 0) {
    const std::string tail = std::to_string(failed) + " failed";
    line = line.substr(0, line.size() - tail.size()) + Paint(tail, "31");
  }
  return line;
}

// One line of progress on a terminal: "[#####.....] 512/1000 envelopes final, 3 failed".
void DrawProgress(size_t done, size_t total, size_t failed) {
  constexpr size_t kWidth = 30;
  const size_t filled = total == 0 ? kWidth : done * kWidth / total;
  std::fprintf(stderr, "\r[%s%s] %zu/%zu envelopes final, %zu failed",
               std::string(filled, '#').c_str(), std::string(kWidth - filled, '.').c_str(), done,
               total, failed);
  std::fflush(stderr);
}

// The stored envelope as JSON (its text as a string should it not parse).
nlohmann::json ParsedOrText(const std::string& body) {
  auto j = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  return j.is_discarded() ? nlohmann::json(body) : j;
}

int Send(const SendArgs& args) {
  const std::string state_dir = AbsoluteDir(args.state_dir);
  const bool json_out = args.output == "json";
  if (!args.output.empty() && args.output != "text" && !json_out) {
    std::fprintf(stderr, "asya send: -o must be text or json, got '%s'\n", args.output.c_str());
    return kExitUsage;
  }
  auto actors = local::ParseRoute(args.route);
  if (!actors) {
    std::fprintf(stderr, "asya send: %s\n", asya::RedactSecrets(actors.error().message).c_str());
    return kExitUsage;
  }
  auto text = local::ReadPayloadText(args.payload, args.jsonl, std::cin);
  if (!text) {
    std::fprintf(stderr, "asya send: %s\n", asya::RedactSecrets(text.error().message).c_str());
    return kExitUsage;
  }
  auto payloads = local::SplitPayloads(*text, args.jsonl);
  if (!payloads) {
    std::fprintf(stderr, "asya send: %s\n", asya::RedactSecrets(payloads.error().message).c_str());
    return kExitUsage;
  }
  // Nothing is published (nor a queue file created) unless a mesh runs here or --enqueue says so.
  const int pid = local::RunningSupervisorPid(state_dir);
  if (pid == 0 && !args.enqueue) {
    std::fprintf(
        stderr,
        "asya send: no mesh is running in %s\n"
        "  start one:       asya up PATH --detach%s\n"
        "  or queue anyway: add --enqueue (the message waits in asya-%s until a mesh "
        "runs)\n",
        state_dir.c_str(),
        state_dir == AbsoluteDir(DefaultStateDir()) ? "" : (" --state-dir " + state_dir).c_str(),
        actors->front().c_str());
    return kExitFailed;
  }
  if (pid != 0) {
    if (auto st = ReadStatus(state_dir)) {
      const std::vector<std::string> unknown = UnknownActors(*st, *actors);
      if (!unknown.empty()) {
        std::string names;
        for (const auto& n : unknown) {
          names += (names.empty() ? "" : ", ") + n;
        }
        std::fprintf(stderr, "asya send: %s: the mesh in %s does not run %s %s; it runs: %s\n",
                     args.enqueue ? "warning" : "refused", state_dir.c_str(),
                     unknown.size() == 1 ? "actor" : "actors", names.c_str(),
                     local::KnownActorNames(*st).c_str());
        if (!args.enqueue) {
          std::fprintf(stderr,
                       "  add it to the mesh (asya up PATH), or pass --enqueue to queue the "
                       "message anyway\n");
          return kExitUsage;
        }
      }
    }
  }
  const std::string kind = SendTransportKind(args, state_dir);
  auto settings = TransportFor(kind, state_dir);
  if (!settings) {
    std::fprintf(stderr, "asya send: %s\n", asya::RedactSecrets(settings.error().message).c_str());
    return kExitUsage;
  }
  auto transport = transport::MakeTransport(*settings);
  if (!transport) {
    std::fprintf(stderr, "asya send: %s\n", asya::RedactSecrets(transport.error().message).c_str());
    return kExitFailed;
  }
  const std::string since = local::CrewStampFloor(SystemClock().WallNow());
  const std::string queue = transport::QueueName(actors->front());
  std::vector<std::string> ids;
  for (const auto& p : *payloads) {
    std::string id = local::NewEnvelopeId();
    std::string body = local::BuildEnvelope(id, *actors, local::NewTraceparent(), p);
    if (auto st = (*transport)->Publish(queue, body); !st) {
      std::fprintf(stderr, "asya send: publish to %s failed after %zu envelope(s): %s\n",
                   queue.c_str(), ids.size(), asya::RedactSecrets(st.error().message).c_str());
      return kExitFailed;
    }
    if (!args.wait && !json_out) {
      std::printf("%s\n", id.c_str());  // without --wait, the ids are the command's output
    }
    ids.push_back(std::move(id));
  }
  if (!args.wait) {
    if (json_out) {
      std::printf("%s\n", nlohmann::json{{"ids", ids}}.dump().c_str());
    }
    return kExitOk;
  }
  const bool batch = ids.size() > 1;
  if (batch) {
    std::fprintf(stderr, "asya send: sent %zu envelopes to %s; waiting for their results\n",
                 ids.size(), queue.c_str());
  } else {
    std::fprintf(stderr, "asya send: sent %s to %s; waiting for its results\n", ids[0].c_str(),
                 queue.c_str());
  }
  std::fflush(stdout);
  const auto timeout = std::chrono::duration_cast<Clock::Duration>(
      std::chrono::milliseconds(static_cast<int64_t>(args.timeout_s * 1000)));
  const bool bar = batch && StderrIsTerminal();
  size_t failed_so_far = 0;
  size_t last_done = SIZE_MAX;
  local::ResultWatcher watcher(state_dir, since, ids);
  local::WaitSummary sum = local::WaitForTrees(
      watcher, timeout, SystemClock(),
      [&](const local::FinalEnvelope& f) {
        failed_so_far += f.succeeded ? 0 : 1;
        if (!batch) {
          std::fprintf(
              stderr, "asya send: %s %s (%s)\n", f.id.c_str(),
              f.succeeded ? Paint("succeeded", "32").c_str() : Paint("failed", "31").c_str(),
              f.path.c_str());
        }
        if (!json_out) {  // results alone on stdout, one JSON document per line
          std::printf("%s\n", local::CompactJson(f.body).c_str());
          std::fflush(stdout);
        }
      },
      [&](const local::ResultWatcher& w) {
        if (bar && w.CompleteCount() != last_done) {
          last_done = w.CompleteCount();
          DrawProgress(last_done, ids.size(), failed_so_far);
        }
      });
  if (bar) {
    std::fputc('\n', stderr);
  }
  if (json_out) {
    nlohmann::json results = nlohmann::json::array();
    for (const auto& f : sum.finals) {
      results.push_back({{"id", f.id},
                         {"root", f.root},
                         {"status", f.succeeded ? "succeeded" : "failed"},
                         {"path", f.path},
                         {"envelope", ParsedOrText(f.body)}});
    }
    nlohmann::json doc = {{"ids", ids},
                          {"complete", sum.incomplete.empty()},
                          {"incomplete", sum.incomplete},
                          {"succeeded", sum.succeeded},
                          {"failed", sum.failed},
                          {"results", results}};
    std::printf("%s\n", doc.dump(2).c_str());
  }
  const std::string counts = ColouredCount(sum.succeeded, sum.failed);
  if (batch) {
    std::fprintf(stderr, "asya send: %zu envelopes (%zu final), %s\n", ids.size(),
                 ids.size() - sum.incomplete.size(), counts.c_str());
  } else {
    std::fprintf(stderr, "asya send: %s\n", counts.c_str());
  }
  if (sum.outcome == local::SendOutcome::kTimedOut) {
    std::string which;
    for (size_t i = 0; i < sum.incomplete.size() && i < 5; ++i) {
      which += (i == 0 ? "" : ", ") + sum.incomplete[i];
    }
    if (sum.incomplete.size() > 5) {
      which += ", ... (" + std::to_string(sum.incomplete.size()) + " in all)";
    }
    std::fprintf(stderr, "asya send: %s within %.0fs: %s (see asya get actors, asya logs ACTOR)\n",
                 sum.finals.empty() ? "no result" : "not every result", args.timeout_s,
                 which.c_str());
    if (auto st = ReadStatus(state_dir)) {  // name the actors of the route that do not serve
      if (std::string why = local::NotRunningOnRoute(*st, *actors); !why.empty()) {
        std::fprintf(stderr, "asya send: %s\n", why.c_str());
      }
    }
  }
  return local::ExitCodeOf(sum.outcome);
}

// The --help footer of a local command: the exit codes, then one or two examples.
std::string HelpFooter(const std::string& cmd) {
  std::string ex;
  if (cmd == "up") {
    ex = "  asya up examples/text-pipeline/manifests --detach\n"
         "  asya up new.yaml [--prune]                   # on a running mesh: add/update (prune "
         "the rest)";
  } else if (cmd == "down") {
    ex = "  asya down\n  asya down --state-dir /tmp/mesh --timeout 120";
  } else if (cmd == "get") {
    ex = "  asya get actors\n  asya get actors sentiment -o json";
  } else if (cmd == "describe") {
    ex = "  asya describe actor sentiment";
  } else if (cmd == "logs") {
    ex = "  asya logs sentiment -f                       # until Ctrl-C or asya down";
  } else if (cmd == "send") {
    ex = "  asya send normalize,split '{\"text\": \"Hi. Bye.\"}' --wait > result.json\n"
         "  asya send tokenize docs.jsonl --jsonl --wait -o json > results.json";
  }
  return std::string(exit_code::kHelpTable) + "\n\nExamples:\n" + ex;
}

}  // namespace

int RunLocal(int argc, char** argv) {
  const std::string cmd = argv[0];
  CLI::App app{"asya " + cmd};
  app.name("asya " + cmd);
  std::string state_dir = DefaultStateDir();
  app.add_option("--state-dir", state_dir, "state directory (ASYA_STATE_DIR, default .asya)");

  UpArgs up;
  double timeout_s = 60;
  std::string output;
  std::vector<std::string> names;
  std::string what;
  std::string name;
  bool follow = false;
  SendArgs send;

  if (cmd == "up") {
    app.add_option("paths", up.paths, "AsyncActor manifests, directories or asya-actor values")
        ->required();
    app.add_option("--transport", up.transport, "sqlite (default), rabbitmq or sqs");
    app.add_flag("--detach,-d", up.detach, "run in the background (stop with asya down)");
    app.add_flag("--prune", up.prune,
                 "on a running mesh, also stop actors these manifests do not declare (default: "
                 "add and update only, like kubectl apply)");
    app.add_option("--timeout", up.ready_timeout_s,
                   "with --detach: seconds to wait until every actor is ready or failing "
                   "(default 120; exit 1 when one is failing, 3 when one is still starting)");
    app.add_option("--restart-backoff", up.restart_backoff,
                   "first crash back-off, doubling to 5m (default 10s; ASYA_UP_RESTART_BACKOFF)");
    app.add_flag("--no-gateway", up.no_gateway,
                 "do not run asya-gateway (it runs by default on 127.0.0.1; its URL in "
                 "<state>/gateway.url)");
    app.add_option("--gateway-port", up.gateway_port, "the gateway's port (default: a free one)");
    app.add_option("--tools", up.tools,
                   "gateway tools YAML file or directory (tools documents among PATHs are "
                   "served too)");
  } else if (cmd == "down") {
    app.add_option("--timeout", timeout_s, "seconds to wait for a clean stop (default 60)");
  } else if (cmd == "get") {
    app.add_option("resource", what, "actors")->required();
    app.add_option("names", names, "actor names (default: all)");
    app.add_option("-o,--output", output, "wide or json");
  } else if (cmd == "describe") {
    app.add_option("resource", what, "actor")->required();
    app.add_option("name", name, "actor name")->required();
  } else if (cmd == "logs") {
    app.add_option("actor", name, "actor name")->required();
    app.add_flag("-f,--follow", follow, "keep printing new lines");
  } else if (cmd == "send") {
    app.add_option("route", send.route, "comma-separated actor names")->required();
    app.add_option("payload", send.payload, "JSON payload ('-' = stdin)")->required();
    app.add_flag("--wait", send.wait,
                 "wait until every result of the envelope (fan-out children included) is final: "
                 "results on stdout, progress on stderr; exit 0 all succeeded, 1 one failed, 3 "
                 "not all final within --timeout");
    app.add_option("--timeout", send.timeout_s, "seconds to wait with --wait (default 60)");
    app.add_option("--transport", send.transport, "default: the mesh's transport");
    app.add_flag("--jsonl", send.jsonl,
                 "PAYLOAD is a file ('-' = stdin) with one JSON payload per line; one envelope "
                 "each, one id printed per line (with --wait: waits for the whole batch)");
    app.add_option("-o,--output", send.output,
                   "text (default: one JSON document per line) or json (one document at the end)");
    app.add_flag("--enqueue", send.enqueue,
                 "publish even when no mesh runs in the state dir or the route names actors it "
                 "does not run (the message waits in the queue)");
  }
  app.footer(HelpFooter(cmd));
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? kExitOk : kExitUsage;
  }
  if (cmd == "up") {
    up.state_dir = state_dir;
    return Up(std::move(up));
  }
  if (cmd == "down") {
    return Down(state_dir, timeout_s);
  }
  if (cmd == "get") {
    return Get(what, names, output, state_dir);
  }
  if (cmd == "describe") {
    return Describe(what, name, state_dir);
  }
  if (cmd == "logs") {
    return Logs(name, follow, state_dir);
  }
  send.state_dir = state_dir;
  return Send(send);
}

}  // namespace asya::cli
