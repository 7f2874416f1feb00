// Non-blocking runtime connections for the "raw loop + runtime call" baselines
// (bench/rabbitmq/rmq_bench.cc raw-window-rt, bench/sqlite_hop.cc --only rawrtb): one request at a
// time per kept Unix-socket connection, frames through asya/protocol/frame.h, driven by the
// caller's poll().
#pragma once

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <utility>

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "asya/protocol/frame.h"

namespace bench {

struct RtConn {
  int fd = -1;
  bool busy = false;
  uint64_t id = 0;  // what the caller sent on it (a delivery tag, an index)
  std::string out;  // frame bytes not yet written
  size_t out_off = 0;
  asya::protocol::FrameDecoder in;
};

// Connects to the runtime socket at `path` and makes the socket non-blocking; -1 on failure.
inline int ConnectRuntime(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof(addr.sun_path)) {
    return -1;
  }
  std::memcpy(addr.sun_path, path.data(), path.size());
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    return -1;
  }
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return -1;
  }
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
  return fd;
}

// Writes what is left of c.out: 1 all written, 0 the socket is full (wait for POLLOUT), -1 error.
inline int Flush(RtConn& c) {
  while (c.out_off < c.out.size()) {
    ssize_t w = ::send(c.fd, c.out.data() + c.out_off, c.out.size() - c.out_off, MSG_NOSIGNAL);
    if (w < 0) {
      if (errno == EINTR) {
        continue;
      }
      return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -1;
    }
    c.out_off += static_cast<size_t>(w);
  }
  return 1;
}

// Sends `body` as one request frame on the idle connection `c`; false on a socket error.
inline bool StartCall(RtConn& c, uint64_t id, std::string_view body) {
  auto frame = asya::protocol::EncodeFrame(body);
  if (!frame) {
    return false;
  }
  c.busy = true;
  c.id = id;
  c.out = std::move(*frame);
  c.out_off = 0;
  return Flush(c) >= 0;
}

// Reads what has arrived on a busy connection: 1 the answer is complete (in `answer`, the
// connection is idle again), 0 not yet, -1 error or EOF.
inline int ReadAnswer(RtConn& c, std::string& answer) {
  char buf[65536];
  ssize_t got = ::recv(c.fd, buf, sizeof buf, 0);
  if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
    return 0;
  }
  if (got <= 0 || !c.in.Feed({buf, static_cast<size_t>(got)})) {
    return -1;
  }
  if (!c.in.Next(answer)) {
    return 0;
  }
  c.busy = false;
  return 1;
}

// The one output envelope of a runtime answer "[{...}]" (brackets stripped); empty when the
// answer is an error object or not an array.
inline std::string_view OneOutput(std::string_view answer) {
  if (answer.size() < 3 || answer.front() != '[' || answer.back() != ']' ||
      answer.find("\"error\"") != std::string_view::npos) {
    return {};
  }
  return answer.substr(1, answer.size() - 2);
}

}  // namespace bench
