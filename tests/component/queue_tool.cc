// asya-component-queue: the queue operations the component tests need, linked directly to the
// transports (so the component suite does not depend on the `asya` CLI being buildable).
//
//   create QUEUE             creates the queue and its -dlq (idempotent)
//   publish QUEUE -          body from stdin, exact bytes (queue created if missing)
//   get QUEUE WAIT_MS [no-ack]   prints one body and acks it (or nacks with no-ack); exit 3 if none
//   depth QUEUE              prints {"ready":N,"inflight":M}
// Transport from the environment (ASYA_TRANSPORT, default sqlite; see bin/common/transport_env.h).
#include <cstdio>
#include <iostream>
#include <iterator>
#include <string>

#include "asya/transport/factory.h"
#include "bin/common/transport_env.h"

namespace {

int Fail(const std::string& what) {
  std::fprintf(stderr, "asya-component-queue: %s\n", what.c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    return Fail("usage: publish|get|depth QUEUE ...");
  }
  std::string cmd = argv[1];
  std::string queue = argv[2];
  asya::env::TransportEnvOptions options;
  options.default_kind = "sqlite";
  auto settings = asya::env::TransportSettingsFromEnv(options);
  if (!settings) {
    return Fail(settings.error().message);
  }
  auto t = asya::transport::MakeTransport(*settings);
  if (!t) {
    return Fail(t.error().message);
  }
  auto& transport = **t;
  if (cmd == "create") {
    auto st = transport.CreateQueue(queue, {});
    return st ? 0 : Fail(st.error().message);
  }
  if (cmd == "publish") {
    auto exists = transport.QueueExists(queue);
    if (exists && !*exists) {
      auto st = transport.CreateQueue(queue, {});
      if (!st) {
        return Fail(st.error().message);
      }
    }
    std::string body((std::istreambuf_iterator<char>(std::cin)), std::istreambuf_iterator<char>());
    auto st = transport.Publish(queue, body);
    return st ? 0 : Fail(st.error().message);
  }
  if (cmd == "get" && argc >= 4) {
    asya::transport::ReceiveOptions o;
    o.wait = asya::transport::Millis(std::stoll(argv[3]));
    o.visibility = asya::transport::Millis(30'000);
    auto r = transport.Receive(queue, o);
    if (!r) {
      return Fail(r.error().message);
    }
    if (r->empty()) {
      return 3;
    }
    const auto& m = r->front();
    std::fwrite(m.body.data(), 1, m.body.size(), stdout);
    bool no_ack = argc >= 5 && std::string(argv[4]) == "no-ack";
    auto st = no_ack ? transport.Nack(m) : transport.Ack(m);
    return st ? 0 : Fail(st.error().message);
  }
  if (cmd == "depth") {
    auto d = transport.Depth(queue);
    if (!d) {
      return Fail(d.error().message);
    }
    std::printf("{\"ready\":%lld,\"inflight\":%lld}\n", static_cast<long long>(d->ready),
                static_cast<long long>(d->inflight));
    return 0;
  }
  return Fail("unknown command " + cmd);
}
