// The gateway's HTTP seam: what a route handler sees of a request and how it answers.
//
// The server (Boost.Beast/Asio, a few I/O threads for any number of connections) parses a request
// and calls the handler on an I/O thread; the handler must not block. It answers through the
// Responder, at once or later from any thread (a tool call that waits for its pipeline keeps the
// Responder and replies when the result arrives). Long-lived answers (SSE) open an EventStream.
// Handlers are written against these types only, so REST and MCP are unit-tested with a
// recording Responder and no sockets.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>

namespace asya::gateway {

// Header names compared case-insensitively (HTTP field names are).
struct CaseInsensitiveLess {
  bool operator()(std::string_view a, std::string_view b) const;
};
using Headers = std::map<std::string, std::string, CaseInsensitiveLess>;

struct Request {
  std::string method;  // "GET", "POST", ...
  std::string path;    // target without the query string, not percent-decoded
  std::string query;   // after '?', without it; empty when none
  Headers headers;
  std::string body;
  std::string peer;  // remote address, "127.0.0.1:53122"
  // Value of header `name`, or empty.
  [[nodiscard]] std::string_view Header(std::string_view name) const;
};

struct Response {
  int status = 200;
  Headers headers;
  std::string body;
};

// A server-sent-events (or any chunked) response in progress. Thread-safe. Writes are queued and
// never block the caller; a client that stops reading is disconnected once its queue passes the
// server's limit.
class EventStream {
 public:
  virtual ~EventStream() = default;
  // Queues `bytes` (already SSE-formatted, e.g. "id: 7\nevent: update\ndata: {...}\n\n").
  // Returns false when the client is gone or the stream was closed.
  virtual bool Send(std::string bytes) = 0;
  // Ends the response after the queued bytes are written.
  virtual void Close() = 0;
  [[nodiscard]] virtual bool Closed() const = 0;
  // Called once, on any thread, when the client disconnects or the stream is closed.
  virtual void OnClose(std::function<void()> callback) = 0;
};

// Answers one request exactly once: Reply, or OpenStream then Send/Close. Copyable (shared); if
// the last copy is destroyed unanswered the server replies 500.
class Responder {
 public:
  class Impl {
   public:
    virtual ~Impl() = default;
    virtual void Reply(Response response) = 0;
    virtual std::shared_ptr<EventStream> OpenStream(int status, Headers headers) = 0;
  };
  explicit Responder(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}
  void Reply(Response response) const { impl_->Reply(std::move(response)); }
  [[nodiscard]] std::shared_ptr<EventStream> OpenStream(int status, Headers headers) const {
    return impl_->OpenStream(status, std::move(headers));
  }

 private:
  std::shared_ptr<Impl> impl_;
};

using Handler = std::function<void(Request request, Responder responder)>;

}  // namespace asya::gateway
