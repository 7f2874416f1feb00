// Measures the sqlite transport: idle CPU of a blocked Receive(), publish -> receive wake-up
// latency across two processes, and sequential publish / receive+ack rates for
// synchronous=NORMAL vs FULL. Prints one line per measurement. Not a test (no thresholds).
//
//   asya-sqlite-wake-bench [IDLE_SECONDS=30] [MESSAGES=500]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "asya/transport/sqlite.h"

namespace {

using asya::transport::MakeSqliteTransport;
using asya::transport::Millis;
using asya::transport::ReceiveOptions;
using asya::transport::SqliteSettings;
using asya::transport::TransportPtr;

int64_t MonoNs() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);  // system-wide: comparable across processes
  return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

double CpuSeconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

TransportPtr Open(const std::string& path, const std::string& sync = "NORMAL") {
  SqliteSettings s;
  s.path = path;
  s.synchronous = sync;
  auto t = MakeSqliteTransport(s);
  if (!t) {
    std::fprintf(stderr, "open: %s\n", t.error().ToString().c_str());
    std::exit(1);
  }
  return std::move(*t);
}

double Percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[std::min(v.size() - 1, static_cast<size_t>(p * v.size()))];
}

void IdleCpu(const std::string& path, int seconds) {
  auto t = Open(path);
  (void)t->CreateQueue("asya-idle");
  ReceiveOptions ro;
  ro.wait = Millis(seconds * 1000);
  double cpu0 = CpuSeconds();
  auto w0 = std::chrono::steady_clock::now();
  auto got = t->Receive("asya-idle", ro);
  double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - w0).count();
  double cpu = CpuSeconds() - cpu0;
  std::printf("idle-receive: blocked %.1f s, cpu %.4f s = %.4f%% of one core (%s)\n", wall, cpu,
              100.0 * cpu / wall, got && got->empty() ? "no message, as expected" : "unexpected");
}

void WakeLatency(const std::string& path, int messages) {
  auto t = Open(path);
  (void)t->CreateQueue("asya-lat");
  int fds[2];
  if (pipe(fds) != 0) {
    std::exit(1);
  }
  pid_t child = fork();
  if (child == 0) {
    close(fds[0]);
    auto c = Open(path);
    ReceiveOptions ro;
    ro.wait = Millis(10'000);
    for (int i = 0; i < messages; ++i) {
      auto got = c->Receive("asya-lat", ro);
      int64_t now = MonoNs();
      if (!got || got->empty()) {
        _exit(1);
      }
      for (const auto& m : *got) {
        int64_t sent = std::strtoll(m.body.c_str(), nullptr, 10);
        int64_t lat = now - sent;
        (void)!write(fds[1], &lat, sizeof(lat));
        (void)c->Ack(m);
      }
    }
    _exit(0);
  }
  close(fds[1]);
  std::this_thread::sleep_for(Millis(300));  // let the consumer block
  std::vector<double> publish_us;
  for (int i = 0; i < messages; ++i) {
    int64_t t0 = MonoNs();
    (void)t->Publish("asya-lat", std::to_string(t0));
    publish_us.push_back(static_cast<double>(MonoNs() - t0) / 1e3);
    std::this_thread::sleep_for(Millis(5));  // the consumer goes back to sleep in between
  }
  std::vector<double> lat_us;
  int64_t lat = 0;
  while (read(fds[0], &lat, sizeof(lat)) == sizeof(lat)) {
    lat_us.push_back(static_cast<double>(lat) / 1e3);
  }
  waitpid(child, nullptr, 0);
  std::printf(
      "wake-latency (publish call start -> other process has the message, %zu msgs): p50 %.0f us, "
      "p99 %.0f us, max %.0f us; publish call alone p50 %.0f us, p99 %.0f us\n",
      lat_us.size(), Percentile(lat_us, 0.5), Percentile(lat_us, 0.99), Percentile(lat_us, 1.0),
      Percentile(publish_us, 0.5), Percentile(publish_us, 0.99));
}

void Rates(const std::string& dir, const std::string& sync, int n) {
  std::string path = dir + "/rates-" + sync + ".db";
  auto t = Open(path, sync);
  auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < n; ++i) {
    (void)t->Publish("asya-rate", std::string(200, 'x'));
  }
  double pub = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  ReceiveOptions ro;
  ro.wait = Millis(0);
  t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < n; ++i) {
    auto got = t->Receive("asya-rate", ro);
    if (got && !got->empty()) {
      (void)t->Ack(got->front());
    }
  }
  double cons = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("synchronous=%s: publish %.0f msg/s, receive+ack %.0f msg/s (%d msgs, 200 B)\n",
              sync.c_str(), n / pub, n / cons, n);
}

}  // namespace

int main(int argc, char** argv) {
  int idle_seconds = argc > 1 ? std::atoi(argv[1]) : 30;
  int messages = argc > 2 ? std::atoi(argv[2]) : 500;
  char tmpl[] = "/tmp/asya-sqlite-bench-XXXXXX";
  if (mkdtemp(tmpl) == nullptr) {
    return 1;
  }
  std::string dir = tmpl;
  WakeLatency(dir + "/lat.db", messages);
  Rates(dir, "NORMAL", 2000);
  Rates(dir, "FULL", 2000);
  IdleCpu(dir + "/idle.db", idle_seconds);
  std::filesystem::remove_all(dir);
  return 0;
}
