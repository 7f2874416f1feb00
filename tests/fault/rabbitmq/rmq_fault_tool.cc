// Load generator / sink for the RabbitMQ fault tests, using the real transport.
//   rmq_fault_tool publish QUEUE N ID_PREFIX ROUTE_CSV THREADS   N envelopes, retried until
//   confirmed rmq_fault_tool collect QUEUE N TIMEOUT_S                      receive+ack until N
//   distinct ids
// The broker comes from ASYA_RABBITMQ_URL. `collect` prints "progress <distinct>" lines while it
// runs and a final JSON line {"distinct":..,"received":..,"duplicates":..}; exit 0 iff all arrived.
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "asya/base/log.h"
#include "asya/transport/rabbitmq.h"

namespace {

using asya::transport::Millis;
using Clock = std::chrono::steady_clock;

asya::transport::TransportPtr Connect() {
  asya::transport::RabbitMqSettings s;
  const char* url = std::getenv("ASYA_RABBITMQ_URL");  // NOLINT(concurrency-mt-unsafe)
  s.url = url != nullptr ? url : "amqp://guest:guest@127.0.0.1:5672/";
  s.prefetch = 200;
  s.connect_timeout = Millis(60'000);
  s.reconnect_backoff_max = Millis(500);
  auto t = asya::transport::MakeRabbitMqTransport(s);
  if (!t) {
    std::fprintf(stderr, "connect: %s\n", t.error().ToString().c_str());
    std::exit(2);
  }
  return std::move(*t);
}

int Publish(const std::string& queue, int n, const std::string& prefix, const std::string& route,
            int threads) {
  auto t = Connect();
  nlohmann::json actors = nlohmann::json::array();
  std::stringstream ss(route);
  for (std::string a; std::getline(ss, a, ',');) {
    actors.push_back(a);
  }
  std::atomic<int> next{0};
  std::atomic<int> retries{0};
  std::vector<std::thread> pool;
  for (int w = 0; w < threads; ++w) {
    pool.emplace_back([&] {
      for (int i = next++; i < n; i = next++) {
        nlohmann::json env = {{"id", prefix + "-" + std::to_string(i)},
                              {"route", {{"actors", actors}, {"current", 0}}},
                              {"payload", {{"i", i}}}};
        std::string body = env.dump();
        auto deadline = Clock::now() + std::chrono::seconds(120);
        while (!t->Publish(queue, body)) {
          ++retries;
          if (Clock::now() > deadline) {
            std::fprintf(stderr, "publish %d never confirmed\n", i);
            std::exit(1);
          }
          std::this_thread::sleep_for(Millis(100));
        }
      }
    });
  }
  for (auto& th : pool) {
    th.join();
  }
  std::printf("{\"published\":%d,\"retries\":%d}\n", n, retries.load());
  return 0;
}

int Collect(const std::string& queue, int n, int timeout_s) {
  auto t = Connect();
  std::set<std::string> ids;
  long received = 0;
  long duplicates = 0;
  long not_envelopes = 0;
  auto deadline = Clock::now() + std::chrono::seconds(timeout_s);
  size_t reported = 0;
  while (static_cast<int>(ids.size()) < n && Clock::now() < deadline) {
    asya::transport::ReceiveOptions o;
    o.max_messages = 100;
    o.wait = Millis(1000);
    auto got = t->Receive(queue, o);
    if (!got) {
      std::fprintf(stderr, "receive: %s\n", got.error().ToString().c_str());
      std::this_thread::sleep_for(Millis(200));
      continue;
    }
    for (const auto& m : *got) {
      ++received;
      auto doc = nlohmann::json::parse(m.body, nullptr, false);
      if (!doc.is_object() || !doc.contains("id") || !doc["id"].is_string()) {
        ++not_envelopes;
      } else if (!ids.insert(doc["id"].get<std::string>()).second) {
        ++duplicates;
      }
      (void)t->Ack(m);  // a stale receipt after a reconnect: the broker redelivers (counted)
    }
    if (ids.size() >= reported + 100 || static_cast<int>(ids.size()) == n) {
      reported = ids.size();
      std::printf("progress %zu\n", ids.size());
      std::fflush(stdout);
    }
  }
  std::printf("{\"distinct\":%zu,\"received\":%ld,\"duplicates\":%ld,\"not_envelopes\":%ld}\n",
              ids.size(), received, duplicates, not_envelopes);
  return static_cast<int>(ids.size()) == n ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  asya::log::Configure(asya::log::Level::kWarn, asya::log::Format::kText, "rmq-fault-tool");
  std::string cmd = argc > 1 ? argv[1] : "";
  if (cmd == "publish" && argc == 7) {
    return Publish(argv[2], std::atoi(argv[3]), argv[4], argv[5], std::atoi(argv[6]));
  }
  if (cmd == "collect" && argc == 5) {
    return Collect(argv[2], std::atoi(argv[3]), std::atoi(argv[4]));
  }
  std::fprintf(stderr,
               "usage: publish QUEUE N ID_PREFIX ROUTE_CSV THREADS | collect QUEUE N TIMEOUT_S\n");
  return 2;
}
