#include "transport/sqlite/wake.h"

#include <atomic>
#include <cerrno>
#include <cstring>
#include <utility>

#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

namespace asya::transport::sqlite {
namespace {

std::atomic<uint64_t> g_sequence{0};

Status MakeDir(const std::string& path) {
  if (::mkdir(path.c_str(), 0700) == 0 || errno == EEXIST) {
    return Ok();
  }
  return MakeError(ErrorCode::kUnavailable,
                   "cannot create wake-up directory '" + path + "': " + std::strerror(errno));
}

}  // namespace

bool WriteWakeByte(int fd) {
  // Block SIGPIPE in this thread for the write; if the write raised one, take it off the pending
  // set (unless one was already pending before) so it is never delivered.
  sigset_t pipe_only;
  sigset_t old_mask;
  sigemptyset(&pipe_only);
  sigaddset(&pipe_only, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &pipe_only, &old_mask);
  sigset_t pending;
  sigpending(&pending);
  bool was_pending = sigismember(&pending, SIGPIPE) == 1;
  const char byte = 1;
  ssize_t n = ::write(fd, &byte, 1);
  if (n < 0 && errno == EPIPE && !was_pending) {
    const timespec no_wait{0, 0};
    while (sigtimedwait(&pipe_only, nullptr, &no_wait) < 0 && errno == EINTR) {
    }
  }
  pthread_sigmask(SIG_SETMASK, &old_mask, nullptr);
  return n == 1;
}

Waiter::Waiter(Waiter&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)), path_(std::move(other.path_)) {}

Waiter& Waiter::operator=(Waiter&& other) noexcept {
  if (this != &other) {
    Reset();
    fd_ = std::exchange(other.fd_, -1);
    path_ = std::move(other.path_);
  }
  return *this;
}

Waiter::~Waiter() {
  Reset();
}

void Waiter::Reset() {
  if (fd_ >= 0) {
    ::unlink(path_.c_str());
    ::close(fd_);
    fd_ = -1;
  }
}

void Waiter::Drain() const {
  char buf[64];
  while (fd_ >= 0 && ::read(fd_, buf, sizeof(buf)) > 0) {
  }
}

Result<Waiter> WakeDir::Register(std::string_view queue) const {
  ASYA_RETURN_IF_ERROR(MakeDir(dir_));
  std::string qdir = dir_ + "/" + std::string(queue);
  ASYA_RETURN_IF_ERROR(MakeDir(qdir));
  std::string name = std::to_string(::getpid()) + "-" + std::to_string(g_sequence.fetch_add(1));
  std::string tmp = qdir + "/." + name;
  std::string path = qdir + "/" + name;
  ::unlink(tmp.c_str());
  if (::mkfifo(tmp.c_str(), 0600) != 0) {
    return MakeError(ErrorCode::kUnavailable,
                     "cannot create wake-up fifo '" + tmp + "': " + std::strerror(errno));
  }
  // O_RDWR: the FIFO always has a writer (us), so poll() never reports a permanent hang-up.
  int fd = ::open(tmp.c_str(), O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    return MakeError(ErrorCode::kUnavailable,
                     "cannot open wake-up fifo '" + tmp + "': " + std::strerror(err));
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    ::close(fd);
    return MakeError(ErrorCode::kUnavailable,
                     "cannot publish wake-up fifo '" + path + "': " + std::strerror(err));
  }
  return Waiter(fd, std::move(path));
}

int WakeDir::Notify(std::string_view queue) const {
  std::string qdir = dir_ + "/" + std::string(queue);
  // Taken before the stat: a change after it gets a time >= this (file times never run behind
  // the coarse clock), so a directory time older than this one cannot come back unchanged.
  timespec before{};
  ::clock_gettime(CLOCK_REALTIME_COARSE, &before);
  struct stat st {};
  if (::stat(qdir.c_str(), &st) != 0) {
    return 0;  // nobody has ever waited on this queue
  }
  std::vector<std::string> fifos;
  bool cached = false;
  {
    std::lock_guard lock(mu_);
    auto it = scans_.find(queue);
    if (it != scans_.end() && it->second.inode == st.st_ino &&
        it->second.mtime.tv_sec == st.st_mtim.tv_sec &&
        it->second.mtime.tv_nsec == st.st_mtim.tv_nsec) {
      fifos = it->second.fifos;
      cached = true;
    }
  }
  if (!cached) {
    DIR* d = ::opendir(qdir.c_str());
    if (d == nullptr) {
      return 0;
    }
    while (const dirent* entry = ::readdir(d)) {
      if (entry->d_name[0] == '.') {
        continue;  // ".", "..", and FIFOs still being set up
      }
      if (entry->d_type != DT_FIFO && entry->d_type != DT_UNKNOWN) {
        continue;
      }
      fifos.emplace_back(entry->d_name);
    }
    ::closedir(d);
    const bool settled = st.st_mtim.tv_sec < before.tv_sec || (st.st_mtim.tv_sec == before.tv_sec &&
                                                               st.st_mtim.tv_nsec < before.tv_nsec);
    std::lock_guard lock(mu_);
    if (settled) {
      scans_[std::string(queue)] = Scan{st.st_mtim, st.st_ino, fifos};
    } else {
      scans_.erase(std::string(queue));
    }
  }
  int woken = 0;
  for (const std::string& name : fifos) {
    std::string path = qdir + "/" + name;
    int fd = ::open(path.c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
      if (errno == ENXIO) {
        ::unlink(path.c_str());  // no reader: its process died without cleaning up
      }
      continue;  // ENOENT: unregistered meanwhile (the directory's time moved on)
    }
    // EAGAIN (pipe full) is fine: the waiter has unread wake-ups already.
    if (WriteWakeByte(fd)) {
      ++woken;
    }
    ::close(fd);
  }
  return woken;
}

}  // namespace asya::transport::sqlite
