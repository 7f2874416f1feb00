// The socket server behind asya::runtime::Server.
//
// Threading: `concurrency` worker threads share one epoll set in which every connection is
// registered EPOLLONESHOT. A worker that gets a ready connection reads, runs the handler and
// writes the response itself (no hand-off between threads, so no extra wake-up per message),
// serves further frames already buffered, then re-arms the connection. Idle connections cost no
// thread. The listener is level-triggered: a worker accepts one connection and serves it at once
// (the request usually follows the connect immediately).
//
// Lingering: when a connection has no further frame buffered, the worker that just served it
// waits for it in poll() together with the epoll descriptor instead of parking it at once, as long
// as no other worker is idle. The next request (kept connection) or the client's EOF (connection
// per message) is then read straight away, without the epoll_ctl/epoll_wait pair; any other
// readiness in the epoll set (a new connection, another client's request, shutdown) makes the
// worker park its connection and go back to epoll_wait, so lingering never delays other clients.
#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <thread>
#include <unordered_map>

#include <fcntl.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "asya/base/duration.h"
#include "asya/base/file.h"
#include "asya/base/log.h"
#include "asya/base/runtime_files.h"
#include "asya/protocol/frame.h"
#include "asya/runtime/serve.h"
#include "runtime/processor.h"

namespace asya::runtime {
namespace {

constexpr size_t kReadChunk = 16 * 1024;       // smallest free space offered to read()
constexpr size_t kKeepBufferBytes = 4u << 20;  // larger buffers are released after use
constexpr int kWriteTimeoutMs = 60'000;  // a client that does not read its response is dropped

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

std::string Errno(std::string_view what) {
  return std::string(what) + ": " + std::strerror(errno);
}

// Writes all of `data` to a non-blocking socket, waiting for POLLOUT when the buffer is full.
bool WriteAll(int fd, const char* data, size_t size) {
  while (size > 0) {
    ssize_t w = ::send(fd, data, size, MSG_NOSIGNAL);
    if (w > 0) {
      data += w;
      size -= static_cast<size_t>(w);
      continue;
    }
    if (w < 0 && errno == EINTR) {
      continue;
    }
    if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      pollfd p{fd, POLLOUT, 0};
      int r = ::poll(&p, 1, kWriteTimeoutMs);
      if (r > 0 || (r < 0 && errno == EINTR)) {
        continue;
      }
      log::Warn("client did not read its response in time; closing the connection");
      return false;
    }
    return false;
  }
  return true;
}

std::string OctalMode(unsigned mode) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0%o", mode);
  return buf;
}

Status MakeDirs(const std::string& dir) {
  for (size_t pos = 1; pos <= dir.size(); ++pos) {
    if (pos == dir.size() || dir[pos] == '/') {
      std::string part = dir.substr(0, pos);
      if (::mkdir(part.c_str(), 0755) != 0 && errno != EEXIST) {
        return MakeError(ErrorCode::kUnavailable, Errno("cannot create socket directory " + part));
      }
    }
  }
  return Ok();
}

// Receive buffer of one connection: bytes [0, have) received and not yet consumed. Grows without
// zero-filling (a std::string would clear every new chunk).
struct RecvBuffer {
  std::unique_ptr<char[]> data;
  size_t cap = 0;
  size_t have = 0;

  // Makes room for at least `size` bytes in total, keeping the received ones.
  void Reserve(size_t size) {
    if (size <= cap) {
      return;
    }
    size_t new_cap = std::max(size, cap * 2);
    auto grown = std::make_unique_for_overwrite<char[]>(new_cap);
    if (have > 0) {
      std::memcpy(grown.get(), data.get(), have);
    }
    data = std::move(grown);
    cap = new_cap;
  }
  // Drops the first `n` bytes.
  void Consume(size_t n) {
    have -= n;
    if (have > 0) {
      std::memmove(data.get(), data.get() + n, have);
    } else if (cap > kKeepBufferBytes) {
      data.reset();  // release the memory of a big message
      cap = 0;
    }
  }
};

struct Conn {
  int fd = -1;
  bool armed_once = false;  // registered in epoll at least once (then EPOLL_CTL_MOD)
  RecvBuffer in;
};

}  // namespace

struct Server::Impl {
  Impl(Handler h, ServeOptions o)
      : handler(std::move(h)),
        options(std::move(o)),
        processor(handler, options.validate, options.max_message_bytes) {}

  Handler handler;
  ServeOptions options;
  Processor processor;
  std::string socket_path;
  std::string ready_path;
  int listen_fd = -1;
  int epoll_fd = -1;
  int wake_fd = -1;
  char listener_tag = 0;  // addresses used as epoll tags
  char wake_tag = 0;
  std::atomic<bool> stopping{false};
  std::atomic<int> idle_workers{0};  // workers blocked in epoll_wait
  std::mutex stop_mu;
  bool stopped = false;
  std::vector<std::thread> workers;
  std::unique_ptr<std::atomic<int64_t>[]> deadlines;  // per worker: handler deadline (ns), 0 = idle
  std::unique_ptr<std::atomic<int64_t>[]> started;
  std::thread watchdog;
  std::thread ready_retry;  // only while the ready file could not be written (e.g. disk full)
  std::mutex wd_mu;
  std::condition_variable wd_cv;
  std::mutex conns_mu;
  std::unordered_map<Conn*, std::unique_ptr<Conn>> conns;

  Status Bind();
  bool WriteReadyFile(bool log_failure = true);
  void RetryReadyFile();
  void RemoveFiles();
  void WorkerLoop(size_t index);
  void AcceptOne(size_t index, std::string& resp);
  void ServeConn(Conn* conn, size_t index, std::string& resp);
  bool Respond(Conn* conn, std::string_view body, size_t index, std::string& resp);
  void SendError(Conn* conn, std::string_view code, std::string_view type, std::string_view msg);
  enum class Wait { kReadable, kPark };
  Wait Linger(Conn* conn);
  void Arm(Conn* conn);
  void Close(Conn* conn);
  void WatchdogLoop();
};

Status Server::Impl::Bind() {
  ASYA_RETURN_IF_ERROR(MakeDirs(options.socket_dir));
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (socket_path.size() >= sizeof(addr.sun_path)) {
    return MakeError(ErrorCode::kInvalidArgument,
                     "socket path " + socket_path + " is longer than " +
                         std::to_string(sizeof(addr.sun_path) - 1) + " bytes");
  }
  std::memcpy(addr.sun_path, socket_path.c_str(), socket_path.size() + 1);
  struct stat st {};
  if (::stat(socket_path.c_str(), &st) == 0) {
    if (S_ISDIR(st.st_mode)) {
      return MakeError(ErrorCode::kInvalidArgument,
                       "socket path " + socket_path + " is a directory");
    }
    if (::unlink(socket_path.c_str()) != 0) {
      return MakeError(ErrorCode::kUnavailable, Errno("cannot remove stale " + socket_path));
    }
    log::Info("removed stale socket file", {{"path", socket_path}});
  }
  listen_fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (listen_fd < 0) {
    return MakeError(ErrorCode::kUnavailable, Errno("socket"));
  }
  if (::bind(listen_fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::listen(listen_fd, SOMAXCONN) != 0) {
    return MakeError(ErrorCode::kUnavailable, Errno("cannot listen on " + socket_path));
  }
  if (options.socket_mode && ::chmod(socket_path.c_str(), *options.socket_mode) != 0) {
    return MakeError(ErrorCode::kUnavailable, Errno("cannot chmod " + socket_path));
  }
  epoll_fd = ::epoll_create1(EPOLL_CLOEXEC);
  wake_fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (epoll_fd < 0 || wake_fd < 0) {
    return MakeError(ErrorCode::kUnavailable, Errno("epoll/eventfd"));
  }
  epoll_event ev{};
  ev.events = EPOLLIN;  // level-triggered: once signalled, every worker sees it
  ev.data.ptr = &wake_tag;
  ::epoll_ctl(epoll_fd, EPOLL_CTL_ADD, wake_fd, &ev);
  ev.events = EPOLLIN;  // level-triggered: another worker accepts the next one meanwhile
  ev.data.ptr = &listener_tag;
  ::epoll_ctl(epoll_fd, EPOLL_CTL_ADD, listen_fd, &ev);
  return Ok();
}

bool Server::Impl::WriteReadyFile(bool log_failure) {
  if (auto written = WriteFileAtomic(ready_path, "ready"); !written) {
    if (log_failure) {
      log::Error("failed to create the ready file; retrying every second",
                 {{"path", ready_path}, {"error", written.error().message}});
    }
    return false;
  }
  log::Info("runtime ready", {{"socket", socket_path}, {"ready_file", ready_path}});
  return true;
}

// A runtime without its ready file is never used (the sidecar, and `asya up` before starting
// it, wait for the file): a failed write (a full disk) is retried until it succeeds or we stop.
void Server::Impl::RetryReadyFile() {
  std::unique_lock<std::mutex> lock(wd_mu);
  while (!stopping.load(std::memory_order_acquire)) {
    wd_cv.wait_for(lock, std::chrono::seconds(1));
    if (stopping.load(std::memory_order_acquire) || WriteReadyFile(false)) {
      return;
    }
  }
}

void Server::Impl::RemoveFiles() {
  ::unlink(ready_path.c_str());
  ::unlink(socket_path.c_str());
}

void Server::Impl::Arm(Conn* conn) {
  epoll_event ev{};
  ev.events = EPOLLIN | EPOLLRDHUP | EPOLLONESHOT;
  ev.data.ptr = conn;
  int op = conn->armed_once ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
  conn->armed_once = true;
  if (::epoll_ctl(epoll_fd, op, conn->fd, &ev) != 0) {
    log::Warn("epoll_ctl failed; closing the connection", {{"error", Errno("epoll_ctl")}});
    Close(conn);
  }
}

void Server::Impl::Close(Conn* conn) {
  ::close(conn->fd);  // also removes it from the epoll set
  std::lock_guard<std::mutex> lock(conns_mu);
  conns.erase(conn);
}

void Server::Impl::SendError(Conn* conn, std::string_view code, std::string_view type,
                             std::string_view msg) {
  log::Warn("request failed", {{"error", code}, {"type", type}, {"message", msg}});
  std::string frame(protocol::kHeaderBytes, '\0');
  AppendErrorResponse(frame, code, type, msg);
  protocol::EncodeHeader(static_cast<uint32_t>(frame.size() - protocol::kHeaderBytes),
                         reinterpret_cast<unsigned char*>(frame.data()));
  WriteAll(conn->fd, frame.data(), frame.size());
}

bool Server::Impl::Respond(Conn* conn, std::string_view body, size_t index, std::string& resp) {
  resp.assign(protocol::kHeaderBytes, '\0');
  if (options.handler_timeout.count() > 0) {
    int64_t now = NowNs();
    started[index].store(now, std::memory_order_relaxed);
    deadlines[index].store(
        now + std::chrono::duration_cast<std::chrono::nanoseconds>(options.handler_timeout).count(),
        std::memory_order_release);
  }
  processor.Process(body, resp);
  deadlines[index].store(0, std::memory_order_release);
  protocol::EncodeHeader(static_cast<uint32_t>(resp.size() - protocol::kHeaderBytes),
                         reinterpret_cast<unsigned char*>(resp.data()));
  if (!WriteAll(conn->fd, resp.data(), resp.size())) {
    log::Warn("client went away before the response was sent", {{"error", Errno("send")}});
    return false;
  }
  if (resp.capacity() > (4u << 20)) {
    std::string().swap(resp);  // do not keep a huge buffer per worker
  }
  return true;
}

// Serves every complete frame of `conn`, then lingers on it or re-arms it (or closes it on
// EOF/error/shutdown).
void Server::Impl::ServeConn(Conn* conn, size_t index, std::string& resp) {
  const size_t max_bytes = options.max_message_bytes;
  RecvBuffer& in = conn->in;
  bool responded = false;  // a response went out since the last read
  while (true) {
    // 1. Complete frames already buffered.
    while (in.have >= protocol::kHeaderBytes) {
      const auto* header = reinterpret_cast<const unsigned char*>(in.data.get());
      auto len = protocol::DecodeHeader(header, max_bytes);
      if (!len) {
        uint32_t declared = (static_cast<uint32_t>(header[0]) << 24) |
                            (static_cast<uint32_t>(header[1]) << 16) |
                            (static_cast<uint32_t>(header[2]) << 8) | header[3];
        SendError(conn, kParsingError, "FrameTooLarge",
                  "request frame of " + std::to_string(declared) +
                      " bytes exceeds ASYA_MAX_MESSAGE_BYTES=" + std::to_string(max_bytes));
        Close(conn);
        return;
      }
      size_t total = protocol::kHeaderBytes + *len;
      if (in.have < total) {
        in.Reserve(total);
        break;
      }
      std::string_view body(in.data.get() + protocol::kHeaderBytes, *len);
      if (!Respond(conn, body, index, resp)) {
        Close(conn);
        return;
      }
      in.Consume(total);
      responded = true;
    }
    // 2. Read more. Right after a response the client has rarely sent anything yet, so wait
    // first instead of trying a read that would only return EAGAIN.
    if (responded && in.have == 0) {
      responded = false;
      if (stopping.load(std::memory_order_acquire)) {
        Close(conn);
        return;
      }
      if (Linger(conn) == Wait::kPark) {
        Arm(conn);
        return;
      }
    }
    if (in.cap - in.have < kReadChunk) {
      in.Reserve(in.have + kReadChunk);
    }
    ssize_t r = ::read(conn->fd, in.data.get() + in.have, in.cap - in.have);
    if (r > 0) {
      in.have += static_cast<size_t>(r);
      continue;
    }
    if (r == 0) {
      if (in.have > 0) {
        SendError(conn, kConnectionError, "ConnectionError",
                  "Connection closed in the middle of a request frame (" + std::to_string(in.have) +
                      " bytes received)");
      }
      Close(conn);
      return;
    }
    if (errno == EINTR) {
      continue;
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      if (stopping.load(std::memory_order_acquire)) {
        Close(conn);  // shutting down: idle, or a partial frame the client will retry
        return;
      }
      if (Linger(conn) == Wait::kReadable) {
        continue;
      }
      Arm(conn);
      return;
    }
    log::Warn("reading a request failed", {{"error", Errno("read")}});
    Close(conn);
    return;
  }
}

// Waits for `conn` to become readable while nothing else needs this worker. kReadable: read it
// now (data or EOF); kPark: the caller parks it in epoll (an idle worker exists, or other work is
// ready — a connection that is closing is still finished here, as that cannot starve anyone).
Server::Impl::Wait Server::Impl::Linger(Conn* conn) {
  if (idle_workers.load(std::memory_order_acquire) > 0) {
    return Wait::kPark;  // an idle worker will pick the connection up from epoll
  }
  pollfd fds[2] = {{conn->fd, POLLIN | POLLRDHUP, 0}, {epoll_fd, POLLIN, 0}};
  int r = ::poll(fds, 2, -1);
  if (r <= 0) {
    return Wait::kPark;  // EINTR or failure: let epoll_wait take over
  }
  if ((fds[0].revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0) {
    return Wait::kReadable;
  }
  return fds[1].revents == 0 && fds[0].revents != 0 ? Wait::kReadable : Wait::kPark;
}

void Server::Impl::AcceptOne(size_t index, std::string& resp) {
  int fd = ::accept4(listen_fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
  int accept_errno = errno;
  if (fd < 0) {
    if (accept_errno != EAGAIN && accept_errno != EWOULDBLOCK && accept_errno != EINTR) {
      log::Error("accept failed", {{"error", std::strerror(accept_errno)}});
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return;
  }
  auto owned = std::make_unique<Conn>();
  Conn* conn = owned.get();
  conn->fd = fd;
  {
    std::lock_guard<std::mutex> lock(conns_mu);
    conns.emplace(conn, std::move(owned));
  }
  ServeConn(conn, index, resp);
}

void Server::Impl::WorkerLoop(size_t index) {
  std::string resp;
  epoll_event events[16];
  while (true) {
    bool draining = stopping.load(std::memory_order_acquire);
    idle_workers.fetch_add(1, std::memory_order_acq_rel);
    int n = ::epoll_wait(epoll_fd, events, draining ? 16 : 1, draining ? 0 : -1);
    idle_workers.fetch_sub(1, std::memory_order_acq_rel);
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      log::Error("epoll_wait failed", {{"error", Errno("epoll_wait")}});
      return;
    }
    bool served = false;
    for (int i = 0; i < n; ++i) {
      void* tag = events[i].data.ptr;
      if (tag == &wake_tag) {
        continue;
      }
      if (tag == &listener_tag) {
        if (!stopping.load(std::memory_order_acquire)) {
          AcceptOne(index, resp);
        }
        continue;
      }
      served = true;
      ServeConn(static_cast<Conn*>(tag), index, resp);
    }
    if (draining && !served) {
      return;
    }
  }
}

void Server::Impl::WatchdogLoop() {
  const auto timeout = options.handler_timeout;
  auto interval =
      std::clamp(timeout / 20, std::chrono::milliseconds(5), std::chrono::milliseconds(100));
  std::unique_lock<std::mutex> lock(wd_mu);
  while (!stopping.load(std::memory_order_acquire)) {
    wd_cv.wait_for(lock, interval);
    int64_t now = NowNs();
    for (int i = 0; i < options.concurrency; ++i) {
      int64_t deadline = deadlines[static_cast<size_t>(i)].load(std::memory_order_acquire);
      if (deadline != 0 && now > deadline) {
        double ran = static_cast<double>(now - started[static_cast<size_t>(i)].load()) / 1e9;
        log::Error(
            "handler timeout: a handler ran past ASYA_RUNTIME_TIMEOUT; exiting with code 3 "
            "so the supervisor restarts the runtime (no response is sent)",
            {{"ran_seconds", ran},
             {"timeout", FormatGoDuration(timeout)},
             {"exit_code", kExitHandlerTimeout}});
        RemoveFiles();
        ::_exit(kExitHandlerTimeout);
      }
    }
  }
}

Server::Server(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Server::~Server() {
  Stop();
}

const std::string& Server::socket_path() const {
  return impl_->socket_path;
}
const std::string& Server::ready_path() const {
  return impl_->ready_path;
}

Result<std::unique_ptr<Server>> Server::Start(Handler handler, ServeOptions options) {
  if (options.concurrency < 1) {
    return MakeError(ErrorCode::kInvalidArgument, "concurrency must be at least 1");
  }
  if (options.max_message_bytes == 0) {
    return MakeError(ErrorCode::kInvalidArgument, "max_message_bytes must be positive");
  }
  options.max_message_bytes = std::min<size_t>(options.max_message_bytes, UINT32_MAX);
  if (options.mode && *options.mode != handler.mode()) {
    auto name = [](HandlerMode m) { return m == HandlerMode::kPayload ? "payload" : "envelope"; };
    return MakeError(ErrorCode::kInvalidArgument,
                     std::string("ASYA_HANDLER_MODE=") + name(*options.mode) +
                         " but the handler is a " + name(handler.mode()) + "-mode handler");
  }
  if ((handler.mode() == HandlerMode::kPayload && !handler.raw()) ||
      (handler.mode() == HandlerMode::kEnvelope && !handler.envelope())) {
    return MakeError(ErrorCode::kInvalidArgument, "handler is empty");
  }
  auto impl = std::make_unique<Impl>(std::move(handler), std::move(options));
  const auto& o = impl->options;
  std::string dir = o.socket_dir.empty() ? "." : o.socket_dir;
  if (dir.size() > 1 && dir.back() == '/') {
    dir.pop_back();
  }
  impl->socket_path = dir + "/" + o.socket_name;
  impl->ready_path = dir + "/" + runtime_files::kReadyName;
  auto bound = impl->Bind();
  if (!bound) {
    for (int fd : {impl->listen_fd, impl->epoll_fd, impl->wake_fd}) {
      if (fd >= 0) {
        ::close(fd);
      }
    }
    return Unexpected(bound.error());
  }
  auto n = static_cast<size_t>(o.concurrency);
  impl->deadlines = std::make_unique<std::atomic<int64_t>[]>(n);
  impl->started = std::make_unique<std::atomic<int64_t>[]>(n);
  Impl* raw = impl.get();
  for (size_t i = 0; i < n; ++i) {
    impl->workers.emplace_back([raw, i] { raw->WorkerLoop(i); });
  }
  if (o.handler_timeout.count() > 0) {
    impl->watchdog = std::thread([raw] { raw->WatchdogLoop(); });
  }
  log::Info(
      "runtime listening",
      {{"socket", impl->socket_path},
       {"mode", o.socket_mode ? OctalMode(*o.socket_mode) : std::string("unchanged")},
       {"handler_mode", impl->handler.mode() == HandlerMode::kPayload ? "payload" : "envelope"},
       {"validation", o.validate ? "true" : "false"},
       {"concurrency", o.concurrency},
       {"timeout", FormatGoDuration(o.handler_timeout)},
       {"max_message_bytes", static_cast<unsigned long>(o.max_message_bytes)}});
  if (!impl->WriteReadyFile()) {
    impl->ready_retry = std::thread([raw] { raw->RetryReadyFile(); });
  }
  return std::unique_ptr<Server>(new Server(std::move(impl)));
}

void Server::Stop() {
  Impl& s = *impl_;
  std::lock_guard<std::mutex> lock(s.stop_mu);
  if (s.stopped) {
    return;
  }
  s.stopped = true;
  log::Info("shutting down: no longer accepting connections; letting in-flight requests finish");
  s.stopping.store(true, std::memory_order_release);
  ::epoll_ctl(s.epoll_fd, EPOLL_CTL_DEL, s.listen_fd, nullptr);
  s.RemoveFiles();
  uint64_t one = 1;
  [[maybe_unused]] ssize_t w = ::write(s.wake_fd, &one, sizeof one);
  {
    std::lock_guard<std::mutex> wd_lock(s.wd_mu);
    s.wd_cv.notify_all();
  }
  for (auto& t : s.workers) {
    t.join();
  }
  if (s.watchdog.joinable()) {
    s.watchdog.join();
  }
  if (s.ready_retry.joinable()) {
    s.ready_retry.join();
    ::unlink(s.ready_path.c_str());  // in case it was written just before we stopped
  }
  {
    std::lock_guard<std::mutex> conns_lock(s.conns_mu);
    for (auto& [conn, owned] : s.conns) {
      ::close(conn->fd);
    }
    s.conns.clear();
  }
  ::close(s.listen_fd);
  ::close(s.epoll_fd);
  ::close(s.wake_fd);
  log::Info("shutdown complete");
}

}  // namespace asya::runtime
