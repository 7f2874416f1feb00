// REST endpoints and SSE streams over the real Service and a real SQLite store, with a recording
// transport and recording responders (no sockets); plus the security guard.
#include "asya/gateway/rest.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "asya/gateway/envelope_json.h"
#include "asya/gateway/gateway_service.h"
#include "asya/gateway/security.h"
#include "asya/gateway/tools_config.h"
#include "asya/store/store.h"
#include "gateway_fakes.h"
#include "support/temp_dir.h"

namespace asya::gateway {
namespace {

using nlohmann::json;
using test::Call;

constexpr const char* kTools = R"(
tools:
- name: echo
  description: echo text
  route: [first, second]
  progress: true
  timeout: 60
  metadata: {owner: tests}
  parameters:
    text: {type: string, required: true}
    times: {type: integer, default: 1}
- name: quiet
  route: [only]
  timeout: 0
)";

class RestTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto store = store::Open("sqlite://" + dir_.File("gw.db"), clock_);
    ASSERT_TRUE(store.has_value()) << store.error().message;
    store_ = std::move(*store);
    auto tools = ParseToolsConfig(kTools, "t.yaml");
    ASSERT_TRUE(tools.has_value()) << tools.error().message;
    ServiceOptions o;
    o.tools = *tools;
    o.deadline_sweep = std::chrono::milliseconds(0);
    o.retention = std::chrono::hours(1);
    service_ = std::make_unique<GatewayService>(o, *store_, transport_, clock_);
    ASSERT_TRUE(service_->Start().has_value());
    handler_ = MakeRestHandler(*service_, service_.get(), nullptr, clock_);
  }
  void TearDown() override { service_->Stop(); }

  // Calls echo and waits until it was published; returns the envelope id.
  std::string StartEcho() {
    size_t before = transport_.All().size();
    auto a = Call(handler_, "POST", "/tools/call", R"({"name":"echo","arguments":{"text":"hi"}})");
    EXPECT_EQ(a->response.status, 200) << a->response.body;
    json text = json::parse(json::parse(a->response.body)["content"][0]["text"].get<std::string>());
    EXPECT_TRUE(transport_.WaitCount(before + 1));
    return text["envelope_id"];
  }
  std::string Status(const std::string& id) {
    auto a = Call(handler_, "GET", "/envelopes/" + id);
    return json::parse(a->response.body)["status"];
  }
  std::shared_ptr<test::Answer> Progress(const std::string& id, int idx, const char* state) {
    return Call(
        handler_, "POST", "/envelopes/" + id + "/progress",
        json({{"actors", {"first", "second"}}, {"current_actor_idx", idx}, {"status", state}})
            .dump());
  }

  asya::test::TempDir dir_;
  ManualClock clock_;
  std::unique_ptr<store::Store> store_;
  test::RecordingTransport transport_;
  std::unique_ptr<GatewayService> service_;
  Handler handler_;
};

TEST_F(RestTest, HealthAndUnknownPaths) {
  auto a = Call(handler_, "GET", "/health");
  EXPECT_EQ(a->response.status, 200);
  EXPECT_EQ(a->response.body, "OK\n");
  EXPECT_EQ(Call(handler_, "GET", "/nope")->response.status, 404);
  EXPECT_EQ(Call(handler_, "POST", "/mcp", "{}")->response.status, 404);  // no MCP handler given
}

TEST_F(RestTest, McpRequestsGoToTheMcpHandler) {
  std::string seen;
  Handler mcp = [&](Request r, Responder resp) {
    seen = r.method + " " + r.path;
    resp.Reply(Response{202, {}, ""});
  };
  auto h = MakeRestHandler(*service_, service_.get(), mcp);
  EXPECT_EQ(Call(h, "POST", "/mcp", "{}")->response.status, 202);
  EXPECT_EQ(seen, "POST /mcp");
  Call(h, "GET", "/mcp/sse");
  EXPECT_EQ(seen, "GET /mcp/sse");
}

TEST_F(RestTest, ToolCallCreatesAndPublishesTheEnvelope) {
  auto a = Call(handler_, "POST", "/tools/call", R"({"name":"echo","arguments":{"text":"hi"}})");
  ASSERT_EQ(a->response.status, 200) << a->response.body;
  json body = json::parse(a->response.body);
  json text = json::parse(body["content"][0]["text"].get<std::string>());
  const std::string id = text["envelope_id"];
  EXPECT_EQ(id.size(), 36u);
  EXPECT_EQ(id[14], '4');  // UUIDv4
  EXPECT_EQ(text["message"], "Envelope created successfully");
  EXPECT_EQ(text["status_url"], "/envelopes/" + id);
  EXPECT_EQ(text["stream_url"], "/envelopes/" + id + "/stream");
  EXPECT_EQ(text["metadata"], json({{"owner", "tests"}}));

  ASSERT_TRUE(transport_.WaitCount(1));
  auto p = transport_.All()[0];
  EXPECT_EQ(p.queue, "asya-first");
  json msg = json::parse(p.body);
  EXPECT_EQ(msg["id"], id);
  EXPECT_EQ(msg["route"]["actors"], json({"first", "second"}));
  EXPECT_EQ(msg["route"]["current"], 0);
  EXPECT_EQ(msg["route"]["metadata"]["job_id"], id);
  EXPECT_EQ(msg["payload"], json({{"text", "hi"}, {"times", 1}}));  // default filled in
  ASSERT_TRUE(msg.contains("deadline"));
  EXPECT_EQ(msg["deadline"].get<std::string>().back(), 'Z');

  auto g = Call(handler_, "GET", "/envelopes/" + id);
  ASSERT_EQ(g->response.status, 200);
  json env = json::parse(g->response.body);
  EXPECT_EQ(env["status"], "running");
  EXPECT_EQ(env["tool"], "echo");
  EXPECT_EQ(env["total_actors"], 2);
  EXPECT_EQ(env["timeout_seconds"], 60);

  // No progress, no metadata, no deadline: no stream_url, no deadline key.
  auto q = Call(handler_, "POST", "/tools/call", R"({"name":"quiet"})");
  json qt = json::parse(json::parse(q->response.body)["content"][0]["text"].get<std::string>());
  EXPECT_FALSE(qt.contains("stream_url"));
  EXPECT_FALSE(qt.contains("metadata"));
  ASSERT_TRUE(transport_.WaitCount(2));
  EXPECT_FALSE(json::parse(transport_.All()[1].body).contains("deadline"));
}

TEST_F(RestTest, ToolCallBadInput) {
  EXPECT_EQ(Call(handler_, "GET", "/tools/call")->response.status, 405);
  EXPECT_EQ(Call(handler_, "PUT", "/tools/call", "{}")->response.status, 405);
  auto bad = Call(handler_, "POST", "/tools/call", "{not json");
  EXPECT_EQ(bad->response.status, 400);
  EXPECT_EQ(bad->response.body, "Invalid request body\n");
  EXPECT_EQ(Call(handler_, "POST", "/tools/call", "{}")->response.body, "Tool name is required\n");
  EXPECT_EQ(Call(handler_, "POST", "/tools/call", R"({"name":""})")->response.status, 400);
  auto unknown = Call(handler_, "POST", "/tools/call", R"({"name":"nope"})");
  EXPECT_EQ(unknown->response.status, 404);
  EXPECT_EQ(unknown->response.body, "Tool \"nope\" not found\n");
  struct Case {
    const char* body;
    const char* message;
  } cases[] = {
      {R"({"name":"echo"})", "missing required parameter: text"},
      {R"({"name":"echo","arguments":null})", "missing required parameter: text"},
      {R"({"name":"echo","arguments":{"text":1}})", "parameter 'text': expected string"},
      {R"({"name":"echo","arguments":{"text":"a","times":"x"}})", "parameter 'times'"},
      {R"({"name":"echo","arguments":{"text":"a","extra":1}})", "unknown parameter: extra"},
      {R"({"name":"echo","arguments":[1]})", "arguments must be a JSON object"},
  };
  for (const auto& c : cases) {
    auto a = Call(handler_, "POST", "/tools/call", c.body);
    ASSERT_EQ(a->response.status, 200) << c.body;
    json r = json::parse(a->response.body);
    EXPECT_EQ(r["isError"], true) << c.body;
    EXPECT_NE(r["content"][0]["text"].get<std::string>().find(c.message), std::string::npos)
        << c.body << " -> " << r["content"][0]["text"];
  }
  EXPECT_TRUE(transport_.All().empty());  // nothing was published
}

TEST_F(RestTest, ToolList) {
  auto a = Call(handler_, "GET", "/tools");
  ASSERT_EQ(a->response.status, 200);
  json r = json::parse(a->response.body);
  ASSERT_EQ(r["tools"].size(), 2u);
  EXPECT_EQ(r["tools"][0]["name"], "echo");
  EXPECT_EQ(r["tools"][0]["inputSchema"]["properties"]["times"]["type"], "integer");
}

TEST_F(RestTest, EnvelopePaths) {
  const std::string id = StartEcho();
  EXPECT_EQ(Call(handler_, "GET", "/envelopes/" + id + "?x=1")->response.status, 200);
  EXPECT_EQ(Call(handler_, "GET", "/envelopes/unknown-id")->response.status, 404);
  EXPECT_EQ(Call(handler_, "GET", "/envelopes/unknown-id")->response.body, "Envelope not found\n");
  for (const char* m : {"POST", "PUT", "DELETE"}) {
    EXPECT_EQ(Call(handler_, m, "/envelopes/" + id)->response.status, 405) << m;
  }
  for (const char* p : {"/envelopes/", "/envelopes//active", "/envelopes/x/bogus",
                        "/envelopes/x/stream/extra", "/envelopes/x/"}) {
    EXPECT_EQ(Call(handler_, "GET", p)->response.status, 400) << p;
  }
  EXPECT_EQ(Call(handler_, "GET", "/envelopes/" + id + "/progress")->response.status, 405);
  EXPECT_EQ(Call(handler_, "GET", "/envelopes/" + id + "/final")->response.status, 405);
  EXPECT_EQ(Call(handler_, "POST", "/envelopes/" + id + "/stream")->response.status, 405);
  // Well-formed ids of any shape reach the lookup (404 when unknown), percent-decoded.
  for (const char* p : {"/envelopes/abc_1-2", "/envelopes/12345", "/envelopes/a%2Fb",
                        "/envelopes/6f1c2a9e-4b1d-4c1e-9a8e-0d1f2e3c4b5a/active"}) {
    int st = Call(handler_, "GET", p)->response.status;
    EXPECT_TRUE(st == 404 || st == 410) << p << " " << st;
  }
  EXPECT_EQ(Call(handler_, "GET", "/envelopes/" + id.substr(0, 8) + "%2D" + id.substr(9))
                ->response.status,
            200);
  // A 1000-character id with no body.
  EXPECT_EQ(
      Call(handler_, "POST", "/envelopes/" + std::string(1000, 'a') + "/progress")->response.status,
      400);
}

TEST_F(RestTest, ProgressThenFinalAndFinalIsFinal) {
  const std::string id = StartEcho();
  auto p = Progress(id, 0, "processing");
  ASSERT_EQ(p->response.status, 200) << p->response.body;
  EXPECT_EQ(json::parse(p->response.body)["progress_percent"], 25);
  // The last actor completing does not make 100%: only the final status does.
  p = Progress(id, 1, "completed");
  EXPECT_LT(json::parse(p->response.body)["progress_percent"].get<double>(), 100);
  EXPECT_EQ(Call(handler_, "GET", "/envelopes/" + id + "/active")->response.status, 200);

  auto f = Call(
      handler_, "POST", "/envelopes/" + id + "/final",
      R"({"id":"x","status":"succeeded","result":{"answer":42},"metadata":{"s3_uri":"s3://b/k"}})");
  ASSERT_EQ(f->response.status, 200) << f->response.body;
  json env = json::parse(Call(handler_, "GET", "/envelopes/" + id)->response.body);
  EXPECT_EQ(env["status"], "succeeded");
  EXPECT_EQ(env["progress_percent"], 100);
  EXPECT_EQ(env["result"], json({{"answer", 42}}));
  EXPECT_EQ(env["message"], "Envelope completed successfully, results stored at s3://b/k");

  // Late reports change nothing.
  EXPECT_EQ(Progress(id, 0, "received")->response.status, 200);
  auto again = Call(handler_, "POST", "/envelopes/" + id + "/final",
                    R"({"status":"failed","error":"late"})");
  EXPECT_EQ(again->response.status, 200);
  env = json::parse(Call(handler_, "GET", "/envelopes/" + id)->response.body);
  EXPECT_EQ(env["status"], "succeeded");
  EXPECT_FALSE(env.contains("error"));
  auto active = Call(handler_, "GET", "/envelopes/" + id + "/active");
  EXPECT_EQ(active->response.status, 410);
  EXPECT_EQ(active->response.body, "{\"active\":false}");
}

TEST_F(RestTest, FailedFinalWithDetails) {
  const std::string id = StartEcho();
  auto f = Call(handler_, "POST", "/envelopes/" + id + "/final",
                R"({"status":"failed","error":"boom","error_details":{"type":"ValueError"},
                    "actors":["first","second"],"current_actor_idx":1,"current_actor_name":"second"})");
  ASSERT_EQ(f->response.status, 200);
  json env = json::parse(Call(handler_, "GET", "/envelopes/" + id)->response.body);
  EXPECT_EQ(env["status"], "failed");
  EXPECT_EQ(env["error"], "boom");
  EXPECT_EQ(env["message"], "Envelope failed at actor 'second': boom");
  EXPECT_EQ(env["result"]["details"]["type"], "ValueError");
  EXPECT_EQ(env["result"]["failed_actor"], "second");
  EXPECT_EQ(env["result"]["failed_actor_idx"], 1);
}

TEST_F(RestTest, CallbackBadInputAndUnknownIds) {
  const std::string id = StartEcho();
  EXPECT_EQ(Progress("no-such-id", 0, "received")->response.status, 404);
  EXPECT_EQ(Call(handler_, "POST", "/envelopes/no-such-id/final", R"({"status":"succeeded"})")
                ->response.status,
            404);
  EXPECT_EQ(Call(handler_, "POST", "/envelopes/" + id + "/progress", "nope")->response.status, 400);
  EXPECT_EQ(Call(handler_, "POST", "/envelopes/" + id + "/progress",
                 R"({"current_actor_idx":"one","status":"received"})")
                ->response.status,
            400);
  EXPECT_EQ(Call(handler_, "POST", "/envelopes/" + id + "/progress",
                 R"({"current_actor_idx":0,"status":"dancing"})")
                ->response.status,
            400);
  for (const char* body : {"", "{}", R"({"status":""})", R"({"status":"done"})", "[1]"}) {
    EXPECT_EQ(Call(handler_, "POST", "/envelopes/" + id + "/final", body)->response.status, 400)
        << body;
  }
  EXPECT_EQ(Status(id), "running");  // nothing changed
}

TEST_F(RestTest, FanOutChildrenAreRecordedNeverPublished) {
  const std::string id = StartEcho();
  const size_t published = transport_.All().size();
  const std::string child =
      json({{"id", id + "-1"}, {"parent_id", id}, {"actors", {"first", "second"}}, {"current", 1}})
          .dump();
  auto a = Call(handler_, "POST", "/envelopes", child);
  ASSERT_EQ(a->response.status, 201) << a->response.body;
  EXPECT_EQ(json::parse(a->response.body), json({{"status", "created"}, {"id", id + "-1"}}));
  EXPECT_EQ(Call(handler_, "POST", "/envelopes", child)->response.status, 201);  // a retry
  auto other = Call(handler_, "POST", "/envelopes",
                    json({{"id", id + "-1"}, {"parent_id", "someone-else"}}).dump());
  EXPECT_EQ(other->response.status, 409);
  EXPECT_EQ(Call(handler_, "POST", "/envelopes", R"({"parent_id":"p"})")->response.body,
            "Missing required field: id\n");
  EXPECT_EQ(Call(handler_, "POST", "/envelopes", "{bad")->response.status, 400);
  EXPECT_EQ(Call(handler_, "GET", "/envelopes")->response.status, 405);

  json env = json::parse(Call(handler_, "GET", "/envelopes/" + id + "-1")->response.body);
  EXPECT_EQ(env["parent_id"], id);
  EXPECT_EQ(env["route"]["current"], 1);
  EXPECT_TRUE(env.contains("deadline"));  // the parent's
  auto children = service_->Children(id);
  ASSERT_TRUE(children.has_value());
  EXPECT_EQ(*children, std::vector<std::string>{id + "-1"});
  EXPECT_EQ(transport_.All().size(), published);  // W22: never re-published
}

TEST_F(RestTest, BatchHandlesEachReportAsItsSinglePost) {
  const std::string id = StartEcho();
  const std::string other = StartEcho();
  auto report = [](const std::string& path, json body) {
    return json({{"path", path}, {"body", std::move(body)}});
  };
  auto progress = [](const char* state) {
    return json({{"actors", {"first", "second"}}, {"current_actor_idx", 0}, {"status", state}});
  };
  json reports = json::array();
  reports.push_back(report("/envelopes/" + id + "/progress", progress("processing")));
  reports.push_back(report("/envelopes/no-such-id/progress", progress("received")));
  reports.push_back(report("/envelopes/no-such-id/progress", progress("processing")));
  reports.push_back(report(
      "/envelopes",
      {{"id", id + "-1"}, {"parent_id", id}, {"actors", {"first", "second"}}, {"current", 1}}));
  reports.push_back(report("/envelopes/" + id + "-1/final", {{"status", "succeeded"}}));
  reports.push_back(report("/envelopes/" + id + "/final",
                           {{"status", "succeeded"}, {"result", {{"answer", 42}}}}));
  reports.push_back(report("/envelopes/" + id + "/progress",  // late: changes nothing
                           progress("received")));
  reports.push_back(report("/envelopes/" + other + "/final", {{"status", "done"}}));  // bad status
  reports.push_back(report("/envelopes/no-such-id/final", {{"status", "succeeded"}}));
  reports.push_back(report("/envelopes/" + other + "/cancel", json::object()));  // not a callback
  reports.push_back(json({{"path", "/envelopes/" + other + "/progress"}}));      // no body
  reports.push_back(json("nope"));
  auto a = Call(handler_, "POST", "/envelopes/batch", json({{"reports", reports}}).dump());
  ASSERT_EQ(a->response.status, 200) << a->response.body;
  EXPECT_EQ(json::parse(a->response.body),
            json({{"statuses", {200, 404, 404, 201, 200, 200, 200, 400, 404, 404, 400, 400}}}));
  json env = json::parse(Call(handler_, "GET", "/envelopes/" + id)->response.body);
  EXPECT_EQ(env["status"], "succeeded");
  EXPECT_EQ(env["result"], json({{"answer", 42}}));
  EXPECT_EQ(Status(id + "-1"), "succeeded");
  EXPECT_EQ(Status(other), "running");  // its bad and foreign reports changed nothing
  // The history holds the batch's reports as single posts would have left them.
  auto history = service_->History(id, 0);
  ASSERT_TRUE(history.has_value());
  EXPECT_EQ(history->back().status, store::Status::kSucceeded);

  // The whole request: a body that is not a list of reports, or too many of them.
  for (const char* body : {"", "[]", "{}", R"({"reports":{}})"}) {
    EXPECT_EQ(Call(handler_, "POST", "/envelopes/batch", body)->response.status, 400) << body;
  }
  json many = json::array();
  for (int i = 0; i < 1001; ++i) {
    many.push_back(report("/envelopes/no-such-id/final", {{"status", "succeeded"}}));
  }
  EXPECT_EQ(
      Call(handler_, "POST", "/envelopes/batch", json({{"reports", many}}).dump())->response.status,
      400);
  // GET is still the envelope with the id "batch".
  EXPECT_EQ(Call(handler_, "GET", "/envelopes/batch")->response.status, 404);
}

std::vector<json> Events(const std::vector<std::string>& sent,
                         std::vector<long long>* ids = nullptr) {
  std::vector<json> out;
  for (const auto& s : sent) {
    if (s.rfind(":", 0) == 0)
      continue;
    auto data = s.find("data: ");
    if (ids != nullptr) {
      ids->push_back(s.rfind("id: ", 0) == 0 ? std::stoll(s.substr(4)) : 0);
    }
    out.push_back(json::parse(s.substr(data + 6)));
  }
  return out;
}

TEST_F(RestTest, StreamReplaysThenGoesLiveAndClosesAfterTheFinalEvent) {
  const std::string id = StartEcho();
  Progress(id, 0, "received");
  auto a = Call(handler_, "GET", "/envelopes/" + id + "/stream");
  ASSERT_TRUE(a->stream);
  EXPECT_EQ(a->stream_status, 200);
  EXPECT_EQ(a->stream_headers["Content-Type"], "text/event-stream");
  // History: created (pending), running, received.
  ASSERT_TRUE(a->stream->WaitFor([](auto& s) { return s.size() >= 3; }));
  EXPECT_FALSE(a->stream->Closed());
  Progress(id, 0, "processing");
  ASSERT_TRUE(a->stream->WaitFor([](auto& s) { return s.size() >= 4; }));
  Call(handler_, "POST", "/envelopes/" + id + "/final", R"({"status":"succeeded","result":1})");
  ASSERT_TRUE(a->stream->WaitClosed());
  std::vector<long long> ids;
  auto ev = Events(a->stream->Sent(), &ids);
  ASSERT_EQ(ev.size(), 5u);
  EXPECT_EQ(ev[0]["status"], "pending");
  EXPECT_EQ(ev[1]["status"], "running");
  EXPECT_EQ(ev[2]["envelope_state"], "received");
  EXPECT_EQ(ev[3]["envelope_state"], "processing");
  EXPECT_EQ(ev[4]["status"], "succeeded");
  EXPECT_EQ(ev[4]["result"], 1);
  for (size_t i = 0; i < ids.size(); ++i) {
    EXPECT_GT(ids[i], 0) << i;
    if (i > 0) {
      EXPECT_GT(ids[i], ids[i - 1]);
    }
  }

  // A late subscriber gets the whole history, the final event included, then the close.
  auto late = Call(handler_, "GET", "/envelopes/" + id + "/stream");
  ASSERT_TRUE(late->stream->WaitClosed());
  auto lev = Events(late->stream->Sent());
  ASSERT_EQ(lev.size(), 5u);
  EXPECT_EQ(lev.back()["status"], "succeeded");

  // Last-Event-ID resumes after that event.
  auto resumed = Call(handler_, "GET", "/envelopes/" + id + "/stream", "",
                      {{"Last-Event-ID", std::to_string(ids[2])}});
  ASSERT_TRUE(resumed->stream->WaitClosed());
  auto rev = Events(resumed->stream->Sent());
  ASSERT_EQ(rev.size(), 2u);
  EXPECT_EQ(rev[0]["envelope_state"], "processing");
  EXPECT_EQ(rev[1]["status"], "succeeded");

  // Resuming after the final event: nothing left, closed.
  auto after = Call(handler_, "GET", "/envelopes/" + id + "/stream", "",
                    {{"Last-Event-ID", std::to_string(ids.back())}});
  ASSERT_TRUE(after->stream->WaitClosed());
  EXPECT_TRUE(Events(after->stream->Sent()).empty());

  EXPECT_EQ(Call(handler_, "GET", "/envelopes/nope/stream")->response.status, 404);
}

TEST_F(RestTest, DeadlinesFromTheStoreFailTheEnvelope) {
  const std::string id = StartEcho();
  auto none = service_->SweepDeadlines();
  ASSERT_TRUE(none.has_value());
  EXPECT_EQ(*none, 0);
  clock_.Advance(std::chrono::seconds(61));
  EXPECT_EQ(Call(handler_, "GET", "/envelopes/" + id + "/active")->response.status, 410);
  auto n = service_->SweepDeadlines();
  ASSERT_TRUE(n.has_value()) << n.error().message;
  EXPECT_EQ(*n, 1);
  json env = json::parse(Call(handler_, "GET", "/envelopes/" + id)->response.body);
  EXPECT_EQ(env["status"], "failed");
  EXPECT_EQ(env["error"], "envelope timed out");
  // A late success does not overwrite the timeout.
  Call(handler_, "POST", "/envelopes/" + id + "/final", R"({"status":"succeeded"})");
  EXPECT_EQ(Status(id), "failed");
}

TEST_F(RestTest, PublishFailureFailsTheEnvelope) {
  transport_.fail = true;
  auto a = Call(handler_, "POST", "/tools/call", R"({"name":"quiet"})");
  json text = json::parse(json::parse(a->response.body)["content"][0]["text"].get<std::string>());
  const std::string id = text["envelope_id"];
  json env;
  for (int i = 0; i < 1000; ++i) {
    env = json::parse(Call(handler_, "GET", "/envelopes/" + id)->response.body);
    if (env["status"] == "failed")
      break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(env["status"], "failed");
  EXPECT_NE(env["error"].get<std::string>().find("failed to send envelope: "), std::string::npos);
}

TEST_F(RestTest, CancelAndRetentionPurge) {
  const std::string id = StartEcho();
  auto c = Call(handler_, "POST", "/envelopes/" + id + "/cancel", R"({"reason":"user"})");
  ASSERT_EQ(c->response.status, 200) << c->response.body;
  EXPECT_EQ(Status(id), "cancelled");
  EXPECT_EQ(Call(handler_, "POST", "/envelopes/" + id + "/cancel")->response.status, 409);
  EXPECT_EQ(Call(handler_, "POST", "/envelopes/nope/cancel")->response.status, 404);
  const std::string running = StartEcho();
  clock_.Advance(std::chrono::minutes(30));
  auto n = service_->PurgeOnce();
  ASSERT_TRUE(n.has_value());
  EXPECT_EQ(*n, 0);  // within retention
  clock_.Advance(std::chrono::minutes(31));
  n = service_->PurgeOnce();
  ASSERT_TRUE(n.has_value());
  EXPECT_EQ(*n, 1);
  EXPECT_EQ(Call(handler_, "GET", "/envelopes/" + id)->response.status, 404);
  EXPECT_EQ(Call(handler_, "GET", "/envelopes/" + running)->response.status, 200);  // not final
}

// ---- the guard ----

class GuardTest : public ::testing::Test {
 protected:
  Handler Make(GuardOptions o) {
    return Guard(o, [this](Request r, Responder resp) {
      ++passed_;
      resp.Reply(Response{200, {}, r.path});
    });
  }
  int passed_ = 0;
};

TEST_F(GuardTest, ClientTokens) {
  GuardOptions o;
  o.client_tokens = {"alpha", "beta"};
  o.loopback = false;
  auto h = Make(o);
  auto none = Call(h, "POST", "/tools/call", "{}");
  EXPECT_EQ(none->response.status, 401);
  EXPECT_EQ(none->response.headers["WWW-Authenticate"], "Bearer realm=\"asya-gateway\"");
  auto wrong = Call(h, "GET", "/envelopes/x", "", {{"Authorization", "Bearer gamma"}});
  EXPECT_EQ(wrong->response.status, 401);
  EXPECT_NE(wrong->response.headers["WWW-Authenticate"].find("invalid_token"), std::string::npos);
  EXPECT_EQ(wrong->response.body.find("gamma"), std::string::npos);  // never echoed
  EXPECT_EQ(Call(h, "GET", "/envelopes/x/stream", "", {{"authorization", "bearer beta"}})
                ->response.status,
            200);
  EXPECT_EQ(Call(h, "POST", "/mcp", "", {{"Authorization", "Basic YWxwaGE="}})->response.status,
            401);
  EXPECT_EQ(Call(h, "GET", "/health")->response.status, 200);
  // Callbacks are not client routes: open without a callback token.
  EXPECT_EQ(Call(h, "POST", "/envelopes/x/progress", "{}")->response.status, 200);
  EXPECT_EQ(passed_, 3);
}

TEST_F(GuardTest, CallbackToken) {
  GuardOptions o;
  o.client_tokens = {"client"};
  o.callback_token = "sidecar";
  o.loopback = false;
  auto h = Make(o);
  for (const char* p :
       {"/envelopes", "/envelopes/x/progress", "/envelopes/x/final", "/envelopes/batch"}) {
    EXPECT_EQ(Call(h, "POST", p, "{}")->response.status, 401) << p;
    EXPECT_EQ(Call(h, "POST", p, "{}", {{"Authorization", "Bearer client"}})->response.status, 401)
        << p;
    EXPECT_EQ(Call(h, "POST", p, "{}", {{"Authorization", "Bearer sidecar"}})->response.status, 200)
        << p;
  }
  // The sidecar token is not a client token.
  EXPECT_EQ(
      Call(h, "GET", "/envelopes/x", "", {{"Authorization", "Bearer sidecar"}})->response.status,
      401);
}

TEST_F(GuardTest, OriginAndHostOnLoopback) {
  GuardOptions o;
  o.loopback = true;
  o.allowed_origins = {"https://app.example.com"};
  auto h = Make(o);
  EXPECT_EQ(Call(h, "POST", "/mcp", "", {{"Host", "localhost:8080"}})->response.status, 200);
  EXPECT_EQ(
      Call(h, "POST", "/mcp", "", {{"Host", "127.0.0.1:8080"}, {"Origin", "http://localhost:3000"}})
          ->response.status,
      200);
  EXPECT_EQ(Call(h, "POST", "/mcp", "", {{"Host", "[::1]:8080"}})->response.status, 200);
  EXPECT_EQ(Call(h, "POST", "/mcp", "", {{"Host", "evil.example:8080"}})->response.status, 403);
  EXPECT_EQ(Call(h, "POST", "/mcp", "", {{"Host", "localhost"}, {"Origin", "http://evil.example"}})
                ->response.status,
            403);
  EXPECT_EQ(
      Call(h, "POST", "/mcp", "", {{"Origin", "http://localhost.evil.example"}})->response.status,
      403);
  EXPECT_EQ(Call(h, "POST", "/mcp", "", {{"Origin", "https://app.example.com"}})->response.status,
            200);
}

}  // namespace
}  // namespace asya::gateway
