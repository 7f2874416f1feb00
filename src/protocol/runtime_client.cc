// Socket I/O for the runtime protocol. The byte format lives in frame.cc; this file only moves
// bytes with non-blocking sockets and poll(), so no call blocks past its deadline.
#include "asya/protocol/runtime_client.h"

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#include "asya/base/log.h"
#include "asya/protocol/frame.h"

namespace asya::protocol {
namespace {

using Clock = std::chrono::steady_clock;

constexpr size_t kMaxIdleConnections = 64;
constexpr int kClosedReuseLimit = 3;
constexpr size_t kInitialBodyChunk = 64u << 10;

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

// Milliseconds until `deadline`, rounded up, clamped to [0, INT_MAX].
int RemainingMs(Clock::time_point deadline) {
  auto left = deadline - Clock::now();
  if (left <= Clock::duration::zero()) {
    return 0;
  }
  auto ms = std::chrono::ceil<std::chrono::milliseconds>(left).count();
  return static_cast<int>(std::min<int64_t>(ms, INT_MAX));
}

class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() {
    if (fd_ >= 0) {
      ::close(fd_);
    }
  }
  [[nodiscard]] int Get() const { return fd_; }
  int Release() { return std::exchange(fd_, -1); }

 private:
  int fd_ = -1;
};

// Waits until `fd` has `events`; false on timeout. Errors/hangups count as ready (the following
// read or write reports them).
bool WaitFor(int fd, short events, Clock::time_point deadline) {
  while (true) {
    int timeout = RemainingMs(deadline);
    pollfd p{fd, events, 0};
    int rc = ::poll(&p, 1, timeout);
    if (rc > 0) {
      return true;
    }
    if (rc == 0) {
      if (Clock::now() >= deadline) {
        return false;
      }
      continue;  // woke up early because of rounding
    }
    if (errno != EINTR) {
      return true;
    }
  }
}

Result<int> Connect(const std::string& path, Clock::time_point deadline) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof(addr.sun_path)) {
    return Fail(ErrorCode::kInvalidArgument, kConnectPrefix,
                "socket path must be 1.." + std::to_string(sizeof(addr.sun_path) - 1) +
                    " bytes long (got " + std::to_string(path.size()) + ")");
  }
  std::memcpy(addr.sun_path, path.data(), path.size());
  Fd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (fd.Get() < 0) {
    return Fail(ErrorCode::kUnavailable, kConnectPrefix, ErrnoText(errno));
  }
  auto backoff = std::chrono::microseconds(500);
  while (true) {
    if (::connect(fd.Get(), reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) == 0) {
      return fd.Release();
    }
    int err = errno;
    if (err == EINTR) {
      continue;
    }
    if (err == EINPROGRESS) {
      if (!WaitFor(fd.Get(), POLLOUT, deadline)) {
        return Fail(ErrorCode::kDeadlineExceeded, kConnectPrefix, "deadline exceeded");
      }
      int so_error = 0;
      socklen_t len = sizeof(so_error);
      ::getsockopt(fd.Get(), SOL_SOCKET, SO_ERROR, &so_error, &len);
      if (so_error == 0) {
        return fd.Release();
      }
      return Fail(ErrorCode::kUnavailable, kConnectPrefix, ErrnoText(so_error));
    }
    if (err == EAGAIN) {
      // AF_UNIX: the listen backlog is full; there is nothing to poll for, so back off.
      auto now = Clock::now();
      if (now >= deadline) {
        return Fail(ErrorCode::kDeadlineExceeded, kConnectPrefix,
                    "deadline exceeded (listen backlog full)");
      }
      std::this_thread::sleep_for(std::min<Clock::duration>(backoff, deadline - now));
      backoff = std::min(backoff * 2, std::chrono::microseconds(50000));
      continue;
    }
    return Fail(ErrorCode::kUnavailable, kConnectPrefix, ErrnoText(err));
  }
}

bool IsPeerGone(int err) {
  return err == EPIPE || err == ECONNRESET;
}

// Writes header + body with sendmsg (one syscall when the socket buffer has room).
Status SendFrame(int fd, std::string_view body, Clock::time_point deadline, bool& peer_gone) {
  unsigned char header[kHeaderBytes];
  EncodeHeader(static_cast<uint32_t>(body.size()), header);
  iovec iov[2] = {{header, kHeaderBytes}, {const_cast<char*>(body.data()), body.size()}};
  int first = 0;
  int count = body.empty() ? 1 : 2;
  while (first < count) {
    msghdr msg{};
    msg.msg_iov = iov + first;
    msg.msg_iovlen = static_cast<size_t>(count - first);
    ssize_t n = ::sendmsg(fd, &msg, MSG_NOSIGNAL);
    if (n < 0) {
      int err = errno;
      if (err == EINTR) {
        continue;
      }
      if (err == EAGAIN || err == EWOULDBLOCK) {
        if (!WaitFor(fd, POLLOUT, deadline)) {
          return Fail(ErrorCode::kDeadlineExceeded, kSendPrefix, "deadline exceeded");
        }
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

// Reads into buf[0..want). Returns bytes read before EOF (== want on success).
Result<size_t> ReadFull(int fd, char* buf, size_t want, Clock::time_point deadline,
                        std::string_view what, int& read_errno) {
  size_t got = 0;
  while (got < want) {
    ssize_t n = ::recv(fd, buf + got, want - got, 0);
    if (n > 0) {
      got += static_cast<size_t>(n);
      continue;
    }
    if (n == 0) {
      return got;  // EOF
    }
    int err = errno;
    if (err == EINTR) {
      continue;
    }
    if (err == EAGAIN || err == EWOULDBLOCK) {
      if (!WaitFor(fd, POLLIN, deadline)) {
        return Fail(ErrorCode::kDeadlineExceeded, kReadPrefix,
                    std::string("deadline exceeded while reading ") + std::string(what));
      }
      continue;
    }
    read_errno = err;
    return got;
  }
  return got;
}

// Reads one response frame. `unread_by_peer` is set when the connection was reset before the
// first response byte: on AF_UNIX a reset means the peer closed with our request still unread in
// its queue, so re-sending it cannot run it twice. (A plain EOF means the peer read the request
// and then went away, e.g. the runtime crashed in the handler: that is not retried.)
Result<std::string> ReadFrame(int fd, size_t max_bytes, Clock::time_point deadline,
                              bool& unread_by_peer) {
  unsigned char header[kHeaderBytes];
  int err = 0;
  ASYA_ASSIGN_OR_RETURN(size_t got, ReadFull(fd, reinterpret_cast<char*>(header), kHeaderBytes,
                                             deadline, "the length prefix", err));
  if (got < kHeaderBytes) {
    unread_by_peer = got == 0 && err == ECONNRESET;
    std::string what = "failed to read length prefix: ";
    if (err != 0) {
      what += ErrnoText(err);
    } else if (got == 0) {
      what += "EOF";
    } else {
      what += "EOF after " + std::to_string(got) + " of 4 bytes";
    }
    return Fail(ErrorCode::kUnavailable, kReadPrefix, what);
  }
  auto size = DecodeHeader(header, max_bytes);
  if (!size) {
    return Fail(ErrorCode::kResourceExhausted, kReadPrefix, size.error().message);
  }
  const size_t want = *size;
  std::string body;
  // Grow with the data actually received, not with the declared size. Each step allocates exactly
  // the new size (std::string::resize would round the last step up to twice the previous
  // capacity: 16 MiB held for a 10 MiB frame).
  size_t have = 0;
  while (have < want) {
    size_t target = std::min(want, std::max(kInitialBodyChunk, body.size() * 2));
    if (target > body.capacity()) {
      std::string grown;
      grown.reserve(target);
      grown.append(body.data(), have);
      body.swap(grown);
    }
    body.resize(target);
    ASYA_ASSIGN_OR_RETURN(size_t n, ReadFull(fd, body.data() + have, target - have, deadline,
                                             "the response body", err));
    have += n;
    if (have < target) {
      std::string what = err != 0 ? ErrnoText(err) + " after " : "EOF after ";
      what += std::to_string(have) + " of " + std::to_string(want) + " bytes";
      return Fail(ErrorCode::kUnavailable, kReadPrefix, what);
    }
  }
  body.resize(want);
  return body;
}

}  // namespace

struct RuntimeClient::Impl {
  explicit Impl(RuntimeClientOptions o) : options(std::move(o)), reuse(options.reuse_connections) {}

  ~Impl() { Reset(); }

  // An idle pooled connection that still looks healthy, or -1.
  int TakeIdle() {
    std::lock_guard<std::mutex> lock(mu);
    while (!idle.empty()) {
      int fd = idle.back();
      idle.pop_back();
      pollfd p{fd, POLLIN, 0};
      // Readable (EOF or stray bytes), hung up or failed: never reuse it.
      if (::poll(&p, 1, 0) == 0) {
        return fd;
      }
      ::close(fd);
    }
    return -1;
  }

  void Release(int fd) {
    {
      std::lock_guard<std::mutex> lock(mu);
      if (reuse && idle.size() < kMaxIdleConnections) {
        idle.push_back(fd);
        return;
      }
    }
    ::close(fd);
  }

  bool ReuseEnabled() {
    std::lock_guard<std::mutex> lock(mu);
    return reuse;
  }

  // A reused connection was closed by the runtime before it answered.
  void NoteClosedReuse() {
    std::vector<int> to_close;
    bool log_now = false;
    {
      std::lock_guard<std::mutex> lock(mu);
      if (++closed_reuses >= kClosedReuseLimit && reuse) {
        reuse = false;
        log_now = true;
        to_close.swap(idle);
      }
    }
    for (int fd : to_close) {
      ::close(fd);
    }
    if (log_now) {
      log::Info("runtime closes connections after each response; using one connection per message",
                {{"socket", options.socket_path}});
    }
  }

  void Reset() {
    std::vector<int> to_close;
    {
      std::lock_guard<std::mutex> lock(mu);
      to_close.swap(idle);
    }
    for (int fd : to_close) {
      ::close(fd);
    }
  }

  const RuntimeClientOptions options;
  std::mutex mu;
  std::vector<int> idle;  // guarded by mu
  bool reuse;             // guarded by mu
  int closed_reuses = 0;  // guarded by mu
};

RuntimeClient::RuntimeClient(RuntimeClientOptions options)
    : impl_(std::make_unique<Impl>(std::move(options))) {}

RuntimeClient::~RuntimeClient() = default;

void RuntimeClient::Reset() {
  impl_->Reset();
}

Result<std::string> RuntimeClient::Call(std::string_view request, Clock::time_point deadline) {
  const RuntimeClientOptions& options = impl_->options;
  if (request.size() > options.max_frame_bytes || request.size() > UINT32_MAX) {
    return Fail(ErrorCode::kResourceExhausted, kSendPrefix,
                "message of " + std::to_string(request.size()) + " bytes exceeds the limit of " +
                    std::to_string(options.max_frame_bytes) + " bytes (ASYA_MAX_MESSAGE_BYTES)");
  }
  if (Clock::now() >= deadline) {
    return MakeError(ErrorCode::kDeadlineExceeded, "deadline passed before the runtime was called");
  }
  // At most two attempts: a reused connection the runtime had already closed is replaced once.
  for (int attempt = 0; attempt < 2; ++attempt) {
    int raw_fd = attempt == 0 ? impl_->TakeIdle() : -1;
    const bool reused = raw_fd >= 0;
    if (!reused) {
      ASYA_ASSIGN_OR_RETURN(raw_fd, Connect(options.socket_path, deadline));
    }
    Fd fd(raw_fd);
    bool peer_gone = false;
    auto sent = SendFrame(fd.Get(), request, deadline, peer_gone);
    if (!sent) {
      if (reused && peer_gone) {
        impl_->NoteClosedReuse();
        continue;
      }
      return Unexpected(std::move(sent).error());
    }
    bool unread_by_peer = false;
    auto response = ReadFrame(fd.Get(), options.max_frame_bytes, deadline, unread_by_peer);
    if (!response) {
      if (reused && unread_by_peer) {
        impl_->NoteClosedReuse();
        continue;
      }
      return response;
    }
    if (impl_->ReuseEnabled()) {
      impl_->Release(fd.Release());
    }
    return response;
  }
  // Unreachable: the second attempt always uses a fresh connection and returns.
  return Fail(ErrorCode::kInternal, kReadPrefix, "retry loop ended");
}

bool RuntimeReady(std::string_view socket_path, std::chrono::milliseconds connect_timeout) {
  std::string path(socket_path);
  std::string dir = ".";
  if (auto slash = path.rfind('/'); slash != std::string::npos) {
    dir = slash == 0 ? "/" : path.substr(0, slash);
  }
  struct stat st {};
  if (::stat((dir + "/runtime-ready").c_str(), &st) != 0) {
    return false;
  }
  if (::stat(path.c_str(), &st) != 0 || !S_ISSOCK(st.st_mode)) {
    return false;
  }
  auto fd = Connect(path, Clock::now() + connect_timeout);
  if (!fd) {
    return false;
  }
  ::close(*fd);
  return true;
}

}  // namespace asya::protocol
