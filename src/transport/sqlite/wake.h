// Cross-process wake-ups for blocked receivers of the sqlite transport (private header).
//
// Layout: <dir>/<queue>/<pid>-<seq> is a named FIFO owned by one blocked Receive() call. The
// receiver holds it open read-write (so it never sees EOF) and poll()s it; a publisher, after its
// commit, opens every FIFO of the queue with O_NONBLOCK and writes one byte. A FIFO whose owner
// died has no reader, so the publisher's open() fails with ENXIO and the publisher removes it.
// FIFOs are created under a dot-name and renamed into place only once they are open, so a
// publisher never mistakes a FIFO being set up for a stale one.
#pragma once

#include <ctime>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include <sys/types.h>

#include "asya/base/result.h"

namespace asya::transport::sqlite {

// One registration; unregisters (unlink + close) when destroyed.
class Waiter {
 public:
  Waiter() = default;
  Waiter(const Waiter&) = delete;
  Waiter& operator=(const Waiter&) = delete;
  Waiter(Waiter&& other) noexcept;
  Waiter& operator=(Waiter&& other) noexcept;
  ~Waiter();

  [[nodiscard]] int fd() const { return fd_; }
  [[nodiscard]] bool registered() const { return fd_ >= 0; }
  // Reads away pending wake-up bytes.
  void Drain() const;

 private:
  friend class WakeDir;
  Waiter(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}
  void Reset();

  int fd_ = -1;
  std::string path_;
};

// Writes one byte to `fd` without raising SIGPIPE when the reader has gone away (a waiter may
// unregister between our open() and write()). Returns whether the byte was written.
bool WriteWakeByte(int fd);

class WakeDir {
 public:
  explicit WakeDir(std::string dir) : dir_(std::move(dir)) {}

  // Registers a waiter for `queue` (a validated queue name: safe as a file name).
  [[nodiscard]] Result<Waiter> Register(std::string_view queue) const;
  // Wakes every live waiter of `queue`; removes stale ones. Returns the number woken. Thread-safe.
  //
  // The names of a queue's FIFOs are remembered with the directory's modification time, and read
  // again only when a stat() shows another time (a FIFO was added or removed): on a busy queue a
  // publish then costs one stat() instead of opendir/getdents/close and a 32 KB buffer. A scan is
  // remembered only when the clock had already moved past the directory's time when the scan
  // began, so any later change gets a newer time even with coarse file timestamps.
  int Notify(std::string_view queue) const;

 private:
  struct Scan {
    timespec mtime{};
    ino_t inode = 0;
    std::vector<std::string> fifos;
  };

  std::string dir_;
  mutable std::mutex mu_;  // guards scans_
  mutable std::map<std::string, Scan, std::less<>> scans_;
};

}  // namespace asya::transport::sqlite
