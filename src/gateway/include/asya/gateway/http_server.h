// The gateway's HTTP/1.1 server: Boost.Beast over Asio, a small fixed pool of I/O threads for
// any number of connections (an idle keep-alive connection or SSE stream is a socket and two
// timers, not a thread). Each I/O thread runs its own event loop; an accepted connection is
// given to the loop with the fewest connections and stays there, so all of a connection's work
// (reads, handler calls, writes, timers) runs on one thread and a request does not wake others.
// One more thread, mostly asleep, accepts connections.
//
// Contract:
//   - one request at a time per connection (no pipelining), keep-alive as the client asks;
//   - limits: request line + headers (431), URL (414), body (413 with the limit in the message,
//     checked against Content-Length before the body is read); `Expect: 100-continue` answered;
//   - timeouts: a request must arrive completely within `read_timeout`, an idle keep-alive
//     connection is closed after `idle_timeout`, a write that makes no progress for
//     `write_timeout` drops the connection;
//   - the handler runs on its connection's I/O thread and must not block (while it does, the
//     other connections of that thread wait); it answers through the Responder at once or later
//     from any thread (http.h);
//   - EventStream: chunked response with `Connection: close` (the connection ends with the
//     stream), a per-stream byte queue capped at `stream_queue_bytes`
//     (a client that stops reading is disconnected, never buffered without bound), a comment
//     line every `stream_keepalive` on text/event-stream responses, OnClose on disconnect;
//   - Stop(): no new connections, idle connections closed, open streams ended, requests in flight
//     get up to `drain` to be answered; then every connection is closed and the threads joined.
// Beast/Asio stay inside http_server.cc.
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>

#include "asya/base/result.h"
#include "asya/gateway/http.h"

namespace asya::gateway {

struct ServerOptions {
  std::string address = "127.0.0.1";  // IPv4/IPv6 literal, "localhost", or "0.0.0.0" / "::"
  int port = 8080;                    // 0: any free port (see HttpServer::port())
  int io_threads = 2;  // I/O threads, each with its own event loop and share of the connections
  std::size_t max_body_bytes = 4u << 20;
  std::size_t max_header_bytes = 16u << 10;
  std::size_t max_url_bytes = 8u << 10;
  std::chrono::milliseconds read_timeout{30'000};
  std::chrono::milliseconds idle_timeout{75'000};
  std::chrono::milliseconds write_timeout{30'000};
  std::size_t stream_queue_bytes = 4u << 20;
  std::chrono::milliseconds stream_keepalive{15'000};  // 0: none
};

class HttpServer {
 public:
  HttpServer(ServerOptions options, Handler handler);
  ~HttpServer();  // Stop(0) if running
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds, listens and starts the I/O threads. kUnavailable when the address cannot be bound.
  Status Start();
  // The bound port (after Start).
  [[nodiscard]] int port() const;
  // Graceful stop, at most `drain` for requests in flight (see above). Idempotent.
  void Stop(std::chrono::milliseconds drain);
  // Open connections (streams included), for tests and logs.
  [[nodiscard]] std::size_t Connections() const;

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace asya::gateway
