// The example runtimes as real processes: environment, signals, watchdog, exit codes.
#include <cstdlib>
#include <map>
#include <string>
#include <vector>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "unit/runtime/test_client.h"

namespace asya::runtime {
namespace {

using nlohmann::json;
using testing::Call;
using testing::FileExists;
using testing::TempDir;
using testing::WaitFor;

std::string Bin(const std::string& name) {
  const char* build = std::getenv("ASYA_BUILD_DIR");
  return std::string(build != nullptr ? build : ".") + "/bin/" + name;
}

class Process {
 public:
  Process(const std::string& exe, const std::map<std::string, std::string>& env) {
    std::vector<std::string> vars;
    for (const auto& [k, v] : env) {
      vars.push_back(k + "=" + v);
    }
    pid_ = ::fork();
    if (pid_ == 0) {
      std::vector<char*> envp;
      for (auto& v : vars) {
        envp.push_back(v.data());
      }
      envp.push_back(nullptr);
      char* argv[] = {const_cast<char*>(exe.c_str()), nullptr};
      ::execve(exe.c_str(), argv, envp.data());
      ::_exit(127);
    }
  }
  ~Process() {
    if (pid_ > 0 && !exited_) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }
  void Signal(int sig) const { ::kill(pid_, sig); }
  // Waits (up to 30 s) and returns the exit code, or -1.
  int Wait() {
    int status = 0;
    bool done = WaitFor([&] { return ::waitpid(pid_, &status, WNOHANG) == pid_; });
    if (!done) {
      return -1;
    }
    exited_ = true;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }

 private:
  pid_t pid_ = -1;
  bool exited_ = false;
};

std::map<std::string, std::string> Env(const TempDir& dir,
                                       std::map<std::string, std::string> extra = {}) {
  extra["ASYA_SOCKET_DIR"] = dir.path();
  return extra;
}

constexpr std::string_view kMsg = R"({"id":"m","route":{"actors":["a","b"]},"payload":{"x":1}})";

TEST(RuntimeBinaryTest, EchoServesAndExitsCleanlyOnSigterm) {
  TempDir dir;
  Process p(Bin("asya-echo-runtime"), Env(dir, {{"ASYA_SOCKET_CHMOD", "0o600"}}));
  std::string sock = dir.path() + "/asya-runtime.sock";
  ASSERT_TRUE(WaitFor([&] { return FileExists(dir.path() + "/runtime-ready"); }));
  auto r = Call(sock, kMsg);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(*r, R"([{"payload":{"x":1},"route":{"actors":["a","b"],"current":1}}])");
  p.Signal(SIGTERM);
  EXPECT_EQ(p.Wait(), 0);
  EXPECT_FALSE(FileExists(sock));
  EXPECT_FALSE(FileExists(dir.path() + "/runtime-ready"));
}

TEST(RuntimeBinaryTest, WatchdogExitsWithCode3WhenAHandlerOverruns) {
  TempDir dir;
  Process p(Bin("asya-runtime-test-sleeper"), Env(dir, {{"ASYA_RUNTIME_TIMEOUT", "200ms"}}));
  std::string sock = dir.path() + "/asya-runtime.sock";
  ASSERT_TRUE(WaitFor([&] { return FileExists(dir.path() + "/runtime-ready"); }));
  auto fast = Call(sock, R"({"route":{"actors":["a"]},"payload":{"sleep_ms":0}})");
  ASSERT_TRUE(fast.has_value());
  EXPECT_EQ(json::parse(*fast)[0]["route"]["current"], 1);
  auto slow = Call(sock, R"({"route":{"actors":["a"]},"payload":{"sleep_ms":60000}})");
  EXPECT_FALSE(slow.has_value());  // no response: the runtime exits
  EXPECT_EQ(p.Wait(), 3);
  EXPECT_FALSE(FileExists(sock));
  EXPECT_FALSE(FileExists(dir.path() + "/runtime-ready"));
}

TEST(RuntimeBinaryTest, WordCountFansOutAndReportsErrors) {
  TempDir dir;
  Process p(Bin("asya-word-count-runtime"), Env(dir, {{"ASYA_RUNTIME_CONCURRENCY", "2"}}));
  std::string sock = dir.path() + "/asya-runtime.sock";
  ASSERT_TRUE(WaitFor([&] { return FileExists(dir.path() + "/runtime-ready"); }));
  auto r = Call(sock, R"({"route":{"actors":["wc","next"]},"headers":{"x-asya-attempt":2},)"
                      R"("payload":{"text":"Hello world. Asya is an actor mesh!"}})");
  ASSERT_TRUE(r.has_value());
  auto j = json::parse(*r);
  ASSERT_EQ(j.size(), 2u) << j;
  EXPECT_EQ(j[0]["payload"]["words"], 2);
  EXPECT_EQ(j[1]["payload"]["sentence"], "Asya is an actor mesh!");
  EXPECT_EQ(j[1]["payload"]["words"], 5);
  EXPECT_EQ(j[1]["payload"]["attempt"], 2);
  EXPECT_EQ(j[1]["headers"]["x-asya-attempt"], 2);
  EXPECT_EQ(j[1]["route"]["current"], 1);
  auto empty = Call(sock, R"({"route":{"actors":["wc"]},"payload":{"text":"  "}})");
  EXPECT_EQ(empty.value_or("?"), "[]");
  auto err =
      json::parse(Call(sock, R"({"route":{"actors":["wc"]},"payload":{"t":1}})").value_or("0"));
  EXPECT_EQ(err[0]["error"], "processing_error");
  EXPECT_EQ(err[0]["details"]["type"], "ValueError");
  EXPECT_EQ(err[0]["details"]["message"], "payload.text must be a string");
  p.Signal(SIGINT);
  EXPECT_EQ(p.Wait(), 0);
}

struct BadEnv {
  std::string name;
  std::string var;
  std::string value;
};

class RuntimeConfigTest : public ::testing::TestWithParam<BadEnv> {};

TEST_P(RuntimeConfigTest, InvalidEnvironmentExitsWithCode1) {
  TempDir dir;
  Process p(Bin("asya-echo-runtime"), Env(dir, {{GetParam().var, GetParam().value}}));
  EXPECT_EQ(p.Wait(), 1);
  EXPECT_FALSE(FileExists(dir.path() + "/runtime-ready"));
}

INSTANTIATE_TEST_SUITE_P(
    Runtime, RuntimeConfigTest,
    ::testing::Values(BadEnv{"ModeMismatch", "ASYA_HANDLER_MODE", "envelope"},
                      BadEnv{"UnknownMode", "ASYA_HANDLER_MODE", "stream"},
                      BadEnv{"BadChmod", "ASYA_SOCKET_CHMOD", "rw-rw-rw-"},
                      BadEnv{"BadTimeout", "ASYA_RUNTIME_TIMEOUT", "soon"},
                      BadEnv{"ZeroConcurrency", "ASYA_RUNTIME_CONCURRENCY", "0"},
                      BadEnv{"BadMaxBytes", "ASYA_MAX_MESSAGE_BYTES", "1MB"},
                      BadEnv{"LongSocketName", "ASYA_SOCKET_NAME", std::string(120, 'x')}),
    [](const auto& p) { return p.param.name; });

}  // namespace
}  // namespace asya::runtime
