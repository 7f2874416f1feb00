// asya-bench-gateway: load programs for bench/gateway/run.sh (not part of `make test`).
//
//   baseline DB_URL SQLITE_QUEUE_PATH SECONDS THREADS
//       the gateway's work per tool call without HTTP: store Create + MarkRunning + one sqlite
//       transport publish, in a tight loop on THREADS threads; prints "rate=N/s".
//   load HOST PORT TOOL RATE SECONDS CONNS [mcp]
//       open-loop POST /tools/call (or MCP tools/call on /mcp, stateless 2026-07-28 form with the
//       Tasks extension, so the answer is a CreateTaskResult, not a wait for the result) at a
//       fixed RATE: request i is due at start + i/RATE; latency runs from the due time (so a
//       stalled server is not hidden by a stalled client). At most CONNS keep-alive connections.
//       Prints "rate=<achieved ok/s> sent=.. ok=.. err=.. p50_ms=.. p99_ms=.. max_ms=..".
//   load HOST PORT TOOL RATE SECONDS CONNS progress CALLBACK_TOKEN
//       the same, but each request is a sidecar-like progress report, POST
//       /envelopes/{id}/progress, on one envelope created first through /tools/call.
//   sse HOST PORT GATEWAY_PID TOOL ENVELOPES STREAMS_PER_ENVELOPE CALLBACK_TOKEN
//       creates ENVELOPES envelopes through /tools/call, opens STREAMS_PER_ENVELOPE idle
//       GET /envelopes/{id}/stream on each, reports the gateway's extra RSS with all streams
//       open, then POSTs /final for every envelope and reports how long until every stream saw
//       its final event (and closed).
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "asya/base/clock.h"
#include "asya/store/store.h"
#include "asya/transport/factory.h"

namespace {

using SteadyClock = std::chrono::steady_clock;
using Tp = SteadyClock::time_point;

double Ms(SteadyClock::duration d) {
  return std::chrono::duration<double, std::milli>(d).count();
}

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) {
    return 0;
  }
  std::sort(v.begin(), v.end());
  size_t i = static_cast<size_t>(p * static_cast<double>(v.size() - 1) + 0.5);
  return v[std::min(i, v.size() - 1)];
}

// ---------------------------------------------------------------- baseline
int Baseline(int argc, char** argv) {
  if (argc < 6) {
    std::fprintf(stderr, "usage: baseline DB_URL SQLITE_PATH SECONDS THREADS\n");
    return 2;
  }
  std::string url = argv[2];
  asya::transport::TransportSettings ts;
  ts.kind = "sqlite";
  ts.sqlite.path = argv[3];
  double seconds = std::atof(argv[4]);
  int threads = std::atoi(argv[5]);
  auto store = asya::store::Open(url, asya::SystemClock());
  if (!store) {
    std::fprintf(stderr, "baseline: store: %s\n", store.error().message.c_str());
    return 1;
  }
  auto transport = asya::transport::MakeTransport(ts);
  if (!transport) {
    std::fprintf(stderr, "baseline: transport: %s\n", transport.error().message.c_str());
    return 1;
  }
  std::atomic<long> done{0};
  std::atomic<long> errors{0};
  std::atomic<long> seq{0};
  const std::string pid = std::to_string(getpid());
  const Tp end = SteadyClock::now() + std::chrono::duration_cast<SteadyClock::duration>(
                                          std::chrono::duration<double>(seconds));
  auto work = [&] {
    while (SteadyClock::now() < end) {
      asya::store::Envelope e;
      char id[64];
      std::snprintf(id, sizeof(id), "bl-%s-%08ld-0000-4000-8000-000000000000", pid.c_str(),
                    seq.fetch_add(1));
      e.id = id;
      e.route_actors = {"bench-sink"};
      e.route_metadata_json = std::string("{\"job_id\":\"") + id + "\"}";
      e.payload_json = "{\"x\":1}";
      e.tool = "bench_echo";
      e.timeout_seconds = 60;
      auto now = std::chrono::system_clock::now();
      e.deadline = now + std::chrono::seconds(60);
      e.total_actors = 1;
      e.current_actor_name = "bench-sink";
      e.created_at = now;
      e.updated_at = now;
      e.message = "Envelope created";
      if (!(*store)->Create(e)) {
        ++errors;
        continue;
      }
      if (!(*store)->MarkRunning(e.id, "Sending envelope to first actor")) {
        ++errors;
        continue;
      }
      std::string body = std::string("{\"id\":\"") + id +
                         "\",\"route\":{\"actors\":[\"bench-sink\"],\"current\":0,\"metadata\":" +
                         e.route_metadata_json + "},\"payload\":{\"x\":1}}";
      if (!(*transport)->Publish("asya-bench-sink", body)) {
        ++errors;
        continue;
      }
      ++done;
    }
  };
  Tp t0 = SteadyClock::now();
  std::vector<std::thread> ts_;
  for (int i = 0; i < threads; ++i) {
    ts_.emplace_back(work);
  }
  for (auto& t : ts_) {
    t.join();
  }
  double el = std::chrono::duration<double>(SteadyClock::now() - t0).count();
  std::printf("rate=%.0f done=%ld errors=%ld threads=%d\n", done.load() / el, done.load(),
              errors.load(), threads);
  return 0;
}

// ---------------------------------------------------------------- HTTP plumbing
int Connect(const std::string& host, int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) {
    return -1;
  }
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  inet_pton(AF_INET, host.c_str(), &a.sin_addr);
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
    close(fd);
    return -1;
  }
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  return fd;
}

bool WriteAll(int fd, const std::string& s) {
  size_t off = 0;
  while (off < s.size()) {
    ssize_t n = write(fd, s.data() + off, s.size() - off);
    if (n < 0) {
      if (errno == EAGAIN || errno == EINTR) {
        continue;
      }
      return false;
    }
    off += static_cast<size_t>(n);
  }
  return true;
}

// Complete response length in buf (headers + Content-Length body), 0 when incomplete.
size_t ResponseLength(const std::string& buf, int* status) {
  auto he = buf.find("\r\n\r\n");
  if (he == std::string::npos) {
    return 0;
  }
  *status = buf.size() > 12 ? std::atoi(buf.c_str() + 9) : 0;
  size_t cl = 0;
  std::string head = buf.substr(0, he);
  for (auto& ch : head) {
    ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  }
  auto p = head.find("content-length:");
  if (p != std::string::npos) {
    cl = std::strtoul(head.c_str() + p + 15, nullptr, 10);
  }
  size_t total = he + 4 + cl;
  return buf.size() >= total ? total : 0;
}

// Blocking request/response on a keep-alive socket; returns status, fills body.
int Roundtrip(int fd, const std::string& req, std::string* body) {
  if (!WriteAll(fd, req)) {
    return -1;
  }
  std::string buf;
  char tmp[65536];
  for (;;) {
    int st = 0;
    size_t len = ResponseLength(buf, &st);
    if (len > 0) {
      auto he = buf.find("\r\n\r\n");
      *body = buf.substr(he + 4, len - he - 4);
      return st;
    }
    ssize_t n = read(fd, tmp, sizeof(tmp));
    if (n <= 0) {
      return -1;
    }
    buf.append(tmp, static_cast<size_t>(n));
  }
}

std::string Post(const std::string& path, const std::string& body, const std::string& extra = "") {
  return "POST " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n" +
         extra + "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
}

std::string CallRequest(const std::string& tool, bool mcp, long n) {
  if (!mcp) {
    return Post("/tools/call",
                "{\"name\":\"" + tool + "\",\"arguments\":{\"x\":" + std::to_string(n) + "}}");
  }
  std::string body = "{\"jsonrpc\":\"2.0\",\"id\":" + std::to_string(n) +
                     ",\"method\":\"tools/call\",\"params\":{\"name\":\"" + tool +
                     "\",\"arguments\":{\"x\":" + std::to_string(n) +
                     "},\"_meta\":{\"io.modelcontextprotocol/protocolVersion\":\"2026-07-28\"," +
                     "\"io.modelcontextprotocol/clientCapabilities\":{\"extensions\":{"
                     "\"io.modelcontextprotocol/tasks\":{}}}}}}";
  return Post("/mcp", body,
              "Accept: application/json, text/event-stream\r\nMcp-Method: tools/call\r\n"
              "Mcp-Name: " +
                  tool + "\r\nMCP-Protocol-Version: 2026-07-28\r\n");
}

// ---------------------------------------------------------------- load
struct Conn {
  int fd = -1;
  bool busy = false;
  Tp due{};
  std::string buf;
};

int Load(int argc, char** argv) {
  if (argc < 8) {
    std::fprintf(stderr, "usage: load HOST PORT TOOL RATE SECONDS CONNS [mcp | progress TOKEN]\n");
    return 2;
  }
  std::string host = argv[2];
  int port = std::atoi(argv[3]);
  std::string tool = argv[4];
  double rate = std::atof(argv[5]);
  double seconds = std::atof(argv[6]);
  int max_conns = std::atoi(argv[7]);
  bool mcp = argc > 8 && std::string(argv[8]) == "mcp";
  bool progress = argc > 8 && std::string(argv[8]) == "progress";
  std::string progress_path, progress_auth;
  if (progress) {
    if (argc < 10) {
      std::fprintf(stderr, "load: progress needs the callback token\n");
      return 2;
    }
    int fd = Connect(host, port);
    std::string body;
    int st = fd < 0 ? -1 : Roundtrip(fd, CallRequest(tool, false, 0), &body);
    auto p = body.find("envelope_id");
    if (st != 200 || p == std::string::npos) {
      std::fprintf(stderr, "load: tools/call failed (%d): %.200s\n", st, body.c_str());
      return 1;
    }
    close(fd);
    auto q = body.find_first_of("0123456789abcdef", body.find(':', p));
    progress_path = "/envelopes/" + body.substr(q, 36) + "/progress";
    progress_auth = "Authorization: Bearer " + std::string(argv[9]) + "\r\n";
  }
  auto request = [&](long n) {
    if (!progress) {
      return CallRequest(tool, mcp, n);
    }
    return Post(progress_path,
                "{\"status\":\"processing\",\"message\":\"step " + std::to_string(n) + "\"}",
                progress_auth);
  };
  long total = static_cast<long>(rate * seconds);
  int ep = epoll_create1(0);
  std::vector<Conn> conns;
  conns.reserve(static_cast<size_t>(max_conns));
  std::vector<size_t> idle;
  auto open_conn = [&]() -> bool {
    int fd = Connect(host, port);
    if (fd < 0) {
      return false;
    }
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    conns.push_back(Conn{fd});
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = conns.size() - 1;
    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
    idle.push_back(conns.size() - 1);
    return true;
  };
  for (int i = 0; i < std::min(max_conns, 32); ++i) {
    if (!open_conn()) {
      std::fprintf(stderr, "load: cannot connect\n");
      return 1;
    }
  }
  std::deque<Tp> backlog;  // due times of requests waiting for a free connection
  std::vector<double> lat;
  lat.reserve(static_cast<size_t>(total));
  long sent = 0, ok = 0, err = 0, scheduled = 0;
  const Tp start = SteadyClock::now() + std::chrono::milliseconds(50);
  auto due_of = [&](long i) {
    return start + std::chrono::duration_cast<SteadyClock::duration>(
                       std::chrono::duration<double>(static_cast<double>(i) / rate));
  };
  auto send_on = [&](size_t c, Tp due) {
    conns[c].busy = true;
    conns[c].due = due;
    conns[c].buf.clear();
    if (!WriteAll(conns[c].fd, request(sent))) {
      ++err;
      conns[c].busy = false;
      return;
    }
    ++sent;
  };
  const Tp hard_end = start + std::chrono::duration_cast<SteadyClock::duration>(
                                  std::chrono::duration<double>(seconds + 30));
  char tmp[65536];
  epoll_event evs[256];
  while (ok + err < total && SteadyClock::now() < hard_end) {
    Tp now = SteadyClock::now();
    while (scheduled < total && due_of(scheduled) <= now) {
      backlog.push_back(due_of(scheduled));
      ++scheduled;
    }
    while (!backlog.empty()) {
      if (idle.empty() && static_cast<int>(conns.size()) < max_conns) {
        open_conn();
      }
      if (idle.empty()) {
        break;
      }
      size_t c = idle.back();
      idle.pop_back();
      send_on(c, backlog.front());
      backlog.pop_front();
    }
    int timeout = 10;
    if (scheduled < total) {
      auto wait = due_of(scheduled) - SteadyClock::now();
      timeout = std::max(
          0, static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(wait).count()));
      timeout = std::min(timeout, 10);
    }
    int n = epoll_wait(ep, evs, 256, timeout);
    for (int k = 0; k < n; ++k) {
      size_t c = evs[k].data.u64;
      Conn& cn = conns[c];
      for (;;) {
        ssize_t r = read(cn.fd, tmp, sizeof(tmp));
        if (r > 0) {
          cn.buf.append(tmp, static_cast<size_t>(r));
          continue;
        }
        if (r == 0) {
          std::fprintf(stderr, "load: server closed a connection\n");
          return 1;
        }
        break;
      }
      int st = 0;
      if (cn.busy && ResponseLength(cn.buf, &st) > 0) {
        Tp t = SteadyClock::now();
        bool good = st == 200 && cn.buf.find("isError\":true") == std::string::npos;
        if (good) {
          ++ok;
          lat.push_back(Ms(t - cn.due));
        } else {
          if (err < 3) {
            std::fprintf(stderr, "load: status %d: %.200s\n", st, cn.buf.c_str());
          }
          ++err;
        }
        cn.busy = false;
        idle.push_back(c);
      }
    }
  }
  double el = std::chrono::duration<double>(SteadyClock::now() - start).count();
  std::printf(
      "rate=%.0f target=%.0f sent=%ld ok=%ld err=%ld conns=%zu p50_ms=%.2f p99_ms=%.2f "
      "max_ms=%.2f\n",
      static_cast<double>(ok) / el, rate, sent, ok, err, conns.size(), Percentile(lat, 0.50),
      Percentile(lat, 0.99), Percentile(lat, 1.0));
  for (auto& c : conns) {
    close(c.fd);
  }
  return 0;
}

// ---------------------------------------------------------------- sse
long RssKb(const std::string& pid) {
  std::ifstream in("/proc/" + pid + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) {
      return std::atol(line.c_str() + 6);
    }
  }
  return -1;
}

int Sse(int argc, char** argv) {
  if (argc < 9) {
    std::fprintf(stderr,
                 "usage: sse HOST PORT GATEWAY_PID TOOL ENVELOPES STREAMS_PER_ENVELOPE TOKEN\n");
    return 2;
  }
  std::string host = argv[2];
  int port = std::atoi(argv[3]);
  std::string gw_pid = argv[4];
  std::string tool = argv[5];
  int envelopes = std::atoi(argv[6]);
  int per = std::atoi(argv[7]);
  std::string token = argv[8];
  int ctl = Connect(host, port);
  if (ctl < 0) {
    std::fprintf(stderr, "sse: cannot connect\n");
    return 1;
  }
  std::vector<std::string> ids;
  for (int i = 0; i < envelopes; ++i) {
    std::string body;
    int st = Roundtrip(ctl, CallRequest(tool, false, i), &body);
    auto p = body.find("envelope_id");
    if (st != 200 || p == std::string::npos) {
      std::fprintf(stderr, "sse: tools/call failed (%d): %.200s\n", st, body.c_str());
      return 1;
    }
    // the id sits inside an escaped JSON text block: envelope_id\":\"<uuid>
    auto q = body.find_first_of("0123456789abcdef", body.find(':', p));
    ids.push_back(body.substr(q, 36));
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(500));  // publisher marks them running
  long rss0 = RssKb(gw_pid);
  struct Stream {
    int fd;
    std::string buf;
    bool headers = false;
    bool done = false;
    Tp at{};
  };
  std::vector<Stream> streams;
  streams.reserve(static_cast<size_t>(envelopes * per));
  int ep = epoll_create1(0);
  for (int i = 0; i < envelopes; ++i) {
    for (int k = 0; k < per; ++k) {
      int fd = Connect(host, port);
      if (fd < 0) {
        std::fprintf(stderr, "sse: connect failed after %zu streams: %s\n", streams.size(),
                     std::strerror(errno));
        return 1;
      }
      WriteAll(fd, "GET /envelopes/" + ids[static_cast<size_t>(i)] +
                       "/stream HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n");
      fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
      streams.push_back(Stream{fd});
      epoll_event ev{};
      ev.events = EPOLLIN;
      ev.data.u64 = streams.size() - 1;
      epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
    }
  }
  const size_t total = streams.size();
  char tmp[16384];
  epoll_event evs[512];
  auto pump = [&](bool final_phase) {
    int n = epoll_wait(ep, evs, 512, 20);
    Tp now = SteadyClock::now();
    for (int k = 0; k < n; ++k) {
      Stream& s = streams[evs[k].data.u64];
      for (;;) {
        ssize_t r = read(s.fd, tmp, sizeof(tmp));
        if (r > 0) {
          s.buf.append(tmp, static_cast<size_t>(r));
          continue;
        }
        if (r == 0 && !s.done) {
          s.done = true;
          s.at = now;
          epoll_ctl(ep, EPOLL_CTL_DEL, s.fd, nullptr);
        }
        break;
      }
      if (!s.headers && s.buf.find("\r\n\r\n") != std::string::npos) {
        s.headers = true;
      }
      if (final_phase && !s.done && s.buf.find("\"status\":\"succeeded\"") != std::string::npos) {
        s.done = true;
        s.at = now;
      }
    }
  };
  Tp t_open = SteadyClock::now();
  size_t ready = 0;
  while (ready < total && SteadyClock::now() - t_open < std::chrono::seconds(60)) {
    pump(false);
    ready = static_cast<size_t>(
        std::count_if(streams.begin(), streams.end(), [](const Stream& s) { return s.headers; }));
  }
  size_t early = static_cast<size_t>(
      std::count_if(streams.begin(), streams.end(), [](const Stream& s) { return s.done; }));
  std::this_thread::sleep_for(std::chrono::seconds(1));
  long rss1 = RssKb(gw_pid);
  std::printf(
      "sse-open streams=%zu ready=%zu closed_early=%zu open_s=%.2f rss_before_mb=%.1f "
      "rss_open_mb=%.1f extra_rss_mb=%.1f per_stream_kb=%.1f\n",
      total, ready, early, std::chrono::duration<double>(SteadyClock::now() - t_open).count(),
      rss0 / 1024.0, rss1 / 1024.0, (rss1 - rss0) / 1024.0,
      total ? static_cast<double>(rss1 - rss0) / static_cast<double>(total) : 0.0);
  // Finals on a second thread (over one keep-alive connection) while this thread watches.
  const std::string auth = token.empty() ? "" : "Authorization: Bearer " + token + "\r\n";
  Tp t0 = SteadyClock::now();
  std::atomic<bool> posted{false};
  std::atomic<int> final_errors{0};
  std::thread poster([&] {
    for (const auto& id : ids) {
      std::string body;
      int st = Roundtrip(
          ctl,
          Post("/envelopes/" + id + "/final",
               "{\"id\":\"" + id + "\",\"status\":\"succeeded\",\"result\":{\"ok\":1}}", auth),
          &body);
      if (st != 200) {
        if (final_errors++ < 3) {
          std::fprintf(stderr, "sse: final %s -> %d %.200s\n", id.c_str(), st, body.c_str());
        }
      }
    }
    posted = true;
  });
  Tp t_posted{};
  size_t done = 0;
  while (done < total && SteadyClock::now() - t0 < std::chrono::seconds(30)) {
    pump(true);
    if (posted && t_posted == Tp{}) {
      t_posted = SteadyClock::now();
    }
    done = static_cast<size_t>(
        std::count_if(streams.begin(), streams.end(), [](const Stream& s) { return s.done; }));
  }
  poster.join();
  if (t_posted == Tp{}) {
    t_posted = SteadyClock::now();
  }
  std::vector<double> lat;
  for (auto& s : streams) {
    if (s.done) {
      lat.push_back(Ms(s.at - t0));
    }
  }
  std::printf(
      "sse-final streams=%zu reached=%zu final_errors=%d posts_ms=%.1f p50_ms=%.1f "
      "all_ms=%.1f\n",
      total, done, final_errors.load(), Ms(t_posted - t0), Percentile(lat, 0.5),
      Percentile(lat, 1.0));
  for (auto& s : streams) {
    close(s.fd);
  }
  close(ctl);
  return done == total ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  std::string mode = argc > 1 ? argv[1] : "";
  if (mode == "baseline") {
    return Baseline(argc, argv);
  }
  if (mode == "load") {
    return Load(argc, argv);
  }
  if (mode == "sse") {
    return Sse(argc, argv);
  }
  std::fprintf(stderr, "usage: asya-bench-gateway baseline|load|sse ...\n");
  return 2;
}
