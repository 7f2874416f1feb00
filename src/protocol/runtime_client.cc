// Socket I/O for the runtime protocol. The byte format lives in frame.cc; this file only moves
// bytes.
//
// Sockets are blocking, bounded by SO_SNDTIMEO/SO_RCVTIMEO: a blocked send or recv is woken
// straight by the kernel when the runtime answers, one system call where poll() + recv() take two
// (and poll's wait is the costlier one). The timeouts are set to the time left before the call's
// deadline, at most kTimeoutTick; they are only changed when they would overshoot the deadline or
// wake the caller needlessly often, so a kept connection normally makes no setsockopt call at all.
//
// CallAsync() connects and sends the same way on the caller's thread, then hands the socket to the
// client's event thread: one epoll_wait for the answers of every call in flight and a timerfd for
// their deadlines; reads use MSG_DONTWAIT, so the socket stays blocking and goes back to the same
// idle pool as Call()'s. Both readers follow one set of rules (ResponseReader).
#include "asya/protocol/runtime_client.h"

#include <algorithm>
#include <array>
#include <cerrno>
#include <climits>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#include "asya/base/log.h"
#include "asya/base/runtime_files.h"
#include "asya/protocol/frame.h"

namespace asya::protocol {
namespace {

using Clock = std::chrono::steady_clock;

constexpr size_t kMaxIdleConnections = 64;
constexpr int kClosedReuseLimit = 3;
constexpr size_t kInitialBodyChunk = 64u << 10;
constexpr size_t kFirstBodyRead = 4u << 10;  // body bytes read together with the length prefix
// Spare capacity of a large response buffer (never touched unless used): room for the sidecar to
// turn the runtime's payload into an output envelope inside the same buffer
// (envelope::SerializeIntoPayload) instead of copying it.
constexpr size_t kLargeFrameBytes = 64u << 10;
constexpr size_t kLargeFrameSpare = 64u << 10;
constexpr Clock::duration kTimeoutTick = std::chrono::seconds(1);  // longest single blocking wait

constexpr std::string_view kConnectPrefix = "failed to connect to runtime socket: ";
constexpr std::string_view kSendPrefix = "failed to send message to runtime: ";
constexpr std::string_view kReadPrefix = "failed to read response from runtime: ";

std::string ErrnoText(int err) {
  char buf[256];
  // GNU strerror_r returns the message (possibly not in buf); thread-safe unlike strerror.
  return strerror_r(err, buf, sizeof(buf));
}

tl::unexpected<Error> Fail(ErrorCode code, std::string_view prefix, std::string_view what) {
  std::string msg(prefix);
  msg += what;
  return MakeError(code, std::move(msg));
}

// A blocking socket and the send/receive timeouts currently set on it (zero: none yet).
class Socket {
 public:
  Socket() = default;
  explicit Socket(int fd) : fd_(fd) {}
  Socket(Socket&& other) noexcept : fd_(std::exchange(other.fd_, -1)), timeouts_(other.timeouts_) {}
  Socket& operator=(Socket&& other) noexcept {
    std::swap(fd_, other.fd_);
    std::swap(timeouts_, other.timeouts_);
    return *this;
  }
  Socket(const Socket&) = delete;
  Socket& operator=(const Socket&) = delete;
  ~Socket() {
    if (fd_ >= 0) {
      ::close(fd_);
    }
  }
  [[nodiscard]] int Get() const { return fd_; }

  // Bounds the next blocking send (SO_SNDTIMEO, also used by connect) or receive (SO_RCVTIMEO) by
  // `deadline`. False when the deadline has passed.
  bool Bound(int option, Clock::time_point deadline) {
    auto left = deadline - Clock::now();
    if (left <= Clock::duration::zero()) {
      return false;
    }
    Clock::duration& current = timeouts_[option == SO_SNDTIMEO ? 0 : 1];
    Clock::duration want = std::min(left, kTimeoutTick);
    if (current != Clock::duration::zero() && current <= left && current * 4 >= want) {
      return true;  // cannot overshoot the deadline, and wakes the caller rarely enough
    }
    auto us = std::max<int64_t>(1, std::chrono::ceil<std::chrono::microseconds>(want).count());
    timeval tv{static_cast<time_t>(us / 1'000'000), static_cast<suseconds_t>(us % 1'000'000)};
    if (::setsockopt(fd_, SOL_SOCKET, option, &tv, sizeof tv) != 0) {
      return true;  // keep the previous bound; the deadline is checked again on every wake-up
    }
    current = want;
    return true;
  }

 private:
  int fd_ = -1;
  std::array<Clock::duration, 2> timeouts_{};  // send, receive
};

bool TimedOut(int err) {
  return err == EAGAIN || err == EWOULDBLOCK || err == EINPROGRESS;
}

Result<Socket> Connect(const std::string& path, Clock::time_point deadline) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof(addr.sun_path)) {
    return Fail(ErrorCode::kInvalidArgument, kConnectPrefix,
                "socket path must be 1.." + std::to_string(sizeof(addr.sun_path) - 1) +
                    " bytes long (got " + std::to_string(path.size()) + ")");
  }
  std::memcpy(addr.sun_path, path.data(), path.size());
  Socket sock(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (sock.Get() < 0) {
    return Fail(ErrorCode::kUnavailable, kConnectPrefix, ErrnoText(errno));
  }
  while (true) {
    // AF_UNIX connect blocks only while the listen backlog is full, for at most SO_SNDTIMEO.
    if (!sock.Bound(SO_SNDTIMEO, deadline)) {
      return Fail(ErrorCode::kDeadlineExceeded, kConnectPrefix,
                  "deadline exceeded (listen backlog full)");
    }
    if (::connect(sock.Get(), reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) == 0) {
      return sock;
    }
    int err = errno;
    if (err == EISCONN) {
      return sock;  // a connect interrupted by a signal completed meanwhile
    }
    if (err == EINTR || TimedOut(err)) {
      continue;
    }
    return Fail(ErrorCode::kUnavailable, kConnectPrefix, ErrnoText(err));
  }
}

bool IsPeerGone(int err) {
  return err == EPIPE || err == ECONNRESET;
}

// Writes header + body with sendmsg (one syscall when the socket buffer has room).
Status SendFrame(Socket& sock, std::string_view body, Clock::time_point deadline, bool& peer_gone) {
  unsigned char header[kHeaderBytes];
  EncodeHeader(static_cast<uint32_t>(body.size()), header);
  iovec iov[2] = {{header, kHeaderBytes}, {const_cast<char*>(body.data()), body.size()}};
  int first = 0;
  int count = body.empty() ? 1 : 2;
  while (first < count) {
    if (!sock.Bound(SO_SNDTIMEO, deadline)) {
      return Fail(ErrorCode::kDeadlineExceeded, kSendPrefix, "deadline exceeded");
    }
    msghdr msg{};
    msg.msg_iov = iov + first;
    msg.msg_iovlen = static_cast<size_t>(count - first);
    ssize_t n = ::sendmsg(sock.Get(), &msg, MSG_NOSIGNAL);
    if (n < 0) {
      int err = errno;
      if (err == EINTR || TimedOut(err)) {
        continue;
      }
      peer_gone = IsPeerGone(err);
      return Fail(ErrorCode::kUnavailable, kSendPrefix, ErrnoText(err));
    }
    auto left = static_cast<size_t>(n);
    while (first < count && left >= iov[first].iov_len) {
      left -= iov[first].iov_len;
      ++first;
    }
    if (first < count) {
      iov[first].iov_base = static_cast<char*>(iov[first].iov_base) + left;
      iov[first].iov_len -= left;
    }
  }
  return Ok();
}

tl::unexpected<Error> ReadDeadlineExceeded(std::string_view what) {
  return Fail(ErrorCode::kDeadlineExceeded, kReadPrefix,
              std::string("deadline exceeded while reading ") + std::string(what));
}

// One response frame, assembled from the bytes of successive receives: the rules of reading a
// response, shared by the blocking reader (ReadFrame) and the event thread of CallAsync.
//
// The length prefix and the first kFirstBodyRead body bytes are received together; the declared
// length is checked against the limit as soon as the prefix is complete; then the body is
// received into one allocation of the declared size, filled as the data arrives: its pages are
// only touched (resident) as far as data was received, so a peer that declares a large frame and
// sends little costs little. (Growing by steps instead held the old and the new buffer at once at
// every step: 5 + 10 MiB for a 10 MiB frame, next to the request still held by the caller.)
// Space() never reaches past the declared frame once its length is known, so bytes beyond one
// frame can only arrive with the prefix (ExtraBytes()).
class ResponseReader {
 public:
  explicit ResponseReader(size_t max_bytes) : max_bytes_(max_bytes), body_(kFirstBodyRead, '\0') {}

  // Where the next receive puts its bytes: fills `iov`, returns how many entries are used.
  size_t Space(iovec (&iov)[2]) {
    if (!HeaderDone()) {
      iov[0] = {header_ + header_got_, kHeaderBytes - header_got_};
      iov[1] = {body_.data(), body_.size()};
      return 2;
    }
    if (have_ == body_.size()) {
      body_.resize(std::min(want_, std::max(kInitialBodyChunk, have_ * 2)));
    }
    iov[0] = {body_.data() + have_, body_.size() - have_};
    return 1;
  }

  // Accounts for `n` > 0 bytes received into Space(). Errors (kResourceExhausted) when the length
  // prefix, once complete, declares more than the limit.
  Status Received(size_t n) {
    if (HeaderDone()) {
      have_ += n;
      return Ok();
    }
    const size_t to_header = std::min(n, kHeaderBytes - header_got_);
    header_got_ += to_header;
    if (!HeaderDone()) {
      return Ok();
    }
    auto size = DecodeHeader(header_, max_bytes_);
    if (!size) {
      return Fail(ErrorCode::kResourceExhausted, kReadPrefix, size.error().message);
    }
    want_ = *size;
    have_ = std::min(n - to_header, want_);
    extra_bytes_ = n - to_header > want_;
    if (want_ > body_.capacity()) {
      std::string whole;
      whole.reserve(want_ >= kLargeFrameBytes ? want_ + kLargeFrameSpare : want_);
      whole.append(body_.data(), have_);
      body_.swap(whole);
    } else {
      body_.resize(want_);
    }
    return Ok();
  }

  [[nodiscard]] bool HeaderDone() const { return header_got_ == kHeaderBytes; }
  [[nodiscard]] bool Done() const { return HeaderDone() && have_ == want_; }
  // More than one frame's bytes arrived: the connection must not be reused.
  [[nodiscard]] bool ExtraBytes() const { return extra_bytes_; }
  // What the reader waits for, for a deadline message.
  [[nodiscard]] std::string_view Waiting() const {
    return HeaderDone() ? "the response body" : "the length prefix";
  }
  // The connection was reset before the first response byte: on AF_UNIX a reset means the peer
  // closed with our request still unread in its queue, so re-sending it cannot run it twice. (A
  // plain EOF means the peer read the request and then went away, e.g. the runtime crashed in the
  // handler: that is not retried.)
  [[nodiscard]] bool UnreadByPeer(int err) const { return header_got_ == 0 && err == ECONNRESET; }
  // The error for a receive that ended the connection before the frame was complete: EOF when
  // `err` is 0, else the socket error `err`.
  [[nodiscard]] tl::unexpected<Error> Ended(int err) const {
    std::string what;
    if (!HeaderDone()) {
      what = "failed to read length prefix: ";
      if (err != 0) {
        what += ErrnoText(err);
      } else if (header_got_ == 0) {
        what += "EOF";
      } else {
        what += "EOF after " + std::to_string(header_got_) + " of 4 bytes";
      }
    } else {
      what = err != 0 ? ErrnoText(err) + " after " : "EOF after ";
      what += std::to_string(have_) + " of " + std::to_string(want_) + " bytes";
    }
    return Fail(ErrorCode::kUnavailable, kReadPrefix, what);
  }
  // The response body (once Done()).
  std::string Take() && { return std::move(body_); }

 private:
  size_t max_bytes_;
  unsigned char header_[kHeaderBytes] = {};
  size_t header_got_ = 0;
  std::string body_;  // body bytes [0, have_) received; sized for the next receive
  size_t want_ = 0;   // declared body length, once HeaderDone()
  size_t have_ = 0;
  bool extra_bytes_ = false;
};

// One recvmsg into the reader's Space() (`flags`: 0 or MSG_DONTWAIT).
ssize_t ReceiveInto(const Socket& sock, ResponseReader& reader, int flags) {
  iovec iov[2];
  msghdr msg{};
  msg.msg_iov = iov;
  msg.msg_iovlen = reader.Space(iov);
  return ::recvmsg(sock.Get(), &msg, flags);
}

// Reads one response frame (blocking, bounded by the deadline). `unread_by_peer` is set as
// ResponseReader::UnreadByPeer; `extra_bytes` as ResponseReader::ExtraBytes. `header_done` (may
// be empty) runs once the length prefix is complete.
Result<std::string> ReadFrame(Socket& sock, size_t max_bytes, Clock::time_point deadline,
                              bool& unread_by_peer, bool& extra_bytes,
                              const std::function<void()>& header_done) {
  ResponseReader reader(max_bytes);
  while (!reader.Done()) {
    if (!sock.Bound(SO_RCVTIMEO, deadline)) {
      return ReadDeadlineExceeded(reader.Waiting());
    }
    const ssize_t n = ReceiveInto(sock, reader, 0);
    if (n < 0 && (errno == EINTR || TimedOut(errno))) {
      continue;
    }
    if (n <= 0) {
      int err = n < 0 ? errno : 0;
      unread_by_peer = reader.UnreadByPeer(err);
      return reader.Ended(err);
    }
    const bool had_header = reader.HeaderDone();
    auto received = reader.Received(static_cast<size_t>(n));
    if (!had_header && reader.HeaderDone() && header_done) {
      header_done();
    }
    if (!received) {
      return Unexpected(std::move(received).error());
    }
  }
  extra_bytes = reader.ExtraBytes();
  return std::move(reader).Take();
}

// The checks every call makes before it touches a connection.
Status CheckRequest(const RuntimeClientOptions& options, std::string_view request,
                    Clock::time_point deadline) {
  if (request.size() > options.max_frame_bytes || request.size() > UINT32_MAX) {
    return Fail(ErrorCode::kResourceExhausted, kSendPrefix,
                "message of " + std::to_string(request.size()) + " bytes exceeds the limit of " +
                    std::to_string(options.max_frame_bytes) + " bytes (ASYA_MAX_MESSAGE_BYTES)");
  }
  if (Clock::now() >= deadline) {
    return MakeError(ErrorCode::kDeadlineExceeded, "deadline passed before the runtime was called");
  }
  return Ok();
}

// A CallAsync() whose request was sent: the event thread reads its response.
struct AsyncCall {
  AsyncCall(std::string_view r, Clock::time_point d, RuntimeCaller::CallDone cb, Socket s,
            bool from_pool, size_t max_frame_bytes)
      : request(r),
        deadline(d),
        done(std::move(cb)),
        sock(std::move(s)),
        reused(from_pool),
        reader(max_frame_bytes) {}

  std::string_view request;  // kept valid by the caller until `done` ran (for the retry)
  Clock::time_point deadline;
  RuntimeCaller::CallDone done;
  Socket sock;
  bool reused;  // `sock` came from the pool: a reset before any response byte is retried once
  ResponseReader reader;
  std::multimap<Clock::time_point, AsyncCall*>::iterator at;  // its entry in Impl::pending
};

}  // namespace

struct RuntimeClient::Impl {
  explicit Impl(RuntimeClientOptions o) : options(std::move(o)), reuse(options.reuse_connections) {}

  ~Impl() {
    StopLoop();
    Reset();
  }

  // An idle pooled connection, if any. It is not probed here: one the runtime has closed fails
  // the send (EPIPE) or is reset with the request unread, and Call() then retries on a new one.
  // Stray bytes cannot be waiting on it: a connection that returned more than one frame is not
  // pooled.
  std::optional<Socket> TakeIdle() {
    std::lock_guard<std::mutex> lock(mu);
    if (idle.empty()) {
      return std::nullopt;
    }
    Socket sock = std::move(idle.back());
    idle.pop_back();
    return sock;
  }

  // Keeps `sock` for a later call when connections are reused (else closes it).
  void Release(Socket sock) {
    std::lock_guard<std::mutex> lock(mu);
    if (reuse && idle.size() < kMaxIdleConnections) {
      idle.push_back(std::move(sock));
    }
  }

  // After a complete response: pools `sock` unless it delivered bytes beyond the frame.
  void Keep(Socket sock, bool extra_bytes) {
    if (extra_bytes) {
      log::Warn("runtime sent more bytes than one response frame; closing the connection",
                {{"socket", options.socket_path}});
      return;
    }
    Release(std::move(sock));
  }

  // A reused connection was closed by the runtime before it answered.
  void NoteClosedReuse() {
    std::vector<Socket> to_close;
    bool log_now = false;
    {
      std::lock_guard<std::mutex> lock(mu);
      if (++closed_reuses >= kClosedReuseLimit && reuse) {
        reuse = false;
        log_now = true;
        to_close.swap(idle);
      }
    }
    if (log_now) {
      log::Info("runtime closes connections after each response; using one connection per message",
                {{"socket", options.socket_path}});
    }
  }

  void Reset() {
    std::vector<Socket> to_close;
    std::lock_guard<std::mutex> lock(mu);
    to_close.swap(idle);
  }

  // Takes an idle connection (when `may_reuse`) or connects, and sends `request` on it. A pooled
  // connection the runtime had closed (EPIPE/ECONNRESET) is replaced once by a fresh one.
  // `reused` tells whether the connection returned came from the pool.
  Result<Socket> Send(std::string_view request, Clock::time_point deadline, bool may_reuse,
                      bool& reused) {
    std::optional<Socket> pooled = may_reuse ? TakeIdle() : std::nullopt;
    while (true) {
      reused = pooled.has_value();
      Socket sock;
      if (reused) {
        sock = std::move(*pooled);
        pooled.reset();
      } else {
        ASYA_ASSIGN_OR_RETURN(sock, Connect(options.socket_path, deadline));
      }
      bool peer_gone = false;
      auto sent = SendFrame(sock, request, deadline, peer_gone);
      if (sent) {
        return sock;
      }
      if (!reused || !peer_gone) {
        return Unexpected(std::move(sent).error());
      }
      NoteClosedReuse();
    }
  }

  // ---- CallAsync(): one event thread reads the responses of all calls in flight.
  //
  // A caller registers its sent call (epoll + `pending`) under async_mu; the event thread takes
  // async_mu after every epoll_wait before it touches a call, so it sees the call complete. From
  // then on only the event thread touches the call, and it alone removes calls (while running)
  // and so frees them.
  //
  // Deadlines: a timerfd in the same epoll set is armed at (or before) the earliest pending
  // deadline. A caller whose deadline is earlier than the armed time re-arms it itself, so the
  // event thread is not woken for it; when the timer fires the event thread ends the calls past
  // their deadline and re-arms it for the earliest one left (no timer while nothing is pending).
  // The timer is not moved later when the earliest call ends early: it then fires once for
  // nothing and is re-armed.

  // Starts the event thread unless it runs.
  Status StartLoop() {
    std::lock_guard<std::mutex> lock(async_mu);
    if (loop.joinable()) {
      return Ok();
    }
    epoll_fd = ::epoll_create1(EPOLL_CLOEXEC);
    wake_fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    timer_fd = ::timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);  // steady_clock's
    int err = errno;
    bool ok = epoll_fd >= 0 && wake_fd >= 0 && timer_fd >= 0;
    for (int* fd : {&wake_fd, &timer_fd}) {  // calls have their AsyncCall in data.ptr
      epoll_event ev{};
      ev.events = EPOLLIN;
      ev.data.ptr = fd;
      if (ok && ::epoll_ctl(epoll_fd, EPOLL_CTL_ADD, *fd, &ev) != 0) {
        err = errno;
        ok = false;
      }
    }
    if (!ok) {
      CloseLoopFds();
      return Fail(ErrorCode::kInternal,
                  "failed to start the runtime client's event thread: ", ErrnoText(err));
    }
    loop = std::thread([this] { Loop(); });
    return Ok();
  }

  // Stops and joins the event thread; calls still pending are dropped without running `done`.
  void StopLoop() {
    {
      std::lock_guard<std::mutex> lock(async_mu);
      if (!loop.joinable()) {
        return;
      }
      stopping = true;
    }
    Wake();
    loop.join();
    for (auto& [deadline, call] : pending) {
      delete call;  // closes its connection
    }
    pending.clear();
    CloseLoopFds();
  }

  void CloseLoopFds() {
    for (int* fd : {&epoll_fd, &wake_fd, &timer_fd}) {
      if (*fd >= 0) {
        ::close(*fd);
      }
      *fd = -1;
    }
  }

  // Wakes the event thread (to stop).
  void Wake() const {
    const uint64_t one = 1;
    (void)!::write(wake_fd, &one, sizeof one);
  }

  // Adds the call's socket to epoll; false with errno set on failure.
  bool Register(AsyncCall* call) const {
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLRDHUP;
    ev.data.ptr = call;
    return ::epoll_ctl(epoll_fd, EPOLL_CTL_ADD, call->sock.Get(), &ev) == 0;
  }

  // Removes the call's socket from epoll (before it is closed or pooled).
  void Unregister(const AsyncCall& call) const {
    if (call.sock.Get() >= 0) {
      ::epoll_ctl(epoll_fd, EPOLL_CTL_DEL, call.sock.Get(), nullptr);
    }
  }

  // Makes the timer fire by `deadline` (unless it is armed earlier already). Under async_mu.
  void ArmLocked(Clock::time_point deadline) {
    if (deadline >= armed) {
      return;
    }
    const int64_t ns =
        std::max<int64_t>(1, std::chrono::nanoseconds(deadline.time_since_epoch()).count());
    itimerspec at{};
    at.it_value.tv_sec = static_cast<time_t>(ns / 1'000'000'000);
    at.it_value.tv_nsec = static_cast<long>(ns % 1'000'000'000);
    if (::timerfd_settime(timer_fd, TFD_TIMER_ABSTIME, &at, nullptr) == 0) {
      armed = deadline;
    }
  }

  // Hands a sent call to the event thread.
  void Watch(std::unique_ptr<AsyncCall> call) {
    int err = 0;
    {
      std::lock_guard<std::mutex> lock(async_mu);
      if (Register(call.get())) {
        call->at = pending.emplace(call->deadline, call.get());
        ArmLocked(call->deadline);
        call.release();  // owned by `pending`
      } else {
        err = errno;
      }
    }
    if (call) {
      call->done(Fail(ErrorCode::kUnavailable, kReadPrefix, ErrnoText(err)));
    }
  }

  void Loop() {
    constexpr int kMaxEvents = 64;
    epoll_event events[kMaxEvents];
    while (true) {
      const int n = ::epoll_wait(epoll_fd, events, kMaxEvents, -1);
      {
        std::lock_guard<std::mutex> lock(async_mu);
        if (stopping) {
          return;
        }
      }
      bool timer_fired = false;
      for (int i = 0; i < n; ++i) {
        void* ptr = events[i].data.ptr;
        if (ptr == &wake_fd || ptr == &timer_fd) {
          uint64_t count = 0;
          (void)!::read(*static_cast<int*>(ptr), &count, sizeof count);
          timer_fired = timer_fired || ptr == &timer_fd;
        } else {
          Serve(static_cast<AsyncCall*>(ptr));
        }
      }
      Expire(timer_fired);
    }
  }

  // Reads what has arrived for `call` without blocking (MSG_DONTWAIT: the socket itself stays
  // blocking for the sync path's pool) and ends the call once its response is complete or failed.
  void Serve(AsyncCall* call) {
    ResponseReader& reader = call->reader;
    while (true) {
      const ssize_t n = ReceiveInto(call->sock, reader, MSG_DONTWAIT);
      if (n < 0 && errno == EINTR) {
        continue;
      }
      if (n < 0 && TimedOut(errno)) {
        return;  // the rest comes later
      }
      if (n <= 0) {
        const int err = n < 0 ? errno : 0;
        if (call->reused && reader.UnreadByPeer(err)) {
          NoteClosedReuse();
          Retry(call);
        } else {
          auto ended = reader.Ended(err);
          Finish(Unlink(call), std::move(ended));
        }
        return;
      }
      auto received = reader.Received(static_cast<size_t>(n));
      if (!received) {
        Finish(Unlink(call), Unexpected(std::move(received).error()));
        return;
      }
      if (reader.Done()) {
        auto owned = Unlink(call);
        auto body = std::move(reader).Take();
        Finish(std::move(owned), std::move(body));
        return;
      }
    }
  }

  // Sends the call's request again on a fresh connection (its pooled one was closed by the
  // runtime with the request unread), as CallOnce does.
  void Retry(AsyncCall* call) {
    Unregister(*call);
    call->sock = Socket();  // closes the old connection
    bool reused = false;
    auto sock = Send(call->request, call->deadline, /*may_reuse=*/false, reused);
    if (!sock) {
      Finish(Unlink(call), Unexpected(std::move(sock).error()));
      return;
    }
    call->sock = std::move(*sock);
    call->reused = false;
    call->reader = ResponseReader(options.max_frame_bytes);
    if (!Register(call)) {
      const int err = errno;
      Finish(Unlink(call), Fail(ErrorCode::kUnavailable, kReadPrefix, ErrnoText(err)));
    }
  }

  // Ends the calls whose deadline has passed, and re-arms the timer after it fired.
  void Expire(bool timer_fired) {
    std::vector<std::unique_ptr<AsyncCall>> expired;
    {
      std::lock_guard<std::mutex> lock(async_mu);
      if (timer_fired) {
        armed = Clock::time_point::max();  // a fired timer is disarmed
      }
      const auto now = Clock::now();
      while (!pending.empty() && pending.begin()->first <= now) {
        expired.emplace_back(pending.begin()->second);
        pending.erase(pending.begin());
      }
      if (!pending.empty()) {
        ArmLocked(pending.begin()->first);
      }
    }
    for (auto& call : expired) {
      Unregister(*call);
      auto exceeded = ReadDeadlineExceeded(call->reader.Waiting());
      Finish(std::move(call), std::move(exceeded));
    }
  }

  // Takes `call` out of `pending` and epoll; the caller now owns it.
  std::unique_ptr<AsyncCall> Unlink(AsyncCall* call) {
    {
      std::lock_guard<std::mutex> lock(async_mu);
      pending.erase(call->at);
    }
    Unregister(*call);
    return std::unique_ptr<AsyncCall>(call);
  }

  // Ends an unlinked call: pools its connection after a response, closes it after an error, then
  // runs `done` (no lock held: it may call CallAsync() or Reset()).
  void Finish(std::unique_ptr<AsyncCall> call, Result<std::string> result) {
    if (result) {
      Keep(std::move(call->sock), call->reader.ExtraBytes());
    }
    RuntimeCaller::CallDone done = std::move(call->done);
    call.reset();
    done(std::move(result));
  }

  const RuntimeClientOptions options;
  std::mutex mu;
  std::vector<Socket> idle;  // guarded by mu
  bool reuse;                // guarded by mu
  int closed_reuses = 0;     // guarded by mu

  // CallAsync's event thread. async_mu is never held together with mu.
  std::mutex async_mu;
  std::thread loop;   // guarded by async_mu (started once)
  int epoll_fd = -1;  // set with `loop`
  int wake_fd = -1;   // eventfd (to stop), set with `loop`
  int timer_fd = -1;  // timerfd for deadlines, set with `loop`
  // Calls in flight by deadline; owned here. Guarded by async_mu.
  std::multimap<Clock::time_point, AsyncCall*> pending;
  // When the timer fires (max(): not armed). Guarded by async_mu.
  Clock::time_point armed = Clock::time_point::max();
  bool stopping = false;  // guarded by async_mu
};

RuntimeClient::RuntimeClient(RuntimeClientOptions options)
    : impl_(std::make_unique<Impl>(std::move(options))) {}

RuntimeClient::~RuntimeClient() = default;

void RuntimeClient::Reset() {
  impl_->Reset();
}

bool RuntimeClient::Ready(std::chrono::milliseconds connect_timeout) {
  return RuntimeReady(impl_->options.socket_path, connect_timeout);
}

std::string RuntimeClient::DeathNote(std::chrono::milliseconds wait) {
  return RuntimeDeathNote(impl_->options.socket_path, wait);
}

Result<std::string> RuntimeClient::Call(std::string_view request, Clock::time_point deadline) {
  return CallReleasing(request, deadline, {});
}

Result<std::string> RuntimeClient::CallReleasing(std::string_view request,
                                                 Clock::time_point deadline,
                                                 const std::function<void()>& request_done) {
  bool released = false;
  const std::function<void()> release = [&] {
    if (!released && request_done) {
      released = true;
      request_done();
    }
  };
  return CallOnce(request, deadline, release);
}

Result<std::string> RuntimeClient::CallOnce(std::string_view request, Clock::time_point deadline,
                                            const std::function<void()>& release) {
  ASYA_RETURN_IF_ERROR(CheckRequest(impl_->options, request, deadline));
  // At most two attempts: a reused connection the runtime had closed is replaced once.
  for (int attempt = 0; attempt < 2; ++attempt) {
    bool reused = false;
    ASYA_ASSIGN_OR_RETURN(Socket sock, impl_->Send(request, deadline, attempt == 0, reused));
    bool unread_by_peer = false;
    bool extra_bytes = false;
    auto response = ReadFrame(sock, impl_->options.max_frame_bytes, deadline, unread_by_peer,
                              extra_bytes, release);
    if (!response) {
      if (reused && unread_by_peer) {
        impl_->NoteClosedReuse();
        continue;
      }
      return response;
    }
    impl_->Keep(std::move(sock), extra_bytes);
    return response;
  }
  // Unreachable: the second attempt always uses a fresh connection and returns.
  return Fail(ErrorCode::kInternal, kReadPrefix, "retry loop ended");
}

void RuntimeClient::CallAsync(std::string_view request, Clock::time_point deadline, CallDone done) {
  bool reused = false;
  auto sock = [&]() -> Result<Socket> {
    ASYA_RETURN_IF_ERROR(CheckRequest(impl_->options, request, deadline));
    ASYA_RETURN_IF_ERROR(impl_->StartLoop());
    return impl_->Send(request, deadline, /*may_reuse=*/true, reused);
  }();
  if (!sock) {
    done(Unexpected(std::move(sock).error()));
    return;
  }
  impl_->Watch(std::make_unique<AsyncCall>(request, deadline, std::move(done), std::move(*sock),
                                           reused, impl_->options.max_frame_bytes));
}

namespace {

std::string SocketDirOf(const std::string& path) {
  std::string dir = ".";
  if (auto slash = path.rfind('/'); slash != std::string::npos) {
    dir = slash == 0 ? "/" : path.substr(0, slash);
  }
  return dir;
}

}  // namespace

std::string RuntimeDeathNote(std::string_view socket_path, std::chrono::milliseconds wait) {
  const std::string path(socket_path);
  const std::string exit_file = SocketDirOf(path) + "/" + runtime_files::kExitName;
  const auto until = Clock::now() + wait;
  bool gone = false;
  int accepted = 0;
  while (true) {
    std::ifstream in(exit_file);
    std::string how;
    if (in && std::getline(in, how) && !how.empty()) {
      return "the runtime process died (" + how + ")";
    }
    if (!gone) {
      // A runtime that only closed this connection still accepts new ones; a dead one does not
      // (its listening socket closes with it, a moment after the connection we read EOF from:
      // so only several accepted connects in a row mean it is alive).
      gone = !Connect(path, Clock::now() + std::chrono::milliseconds(100)).has_value();
      if (!gone && ++accepted >= 5) {
        return "";
      }
    }
    if (Clock::now() >= until) {
      return gone ? "the runtime process died" : "";
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

bool RuntimeReady(std::string_view socket_path, std::chrono::milliseconds connect_timeout) {
  std::string path(socket_path);
  const std::string dir = SocketDirOf(path);
  struct stat st {};
  if (::stat((dir + "/" + runtime_files::kReadyName).c_str(), &st) != 0) {
    return false;
  }
  if (::stat(path.c_str(), &st) != 0 || !S_ISSOCK(st.st_mode)) {
    return false;
  }
  return Connect(path, Clock::now() + connect_timeout).has_value();
}

}  // namespace asya::protocol
