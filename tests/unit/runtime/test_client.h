// Minimal blocking client for the runtime socket protocol, for tests only.
#pragma once

#include <chrono>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <thread>

#include <arpa/inet.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "support/temp_dir.h"

namespace asya::runtime::testing {

using asya::test::TempDir;  // tests/support/temp_dir.h

inline int Connect(const std::string& path) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

inline bool WriteAll(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t w = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (w <= 0) {
      return false;
    }
    data.remove_prefix(static_cast<size_t>(w));
  }
  return true;
}

inline bool SendFrame(int fd, std::string_view body) {
  uint32_t be = htonl(static_cast<uint32_t>(body.size()));
  std::string frame(reinterpret_cast<const char*>(&be), 4);
  frame.append(body);
  return WriteAll(fd, frame);
}

// Reads exactly n bytes; false on EOF/error or after 30 s without data.
inline bool ReadExact(int fd, char* out, size_t n) {
  while (n > 0) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 30'000) <= 0) {
      return false;
    }
    ssize_t r = ::read(fd, out, n);
    if (r <= 0) {
      return false;
    }
    out += r;
    n -= static_cast<size_t>(r);
  }
  return true;
}

// Reads one response frame; nullopt on EOF.
inline std::optional<std::string> RecvFrame(int fd) {
  uint32_t be = 0;
  if (!ReadExact(fd, reinterpret_cast<char*>(&be), 4)) {
    return std::nullopt;
  }
  std::string body(ntohl(be), '\0');
  if (!body.empty() && !ReadExact(fd, body.data(), body.size())) {
    return std::nullopt;
  }
  return body;
}

// True when the peer closed the connection (read returns 0) within 30 s.
inline bool SeesEof(int fd) {
  char c;
  pollfd p{fd, POLLIN, 0};
  return ::poll(&p, 1, 30'000) > 0 && ::read(fd, &c, 1) == 0;
}

// One connection per call, as the original sidecar does.
inline std::optional<std::string> Call(const std::string& socket_path, std::string_view body) {
  int fd = Connect(socket_path);
  if (fd < 0) {
    return std::nullopt;
  }
  std::optional<std::string> out;
  if (SendFrame(fd, body)) {
    out = RecvFrame(fd);
  }
  ::close(fd);
  return out;
}

inline bool FileExists(const std::string& path) {
  return ::access(path.c_str(), F_OK) == 0;
}

// Polls `pred` every 10 ms for up to 30 s (a liveness bound, not a timing assertion).
template <typename Pred>
bool WaitFor(Pred pred) {
  for (int i = 0; i < 3000; ++i) {
    if (pred()) {
      return true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return pred();
}

}  // namespace asya::runtime::testing
