#include "support/postgres_fixture.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <thread>
#include <vector>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <libpq-fe.h>

namespace asya::test {
namespace {

namespace fs = std::filesystem;

// The newest /usr/lib/postgresql/<major>/bin holding initdb and postgres, or
// $ASYA_PG_BINDIR when set.
Result<std::string> FindBinDir() {
  if (const char* env = std::getenv("ASYA_PG_BINDIR")) {  // NOLINT(concurrency-mt-unsafe)
    fs::path bin(env);
    if (!fs::exists(bin / "initdb") || !fs::exists(bin / "postgres")) {
      return MakeError(ErrorCode::kFailedPrecondition,
                       "ASYA_PG_BINDIR=" + bin.string() +
                           " holds no initdb and postgres: install the Debian package "
                           "`postgresql` (tools/install-deps.sh) or fix the variable");
    }
    return bin.string();
  }
  std::vector<std::pair<int, std::string>> found;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator("/usr/lib/postgresql", ec)) {
    fs::path bin = entry.path() / "bin";
    if (fs::exists(bin / "initdb") && fs::exists(bin / "postgres")) {
      int major = std::atoi(entry.path().filename().c_str());
      found.emplace_back(major, bin.string());
    }
  }
  if (found.empty()) {
    return MakeError(ErrorCode::kFailedPrecondition,
                     "no PostgreSQL server binaries (/usr/lib/postgresql/*/bin/initdb and "
                     "postgres): install the Debian package `postgresql` (tools/install-deps.sh)");
  }
  std::sort(found.begin(), found.end());
  return found.back().second;
}

int FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  int port = 0;
  if (fd >= 0 && bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0) {
    socklen_t len = sizeof(addr);
    if (getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
      port = ntohs(addr.sin_port);
    }
  }
  if (fd >= 0) {
    close(fd);
  }
  return port;
}

// The user the server runs as: `postgres` when we are root (PostgreSQL refuses root), else us.
struct RunAs {
  bool switch_user = false;
  uid_t uid = 0;
  gid_t gid = 0;
};

Result<RunAs> ServerUser() {
  RunAs who;
  if (geteuid() != 0) {
    return who;
  }
  passwd* pw = getpwnam("postgres");
  if (pw == nullptr) {
    return MakeError(ErrorCode::kFailedPrecondition,
                     "running as root, but there is no `postgres` user to run PostgreSQL as "
                     "(the Debian package `postgresql` creates it)");
  }
  who.switch_user = true;
  who.uid = pw->pw_uid;
  who.gid = pw->pw_gid;
  return who;
}

// fork + (setgid/setuid) + exec; stdout/stderr to `log`. The child dies with the test process.
Result<pid_t> Spawn(const RunAs& who, const std::vector<std::string>& argv,
                    const std::string& log) {
  pid_t pid = fork();
  if (pid < 0) {
    return MakeError(ErrorCode::kInternal, "fork failed");
  }
  if (pid == 0) {
    int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
      dup2(fd, 1);
      dup2(fd, 2);
    }
    int devnull = open("/dev/null", O_RDONLY);
    if (devnull >= 0) {
      dup2(devnull, 0);
    }
    if (who.switch_user && (setgid(who.gid) != 0 || setuid(who.uid) != 0)) {
      _exit(126);
    }
    prctl(PR_SET_PDEATHSIG, SIGKILL);  // after setuid, which clears it
    std::vector<char*> args;
    for (const auto& a : argv) {
      args.push_back(const_cast<char*>(a.c_str()));
    }
    args.push_back(nullptr);
    execv(args[0], args.data());
    _exit(127);
  }
  return pid;
}

std::string Tail(const std::string& path) {
  std::ifstream in(path);
  std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return all.size() > 2000 ? all.substr(all.size() - 2000) : all;
}

}  // namespace

Result<std::unique_ptr<PostgresServer>> PostgresServer::Start() {
  std::unique_ptr<PostgresServer> server(new PostgresServer());
  ASYA_ASSIGN_OR_RETURN(server->bin_dir_, FindBinDir());
  ASYA_ASSIGN_OR_RETURN(RunAs who, ServerUser());
  char tmpl[] = "/tmp/asya-pg-XXXXXX";
  if (mkdtemp(tmpl) == nullptr) {
    return MakeError(ErrorCode::kInternal, "mkdtemp failed");
  }
  server->dir_ = tmpl;
  if (who.switch_user && chown(tmpl, who.uid, who.gid) != 0) {
    return MakeError(ErrorCode::kInternal, std::string("chown ") + tmpl + " failed");
  }
  std::string log = server->dir_ + "/initdb.log";
  ASYA_ASSIGN_OR_RETURN(
      pid_t initdb,
      Spawn(who,
            {server->bin_dir_ + "/initdb", "-D", server->dir_ + "/data", "-U", "postgres", "-A",
             "trust", "-E", "UTF8", "--locale=C.UTF-8", "--no-sync"},
            log));
  int status = 0;
  waitpid(initdb, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    return MakeError(ErrorCode::kInternal, "initdb failed: " + Tail(log));
  }
  Status last = Ok();
  for (int attempt = 0; attempt < 3; ++attempt) {  // a port taken meanwhile fails the start
    server->port_ = FreePort();
    last = server->Launch();
    if (last) {
      ASYA_RETURN_IF_ERROR(Exec(server->url("postgres"), "CREATE DATABASE asya"));
      return server;
    }
  }
  return Unexpected(last.error());
}

Status PostgresServer::Launch() {
  ASYA_ASSIGN_OR_RETURN(RunAs who, ServerUser());
  std::string log = dir_ + "/server.log";
  // Speed over durability: a test server.
  ASYA_ASSIGN_OR_RETURN(
      pid_, Spawn(who,
                  {bin_dir_ + "/postgres", "-D", dir_ + "/data", "-c", "listen_addresses=127.0.0.1",
                   "-c", "port=" + std::to_string(port_), "-c", "unix_socket_directories=" + dir_,
                   "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
                   "-c", "max_connections=200", "-c", "logging_collector=off"},
                  log));
  std::string conninfo = "host=127.0.0.1 port=" + std::to_string(port_) +
                         " user=postgres dbname=postgres connect_timeout=2";
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (std::chrono::steady_clock::now() < deadline) {
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return MakeError(ErrorCode::kUnavailable, "postgres exited during start-up: " + Tail(log));
    }
    if (PQping(conninfo.c_str()) == PQPING_OK) {
      return Ok();
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  Stop();
  return MakeError(ErrorCode::kDeadlineExceeded,
                   "postgres did not accept connections within 60 s: " + Tail(log));
}

void PostgresServer::Stop() {
  if (pid_ <= 0) {
    return;
  }
  kill(pid_, SIGINT);  // fast shutdown
  int status = 0;
  waitpid(pid_, &status, 0);
  pid_ = -1;
}

Status PostgresServer::Restart() {
  Stop();
  return Launch();
}

PostgresServer::~PostgresServer() {
  Stop();
  if (!dir_.empty()) {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
}

std::string PostgresServer::url(std::string_view database) const {
  return "postgresql://postgres@127.0.0.1:" + std::to_string(port_) + "/" + std::string(database);
}

Result<std::string> PostgresServer::NewDatabase() {
  std::string name("t");  // not "t" + ...: g++ 12 warns falsely (-Wrestrict) on that
  name += std::to_string(getpid());
  name += '_';
  name += std::to_string(++databases_);
  ASYA_RETURN_IF_ERROR(Exec(url("postgres"), "CREATE DATABASE " + name));
  return url(name);
}

Status PostgresServer::Exec(const std::string& url, const std::string& sql) {
  PGconn* conn = PQconnectdb(url.c_str());
  if (PQstatus(conn) != CONNECTION_OK) {
    std::string msg = PQerrorMessage(conn);
    PQfinish(conn);
    return MakeError(ErrorCode::kUnavailable, "connect " + url + ": " + msg);
  }
  PGresult* res = PQexec(conn, sql.c_str());
  ExecStatusType st = PQresultStatus(res);
  Status out = Ok();
  if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
    out = MakeError(ErrorCode::kInternal, "'" + sql + "': " + PQresultErrorMessage(res));
  }
  PQclear(res);
  PQfinish(conn);
  return out;
}

Result<int> PostgresServer::TerminateConnections(std::string_view database) {
  PGconn* conn = PQconnectdb(url("postgres").c_str());
  if (PQstatus(conn) != CONNECTION_OK) {
    std::string msg = PQerrorMessage(conn);
    PQfinish(conn);
    return MakeError(ErrorCode::kUnavailable, msg);
  }
  std::string db(database);
  const char* params[] = {db.c_str()};
  PGresult* res =
      PQexecParams(conn,
                   "SELECT count(pg_terminate_backend(pid, 10000)) FROM pg_stat_activity "
                   "WHERE datname = $1 AND pid <> pg_backend_pid()",
                   1, nullptr, params, nullptr, nullptr, 0);
  Result<int> out = 0;
  if (PQresultStatus(res) != PGRES_TUPLES_OK) {
    out = MakeError(ErrorCode::kInternal, PQresultErrorMessage(res));
  } else {
    out = std::atoi(PQgetvalue(res, 0, 0));
  }
  PQclear(res);
  PQfinish(conn);
  return out;
}

PostgresServer& PostgresServer::Shared() {
  static std::unique_ptr<PostgresServer> shared = [] {
    auto server = Start();
    if (!server) {
      std::fprintf(stderr, "cannot start a test PostgreSQL server: %s\n",
                   server.error().ToString().c_str());
      std::abort();
    }
    return std::move(*server);
  }();
  return *shared;
}

}  // namespace asya::test
