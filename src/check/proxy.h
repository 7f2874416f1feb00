// The `delay` fault of `asya check` (private header of asya::check): a TCP proxy on this machine's
// loopback between the mesh and the broker (or moto) that holds every chunk of bytes it reads for
// the current delay before passing it on, each way (this kernel has no netem). With no delay it
// passes bytes straight through. One thread, poll(2); order within a connection is kept (a chunk
// never overtakes an earlier one, also when the delay shrinks).
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>

#include "asya/base/result.h"

namespace asya::check::internal {

class DelayProxy {
 public:
  // Listens on 127.0.0.1 (a free port) and connects each accepted connection to
  // upstream_ip:upstream_port.
  static Result<std::unique_ptr<DelayProxy>> Start(const std::string& upstream_ip,
                                                   int upstream_port);
  ~DelayProxy();  // stops the thread, closes every connection
  DelayProxy(const DelayProxy&) = delete;
  DelayProxy& operator=(const DelayProxy&) = delete;

  int port() const { return port_; }
  // Bytes read from now on are held this long before they are written on (each way).
  void SetDelay(std::chrono::milliseconds delay) { delay_ms_ = delay.count(); }
  int64_t connections() const { return accepted_; }  // accepted so far

 private:
  DelayProxy() = default;
  void Loop();

  std::string upstream_ip_;
  int upstream_port_ = 0;
  int listen_fd_ = -1;
  int wake_[2] = {-1, -1};
  int port_ = 0;
  std::atomic<int64_t> delay_ms_{0};
  std::atomic<int64_t> accepted_{0};
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace asya::check::internal
