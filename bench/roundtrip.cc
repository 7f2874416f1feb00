// Runtime round trips through the sidecar's RuntimeClient (asya/protocol/runtime_client.h).
//   asya-bench-roundtrip SOCK N conn|persist BYTES [THREADS]
// prints "rate=<round trips per second> p50_us=.. p99_us=.." (THREADS clients in parallel,
// default 1; latency percentiles over all calls).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "asya/protocol/runtime_client.h"
#include "bench_message.h"

int main(int argc, char** argv) {
  if (argc < 5) {
    std::fprintf(stderr, "usage: %s SOCK N conn|persist BYTES [THREADS]\n", argv[0]);
    return 2;
  }
  const long n = std::atol(argv[2]);
  const bool persist = std::string(argv[3]) == "persist";
  const auto bytes = std::max<size_t>(256, static_cast<size_t>(std::atol(argv[4])));
  const int threads = argc > 5 ? std::atoi(argv[5]) : 1;
  asya::protocol::RuntimeClient client({.socket_path = argv[1], .reuse_connections = persist});
  std::string msg(bytes + 1, '\0');
  BenchMessage(msg.data(), bytes, 1);
  msg.resize(bytes);

  using Clock = std::chrono::steady_clock;
  std::vector<std::vector<double>> lat(static_cast<size_t>(threads));
  bool failed = false;
  auto t0 = Clock::now();
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      auto& mine = lat[static_cast<size_t>(t)];
      mine.reserve(static_cast<size_t>(n / threads + 1));
      for (long i = t; i < n; i += threads) {
        auto s = Clock::now();
        auto r = client.Call(msg, s + std::chrono::seconds(30));
        if (!r || r->empty()) {
          std::fprintf(stderr, "call %ld failed: %s\n", i,
                       r ? r->c_str() : r.error().ToString().c_str());
          failed = true;
          return;
        }
        mine.push_back(std::chrono::duration<double, std::micro>(Clock::now() - s).count());
      }
    });
  }
  for (auto& th : pool) {
    th.join();
  }
  double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  if (failed) {
    return 1;
  }
  std::vector<double> all;
  for (auto& v : lat) {
    all.insert(all.end(), v.begin(), v.end());
  }
  std::sort(all.begin(), all.end());
  auto pct = [&](double p) {
    return all[static_cast<size_t>(p * static_cast<double>(all.size() - 1))];
  };
  std::printf("rate=%.0f p50_us=%.1f p99_us=%.1f\n", static_cast<double>(n) / secs, pct(0.5),
              pct(0.99));
  return 0;
}
