// A throw-away rabbitmq-server for tests: its own directory, loopback ports and node name,
// started as a direct child of the test process (tools/rabbitmq-test-broker.sh does the set-up).
// Starting takes ~5 s, so test binaries share one broker: RabbitMqBroker::Shared().
#pragma once

#include <memory>
#include <string>

#include <sys/types.h>

#include "asya/base/result.h"

namespace asya::test {

class RabbitMqBroker {
 public:
  struct Options {
    bool management = true;  // enables the management plugin (Depth().inflight, ListQueues)
    bool tls = true;         // adds an amqps listener with a throw-away CA (see tls_url())
  };

  static Result<std::unique_ptr<RabbitMqBroker>> Start(const Options& options);
  // The process-wide broker (started on first use, killed at exit). Aborts the test binary with
  // a clear message when no broker can be started.
  static RabbitMqBroker& Shared();

  ~RabbitMqBroker();
  RabbitMqBroker(const RabbitMqBroker&) = delete;
  RabbitMqBroker& operator=(const RabbitMqBroker&) = delete;

  int port() const { return port_; }
  std::string url() const;             // amqp://guest:guest@127.0.0.1:<port>/
  std::string management_url() const;  // http://guest:guest@127.0.0.1:<mgmt>; "" without plugin
  std::string tls_url() const;         // amqps://guest:guest@localhost:<tls>/; "" without TLS
  std::string ca_file() const { return dir_ + "/tls/ca.pem"; }
  const std::string& dir() const { return dir_; }

  // Stops the broker (SIGTERM = clean shutdown, or SIGKILL) and waits for it to exit.
  void Stop(bool clean);
  // Starts it again on the same directory and ports (durable queues survive) and waits.
  Status Restart();
  bool running() const { return pid_ > 0; }

 private:
  RabbitMqBroker() = default;
  Status Launch();

  std::string dir_;
  std::string script_;
  int port_ = 0;
  int mgmt_port_ = 0;
  int tls_port_ = 0;
  pid_t pid_ = -1;
};

}  // namespace asya::test
