// asya-operator: the Kubernetes controller for AsyncActor (asya.sh/v1alpha1). The only place
// that reads the environment; everything else is src/operator (asya::op) and src/k8s.
//
// Environment (names as deploy/helm-charts/asya-operator/templates/deployment.yaml sets them):
//   KUBECONFIG                      kubeconfig path (out of cluster; else in-cluster, else
//                                   ~/.kube/config)
//   KUBERNETES_SERVICE_HOST/_PORT   in-cluster API address (service-account token and CA)
//   ASYA_TRANSPORT_CONFIG           the operator configuration / transport registry (JSON or YAML
//                                   text, reference-controlplane §5.1); a parse error exits 1
//   ASYA_TRANSPORT_CONFIG_FILE      the same, from a file
//   ASYA_SIDECAR_IMAGE, ASYA_GATEWAY_URL   override the configuration's values
//   ASYA_RUNTIME_SCRIPT_PATH        asya_runtime.py (/runtime/asya_runtime.py)
//   ASYA_MAX_CONCURRENT_RECONCILES  workers (10; <= 0 -> 1)
//   ASYA_DISABLE_QUEUE_MANAGEMENT   "true": no queue create/delete
//   ASYA_WATCH_NAMESPACE            watch one namespace ("" = all)
//   ASYA_RESYNC_PERIOD              periodic resync, Go duration (5m)
//   ASYA_LOG_LEVEL                  debug|info|warn|error (info)
//   ASYA_METRICS_ADDR               Prometheus /metrics (":8080"; "0" = off)
//   ASYA_HEALTH_ADDR                /healthz and /readyz (":8081"; "0" = off)
//   ASYA_LEADER_ELECT               "true": leader election on Lease asya-operator.asya.sh
//   ASYA_LEADER_ELECTION_NAMESPACE  namespace of the Lease (the service account's, else default)
//   ASYA_LEASE_DURATION / ASYA_LEASE_RENEW_INTERVAL / ASYA_LEASE_RETRY_INTERVAL (15s / 5s / 2s)
//   POD_NAME                        leader identity (else the host name)
// AWS credentials for SQS queue administration come from the usual AWS_* variables.
#include <atomic>
#include <csignal>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <sstream>

#include <unistd.h>

#include "asya/base/log.h"
#include "asya/k8s/client.h"
#include "asya/operator/config.h"
#include "asya/operator/controller.h"
#include "asya/sidecar/http_server.h"
#include "bin/common/env.h"
#include "bin/common/transport_env.h"

namespace {

std::atomic<bool> g_stop{false};

void OnSignal(int) {
  g_stop = true;
}

int Fail(const std::string& message) {
  std::cerr << "asya-operator: " << message << "\n";
  return 1;
}

}  // namespace

int main() {
  asya::env::RegisterSecretsFromEnvironment();  // no secret in any log line or error
  using namespace asya;
  auto level = log::ParseLevel(env::GetOr("ASYA_LOG_LEVEL", "info"));
  if (!level)
    return Fail(level.error().message);
  log::Configure(*level, log::Format::kText, "operator");

  // Connection.
  Result<k8s::Config> kc = MakeError(ErrorCode::kNotFound, "no Kubernetes configuration");
  std::string kubeconfig = env::GetOr("KUBECONFIG", "");
  if (!kubeconfig.empty()) {
    kc = k8s::LoadKubeconfig(kubeconfig.substr(0, kubeconfig.find(':')));
  } else if (!env::GetOr("KUBERNETES_SERVICE_HOST", "").empty()) {
    kc = k8s::InClusterConfig(env::GetOr("KUBERNETES_SERVICE_HOST", ""),
                              env::GetOr("KUBERNETES_SERVICE_PORT", "443"));
  } else if (!env::GetOr("HOME", "").empty()) {
    kc = k8s::LoadKubeconfig(env::GetOr("HOME", "") + "/.kube/config");
  }
  if (!kc)
    return Fail(kc.error().message);

  // Configuration.
  op::ControllerOptions o;
  std::string config_text = env::GetOr("ASYA_TRANSPORT_CONFIG", "");
  std::string config_source = "ASYA_TRANSPORT_CONFIG";
  if (std::string f = env::GetOr("ASYA_TRANSPORT_CONFIG_FILE", ""); !f.empty()) {
    std::ifstream in(f);
    if (!in)
      return Fail("ASYA_TRANSPORT_CONFIG_FILE: cannot read " + f);
    std::ostringstream s;
    s << in.rdbuf();
    config_text = s.str();
    config_source = f;
  }
  if (config_text.empty()) {
    o.config = op::OperatorConfig{};  // an empty registry
  } else {
    auto parsed = op::ParseOperatorConfig(config_text, config_source);
    if (!parsed)
      return Fail(parsed.error().message);
    o.config = std::move(*parsed);
  }
  if (auto v = env::Get("ASYA_SIDECAR_IMAGE"); v && !v->empty())
    o.config.sidecar_image = *v;
  if (auto v = env::Get("ASYA_GATEWAY_URL"); v)
    o.config.gateway_url = *v;
  o.runtime_script_path = env::GetOr("ASYA_RUNTIME_SCRIPT_PATH", "/runtime/asya_runtime.py");
  auto workers = env::Int("ASYA_MAX_CONCURRENT_RECONCILES", 10, -1000000, 1000);
  if (!workers)
    return Fail(workers.error().message);
  o.workers = *workers <= 0 ? 1 : static_cast<int>(*workers);
  o.queue_management = env::GetOr("ASYA_DISABLE_QUEUE_MANAGEMENT", "") != "true";
  o.watch_namespace = env::GetOr("ASYA_WATCH_NAMESPACE", "");
  auto resync = env::Duration("ASYA_RESYNC_PERIOD", std::chrono::minutes(5));
  if (!resync)
    return Fail(resync.error().message);
  o.resync = *resync;
  auto le = env::Bool("ASYA_LEADER_ELECT", false);
  if (!le)
    return Fail(le.error().message);
  o.leader_elect = *le;
  o.lease_namespace = env::GetOr("ASYA_LEADER_ELECTION_NAMESPACE", "");
  if (o.lease_namespace.empty())
    o.lease_namespace = kc->ns.empty() ? "default" : kc->ns;
  auto ld = env::Duration("ASYA_LEASE_DURATION", std::chrono::seconds(15));
  auto lr = env::Duration("ASYA_LEASE_RENEW_INTERVAL", std::chrono::seconds(5));
  auto lt = env::Duration("ASYA_LEASE_RETRY_INTERVAL", std::chrono::seconds(2));
  if (!ld)
    return Fail(ld.error().message);
  if (!lr)
    return Fail(lr.error().message);
  if (!lt)
    return Fail(lt.error().message);
  o.lease_duration = *ld;
  o.renew_interval = *lr;
  o.retry_interval = *lt;
  o.identity = env::GetOr("POD_NAME", "");
  if (o.identity.empty()) {
    char host[256] = {0};
    ::gethostname(host, sizeof host - 1);
    o.identity = std::string(host) + "-" + std::to_string(::getpid());
  }
  env::TransportEnvOptions teo;
  teo.kind = "sqs";
  auto sqs = env::TransportSettingsFromEnv(teo);
  if (!sqs)
    return Fail(sqs.error().message);
  o.sqs_defaults = sqs->sqs;

  k8s::Client client(*kc);
  op::Controller controller(client, o);

  // Probes and metrics.
  sidecar::HttpServer health([&](std::string_view path) {
    sidecar::HttpResponse r;
    if (path == "/healthz") {
      r.body = "ok";
    } else if (path == "/readyz") {
      bool ok = controller.Ready();
      r.status = ok ? 200 : 500;
      r.body = ok ? "ok" : "not ready";
    } else if (path == "/metrics") {
      r.content_type = "text/plain; version=0.0.4";
      r.body = controller.Metrics();
    } else {
      r.status = 404;
      r.body = "not found";
    }
    return r;
  });
  sidecar::HttpServer metrics(sidecar::MetricsHandler([&] { return controller.Metrics(); }));
  std::string health_addr = env::GetOr("ASYA_HEALTH_ADDR", ":8081");
  std::string metrics_addr = env::GetOr("ASYA_METRICS_ADDR", ":8080");
  if (health_addr != "0") {
    if (auto s = health.Start(health_addr); !s)
      return Fail("ASYA_HEALTH_ADDR: " + s.error().message);
    log::Info("operator: health on port " + std::to_string(health.port()));
  }
  if (metrics_addr != "0") {
    if (auto s = metrics.Start(metrics_addr); !s) {
      return Fail("ASYA_METRICS_ADDR: " + s.error().message);
    }
    log::Info("operator: metrics on port " + std::to_string(metrics.port()));
  }

  std::signal(SIGTERM, OnSignal);
  std::signal(SIGINT, OnSignal);
  log::Info("operator: starting as " + o.identity + " against " + kc->server);
  auto s = controller.Run(g_stop);
  health.Stop();
  metrics.Stop();
  if (!s)
    return Fail(s.error().message);
  return 0;
}
