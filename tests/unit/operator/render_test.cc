// Golden render table: specs -> expected objects (tests/unit/operator/testdata/<case>.yaml), plus
// properties every rendered object must have whatever the golden says.
// Regenerate the goldens after an intended change: ASYA_UPDATE_GOLDEN=1 ctest -R operator_render
// (then review the diff with git).
#include "asya/operator/render.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include <gtest/gtest.h>

#include "asya/operator/config.h"

namespace asya::op {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

const char* kScript = "#!/usr/bin/env python3\n# asya_runtime.py stand-in\nprint('hi')\n";

const char* kConfig = R"(
transports:
  rabbitmq:
    type: rabbitmq
    config:
      host: rabbitmq.asya-system
      passwordSecretRef: {name: rabbitmq, key: password}
  rabbit-plain:
    type: rabbitmq
    config:
      host: rmq
      managementPort: 15673
      vhost: team
      exchange: mesh
      queues: {autoCreate: false}
  sqs:
    type: sqs
    config:
      region: eu-west-1
      accountId: "123456789012"
      actorRoleArn: arn:aws:iam::123456789012:role/asya-actors
  sqs-local:
    type: sqs
    config:
      region: us-east-1
      accountId: "000000000000"
      endpoint: http://localstack:4566/
      visibilityTimeout: 120
      waitTimeSeconds: 10
      credentials:
        accessKeyIdSecretRef: {name: aws, key: id}
        secretAccessKeySecretRef: {name: aws, key: secret}
  off:
    type: sqs
    enabled: false
    config: {region: eu-west-1, accountId: "1"}
gatewayURL: http://asya-gateway.asya-system:8080
sidecarImage: registry.example/asya-sidecar:1.0
namespace: actors
)";

std::string Actor(const std::string& name, const std::string& transport,
                  const std::string& spec_extra = "", const std::string& container_extra = "",
                  const std::string& meta_extra = "", const std::string& pod_extra = "") {
  return "apiVersion: asya.sh/v1alpha1\nkind: AsyncActor\nmetadata:\n  name: " + name + "\n" +
         meta_extra + "spec:\n  transport: " + transport + "\n" + spec_extra +
         "  workload:\n    template:\n      spec:\n" + pod_extra +
         "        containers:\n          - name: asya-runtime\n            image: img:1\n"
         "            env:\n              - name: ASYA_HANDLER\n                value: mod.fn\n" +
         container_extra;
}

// Adds lines under spec.workload (before its template).
std::string WithWorkload(std::string manifest, const std::string& lines) {
  manifest.replace(manifest.find("  workload:\n"), 12, "  workload:\n" + lines);
  return manifest;
}

struct Case {
  const char* name;
  std::string manifests;
};

std::vector<Case> Cases() {
  return {
      {"rabbitmq_manual", Actor("plain", "rabbitmq")},
      {"rabbitmq_scaling_on_by_intent",
       Actor("text-processor", "rabbitmq",
             "  scaling:\n    minReplicas: 0\n    maxReplicas: 50\n    queueLength: 5\n")},
      {"rabbitmq_second_entry",
       Actor("second", "rabbit-plain", "  scaling:\n    enabled: true\n    queueLength: 3\n")},
      {"sqs_irsa", Actor("sqs-actor", "sqs",
                         "  scaling:\n    minReplicas: 1\n    maxReplicas: 4\n"
                         "    cooldownPeriod: 120\n  timeout:\n    processing: 600\n"
                         "    gracefulShutdown: 45\n")},
      {"sqs_static_credentials_endpoint",
       Actor("local-sqs", "sqs-local", "  scaling:\n    enabled: true\n")},
      {"statefulset",
       WithWorkload(Actor("stateful", "rabbitmq", "  scaling:\n    maxReplicas: 3\n"),
                    "    kind: StatefulSet\n")},
      {"advanced_formula", Actor("adv", "rabbitmq",
                                 "  scaling:\n    maxReplicas: 20\n    advanced:\n"
                                 "      formula: ceil(queueLength / 10)\n      target: \"2\"\n"
                                 "      activationTarget: \"1\"\n      metricType: AverageValue\n"
                                 "      restoreToOriginalReplicaCount: true\n")},
      {"everything",
       WithWorkload(
           Actor(
               "full", "rabbitmq",
               "  sidecar:\n    image: side:2\n    imagePullPolicy: Always\n    concurrency: 4\n"
               "    resources:\n      requests:\n        cpu: 100m\n        memory: 64Mi\n"
               "    env:\n      - name: ASYA_LOG_LEVEL\n        value: debug\n"
               "      - name: TOKEN\n        valueFrom:\n          secretKeyRef:\n"
               "            name: tok\n            key: t\n"
               "  retry:\n    maxAttempts: 3\n    backoff: 2s\n    maxBackoff: 1m\n"
               "    nonRetryable: [ValueError, KeyError]\n"
               "  maxDeliveries: 8\n"
               "  timeout:\n    processing: 30\n    visibility: 90\n"
               "  scaling:\n    enabled: false\n    maxReplicas: 9\n",
               "            readinessProbe:\n              httpGet:\n                path: /ready\n"
               "                port: 9000\n"
               "            volumeMounts:\n              - name: data\n"
               "                mountPath: /data\n",
               "  namespace: team-a\n  labels:\n    team: a\n",
               "        volumes:\n          - name: data\n            emptyDir: {}\n"
               "        nodeSelector:\n          pool: cpu\n") +
               "          - name: helper\n            image: helper:1\n",
           "    replicas: 2\n    pythonExecutable: /usr/local/bin/python3.12\n")},
      {"user_labels_cannot_break_the_selector",
       [] {
         std::string m = Actor("labelled", "rabbitmq");
         m.replace(m.find("    template:\n"), 14,
                   "    template:\n      metadata:\n        labels:\n          app: web\n"
                   "          asya.sh/actor: other\n        annotations:\n"
                   "          prometheus.io/scrape: \"true\"\n");
         return m;
       }()},
      {"end_actor", Actor("happy-end", "rabbitmq")},
      {"two_namespaces", Actor("one", "rabbitmq", "", "", "  namespace: ns-a\n") + "---\n" +
                             Actor("two", "rabbitmq", "", "", "  namespace: ns-b\n") + "---\n" +
                             Actor("three", "rabbitmq", "", "", "  namespace: ns-a\n")},
      {"values_file", R"(
transport: rabbitmq
default:
  scaling:
    queueLength: 2
actors:
  - name: text-processor
    scaling:
      minReplicas: 0
      maxReplicas: 50
  - name: manual
    scaling:
      enabled: false
    workload:
      replicas: 3
      template:
        spec:
          containers:
            - name: asya-runtime
              image: manual:1
              env:
                - name: ASYA_HANDLER
                  value: manual.handle
)"},
  };
}

Result<std::vector<json>> RenderText(const std::string& text, const OperatorConfig& config,
                                     const std::string& ns = "") {
  actor::ParseOptions options;
  options.require_transport = true;
  options.skip_crew = false;
  ASYA_ASSIGN_OR_RETURN(auto loaded, actor::ParseManifests(text, "m.yaml", "/m", options));
  RenderOptions ro;
  ro.namespace_ = ns;
  ro.runtime_script = kScript;
  return RenderAll(loaded.actors, config, ro);
}

OperatorConfig Config() {
  auto c = ParseOperatorConfig(kConfig, "config.yaml");
  EXPECT_TRUE(c) << c.error().message;
  return *c;
}

fs::path TestData() {
  const char* src = std::getenv("ASYA_SOURCE_DIR");
  return fs::path(src != nullptr ? src : ".") / "tests/unit/operator/testdata";
}

std::string ReadFile(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

TEST(Golden, RenderTable) {
  const bool update = std::getenv("ASYA_UPDATE_GOLDEN") != nullptr;
  OperatorConfig config = Config();
  for (const auto& c : Cases()) {
    auto objects = RenderText(c.manifests, config);
    ASSERT_TRUE(objects) << c.name << ": " << objects.error().message;
    const std::string got = ToYamlStream(*objects);
    const fs::path file = TestData() / (std::string(c.name) + ".yaml");
    if (update) {
      std::ofstream(file, std::ios::binary) << got;
      continue;
    }
    ASSERT_TRUE(fs::exists(file)) << file << " missing; run with ASYA_UPDATE_GOLDEN=1";
    EXPECT_EQ(got, ReadFile(file)) << c.name << ": rendering differs from " << file
                                   << " (ASYA_UPDATE_GOLDEN=1 regenerates; review the diff)";
    // Deterministic: a second render is byte-identical.
    EXPECT_EQ(got, ToYamlStream(*RenderText(c.manifests, config))) << c.name;
  }
}

const json* Find(const std::vector<json>& objs, const std::string& kind, const std::string& name) {
  for (const auto& o : objs) {
    if (o["kind"] == kind && o["metadata"]["name"] == name) {
      return &o;
    }
  }
  return nullptr;
}

const json& Container(const json& workload, const std::string& name) {
  for (const auto& c : workload["spec"]["template"]["spec"]["containers"]) {
    if (c["name"] == name) {
      return c;
    }
  }
  static const json kNone;
  return kNone;
}

std::string Env(const json& container, const std::string& name) {
  std::string out;  // last wins, as in Kubernetes
  for (const auto& e : container["env"]) {
    if (e["name"] == name && e.contains("value")) {
      out = e["value"].get<std::string>();
    }
  }
  return out;
}

// Properties of every case, independent of the golden files.
TEST(Properties, EveryWorkloadIsWiredAndSelectable) {
  OperatorConfig config = Config();
  for (const auto& c : Cases()) {
    auto objects = RenderText(c.manifests, config);
    ASSERT_TRUE(objects) << c.name;
    int config_maps = 0;
    for (const auto& o : *objects) {
      ASSERT_TRUE(o.contains("apiVersion") && o.contains("kind")) << c.name;
      ASSERT_FALSE(o["metadata"]["namespace"].get<std::string>().empty()) << c.name;
      if (o["kind"] == "ConfigMap") {
        ++config_maps;
        EXPECT_EQ(o["data"][kRuntimeScriptKey], kScript);
        continue;
      }
      if (o["kind"] != "Deployment" && o["kind"] != "StatefulSet") {
        continue;
      }
      const std::string name = o["metadata"]["name"];
      const json& tmpl = o["spec"]["template"];
      // The selector is exactly asya.sh/actor=<name> and the pods carry it.
      EXPECT_EQ(o["spec"]["selector"], json({{"matchLabels", {{kActorLabel, name}}}})) << c.name;
      EXPECT_EQ(tmpl["metadata"]["labels"][kActorLabel], name) << c.name;
      // The sidecar is appended last; the runtime runs the mounted script.
      const json& containers = tmpl["spec"]["containers"];
      EXPECT_EQ(containers.back()["name"], "asya-sidecar") << c.name;
      const json& runtime = Container(o, "asya-runtime");
      EXPECT_EQ(runtime["command"].back(), "/opt/asya/asya_runtime.py") << c.name;
      EXPECT_EQ(Env(runtime, "ASYA_SOCKET_DIR"), "/var/run/asya") << c.name;
      EXPECT_TRUE(runtime.contains("readinessProbe")) << c.name;
      const json& sidecar = Container(o, "asya-sidecar");
      EXPECT_EQ(Env(sidecar, "ASYA_ACTOR_NAME"), name) << c.name;
      EXPECT_EQ(Env(sidecar, "ASYA_SOCKET_DIR"), "/var/run/asya") << c.name;
      // The grace period covers the drain the sidecar is told to do, plus gracefulShutdown.
      const std::string drain = Env(sidecar, "ASYA_SHUTDOWN_TIMEOUT");
      ASSERT_FALSE(drain.empty()) << c.name;
      EXPECT_GT(tmpl["spec"]["terminationGracePeriodSeconds"].get<int>(),
                std::stoi(drain.substr(0, drain.size() - 1)))
          << c.name;
      // Scaling on: the HPA owns replicas and a ScaledObject targets this workload.
      const json* so = Find(*objects, "ScaledObject", name);
      EXPECT_EQ(so == nullptr, o["spec"].contains("replicas")) << c.name;
      if (so != nullptr) {
        EXPECT_EQ((*so)["spec"]["scaleTargetRef"]["kind"], o["kind"]) << c.name;
        EXPECT_EQ((*so)["spec"]["triggers"][0]["name"], kTriggerName) << c.name;
        if ((*so)["spec"]["triggers"][0]["type"] == "rabbitmq") {
          EXPECT_EQ((*so)["spec"]["triggers"][0]["metadata"]["protocol"], "http") << c.name;
        }
        if ((*so)["spec"]["triggers"][0].contains("authenticationRef")) {
          EXPECT_NE(Find(*objects, "TriggerAuthentication", name + "-trigger-auth"), nullptr)
              << c.name;
        }
      }
      if (o["kind"] == "StatefulSet") {
        EXPECT_EQ(o["spec"]["serviceName"], name);
        EXPECT_NE(Find(*objects, "Service", name), nullptr) << c.name;
      }
    }
    EXPECT_GE(config_maps, 1) << c.name;
    // YAML and JSON outputs carry the same objects: the YAML parses back to them.
    auto back = actor::ParseYamlDocuments(ToYamlStream(*objects), "out.yaml");
    ASSERT_TRUE(back) << c.name << ": " << back.error().message;
    EXPECT_EQ(*back, *objects) << c.name;
    EXPECT_EQ(json::parse(ToJsonList(*objects))["items"], json(*objects)) << c.name;
  }
}

TEST(Render, UserValuesAreKeptAndInjectedOnesOverridable) {
  auto objects = RenderText(Cases()[7].manifests, Config());
  ASSERT_TRUE(objects) << objects.error().message;
  const json* d = Find(*objects, "Deployment", "full");
  ASSERT_NE(d, nullptr);
  EXPECT_EQ((*d)["metadata"]["namespace"], "team-a");
  EXPECT_EQ((*d)["spec"]["replicas"], 2);
  const json& runtime = Container(*d, "asya-runtime");
  EXPECT_EQ(runtime["command"][0], "/usr/local/bin/python3.12");
  EXPECT_EQ(runtime["readinessProbe"]["httpGet"]["port"], 9000);  // the user's probe is kept
  EXPECT_EQ(Env(runtime, "ASYA_RUNTIME_CONCURRENCY"), "4");
  const json& sidecar = Container(*d, "asya-sidecar");
  EXPECT_EQ(sidecar["image"], "side:2");
  EXPECT_EQ(sidecar["imagePullPolicy"], "Always");
  EXPECT_EQ(sidecar["resources"]["requests"]["cpu"], "100m");
  EXPECT_EQ(Env(sidecar, "ASYA_LOG_LEVEL"), "debug");  // user entry comes last
  EXPECT_EQ(Env(sidecar, "ASYA_SIDECAR_CONCURRENCY"), "4");
  EXPECT_EQ(Env(sidecar, "ASYA_RETRY_NON_RETRYABLE"), "ValueError,KeyError");
  EXPECT_EQ(Env(sidecar, "ASYA_MAX_DELIVERIES"), "8");
  EXPECT_EQ(Env(sidecar, "ASYA_VISIBILITY_TIMEOUT"), "90s");
  EXPECT_EQ(Env(sidecar, "ASYA_RABBITMQ_HOST"), "rabbitmq.asya-system");
  EXPECT_EQ((*d)["spec"]["template"]["spec"]["terminationGracePeriodSeconds"], 30 + 30);
  EXPECT_EQ((*d)["spec"]["template"]["spec"]["nodeSelector"]["pool"], "cpu");
  EXPECT_EQ((*d)["spec"]["template"]["spec"]["containers"].size(), 3u);
  EXPECT_EQ(Find(*objects, "ScaledObject", "full"), nullptr);  // enabled: false
}

TEST(Render, RefusalsNameFileActorAndField) {
  OperatorConfig config = Config();
  struct Bad {
    std::string manifests;
    std::string ns;
    std::string want;
  };
  std::vector<Bad> cases = {
      {Actor("a", "kafka"), "",
       "m.yaml: actor \"a\": spec.transport: transport 'kafka' is not in the operator's transport "
       "registry (known: off, rabbit-plain, rabbitmq, sqs, sqs-local)"},
      {Actor("a", "off"), "", "m.yaml: actor \"a\": spec.transport: transport 'off' is disabled"},
      {Actor("a", "sqs", "", "", "", "        serviceAccountName: mine\n"), "",
       "m.yaml: actor \"a\": spec.workload.template.spec.serviceAccountName: cannot be set when "
       "transport 'sqs' uses IRSA"},
      {Actor("a", "rabbitmq", "", "", "  namespace: x\n"), "y",
       "m.yaml: actor \"a\": metadata.namespace: is 'x', but --namespace is 'y'"},
  };
  for (const auto& b : cases) {
    auto r = RenderText(b.manifests, config, b.ns);
    ASSERT_FALSE(r) << b.want;
    EXPECT_NE(r.error().message.find(b.want), std::string::npos)
        << "want: " << b.want << "\ngot: " << r.error().message;
  }
  // An SQS entry without accountId cannot build the trigger's queue URL.
  auto cfg =
      ParseOperatorConfig("transports:\n  s:\n    type: sqs\n    config: {region: x}\n", "c");
  ASSERT_TRUE(cfg) << cfg.error().message;
  auto r = RenderText(Actor("a", "s", "  scaling:\n    enabled: true\n"), *cfg);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("m.yaml: actor \"a\": spec.transport: transport 's' (sqs) has "
                                   "no accountId"),
            std::string::npos)
      << r.error().message;
  // Several bad actors: every one is reported.
  r = RenderText(Actor("a", "nope") + "---\n" + Actor("b", "nope2"), config);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("actor \"a\""), std::string::npos);
  EXPECT_NE(r.error().message.find("actor \"b\""), std::string::npos);
}

TEST(Render, NamespaceComesFromManifestThenFlagThenConfig) {
  OperatorConfig config = Config();
  auto r = RenderText(Actor("a", "rabbitmq"), config);
  ASSERT_TRUE(r);
  EXPECT_EQ((*r)[0]["metadata"]["namespace"], "actors");
  r = RenderText(Actor("a", "rabbitmq"), config, "flag-ns");
  ASSERT_TRUE(r);
  for (const auto& o : *r) {
    EXPECT_EQ(o["metadata"]["namespace"], "flag-ns");
  }
}

TEST(Config, DecodingIsStrictAndNamesThePath) {
  struct Bad {
    const char* text;
    const char* want;
  };
  std::vector<Bad> cases = {
      {"transports:\n  r:\n    type: rabbitmq\n    config: {hots: x}\n",
       "c.yaml: transports.r.config.hots: unknown field"},
      {"transports:\n  r:\n    type: rabbitmq\n    config: {}\n",
       "c.yaml: transports.r.config.host: is required"},
      {"transports:\n  r:\n    type: rabbitmq\n    config: {host: \"h:1\"}\n",
       "c.yaml: transports.r.config.host: must be a host name without scheme or port"},
      {"transports:\n  r:\n    type: kafka\n",
       "c.yaml: transports.r.type: must be rabbitmq or sqs"},
      {"transports:\n  r:\n    type: sqs\n    config: {region: x, visibilityTimeout: soon}\n",
       "c.yaml: transports.r.config.visibilityTimeout: must be an integer"},
      {"transports:\n  r:\n    type: sqs\n    config:\n      region: x\n      credentials:\n"
       "        accessKeyIdSecretRef: {name: a, key: b}\n",
       "c.yaml: transports.r.config.credentials: needs both"},
      {"sidecarImg: x\n", "c.yaml: sidecarImg: unknown field"},
      {"transports:\n  Bad_Name:\n    type: sqs\n", "c.yaml: transports.Bad_Name: name must be"},
      {"[1, 2]\n", "c.yaml: : must be an object"},
  };
  for (const auto& b : cases) {
    auto r = ParseOperatorConfig(b.text, "c.yaml");
    ASSERT_FALSE(r) << b.text;
    EXPECT_NE(r.error().message.find(b.want), std::string::npos)
        << "want: " << b.want << "\ngot: " << r.error().message;
  }
  // JSON works too (the operator's ASYA_TRANSPORT_CONFIG), queues.autoCreate defaults as §5.1.
  auto r = ParseOperatorConfig(
      R"({"transports": {"r": {"type": "rabbitmq", "enabled": true,
          "config": {"host": "h", "port": 5673, "queues": {"dlq": {"enabled": true}}}}}})",
      "c.json");
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->transports["r"].rabbitmq.port, 5673);
  EXPECT_FALSE(r->transports["r"].rabbitmq.queues.auto_create);
  EXPECT_TRUE(r->transports["r"].rabbitmq.queues.dlq_enabled);
  EXPECT_TRUE(DefaultOperatorConfig().transports.count("rabbitmq"));
}

TEST(Yaml, StringsThatLookLikeOtherTypesRoundTrip) {
  json v = {{"a", "true"},
            {"b", "5"},
            {"c", "-c"},
            {"d", "a: b"},
            {"e", "x #y"},
            {"f", ""},
            {"g", "line1\nline2\n"},
            {"h", "  lead\n"},
            {"i", "tail\n\n\n"},
            {"j", "no"},
            {"k", "1.5"},
            {"l", "~"},
            {"m", "ünïcode"},
            {"n", "tab\there"},
            {"o", "x:"},
            {"p", "[x]"},
            {"q", "0755"},
            {"r", "a\n\nb"},
            {"s", "{}"},
            {"t", json::array()},
            {"u", json::object()},
            {"v", nullptr},
            {"w", 3.25},
            {"x", json::array({json::array({1, 2}), json::object({{"k", "v"}})})},
            {"key: with colon", 1},
            {"y", "quote\"and\\slash"},
            {"z", "cr\rlf"}};
  auto back = actor::ParseYamlDocuments(ToYaml(v), "v.yaml");
  ASSERT_TRUE(back) << back.error().message << "\n" << ToYaml(v);
  ASSERT_EQ(back->size(), 1u);
  EXPECT_EQ((*back)[0], v) << ToYaml(v);
}

}  // namespace
}  // namespace asya::op
