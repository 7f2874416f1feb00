// Helper process for the sqlite multi-process tests (not a test itself).
//   consume DB QUEUE OUT IDLE_MS  receive+ack until the queue stays empty for IDLE_MS; append each
//                                 body and a newline to OUT (written before the ack)
//   hold DB QUEUE VISIBILITY_MS   receive one message, print "<id> <delivery_count>" and a newline,
//                                 then sleep without acking (the test kills it)
//   wait DB QUEUE                 block in Receive (30 s wait); print "ready" and a newline first
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>

#include "asya/transport/sqlite.h"

using asya::transport::MakeSqliteTransport;
using asya::transport::Millis;
using asya::transport::ReceiveOptions;
using asya::transport::SqliteSettings;

int main(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: %s consume|hold|wait DB QUEUE ...\n", argv[0]);
    return 2;
  }
  std::string mode = argv[1];
  SqliteSettings settings;
  settings.path = argv[2];
  std::string queue = argv[3];
  auto t = MakeSqliteTransport(settings);
  if (!t) {
    std::fprintf(stderr, "open: %s\n", t.error().ToString().c_str());
    return 1;
  }
  if (mode == "consume" && argc == 6) {
    std::FILE* out = std::fopen(argv[4], "ab");
    ReceiveOptions ro;
    ro.max_messages = 4;
    ro.wait = Millis(std::atoi(argv[5]));
    ro.visibility = Millis(60'000);
    for (;;) {
      auto got = (*t)->Receive(queue, ro);
      if (!got) {
        std::fprintf(stderr, "receive: %s\n", got.error().ToString().c_str());
        return 1;
      }
      if (got->empty()) {
        return 0;
      }
      for (const auto& m : *got) {
        std::fprintf(out, "%s\n", m.body.c_str());
        std::fflush(out);
        if (auto s = (*t)->Ack(m); !s) {
          std::fprintf(stderr, "ack: %s\n", s.error().ToString().c_str());
          return 1;
        }
      }
    }
  }
  if (mode == "hold" && argc == 5) {
    ReceiveOptions ro;
    ro.wait = Millis(10'000);
    ro.visibility = Millis(std::atoi(argv[4]));
    auto got = (*t)->Receive(queue, ro);
    if (!got || got->empty()) {
      return 1;
    }
    std::printf("%s %lld\n", got->front().id.c_str(),
                static_cast<long long>(got->front().delivery_count));
    std::fflush(stdout);
    std::this_thread::sleep_for(std::chrono::hours(1));
    return 0;
  }
  if (mode == "wait" && argc == 4) {
    std::printf("ready\n");
    std::fflush(stdout);
    ReceiveOptions ro;
    ro.wait = Millis(30'000);
    auto got = (*t)->Receive(queue, ro);
    return got && !got->empty() ? 0 : 1;
  }
  std::fprintf(stderr, "bad arguments for mode %s\n", mode.c_str());
  return 2;
}
