// `asya render` throughput, in process (called from bench/render/run.sh):
//   asya     : parse + validate N AsyncActor manifests, render them, emit the YAML stream
//   baseline : yaml-cpp parse + emit of the same output documents (what any YAML round trip of
//              these objects costs, without the model, validation or rendering)
// Usage: asya-bench-render N RUNTIME_PY [--write FILE | --no-baseline]
// (--write: only write the manifests, for the CLI run; --no-baseline: for profiling)
// Prints: render N=1000: asya 123ms (load 40, render 30, emit 53), baseline yaml-cpp 456ms, ...
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <yaml-cpp/yaml.h>

#include "asya/actor/manifest.h"
#include "asya/operator/config.h"
#include "asya/operator/render.h"

namespace {

using Clock = std::chrono::steady_clock;

double Ms(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

// N actors, a mix of what users write: RabbitMQ with scaling, SQS with IRSA, manual replicas,
// StatefulSets, sidecar settings and retry policy.
std::string Manifests(int n) {
  std::string out;
  for (int i = 0; i < n; ++i) {
    const std::string name = "actor-" + std::to_string(i);
    out += "---\napiVersion: asya.sh/v1alpha1\nkind: AsyncActor\nmetadata:\n  name: " + name +
           "\n  labels:\n    team: t" + std::to_string(i % 7) +
           "\nspec:\n  transport: " + (i % 3 == 0 ? "sqs" : "rabbitmq") + "\n";
    if (i % 4 != 3) {
      out += "  scaling:\n    minReplicas: 0\n    maxReplicas: " + std::to_string(5 + i % 20) +
             "\n    queueLength: " + std::to_string(1 + i % 10) + "\n";
    }
    out += "  timeout:\n    processing: " + std::to_string(30 + i % 300) + "\n";
    if (i % 5 == 0) {
      out +=
          "  sidecar:\n    concurrency: 4\n    resources:\n      requests:\n"
          "        cpu: 50m\n        memory: 64Mi\n"
          "  retry:\n    maxAttempts: 3\n    backoff: 2s\n    nonRetryable: [ValueError]\n";
    }
    out += "  workload:\n";
    if (i % 10 == 9) {
      out += "    kind: StatefulSet\n";
    }
    out +=
        "    template:\n      spec:\n        containers:\n          - name: asya-runtime\n"
        "            image: registry.example/actors/" +
        name +
        ":1.0\n            env:\n              - name: ASYA_HANDLER\n"
        "                value: handlers.h" +
        std::to_string(i) + ".process\n              - name: MODEL\n                value: \"m-" +
        std::to_string(i % 13) +
        "\"\n            resources:\n              limits:\n                cpu: \"1\"\n"
        "                memory: 512Mi\n";
  }
  return out;
}

const char* kConfig = R"(
transports:
  rabbitmq:
    type: rabbitmq
    config: {host: rabbitmq.asya-system, passwordSecretRef: {name: rabbitmq, key: password}}
  sqs:
    type: sqs
    config: {region: eu-west-1, accountId: "123456789012", actorRoleArn: "arn:aws:iam::1:role/a"}
)";

std::string BaselineYamlCpp(const std::string& stream) {
  YAML::Emitter emitter;
  for (const auto& doc : YAML::LoadAll(stream)) {
    emitter << YAML::BeginDoc << doc;
  }
  return emitter.c_str();
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: asya-bench-render N RUNTIME_PY [--write FILE]\n");
    return 2;
  }
  const int n = std::atoi(argv[1]);
  std::ifstream script_in(argv[2], std::ios::binary);
  std::stringstream script;
  script << script_in.rdbuf();
  const std::string text = Manifests(n);
  if (argc >= 5 && std::string(argv[3]) == "--write") {
    std::ofstream(argv[4], std::ios::binary) << text;
    std::ofstream(std::string(argv[4]) + ".config.yaml", std::ios::binary) << kConfig;
    return 0;
  }
  auto config = asya::op::ParseOperatorConfig(kConfig, "bench");
  if (!config) {
    std::fprintf(stderr, "%s\n", config.error().message.c_str());
    return 1;
  }
  asya::actor::ParseOptions po;
  po.require_transport = true;
  asya::op::RenderOptions ro;
  ro.runtime_script = script.str();

  const bool skip_baseline = argc >= 4 && std::string(argv[3]) == "--no-baseline";
  const int reps = 5;
  std::vector<double> load_ms, render_ms, emit_ms, total_ms, base_ms;
  size_t bytes = 0;
  std::vector<double> cpu_ms;
  for (int r = 0; r < reps; ++r) {
    const std::clock_t c0 = std::clock();
    auto t0 = Clock::now();
    auto loaded = asya::actor::ParseManifests(text, "bench.yaml", "/bench", po);
    auto t1 = Clock::now();
    if (!loaded) {
      std::fprintf(stderr, "%s\n", loaded.error().message.c_str());
      return 1;
    }
    auto objects = asya::op::RenderAll(loaded->actors, *config, ro);
    auto t2 = Clock::now();
    if (!objects) {
      std::fprintf(stderr, "%s\n", objects.error().message.c_str());
      return 1;
    }
    const std::string out = asya::op::ToYamlStream(*objects);
    auto t3 = Clock::now();
    cpu_ms.push_back(1000.0 * static_cast<double>(std::clock() - c0) / CLOCKS_PER_SEC);
    bytes = out.size();
    const std::string base = skip_baseline ? std::string("x") : BaselineYamlCpp(out);
    auto t4 = Clock::now();
    if (base.empty()) {
      return 1;
    }
    load_ms.push_back(Ms(t0, t1));
    render_ms.push_back(Ms(t1, t2));
    emit_ms.push_back(Ms(t2, t3));
    total_ms.push_back(Ms(t0, t3));
    base_ms.push_back(Ms(t3, t4));
  }
  auto median = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
  };
  const double total = median(total_ms);
  const double base = median(base_ms);
  std::printf(
      "render N=%d: asya %.0fms wall, %.0fms CPU (load+validate %.0f, render %.0f, emit %.0f; "
      "%zu KB out), baseline yaml-cpp parse+emit of the output %.0fms, ratio %.2f (target: asya "
      "< 1000ms)\n",
      n, total, median(cpu_ms), median(load_ms), median(render_ms), median(emit_ms), bytes / 1024,
      base, total / base);
  return 0;
}
