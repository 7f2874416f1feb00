// A throw-away PostgreSQL server for tests: initdb into a fresh directory under /tmp, a free
// loopback port (and a Unix socket in that directory), trust authentication for user `postgres`,
// database `asya`. The postmaster is a direct child of the test process (run as the `postgres`
// user when the test runs as root, since PostgreSQL refuses root) and dies with it. Starting
// takes about a second, so test binaries share one server (PostgresServer::Shared()) and give each
// test its own database (NewDatabase()).
//
// The server dies with the thread that started it (PR_SET_PDEATHSIG): call Shared() first from
// the test's main thread, not from a short-lived worker.
//
// Missing PostgreSQL binaries are a failure, not a skip: Shared() aborts the test binary with a
// message naming what is missing (tools/install-deps.sh installs `postgresql`).
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include <sys/types.h>

#include "asya/base/result.h"

namespace asya::test {

class PostgresServer {
 public:
  static Result<std::unique_ptr<PostgresServer>> Start();
  // The process-wide server (started on first use, stopped at exit). Aborts the test binary with
  // a clear message when no server can be started.
  static PostgresServer& Shared();

  ~PostgresServer();
  PostgresServer(const PostgresServer&) = delete;
  PostgresServer& operator=(const PostgresServer&) = delete;

  int port() const { return port_; }
  const std::string& dir() const { return dir_; }
  // postgresql://postgres@127.0.0.1:<port>/<database>
  std::string url(std::string_view database = "asya") const;

  // Creates a fresh, empty database with a unique name and returns its URL.
  Result<std::string> NewDatabase();
  // Runs `sql` (one or more statements, no parameters) on the database at `url`.
  static Status Exec(const std::string& url, const std::string& sql);
  // Terminates every other backend connected to `database` and waits until they are gone (a
  // broken connection, as a server restart would leave it); returns how many were terminated.
  Result<int> TerminateConnections(std::string_view database);

  // Stops the server (fast shutdown) and waits for it; Restart starts it again on the same
  // directory and port.
  void Stop();
  Status Restart();
  bool running() const { return pid_ > 0; }

 private:
  PostgresServer() = default;
  Status Launch();

  std::string bin_dir_;
  std::string dir_;
  int port_ = 0;
  pid_t pid_ = -1;
  int databases_ = 0;
};

}  // namespace asya::test
