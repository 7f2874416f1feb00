// Two gateway replicas on one PostgreSQL database (a throw-away server): a call made on one is
// seen, streamed and finished through the other (LISTEN/NOTIFY carries the live updates), and the
// deadline sweep of either replica finishes an envelope exactly once.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "asya/gateway/gateway_service.h"
#include "asya/gateway/rest.h"
#include "asya/gateway/tools_config.h"
#include "asya/store/store.h"
#include "gateway_fakes.h"
#include "support/postgres_fixture.h"

namespace asya::gateway {
namespace {

using nlohmann::json;
using test::Call;

struct Replica {
  std::unique_ptr<store::Store> store;
  test::RecordingTransport transport;
  std::unique_ptr<GatewayService> service;
  Handler rest;
};

class ReplicasTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { asya::test::PostgresServer::Shared(); }

  void SetUp() override {
    auto url = asya::test::PostgresServer::Shared().NewDatabase();
    ASSERT_TRUE(url.has_value()) << url.error().message;
    auto tools = ParseToolsConfig(
        "tools: [{name: job, route: [a, b], timeout: 60, parameters: {n: {type: integer}}}]",
        "t.yaml");
    ASSERT_TRUE(tools.has_value());
    for (auto* r : {&a_, &b_}) {
      auto s = store::Open(*url, clock_);
      ASSERT_TRUE(s.has_value()) << s.error().message;
      r->store = std::move(*s);
      ServiceOptions o;
      o.tools = *tools;
      o.deadline_sweep = std::chrono::milliseconds(0);
      r->service = std::make_unique<GatewayService>(o, *r->store, r->transport, clock_);
      ASSERT_TRUE(r->service->Start().has_value());
      r->rest = MakeRestHandler(*r->service, r->service.get(), nullptr, clock_);
    }
  }
  void TearDown() override {
    a_.service->Stop();
    b_.service->Stop();
  }

  std::string CallOn(Replica& r) {
    auto a = Call(r.rest, "POST", "/tools/call", R"({"name":"job","arguments":{"n":1}})");
    EXPECT_EQ(a->response.status, 200) << a->response.body;
    return json::parse(
        json::parse(a->response.body)["content"][0]["text"].get<std::string>())["envelope_id"];
  }

  ManualClock clock_;
  Replica a_, b_;
};

TEST_F(ReplicasTest, CallOnOneStreamAndFinishOnTheOther) {
  const std::string id = CallOn(a_);
  ASSERT_TRUE(a_.transport.WaitCount(1));
  EXPECT_TRUE(b_.transport.All().empty());  // published once, by the replica that took the call
  auto stream = Call(b_.rest, "GET", "/envelopes/" + id + "/stream");
  ASSERT_TRUE(stream->stream);
  ASSERT_TRUE(stream->stream->WaitFor([](auto& s) { return s.size() >= 2; }));  // pending, running
  auto p = Call(a_.rest, "POST", "/envelopes/" + id + "/progress",
                R"({"actors":["a","b"],"current_actor_idx":0,"status":"processing"})");
  ASSERT_EQ(p->response.status, 200);
  ASSERT_TRUE(stream->stream->WaitFor([](auto& s) { return s.size() >= 3; }));
  auto f =
      Call(a_.rest, "POST", "/envelopes/" + id + "/final", R"({"status":"succeeded","result":7})");
  ASSERT_EQ(f->response.status, 200);
  ASSERT_TRUE(stream->stream->WaitClosed());
  auto sent = stream->stream->Sent();
  EXPECT_NE(sent.back().find("\"status\":\"succeeded\""), std::string::npos) << sent.back();
  json env = json::parse(Call(b_.rest, "GET", "/envelopes/" + id)->response.body);
  EXPECT_EQ(env["status"], "succeeded");
  EXPECT_EQ(env["result"], 7);
}

TEST_F(ReplicasTest, DeadlineSweepsOnBothReplicasFinishOnce) {
  const std::string id = CallOn(a_);
  ASSERT_TRUE(a_.transport.WaitCount(1));
  auto stream = Call(b_.rest, "GET", "/envelopes/" + id + "/stream");
  clock_.Advance(std::chrono::seconds(61));
  auto na = a_.service->SweepDeadlines();
  auto nb = b_.service->SweepDeadlines();
  ASSERT_TRUE(na.has_value() && nb.has_value());
  EXPECT_EQ(*na + *nb, 1);
  ASSERT_TRUE(stream->stream->WaitClosed());
  json env = json::parse(Call(a_.rest, "GET", "/envelopes/" + id)->response.body);
  EXPECT_EQ(env["status"], "failed");
  EXPECT_EQ(env["error"], "envelope timed out");
}

}  // namespace
}  // namespace asya::gateway
