// A tiny HTTP/1.x responder for /metrics and /health: one thread, one request per connection.
//
// Not a general web server: GET only, requests up to 8 KiB, `Connection: close` on every answer.
// Keeps the sidecar's idle footprint small (no library, no thread pool).
#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <thread>

#include "asya/base/result.h"

namespace asya::sidecar {

struct HttpResponse {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
};

class HttpServer {
 public:
  using Handler = std::function<HttpResponse(std::string_view path)>;

  explicit HttpServer(Handler handler);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds `addr` ("host:port", ":port"; host may be an IPv4 address, "localhost" or empty for
  // all interfaces; port 0 picks a free port) and starts serving on a background thread.
  Status Start(std::string_view addr);
  void Stop();
  [[nodiscard]] int port() const { return port_; }

 private:
  void Serve();
  void HandleConnection(int fd);

  Handler handler_;
  int listen_fd_ = -1;
  int wake_fds_[2] = {-1, -1};
  int port_ = 0;
  std::thread thread_;
};

// Metrics + health handler: GET /metrics -> render(), GET /health -> "OK", else 404.
HttpServer::Handler MetricsHandler(std::function<std::string()> render);

}  // namespace asya::sidecar
