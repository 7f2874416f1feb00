#include "check/proxy.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <deque>
#include <vector>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

namespace asya::check::internal {

namespace {

using Steady = std::chrono::steady_clock;
constexpr size_t kReadSize = 64 * 1024;
constexpr size_t kMaxQueued = 8u << 20;  // per direction: stop reading beyond this

struct Chunk {
  Steady::time_point release;
  std::string bytes;
  size_t off = 0;
};

// One direction of a connection: read from `from`, hold, write to `to`.
struct Pipe {
  std::deque<Chunk> q;
  size_t queued = 0;
  bool eof = false;   // `from` said EOF
  bool shut = false;  // shutdown(to, SHUT_WR) done after the last byte
  Steady::time_point last{};
};

struct Conn {
  int client = -1;  // the mesh's side
  int server = -1;  // the broker's side
  bool connecting = true;
  bool dead = false;
  Pipe up;    // client -> server
  Pipe down;  // server -> client
};

void NoDelay(int fd) {
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

// Reads what `from` has into `p` (release = now + delay, never before the previous chunk).
void ReadInto(int from, Pipe& p, Conn& c, Steady::time_point now, std::chrono::milliseconds delay) {
  char buf[kReadSize];
  ssize_t n = ::read(from, buf, sizeof buf);
  if (n > 0) {
    Chunk ch;
    ch.release = std::max(now + delay, p.last);
    p.last = ch.release;
    ch.bytes.assign(buf, static_cast<size_t>(n));
    p.queued += ch.bytes.size();
    p.q.push_back(std::move(ch));
  } else if (n == 0) {
    p.eof = true;
  } else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
    c.dead = true;
  }
}

// Writes the chunks of `p` that are due to `to`; after EOF and the last byte, half-closes `to`.
void Flush(int to, Pipe& p, Conn& c, Steady::time_point now) {
  while (!p.q.empty() && p.q.front().release <= now) {
    Chunk& ch = p.q.front();
    ssize_t n = ::send(to, ch.bytes.data() + ch.off, ch.bytes.size() - ch.off, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
        c.dead = true;
      }
      return;
    }
    ch.off += static_cast<size_t>(n);
    p.queued -= static_cast<size_t>(n);
    if (ch.off < ch.bytes.size()) {
      return;
    }
    p.q.pop_front();
  }
  if (p.q.empty() && p.eof && !p.shut) {
    ::shutdown(to, SHUT_WR);
    p.shut = true;
  }
}

}  // namespace

Result<std::unique_ptr<DelayProxy>> DelayProxy::Start(const std::string& upstream_ip,
                                                      int upstream_port) {
  std::unique_ptr<DelayProxy> p(new DelayProxy());
  p->upstream_ip_ = upstream_ip;
  p->upstream_port_ = upstream_port;
  p->listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (p->listen_fd_ < 0 || ::pipe2(p->wake_, O_CLOEXEC | O_NONBLOCK) != 0) {
    return MakeError(ErrorCode::kUnavailable, std::string("proxy: ") + std::strerror(errno));
  }
  int one = 1;
  ::setsockopt(p->listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  if (::bind(p->listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::listen(p->listen_fd_, 128) != 0 ||
      ::getsockname(p->listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    return MakeError(ErrorCode::kUnavailable,
                     std::string("proxy: cannot listen on 127.0.0.1: ") + std::strerror(errno));
  }
  p->port_ = ntohs(addr.sin_port);
  p->thread_ = std::thread([raw = p.get()] { raw->Loop(); });
  return p;
}

DelayProxy::~DelayProxy() {
  stop_ = true;
  if (wake_[1] >= 0) {
    (void)!::write(wake_[1], "x", 1);
  }
  if (thread_.joinable()) {
    thread_.join();
  }
  for (int fd : {listen_fd_, wake_[0], wake_[1]}) {
    if (fd >= 0) {
      ::close(fd);
    }
  }
}

void DelayProxy::Loop() {
  sockaddr_in up{};
  up.sin_family = AF_INET;
  up.sin_port = htons(static_cast<uint16_t>(upstream_port_));
  ::inet_pton(AF_INET, upstream_ip_.c_str(), &up.sin_addr);
  std::vector<std::unique_ptr<Conn>> conns;
  std::vector<pollfd> fds;
  while (!stop_) {
    auto now = Steady::now();
    int timeout_ms = 200;
    fds.clear();
    fds.push_back({listen_fd_, POLLIN, 0});
    fds.push_back({wake_[0], POLLIN, 0});
    auto wait_for = [&](const Pipe& p) -> short {
      if (p.q.empty()) {
        return 0;
      }
      if (p.q.front().release <= now) {
        return POLLOUT;  // due but the socket was full
      }
      auto ms = std::chrono::ceil<std::chrono::milliseconds>(p.q.front().release - now).count();
      timeout_ms = std::min<int>(timeout_ms, static_cast<int>(ms));
      return 0;
    };
    for (const auto& c : conns) {
      if (c->connecting) {
        fds.push_back({c->server, POLLOUT, 0});
        fds.push_back({-1, 0, 0});
        continue;
      }
      short client_ev = 0;
      short server_ev = 0;
      if (!c->up.eof && c->up.queued < kMaxQueued) {
        client_ev |= POLLIN;
      }
      if (!c->down.eof && c->down.queued < kMaxQueued) {
        server_ev |= POLLIN;
      }
      server_ev |= wait_for(c->up);
      client_ev |= wait_for(c->down);
      fds.push_back({server_ev != 0 ? c->server : -1, server_ev, 0});
      fds.push_back({client_ev != 0 ? c->client : -1, client_ev, 0});
    }
    int rc = ::poll(fds.data(), fds.size(), std::max(timeout_ms, 0));
    if (rc < 0 && errno != EINTR) {
      break;
    }
    now = Steady::now();
    const auto delay = std::chrono::milliseconds(delay_ms_.load());
    if (fds[1].revents != 0) {
      char buf[64];
      while (::read(wake_[0], buf, sizeof buf) > 0) {
      }
    }
    for (size_t i = 0; i < conns.size(); ++i) {
      Conn& c = *conns[i];
      const pollfd& s = fds[2 + 2 * i];
      const pollfd& k = fds[3 + 2 * i];
      if (c.connecting) {
        if (s.revents != 0) {
          int err = 0;
          socklen_t elen = sizeof err;
          if (::getsockopt(c.server, SOL_SOCKET, SO_ERROR, &err, &elen) != 0 || err != 0) {
            c.dead = true;
          } else {
            c.connecting = false;
            NoDelay(c.server);
          }
        }
        continue;
      }
      if ((s.revents & (POLLIN | POLLHUP | POLLERR)) != 0 && (s.events & POLLIN) != 0) {
        ReadInto(c.server, c.down, c, now, delay);
      }
      if ((k.revents & (POLLIN | POLLHUP | POLLERR)) != 0 && (k.events & POLLIN) != 0) {
        ReadInto(c.client, c.up, c, now, delay);
      }
      if (!c.dead) {
        Flush(c.server, c.up, c, now);
      }
      if (!c.dead) {
        Flush(c.client, c.down, c, now);
      }
      if (c.up.shut && c.down.shut) {
        c.dead = true;
      }
    }
    conns.erase(std::remove_if(conns.begin(), conns.end(),
                               [](const std::unique_ptr<Conn>& c) {
                                 if (c->dead) {
                                   ::close(c->client);
                                   ::close(c->server);
                                 }
                                 return c->dead;
                               }),
                conns.end());
    if ((fds[0].revents & POLLIN) != 0) {
      while (true) {
        int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
          break;
        }
        ++accepted_;
        NoDelay(fd);
        auto c = std::make_unique<Conn>();
        c->client = fd;
        c->server = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (c->server < 0) {
          ::close(fd);
          continue;
        }
        if (::connect(c->server, reinterpret_cast<sockaddr*>(&up), sizeof up) == 0) {
          c->connecting = false;
          NoDelay(c->server);
        } else if (errno != EINPROGRESS) {
          ::close(c->server);
          ::close(fd);
          continue;
        }
        conns.push_back(std::move(c));
      }
    }
  }
  for (const auto& c : conns) {
    ::close(c->client);
    ::close(c->server);
  }
}

}  // namespace asya::check::internal
