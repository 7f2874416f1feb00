#include "asya/local/apply.h"

#include <csignal>
#include <map>

#include <sys/wait.h>

#include <nlohmann/json.hpp>

#include "asya/base/file.h"
#include "asya/base/transport_kinds.h"
#include "asya/local/supervisor.h"

namespace asya::local {

namespace {

constexpr auto kPollEvery = std::chrono::milliseconds(50);

}  // namespace

std::string EncodeDesired(const DesiredState& d) {
  nlohmann::json j = {{"generation", d.generation},
                      {"paths", d.paths},
                      {"transport", d.transport},
                      {"prune", d.prune}};
  return j.dump(2) + "\n";
}

Result<DesiredState> DecodeDesired(const std::string& text) {
  try {
    auto j = nlohmann::json::parse(text);
    DesiredState d;
    d.generation = j.at("generation").get<int64_t>();
    d.paths = j.at("paths").get<std::vector<std::string>>();
    d.transport = j.value("transport", transport_kind::kSqlite);
    d.prune = j.value("prune", false);
    return d;
  } catch (const nlohmann::json::exception& e) {
    return MakeError(ErrorCode::kInvalidArgument, std::string("invalid desired.json: ") + e.what());
  }
}

Result<DesiredState> ReadDesired(const std::string& state_dir) {
  ASYA_ASSIGN_OR_RETURN(std::string text, ReadFile(DesiredPath(state_dir)));
  return DecodeDesired(text);
}

Status WriteDesired(const std::string& state_dir, const DesiredState& d) {
  return WriteFileAtomic(DesiredPath(state_dir), EncodeDesired(d));
}

Result<DesiredState> NextDesired(const std::optional<DesiredState>& previous,
                                 std::vector<std::string> paths, const std::string& transport,
                                 bool running, const std::string& state_dir, bool prune) {
  DesiredState next = previous.value_or(DesiredState{});
  if (running && next.transport != transport) {
    return MakeError(ErrorCode::kFailedPrecondition,
                     "the mesh running in " + state_dir + " uses transport " + next.transport +
                         "; stop it with `asya down` before switching to " + transport);
  }
  next.generation += 1;
  next.paths = std::move(paths);
  next.transport = transport;
  next.prune = prune;
  return next;
}

ApplyProgress CheckApplied(const std::optional<MeshStatus>& status, int pid, int64_t generation,
                           bool supervisor_exited) {
  if (status && status->pid == pid && status->generation >= generation) {
    return ApplyProgress::kApplied;
  }
  return supervisor_exited ? ApplyProgress::kExited : ApplyProgress::kWaiting;
}

Result<MeshStatus> WaitApplied(const std::string& state_dir, int pid, int64_t generation,
                               Clock::Duration timeout, const std::function<bool()>& exited,
                               Clock& clock) {
  const auto deadline = clock.Now() + timeout;
  while (clock.Now() < deadline) {
    std::optional<MeshStatus> st;
    if (auto text = ReadFile(StatusPath(state_dir))) {
      if (auto decoded = DecodeMeshStatus(*text)) {
        st = std::move(*decoded);
      }
    }
    switch (CheckApplied(st, pid, generation, exited())) {
      case ApplyProgress::kApplied:
        return std::move(*st);
      case ApplyProgress::kExited:
        if (st && st->pid == pid && !st->last_error.empty()) {
          return MakeError(ErrorCode::kFailedPrecondition, st->last_error);
        }
        return MakeError(ErrorCode::kUnavailable,
                         "the supervisor exited; see " + state_dir + "/logs/asya.log");
      case ApplyProgress::kWaiting:
        break;
    }
    clock.SleepFor(kPollEvery);
  }
  return MakeError(ErrorCode::kDeadlineExceeded, "the supervisor did not apply the change in time");
}

Result<MeshStatus> SignalAndWaitApplied(const std::string& state_dir, int pid, int64_t generation,
                                        Clock::Duration timeout, Clock& clock) {
  if (pid > 0) {
    ::kill(pid, SIGHUP);
  }
  return WaitApplied(
      state_dir, pid, generation, timeout, [pid] { return SupervisorExited(pid, false); }, clock);
}

bool SupervisorExited(int pid, bool is_child) {
  if (is_child) {
    int wstatus = 0;
    return ::waitpid(pid, &wstatus, WNOHANG) == pid;
  }
  return ::kill(pid, 0) != 0;
}

ApplyPlan PlanApply(const std::vector<RunningActor>& running,
                    const std::vector<actor::ActorSpec>& desired, bool prune) {
  std::map<std::string, const RunningActor*> by_name;
  for (const auto& r : running) {
    by_name[r.name] = &r;
  }
  ApplyPlan plan;
  std::set<std::string> declared;
  for (size_t i = 0; i < desired.size(); ++i) {
    const actor::ActorSpec& spec = desired[i];
    declared.insert(spec.name);
    ActorChange c;
    c.spec_index = i;
    auto it = by_name.find(spec.name);
    if (it == by_name.end()) {
      c.kind = ActorChange::Kind::kAdd;
    } else {
      c.redeclared = it->second->removing;
      c.kind = it->second->fingerprint == spec.Fingerprint() ? ActorChange::Kind::kKeep
                                                             : ActorChange::Kind::kUpdate;
    }
    plan.changes.push_back(c);
  }
  for (const auto& r : running) {
    if (declared.count(r.name) == 0 && !r.removing) {
      (prune ? plan.removed : plan.undeclared).push_back(r.name);
    }
  }
  return plan;
}

ApplySummary SummariseApply(const std::set<std::string>& before,
                            const std::vector<actor::ActorSpec>& desired, bool prune) {
  ApplySummary out;
  std::set<std::string> now;
  for (const auto& s : desired) {
    now.insert(s.name);
    (before.count(s.name) != 0 ? out.kept : out.added).push_back(s.name);
  }
  for (const auto& b : before) {
    if (now.count(b) == 0) {
      (prune ? out.removed : out.undeclared).push_back(b);
    }
  }
  return out;
}

Readiness CheckReadiness(const MeshStatus& status, const std::set<std::string>& names) {
  Readiness out;
  std::set<std::string> seen;
  for (const auto& a : status.actors) {
    if (!names.empty() && names.count(a.name) == 0) {
      continue;
    }
    seen.insert(a.name);
    if (a.failing > 0) {
      out.failing.push_back(a.name);
    } else if (a.ready == a.desired && a.total == a.desired) {
      out.ready.push_back(a.name);
    } else {
      out.starting.push_back(a.name);
    }
  }
  for (const auto& n : names) {
    if (seen.count(n) == 0) {
      out.starting.push_back(n);
    }
  }
  return out;
}

Readiness WaitReady(const std::string& state_dir, const std::set<std::string>& names,
                    Clock::Duration timeout, const std::function<void(const Readiness&)>& progress,
                    Clock& clock) {
  const auto deadline = clock.Now() + timeout;
  while (true) {
    Readiness r;
    std::optional<MeshStatus> st;
    if (auto text = ReadFile(StatusPath(state_dir))) {
      if (auto decoded = DecodeMeshStatus(*text)) {
        st = std::move(*decoded);
      }
    }
    if (st) {
      r = CheckReadiness(*st, names);
    } else {
      r.starting.assign(names.begin(), names.end());
      if (names.empty()) {
        r.starting.push_back("(status.json)");
      }
    }
    if (progress) {
      progress(r);
    }
    if (r.Settled() || clock.Now() >= deadline) {
      return r;
    }
    clock.SleepFor(kPollEvery * 4);
  }
}

}  // namespace asya::local
