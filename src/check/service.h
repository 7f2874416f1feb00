// Child processes of the checker: `asya up`, a throw-away RabbitMQ broker, moto_server (private
// header of asya::check). Each runs in its own process group, dies with the checker
// (PR_SET_PDEATHSIG) and writes its output to a log file.
#pragma once

#include <string>
#include <vector>

#include <sys/types.h>

#include "asya/base/result.h"

namespace asya::check::internal {

struct ServiceSpec {
  std::string name;               // for messages: "asya up", "rabbitmq", "moto"
  std::vector<std::string> argv;  // argv[0] is a path or a name on PATH
  std::vector<std::string> env;   // complete environment
  std::string cwd;                // "" = inherit
  std::string log_path;           // stdout + stderr (appended)
  int port = 0;                   // > 0: Start() waits until host:port accepts
  std::string host = "127.0.0.1";
  int netns_fd = -1;  // >= 0: the child joins this network namespace (setns) before exec
  double start_timeout_s = 60;
};

class Service {
 public:
  explicit Service(ServiceSpec spec) : spec_(std::move(spec)) {}
  ~Service();  // SIGKILL of the group if still running
  Service(const Service&) = delete;
  Service& operator=(const Service&) = delete;

  // Starts the process (and waits for its port). Error: did not start or exited early (the
  // error names the log file and quotes its tail).
  Status Start();
  // True while the process has not exited (reaps it when it has).
  bool Running();
  // SIGTERM to the process group, wait up to `grace_s`, then SIGKILL; returns once reaped.
  void Stop(double grace_s);
  // SIGKILL of the process group; returns once reaped.
  void Kill();
  pid_t pid() const { return pid_; }
  const ServiceSpec& spec() const { return spec_; }
  std::string LogTail(size_t bytes = 3000) const;

 private:
  bool WaitExit(double timeout_s);
  ServiceSpec spec_;
  pid_t pid_ = 0;
};

// True when a TCP connect to 127.0.0.1:port succeeds.
bool PortAccepts(int port);
// A loopback port nobody listens on and we can bind (0 when none found).
int FreePort();
// For RabbitMQ: P in [10000, 15000) with P+1 (management) and P+20000 (Erlang dist) free too.
int FreeRabbitPort();

// A throw-away broker's spec (the settings of tools/rabbitmq-test-broker.sh): loopback, directory
// `dir` (mnesia kept across restarts when `wipe` is false), AMQP `port`, management `port + 1`.
// `ip` other than loopback (the broker in its own network namespace, netns.h): it listens there,
// and the guest user may log in from other hosts.
Result<ServiceSpec> RabbitMqSpec(const std::string& server, const std::string& dir, int port,
                                 const std::vector<std::string>& base_env, bool wipe,
                                 const std::string& ip = "127.0.0.1");
// moto_server (SQS) on ip:`port`.
ServiceSpec MotoSpec(const std::string& dir, int port, const std::vector<std::string>& base_env,
                     const std::string& ip = "127.0.0.1");

// `env` with NAME=value set (replaced when present).
void SetEnv(std::vector<std::string>& env, const std::string& name, const std::string& value);

}  // namespace asya::check::internal
