// asya-gateway: REST + SSE (and MCP, when linked in) front door of the mesh.
//
// Environment (reference-controlplane §7.1 names kept; docs/gateway.md lists them all):
//   ASYA_GATEWAY_PORT          listen port (8080)
//   ASYA_GATEWAY_ADDR          listen address, "host" or "host:port" (default 0.0.0.0 with client
//                              tokens, 127.0.0.1 without; without tokens a non-loopback address is
//                              refused unless ASYA_GATEWAY_ALLOW_NO_AUTH=true)
//   ASYA_GATEWAY_TOKENS        comma-separated client bearer tokens
//   ASYA_GATEWAY_TOKENS_FILE   file with one client token per line (# comments, blank lines ok)
//   ASYA_GATEWAY_TOKEN         token of the callback endpoints (what the sidecars send)
//   ASYA_GATEWAY_ALLOWED_ORIGINS  comma-separated extra browser origins
//   ASYA_CONFIG_PATH           tools YAML file or directory (unset: no tools)
//   ASYA_DATABASE_URL          postgresql://... | sqlite:///abs.db | sqlite://rel.db
//                              (unset: sqlite://asya-gateway.db in the working directory)
//   ASYA_GATEWAY_RETENTION     how long finished envelopes are kept (24h; 0 = forever)
//   ASYA_MAX_MESSAGE_BYTES     request body limit (64 MiB, as the sidecar's message limit)
//   ASYA_GATEWAY_IO_THREADS    I/O threads (4; a tool call waits on its store insert there)
//   ASYA_TRANSPORT + the sidecar's transport variables (unset: sqs when ASYA_SQS_ENDPOINT is set,
//                              rabbitmq when ASYA_RABBITMQ_URL is set, else sqlite)
//   ASYA_LOG_LEVEL, ASYA_LOG_FORMAT
// Exit codes: 0 after SIGTERM/SIGINT (graceful, within 10 s), 1 a store/transport/listen failure,
// 2 invalid configuration (one line on stderr naming the variable).
#include <algorithm>
#include <atomic>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include <signal.h>
#include <sys/resource.h>

#include "asya/base/clock.h"
#include "asya/base/duration.h"
#include "asya/base/log.h"
#include "asya/base/strings.h"
#include "asya/gateway/gateway_service.h"
#include "asya/gateway/http_server.h"
#include "asya/gateway/rest.h"
#include "asya/gateway/security.h"
#include "asya/gateway/tools_config.h"
#include "asya/store/store.h"
#include "asya/transport/factory.h"
#include "bin/common/env.h"
#include "bin/common/transport_env.h"
#include "bin/gateway/mcp_hook.h"

namespace {

constexpr int kExitConfig = 2;

struct Config {
  asya::gateway::ServerOptions server;
  asya::gateway::GuardOptions guard;
  std::string tools_path;
  std::string database_url = "sqlite://asya-gateway.db";
  std::chrono::seconds retention{std::chrono::hours(24)};
  std::chrono::seconds session_idle_timeout{std::chrono::hours(24)};
  asya::transport::TransportSettings transport;
  asya::log::Level log_level = asya::log::Level::kInfo;
  asya::log::Format log_format = asya::log::Format::kText;
  bool allow_no_auth = false;
  bool addr_given = false;
};

bool IsLoopback(const std::string& host) {
  return host == "127.0.0.1" || host == "localhost" || host == "::1" || host.rfind("127.", 0) == 0;
}

asya::Result<Config> LoadConfig() {
  namespace env = asya::env;
  using asya::ErrorCode;
  using asya::MakeError;
  Config c;
  if (auto level = env::Get("ASYA_LOG_LEVEL")) {
    auto l = asya::log::ParseLevel(*level);
    if (!l) {
      return MakeError(ErrorCode::kInvalidArgument,
                       "ASYA_LOG_LEVEL='" + *level + "': expected DEBUG|INFO|WARN|ERROR");
    }
    c.log_level = *l;
  }
  if (auto format = env::Get("ASYA_LOG_FORMAT")) {
    auto f = asya::log::ParseFormat(*format);
    if (!f) {
      return MakeError(ErrorCode::kInvalidArgument,
                       "ASYA_LOG_FORMAT='" + *format + "': expected json|text");
    }
    c.log_format = *f;
  }
  ASYA_ASSIGN_OR_RETURN(int64_t port, env::Int("ASYA_GATEWAY_PORT", 8080, 0, 65535));
  c.server.port = static_cast<int>(port);
  if (auto addr = env::Get("ASYA_GATEWAY_ADDR")) {
    c.addr_given = true;
    std::string a = *addr;
    std::string host = a;
    std::string port_text;
    if (!a.empty() && a.front() == '[') {
      auto end = a.find(']');
      if (end == std::string::npos) {
        return MakeError(ErrorCode::kInvalidArgument, "ASYA_GATEWAY_ADDR='" + a + "': bad address");
      }
      host = a.substr(1, end - 1);
      if (end + 1 < a.size() && a[end + 1] == ':') {
        port_text = a.substr(end + 2);
      }
    } else if (std::count(a.begin(), a.end(), ':') == 1) {
      host = a.substr(0, a.find(':'));
      port_text = a.substr(a.find(':') + 1);
    }
    if (!port_text.empty()) {
      ASYA_ASSIGN_OR_RETURN(int64_t p, env::ParseInt("ASYA_GATEWAY_ADDR", port_text, 0, 65535));
      c.server.port = static_cast<int>(p);
    }
    c.server.address = host.empty() ? "0.0.0.0" : host;
  }
  ASYA_ASSIGN_OR_RETURN(int64_t threads, env::Int("ASYA_GATEWAY_IO_THREADS", 4, 1, 64));
  c.server.io_threads = static_cast<int>(threads);
  ASYA_ASSIGN_OR_RETURN(int64_t max_body, env::Int("ASYA_MAX_MESSAGE_BYTES", 64LL << 20, 1024,
                                                   4LL * 1024 * 1024 * 1024 - 1));
  c.server.max_body_bytes = static_cast<size_t>(max_body);

  c.guard.client_tokens = asya::SplitTrimmed(env::GetOr("ASYA_GATEWAY_TOKENS", ""));
  if (auto file = env::Get("ASYA_GATEWAY_TOKENS_FILE")) {
    std::ifstream in(*file);
    if (!in) {
      return MakeError(ErrorCode::kInvalidArgument,
                       "ASYA_GATEWAY_TOKENS_FILE='" + *file + "': cannot read the file");
    }
    std::string line;
    while (std::getline(in, line)) {
      auto t = std::string(asya::TrimSpace(line));
      if (!t.empty() && t[0] != '#') {
        c.guard.client_tokens.push_back(t);
      }
    }
  }
  c.guard.callback_token = env::GetOr("ASYA_GATEWAY_TOKEN", "");
  c.guard.allowed_origins = asya::SplitTrimmed(env::GetOr("ASYA_GATEWAY_ALLOWED_ORIGINS", ""));
  ASYA_ASSIGN_OR_RETURN(c.allow_no_auth, env::Bool("ASYA_GATEWAY_ALLOW_NO_AUTH", false));

  c.tools_path = env::GetOr("ASYA_CONFIG_PATH", "");
  c.database_url = env::GetOr("ASYA_DATABASE_URL", c.database_url);
  ASYA_ASSIGN_OR_RETURN(asya::Millis retention,
                        env::Duration("ASYA_GATEWAY_RETENTION", asya::Millis(86'400'000)));
  c.retention = std::chrono::duration_cast<std::chrono::seconds>(retention);
  ASYA_ASSIGN_OR_RETURN(asya::Millis session_idle,
                        env::Duration("ASYA_MCP_SESSION_IDLE_TIMEOUT", asya::Millis(86'400'000)));
  c.session_idle_timeout = std::chrono::duration_cast<std::chrono::seconds>(session_idle);

  asya::env::TransportEnvOptions topts;
  topts.default_kind = env::Get("ASYA_SQS_ENDPOINT")   ? "sqs"
                       : env::Get("ASYA_RABBITMQ_URL") ? "rabbitmq"
                                                       : "sqlite";
  ASYA_ASSIGN_OR_RETURN(c.transport, env::TransportSettingsFromEnv(topts));

  if (c.guard.client_tokens.empty()) {
    if (!c.addr_given) {
      c.server.address = "127.0.0.1";
    } else if (!IsLoopback(c.server.address) && !c.allow_no_auth) {
      return MakeError(ErrorCode::kInvalidArgument,
                       "ASYA_GATEWAY_ADDR='" + c.server.address +
                           "' is not a loopback address and no client tokens are configured "
                           "(set ASYA_GATEWAY_TOKENS or ASYA_GATEWAY_TOKENS_FILE, or "
                           "ASYA_GATEWAY_ALLOW_NO_AUTH=true)");
    }
  } else if (!c.addr_given) {
    c.server.address = "0.0.0.0";
  }
  c.guard.loopback = IsLoopback(c.server.address);
  return c;
}

std::atomic<bool> g_stop{false};

}  // namespace

int main() {
  asya::env::RegisterSecretsFromEnvironment();  // no secret in any log line or error
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  signal(SIGPIPE, SIG_IGN);
  // Every open stream is a socket: use the hard limit on file descriptors, not the soft 1024.
  if (rlimit rl{}; getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }

  auto config = LoadConfig();
  if (!config) {
    std::fprintf(stderr, "asya-gateway: invalid configuration: %s\n",
                 config.error().message.c_str());
    return kExitConfig;
  }
  Config& c = *config;
  asya::log::Configure(c.log_level, c.log_format, "gateway");

  std::vector<asya::gateway::Tool> tools;
  if (!c.tools_path.empty()) {
    auto t = asya::gateway::LoadToolsConfig(c.tools_path);
    if (!t) {
      std::fprintf(stderr, "asya-gateway: invalid configuration: ASYA_CONFIG_PATH: %s\n",
                   t.error().message.c_str());
      return kExitConfig;
    }
    tools = std::move(*t);
  } else {
    asya::log::Warn("ASYA_CONFIG_PATH is not set: no tools are served");
  }

  auto store = asya::store::Open(c.database_url, asya::SystemClock());
  if (!store) {
    // The message may carry the URL; never print its password.
    asya::log::Error("cannot open the store", {{"error", store.error().message}});
    return store.error().code == asya::ErrorCode::kInvalidArgument ? kExitConfig : 1;
  }
  auto transport = asya::transport::MakeTransport(c.transport);
  if (!transport) {
    asya::log::Error("transport failed to start", {{"error", transport.error().message}});
    return 1;
  }

  asya::gateway::ServiceOptions so;
  so.tools = tools;
  so.retention = c.retention;
  so.session_idle_timeout = c.session_idle_timeout;
  asya::gateway::GatewayService service(so, **store, **transport, asya::SystemClock());
  if (auto st = service.Start(); !st) {
    asya::log::Error("gateway service failed to start", {{"error", st.error().message}});
    return 1;
  }

  asya::gateway::Handler mcp = asya::gateway::MakeMcpHandler(
      service, {.loopback = c.guard.loopback, .retention = c.retention});
  asya::gateway::Handler rest = asya::gateway::MakeRestHandler(service, &service, mcp);
  asya::gateway::HttpServer server(c.server, asya::gateway::Guard(c.guard, rest));
  if (auto st = server.Start(); !st) {
    asya::log::Error("cannot listen", {{"error", st.error().message}});
    return 1;
  }
  if (c.guard.client_tokens.empty()) {
    asya::log::Warn(c.guard.loopback
                        ? "no client tokens configured: listening on loopback only"
                        : "no client tokens configured and ASYA_GATEWAY_ALLOW_NO_AUTH=true: "
                          "every client is trusted",
                    {{"address", c.server.address}});
  }
  if (c.guard.callback_token.empty() && !c.guard.client_tokens.empty()) {
    asya::log::Warn(
        "ASYA_GATEWAY_TOKEN is not set: the callback endpoints (progress, final, fan-out) are "
        "open");
  }
  asya::log::Info("listening",
                  {{"address", c.server.address},
                   {"port", server.port()},
                   {"tools", static_cast<long long>(tools.size())},
                   {"transport", c.transport.kind},
                   {"store", c.database_url.rfind("postgres", 0) == 0 ? "postgresql" : "sqlite"},
                   {"client_auth", c.guard.client_tokens.empty() ? "off" : "on"},
                   {"mcp", mcp ? "on" : "off"}});

  int sig = 0;
  while (sigwait(&set, &sig) != 0) {
  }
  asya::log::Info("signal received; shutting down", {{"signal", sig}});
  g_stop = true;
  server.Stop(std::chrono::seconds(10));
  service.Stop();
  return 0;
}
