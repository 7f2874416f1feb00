#include "asya/gateway/http_server.h"

#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include <boost/asio/dispatch.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>

#include "asya/base/log.h"

namespace asya::gateway {
namespace {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = net::ip::tcp;
using error_code = boost::system::error_code;
// Each io_context is run by exactly one thread, so a connection's handlers never run
// concurrently: the loop's executor serialises them as a strand would, without the strand's queue.
using Executor = net::io_context::executor_type;
using Socket = net::basic_stream_socket<tcp, Executor>;
using Timer = net::basic_waitable_timer<std::chrono::steady_clock,
                                        net::wait_traits<std::chrono::steady_clock>, Executor>;

std::string StatusReason(int status) {
  auto r = bhttp::obsolete_reason(static_cast<bhttp::status>(status));
  return r.empty() ? std::string("Unknown") : std::string(r);
}

bool IEquals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && !CaseInsensitiveLess()(a, b) && !CaseInsensitiveLess()(b, a);
}

}  // namespace

struct HttpServer::Impl : std::enable_shared_from_this<HttpServer::Impl> {
  class Session;

  // An event loop and the one thread that runs it. A connection belongs to one loop for its
  // whole life, so all its completions run on one thread (a request does not hop between
  // threads, waking each).
  struct Loop {
    net::io_context ioc{1};
    // Keeps run() going while a handler holds a request with no I/O pending (and while the
    // loop has no connection at all).
    std::optional<net::executor_work_guard<Executor>> work;
    std::thread thread;
    std::size_t connections = 0;  // guarded by Impl::mu
  };

  ServerOptions options;
  Handler handler;
  // loops[0] runs the acceptor alone, so a handler that blocks its thread (a tool call waits
  // there for its store insert) never delays accepting; loops[1..io_threads] serve connections.
  std::vector<std::unique_ptr<Loop>> loops;
  std::size_t next_loop = 1;  // round-robin among the least loaded; under mu
  std::optional<net::basic_socket_acceptor<tcp, Executor>> acceptor;
  int bound_port = 0;
  std::atomic<bool> stopping{false};
  bool started = false;
  bool stopped = false;

  mutable std::mutex mu;
  std::condition_variable cv;
  std::map<Session*, std::weak_ptr<Session>> sessions;

  Impl(ServerOptions o, Handler h) : options(std::move(o)), handler(std::move(h)) {
    for (int t = 0; t <= std::max(1, options.io_threads); ++t) {
      loops.push_back(std::make_unique<Loop>());
    }
  }

  void Accept();
  // The loop with the fewest connections (ties in turn); the next connection goes there.
  std::size_t PickLoop();
  void Register(const std::shared_ptr<Session>& s);
  void Unregister(Session* s);
  std::vector<std::shared_ptr<Session>> Live();
};

// One connection. Every member is touched on its loop's thread only, except the stream queue
// (guarded by `qmu`), `closed` (atomic) and what ResponderImpl does through Post*.
class HttpServer::Impl::Session : public std::enable_shared_from_this<Session> {
 public:
  Session(std::shared_ptr<Impl> server, std::size_t loop, Socket socket)
      : server_(std::move(server)),
        loop_(loop),
        socket_(std::move(socket)),
        timer_(socket_.get_executor()),
        keepalive_(socket_.get_executor()) {
    error_code ec;
    auto ep = socket_.remote_endpoint(ec);
    if (!ec) {
      peer_ = ep.address().to_string() + ":" + std::to_string(ep.port());
    }
  }
  ~Session() { server_->Unregister(this); }

  [[nodiscard]] std::size_t loop() const { return loop_; }

  void Start() {
    net::dispatch(socket_.get_executor(), [self = shared_from_this()] { self->ReadRequest(); });
  }

  // ---- called from any thread ----
  void PostReply(Response response) {
    net::post(socket_.get_executor(),
              [self = shared_from_this(), r = std::move(response)]() mutable {
                self->WriteResponse(std::move(r));
              });
  }
  void PostStreamStart(int status, Headers headers) {
    net::post(socket_.get_executor(),
              [self = shared_from_this(), status, h = std::move(headers)]() mutable {
                self->StartStream(status, std::move(h));
              });
  }
  bool StreamSend(std::string bytes) {
    if (closed_ || bytes.empty()) {
      return !closed_;
    }
    bool overflow = false;
    {
      std::lock_guard lock(qmu_);
      if (stream_closing_) {
        return false;
      }
      queued_bytes_ += bytes.size();
      if (queued_bytes_ > server_->options.stream_queue_bytes) {
        overflow = true;
      } else {
        queue_.push_back(Chunk(bytes));
      }
    }
    if (overflow) {
      log::Warn("slow stream reader disconnected", {{"peer", peer_}});
      PostForceClose();
      return false;
    }
    net::post(socket_.get_executor(), [self = shared_from_this()] { self->FlushStream(); });
    return true;
  }
  void StreamClose() {
    {
      std::lock_guard lock(qmu_);
      if (stream_closing_) {
        return;
      }
      stream_closing_ = true;
      queue_.push_back(chunked_ ? std::string("0\r\n\r\n") : std::string());
    }
    net::post(socket_.get_executor(), [self = shared_from_this()] { self->FlushStream(); });
  }
  bool Closed() const { return closed_ || StreamClosing(); }
  bool StreamClosing() const {
    std::lock_guard lock(qmu_);
    return stream_closing_;
  }
  void OnClose(std::function<void()> cb) {
    {
      std::lock_guard lock(qmu_);
      if (!closed_) {
        on_close_.push_back(std::move(cb));
        return;
      }
    }
    cb();
  }
  void PostForceClose() {
    net::post(socket_.get_executor(), [self = shared_from_this()] { self->Close(); });
  }
  // Server stopping: idle connections close now, streams end, busy ones close after answering.
  void PostServerStop() {
    net::post(socket_.get_executor(), [self = shared_from_this()] {
      if (self->state_ == State::kIdle) {
        self->Close();
      } else if (self->state_ == State::kStreaming) {
        self->StreamClose();
      } else {
        self->keep_alive_ = false;
      }
    });
  }

 private:
  enum class State { kIdle, kReading, kHandling, kWriting, kStreaming, kClosed };

  std::string Chunk(const std::string& bytes) const {
    if (!chunked_) {
      return bytes;
    }
    char size[32];
    std::snprintf(size, sizeof(size), "%zx\r\n", bytes.size());
    std::string out;
    out.reserve(bytes.size() + 16);
    out += size;
    out += bytes;
    out += "\r\n";
    return out;
  }

  void Arm(std::chrono::milliseconds d) {
    ++timer_gen_;
    if (d.count() <= 0) {
      timer_.cancel();
      return;
    }
    timer_.expires_after(d);
    timer_.async_wait([self = shared_from_this(), gen = timer_gen_](error_code ec) {
      if (!ec && gen == self->timer_gen_) {
        self->Close();
      }
    });
  }
  void Disarm() {
    ++timer_gen_;
    timer_.cancel();
  }

  void ReadRequest() {
    if (closed_) {
      return;
    }
    if (server_->stopping) {
      Close();
      return;
    }
    state_ = State::kIdle;
    parser_.emplace();
    parser_->header_limit(static_cast<std::uint32_t>(server_->options.max_header_bytes));
    parser_->body_limit(server_->options.max_body_bytes);
    Arm(first_request_ ? server_->options.read_timeout : server_->options.idle_timeout);
    bhttp::async_read_header(
        socket_, buffer_, *parser_,
        [self = shared_from_this()](error_code ec, std::size_t) { self->OnHeader(ec); });
  }

  void OnHeader(error_code ec) {
    first_request_ = false;
    if (ec) {
      OnReadError(ec);
      return;
    }
    state_ = State::kReading;
    Arm(server_->options.read_timeout);
    auto& req = parser_->get();
    if (req.target().size() > server_->options.max_url_bytes) {
      Refuse(414, "request URL exceeds the limit of " +
                      std::to_string(server_->options.max_url_bytes) + " bytes\n");
      return;
    }
    if (parser_->is_done()) {
      Dispatch();
      return;
    }
    auto expect = req[bhttp::field::expect];
    if (!expect.empty() &&
        IEquals(std::string_view(expect.data(), expect.size()), "100-continue")) {
      auto cont = std::make_shared<std::string>("HTTP/1.1 100 Continue\r\n\r\n");
      net::async_write(socket_, net::buffer(*cont),
                       [self = shared_from_this(), cont](error_code wec, std::size_t) {
                         if (wec) {
                           self->Close();
                           return;
                         }
                         self->ReadBody();
                       });
      return;
    }
    ReadBody();
  }

  void ReadBody() {
    bhttp::async_read(socket_, buffer_, *parser_,
                      [self = shared_from_this()](error_code ec, std::size_t) {
                        if (ec) {
                          self->OnReadError(ec);
                          return;
                        }
                        self->Dispatch();
                      });
  }

  void OnReadError(error_code ec) {
    if (ec == bhttp::error::body_limit) {
      Refuse(413, "request body exceeds the limit of " +
                      std::to_string(server_->options.max_body_bytes) + " bytes\n");
    } else if (ec == bhttp::error::header_limit) {
      Refuse(431, "request header fields exceed the limit of " +
                      std::to_string(server_->options.max_header_bytes) + " bytes\n");
    } else if (ec == bhttp::error::end_of_stream || ec == net::error::eof ||
               ec == net::error::operation_aborted || ec == net::error::connection_reset ||
               ec == net::error::bad_descriptor) {
      Close();
    } else if (&ec.category() == &bhttp::make_error_code(bhttp::error::bad_method).category()) {
      Refuse(400, "malformed HTTP request\n");
    } else {
      Close();
    }
  }

  // Answers an unreadable request and closes (no keep-alive: the stream position is lost).
  void Refuse(int status, std::string text) {
    keep_alive_ = false;
    Response r;
    r.status = status;
    r.headers["Content-Type"] = "text/plain; charset=utf-8";
    r.body = std::move(text);
    version_ = 11;
    WriteResponse(std::move(r));
  }

  void Dispatch() {
    state_ = State::kHandling;
    Disarm();
    auto msg = parser_->release();
    parser_.reset();
    version_ = msg.version();
    keep_alive_ = msg.keep_alive() && !server_->stopping;
    Request req;
    req.method = std::string(msg.method_string());
    std::string target(msg.target());
    auto q = target.find('?');
    if (q == std::string::npos) {
      req.path = std::move(target);
    } else {
      req.path = target.substr(0, q);
      req.query = target.substr(q + 1);
    }
    for (const auto& f : msg) {
      std::string name(f.name_string());
      auto [it, inserted] = req.headers.emplace(name, std::string(f.value()));
      if (!inserted) {
        it->second += ", ";
        it->second += std::string(f.value());
      }
    }
    req.body = std::move(msg.body());
    req.peer = peer_;
    answered_ = false;

    class ResponderImpl final : public Responder::Impl {
     public:
      explicit ResponderImpl(std::shared_ptr<Session> s) : s_(std::move(s)) {}
      ~ResponderImpl() override {
        if (!done_.exchange(true)) {
          Response r;
          r.status = 500;
          r.headers["Content-Type"] = "text/plain; charset=utf-8";
          r.body = "internal error: the request was not answered\n";
          s_->PostReply(std::move(r));
        }
      }
      void Reply(Response response) override {
        if (done_.exchange(true)) {
          log::Error("handler answered a request twice");
          return;
        }
        s_->PostReply(std::move(response));
      }
      std::shared_ptr<EventStream> OpenStream(int status, Headers headers) override {
        auto stream = std::make_shared<StreamImpl>(s_);
        if (done_.exchange(true)) {
          log::Error("handler answered a request twice");
          stream->MarkDead();
          return stream;
        }
        s_->PrepareStream(headers);
        s_->PostStreamStart(status, std::move(headers));
        return stream;
      }

     private:
      std::shared_ptr<Session> s_;
      std::atomic<bool> done_{false};
    };

    Responder responder(std::make_shared<ResponderImpl>(shared_from_this()));
    try {
      server_->handler(std::move(req), std::move(responder));
    } catch (const std::exception& e) {
      log::Error("request handler threw", {{"error", e.what()}});
    } catch (...) {
      log::Error("request handler threw");
    }
  }

 public:
  class StreamImpl final : public EventStream {
   public:
    explicit StreamImpl(std::shared_ptr<Session> s) : s_(std::move(s)) {}
    bool Send(std::string bytes) override { return !dead_ && s_->StreamSend(std::move(bytes)); }
    void Close() override {
      if (!dead_) {
        s_->StreamClose();
      }
    }
    [[nodiscard]] bool Closed() const override { return dead_ || s_->Closed(); }
    void OnClose(std::function<void()> callback) override {
      if (dead_) {
        callback();
        return;
      }
      s_->OnClose(std::move(callback));
    }
    void MarkDead() { dead_ = true; }

   private:
    std::shared_ptr<Session> s_;
    bool dead_ = false;
  };

  // Called by OpenStream on the handler's thread before the start is posted, so that Send()
  // calls made right after OpenStream already frame their chunks.
  void PrepareStream(const Headers& headers) {
    std::lock_guard lock(qmu_);
    chunked_ = version_ >= 11;
    auto ct = headers.find("Content-Type");
    sse_ = ct != headers.end() && ct->second.rfind("text/event-stream", 0) == 0;
  }

 private:
  void WriteResponse(Response r) {
    if (closed_ || answered_) {
      return;
    }
    answered_ = true;
    state_ = State::kWriting;
    auto res = std::make_shared<bhttp::response<bhttp::string_body>>();
    res->version(version_);
    res->result(static_cast<unsigned>(r.status));
    res->reason(StatusReason(r.status));
    for (auto& [k, v] : r.headers) {
      res->set(k, v);
    }
    if (!r.body.empty() && r.headers.find("Content-Type") == r.headers.end()) {
      res->set(bhttp::field::content_type, "text/plain; charset=utf-8");
    }
    if (server_->stopping) {
      keep_alive_ = false;
    }
    res->keep_alive(keep_alive_);
    res->body() = std::move(r.body);
    res->prepare_payload();
    log::Debug("http", {{"status", r.status}, {"peer", peer_}});
    Arm(server_->options.write_timeout);
    bhttp::async_write(socket_, *res, [self = shared_from_this(), res](error_code ec, std::size_t) {
      self->Disarm();
      if (ec) {
        self->Close();
        return;
      }
      if (!self->keep_alive_) {
        self->Linger();
        return;
      }
      self->ReadRequest();
    });
  }

  // Half-closes and discards what the client still sends (an unread body), so the client reads
  // our answer instead of a connection reset; closes at EOF or after a short bound.
  void Linger() {
    error_code ec;
    socket_.shutdown(tcp::socket::shutdown_send, ec);
    if (ec) {
      Close();
      return;
    }
    state_ = State::kClosed;
    Arm(std::chrono::milliseconds(server_->stopping ? 200 : 2000));
    DrainRead();
  }
  void DrainRead() {
    socket_.async_read_some(net::buffer(scratch_),
                            [self = shared_from_this()](error_code ec, std::size_t) {
                              if (ec) {
                                self->Close();
                                return;
                              }
                              self->DrainRead();
                            });
  }

  void StartStream(int status, Headers headers) {
    if (closed_ || answered_) {
      return;
    }
    answered_ = true;
    state_ = State::kStreaming;
    std::string head = "HTTP/1." + std::to_string(version_ % 10) + " " + std::to_string(status) +
                       " " + StatusReason(status) + "\r\n";
    for (const auto& [k, v] : headers) {
      if (IEquals(k, "Content-Length") || IEquals(k, "Transfer-Encoding") ||
          IEquals(k, "Connection")) {
        continue;
      }
      head += k + ": " + v + "\r\n";
    }
    // The connection closes when the stream ends (Linger), so say so even when chunked: a client
    // that took the connection for reusable sent its next request into our FIN ("fetch failed"
    // in the MCP conformance suite's next check, under load).
    head +=
        chunked_ ? "Transfer-Encoding: chunked\r\nConnection: close\r\n" : "Connection: close\r\n";
    head += "\r\n";
    {
      std::lock_guard lock(qmu_);
      queue_.push_front(std::move(head));
    }
    // Detect a client that goes away while we only write.
    WatchPeer();
    if (sse_ && server_->options.stream_keepalive.count() > 0) {
      ScheduleKeepalive();
    }
    FlushStream();
    if (server_->stopping) {
      StreamClose();
    }
  }

  void WatchPeer() {
    socket_.async_read_some(
        net::buffer(scratch_), [self = shared_from_this()](error_code ec, std::size_t) {
          if (ec) {
            self->Close();
            return;
          }
          self->WatchPeer();  // a client has nothing to say on a stream; ignore it
        });
  }

  void ScheduleKeepalive() {
    keepalive_.expires_after(server_->options.stream_keepalive);
    keepalive_.async_wait([self = shared_from_this()](error_code ec) {
      if (ec || self->closed_) {
        return;
      }
      bool idle = false;
      {
        std::lock_guard lock(self->qmu_);
        idle = self->queue_.empty() && !self->stream_closing_;
      }
      if (idle) {
        self->StreamSend(": keepalive\n\n");
      }
      self->ScheduleKeepalive();
    });
  }

  void FlushStream() {
    if (closed_ || writing_ || state_ != State::kStreaming) {
      return;
    }
    std::string next;
    bool last = false;
    {
      std::lock_guard lock(qmu_);
      if (queue_.empty()) {
        return;
      }
      // Coalesce queued chunks into one write.
      while (!queue_.empty()) {
        std::string& front = queue_.front();
        bool terminal = stream_closing_ && queue_.size() == 1;
        next += front;
        if (terminal) {
          last = true;
        }
        queue_.pop_front();
      }
    }
    if (next.empty()) {
      if (last) {
        Linger();
      }
      return;
    }
    writing_ = true;
    write_buf_ = std::move(next);
    Arm(server_->options.write_timeout);
    net::async_write(
        socket_, net::buffer(write_buf_),
        [self = shared_from_this(), last, n = write_buf_.size()](error_code ec, std::size_t) {
          self->writing_ = false;
          self->Disarm();
          {
            std::lock_guard lock(self->qmu_);
            self->queued_bytes_ -= std::min(self->queued_bytes_, n);
          }
          if (ec) {
            self->Close();
            return;
          }
          if (last) {
            self->Linger();
            return;
          }
          self->FlushStream();
        });
  }

 public:
  void Close() {
    if (closed_) {
      return;
    }
    std::vector<std::function<void()>> callbacks;
    {
      std::lock_guard lock(qmu_);
      closed_ = true;
      stream_closing_ = true;
      callbacks.swap(on_close_);
      queue_.clear();
    }
    state_ = State::kClosed;
    ++timer_gen_;
    timer_.cancel();
    keepalive_.cancel();
    error_code ec;
    socket_.shutdown(tcp::socket::shutdown_both, ec);
    socket_.close(ec);
    server_->Unregister(this);
    for (auto& cb : callbacks) {
      try {
        cb();
      } catch (...) {
        log::Error("stream close callback threw");
      }
    }
  }

 private:
  std::shared_ptr<Impl> server_;
  const std::size_t loop_;  // index into server_->loops; socket_'s executor is that loop's
  Socket socket_;
  Timer timer_;
  Timer keepalive_;
  std::uint64_t timer_gen_ = 0;
  beast::flat_buffer buffer_;
  std::optional<bhttp::request_parser<bhttp::string_body>> parser_;
  std::string peer_;
  State state_ = State::kIdle;
  unsigned version_ = 11;
  bool keep_alive_ = true;
  bool first_request_ = true;
  bool answered_ = false;
  bool writing_ = false;
  std::string write_buf_;
  char scratch_[512];

  mutable std::mutex qmu_;
  std::deque<std::string> queue_;
  std::size_t queued_bytes_ = 0;
  bool stream_closing_ = false;
  bool chunked_ = true;
  bool sse_ = false;
  std::atomic<bool> closed_{false};
  std::vector<std::function<void()>> on_close_;
};

void HttpServer::Impl::Accept() {
  const std::size_t loop = PickLoop();
  auto ex = loops[loop]->ioc.get_executor();
  acceptor->async_accept(ex, [self = shared_from_this(), loop](error_code ec, Socket socket) {
    if (ec) {
      if (ec == net::error::operation_aborted || self->stopping) {
        return;
      }
      // Out of file descriptors (or similar): pause, do not spin.
      log::Warn("accept failed; pausing 100 ms", {{"error", ec.message()}});
      auto timer = std::make_shared<Timer>(self->acceptor->get_executor());
      timer->expires_after(std::chrono::milliseconds(100));
      timer->async_wait([self, timer](error_code) {
        if (!self->stopping) {
          self->Accept();
        }
      });
      return;
    } else if (self->stopping) {
      error_code ignored;
      socket.close(ignored);
    } else {
      error_code ignored;
      socket.set_option(tcp::no_delay(true), ignored);
      auto session = std::make_shared<Session>(self, loop, std::move(socket));
      self->Register(session);
      session->Start();
    }
    if (!self->stopping) {
      self->Accept();
    }
  });
}

std::size_t HttpServer::Impl::PickLoop() {
  std::lock_guard lock(mu);
  const std::size_t n = loops.size() - 1;  // connection loops are 1..n
  const std::size_t first = next_loop;     // in 1..n
  std::size_t best = first;
  for (std::size_t k = 1; k < n; ++k) {
    std::size_t i = 1 + (first - 1 + k) % n;
    if (loops[i]->connections < loops[best]->connections) {
      best = i;
    }
  }
  next_loop = 1 + best % n;
  return best;
}

void HttpServer::Impl::Register(const std::shared_ptr<Session>& s) {
  std::lock_guard lock(mu);
  if (sessions.emplace(s.get(), s).second) {
    ++loops[s->loop()]->connections;
  }
}

void HttpServer::Impl::Unregister(Session* s) {
  std::lock_guard lock(mu);
  if (sessions.erase(s) > 0) {
    --loops[s->loop()]->connections;
  }
  cv.notify_all();
}

std::vector<std::shared_ptr<HttpServer::Impl::Session>> HttpServer::Impl::Live() {
  std::vector<std::shared_ptr<Session>> out;
  std::lock_guard lock(mu);
  for (auto& [p, w] : sessions) {
    if (auto s = w.lock()) {
      out.push_back(std::move(s));
    }
  }
  return out;
}

HttpServer::HttpServer(ServerOptions options, Handler handler)
    : impl_(std::make_shared<Impl>(std::move(options), std::move(handler))) {}

HttpServer::~HttpServer() {
  Stop(std::chrono::milliseconds(0));
}

Status HttpServer::Start() {
  auto& i = *impl_;
  if (i.started) {
    return MakeError(ErrorCode::kFailedPrecondition, "server already started");
  }
  error_code ec;
  std::string host = i.options.address.empty() ? "0.0.0.0" : i.options.address;
  if (host == "localhost") {
    host = "127.0.0.1";
  }
  auto addr = net::ip::make_address(host, ec);
  if (ec) {
    return MakeError(ErrorCode::kInvalidArgument, "invalid listen address '" + host + "'");
  }
  tcp::endpoint ep(addr, static_cast<unsigned short>(i.options.port));
  i.acceptor.emplace(i.loops[0]->ioc.get_executor());
  i.acceptor->open(ep.protocol(), ec);
  if (!ec) {
    i.acceptor->set_option(net::socket_base::reuse_address(true), ec);
  }
  if (!ec) {
    i.acceptor->bind(ep, ec);
  }
  if (!ec) {
    i.acceptor->listen(net::socket_base::max_listen_connections, ec);
  }
  if (ec) {
    return MakeError(
        ErrorCode::kUnavailable,
        "cannot listen on " + host + ":" + std::to_string(i.options.port) + ": " + ec.message());
  }
  i.bound_port = i.acceptor->local_endpoint().port();
  i.started = true;
  for (auto& loop : i.loops) {
    loop->work.emplace(loop->ioc.get_executor());
  }
  i.Accept();
  for (auto& loop : i.loops) {
    loop->thread = std::thread([impl = impl_, l = loop.get()] {
      for (;;) {
        try {
          l->ioc.run();
          return;
        } catch (const std::exception& e) {
          log::Error("I/O thread caught an exception", {{"error", e.what()}});
        }
      }
    });
  }
  return {};
}

int HttpServer::port() const {
  return impl_->bound_port;
}

std::size_t HttpServer::Connections() const {
  std::lock_guard lock(impl_->mu);
  return impl_->sessions.size();
}

void HttpServer::Stop(std::chrono::milliseconds drain) {
  auto& i = *impl_;
  if (!i.started || i.stopped) {
    return;
  }
  i.stopped = true;
  i.stopping = true;
  net::post(i.acceptor->get_executor(), [impl = impl_] {
    error_code ec;
    impl->acceptor->close(ec);
  });
  for (auto& s : i.Live()) {
    s->PostServerStop();
  }
  {
    std::unique_lock lock(i.mu);
    i.cv.wait_for(lock, drain, [&] { return i.sessions.empty(); });
  }
  for (auto& s : i.Live()) {
    s->PostForceClose();
  }
  {
    std::unique_lock lock(i.mu);
    i.cv.wait_for(lock, std::chrono::milliseconds(1000), [&] { return i.sessions.empty(); });
  }
  for (auto& loop : i.loops) {
    loop->work.reset();
    loop->ioc.stop();
  }
  for (auto& loop : i.loops) {
    if (loop->thread.joinable()) {
      loop->thread.join();
    }
  }
  // Run what is left (completions of the closed sockets) so no handler keeps a session alive.
  for (auto& s : i.Live()) {
    s->PostForceClose();
  }
  for (auto& loop : i.loops) {
    loop->ioc.restart();
  }
  for (int round = 0; round < 100; ++round) {
    std::size_t ran = 0;
    for (auto& loop : i.loops) {
      ran += loop->ioc.poll();
    }
    if (ran == 0) {
      break;
    }
  }
  i.acceptor.reset();
}

}  // namespace asya::gateway
