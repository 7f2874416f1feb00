// Network faults of `asya check` (private header of asya::check): the broker (or moto) runs in a
// network namespace of its own, joined to this machine by a veth pair; nftables rules inside that
// namespace cut it off (partition) or drop a share of its packets (loss). Needs root.
//
// Nothing outlives the checker: the namespace is held by a child process that dies with us
// (PR_SET_PDEATHSIG) and by the fd we keep; the nftables table and the namespace's end of the
// veth pair live inside the namespace and go with it, and the host end goes with its peer.
// Destroy() (also run by the destructor) kills whatever still runs inside (an epmd a broker left
// behind) and waits until the host end of the veth pair is gone.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <sys/types.h>

#include "asya/base/result.h"

namespace asya::check::internal {

class NetLab {
 public:
  // A new namespace with loopback up, a veth pair (host end `ack<pid>-<hex>`, namespace end
  // `veth0`) with addresses from a /30 of 10.201.0.0/16 that no local interface uses, and an empty
  // nftables table `asya_check` (inet) inside the namespace. Errors name the failed step.
  static Result<std::unique_ptr<NetLab>> Create();
  ~NetLab();
  NetLab(const NetLab&) = delete;
  NetLab& operator=(const NetLab&) = delete;

  int fd() const { return fd_; }  // the namespace, for setns(2) in a child before exec
  const std::string& host_ip() const { return host_ip_; }  // the host end's address
  const std::string& ns_ip() const { return ns_ip_; }      // the namespace end's (the broker's)
  const std::string& host_if() const { return host_if_; }

  // Every packet in and out of the namespace's veth end dropped (no RST, no ICMP: silence).
  Status Partition();
  // `percent` % of the packets each way dropped at random (nftables numgen).
  Status Loss(int percent);
  // The rules removed; returns the packets they dropped (in + out).
  Result<int64_t> Heal();

  void Destroy();

 private:
  NetLab() = default;
  // Runs `argv` (ip, nft) inside the namespace (or on the host): its output, or an error with it.
  Result<std::string> Tool(const std::vector<std::string>& argv, bool inside);

  pid_t holder_ = 0;
  int fd_ = -1;
  std::string ns_inode_;  // readlink of /proc/<holder>/ns/net: "net:[...]"
  std::string host_if_;
  std::string host_ip_;
  std::string ns_ip_;
};

// Connects to 127.0.0.1:port, sends `hello` and waits for the first byte back: the milliseconds
// that took, or -1 (no answer within timeout_ms). Shows the delay proxy at work.
int64_t RoundTripMs(int port, const std::string& hello, int timeout_ms);

// True when a TCP connect to ip:port succeeds within timeout_ms (false: refused, timed out).
bool TcpReachable(const std::string& ip, int port, int timeout_ms);

}  // namespace asya::check::internal
