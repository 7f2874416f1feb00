// `asya up|down|get|describe|logs|send`: the local mesh (DESIGN §6). The supervisor itself lives in
// the `local` library; this file reads flags and the environment, and talks to a running
// supervisor through the files of its state directory (see src/local/README.md).
#include <algorithm>
#include <chrono>
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

#include "asya/actor/manifest.h"
#include "asya/base/clock.h"
#include "asya/base/env_names.h"
#include "asya/base/exit_codes.h"
#include "asya/base/state_dir.h"
#include "asya/base/time_format.h"
#include "asya/base/transport_kinds.h"
#include "asya/local/apply.h"
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
};

Programs LocatePrograms() {
  const std::string dir = ExeDir();
  Programs p;
  p.sidecar = FindFile("ASYA_SIDECAR_BIN", {dir + "/asya-sidecar"});
  p.crew = FindFile("ASYA_CREW_BIN", {dir + "/asya-crew"});
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
  std::string restart_backoff;
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
                                    /*running=*/true, args.state_dir);
  if (!desired) {
    std::fprintf(stderr, "asya up: %s\n", desired.error().message.c_str());
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
    std::fprintf(stderr, "asya up: %s\n", w.error().message.c_str());
    return kExitFailed;
  }
  auto st = local::SignalAndWaitApplied(args.state_dir, pid, desired->generation, kApplyTimeout,
                                        SystemClock());
  if (!st) {
    std::fprintf(stderr, "asya up: %s\n", st.error().message.c_str());
    return kExitFailed;
  }
  if (!st->last_error.empty()) {
    std::fprintf(stderr, "asya up: the running mesh refused the change:\n");
    PrintLines(st->last_error, "  ");
    return kExitFailed;
  }
  const local::ApplySummary summary = local::SummariseApply(before, specs);
  std::printf("asya up: applied to the running mesh (pid %d, generation %lld)\n", pid,
              static_cast<long long>(desired->generation));
  PrintList("added:  ", summary.added, "");
  PrintList("kept:   ", summary.kept, " (restarted if their manifest changed)");
  PrintList("removed:", summary.removed, "");
  return kExitOk;
}

int RunSupervisor(const UpArgs& args, bool echo) {
  local::BlockSupervisorSignals();
  std::signal(SIGPIPE, SIG_IGN);  // a closed stdout must not kill the supervisor
  local::SupervisorSettings s;
  s.state_dir = args.state_dir;
  auto transport = TransportFor(args.transport, args.state_dir);
  if (!transport) {
    std::fprintf(stderr, "asya up: %s\n", transport.error().message.c_str());
    return kExitUsage;
  }
  s.transport_kind = transport->kind;
  s.sqlite_path = transport->sqlite.path;
  s.make_transport = [settings = *transport] { return transport::MakeTransport(settings); };
  Programs programs = LocatePrograms();
  s.sidecar_bin = programs.sidecar;
  s.crew_bin = programs.crew;
  s.python_runtime = programs.python_runtime;
  if (!args.restart_backoff.empty()) {
    auto d = env::ParseDurationVar("--restart-backoff", args.restart_backoff);
    if (!d) {
      std::fprintf(stderr, "asya up: %s\n", d.error().message.c_str());
      return kExitUsage;
    }
    s.restart_backoff_base = *d;
  } else if (auto d = env::Duration("ASYA_UP_RESTART_BACKOFF", s.restart_backoff_base); d) {
    s.restart_backoff_base = *d;
  } else {
    std::fprintf(stderr, "asya up: %s\n", d.error().message.c_str());
    return kExitUsage;
  }
  s.echo_logs = echo;
  for (char** e = environ; *e != nullptr; ++e) {
    s.base_env.emplace_back(*e);
  }
  auto sup = local::Supervisor::Create(std::move(s));
  if (!sup) {
    std::fprintf(stderr, "asya up: %s\n", sup.error().message.c_str());
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
  auto loaded = actor::LoadManifests(args.paths);
  if (!loaded) {
    std::fprintf(stderr, "asya up: refusing invalid manifests:\n");
    PrintLines(loaded.error().message, "  ");
    return kExitUsage;
  }
  for (const auto& w : loaded->warnings) {
    std::fprintf(stderr, "asya up: warning: %s\n", w.c_str());
  }
  Programs programs = LocatePrograms();
  for (const auto& [what, path] :
       {std::pair{"asya-sidecar", programs.sidecar}, std::pair{"asya-crew", programs.crew},
        std::pair{"asya_runtime.py", programs.python_runtime}}) {
    std::error_code ec;
    if (!fs::exists(path, ec)) {
      std::fprintf(stderr, "asya up: cannot find %s (looked at %s); build it or set its variable\n",
                   what, path.c_str());
      return kExitFailed;
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
    std::fprintf(stderr, "asya up: %s\n", next.error().message.c_str());
    return kExitUsage;
  }
  const local::DesiredState& desired = *next;
  if (auto w = local::WriteDesired(args.state_dir, desired); !w) {
    std::fprintf(stderr, "asya up: %s\n", w.error().message.c_str());
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
    std::fprintf(stderr, "asya up: %s\n", st.error().message.c_str());
    return kExitFailed;
  }
  std::printf("asya up: mesh running in the background (pid %d): %zu actors + crew, transport %s\n",
              child, loaded->actors.size(), args.transport.c_str());
  std::printf(
      "  state: %s\n  logs:  asya logs ACTOR  (supervisor: %s/logs/asya.log)\n"
      "  stop:  asya down%s\n",
      args.state_dir.c_str(), args.state_dir.c_str(),
      args.state_dir == AbsoluteDir(DefaultStateDir())
          ? ""
          : (" --state-dir " + args.state_dir).c_str());
  return kExitOk;
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
  while (std::chrono::steady_clock::now() < deadline) {
    // The lock is released as the process exits; then wait for the exit itself (a zombie
    // waiting for PID 1 to reap it counts as gone).
    if (local::RunningSupervisorPid(state_dir) == 0 && !ProcessAlive(pid)) {
      std::printf("asya down: mesh stopped (pid %d)\n", pid);
      return kExitOk;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
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
    std::fprintf(stderr, "asya get: %s\n", st.error().message.c_str());
    return kExitFailed;
  }
  std::vector<local::ActorStatus> rows;
  for (const auto& n : names) {
    auto it = std::find_if(st->actors.begin(), st->actors.end(),
                           [&](const local::ActorStatus& a) { return a.name == n; });
    if (it == st->actors.end()) {
      std::fprintf(stderr, "asya get: actor \"%s\" not found\n", n.c_str());
      return kExitFailed;
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
    std::fprintf(stderr, "asya describe: %s\n", st.error().message.c_str());
    return kExitFailed;
  }
  for (const auto& a : st->actors) {
    if (a.name == name) {
      std::string out = local::RenderDescribe(a, WallMs());
      std::fwrite(out.data(), 1, out.size(), stdout);
      return kExitOk;
    }
  }
  std::fprintf(stderr, "asya describe: actor \"%s\" not found\n", name.c_str());
  return kExitFailed;
}

volatile std::sig_atomic_t g_stop_follow = 0;

int Logs(const std::string& actor, bool follow, const std::string& state_dir_arg) {
  const std::string path = local::LogPath(AbsoluteDir(state_dir_arg), actor);
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    std::fprintf(stderr, "asya logs: no logs for actor \"%s\" (%s)\n", actor.c_str(), path.c_str());
    return kExitFailed;
  }
  if (follow) {
    std::signal(SIGINT, [](int) { g_stop_follow = 1; });
    std::signal(SIGTERM, [](int) { g_stop_follow = 1; });
  }
  char buf[65536];
  while (true) {
    ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n > 0) {
      std::fwrite(buf, 1, static_cast<size_t>(n), stdout);
      continue;
    }
    if (!follow || g_stop_follow != 0) {
      break;
    }
    std::fflush(stdout);
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  ::close(fd);
  return kExitOk;
}

// ---------------------------------------------------------------------------------------------
// send

struct SendArgs {
  std::string route;
  std::string payload;  // JSON text, or a file name with --jsonl, or "-" = stdin
  bool jsonl = false;
  bool wait = false;
  double timeout_s = 60;
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

// A message for an actor the mesh does not run waits in its queue: say so.
void WarnIfUnknownActor(const std::string& state_dir, const std::string& actor) {
  auto st = ReadStatus(state_dir);
  if (!st) {
    return;
  }
  bool known = std::any_of(st->actors.begin(), st->actors.end(),
                           [&](const local::ActorStatus& a) { return a.name == actor; });
  if (!known) {
    std::fprintf(stderr,
                 "asya send: warning: actor \"%s\" is not part of the mesh in %s; the message "
                 "waits in queue %s\n",
                 actor.c_str(), state_dir.c_str(), transport::QueueName(actor).c_str());
  }
}

int Send(const SendArgs& args) {
  const std::string state_dir = AbsoluteDir(args.state_dir);
  auto actors = local::ParseRoute(args.route);
  if (!actors) {
    std::fprintf(stderr, "asya send: %s\n", actors.error().message.c_str());
    return kExitUsage;
  }
  auto text = local::ReadPayloadText(args.payload, args.jsonl, std::cin);
  if (!text) {
    std::fprintf(stderr, "asya send: %s\n", text.error().message.c_str());
    return kExitUsage;
  }
  auto payloads = local::SplitPayloads(*text, args.jsonl);
  if (!payloads) {
    std::fprintf(stderr, "asya send: %s\n", payloads.error().message.c_str());
    return kExitUsage;
  }
  if (args.jsonl && args.wait) {
    std::fprintf(stderr, "asya send: --wait works with one payload, not --jsonl\n");
    return kExitUsage;
  }
  const std::string kind = SendTransportKind(args, state_dir);
  WarnIfUnknownActor(state_dir, actors->front());
  auto settings = TransportFor(kind, state_dir);
  if (!settings) {
    std::fprintf(stderr, "asya send: %s\n", settings.error().message.c_str());
    return kExitUsage;
  }
  auto transport = transport::MakeTransport(*settings);
  if (!transport) {
    std::fprintf(stderr, "asya send: %s\n", transport.error().message.c_str());
    return kExitFailed;
  }
  const std::string since = local::CrewStampFloor(SystemClock().WallNow());
  const std::string queue = transport::QueueName(actors->front());
  std::string id;
  for (const auto& p : *payloads) {
    id = local::NewEnvelopeId();
    std::string body = local::BuildEnvelope(id, *actors, local::NewTraceparent(), p);
    if (auto st = (*transport)->Publish(queue, body); !st) {
      std::fprintf(stderr, "asya send: publish to %s failed: %s\n", queue.c_str(),
                   st.error().message.c_str());
      return kExitFailed;
    }
    std::printf("%s\n", id.c_str());
  }
  std::fflush(stdout);
  if (!args.wait) {
    return kExitOk;
  }
  const auto timeout = std::chrono::duration_cast<Clock::Duration>(
      std::chrono::milliseconds(static_cast<int64_t>(args.timeout_s * 1000)));
  const local::SendResult result =
      local::WaitForResult(state_dir, id, since, timeout, SystemClock());
  if (result.outcome == local::SendOutcome::kTimedOut) {
    std::fprintf(stderr, "asya send: no result for %s within %.0fs\n", id.c_str(), args.timeout_s);
    return local::ExitCodeOf(result.outcome);
  }
  std::fprintf(stderr, "asya send: %s: %s\n",
               result.outcome == local::SendOutcome::kSucceeded ? "succeeded" : "failed",
               result.path.c_str());
  if (auto body = local::ReadFile(result.path)) {
    std::fwrite(body->data(), 1, body->size(), stdout);
  }
  return local::ExitCodeOf(result.outcome);
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
    app.add_option("--restart-backoff", up.restart_backoff,
                   "first crash back-off, doubling to 5m (default 10s; ASYA_UP_RESTART_BACKOFF)");
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
                 "wait for the result (exit 0 succeeded, 1 failed, 2 timeout)");
    app.add_option("--timeout", send.timeout_s, "seconds to wait with --wait (default 60)");
    app.add_option("--transport", send.transport, "default: the mesh's transport");
    app.add_flag("--jsonl", send.jsonl,
                 "PAYLOAD is a file ('-' = stdin) with one JSON payload per line; one envelope "
                 "each, one id printed per line");
  }
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
