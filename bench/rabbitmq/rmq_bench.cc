// RabbitMQ benchmark helper (bench/rabbitmq/run.sh).
//   asya-bench-rmq raw-confirm  URL N            baseline: 1 process, prefetch 1, per message
//                                                consume -> publish -> wait confirm -> ack
//   asya-bench-rmq raw-pipeline URL N PREFETCH   baseline: prefetch P, consume -> publish -> ack,
//                                                no confirm wait (the upper bound of a hop)
//   asya-bench-rmq raw-window   URL N PREFETCH   baseline with the sidecar's guarantees: prefetch
//   P,
//                                                consume -> publish at once (a window of up to P
//                                                unconfirmed publishes) -> ack each input only
//                                                after its output's confirm (acks batched as
//                                                basic.ack multiple over the confirmed run)
//   asya-bench-rmq raw-window-rt URL N PREFETCH SOCKET [CONNS]
//                                                raw-window plus a runtime call per message: each
//                                                delivery's body goes to the runtime at SOCKET
//                                                over one of CONNS kept Unix-socket connections
//                                                (default PREFETCH/2), its answer is published;
//                                                one thread, event-driven (poll on the AMQP socket
//                                                and the runtime sockets): the least a sidecar
//                                                that calls a separate runtime process must do
//   asya-bench-rmq preload URL QUEUE N ROUTE     N envelopes into QUEUE (transport, 16 threads)
//   asya-bench-rmq create URL QUEUE              declares QUEUE (+ DLQ) as the transport does
//   asya-bench-rmq wait URL QUEUE N              polls QUEUE's depth; rate between the first
//                                                message and the N-th (excludes start-up)
// Raw loops use librabbitmq directly on quorum queues bench.in/bench.out (same queue type as the
// sidecar's) with persistent ~220-byte messages. Every command prints "... rate=<msgs/s>".
#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <amqp.h>
#include <poll.h>

#include <amqp_tcp_socket.h>

#include "../runtime_conns.h"
#include "asya/transport/rabbitmq.h"

namespace {

using Clock = std::chrono::steady_clock;
using asya::transport::Millis;

const char kBody[] =
    R"({"id":"8c0e7b1e-4a7e-4c39-9d7a-2f1f3b6c9a10","route":{"actors":["prep","infer","post"],)"
    R"("current":1},"headers":{"trace_id":"4bf92f3577b34da6a3ce929d0e0e4736"},)"
    R"("payload":{"text":"hello world from the asya baseline","n":42}})";

[[noreturn]] void Die(const std::string& what) {
  std::fprintf(stderr, "asya-bench-rmq: %s\n", what.c_str());
  std::exit(1);
}

void Check(amqp_connection_state_t c, const char* what) {
  amqp_rpc_reply_t r = amqp_get_rpc_reply(c);
  if (r.reply_type != AMQP_RESPONSE_NORMAL) {
    Die(std::string(what) + " failed");
  }
}

struct Raw {
  amqp_connection_state_t c = nullptr;
  uint64_t published = 0;
  uint64_t confirmed = 0;
  std::deque<std::pair<uint64_t, size_t>> deliveries;  // tag, body size
};

amqp_bytes_t B(const char* s) {
  return amqp_cstring_bytes(s);
}

Raw Open(const std::string& url) {
  auto ep = asya::transport::ParseRabbitMqUrl(url);
  if (!ep) {
    Die(ep.error().message);
  }
  Raw r;
  r.c = amqp_new_connection();
  amqp_socket_t* s = amqp_tcp_socket_new(r.c);
  if (amqp_socket_open(s, ep->host.c_str(), ep->port) != AMQP_STATUS_OK) {
    Die("socket open");
  }
  if (amqp_login(r.c, ep->vhost.c_str(), 0, 131072, 0, AMQP_SASL_METHOD_PLAIN, ep->user.c_str(),
                 ep->password.c_str())
          .reply_type != AMQP_RESPONSE_NORMAL) {
    Die("login");
  }
  for (amqp_channel_t ch : {1, 2}) {
    amqp_channel_open(r.c, ch);
    Check(r.c, "channel.open");
  }
  amqp_table_entry_t arg;
  arg.key = B("x-queue-type");
  arg.value.kind = AMQP_FIELD_KIND_UTF8;
  arg.value.value.bytes = B("quorum");
  amqp_table_t args{1, &arg};
  for (const char* q : {"bench.in", "bench.out"}) {
    amqp_queue_declare(r.c, 2, B(q), 0, 1, 0, 0, args);
    Check(r.c, "queue.declare");
    amqp_queue_purge(r.c, 2, B(q));
    Check(r.c, "queue.purge");
  }
  return r;
}

void PublishRaw(Raw& r, const char* queue, std::string_view text = kBody) {
  amqp_basic_properties_t p{};
  p._flags = AMQP_BASIC_CONTENT_TYPE_FLAG | AMQP_BASIC_DELIVERY_MODE_FLAG;
  p.content_type = B("application/json");
  p.delivery_mode = AMQP_DELIVERY_PERSISTENT;
  amqp_bytes_t body{text.size(), const_cast<char*>(text.data())};
  if (amqp_basic_publish(r.c, 2, amqp_empty_bytes, B(queue), 0, 0, &p, body) != AMQP_STATUS_OK) {
    Die("publish");
  }
  ++r.published;
}

// Reads one frame: a delivery on channel 1 or a confirm on channel 2.
void ReadFrame(Raw& r) {
  amqp_frame_t f;
  if (amqp_simple_wait_frame(r.c, &f) != AMQP_STATUS_OK || f.frame_type != AMQP_FRAME_METHOD) {
    Die("wait frame");
  }
  if (f.payload.method.id == AMQP_BASIC_DELIVER_METHOD) {
    uint64_t tag = static_cast<amqp_basic_deliver_t*>(f.payload.method.decoded)->delivery_tag;
    amqp_message_t m;
    if (amqp_read_message(r.c, f.channel, &m, 0).reply_type != AMQP_RESPONSE_NORMAL) {
      Die("read message");
    }
    r.deliveries.emplace_back(tag, m.body.len);
    amqp_destroy_message(&m);
  } else if (f.payload.method.id == AMQP_BASIC_ACK_METHOD) {
    r.confirmed = static_cast<amqp_basic_ack_t*>(f.payload.method.decoded)->delivery_tag;
  } else {
    Die("unexpected method");
  }
}

uint32_t Count(Raw& r, const char* q) {
  auto* ok = amqp_queue_declare(r.c, 2, B(q), 1, 0, 0, 0, amqp_empty_table);
  Check(r.c, "queue.declare passive");
  return ok->message_count;
}

// The window loops' start: n inputs preloaded into bench.in, then (after an optional stop for
// bench/rabbitmq/profile.sh) publisher confirms on channel 2 and a consumer with `prefetch`.
void PreloadAndConsumeConfirmed(Raw& r, long n, int prefetch) {
  for (long i = 0; i < n; ++i) {
    PublishRaw(r, "bench.in");
  }
  while (Count(r, "bench.in") < static_cast<uint32_t>(n)) {
  }
  r.published = 0;
  if (std::getenv("ASYA_BENCH_STOP") != nullptr) {
    std::raise(SIGSTOP);  // bench/rabbitmq/profile.sh attaches perf to the consume phase only
  }
  amqp_confirm_select(r.c, 2);
  Check(r.c, "confirm.select");
  amqp_basic_qos(r.c, 1, 0, static_cast<uint16_t>(prefetch), 0);
  Check(r.c, "basic.qos");
  amqp_basic_consume(r.c, 1, B("bench.in"), amqp_empty_bytes, 0, 0, 0, amqp_empty_table);
  Check(r.c, "basic.consume");
}

// Confirms, pipelined: every delivery is published at once; an input is acked only when the
// broker has confirmed its output (the sidecar's "ack after the next publish is durable").
int RawWindow(const std::string& url, long n, int prefetch) {
  Raw r = Open(url);
  PreloadAndConsumeConfirmed(r, n, prefetch);
  // (publish sequence number, input delivery tag), in publish order. Quorum queue confirms
  // arrive in order; `multiple` confirms everything up to the tag.
  std::deque<std::pair<uint64_t, uint64_t>> waiting;
  long acked = 0;
  auto t0 = Clock::now();
  while (acked < n) {
    amqp_maybe_release_buffers(r.c);
    amqp_frame_t f;
    if (amqp_simple_wait_frame(r.c, &f) != AMQP_STATUS_OK || f.frame_type != AMQP_FRAME_METHOD) {
      Die("wait frame");
    }
    if (f.payload.method.id == AMQP_BASIC_DELIVER_METHOD) {
      uint64_t tag = static_cast<amqp_basic_deliver_t*>(f.payload.method.decoded)->delivery_tag;
      amqp_message_t m;
      if (amqp_read_message(r.c, f.channel, &m, 0).reply_type != AMQP_RESPONSE_NORMAL) {
        Die("read message");
      }
      if (m.body.len < 10) {
        Die("short body");
      }
      amqp_destroy_message(&m);
      PublishRaw(r, "bench.out");
      waiting.emplace_back(r.published, tag);
    } else if (f.payload.method.id == AMQP_BASIC_ACK_METHOD) {
      auto* ack = static_cast<amqp_basic_ack_t*>(f.payload.method.decoded);
      uint64_t last_input = 0;
      long settled = 0;
      while (!waiting.empty() && (ack->multiple ? waiting.front().first <= ack->delivery_tag
                                                : waiting.front().first == ack->delivery_tag)) {
        last_input = waiting.front().second;
        waiting.pop_front();
        ++settled;
      }
      if (settled == 0) {
        Die("confirm out of order");
      }
      // Inputs are delivered and published in order, so the confirmed ones are the oldest.
      if (amqp_basic_ack(r.c, 1, last_input, settled > 1 ? 1 : 0) != AMQP_STATUS_OK) {
        Die("ack");
      }
      acked += settled;
    } else {
      Die("unexpected method (a nack from the broker?)");
    }
  }
  while (Count(r, "bench.out") < static_cast<uint32_t>(n)) {
  }
  double s = std::chrono::duration<double>(Clock::now() - t0).count();
  std::printf("raw-window prefetch=%d confirms=1 n=%ld secs=%.3f rate=%.0f\n", prefetch, n, s,
              n / s);
  amqp_connection_close(r.c, AMQP_REPLY_SUCCESS);
  amqp_destroy_connection(r.c);
  return 0;
}

// raw-window with a runtime call between consume and publish, on one thread: poll() waits on the
// AMQP socket and the runtime connections; nothing is handed to another thread. The runtime's
// answer (a JSON array of outputs) is published with its brackets stripped: one output envelope.
// Answers may come back out of delivery order, so an input is acked (basic.ack multiple over the
// contiguous confirmed run) only when it and every earlier delivery have a confirmed output.
int RawWindowRt(const std::string& url, long n, int prefetch, const std::string& socket,
                int conns) {
  Raw r = Open(url);
  std::vector<bench::RtConn> rt(static_cast<size_t>(conns));
  for (auto& c : rt) {
    c.fd = bench::ConnectRuntime(socket);
    if (c.fd < 0) {
      Die("connect " + socket + ": " + std::strerror(errno));
    }
  }
  PreloadAndConsumeConfirmed(r, n, prefetch);
  const int amqp_fd = amqp_get_sockfd(r.c);
  std::deque<std::pair<uint64_t, std::string>> queued;  // deliveries waiting for a free connection
  std::deque<std::pair<uint64_t, uint64_t>> waiting;    // (publish seq, input tag), publish order
  std::vector<char> confirmed(static_cast<size_t>(n) + 2, 0);  // by input delivery tag
  uint64_t acked_upto = 0;
  long acked = 0;
  std::vector<pollfd> fds;
  std::vector<bench::RtConn*> fd_conn;
  std::string frame_body;
  auto t0 = Clock::now();
  while (acked < n) {
    // 1. Hand queued deliveries to free connections.
    for (auto& c : rt) {
      if (queued.empty()) {
        break;
      }
      if (c.busy) {
        continue;
      }
      if (!bench::StartCall(c, queued.front().first, queued.front().second)) {
        Die("runtime send");
      }
      queued.pop_front();
    }
    // 2. Wait: frames already buffered by librabbitmq make the wait a poll with no timeout.
    const bool amqp_buffered = amqp_frames_enqueued(r.c) || amqp_data_in_buffer(r.c);
    fds.clear();
    fd_conn.clear();
    fds.push_back({amqp_fd, POLLIN, 0});
    fd_conn.push_back(nullptr);
    for (auto& c : rt) {
      if (c.busy) {
        fds.push_back(
            {c.fd, static_cast<short>(POLLIN | (c.out_off < c.out.size() ? POLLOUT : 0)), 0});
        fd_conn.push_back(&c);
      }
    }
    if (::poll(fds.data(), fds.size(), amqp_buffered ? 0 : -1) < 0 && errno != EINTR) {
      Die(std::string("poll: ") + std::strerror(errno));
    }
    // 3. Runtime answers: publish each at once.
    for (size_t i = 1; i < fds.size(); ++i) {
      bench::RtConn& c = *fd_conn[i];
      if ((fds[i].revents & POLLOUT) != 0 && bench::Flush(c) < 0) {
        Die("runtime send");
      }
      if ((fds[i].revents & (POLLIN | POLLHUP | POLLERR)) == 0) {
        continue;
      }
      const int got = bench::ReadAnswer(c, frame_body);
      if (got < 0) {
        Die("runtime connection failed or closed");
      }
      if (got == 0) {
        continue;
      }
      std::string_view output = bench::OneOutput(frame_body);
      if (output.empty()) {
        Die("unexpected runtime answer: " + frame_body.substr(0, 200));
      }
      PublishRaw(r, "bench.out", output);
      waiting.emplace_back(r.published, c.id);
    }
    // 4. AMQP: every frame that can be read without blocking.
    if ((fds[0].revents & (POLLIN | POLLHUP | POLLERR)) == 0 && !amqp_buffered) {
      continue;
    }
    while (true) {
      amqp_frame_t f;
      timeval zero{0, 0};
      int st = amqp_simple_wait_frame_noblock(r.c, &f, &zero);
      if (st == AMQP_STATUS_TIMEOUT) {
        break;
      }
      if (st != AMQP_STATUS_OK || f.frame_type != AMQP_FRAME_METHOD) {
        Die("wait frame");
      }
      if (f.payload.method.id == AMQP_BASIC_DELIVER_METHOD) {
        uint64_t tag = static_cast<amqp_basic_deliver_t*>(f.payload.method.decoded)->delivery_tag;
        amqp_message_t m;
        if (amqp_read_message(r.c, f.channel, &m, 0).reply_type != AMQP_RESPONSE_NORMAL) {
          Die("read message");
        }
        if (m.body.len < 10 || tag > static_cast<uint64_t>(n)) {
          Die("short body or unexpected tag");
        }
        queued.emplace_back(tag, std::string(static_cast<const char*>(m.body.bytes), m.body.len));
        amqp_destroy_message(&m);
      } else if (f.payload.method.id == AMQP_BASIC_ACK_METHOD) {
        auto* ack = static_cast<amqp_basic_ack_t*>(f.payload.method.decoded);
        long settled = 0;
        while (!waiting.empty() && (ack->multiple ? waiting.front().first <= ack->delivery_tag
                                                  : waiting.front().first == ack->delivery_tag)) {
          confirmed[waiting.front().second] = 1;
          waiting.pop_front();
          ++settled;
        }
        if (settled == 0) {
          Die("confirm out of order");
        }
        uint64_t upto = acked_upto;
        while (upto + 1 <= static_cast<uint64_t>(n) && confirmed[upto + 1] != 0) {
          ++upto;
        }
        if (upto > acked_upto) {
          if (amqp_basic_ack(r.c, 1, upto, upto - acked_upto > 1 ? 1 : 0) != AMQP_STATUS_OK) {
            Die("ack");
          }
          acked += static_cast<long>(upto - acked_upto);
          acked_upto = upto;
        }
      } else {
        Die("unexpected method (a nack from the broker?)");
      }
    }
    amqp_maybe_release_buffers(r.c);
  }
  while (Count(r, "bench.out") < static_cast<uint32_t>(n)) {
  }
  double s = std::chrono::duration<double>(Clock::now() - t0).count();
  std::printf("raw-window-rt prefetch=%d conns=%d confirms=1 n=%ld secs=%.3f rate=%.0f\n", prefetch,
              conns, n, s, n / s);
  for (auto& c : rt) {
    ::close(c.fd);
  }
  amqp_connection_close(r.c, AMQP_REPLY_SUCCESS);
  amqp_destroy_connection(r.c);
  return 0;
}

int RawLoop(const std::string& url, long n, int prefetch, bool confirms) {
  Raw r = Open(url);
  for (long i = 0; i < n; ++i) {
    PublishRaw(r, "bench.in");
  }
  while (Count(r, "bench.in") < static_cast<uint32_t>(n)) {
  }
  r.published = 0;
  if (confirms) {
    amqp_confirm_select(r.c, 2);
    Check(r.c, "confirm.select");
  }
  amqp_basic_qos(r.c, 1, 0, static_cast<uint16_t>(prefetch), 0);
  Check(r.c, "basic.qos");
  amqp_basic_consume(r.c, 1, B("bench.in"), amqp_empty_bytes, 0, 0, 0, amqp_empty_table);
  Check(r.c, "basic.consume");
  auto t0 = Clock::now();
  for (long i = 0; i < n; ++i) {
    while (r.deliveries.empty()) {
      amqp_maybe_release_buffers(r.c);
      ReadFrame(r);
    }
    auto [tag, size] = r.deliveries.front();
    r.deliveries.pop_front();
    if (size < 10) {
      Die("short body");
    }
    PublishRaw(r, "bench.out");
    while (confirms && r.confirmed < r.published) {
      ReadFrame(r);
    }
    if (amqp_basic_ack(r.c, 1, tag, 0) != AMQP_STATUS_OK) {
      Die("ack");
    }
  }
  while (Count(r, "bench.out") < static_cast<uint32_t>(n)) {
  }
  double s = std::chrono::duration<double>(Clock::now() - t0).count();
  std::printf("raw prefetch=%d confirms=%d n=%ld secs=%.3f rate=%.0f\n", prefetch, confirms ? 1 : 0,
              n, s, n / s);
  amqp_connection_close(r.c, AMQP_REPLY_SUCCESS);
  amqp_destroy_connection(r.c);
  return 0;
}

asya::transport::TransportPtr Connect(const std::string& url) {
  asya::transport::RabbitMqSettings s;
  s.url = url;
  auto t = asya::transport::MakeRabbitMqTransport(s);
  if (!t) {
    Die(t.error().ToString());
  }
  return std::move(*t);
}

int Preload(const std::string& url, const std::string& queue, long n, const std::string& route) {
  auto t = Connect(url);
  if (auto st = t->CreateQueue(queue, {}); !st) {
    Die(st.error().ToString());
  }
  std::string actors;
  for (size_t start = 0; start <= route.size();) {
    size_t comma = route.find(',', start);
    std::string a =
        route.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    actors += (actors.empty() ? "\"" : ",\"") + a + "\"";
    if (comma == std::string::npos) {
      break;
    }
    start = comma + 1;
  }
  std::atomic<long> next{0};
  std::vector<std::thread> pool;
  for (int w = 0; w < 16; ++w) {
    pool.emplace_back([&] {
      for (long i = next++; i < n; i = next++) {
        std::string body = R"({"id":"b)" + std::to_string(i) + R"(","route":{"actors":[)" + actors +
                           R"(],"current":0},"headers":{"trace_id":"4bf92f3577b34da6"},)" +
                           R"("payload":{"text":"hello world from the asya baseline","n":42}})";
        if (auto st = t->Publish(queue, body); !st) {
          Die(st.error().ToString());
        }
      }
    });
  }
  for (auto& th : pool) {
    th.join();
  }
  std::printf("preloaded %ld rate=0\n", n);
  return 0;
}

int Wait(const std::string& url, const std::string& queue, long n) {
  auto t = Connect(url);
  if (auto st = t->CreateQueue(queue, {}); !st) {
    Die(st.error().ToString());
  }
  Clock::time_point first{};
  long first_count = 0;
  auto deadline = Clock::now() + std::chrono::minutes(10);
  while (Clock::now() < deadline) {
    auto d = t->Depth(queue);
    if (!d) {
      Die(d.error().ToString());
    }
    if (d->ready > 0 && first_count == 0) {
      first = Clock::now();
      first_count = d->ready;
    }
    if (d->ready >= n) {
      double s = std::chrono::duration<double>(Clock::now() - first).count();
      std::printf("hop n=%ld secs=%.3f rate=%.0f\n", n - first_count, s, (n - first_count) / s);
      return 0;
    }
    std::this_thread::sleep_for(Millis(20));
  }
  Die("timed out waiting for " + std::to_string(n) + " messages on " + queue);
}

}  // namespace

int main(int argc, char** argv) {
  std::string cmd = argc > 1 ? argv[1] : "";
  if (cmd == "raw-confirm" && argc == 4) {
    return RawLoop(argv[2], std::atol(argv[3]), 1, true);
  }
  if (cmd == "raw-pipeline" && argc == 5) {
    return RawLoop(argv[2], std::atol(argv[3]), std::atoi(argv[4]), false);
  }
  if (cmd == "raw-window" && argc == 5) {
    return RawWindow(argv[2], std::atol(argv[3]), std::atoi(argv[4]));
  }
  if (cmd == "raw-window-rt" && (argc == 6 || argc == 7)) {
    const int prefetch = std::atoi(argv[4]);
    return RawWindowRt(argv[2], std::atol(argv[3]), prefetch, argv[5],
                       argc == 7 ? std::atoi(argv[6]) : std::max(1, prefetch / 2));
  }
  if (cmd == "preload" && argc == 6) {
    return Preload(argv[2], argv[3], std::atol(argv[4]), argv[5]);
  }
  if (cmd == "create" && argc == 4) {
    auto st = Connect(argv[2])->CreateQueue(argv[3], {});
    if (!st) {
      Die(st.error().ToString());
    }
    std::printf("created rate=0\n");
    return 0;
  }
  if (cmd == "wait" && argc == 5) {
    return Wait(argv[2], argv[3], std::atol(argv[4]));
  }
  std::fprintf(stderr, "usage: see bench/rabbitmq/rmq_bench.cc\n");
  return 2;
}
