// Launch specs of a replica: argv, environment and working directory, without forking.
#include "asya/local/launch.h"

#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include "asya/local/supervisor.h"
#include "support/temp_dir.h"

namespace asya::local {
namespace {

namespace fs = std::filesystem;

MeshLaunchSettings Mesh(std::string kind = "sqlite") {
  MeshLaunchSettings m;
  m.state_dir = "/state";
  m.transport_kind = std::move(kind);
  m.sqlite_path = "/state/queues.db";
  m.sidecar_bin = "/bin/asya-sidecar";
  m.python_runtime = "/bin/asya_runtime.py";
  m.base_env = {"HOME=/home/u", "PYTHONPATH=/lib/py", "ASYA_LOG_LEVEL=DEBUG"};
  return m;
}

actor::ActorSpec Spec() {
  actor::ActorSpec a;
  a.name = "doubler";
  a.directory = "/proj/manifests";
  a.processing_timeout_s = 30;
  a.runtime_env = {{"ASYA_HANDLER", "handlers.double"}};
  return a;
}

TEST(Launch, PythonRuntimeByDefault) {
  LaunchSpec l = RuntimeLaunchSpec(Spec(), Mesh(), "/state/run/doubler-0");
  EXPECT_EQ(l.argv, (std::vector<std::string>{"python3", "/bin/asya_runtime.py"}));
  EXPECT_EQ(l.cwd, "/proj/manifests");
  EXPECT_EQ(EnvValue(l.env, "ASYA_HANDLER"), "handlers.double");
  EXPECT_EQ(EnvValue(l.env, "ASYA_SOCKET_DIR"), "/state/run/doubler-0");
  EXPECT_EQ(EnvValue(l.env, "ASYA_RUNTIME_TIMEOUT"), "30s");
  EXPECT_EQ(EnvValue(l.env, "PYTHONPATH"), "/proj/manifests:/proj:/lib/py");
  EXPECT_EQ(EnvValue(l.env, "PYTHONUNBUFFERED"), "1");
  EXPECT_EQ(EnvValue(l.env, "HOME"), "/home/u");  // the caller's environment is kept
  EXPECT_EQ(EnvValue(l.env, "ASYA_ENABLE_VALIDATION"), "");
  EXPECT_EQ(EnvValue(l.env, "ASYA_ACTOR_NAME"), "");  // sidecar-only settings stay out
}

TEST(Launch, LocalCommandIsResolvedAgainstTheManifestDirectory) {
  actor::ActorSpec a = Spec();
  a.local_command = {"./bin/../native-runtime", "--flag"};
  LaunchSpec l = RuntimeLaunchSpec(a, Mesh(), "/s");
  EXPECT_EQ(l.argv, (std::vector<std::string>{"/proj/manifests/native-runtime", "--flag"}));
  a.local_command = {"native-runtime"};  // no '/': looked up on PATH
  EXPECT_EQ(RuntimeLaunchSpec(a, Mesh(), "/s").argv[0], "native-runtime");
  a.local_command = {"/opt/rt"};
  EXPECT_EQ(RuntimeLaunchSpec(a, Mesh(), "/s").argv[0], "/opt/rt");
  EXPECT_EQ(RuntimeCommandLine(a, "/x.py"), "/opt/rt");
  EXPECT_EQ(RuntimeCommandLine(Spec(), "/x.py"), "python3 /x.py");
}

TEST(Launch, NoDirectoryRunsInTheStateDir) {
  actor::ActorSpec a = Spec();
  a.directory.clear();
  EXPECT_EQ(RuntimeLaunchSpec(a, Mesh(), "/s").cwd, "/state");
  EXPECT_EQ(SidecarLaunchSpec(a, Mesh(), "/s").cwd, "/state");
}

TEST(Launch, NoProcessingTimeoutLeavesTheRuntimeDefault) {
  actor::ActorSpec a = Spec();
  a.processing_timeout_s = 0;
  EXPECT_EQ(EnvValue(RuntimeLaunchSpec(a, Mesh(), "/s").env, "ASYA_RUNTIME_TIMEOUT"), "");
  EXPECT_EQ(EnvValue(SidecarLaunchSpec(a, Mesh(), "/s").env, "ASYA_RUNTIME_TIMEOUT"), "");
}

// Issue 11 item 15: wherever the manifest sets the timeout, runtime and sidecar get one value.
TEST(Launch, RuntimeAndSidecarShareOneTimeout) {
  actor::ActorSpec a = Spec();  // spec.timeout.processing 30
  auto both = [](const actor::ActorSpec& s) {
    return std::pair{EnvValue(RuntimeLaunchSpec(s, Mesh(), "/s").env, "ASYA_RUNTIME_TIMEOUT"),
                     EnvValue(SidecarLaunchSpec(s, Mesh(), "/s").env, "ASYA_RUNTIME_TIMEOUT")};
  };
  EXPECT_EQ(both(a), (std::pair<std::string, std::string>{"30s", "30s"}));
  actor::ActorSpec in_runtime = a;
  in_runtime.runtime_env.push_back({"ASYA_RUNTIME_TIMEOUT", "1s"});
  EXPECT_EQ(both(in_runtime), (std::pair<std::string, std::string>{"1s", "1s"}));
  actor::ActorSpec in_sidecar = a;
  in_sidecar.sidecar_env.push_back({"ASYA_RUNTIME_TIMEOUT", "2500ms"});
  EXPECT_EQ(both(in_sidecar), (std::pair<std::string, std::string>{"2500ms", "2500ms"}));
}

// Issue 11 item 9: a runtime command that cannot be executed is refused before anything starts.
TEST(Launch, CheckRuntimeProgramNamesThePath) {
  test::TempDir dir;
  actor::ActorSpec a = Spec();
  a.source = "/m/rt.yaml";
  a.directory = dir.path();
  a.local_command = {"../nowhere/rt", "--flag"};
  auto st = CheckRuntimeProgram(a, Mesh(), "/usr/bin:/bin");
  ASSERT_FALSE(st.has_value());
  const std::string missing = fs::path(dir.path()).parent_path().string() + "/nowhere/rt";
  EXPECT_EQ(
      st.error().message,
      "/m/rt.yaml: actor \"doubler\": metadata.annotations[asya.sh/local-command]: " + missing +
          ": no such file (build it first, or fix the path: a relative path is relative to "
          "the manifest's directory)");
  const std::string rt = dir.path() + "/rt";
  { std::ofstream(rt) << "#!/bin/sh\n"; }
  a.local_command = {"./rt"};
  st = CheckRuntimeProgram(a, Mesh(), "");
  ASSERT_FALSE(st.has_value());
  EXPECT_NE(st.error().message.find(rt + ": not an executable file"), std::string::npos)
      << st.error().message;
  fs::permissions(rt, fs::perms::owner_all);
  EXPECT_TRUE(CheckRuntimeProgram(a, Mesh(), "").has_value());
  a.local_command = {"rt"};  // a bare name: looked up on PATH
  EXPECT_TRUE(CheckRuntimeProgram(a, Mesh(), "/nonexistent:" + dir.path()).has_value());
  st = CheckRuntimeProgram(a, Mesh(), "/nonexistent");
  ASSERT_FALSE(st.has_value());
  EXPECT_NE(st.error().message.find("rt: not found on PATH"), std::string::npos);
  actor::ActorSpec py = Spec();
  py.python_executable = "no-such-python";
  st = CheckRuntimeProgram(py, Mesh(), "/usr/bin:/bin");
  ASSERT_FALSE(st.has_value());
  EXPECT_NE(st.error().message.find("spec.workload.pythonExecutable: no-such-python: not found"),
            std::string::npos);
}

TEST(Launch, RuntimeConcurrencyFollowsTheSidecars) {
  actor::ActorSpec a = Spec();
  a.sidecar_env = {{"ASYA_SIDECAR_CONCURRENCY", "4"}};
  EXPECT_EQ(EnvValue(RuntimeLaunchSpec(a, Mesh(), "/s").env, "ASYA_RUNTIME_CONCURRENCY"), "4");
  a.runtime_env.push_back({"ASYA_RUNTIME_CONCURRENCY", "2"});  // the manifest sets both
  EXPECT_EQ(EnvValue(RuntimeLaunchSpec(a, Mesh(), "/s").env, "ASYA_RUNTIME_CONCURRENCY"), "2");
  for (const char* bad : {"0", "-1", "x", "4x", ""}) {
    actor::ActorSpec b = Spec();
    b.sidecar_env = {{"ASYA_SIDECAR_CONCURRENCY", bad}};
    EXPECT_EQ(EnvValue(RuntimeLaunchSpec(b, Mesh(), "/s").env, "ASYA_RUNTIME_CONCURRENCY"), "")
        << bad;
  }
}

TEST(Launch, Sidecar) {
  LaunchSpec l = SidecarLaunchSpec(Spec(), Mesh(), "/state/run/doubler-0");
  EXPECT_EQ(l.argv, (std::vector<std::string>{"/bin/asya-sidecar"}));
  EXPECT_EQ(l.cwd, "/proj/manifests");
  EXPECT_EQ(EnvValue(l.env, "ASYA_ACTOR_NAME"), "doubler");
  EXPECT_EQ(EnvValue(l.env, "ASYA_TRANSPORT"), "sqlite");
  EXPECT_EQ(EnvValue(l.env, "ASYA_SQLITE_PATH"), "/state/queues.db");
  EXPECT_EQ(EnvValue(l.env, "ASYA_SOCKET_DIR"), "/state/run/doubler-0");
  EXPECT_EQ(EnvValue(l.env, "ASYA_RUNTIME_TIMEOUT"), "30s");
  EXPECT_EQ(EnvValue(l.env, "ASYA_METRICS_ENABLED"), "false");
  EXPECT_EQ(EnvValue(l.env, "ASYA_QUEUE_AUTO_CREATE"), "true");
  EXPECT_EQ(EnvValue(l.env, "ASYA_IS_END_ACTOR"), "");
  EXPECT_EQ(EnvValue(l.env, "ASYA_LOG_LEVEL"), "DEBUG");
  EXPECT_EQ(EnvValue(l.env, "ASYA_HANDLER"), "");  // runtime-only settings stay out
  EXPECT_EQ(EnvValue(SidecarLaunchSpec(Spec(), Mesh("rabbitmq"), "/s").env, "ASYA_SQLITE_PATH"),
            "");
}

TEST(Launch, SidecarEnvOfTheManifestWins) {
  actor::ActorSpec a = Spec();
  a.sidecar_env = {{"ASYA_METRICS_ENABLED", "true"}, {"ASYA_MAX_HOPS", "7"}};
  LaunchSpec l = SidecarLaunchSpec(a, Mesh(), "/s");
  EXPECT_EQ(EnvValue(l.env, "ASYA_METRICS_ENABLED"), "true");
  EXPECT_EQ(EnvValue(l.env, "ASYA_MAX_HOPS"), "7");
  int count = 0;
  for (const auto& e : l.env) {
    count += e.rfind("ASYA_METRICS_ENABLED=", 0) == 0 ? 1 : 0;
  }
  EXPECT_EQ(count, 1);  // replaced, not added twice
}

TEST(Launch, SidecarMetricsBindToLoopback) {  // DESIGN §4 (13)
  EXPECT_EQ(EnvValue(SidecarLaunchSpec(Spec(), Mesh(), "/s").env, "ASYA_METRICS_ADDR"),
            "127.0.0.1:0");
  actor::ActorSpec a = Spec();
  for (const auto& [asked, got] :
       std::vector<std::pair<std::string, std::string>>{{":9100", "127.0.0.1:9100"},
                                                        {"0.0.0.0:9100", "127.0.0.1:9100"},
                                                        {"10.1.2.3:80", "127.0.0.1:80"},
                                                        {"localhost:", "127.0.0.1:0"},
                                                        {"9100", "127.0.0.1:0"}}) {
    a.sidecar_env = {{"ASYA_METRICS_ENABLED", "true"}, {"ASYA_METRICS_ADDR", asked}};
    EXPECT_EQ(EnvValue(SidecarLaunchSpec(a, Mesh(), "/s").env, "ASYA_METRICS_ADDR"), got) << asked;
  }
}

TEST(Launch, Crew) {
  auto crew = CrewActors("/state", "/bin/asya-crew");
  ASSERT_EQ(crew.size(), 2u);
  EXPECT_EQ(crew[0].name, "happy-end");
  EXPECT_EQ(crew[1].name, "error-end");
  LaunchSpec rt = RuntimeLaunchSpec(crew[1], Mesh(), "/s");
  EXPECT_EQ(rt.argv, (std::vector<std::string>{"/bin/asya-crew"}));
  EXPECT_EQ(rt.cwd, "/state");
  EXPECT_EQ(EnvValue(rt.env, "ASYA_CREW_DIR"), "/state");
  EXPECT_EQ(EnvValue(rt.env, "ASYA_CREW_PREFIX"), "errors/");
  EXPECT_EQ(EnvValue(rt.env, "ASYA_HANDLER_MODE"), "envelope");
  EXPECT_EQ(EnvValue(rt.env, "ASYA_ENABLE_VALIDATION"), "false");
  EXPECT_EQ(EnvValue(rt.env, "ASYA_RUNTIME_CONCURRENCY"), "8");
  EXPECT_EQ(EnvValue(RuntimeLaunchSpec(crew[0], Mesh(), "/s").env, "ASYA_CREW_PREFIX"), "results/");
  LaunchSpec sc = SidecarLaunchSpec(crew[0], Mesh(), "/s");
  EXPECT_EQ(EnvValue(sc.env, "ASYA_IS_END_ACTOR"), "true");
  EXPECT_EQ(EnvValue(sc.env, "ASYA_SIDECAR_CONCURRENCY"), "8");
}

TEST(Launch, SocketDirFallsBackWhenTheSocketPathWouldBeTooLong) {
  EXPECT_EQ(PreferredSocketDir("/state", "a", 3), "/state/run/a-3");
  std::string long_dir(80, 'd');
  EXPECT_EQ(PreferredSocketDir("/" + long_dir, "actor", 0), "");
  // The boundary: dir + "/asya-runtime.sock" (18 bytes) must stay under 100.
  std::string dir81 = "/" + std::string(81 - 1 - 8, 'x');  // + "/run/a-0" = 81 bytes
  ASSERT_EQ((dir81 + "/run/a-0").size(), 81u);
  EXPECT_EQ(PreferredSocketDir(dir81, "a", 0), dir81 + "/run/a-0");
  EXPECT_EQ(PreferredSocketDir(dir81 + "x", "a", 0), "");
}

TEST(Launch, EnvHelpers) {
  std::vector<std::string> env = {"A=1", "AB=2", "C="};
  EXPECT_EQ(EnvValue(env, "A"), "1");
  EXPECT_EQ(EnvValue(env, "AB"), "2");
  EXPECT_EQ(EnvValue(env, "C"), "");
  EXPECT_EQ(EnvValue(env, "B"), "");
  SetEnvValue(env, "A", "3");
  SetEnvValue(env, "C", "x");
  SetEnvValue(env, "D", "4");
  EXPECT_EQ(env, (std::vector<std::string>{"A=3", "AB=2", "C=x", "D=4"}));
}

}  // namespace
}  // namespace asya::local
