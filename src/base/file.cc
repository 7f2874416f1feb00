#include "asya/base/file.h"

#include <atomic>
#include <cerrno>
#include <cstring>

#include <fcntl.h>
#include <unistd.h>

namespace asya {

Status WriteFileAtomic(const std::string& path, std::string_view content, int mode) {
  static std::atomic<uint64_t> sequence{0};
  const std::string tmp = path + ".tmp." + std::to_string(::getpid()) + "." +
                          std::to_string(sequence.fetch_add(1, std::memory_order_relaxed));
  auto fail = [&](const std::string& what, int err) {
    ::unlink(tmp.c_str());
    return MakeError(ErrorCode::kUnavailable, what + ": " + std::strerror(err));
  };
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0) {
    return MakeError(ErrorCode::kUnavailable, "cannot write " + tmp + ": " + std::strerror(errno));
  }
  size_t off = 0;
  while (off < content.size()) {
    ssize_t n = ::write(fd, content.data() + off, content.size() - off);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0) {
      int err = n < 0 ? errno : EIO;
      ::close(fd);
      return fail("cannot write " + tmp, err);
    }
    off += static_cast<size_t>(n);
  }
  if (::close(fd) != 0) {
    return fail("cannot write " + tmp, errno);
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    return fail("cannot rename " + tmp + " to " + path, errno);
  }
  return Ok();
}

}  // namespace asya
