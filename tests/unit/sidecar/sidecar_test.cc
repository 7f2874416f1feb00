// The sidecar loop against a real SQLite transport and an in-process runtime speaking the real
// socket protocol (frames over a Unix socket): what needs real I/O (concurrent connections, large
// frames, the SQLite transport rejecting a queue name, delivery counting, readiness of a missing
// socket). Every routing rule is covered with fakes in sidecar_rules_test.cc, the threaded loop in
// sidecar_run_test.cc.
#include "asya/sidecar/sidecar.h"

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <mutex>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "asya/protocol/frame.h"
#include "asya/sidecar/metrics.h"
#include "asya/transport/sqlite.h"
#include "support/temp_dir.h"

namespace asya::sidecar {
namespace {

using json = nlohmann::json;
using std::chrono::milliseconds;

constexpr auto kWait = std::chrono::seconds(30);

// Minimal runtime: one thread per connection, several frames per connection. `handler` maps the
// request envelope to the response array.
class FakeRuntime {
 public:
  using Handler = std::function<json(const json&)>;

  FakeRuntime(const std::string& dir, Handler handler) : handler_(std::move(handler)) {
    path_ = dir + "/asya-runtime.sock";
    fd_ = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    std::snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path_.c_str());
    EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)), 0);
    EXPECT_EQ(::listen(fd_, 64), 0);
    std::ofstream(dir + "/runtime-ready") << "ready";
    accept_thread_ = std::thread([this] { AcceptLoop(); });
  }
  ~FakeRuntime() {
    ::shutdown(fd_, SHUT_RDWR);
    ::close(fd_);
    accept_thread_.join();
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& t : conns_) {
      t.join();
    }
  }
  int calls() const { return calls_; }

 private:
  void AcceptLoop() {
    while (true) {
      int c = ::accept(fd_, nullptr, nullptr);
      if (c < 0) {
        return;
      }
      std::lock_guard<std::mutex> lock(mu_);
      conns_.emplace_back([this, c] { Serve(c); });
    }
  }
  static bool ReadExact(int fd, char* buf, size_t n) {
    while (n > 0) {
      ssize_t r = ::read(fd, buf, n);
      if (r <= 0) {
        return false;
      }
      buf += r;
      n -= static_cast<size_t>(r);
    }
    return true;
  }
  void Serve(int c) {
    while (true) {
      unsigned char head[4];
      if (!ReadExact(c, reinterpret_cast<char*>(head), 4)) {
        break;
      }
      uint32_t n = (uint32_t(head[0]) << 24) | (uint32_t(head[1]) << 16) |
                   (uint32_t(head[2]) << 8) | head[3];
      std::string body(n, '\0');
      if (!ReadExact(c, body.data(), n)) {
        break;
      }
      ++calls_;
      json resp = handler_(json::parse(body));
      auto frame = protocol::EncodeFrame(resp.dump());
      if (::send(c, frame->data(), frame->size(), MSG_NOSIGNAL) < 0) {
        break;
      }
    }
    ::close(c);
  }

  Handler handler_;
  std::string path_;
  int fd_ = -1;
  std::atomic<int> calls_{0};
  std::mutex mu_;
  std::vector<std::thread> conns_;
  std::thread accept_thread_;
};

json Echo(const json& env) {
  json route = env["route"];
  route["current"] = route["current"].get<int>() + 1;
  return json::array({{{"payload", env["payload"]}, {"route", route}}});
}

// Delegates to the SQLite transport; counts acks/nacks/requeues.
class CountingTransport : public transport::Transport {
 public:
  explicit CountingTransport(transport::Transport& inner) : inner_(inner) {}
  std::atomic<int> acks{0};
  std::atomic<int> nacks{0};
  std::atomic<int> requeues{0};

  std::string_view Name() const override { return inner_.Name(); }
  Result<std::vector<transport::Message>> Receive(std::string_view q,
                                                  const transport::ReceiveOptions& o) override {
    return inner_.Receive(q, o);
  }
  Status Publish(std::string_view q, std::string_view body,
                 const transport::PublishOptions& o) override {
    return inner_.Publish(q, body, o);
  }
  Status Ack(const transport::Message& m) override {
    ++acks;
    return inner_.Ack(m);
  }
  Status Nack(const transport::Message& m, Millis delay) override {
    ++nacks;
    return inner_.Nack(m, delay);
  }
  Status Requeue(const transport::Message& m) override {
    ++requeues;
    return inner_.Requeue(m);
  }
  Status ExtendVisibility(const transport::Message& m, Millis v) override {
    return inner_.ExtendVisibility(m, v);
  }
  void Interrupt() override { inner_.Interrupt(); }
  Status CreateQueue(std::string_view q, const transport::QueueOptions& o) override {
    return inner_.CreateQueue(q, o);
  }
  Status DeleteQueue(std::string_view q) override { return inner_.DeleteQueue(q); }
  Result<bool> QueueExists(std::string_view q) override { return inner_.QueueExists(q); }
  Result<transport::QueueDepth> Depth(std::string_view q) override { return inner_.Depth(q); }
  Result<std::vector<std::string>> ListQueues() override { return inner_.ListQueues(); }
  Status Purge(std::string_view q) override { return inner_.Purge(q); }

 protected:
  transport::Transport& inner_;
};

// Also forwards the one-transaction settles (PublishAndAck, PublishAckAndReceive) and counts the
// messages received inside a settle.
class SettlingTransport : public CountingTransport {
 public:
  using CountingTransport::CountingTransport;
  std::atomic<int> settles{0};
  std::atomic<int> folded{0};
  std::optional<transport::SettleFailure> PublishAndAck(
      const transport::Message& m, std::span<const transport::Outgoing> out) override {
    ++settles;
    return inner_.PublishAndAck(m, out);
  }
  std::optional<transport::SettleFailure> PublishAckAndReceive(
      const transport::Message& m, std::span<const transport::Outgoing> out,
      transport::SettleReceive& also) override {
    ++settles;
    auto failure = inner_.PublishAckAndReceive(m, out, also);
    folded += static_cast<int>(also.received.size());
    return failure;
  }
};

class SidecarTest : public ::testing::Test {
 protected:
  void SetUp() override {
    transport::SqliteSettings ss;
    ss.path = dir_ + "/q.db";
    auto t = transport::MakeSqliteTransport(ss);
    ASSERT_TRUE(t.has_value()) << t.error().message;
    sqlite_ = std::move(*t);
    counting_ = std::make_unique<CountingTransport>(*sqlite_);
    for (const char* q : {"asya-a", "asya-b", "asya-happy-end", "asya-error-end"}) {
      ASSERT_TRUE(sqlite_->CreateQueue(q, {}).has_value());
    }
    settings_.policy.actor = "a";
    settings_.socket_path = dir_ + "/asya-runtime.sock";
    settings_.ready_poll_interval = milliseconds(20);
    settings_.receive_wait = milliseconds(200);
    settings_.shutdown_timeout = milliseconds(5000);
    settings_.publish_failure_nack_delay = milliseconds(50);
  }

  void Publish(const std::string& queue, const json& body) {
    ASSERT_TRUE(sqlite_->Publish(queue, body.dump()).has_value());
  }
  // Waits until `queue` holds n ready messages; returns their bodies (consumed).
  std::vector<json> Take(const std::string& queue, size_t n) {
    std::vector<json> out;
    auto deadline = std::chrono::steady_clock::now() + kWait;
    while (out.size() < n && std::chrono::steady_clock::now() < deadline) {
      transport::ReceiveOptions o;
      o.max_messages = n - out.size();
      o.wait = milliseconds(200);
      auto r = sqlite_->Receive(queue, o);
      if (!r) {
        break;
      }
      for (auto& m : *r) {
        out.push_back(json::parse(m.body));
        EXPECT_TRUE(sqlite_->Ack(m).has_value());
      }
    }
    return out;
  }
  transport::QueueDepth Depth(const std::string& q) { return *sqlite_->Depth(q); }

  asya::test::TempDir tmp_{"asct"};
  const std::string dir_ = tmp_.path();
  transport::TransportPtr sqlite_;
  std::unique_ptr<CountingTransport> counting_;
  Settings settings_;
};

json Env(const std::string& id, std::vector<std::string> actors, json payload) {
  return {{"id", id}, {"route", {{"actors", actors}, {"current", 0}}}, {"payload", payload}};
}

TEST_F(SidecarTest, RoutesEveryMessageAndAcksEachOnce) {
  FakeRuntime runtime(dir_, Echo);
  protocol::RuntimeClient client({.socket_path = settings_.socket_path});
  Metrics metrics({"asya_actor", "a", "sqlite"});
  settings_.concurrency = 3;
  Sidecar sidecar(settings_, *counting_, client, &metrics);
  std::thread run([&] { EXPECT_EQ(sidecar.Run(), 0); });
  for (int i = 0; i < 10; ++i) {
    Publish("asya-a", Env("m" + std::to_string(i), {"a", "b"}, i));
  }
  auto out = Take("asya-b", 10);
  ASSERT_EQ(out.size(), 10u);
  std::set<std::string> ids;
  for (const auto& e : out) {
    ids.insert(e["id"].get<std::string>());
    EXPECT_EQ(e["route"]["current"], 1);
  }
  EXPECT_EQ(ids.size(), 10u);
  sidecar.Shutdown();
  run.join();
  EXPECT_TRUE(sidecar.Drained());
  EXPECT_EQ(counting_->acks, 10);
  EXPECT_EQ(counting_->nacks, 0);
  EXPECT_EQ(Depth("asya-a").ready + Depth("asya-a").inflight, 0);
  EXPECT_NE(metrics.Render().find("asya_actor_messages_processed_total{queue=\"a\",status="
                                  "\"success\"} 10\n"),
            std::string::npos);
}

// SQLite: a worker that settles folds its next receive into the settle. Every message is still
// processed exactly once and settled, and the folded receives really happened.
TEST_F(SidecarTest, FoldedReceivesProcessEveryMessageOnce) {
  FakeRuntime runtime(dir_, Echo);
  protocol::RuntimeClient client({.socket_path = settings_.socket_path});
  SettlingTransport settling(*sqlite_);
  settings_.concurrency = 3;
  settings_.fold_receive_into_settle = true;
  for (int i = 0; i < 60; ++i) {
    Publish("asya-a", Env("m" + std::to_string(i), {"a", "b"}, i));
  }
  Sidecar sidecar(settings_, settling, client, nullptr);
  std::thread run([&] { EXPECT_EQ(sidecar.Run(), 0); });
  auto out = Take("asya-b", 60);
  sidecar.Shutdown();
  run.join();
  ASSERT_EQ(out.size(), 60u);
  std::set<std::string> ids;
  for (const auto& e : out) {
    ids.insert(e["id"].get<std::string>());
  }
  EXPECT_EQ(ids.size(), 60u);
  EXPECT_TRUE(sidecar.Drained());
  EXPECT_EQ(settling.settles, 60);
  EXPECT_GT(settling.folded, 0) << "no receive was folded into a settle";
  EXPECT_EQ(settling.nacks + settling.requeues, 0);
  EXPECT_EQ(runtime.calls(), 60);
  EXPECT_EQ(Depth("asya-a").ready + Depth("asya-a").inflight, 0);
}

// A result the transport can never accept (kInvalidArgument: here an invalid queue name) is not
// retried until dead-lettered: it becomes an error envelope at error-end and the input is acked.
TEST_F(SidecarTest, PermanentPublishErrorGoesToErrorEndAndAcks) {
  FakeRuntime runtime(dir_, Echo);
  protocol::RuntimeClient client({.socket_path = settings_.socket_path});
  Metrics metrics({"asya_actor", "a", "sqlite"});
  Sidecar sidecar(settings_, *counting_, client, &metrics);
  std::thread run([&] { sidecar.Run(); });
  Publish("asya-a", Env("bad-next", {"a", "no such/queue"}, 7));
  auto out = Take("asya-error-end", 1);
  ASSERT_EQ(out.size(), 1u);
  sidecar.Shutdown();
  run.join();
  EXPECT_EQ(out[0]["id"], "bad-next");
  const std::string error = out[0]["payload"]["error"].get<std::string>();
  EXPECT_NE(error.find("failed to publish to asya-no such/queue: invalid queue name"),
            std::string::npos)
      << error;
  EXPECT_EQ(out[0]["payload"]["original_payload"], 7);
  EXPECT_EQ(counting_->acks, 1);
  EXPECT_EQ(counting_->nacks, 0);
  EXPECT_EQ(runtime.calls(), 1);
  EXPECT_EQ(Depth("asya-a").ready + Depth("asya-a").inflight, 0);
  EXPECT_NE(metrics.Render().find("asya_actor_messages_failed_total{queue=\"a\",reason="
                                  "\"routing_error\"} 1\n"),
            std::string::npos)
      << metrics.Render();
}

// If the error-end publish fails too, the input is nacked (never acked without a publish).
TEST_F(SidecarTest, PermanentPublishErrorWithErrorEndDownNacks) {
  FakeRuntime runtime(dir_, Echo);
  protocol::RuntimeClient client({.socket_path = settings_.socket_path});
  settings_.policy.error_end = "also bad/name";
  settings_.policy.max_deliveries = 2;
  ASSERT_TRUE(sqlite_->CreateQueue("asya-a-dlq", {}).has_value());
  Sidecar sidecar(settings_, *counting_, client, nullptr);
  std::thread run([&] { sidecar.Run(); });
  Publish("asya-a", Env("nowhere", {"a", "bad/next"}, 1));
  // Two deliveries fail both publishes (nack), the third is dead-lettered.
  auto out = Take("asya-a-dlq", 1);
  ASSERT_EQ(out.size(), 1u);
  sidecar.Shutdown();
  run.join();
  EXPECT_EQ(out[0]["id"], "nowhere");
  EXPECT_EQ(counting_->nacks, 2);
  EXPECT_EQ(counting_->acks, 1);
}

// Large messages (>= 1 MiB) are not kept parsed during the runtime call; results still carry the
// runtime's payload and error envelopes still carry the original payload.
TEST_F(SidecarTest, LargeMessagesKeepTheirPayloadOnEveryPath) {
  FakeRuntime runtime(dir_, [](const json& env) {
    if (env["payload"]["fail"].get<bool>()) {
      return json::array({{{"error", "processing_error"}, {"details", {{"message", "boom"}}}}});
    }
    return Echo(env);
  });
  protocol::RuntimeClient client({.socket_path = settings_.socket_path});
  Sidecar sidecar(settings_, *counting_, client, nullptr);
  std::thread run([&] { sidecar.Run(); });
  const std::string big((1u << 20) + 100, 'y');
  Publish("asya-a", Env("big-ok", {"a", "b"}, {{"fail", false}, {"s", big}}));
  Publish("asya-a", Env("big-fail", {"a", "b"}, {{"fail", true}, {"s", big}}));
  auto routed = Take("asya-b", 1);
  auto failed = Take("asya-error-end", 1);
  sidecar.Shutdown();
  run.join();
  ASSERT_EQ(routed.size(), 1u);
  EXPECT_EQ(routed[0]["id"], "big-ok");
  EXPECT_EQ(routed[0]["payload"]["s"], big);
  ASSERT_EQ(failed.size(), 1u);
  EXPECT_EQ(failed[0]["id"], "big-fail");
  EXPECT_EQ(failed[0]["payload"]["error"], "processing_error");
  EXPECT_EQ(failed[0]["payload"]["original_payload"]["s"], big);
  EXPECT_EQ(counting_->acks, 2);
}

TEST_F(SidecarTest, RuntimeNeverReadyExitsOne) {
  protocol::RuntimeClient client({.socket_path = settings_.socket_path});
  settings_.ready_timeout = milliseconds(200);
  Sidecar sidecar(settings_, *counting_, client, nullptr);
  EXPECT_EQ(sidecar.Run(), 1);
}

}  // namespace
}  // namespace asya::sidecar
