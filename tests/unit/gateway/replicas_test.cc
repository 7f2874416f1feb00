// Two gateway replicas on one PostgreSQL database (a throw-away server): a call made on one is
// seen, streamed and finished through the other (LISTEN/NOTIFY carries the live updates), and the
// deadline sweep of either replica finishes an envelope exactly once.
#include <set>
#include <thread>
#include <vector>

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

// Tool calls arriving together are committed together (Store::CreateMany): every caller gets
// its own envelope, stored (pending, then running) and published exactly once.
TEST_F(ReplicasTest, ConcurrentCallsAreEachStoredAndPublishedOnce) {
  constexpr int kCalls = 48;
  std::vector<std::string> ids(kCalls);
  std::vector<std::thread> callers;
  for (int k = 0; k < kCalls; ++k) {
    callers.emplace_back([&, k] {
      auto e = a_.service->CallTool("job", R"({"n":)" + std::to_string(k) + "}");
      if (e) {
        ids[static_cast<std::size_t>(k)] = e->id;
      }
    });
  }
  for (auto& t : callers) {
    t.join();
  }
  std::set<std::string> distinct(ids.begin(), ids.end());
  ASSERT_EQ(distinct.size(), static_cast<std::size_t>(kCalls));
  ASSERT_EQ(distinct.count(""), 0u);
  for (int k = 0; k < kCalls; ++k) {
    auto e = b_.service->Get(ids[static_cast<std::size_t>(k)]);  // committed: the other replica
    ASSERT_TRUE(e.has_value()) << e.error().message;             // reads it
    EXPECT_EQ(json::parse(e->payload_json), json({{"n", k}}));
  }
  for (int i = 0; i < 6 && !a_.transport.WaitCount(kCalls); ++i) {  // a generous bound
  }
  std::multiset<std::string> published;
  for (const auto& m : a_.transport.All()) {
    published.insert(json::parse(m.body)["id"].get<std::string>());
  }
  EXPECT_EQ(published, std::multiset<std::string>(ids.begin(), ids.end()));
  for (const auto& id : ids) {
    auto h = b_.service->History(id, 0);
    ASSERT_TRUE(h.has_value());
    ASSERT_EQ(h->size(), 2u);  // pending, running
    EXPECT_EQ((*h)[0].status, store::Status::kPending);
    EXPECT_EQ((*h)[1].status, store::Status::kRunning);
  }
}

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
