// McpHandler over a fake Service: every revision's negotiation, header validation, malformed
// JSON-RPC, sessions, tools, synchronous calls with progress, and the Tasks lifecycle.
#include <set>
#include <thread>

#include "unit/gateway/mcp_fakes.h"

namespace asya::gateway {
namespace {

using testing::FakeService;
using testing::Json;
using testing::ModernPost;
using testing::Post;
using testing::Rpc;
using testing::Send;

Tool MakeTool(std::string name, std::string schema, std::string task_support = "optional",
              int timeout = 300) {
  Tool t;
  t.name = std::move(name);
  t.description = "tool " + t.name;
  t.input_schema_json = std::move(schema);
  t.route = {"a"};
  t.task_support = std::move(task_support);
  t.timeout_seconds = timeout;
  return t;
}

class McpHandlerTest : public ::testing::Test {
 protected:
  McpHandlerTest() {
    service.tools = {
        MakeTool(
            "echo",
            R"({"type":"object","properties":{"text":{"type":"string"}},"required":["text"]})"),
        MakeTool("greet", R"({"type":"object","properties":{"name":{"type":"string"}}})",
                 "forbidden"),
        MakeTool("job", R"({"type":"object"})", "required"),
        MakeTool("count", R"({"type":"object","properties":{"n":{"type":"integer"}}})"),
        MakeTool(
            "sql",
            R"({"type":"object","properties":{"region":{"type":"string","x-mcp-header":"Region"},"q":{"type":"string"}}})"),
    };
  }

  std::unique_ptr<McpHandler> Make(McpOptions options = {}, Clock& clock = SystemClock()) {
    return std::make_unique<McpHandler>(service, clock, std::move(options));
  }

  // initialize + notifications/initialized; returns the session id.
  std::string Initialize(McpHandler& h, const std::string& version) {
    auto rec = Send(h, Post(Rpc(1, "initialize",
                                {{"protocolVersion", version},
                                 {"capabilities", Json::object()},
                                 {"clientInfo", {{"name", "t"}, {"version", "1"}}}})
                                .dump()));
    EXPECT_EQ(rec->Status(), 200);
    const std::string session = rec->Header("Mcp-Session-Id");
    Request note = Post(R"({"jsonrpc":"2.0","method":"notifications/initialized"})");
    note.headers["Mcp-Session-Id"] = session;
    EXPECT_EQ(Send(h, note)->Status(), 202);
    return session;
  }

  Request LegacyPost(const std::string& session, const Json& body,
                     const std::string& version = "") {
    Request r = Post(body.dump());
    r.headers["Mcp-Session-Id"] = session;
    if (!version.empty())
      r.headers["MCP-Protocol-Version"] = version;
    return r;
  }

  FakeService service;
};

// ---------------------------------------------------------------- legacy revisions

TEST_F(McpHandlerTest, InitializeEchoesEverySessionRevisionAndIssuesAVisibleAsciiSessionId) {
  auto h = Make();
  for (const char* version : {"2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"}) {
    auto rec = Send(*h, Post(Rpc(1, "initialize",
                                 {{"protocolVersion", version},
                                  {"capabilities", Json::object()},
                                  {"clientInfo", {{"name", "t"}, {"version", "1"}}}})
                                 .dump()));
    ASSERT_EQ(rec->Status(), 200) << version;
    const Json body = rec->Body();
    EXPECT_EQ(body["result"]["protocolVersion"], version);
    EXPECT_EQ(body["result"]["serverInfo"]["name"], "asya-gateway");
    EXPECT_TRUE(body["result"]["capabilities"].contains("tools"));
    EXPECT_FALSE(body["result"].contains("resultType")) << "legacy results have no resultType";
    const std::string session = rec->Header("Mcp-Session-Id");
    ASSERT_FALSE(session.empty());
    for (char c : session)
      EXPECT_TRUE(c >= 0x21 && c <= 0x7e);
  }
  EXPECT_EQ(service.SessionCount(), 4u);
}

TEST_F(McpHandlerTest, InitializeWithAnUnknownVersionGetsTheNewestSessionRevision) {
  auto h = Make();
  auto rec = Send(*h, Post(Rpc(1, "initialize", {{"protocolVersion", "1999-01-01"}}).dump()));
  EXPECT_EQ(rec->Body()["result"]["protocolVersion"], "2025-11-25");
  auto missing = Send(*h, Post(Rpc(2, "initialize", Json::object()).dump()));
  EXPECT_EQ(missing->Body()["error"]["code"], -32602);
}

TEST_F(McpHandlerTest, SessionIsRequiredValidatedAndEndedByDelete) {
  auto h = Make();
  auto no_session = Send(*h, Post(Rpc(1, "ping").dump()));
  EXPECT_EQ(no_session->Status(), 400);
  auto unknown = Send(*h, LegacyPost("mcp-session-nope", Rpc(1, "ping")));
  EXPECT_EQ(unknown->Status(), 404);

  const std::string session = Initialize(*h, "2025-06-18");
  auto ping = Send(*h, LegacyPost(session, Rpc(7, "ping"), "2025-06-18"));
  EXPECT_EQ(ping->Status(), 200);
  EXPECT_EQ(ping->Body()["id"], 7);
  EXPECT_EQ(ping->Body()["result"], Json::object());

  Request del;
  del.method = "DELETE";
  del.headers["Mcp-Session-Id"] = session;
  EXPECT_EQ(Send(*h, del)->Status(), 200);
  EXPECT_EQ(Send(*h, LegacyPost(session, Rpc(8, "ping")))->Status(), 404);
  EXPECT_EQ(Send(*h, del)->Status(), 404);
  Request no_header;
  no_header.method = "DELETE";
  EXPECT_EQ(Send(*h, no_header)->Status(), 400);
}

TEST_F(McpHandlerTest, AnyReplicaServesASessionAndEndingItClosesStreamsEverywhere) {
  McpOptions options;
  options.session_check_interval = std::chrono::milliseconds(20);
  auto a = Make(options);
  auto b = Make(options);  // another gateway replica over the same (shared) session store
  const std::string session = Initialize(*a, "2025-03-26");
  auto ping = Send(*b, LegacyPost(session, Rpc(3, "ping")));
  EXPECT_EQ(ping->Status(), 200);
  auto tools = Send(*b, LegacyPost(session, Rpc(4, "tools/list")));
  EXPECT_EQ(tools->Status(), 200);
  EXPECT_EQ(tools->Body()["result"]["tools"].size(), service.tools.size());

  Request get;
  get.method = "GET";
  get.headers["Accept"] = "text/event-stream";
  get.headers["Mcp-Session-Id"] = session;
  auto stream = Send(*a, get);
  ASSERT_EQ(stream->Status(), 200);
  EXPECT_FALSE(stream->Done());

  Request del;
  del.method = "DELETE";
  del.headers["Mcp-Session-Id"] = session;
  EXPECT_EQ(Send(*b, del)->Status(), 200);
  EXPECT_EQ(Send(*a, LegacyPost(session, Rpc(5, "ping")))->Status(), 404);
  EXPECT_TRUE(stream->Wait()) << "replica a closes its stream of a session b ended";
}

TEST_F(McpHandlerTest, ASessionStoreThatCannotBeReachedIs503NotAnUnknownSession) {
  auto h = Make();
  const std::string session = Initialize(*h, "2025-06-18");
  service.sessions_unavailable = true;
  auto ping = Send(*h, LegacyPost(session, Rpc(9, "ping")));
  EXPECT_EQ(ping->Status(), 503);
  EXPECT_EQ(ping->Body()["error"]["code"], -32603);
  EXPECT_NE(ping->Body()["error"]["message"].get<std::string>().find("session store"),
            std::string::npos);
  service.sessions_unavailable = false;
  EXPECT_EQ(Send(*h, LegacyPost(session, Rpc(10, "ping")))->Status(), 200);
}

TEST_F(McpHandlerTest, GetOpensTheSessionStreamAndDeleteClosesIt) {
  auto h = Make();
  const std::string session = Initialize(*h, "2025-11-25");
  Request get;
  get.method = "GET";
  get.headers["Accept"] = "text/event-stream";
  get.headers["Mcp-Session-Id"] = session;
  auto stream = Send(*h, get);
  EXPECT_EQ(stream->Status(), 200);
  EXPECT_EQ(stream->Header("Content-Type"), "text/event-stream");
  EXPECT_FALSE(stream->Done());

  Request del;
  del.method = "DELETE";
  del.headers["Mcp-Session-Id"] = session;
  Send(*h, del);
  EXPECT_TRUE(stream->Done());

  Request no_session;
  no_session.method = "GET";
  no_session.headers["Accept"] = "text/event-stream";
  EXPECT_EQ(Send(*h, no_session)->Status(), 405);
  Request other;
  other.method = "PUT";
  EXPECT_EQ(Send(*h, other)->Status(), 405);
}

TEST_F(McpHandlerTest, NotificationsAndClientResponsesGet202) {
  auto h = Make();
  const std::string session = Initialize(*h, "2025-03-26");
  auto cancelled = Send(*h, LegacyPost(session, {{"jsonrpc", "2.0"},
                                                 {"method", "notifications/cancelled"},
                                                 {"params", {{"requestId", 3}}}}));
  EXPECT_EQ(cancelled->Status(), 202);
  auto response = Send(*h, LegacyPost(session, {{"jsonrpc", "2.0"}, {"id", 1}, {"result", {}}}));
  EXPECT_EQ(response->Status(), 202);
}

TEST_F(McpHandlerTest, BatchesOnlyWhereTheRevisionHasThem) {
  auto h = Make();
  const std::string old_session = Initialize(*h, "2025-03-26");
  Json batch = Json::array({Rpc(1, "ping"),
                            Rpc(2, "tools/list"),
                            {{"jsonrpc", "2.0"}, {"method", "notifications/initialized"}}});
  auto rec = Send(*h, LegacyPost(old_session, batch));
  ASSERT_EQ(rec->Status(), 200);
  const Json body = rec->Body();
  ASSERT_TRUE(body.is_array());
  ASSERT_EQ(body.size(), 2u);
  std::set<int> ids = {body[0]["id"].get<int>(), body[1]["id"].get<int>()};
  EXPECT_EQ(ids, (std::set<int>{1, 2}));

  const std::string new_session = Initialize(*h, "2025-06-18");
  auto refused = Send(*h, LegacyPost(new_session, batch));
  EXPECT_EQ(refused->Status(), 400);
  EXPECT_EQ(refused->Body()["error"]["code"], -32600);
  EXPECT_EQ(Send(*h, LegacyPost(old_session, Json::array()))->Body()["error"]["code"], -32600);
}

TEST_F(McpHandlerTest, BatchAnswersOnceEveryCallInItHasFinished) {
  auto h = Make();
  const std::string session = Initialize(*h, "2024-11-05");
  Json batch =
      Json::array({Rpc("a", "tools/call", {{"name", "greet"}, {"arguments", Json::object()}}),
                   Rpc("b", "ping")});
  auto rec = Send(*h, LegacyPost(session, batch));
  EXPECT_FALSE(rec->Done()) << "the tool call is still running";
  service.Finish("env-1", {store::Status::kSucceeded, R"("hi")", "", ""});
  ASSERT_TRUE(rec->Wait());
  const Json body = rec->Body();
  ASSERT_EQ(body.size(), 2u);
  EXPECT_EQ(body[0]["id"], "b");
  EXPECT_EQ(body[1]["id"], "a");
  EXPECT_EQ(body[1]["result"]["content"][0]["text"], "hi");
}

// ---------------------------------------------------------------- malformed JSON-RPC

TEST_F(McpHandlerTest, MalformedJsonRpcGetsTheStandardErrors) {
  auto h = Make();
  const std::string session = Initialize(*h, "2025-11-25");
  Request bad = Post("{not json");
  bad.headers["Mcp-Session-Id"] = session;
  auto parse = Send(*h, bad);
  EXPECT_EQ(parse->Status(), 400);
  EXPECT_EQ(parse->Body()["error"]["code"], -32700);
  EXPECT_TRUE(parse->Body()["id"].is_null());

  auto version = Send(*h, LegacyPost(session, {{"jsonrpc", "1.0"}, {"id", 1}, {"method", "ping"}}));
  EXPECT_EQ(version->Status(), 400);
  EXPECT_EQ(version->Body()["error"]["code"], -32600);
  EXPECT_EQ(version->Body()["id"], 1);

  auto method = Send(*h, LegacyPost(session, {{"jsonrpc", "2.0"}, {"id", 2}, {"method", 5}}));
  EXPECT_EQ(method->Body()["error"]["code"], -32600);

  auto unknown = Send(*h, LegacyPost(session, Rpc(3, "no/such")));
  EXPECT_EQ(unknown->Status(), 200);
  EXPECT_EQ(unknown->Body()["error"]["code"], -32601);

  auto params = Send(*h, LegacyPost(session, {{"jsonrpc", "2.0"},
                                              {"id", 4},
                                              {"method", "tools/call"},
                                              {"params", Json::array({1})}}));
  EXPECT_EQ(params->Body()["error"]["code"], -32602);

  Request text = Post(Rpc(5, "ping").dump());
  text.headers["Content-Type"] = "text/plain";
  text.headers["Mcp-Session-Id"] = session;
  EXPECT_EQ(Send(*h, text)->Status(), 415);
  Request accept = LegacyPost(session, Rpc(6, "ping"));
  accept.headers["Accept"] = "text/html";
  EXPECT_EQ(Send(*h, accept)->Status(), 406);
}

// ---------------------------------------------------------------- modern revision

TEST_F(McpHandlerTest, DiscoverDescribesTheServer) {
  auto h = Make();
  auto rec = Send(*h, ModernPost("server/discover"));
  ASSERT_EQ(rec->Status(), 200);
  const Json r = rec->Body()["result"];
  EXPECT_EQ(r["resultType"], "complete");
  EXPECT_EQ(r["supportedVersions"][0], "2026-07-28");
  EXPECT_EQ(r["supportedVersions"].size(), 5u);
  EXPECT_TRUE(r["capabilities"]["extensions"].contains("io.modelcontextprotocol/tasks"));
  EXPECT_FALSE(r["capabilities"].contains("tasks"));
  EXPECT_EQ(r["_meta"]["io.modelcontextprotocol/serverInfo"]["name"], "asya-gateway");
  EXPECT_GE(r["ttlMs"].get<std::int64_t>(), 0);
  EXPECT_EQ(r["cacheScope"], "public");
  EXPECT_EQ(Send(*h, ModernPost("server/discover"))->Header("Mcp-Session-Id"), "")
      << "the stateless revision mints no sessions";
}

TEST_F(McpHandlerTest, RequestMetaIsValidated) {
  auto h = Make();
  Request no_meta = Post(Rpc(101, "server/discover").dump());
  no_meta.headers["MCP-Protocol-Version"] = "2026-07-28";
  no_meta.headers["Mcp-Method"] = "server/discover";
  auto rec = Send(*h, no_meta);
  EXPECT_EQ(rec->Status(), 400);
  EXPECT_EQ(rec->Body()["error"]["code"], -32602);
  EXPECT_EQ(rec->Body()["id"], 101);

  Request no_caps = no_meta;
  no_caps.body = Rpc(104, "server/discover",
                     {{"_meta", {{"io.modelcontextprotocol/protocolVersion", "2026-07-28"}}}})
                     .dump();
  rec = Send(*h, no_caps);
  EXPECT_EQ(rec->Status(), 400);
  EXPECT_EQ(rec->Body()["error"]["code"], -32602);

  Request no_version = no_meta;
  no_version.body =
      Rpc(102, "server/discover",
          {{"_meta", {{"io.modelcontextprotocol/clientCapabilities", Json::object()}}}})
          .dump();
  rec = Send(*h, no_version);
  EXPECT_EQ(rec->Status(), 400);
  EXPECT_EQ(rec->Body()["error"]["code"], -32602);

  Request no_client_info = no_meta;
  no_client_info.body = Rpc(105, "server/discover",
                            {{"_meta",
                              {{"io.modelcontextprotocol/protocolVersion", "2026-07-28"},
                               {"io.modelcontextprotocol/clientCapabilities", Json::object()}}}})
                            .dump();
  EXPECT_EQ(Send(*h, no_client_info)->Status(), 200);
}

TEST_F(McpHandlerTest, VersionNegotiationPerRequest) {
  auto h = Make();
  Request unsupported = ModernPost("server/discover", Json::object(), false, 301);
  Json body = Json::parse(unsupported.body);
  body["params"]["_meta"]["io.modelcontextprotocol/protocolVersion"] = "v999.0.0";
  unsupported.body = body.dump();
  unsupported.headers["MCP-Protocol-Version"] = "v999.0.0";
  auto rec = Send(*h, unsupported);
  EXPECT_EQ(rec->Status(), 400);
  EXPECT_EQ(rec->Body()["error"]["code"], -32022);
  EXPECT_EQ(rec->Body()["error"]["data"]["requested"], "v999.0.0");
  EXPECT_EQ(rec->Body()["error"]["data"]["supported"][0], "2026-07-28");
  EXPECT_EQ(rec->Body()["id"], 301);

  Request mismatch = unsupported;
  mismatch.headers["MCP-Protocol-Version"] = "2026-07-28";
  rec = Send(*h, mismatch);
  EXPECT_EQ(rec->Status(), 400);
  EXPECT_EQ(rec->Body()["error"]["code"], -32020);

  Request missing = ModernPost("server/discover");
  missing.headers.erase("MCP-Protocol-Version");
  rec = Send(*h, missing);
  EXPECT_EQ(rec->Status(), 400);
  EXPECT_EQ(rec->Body()["error"]["code"], -32020);
}

TEST_F(McpHandlerTest, StandardHeadersMustMirrorTheBody) {
  auto h = Make();
  Request wrong_method = ModernPost("tools/list");
  wrong_method.headers["Mcp-Method"] = "tools/call";
  auto rec = Send(*h, wrong_method);
  EXPECT_EQ(rec->Status(), 400);
  EXPECT_EQ(rec->Body()["error"]["code"], -32020);

  Request case_mismatch = ModernPost("tools/list");
  case_mismatch.headers["Mcp-Method"] = "TOOLS/LIST";
  EXPECT_EQ(Send(*h, case_mismatch)->Body()["error"]["code"], -32020);

  Request no_method = ModernPost("tools/list");
  no_method.headers.erase("Mcp-Method");
  EXPECT_EQ(Send(*h, no_method)->Body()["error"]["code"], -32020);

  Request lower_name_whitespace = ModernPost("tools/list");
  lower_name_whitespace.headers.erase("Mcp-Method");
  lower_name_whitespace.headers["mcp-method"] = "  tools/list ";
  EXPECT_EQ(Send(*h, lower_name_whitespace)->Status(), 200);

  Request wrong_name = ModernPost("tools/call", {{"name", "greet"}, {"arguments", Json::object()}});
  wrong_name.headers["Mcp-Name"] = "echo";
  rec = Send(*h, wrong_name);
  EXPECT_EQ(rec->Status(), 400);
  EXPECT_EQ(rec->Body()["error"]["code"], -32020);

  Request no_name = ModernPost("tools/call", {{"name", "greet"}, {"arguments", Json::object()}});
  no_name.headers.erase("Mcp-Name");
  EXPECT_EQ(Send(*h, no_name)->Body()["error"]["code"], -32020);

  Request task_name = ModernPost("tasks/get", {{"taskId", "env-1"}}, true);
  task_name.headers["Mcp-Name"] = "env-2";
  EXPECT_EQ(Send(*h, task_name)->Body()["error"]["code"], -32020);

  service.finish_on_call = store::FinalReport{store::Status::kSucceeded, R"("hi")", "", ""};
  Request base64_name =
      ModernPost("tools/call", {{"name", "greet"}, {"arguments", Json::object()}});
  base64_name.headers["Mcp-Name"] = "=?base64?Z3JlZXQ=?=";  // "greet"
  rec = Send(*h, base64_name);
  ASSERT_TRUE(rec->Wait());
  EXPECT_EQ(rec->Body()["result"]["content"][0]["text"], "hi");
}

TEST_F(McpHandlerTest, CustomParamHeadersMustMatchTheArguments) {
  auto h = Make();
  service.finish_on_call = store::FinalReport{store::Status::kSucceeded, R"({"rows":1})", "", ""};
  const Json params = {{"name", "sql"}, {"arguments", {{"region", "us-west1"}, {"q", "x"}}}};

  auto missing = Send(*h, ModernPost("tools/call", params));
  EXPECT_EQ(missing->Status(), 400);
  EXPECT_EQ(missing->Body()["error"]["code"], -32020);

  Request plain = ModernPost("tools/call", params);
  plain.headers["Mcp-Param-Region"] = "us-west1";
  auto ok = Send(*h, plain);
  ASSERT_TRUE(ok->Wait());
  EXPECT_EQ(ok->Body()["result"]["structuredContent"]["rows"], 1);

  Request encoded = ModernPost("tools/call", params);
  encoded.headers["mcp-param-region"] = "=?base64?dXMtd2VzdDE=?=";
  EXPECT_TRUE(Send(*h, encoded)->Body().contains("result"));

  Request bad_padding = ModernPost("tools/call", params);
  bad_padding.headers["Mcp-Param-Region"] = "=?base64?dXMtd2VzdDE?=";
  EXPECT_EQ(Send(*h, bad_padding)->Body()["error"]["code"], -32020);

  Request other = ModernPost("tools/call", params);
  other.headers["Mcp-Param-Region"] = "eu-north1";
  EXPECT_EQ(Send(*h, other)->Body()["error"]["code"], -32020);

  // No value in the body: no header expected.
  auto absent = Send(*h, ModernPost("tools/call", {{"name", "sql"}, {"arguments", {{"q", "x"}}}}));
  EXPECT_TRUE(absent->Body().contains("result"));
}

TEST_F(McpHandlerTest, SessionMethodsAreGoneInTheModernRevision) {
  auto h = Make();
  for (const char* method : {"initialize", "ping", "logging/setLevel", "resources/subscribe",
                             "unknown/method", "tasks/list", "tasks/result"}) {
    auto rec = Send(*h, ModernPost(method, Json::object(), true));
    EXPECT_EQ(rec->Status(), 404) << method;
    EXPECT_EQ(rec->Body()["error"]["code"], -32601) << method;
  }
  Request get;
  get.method = "GET";
  get.headers["MCP-Protocol-Version"] = "2026-07-28";
  EXPECT_EQ(Send(*h, get)->Status(), 405);
  Request del = get;
  del.method = "DELETE";
  EXPECT_EQ(Send(*h, del)->Status(), 405);
}

TEST_F(McpHandlerTest, DnsRebindingProtectionChecksHostAndOrigin) {
  McpOptions options;
  options.allowed_hosts = {"localhost", "127.0.0.1", "[::1]"};
  auto h = Make(options);
  Request evil = ModernPost("server/discover");
  evil.headers["Host"] = "evil.example.com";
  evil.headers["Origin"] = "http://evil.example.com";
  EXPECT_EQ(Send(*h, evil)->Status(), 403);
  Request evil_origin = ModernPost("server/discover");
  evil_origin.headers["Origin"] = "http://evil.example.com";
  EXPECT_EQ(Send(*h, evil_origin)->Status(), 403);
  Request good = ModernPost("server/discover");
  good.headers["Host"] = "localhost:3000";
  good.headers["Origin"] = "http://localhost:3000";
  EXPECT_EQ(Send(*h, good)->Status(), 200);
  Request v6 = ModernPost("server/discover");
  v6.headers["Host"] = "[::1]:3000";
  EXPECT_EQ(Send(*h, v6)->Status(), 200);
}

// ---------------------------------------------------------------- tools

TEST_F(McpHandlerTest, ToolsListAdvertisesSchemasAnnotationsAndCachingHints) {
  auto h = Make();
  auto modern = Send(*h, ModernPost("tools/list"))->Body()["result"];
  ASSERT_EQ(modern["tools"].size(), service.tools.size());
  const Json echo = modern["tools"][0];
  EXPECT_EQ(echo["name"], "echo");
  EXPECT_EQ(echo["description"], "tool echo");
  EXPECT_EQ(echo["inputSchema"]["required"][0], "text");
  EXPECT_EQ(echo["annotations"]["destructiveHint"], true);
  EXPECT_EQ(echo["execution"]["taskSupport"], "optional");
  EXPECT_EQ(modern["tools"][1]["execution"]["taskSupport"], "forbidden");
  EXPECT_EQ(modern["cacheScope"], "public");
  EXPECT_TRUE(modern.contains("ttlMs"));
  EXPECT_EQ(modern["tools"][4]["inputSchema"]["properties"]["region"]["x-mcp-header"], "Region");

  const std::string session = Initialize(*h, "2025-06-18");
  auto legacy = Send(*h, LegacyPost(session, Rpc(2, "tools/list")))->Body()["result"];
  EXPECT_FALSE(legacy.contains("ttlMs"));
  EXPECT_FALSE(legacy["tools"][0].contains("execution"));
}

TEST_F(McpHandlerTest, CallingAnUnknownToolOrWithBadParamsIsAnInvalidParamsError) {
  auto h = Make();
  const std::string session = Initialize(*h, "2024-11-05");
  auto unknown = Send(*h, LegacyPost(session, Rpc(1, "tools/call", {{"name", "nope"}})));
  EXPECT_EQ(unknown->Body()["error"]["code"], -32602);
  auto no_name = Send(*h, LegacyPost(session, Rpc(2, "tools/call", Json::object())));
  EXPECT_EQ(no_name->Body()["error"]["code"], -32602);
  auto bad_args =
      Send(*h, LegacyPost(session, Rpc(3, "tools/call", {{"name", "echo"}, {"arguments", "x"}})));
  EXPECT_EQ(bad_args->Body()["error"]["code"], -32602);
  auto modern = Send(*h, ModernPost("tools/call", {{"name", "nope"}}));
  EXPECT_EQ(modern->Status(), 400);
  EXPECT_EQ(modern->Body()["error"]["code"], -32602);
}

TEST_F(McpHandlerTest, ArgumentErrorsAreToolErrorsTheModelCanRead) {
  auto h = Make();
  const std::string session = Initialize(*h, "2025-11-25");
  auto missing = Send(
      *h,
      LegacyPost(session, Rpc(1, "tools/call", {{"name", "echo"}, {"arguments", Json::object()}})));
  const Json r = missing->Body()["result"];
  EXPECT_EQ(r["isError"], true);
  EXPECT_NE(r["content"][0]["text"].get<std::string>().find("text"), std::string::npos);

  auto wrong = Send(*h, ModernPost("tools/call", {{"name", "count"}, {"arguments", {{"n", "x"}}}}));
  EXPECT_EQ(wrong->Body()["result"]["isError"], true);
  EXPECT_EQ(wrong->Body()["result"]["resultType"], "complete");
}

TEST_F(McpHandlerTest, SynchronousCallWaitsForThePipelineAndMapsItsResult) {
  auto h = Make();
  const std::string session = Initialize(*h, "2025-06-18");
  Request call = LegacyPost(
      session, Rpc(9, "tools/call", {{"name", "echo"}, {"arguments", {{"text", "hi"}}}}));
  call.headers["Accept"] = "application/json";
  auto rec = Send(*h, call);
  EXPECT_FALSE(rec->Done()) << "answers only when the pipeline ends";
  service.Progress("env-1", 50, "halfway");
  EXPECT_FALSE(rec->Done());
  std::thread finisher([&] {
    service.Finish("env-1", {store::Status::kSucceeded, R"({"answer":42})", "", "done"});
  });
  finisher.join();
  ASSERT_TRUE(rec->Wait());
  EXPECT_EQ(rec->Status(), 200);
  const Json r = rec->Body()["result"];
  EXPECT_EQ(r["structuredContent"]["answer"], 42);
  EXPECT_EQ(Json::parse(r["content"][0]["text"].get<std::string>())["answer"], 42);
  EXPECT_FALSE(r.contains("isError"));
  EXPECT_EQ(rec->Body()["id"], 9);
}

TEST_F(McpHandlerTest, ContentBlocksAndToolErrorsPassThrough) {
  auto h = Make();
  const std::string session = Initialize(*h, "2025-11-25");
  service.finish_on_call = store::FinalReport{
      store::Status::kSucceeded,
      R"([{"type":"image","data":"iVBOR","mimeType":"image/png"},{"type":"text","text":"t"}])", "",
      ""};
  auto blocks = Send(
      *h, LegacyPost(session,
                     Rpc(1, "tools/call", {{"name", "greet"}, {"arguments", Json::object()}})));
  ASSERT_TRUE(blocks->Wait());
  EXPECT_EQ(blocks->Body()["result"]["content"][0]["type"], "image");
  EXPECT_FALSE(blocks->Body()["result"].contains("structuredContent"));

  service.finish_on_call =
      store::FinalReport{store::Status::kFailed, "", "ValueError: intentional", "failed"};
  auto error = Send(
      *h, LegacyPost(session,
                     Rpc(2, "tools/call", {{"name", "greet"}, {"arguments", Json::object()}})));
  ASSERT_TRUE(error->Wait());
  EXPECT_EQ(error->Body()["result"]["isError"], true);
  EXPECT_EQ(error->Body()["result"]["content"][0]["text"], "ValueError: intentional");
}

TEST_F(McpHandlerTest, ProgressTokenStreamsIncreasingProgressBeforeTheResult) {
  auto h = Make();
  const std::string session = Initialize(*h, "2025-11-25");
  auto rec = Send(*h, LegacyPost(session, Rpc(5, "tools/call",
                                              {{"name", "greet"},
                                               {"arguments", Json::object()},
                                               {"_meta", {{"progressToken", "p-1"}}}})));
  EXPECT_EQ(rec->Header("Content-Type"), "text/event-stream");
  service.Progress("env-1", 10, "received");
  service.Progress("env-1", 10, "again");  // not an increase: no notification
  service.Progress("env-1", 50, "processing");
  service.Finish("env-1", {store::Status::kSucceeded, R"("ok")", "", ""});
  ASSERT_TRUE(rec->Wait());
  const auto events = rec->Events();
  ASSERT_EQ(events.size(), 4u);
  std::vector<double> progress;
  for (std::size_t i = 0; i + 1 < events.size(); ++i) {
    EXPECT_EQ(events[i]["method"], "notifications/progress");
    EXPECT_EQ(events[i]["params"]["progressToken"], "p-1");
    EXPECT_EQ(events[i]["params"]["total"], 100);
    progress.push_back(events[i]["params"]["progress"].get<double>());
  }
  EXPECT_EQ(progress, (std::vector<double>{10, 50, 100}));
  EXPECT_EQ(events.back()["id"], 5);
  EXPECT_EQ(events.back()["result"]["content"][0]["text"], "ok");
  // Unsubscribed once answered (on the handler's own thread).
  for (int i = 0; i < 3000 && service.Subscribers() != 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  EXPECT_EQ(service.Subscribers(), 0u);
}

TEST_F(McpHandlerTest, ClosingAModernRequestStreamCancelsThePipeline) {
  auto h = Make();
  auto rec = Send(*h, ModernPost("tools/call", {{"name", "greet"},
                                                {"arguments", Json::object()},
                                                {"_meta", {{"progressToken", 1}}}}));
  ASSERT_EQ(rec->Header("Content-Type"), "text/event-stream");
  rec->Disconnect();
  for (int i = 0; i < 3000 && service.Cancelled().empty(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ASSERT_EQ(service.Cancelled(), std::vector<std::string>{"env-1"});
  EXPECT_EQ(service.Get("env-1")->status, store::Status::kCancelled);
}

TEST_F(McpHandlerTest, SynchronousWaitIsBounded) {
  ManualClock clock;  // the timer thread's waits advance it: the bound passes at once
  McpOptions options;
  options.max_sync_wait = std::chrono::seconds(30);
  auto h = Make(options, clock);
  const std::string session = Initialize(*h, "2025-06-18");
  auto rec = Send(*h, LegacyPost(session, Rpc(1, "tools/call",
                                              {{"name", "greet"}, {"arguments", Json::object()}})));
  ASSERT_TRUE(rec->Wait());
  const Json r = rec->Body()["result"];
  EXPECT_EQ(r["isError"], true);
  EXPECT_EQ(r["structuredContent"]["envelope_id"], "env-1");
  EXPECT_EQ(service.Get("env-1")->status, store::Status::kPending) << "the pipeline keeps running";
}

// ---------------------------------------------------------------- tasks

TEST_F(McpHandlerTest, TaskLifecycleFromCreateToCompletedResult) {
  McpOptions options;
  options.task_ttl_ms = 60'000;
  options.task_poll_interval_ms = 250;
  auto h = Make(options);
  auto created =
      Send(*h, ModernPost("tools/call", {{"name", "echo"}, {"arguments", {{"text", "a"}}}}, true))
          ->Body()["result"];
  EXPECT_EQ(created["resultType"], "task");
  EXPECT_EQ(created["taskId"], "env-1");
  EXPECT_EQ(created["status"], "working");
  EXPECT_EQ(created["ttlMs"], 60'000);
  EXPECT_EQ(created["pollIntervalMs"], 250);
  EXPECT_EQ(created["createdAt"], "2023-11-14T22:13:20.000Z");
  for (const char* absent : {"task", "result", "error", "inputRequests", "ttl", "pollInterval"}) {
    EXPECT_FALSE(created.contains(absent)) << absent;
  }

  auto working = Send(*h, ModernPost("tasks/get", {{"taskId", "env-1"}}, true))->Body()["result"];
  EXPECT_EQ(working["resultType"], "complete");
  EXPECT_EQ(working["status"], "working");
  EXPECT_FALSE(working.contains("result"));

  service.Finish("env-1", {store::Status::kSucceeded, R"({"v":1})", "", "Envelope completed"});
  auto done = Send(*h, ModernPost("tasks/get", {{"taskId", "env-1"}}, true))->Body()["result"];
  EXPECT_EQ(done["status"], "completed");
  EXPECT_EQ(done["result"]["resultType"], "complete");
  EXPECT_EQ(done["result"]["structuredContent"]["v"], 1);
  EXPECT_FALSE(done["result"].contains("_meta"));
  EXPECT_EQ(done["lastUpdatedAt"], "2023-11-14T22:13:23.000Z");

  auto cancel_done = Send(*h, ModernPost("tasks/cancel", {{"taskId", "env-1"}}, true))->Body();
  EXPECT_EQ(cancel_done["result"], Json({{"resultType", "complete"}}));
  EXPECT_EQ(service.Get("env-1")->status, store::Status::kSucceeded) << "final states are final";
}

TEST_F(McpHandlerTest, ToolErrorIsCompletedWithIsErrorAndAPipelineThatCouldNotRunIsFailed) {
  auto h = Make();
  Send(*h, ModernPost("tools/call", {{"name", "job"}}, true));
  Send(*h, ModernPost("tools/call", {{"name", "job"}}, true));
  service.Finish("env-1", {store::Status::kFailed, "", "RuntimeError: boom", ""});
  service.Finish("env-2", {store::Status::kFailed, "", "envelope timed out", ""});

  auto tool_error =
      Send(*h, ModernPost("tasks/get", {{"taskId", "env-1"}}, true))->Body()["result"];
  EXPECT_EQ(tool_error["status"], "completed");
  EXPECT_EQ(tool_error["result"]["isError"], true);
  EXPECT_EQ(tool_error["result"]["content"][0]["text"], "RuntimeError: boom");

  auto failed = Send(*h, ModernPost("tasks/get", {{"taskId", "env-2"}}, true))->Body()["result"];
  EXPECT_EQ(failed["status"], "failed");
  EXPECT_EQ(failed["error"]["code"], -32603);
  EXPECT_EQ(failed["error"]["message"], "envelope timed out");
  EXPECT_EQ(failed["statusMessage"], "envelope timed out");
  EXPECT_FALSE(failed.contains("result"));
}

TEST_F(McpHandlerTest, CancelAcknowledgesAndTheTaskEndsCancelled) {
  auto h = Make();
  Send(*h, ModernPost("tools/call", {{"name", "echo"}, {"arguments", {{"text", "a"}}}}, true));
  auto ack = Send(*h, ModernPost("tasks/cancel", {{"taskId", "env-1"}}, true))->Body()["result"];
  EXPECT_EQ(ack, Json({{"resultType", "complete"}}));
  auto after = Send(*h, ModernPost("tasks/get", {{"taskId", "env-1"}}, true))->Body()["result"];
  EXPECT_EQ(after["status"], "cancelled");
  auto update = Send(*h, ModernPost("tasks/update",
                                    {{"taskId", "env-1"}, {"inputResponses", {{"k", {}}}}}, true))
                    ->Body()["result"];
  EXPECT_EQ(update, Json({{"resultType", "complete"}}));
}

TEST_F(McpHandlerTest, UnknownTaskIdsAreInvalidParams) {
  auto h = Make();
  for (const char* method : {"tasks/get", "tasks/cancel", "tasks/update"}) {
    Json params = {{"taskId", "nonexistent-12345"}};
    if (std::string(method) == "tasks/update")
      params["inputResponses"] = Json::object();
    auto rec = Send(*h, ModernPost(method, params, true));
    EXPECT_EQ(rec->Status(), 400) << method;
    EXPECT_EQ(rec->Body()["error"]["code"], -32602) << method;
  }
}

TEST_F(McpHandlerTest, TasksNeedTheExtensionCapability) {
  auto h = Make();
  for (const char* method : {"tasks/get", "tasks/update", "tasks/cancel"}) {
    auto rec = Send(*h, ModernPost(method, {{"taskId", "gate-test"}, {"inputResponses", {}}}));
    EXPECT_EQ(rec->Body()["error"]["code"], -32021) << method;
  }
  service.finish_on_call = store::FinalReport{store::Status::kSucceeded, R"("sync")", "", ""};
  auto sync =
      Send(*h, ModernPost("tools/call", {{"name", "echo"}, {"arguments", {{"text", "a"}}}}));
  ASSERT_TRUE(sync->Wait());
  const Json r = sync->Body()["result"];
  EXPECT_EQ(r["resultType"], "complete");
  EXPECT_FALSE(r.contains("taskId"));
  EXPECT_EQ(r["content"][0]["text"], "sync");

  auto required = Send(*h, ModernPost("tools/call", {{"name", "job"}}));
  EXPECT_EQ(required->Status(), 400);
  EXPECT_EQ(required->Body()["error"]["code"], -32021);
  EXPECT_TRUE(required->Body()["error"]["data"]["requiredCapabilities"]["extensions"].contains(
      "io.modelcontextprotocol/tasks"));
}

TEST_F(McpHandlerTest, ForbiddenToolsAnswerSynchronouslyEvenWithTheExtension) {
  auto h = Make();
  service.finish_on_call =
      store::FinalReport{store::Status::kSucceeded, R"("Hello, World!")", "", ""};
  auto rec = Send(*h, ModernPost("tools/call",
                                 {{"name", "greet"},
                                  {"arguments", {{"name", "World"}}},
                                  {"task", {{"ttl", 1000}}}},  // v1 hint: ignored
                                 true));
  ASSERT_TRUE(rec->Wait());
  EXPECT_EQ(rec->Body()["result"]["resultType"], "complete");
  EXPECT_EQ(rec->Body()["result"]["content"][0]["text"], "Hello, World!");
}

TEST_F(McpHandlerTest, ListenStreamsTaskStatusNotifications) {
  auto h = Make();
  Send(*h, ModernPost("tools/call", {{"name", "job"}}, true));
  auto listen =
      Send(*h, ModernPost("subscriptions/listen",
                          {{"notifications", {{"taskIds", {"env-1", "unknown"}}}}}, true, "sub-1"));
  ASSERT_EQ(listen->Header("Content-Type"), "text/event-stream");
  service.Progress("env-1", 50, "processing");  // working -> working: no notification
  service.Finish("env-1", {store::Status::kSucceeded, R"("done")", "", ""});
  service.Finish("env-1", {store::Status::kFailed, "", "late", ""});  // final stays final
  const auto events = listen->Events();
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[0]["method"], "notifications/subscriptions/acknowledged");
  EXPECT_EQ(events[0]["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"], "sub-1");
  EXPECT_EQ(events[0]["params"]["notifications"]["taskIds"].size(), 2u);
  EXPECT_EQ(events[1]["method"], "notifications/tasks");
  EXPECT_EQ(events[1]["params"]["status"], "working");
  EXPECT_EQ(events[2]["params"]["status"], "completed");
  EXPECT_EQ(events[2]["params"]["result"]["content"][0]["text"], "done");
  EXPECT_EQ(events[2]["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"], "sub-1");
  EXPECT_FALSE(listen->Done()) << "a listen stream stays open";
  listen->Disconnect();
  for (int i = 0; i < 3000 && service.Subscribers() != 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  EXPECT_EQ(service.Subscribers(), 0u);

  auto without =
      Send(*h, ModernPost("subscriptions/listen", {{"notifications", {{"taskIds", {"env-1"}}}}}));
  EXPECT_EQ(without->Body()["error"]["code"], -32021);
  auto bad = Send(*h, ModernPost("subscriptions/listen", Json::object(), true));
  EXPECT_EQ(bad->Body()["error"]["code"], -32602);
  auto lists = Send(
      *h, ModernPost("subscriptions/listen", {{"notifications", {{"toolsListChanged", true}}}}));
  const auto ack = lists->Events();
  ASSERT_EQ(ack.size(), 1u);
  EXPECT_EQ(ack[0]["params"]["notifications"], Json::object()) << "list changes are not honoured";
  lists->Disconnect();
}

// ---------------------------------------------------------------- resources and prompts

TEST_F(McpHandlerTest, FinishedEnvelopesReadAsResources) {
  auto h = Make();
  service.finish_on_call = store::FinalReport{store::Status::kSucceeded, R"({"x":1})", "", ""};
  Send(*h, ModernPost("tools/call", {{"name", "greet"}}))->Wait();
  auto read =
      Send(*h, ModernPost("resources/read", {{"uri", "asya://envelopes/env-1"}}))->Body()["result"];
  EXPECT_EQ(read["cacheScope"], "private");
  const Json state = Json::parse(read["contents"][0]["text"].get<std::string>());
  EXPECT_EQ(state["status"], "completed");
  EXPECT_EQ(state["result"]["x"], 1);
  auto missing = Send(*h, ModernPost("resources/read", {{"uri", "asya://envelopes/none"}}));
  EXPECT_EQ(missing->Body()["error"]["code"], -32602);
  auto templates = Send(*h, ModernPost("resources/templates/list"))->Body()["result"];
  EXPECT_EQ(templates["resourceTemplates"][0]["uriTemplate"], "asya://envelopes/{id}");
  auto prompts = Send(*h, ModernPost("prompts/list"))->Body()["result"];
  EXPECT_EQ(prompts["prompts"], Json::array());
  EXPECT_TRUE(prompts.contains("ttlMs"));
}

}  // namespace
}  // namespace asya::gateway
