// asya-sidecar: consumes `asya-<actor>`, calls the runtime over its Unix socket, routes results.
//
// Configuration comes from the environment only (every variable: docs/sidecar.md). Exit codes:
// 0 graceful shutdown (SIGTERM/SIGINT), 1 runtime never ready / transport could not start,
// 2 invalid configuration (one line on stderr naming the variable).
#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <malloc.h>
#include <signal.h>

#include "asya/base/clock.h"
#include "asya/base/duration.h"
#include "asya/base/env_names.h"
#include "asya/base/exit_codes.h"
#include "asya/base/log.h"
#include "asya/base/runtime_files.h"
#include "asya/base/strings.h"
#include "asya/base/transport_kinds.h"
#include "asya/protocol/runtime_client.h"
#include "asya/sidecar/gateway.h"
#include "asya/sidecar/http_server.h"
#include "asya/sidecar/metrics.h"
#include "asya/sidecar/sidecar.h"
#include "asya/transport/factory.h"
#include "bin/common/env.h"
#include "bin/common/transport_env.h"

namespace {

using asya::Millis;
using asya::Result;

constexpr int kExitConfig = asya::exit_code::kSidecarBadConfig;

struct Config {
  asya::sidecar::Settings sidecar;
  asya::transport::TransportSettings transport;
  asya::log::Level log_level = asya::log::Level::kInfo;
  asya::log::Format log_format = asya::log::Format::kText;
  bool queue_auto_create = false;
  bool metrics_enabled = true;
  std::string metrics_addr = ":8080";
  std::string metrics_namespace = "asya_actor";
  std::string custom_metrics;
  std::string gateway_url;
  std::string gateway_token;
  size_t max_message_bytes = 64u << 20;
};

Result<Config> LoadConfig() {
  namespace env = asya::env;
  namespace name = asya::env_name;
  Config c;
  auto& s = c.sidecar;
  auto& p = s.policy;

  if (auto level = env::Get("ASYA_LOG_LEVEL")) {
    auto l = asya::log::ParseLevel(*level);
    if (!l) {
      return asya::MakeError(asya::ErrorCode::kInvalidArgument,
                             "ASYA_LOG_LEVEL='" + *level + "': expected DEBUG|INFO|WARN|ERROR");
    }
    c.log_level = *l;
  }
  if (auto format = env::Get("ASYA_LOG_FORMAT")) {
    auto f = asya::log::ParseFormat(*format);
    if (!f) {
      return asya::MakeError(asya::ErrorCode::kInvalidArgument,
                             "ASYA_LOG_FORMAT='" + *format + "': expected json|text");
    }
    c.log_format = *f;
  }

  auto actor = env::Get(name::kActorName);
  if (!actor) {
    return asya::MakeError(asya::ErrorCode::kInvalidArgument, "ASYA_ACTOR_NAME is required");
  }
  p.actor = *actor;
  p.happy_end = env::GetOr("ASYA_ACTOR_HAPPY_END", "happy-end");
  p.error_end = env::GetOr("ASYA_ACTOR_ERROR_END", "error-end");
  ASYA_ASSIGN_OR_RETURN(p.is_end_actor, env::Bool(name::kIsEndActor, false));
  ASYA_ASSIGN_OR_RETURN(p.max_hops, env::Int("ASYA_MAX_HOPS", 1000, 1, 1'000'000'000));
  ASYA_ASSIGN_OR_RETURN(p.max_deliveries, env::Int("ASYA_MAX_DELIVERIES", 5, 0, 1'000'000'000));
  ASYA_ASSIGN_OR_RETURN(int64_t max_bytes, env::Int("ASYA_MAX_MESSAGE_BYTES", 64LL << 20, 1024,
                                                    4LL * 1024 * 1024 * 1024 - 1));
  c.max_message_bytes = static_cast<size_t>(max_bytes);
  p.max_message_bytes = c.max_message_bytes;
  ASYA_ASSIGN_OR_RETURN(p.retry_max_attempts, env::Int("ASYA_RETRY_MAX_ATTEMPTS", 1, 1, 1000));
  ASYA_ASSIGN_OR_RETURN(p.retry_backoff, env::Duration("ASYA_RETRY_BACKOFF", Millis(1000)));
  ASYA_ASSIGN_OR_RETURN(p.retry_max_backoff,
                        env::Duration("ASYA_RETRY_MAX_BACKOFF", Millis(300'000)));
  p.non_retryable = asya::SplitTrimmed(env::GetOr("ASYA_RETRY_NON_RETRYABLE", ""));

  ASYA_ASSIGN_OR_RETURN(s.runtime_timeout, env::Duration(name::kRuntimeTimeout, Millis(300'000)));
  if (s.runtime_timeout.count() <= 0) {
    return asya::MakeError(asya::ErrorCode::kInvalidArgument,
                           "ASYA_RUNTIME_TIMEOUT must be positive");
  }
  p.runtime_timeout = s.runtime_timeout;
  ASYA_ASSIGN_OR_RETURN(s.ready_timeout,
                        env::Duration("ASYA_RUNTIME_READY_TIMEOUT", Millis(300'000)));
  ASYA_ASSIGN_OR_RETURN(s.shutdown_timeout, env::Duration("ASYA_SHUTDOWN_TIMEOUT", Millis(25'000)));
  ASYA_ASSIGN_OR_RETURN(int64_t concurrency, env::Int(name::kSidecarConcurrency, 1, 1, 1000));
  s.concurrency = static_cast<int>(concurrency);

  // Visibility: ASYA_VISIBILITY_TIMEOUT, else ASYA_SQS_VISIBILITY_TIMEOUT (0 = unset), else
  // 2 x ASYA_RUNTIME_TIMEOUT (DESIGN precise 10).
  s.visibility = 2 * s.runtime_timeout;
  ASYA_ASSIGN_OR_RETURN(Millis sqs_visibility,
                        env::Duration("ASYA_SQS_VISIBILITY_TIMEOUT", Millis(0)));
  if (sqs_visibility.count() > 0) {
    s.visibility = sqs_visibility;
  }
  ASYA_ASSIGN_OR_RETURN(s.visibility, env::Duration("ASYA_VISIBILITY_TIMEOUT", s.visibility));
  if (s.visibility.count() <= 0) {
    return asya::MakeError(asya::ErrorCode::kInvalidArgument,
                           "ASYA_VISIBILITY_TIMEOUT must be positive");
  }

  std::string socket_dir = env::GetOr(name::kSocketDir, asya::runtime_files::kDefaultSocketDir);
  s.socket_path = socket_dir + "/" + asya::runtime_files::kSocketName;
  if (s.socket_path.size() >= 108) {
    return asya::MakeError(asya::ErrorCode::kInvalidArgument,
                           "ASYA_SOCKET_DIR is too long for a Unix socket path (" +
                               std::to_string(s.socket_path.size()) + " bytes, max 107)");
  }

  ASYA_ASSIGN_OR_RETURN(c.transport, env::TransportSettingsFromEnv());
  // RabbitMQ: prefetch = 2 x concurrency unless ASYA_RABBITMQ_PREFETCH says otherwise. A message
  // stays unacked while its output waits for the publisher confirm; the sidecar holds up to
  // 2 x concurrency messages, so the next ones can already run while earlier ones are confirmed
  // (src/transport/rabbitmq/README.md, docs/benchmarks.md "RabbitMQ").
  if (!env::Get("ASYA_RABBITMQ_PREFETCH")) {
    c.transport.rabbitmq.prefetch = std::min(65535, 2 * s.concurrency);
  }
  // SQLite settles and receives in one transaction (src/transport/sqlite/README.md).
  s.fold_receive_into_settle = c.transport.kind == asya::transport_kind::kSqlite;
  ASYA_ASSIGN_OR_RETURN(int64_t wait_s, env::Int("ASYA_SQS_WAIT_TIME_SECONDS", 20, 0, 20));
  s.receive_wait = Millis((wait_s == 0 ? 20 : wait_s) * 1000);
  ASYA_ASSIGN_OR_RETURN(c.queue_auto_create, env::Bool(name::kQueueAutoCreate, false));

  ASYA_ASSIGN_OR_RETURN(c.metrics_enabled, env::Bool(name::kMetricsEnabled, true));
  c.metrics_addr = env::GetOr("ASYA_METRICS_ADDR", ":8080");
  c.metrics_namespace = env::GetOr("ASYA_METRICS_NAMESPACE", "asya_actor");
  c.custom_metrics = env::GetOr("ASYA_CUSTOM_METRICS", "");
  c.gateway_url = env::GetOr("ASYA_GATEWAY_URL", "");
  c.gateway_token = env::GetOr("ASYA_GATEWAY_TOKEN", "");
  return c;
}

// The sidecar the signal thread stops. The mutex keeps main() from destroying the sidecar while
// the signal thread is inside Shutdown() (TSan found the Impl's condition variables destroyed
// under a notify_all when SIGTERM arrived as Run() returned).
std::mutex g_sidecar_mu;
asya::sidecar::Sidecar* g_sidecar = nullptr;  // guarded by g_sidecar_mu
bool g_starting = true;  // guarded by g_sidecar_mu: no sidecar made yet, nothing received
std::atomic<bool> g_stop_requested{false};

void SetSidecar(asya::sidecar::Sidecar* sidecar) {
  std::lock_guard<std::mutex> lock(g_sidecar_mu);
  g_sidecar = sidecar;
  g_starting = false;
}

// Signals are blocked in every thread; this thread turns SIGTERM/SIGINT into Shutdown().
void SignalThread(sigset_t set) {
  while (true) {
    int sig = 0;
    if (sigwait(&set, &sig) != 0) {
      continue;
    }
    if (g_stop_requested.exchange(true)) {
      asya::log::Warn("second signal; exiting now", {{"signal", sig}});
      std::fflush(nullptr);
      std::_Exit(1);
    }
    std::lock_guard<std::mutex> lock(g_sidecar_mu);
    if (g_starting) {
      // Still connecting to the broker (up to its connect timeout, 15 s on RabbitMQ) or creating
      // the queue: no message was taken yet, so there is nothing to drain; stop at once.
      asya::log::Info("signal received while starting; exiting", {{"signal", sig}});
      std::fflush(nullptr);
      std::_Exit(asya::exit_code::kSidecarStopped);
    }
    asya::log::Info("signal received; shutting down", {{"signal", sig}});
    if (g_sidecar != nullptr) {
      g_sidecar->Shutdown();
    }
  }
}

}  // namespace

int main() {
  asya::env::RegisterSecretsFromEnvironment();  // no secret in any log line or error
  // Buffers of 1 MiB and more (large message bodies) get their own mappings and go back to the
  // OS when freed. Without a fixed threshold glibc raises it dynamically after the first large
  // free (up to 32 MiB) and then keeps large bodies in per-thread arenas for good.
  mallopt(M_MMAP_THRESHOLD, 1 << 20);
  // A fixed mmap threshold also fixes the trim threshold at glibc's 128 KiB default: SQLite's
  // per-transaction buffers (its page-cache bulk, ~87 KB, and a 64 KB b-tree balance buffer) then
  // sat at the top of a worker's arena and every free gave them back with madvise(), whose TLB
  // shoot-down (an IPI to every CPU) cost the sqlite hop ~25 % of the sidecar's CPU. Small
  // buffers stay; after a large message the worker still calls malloc_trim(0).
  mallopt(M_TRIM_THRESHOLD, 8 << 20);
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  signal(SIGPIPE, SIG_IGN);

  auto config = LoadConfig();
  if (!config) {
    std::fprintf(stderr, "asya-sidecar: invalid configuration: %s\n",
                 config.error().message.c_str());
    return kExitConfig;
  }
  Config& c = *config;
  const auto& p = c.sidecar.policy;
  asya::log::Configure(c.log_level, c.log_format, "sidecar");

  // Custom metrics are validated even when metrics are disabled: a bad value is a config error.
  auto metrics = std::make_unique<asya::sidecar::Metrics>(
      asya::sidecar::MetricsOptions{c.metrics_namespace, p.actor, c.transport.kind});
  if (!c.custom_metrics.empty()) {
    auto st = metrics->RegisterCustom(c.custom_metrics);
    if (!st) {
      std::fprintf(stderr, "asya-sidecar: invalid configuration: %s\n", st.error().message.c_str());
      return kExitConfig;
    }
  }
  if (!c.metrics_enabled) {
    metrics.reset();
  }

  std::thread(SignalThread, set).detach();

  asya::log::Info("starting",
                  {{"actor", p.actor},
                   {"transport", c.transport.kind},
                   {"end_actor", p.is_end_actor ? "true" : "false"},
                   {"socket", c.sidecar.socket_path},
                   {"concurrency", c.sidecar.concurrency},
                   {"runtime_timeout", asya::FormatGoDuration(c.sidecar.runtime_timeout)},
                   {"retry_max_attempts", static_cast<long long>(p.retry_max_attempts)},
                   {"max_deliveries", static_cast<long long>(p.max_deliveries)}});

  std::unique_ptr<asya::sidecar::HttpServer> http;
  if (metrics) {
    http = std::make_unique<asya::sidecar::HttpServer>(
        asya::sidecar::MetricsHandler([m = metrics.get()] { return m->Render(); }));
    auto st = http->Start(c.metrics_addr);
    if (!st) {
      asya::log::Error("metrics server not started", {{"error", st.error().message}});
      http.reset();
    } else {
      asya::log::Info("metrics server listening", {{"port", http->port()}});
    }
  }

  auto transport = asya::transport::MakeTransport(c.transport);
  if (!transport) {
    asya::log::Error("transport failed to start", {{"error", transport.error().message}});
    return 1;
  }
  if (c.queue_auto_create) {
    auto queue = asya::transport::QueueName(p.actor);
    auto st = (*transport)->CreateQueue(queue, {});
    if (!st) {
      asya::log::Error("queue auto-create failed",
                       {{"queue", queue}, {"error", st.error().message}});
      return 1;
    }
  }

  std::unique_ptr<asya::sidecar::GatewayReporter> gateway;
  if (!c.gateway_url.empty()) {
    asya::sidecar::GatewayOptions go;
    go.url = c.gateway_url;
    go.token = c.gateway_token;
    gateway = std::make_unique<asya::sidecar::GatewayReporter>(go);
    if (!gateway->Healthy()) {
      // Unlike the original, a gateway that is down at startup is not fatal: reports are queued
      // and retried (DESIGN §4.9).
      asya::log::Warn("gateway health check failed; reports will be retried",
                      {{"url", c.gateway_url}});
    }
  }

  asya::protocol::RuntimeClient runtime(
      {.socket_path = c.sidecar.socket_path, .max_frame_bytes = c.max_message_bytes});
  asya::sidecar::Sidecar sidecar(c.sidecar, **transport, runtime, metrics.get(), gateway.get(),
                                 asya::SystemClock());
  SetSidecar(&sidecar);
  if (g_stop_requested) {
    sidecar.Shutdown();
  }
  int code = sidecar.Run();
  SetSidecar(nullptr);  // from here on the signal thread no longer touches the sidecar
  if (gateway) {
    gateway->Stop(Millis(5000));
  }
  if (http) {
    http->Stop();
  }
  if (!sidecar.Drained()) {
    std::fflush(nullptr);
    std::_Exit(code);
  }
  return code;
}
