// Fuzzes the gateway's HTTP input end to end without sockets: raw request bytes parsed by the
// same Boost.Beast parser and limits the server uses, turned into a Request as
// http_server.cc Dispatch() does, and served by the production handler stack — Guard (loopback
// mode), the REST endpoints and MCP (JSON-RPC, every protocol era) — over the real
// GatewayService with a SQLite store and a transport that accepts every publish.
//
// Invariants:
// - Nothing crashes, throws or answers twice.
// - Every synchronous answer has a status in 100..599; an answer that says it is JSON parses as
//   JSON; a JSON-RPC answer from /mcp carries "jsonrpc":"2.0" and a result or an error.
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>

#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <nlohmann/json.hpp>

#include "asya/base/clock.h"
#include "asya/gateway/gateway_service.h"
#include "asya/gateway/http.h"
#include "asya/gateway/mcp.h"
#include "asya/gateway/rest.h"
#include "asya/gateway/security.h"
#include "asya/gateway/tools_config.h"
#include "asya/store/store.h"
#include "asya/transport/transport.h"
#include "fuzz_check.h"

namespace {

namespace bhttp = boost::beast::http;
using namespace asya;
using namespace asya::gateway;

constexpr const char* kTools = R"(
tools:
- name: echo
  description: echo text
  route: [first, second]
  progress: true
  timeout: 60
  metadata: {owner: fuzz}
  parameters:
    text: {type: string, required: true}
    times: {type: integer, default: 1, minimum: 0}
    mode: {type: string, options: [fast, slow]}
    tags: {type: array, items: {type: string}}
- name: task
  route: [only]
  timeout: 0
  task_support: required
  input_schema: {type: object, properties: {region: {type: string, x-mcp-header: Region}}}
)";

class AcceptingTransport final : public transport::Transport {
 public:
  std::string_view Name() const override { return "fuzz"; }
  Result<std::vector<transport::Message>> Receive(std::string_view,
                                                  const transport::ReceiveOptions&) override {
    return std::vector<transport::Message>{};
  }
  Status Publish(std::string_view, std::string_view, const transport::PublishOptions&) override {
    return {};
  }
  Status Ack(const transport::Message&) override { return {}; }
  Status Nack(const transport::Message&, transport::Millis) override { return {}; }
  Status ExtendVisibility(const transport::Message&, transport::Millis) override { return {}; }
  void Interrupt() override {}
  Status CreateQueue(std::string_view, const transport::QueueOptions&) override { return {}; }
  Status DeleteQueue(std::string_view) override { return {}; }
  Result<bool> QueueExists(std::string_view) override { return true; }
  Result<transport::QueueDepth> Depth(std::string_view) override { return transport::QueueDepth{}; }
  Result<std::vector<std::string>> ListQueues() override { return std::vector<std::string>{}; }
  Status Purge(std::string_view) override { return {}; }
};

class NullStream final : public EventStream {
 public:
  bool Send(std::string) override { return !closed_; }
  void Close() override { closed_ = true; }
  bool Closed() const override { return closed_; }
  void OnClose(std::function<void()> cb) override {
    if (closed_) {
      cb();
    }
  }

 private:
  std::atomic<bool> closed_{false};
};

struct Answer {
  std::atomic<int> replies{0};
  Response response;
  bool mcp = false;
};

class CheckingResponder final : public Responder::Impl {
 public:
  explicit CheckingResponder(std::shared_ptr<Answer> a) : a_(std::move(a)) {}
  void Reply(Response r) override {
    FUZZ_CHECK(a_->replies.fetch_add(1) == 0);
    FUZZ_CHECK(r.status >= 100 && r.status <= 599);
    auto ct = r.headers.find("Content-Type");
    if (ct != r.headers.end() && ct->second.rfind("application/json", 0) == 0 && !r.body.empty()) {
      auto doc = nlohmann::json::parse(r.body, nullptr, false);
      if (doc.is_discarded()) {
        std::fprintf(stderr, "JSON answer does not parse (%d):\n%s\n", r.status, r.body.c_str());
      }
      FUZZ_CHECK(!doc.is_discarded());
      if (a_->mcp && doc.is_object()) {
        FUZZ_CHECK(doc.value("jsonrpc", "") == "2.0");
        FUZZ_CHECK(doc.contains("result") || doc.contains("error"));
      }
    }
  }
  std::shared_ptr<EventStream> OpenStream(int status, Headers) override {
    FUZZ_CHECK(a_->replies.fetch_add(1) == 0);
    FUZZ_CHECK(status >= 100 && status <= 599);
    auto s = std::make_shared<NullStream>();
    s->Close();  // the client goes away at once
    return s;
  }

 private:
  std::shared_ptr<Answer> a_;
};

struct World {
  ManualClock clock;
  std::unique_ptr<store::Store> store;
  AcceptingTransport transport;
  std::unique_ptr<GatewayService> service;
  std::unique_ptr<McpHandler> mcp;
  Handler handler;

  World() {
    char dir[] = "/tmp/asya-gateway-fuzz-XXXXXX";
    FUZZ_CHECK(::mkdtemp(dir) != nullptr);
    auto s = store::Open(std::string("sqlite://") + dir + "/gw.db", clock);
    FUZZ_CHECK(s.has_value());
    store = std::move(*s);
    auto tools = ParseToolsConfig(kTools, "tools.yaml");
    FUZZ_CHECK(tools.has_value());
    ServiceOptions o;
    o.tools = *tools;
    o.publish_threads = 1;
    o.deadline_sweep = std::chrono::milliseconds(0);
    o.retention = std::chrono::hours(1);
    service = std::make_unique<GatewayService>(o, *store, transport, clock);
    FUZZ_CHECK(service->Start().has_value());
    McpOptions mo;
    mo.allowed_hosts = {"localhost", "127.0.0.1", "[::1]", "::1"};
    mo.session_check_interval = std::chrono::milliseconds(0);
    mcp = std::make_unique<McpHandler>(*service, clock, mo);
    GuardOptions g;
    g.loopback = true;
    handler = Guard(g, MakeRestHandler(*service, service.get(), mcp->AsHandler(), clock));
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static World* world = new World();  // lives for the whole run (threads inside)

  bhttp::request_parser<bhttp::string_body> parser;
  parser.header_limit(16u << 10);
  parser.body_limit(4u << 20);
  parser.eager(true);
  boost::beast::error_code ec;
  parser.put(boost::asio::buffer(data, size), ec);
  if (!ec && !parser.is_done()) {
    parser.put_eof(ec);
  }
  if (ec || !parser.is_done()) {
    return 0;  // the server answers 400/413/431 or waits for more bytes
  }
  auto msg = parser.release();
  Request req;
  req.method = std::string(msg.method_string());
  std::string target(msg.target());
  if (auto q = target.find('?'); q == std::string::npos) {
    req.path = std::move(target);
  } else {
    req.path = target.substr(0, q);
    req.query = target.substr(q + 1);
  }
  for (const auto& f : msg) {
    auto [it, inserted] = req.headers.emplace(std::string(f.name_string()), std::string(f.value()));
    if (!inserted) {
      it->second += ", ";
      it->second += std::string(f.value());
    }
  }
  req.body = std::move(msg.body());
  req.peer = "127.0.0.1:40000";

  auto answer = std::make_shared<Answer>();
  answer->mcp = req.path == "/mcp" || req.path.rfind("/mcp/", 0) == 0;
  world->handler(std::move(req), Responder(std::make_shared<CheckingResponder>(answer)));
  // Deadlines and sync waits of this request expire before the next one.
  world->clock.Advance(std::chrono::hours(1));
  return 0;
}
