// Names that cross a process boundary (DESIGN §5 "one constant each"): what `asya up` writes is
// what the programs it starts read. The readers are other programs, so their sources are checked:
// every ASYA_* variable a launch spec sets must be read by the program it starts, through the
// shared constant (env_names.h: ASYA_SOME_NAME is kSomeName) or, in Python, by its literal name.
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include <unistd.h>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "asya/base/crew_layout.h"
#include "asya/base/env_names.h"
#include "asya/base/exit_codes.h"
#include "asya/base/runtime_files.h"
#include "asya/base/transport_kinds.h"
#include "asya/crew/crew.h"
#include "asya/local/launch.h"
#include "asya/local/send.h"
#include "asya/local/supervisor.h"

namespace asya::local {
namespace {

namespace fs = std::filesystem;

std::string SourceDir() {
  const char* dir = std::getenv("ASYA_SOURCE_DIR");
  return dir != nullptr ? dir : ASYA_TEST_SOURCE_DIR;
}

// Every .cc/.h/.py file under `rel` (a directory or one file), concatenated.
std::string Sources(const std::string& rel) {
  const fs::path root = fs::path(SourceDir()) / rel;
  std::vector<fs::path> files;
  if (fs::is_regular_file(root)) {
    files.push_back(root);
  } else {
    for (const auto& e : fs::recursive_directory_iterator(root)) {
      const auto ext = e.path().extension();
      if (e.is_regular_file() && (ext == ".cc" || ext == ".h" || ext == ".py")) {
        files.push_back(e.path());
      }
    }
  }
  std::string all;
  for (const auto& f : files) {
    std::ifstream in(f);
    std::stringstream ss;
    ss << in.rdbuf();
    all += ss.str();
  }
  EXPECT_FALSE(all.empty()) << "no sources under " << root;
  return all;
}

// ASYA_SOCKET_DIR -> kSocketDir.
std::string ConstantName(const std::string& var) {
  std::string out = "k";
  bool upper = true;
  for (char c : var.substr(5)) {
    if (c == '_') {
      upper = true;
      continue;
    }
    out += upper ? c : static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    upper = false;
  }
  return out;
}

// Read by `sources`: through the shared constant or the literal name.
bool Reads(const std::string& sources, const std::string& var) {
  return sources.find("::" + ConstantName(var)) != std::string::npos ||
         sources.find("\"" + var + "\"") != std::string::npos;
}

// The ASYA_* names a launch sets on its own (not inherited, not copied from the manifest's env).
std::set<std::string> SetByLaunch(const LaunchSpec& l,
                                  const std::vector<actor::EnvVar>& manifest_env) {
  std::set<std::string> manifest;
  for (const auto& e : manifest_env) {
    manifest.insert(e.name);
  }
  std::set<std::string> out;
  for (const auto& e : l.env) {
    std::string name = e.substr(0, e.find('='));
    if (name.rfind("ASYA_", 0) == 0 && manifest.count(name) == 0) {
      out.insert(name);
    }
  }
  return out;
}

MeshLaunchSettings Mesh() {
  MeshLaunchSettings m;
  m.state_dir = "/state";
  m.transport_kind = transport_kind::kSqlite;
  m.sqlite_path = "/state/queues.db";
  m.sidecar_bin = "asya-sidecar";
  m.python_runtime = "asya_runtime.py";
  return m;
}

actor::ActorSpec UserActor() {
  actor::ActorSpec a;
  a.name = "a";
  a.directory = "/p";
  a.processing_timeout_s = 5;
  a.sidecar_env = {{env_name::kSidecarConcurrency, "2"}};  // the runtime gets a matching value
  return a;
}

TEST(Names, ConstantNameRule) {
  EXPECT_EQ(ConstantName(env_name::kSocketDir), "kSocketDir");
  EXPECT_EQ(ConstantName(env_name::kIsEndActor), "kIsEndActor");
}

TEST(Names, EveryVariableTheSidecarLaunchSetsIsReadByTheSidecar) {
  const std::string sidecar = Sources("src/bin/sidecar") + Sources("src/bin/common");
  std::vector<actor::ActorSpec> actors = CrewActors("/state", "asya-crew");
  actors.push_back(UserActor());
  std::set<std::string> seen;
  for (const auto& a : actors) {
    for (const auto& var : SetByLaunch(SidecarLaunchSpec(a, Mesh(), "/s"), a.sidecar_env)) {
      seen.insert(var);
      EXPECT_TRUE(Reads(sidecar, var)) << var << " is set for the sidecar but not read by it";
    }
  }
  EXPECT_FALSE(Reads(sidecar, "ASYA_NOT_A_VARIABLE"));  // the check can fail
  // The check covers what the supervisor relies on.
  for (const char* must : {env_name::kActorName, env_name::kTransport, env_name::kSqlitePath,
                           env_name::kSocketDir, env_name::kIsEndActor}) {
    EXPECT_EQ(seen.count(must), 1u) << must;
  }
}

TEST(Names, EveryVariableTheRuntimeLaunchSetsIsReadByBothRuntimes) {
  const std::string python = Sources("src/runtime/python/asya_runtime.py");
  const std::string sdk = Sources("src/runtime");
  const actor::ActorSpec a = UserActor();
  const auto vars = SetByLaunch(RuntimeLaunchSpec(a, Mesh(), "/s"), a.runtime_env);
  EXPECT_EQ(vars.count(env_name::kRuntimeConcurrency), 1u);
  for (const auto& var : vars) {
    EXPECT_NE(python.find("\"" + var + "\""), std::string::npos)
        << var << " is set for the runtime but asya_runtime.py does not read it";
    EXPECT_TRUE(Reads(sdk, var)) << var
                                 << " is set for the runtime but the C++ SDK does not read it";
  }
}

TEST(Names, EveryVariableTheCrewLaunchSetsIsReadByTheCrewOrTheSdk) {
  const std::string crew = Sources("src/bin/crew") + Sources("src/runtime");
  for (const auto& a : CrewActors("/state", "asya-crew")) {
    const auto vars = SetByLaunch(RuntimeLaunchSpec(a, Mesh(), "/s"), {});
    EXPECT_EQ(vars.count(env_name::kCrewDir), 1u);
    for (const auto& var : vars) {
      EXPECT_TRUE(Reads(crew, var)) << var << " is set for asya-crew but not read by it";
    }
  }
}

TEST(Names, SocketAndReadyFileAsThePythonRuntimeSpellsThem) {
  const std::string python = Sources("src/runtime/python/asya_runtime.py");
  EXPECT_NE(
      python.find(std::string("DEFAULT_SOCKET_NAME = \"") + runtime_files::kSocketName + "\""),
      std::string::npos);
  EXPECT_NE(python.find(std::string("READY_FILE_NAME = \"") + runtime_files::kReadyName + "\""),
            std::string::npos);
  EXPECT_NE(python.find(std::string("\"") + runtime_files::kDefaultSocketDir + "\""),
            std::string::npos);
}

TEST(Names, HandlerTimeoutExitAsThePythonRuntimeExits) {
  const std::string python = Sources("src/runtime/python/asya_runtime.py");
  EXPECT_NE(
      python.find("EXIT_HANDLER_TIMEOUT = " + std::to_string(exit_code::kRuntimeHandlerTimeout)),
      std::string::npos);
}

TEST(Names, TransportKinds) {
  for (const char* k : transport_kind::kAll) {
    EXPECT_TRUE(transport_kind::IsKnown(k)) << k;
  }
  EXPECT_FALSE(transport_kind::IsKnown("SQLite"));
  EXPECT_FALSE(transport_kind::IsKnown(""));
}

TEST(Names, WhatTheCrewStoresIsWhatSendWaitFinds) {
  const fs::path root = fs::temp_directory_path() / ("asya-names-" + std::to_string(::getpid()));
  fs::remove_all(root);
  const auto now = std::chrono::system_clock::now();
  const std::string since = CrewStampFloor(now);
  auto actors = CrewActors(root.string(), "asya-crew");
  for (size_t i = 0; i < actors.size(); ++i) {
    const std::string prefix = actors[i].RuntimeEnv(env_name::kCrewPrefix);
    const std::string id = "id-" + std::to_string(i);
    nlohmann::json env = {{"id", id}, {"route", {{"actors", {"a", "b"}}, {"current", 1}}}};
    crew::DirectorySink sink(root.string());
    ASSERT_TRUE(sink.Put(crew::MakeKey(env, id, prefix, now), crew::Render(env)).has_value());
  }
  ResultWatcher ok_watch(root.string(), since, {"id-0"});
  const WaitSummary ok = WaitForTrees(ok_watch, std::chrono::seconds(1), SystemClock());
  EXPECT_EQ(ok.outcome, SendOutcome::kSucceeded);
  EXPECT_EQ(ExitCodeOf(ok.outcome), exit_code::kOk);
  ResultWatcher failed_watch(root.string(), since, {"id-1"});
  const WaitSummary failed = WaitForTrees(failed_watch, std::chrono::seconds(1), SystemClock());
  EXPECT_EQ(failed.outcome, SendOutcome::kFailed);
  EXPECT_EQ(ExitCodeOf(failed.outcome), exit_code::kFailed);
  ASSERT_EQ(failed.finals.size(), 1u);
  const std::string path = failed.finals[0].path;
  EXPECT_NE(path.find("/" + std::string(crew_layout::kErrorsDir) + "/"), std::string::npos);
  EXPECT_EQ(fs::path(path).parent_path().filename(), "b");  // <last_actor>/<id>.json
  fs::remove_all(root);
}

}  // namespace
}  // namespace asya::local
