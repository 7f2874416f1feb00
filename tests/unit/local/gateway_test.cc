// The gateway under `asya up`: tools documents among the inputs, the gateway's and the sidecars'
// launch environment, the free-port pick and the /health probe (without forking).
#include "asya/local/gateway.h"

#include <algorithm>
#include <filesystem>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "asya/actor/manifest.h"
#include "asya/local/launch.h"
#include "asya/local/status.h"
#include "support/status_matchers.h"
#include "support/temp_dir.h"

namespace asya::local {
namespace {

constexpr char kActor[] = R"(apiVersion: asya.sh/v1alpha1
kind: AsyncActor
metadata:
  name: add
spec:
  workload:
    template:
      spec:
        containers:
          - name: asya-runtime
            image: python:3.11-slim
            env:
              - name: ASYA_HANDLER
                value: "steps.add"
)";

constexpr char kTools[] = R"(tools:
- name: compute
  route: [add]
  parameters:
    n: {type: integer, required: true}
)";

TEST(GatewayTools, ManifestLoadingSkipsToolsDocuments) {
  test::TempDir dir;
  dir.Write("a.yaml", std::string(kActor) + "---\n" + kTools);
  dir.Write("tools.yaml", kTools);
  ASSIGN_OR_FAIL(auto loaded, actor::LoadManifests({dir.path()}));
  ASSERT_EQ(loaded.actors.size(), 1u);
  EXPECT_EQ(loaded.actors[0].name, "add");
  // Not every unknown document: one without `tools:` is still refused.
  dir.Write("b.yaml", "routes: {x: [add]}\n");
  EXPECT_FALSE(actor::LoadManifests({dir.path()}).has_value());
}

TEST(GatewayTools, IsToolsDocument) {
  EXPECT_TRUE(actor::IsToolsDocument(nlohmann::json::parse(R"({"tools": []})")));
  EXPECT_FALSE(actor::IsToolsDocument(nlohmann::json::parse(R"({"tools": [], "kind": "X"})")));
  EXPECT_FALSE(actor::IsToolsDocument(nlohmann::json::parse(R"({"tools": [], "actors": []})")));
  EXPECT_FALSE(actor::IsToolsDocument(nlohmann::json::parse(R"({"routes": {}})")));
  EXPECT_FALSE(actor::IsToolsDocument(nlohmann::json::parse("[1]")));
}

TEST(GatewayTools, CollectsDocumentsWithTheirLines) {
  test::TempDir dir;
  const std::string a = dir.Write("a.yaml", std::string(kActor) + "---\n" + kTools);
  const std::string b = dir.Write("b.yaml", kTools);
  dir.Write("c.yaml", kActor);
  ASSIGN_OR_FAIL(auto docs, CollectToolsDocuments({dir.path()}));
  ASSERT_EQ(docs.size(), 2u);
  EXPECT_EQ(docs[0].source, a);
  EXPECT_EQ(docs[0].first_line, 16);  // after the 14 lines of the actor and the marker
  EXPECT_EQ(docs[0].text, kTools);
  EXPECT_EQ(docs[1].source, b);
  EXPECT_EQ(docs[1].first_line, 1);
  // A file given by name is read as well; a missing one is an error.
  ASSIGN_OR_FAIL(auto one, CollectToolsDocuments({b}));
  EXPECT_EQ(one.size(), 1u);
  auto missing = CollectToolsDocuments({dir.File("nope.yaml")});
  ASSERT_FALSE(missing.has_value());
  EXPECT_EQ(missing.error().code, ErrorCode::kNotFound);
}

TEST(GatewayTools, ErrorsNameTheSourceFileAndLine) {
  test::TempDir dir;
  const std::string a =
      dir.Write("a.yaml", std::string(kActor) + "---\n" + kTools + "  colour: red\n");
  ASSIGN_OR_FAIL(auto docs, CollectToolsDocuments({a}));
  auto st = CheckToolsDocuments(docs);
  ASSERT_FALSE(st.has_value());
  EXPECT_EQ(st.error().code, ErrorCode::kInvalidArgument);
  EXPECT_NE(st.error().message.find(a + ":21"), std::string::npos) << st.error().message;
  EXPECT_NE(st.error().message.find("colour"), std::string::npos) << st.error().message;
}

TEST(GatewayTools, ToolDeclaredTwiceAcrossFiles) {
  test::TempDir dir;
  dir.Write("a.yaml", kTools);
  dir.Write("b.yaml", kTools);
  ASSIGN_OR_FAIL(auto docs, CollectToolsDocuments({dir.path()}));
  auto st = CheckToolsDocuments(docs);
  ASSERT_FALSE(st.has_value());
  EXPECT_NE(st.error().message.find("\"compute\" is already declared"), std::string::npos)
      << st.error().message;
}

TEST(GatewayTools, WritesOneFilePerDocumentWithSourceLines) {
  test::TempDir src;
  test::TempDir state;
  const std::string a = src.Write("a.yaml", std::string(kActor) + "---\n" + kTools);
  ASSIGN_OR_FAIL(auto docs, CollectToolsDocuments({a}));
  ASSIGN_OR_FAIL(std::string dir, WriteToolsDirectory(state.path(), docs));
  EXPECT_EQ(dir, state.path() + "/gateway-tools");
  ASSIGN_OR_FAIL(std::string text, ReadFile(dir + "/001.yaml"));
  EXPECT_EQ(text.rfind("# from " + a + "\n", 0), 0u) << text;
  const std::string before = text.substr(0, text.find("tools:"));
  EXPECT_EQ(std::count(before.begin(), before.end(), '\n'), 15);  // still on line 16
  ASSIGN_OR_FAIL(std::string none, WriteToolsDirectory(state.path(), {}));
  EXPECT_EQ(none, "");
  EXPECT_FALSE(std::filesystem::exists(dir));
}

GatewayLaunchSettings Settings() {
  GatewayLaunchSettings s;
  s.bin = "/bin/asya-gateway";
  s.state_dir = "/state";
  s.port = 8123;
  s.token = "tok";
  s.transport_kind = "sqlite";
  s.sqlite_path = "/state/queues.db";
  s.base_env = {"HOME=/home/u", "ASYA_CONFIG_PATH=/elsewhere", "ASYA_LOG_LEVEL=DEBUG"};
  return s;
}

TEST(GatewayLaunch, LoopbackStoreTransportAndToken) {
  LaunchSpec l = GatewayLaunchSpec(Settings());
  EXPECT_EQ(l.argv, (std::vector<std::string>{"/bin/asya-gateway"}));
  EXPECT_EQ(l.cwd, "/state");
  EXPECT_EQ(EnvValue(l.env, "ASYA_GATEWAY_ADDR"), "127.0.0.1");
  EXPECT_EQ(EnvValue(l.env, "ASYA_GATEWAY_PORT"), "8123");
  EXPECT_EQ(EnvValue(l.env, "ASYA_DATABASE_URL"), "sqlite:///state/gateway.db");
  EXPECT_EQ(EnvValue(l.env, "ASYA_GATEWAY_TOKEN"), "tok");
  EXPECT_EQ(EnvValue(l.env, "ASYA_TRANSPORT"), "sqlite");
  EXPECT_EQ(EnvValue(l.env, "ASYA_SQLITE_PATH"), "/state/queues.db");
  EXPECT_EQ(EnvValue(l.env, "ASYA_LOG_LEVEL"), "DEBUG");
  // No tools: the caller's ASYA_CONFIG_PATH does not leak in.
  EXPECT_EQ(EnvValue(l.env, "ASYA_CONFIG_PATH"), "");
  auto s = Settings();
  s.tools_dir = "/state/gateway-tools";
  s.transport_kind = "rabbitmq";
  l = GatewayLaunchSpec(s);
  EXPECT_EQ(EnvValue(l.env, "ASYA_CONFIG_PATH"), "/state/gateway-tools");
  EXPECT_EQ(EnvValue(l.env, "ASYA_TRANSPORT"), "rabbitmq");
  EXPECT_EQ(EnvValue(l.env, "ASYA_SQLITE_PATH"), "");
}

TEST(GatewayLaunch, SidecarsGetTheUrlAndTokenUnlessTheManifestSaysOtherwise) {
  MeshLaunchSettings m;
  m.state_dir = "/state";
  m.transport_kind = "sqlite";
  m.sidecar_bin = "/bin/asya-sidecar";
  actor::ActorSpec a;
  a.name = "add";
  LaunchSpec l = SidecarLaunchSpec(a, m, "/s");
  EXPECT_EQ(EnvValue(l.env, "ASYA_GATEWAY_URL"), "");
  m.gateway_url = GatewayUrl(8123);
  m.gateway_token = "tok";
  l = SidecarLaunchSpec(a, m, "/s");
  EXPECT_EQ(EnvValue(l.env, "ASYA_GATEWAY_URL"), "http://127.0.0.1:8123");
  EXPECT_EQ(EnvValue(l.env, "ASYA_GATEWAY_TOKEN"), "tok");
  a.sidecar_env = {{"ASYA_GATEWAY_URL", "http://elsewhere:8080"}};
  l = SidecarLaunchSpec(a, m, "/s");
  EXPECT_EQ(EnvValue(l.env, "ASYA_GATEWAY_URL"), "http://elsewhere:8080");
}

TEST(GatewayLaunch, TokensAreRandomHex) {
  std::string a = NewCallbackToken();
  std::string b = NewCallbackToken();
  EXPECT_EQ(a.size(), 32u);
  EXPECT_EQ(a.find_first_not_of("0123456789abcdef"), std::string::npos);
  EXPECT_NE(a, b);
}

TEST(GatewayLaunch, PortPickAndBusyPort) {
  ASSIGN_OR_FAIL(int port, PickLoopbackPort(0));
  EXPECT_GT(port, 0);
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  ::inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ASSERT_EQ(::listen(fd, 1), 0);
  auto busy = PickLoopbackPort(port);
  ASSERT_FALSE(busy.has_value());
  EXPECT_EQ(busy.error().code, ErrorCode::kAlreadyExists);
  // Listening but not answering HTTP: not healthy.
  EXPECT_FALSE(GatewayHealthy(port));
  ::close(fd);
  EXPECT_FALSE(GatewayHealthy(port));  // nothing listening
}

}  // namespace
}  // namespace asya::local
