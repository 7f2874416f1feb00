#include "asya/actor/manifest.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "asya/base/yaml_text.h"

namespace asya::actor {
namespace {

// A valid AsyncActor; tests replace one piece at a time.
std::string Actor(const std::string& name = "scorer", const std::string& spec_extra = "",
                  const std::string& container_extra = "", const std::string& pod_extra = "") {
  return "apiVersion: asya.sh/v1alpha1\n"
         "kind: AsyncActor\n"
         "metadata:\n"
         "  name: " +
         name +
         "\n"
         "spec:\n"
         "  transport: rabbitmq\n" +
         spec_extra +
         "  workload:\n"
         "    template:\n"
         "      spec:\n" +
         pod_extra +
         "        containers:\n"
         "          - name: asya-runtime\n"
         "            image: python:3.11\n"
         "            env:\n"
         "              - name: ASYA_HANDLER\n"
         "                value: scorer.Scorer.score\n" +
         container_extra;
}

std::string ErrorOf(const std::string& text, bool require_transport = false) {
  ParseOptions options;
  options.require_transport = require_transport;
  auto r = ParseManifests(text, "m.yaml", "/tmp", options);
  if (r) {
    return "";
  }
  return r.error().message;
}

TEST(Manifest, ValidActorGetsCrdDefaults) {
  auto r = ParseManifests(Actor(), "m.yaml", "/work/x");
  ASSERT_TRUE(r) << r.error().message;
  ASSERT_EQ(r->actors.size(), 1u);
  const ActorSpec& a = r->actors[0];
  EXPECT_EQ(a.name, "scorer");
  EXPECT_EQ(a.directory, "/work/x");
  EXPECT_EQ(a.transport, "rabbitmq");
  EXPECT_FALSE(a.scaling.present);
  EXPECT_FALSE(a.scaling.enabled);
  EXPECT_EQ(a.workload_replicas, 1);
  EXPECT_EQ(a.workload_kind, "Deployment");
  EXPECT_EQ(a.python_executable, "python3");
  EXPECT_EQ(a.processing_timeout_s, 300);  // the CRD default, with or without spec.timeout
  EXPECT_EQ(a.graceful_shutdown_s, 30);
  EXPECT_EQ(a.visibility_timeout_s, 0);
  EXPECT_EQ(a.sidecar_concurrency, 1);
  EXPECT_EQ(a.retry.max_attempts, 1);
  EXPECT_EQ(a.retry.backoff, "1s");
  EXPECT_EQ(a.retry.max_backoff, "5m");
  EXPECT_TRUE(a.retry.non_retryable.empty());
  EXPECT_EQ(a.max_deliveries, 5);
  EXPECT_EQ(a.sidecar_image_pull_policy, "IfNotPresent");
  EXPECT_EQ(a.RuntimeEnv("ASYA_HANDLER"), "scorer.Scorer.score");
  EXPECT_TRUE(a.local_command.empty());
}

TEST(Manifest, ScalingDefaultsApplyWhenTheObjectIsPresent) {
  auto r = ParseManifests(Actor("a", "  scaling:\n    enabled: true\n"), "m.yaml", "/");
  ASSERT_TRUE(r) << r.error().message;
  const ScalingSpec& s = r->actors[0].scaling;
  EXPECT_TRUE(s.present);
  EXPECT_TRUE(s.enabled);
  EXPECT_EQ(s.min_replicas, 0);
  EXPECT_EQ(s.max_replicas, 50);
  EXPECT_EQ(s.polling_interval_s, 10);
  EXPECT_EQ(s.cooldown_period_s, 60);
  EXPECT_EQ(s.queue_length, 5);
}

TEST(Manifest, TimeoutAndScalingValuesAreRead) {
  auto r =
      ParseManifests(Actor("a",
                           "  timeout:\n    processing: 12\n    gracefulShutdown: 7\n"
                           "  scaling:\n    enabled: true\n    minReplicas: 1\n    maxReplicas: 4\n"
                           "    pollingInterval: 2\n    cooldownPeriod: 9\n    queueLength: 3\n"),
                     "m.yaml", "/");
  ASSERT_TRUE(r) << r.error().message;
  const ActorSpec& a = r->actors[0];
  EXPECT_EQ(a.processing_timeout_s, 12);
  EXPECT_EQ(a.graceful_shutdown_s, 7);
  EXPECT_EQ(a.scaling.min_replicas, 1);
  EXPECT_EQ(a.scaling.max_replicas, 4);
  EXPECT_EQ(a.scaling.polling_interval_s, 2);
  EXPECT_EQ(a.scaling.cooldown_period_s, 9);
  EXPECT_EQ(a.scaling.queue_length, 3);
}

TEST(Manifest, MultiDocumentAndLocalCommand) {
  std::string text = Actor("one") + "---\n" +
                     "apiVersion: asya.sh/v1alpha1\nkind: AsyncActor\nmetadata:\n  name: two\n"
                     "  annotations:\n    asya.sh/local-command: \"./bin/echo --flag 'a b'\"\n"
                     "spec:\n  transport: sqs\n  workload:\n    template:\n      spec:\n"
                     "        containers:\n          - name: asya-runtime\n            image: x\n"
                     "---\n";
  auto r = ParseManifests(text, "m.yaml", "/");
  ASSERT_TRUE(r) << r.error().message;
  ASSERT_EQ(r->actors.size(), 2u);
  EXPECT_EQ(r->actors[1].name, "two");
  EXPECT_EQ(r->actors[1].local_command, (std::vector<std::string>{"./bin/echo", "--flag", "a b"}));
}

TEST(Manifest, RefusesSidecarContainer) {  // V1
  std::string e = ErrorOf(Actor("a", "", "          - name: asya-sidecar\n            image: x\n"));
  EXPECT_NE(e.find("m.yaml: actor \"a\": spec.workload.template.spec.containers[1].name"),
            std::string::npos)
      << e;
  EXPECT_NE(e.find("'asya-sidecar' is reserved"), std::string::npos) << e;
}

TEST(Manifest, RefusesSidecarInitContainer) {  // V2
  std::string e = ErrorOf(Actor("a", "", "",
                                "        initContainers:\n          - name: asya-sidecar\n"
                                "            image: x\n"));
  EXPECT_NE(e.find("initContainers[0].name: 'asya-sidecar' is reserved"), std::string::npos) << e;
}

TEST(Manifest, RefusesTwoRuntimeContainers) {  // V3
  std::string e = ErrorOf(Actor("a", "", "          - name: asya-runtime\n            image: y\n"));
  EXPECT_NE(e.find("exactly one container named asya-runtime, found 2"), std::string::npos) << e;
}

TEST(Manifest, RefusesMissingRuntimeContainer) {  // V3
  std::string text =
      "apiVersion: asya.sh/v1alpha1\nkind: AsyncActor\nmetadata:\n  name: a\nspec:\n"
      "  transport: sqs\n  workload:\n    template:\n      spec:\n        containers:\n"
      "          - name: main\n            image: x\n";
  std::string e = ErrorOf(text);
  EXPECT_NE(e.find("exactly one container named asya-runtime, found 0"), std::string::npos) << e;
}

TEST(Manifest, RefusesCommandOnRuntime) {  // V4
  std::string e = ErrorOf(Actor("a", "", "            command: [python, x.py]\n"));
  EXPECT_NE(e.find("containers[0].command: must not be set on asya-runtime"), std::string::npos)
      << e;
}

TEST(Manifest, RefusesMinAboveMax) {
  std::string e = ErrorOf(
      Actor("a", "  scaling:\n    enabled: true\n    minReplicas: 5\n    maxReplicas: 2\n"));
  EXPECT_NE(e.find("actor \"a\": spec.scaling.minReplicas: must be <= maxReplicas (5 > 2)"),
            std::string::npos)
      << e;
}

TEST(Manifest, RefusesQueueLengthZero) {
  std::string e = ErrorOf(Actor("a", "  scaling:\n    enabled: true\n    queueLength: 0\n"));
  EXPECT_NE(e.find("spec.scaling.queueLength: must be >= 1, got 0"), std::string::npos) << e;
}

TEST(Manifest, RefusesNegativeTimeout) {
  std::string e = ErrorOf(Actor("a", "  timeout:\n    processing: -1\n"));
  EXPECT_NE(e.find("spec.timeout.processing: must be >= 0, got -1"), std::string::npos) << e;
}

TEST(Manifest, RefusesNonDnsNames) {
  for (const char* bad : {"Scorer", "my_actor", "1abc", "abc-", "a.b"}) {
    std::string e = ErrorOf(Actor(bad));
    EXPECT_NE(e.find("metadata.name: must be a DNS-1123 label"), std::string::npos)
        << bad << ": " << e;
  }
  EXPECT_TRUE(IsValidActorName("happy-end"));
  EXPECT_TRUE(IsValidActorName("a1-b2"));
  EXPECT_FALSE(IsValidActorName(std::string(254, 'a')));
}

TEST(Manifest, RefusesReservedEnv) {
  std::string e =
      ErrorOf(Actor("a", "", "              - name: ASYA_SOCKET_DIR\n                value: /x\n"));
  EXPECT_NE(e.find("env[ASYA_SOCKET_DIR]: is reserved"), std::string::npos) << e;
  e = ErrorOf(Actor(
      "a", "", "              - name: ASYA_ENABLE_VALIDATION\n                value: 'false'\n"));
  EXPECT_NE(e.find("env[ASYA_ENABLE_VALIDATION]: is reserved"), std::string::npos) << e;
}

TEST(Manifest, RefusesReservedVolumesAndMounts) {
  std::string e = ErrorOf(Actor("a", "", "", "        volumes:\n          - name: socket-dir\n"));
  EXPECT_NE(e.find("volumes[0].name: 'socket-dir' is reserved"), std::string::npos) << e;
  e = ErrorOf(Actor("a", "",
                    "            volumeMounts:\n              - name: data\n"
                    "                mountPath: /var/run/asya\n"));
  EXPECT_NE(e.find("volumeMounts[0].mountPath: '/var/run/asya' is reserved"), std::string::npos)
      << e;
}

TEST(Manifest, RefusesContainerWithoutImageAndDuplicates) {
  std::string e = ErrorOf(Actor("a", "", "          - name: helper\n"));
  EXPECT_NE(e.find("containers[1].image: is required"), std::string::npos) << e;
  e = ErrorOf(Actor("a", "",
                    "          - name: helper\n            image: x\n"
                    "          - name: helper\n            image: x\n"));
  EXPECT_NE(e.find("duplicate container name 'helper'"), std::string::npos) << e;
}

TEST(Manifest, RefusesWrongTypes) {
  std::string e = ErrorOf(Actor("a", "  scaling:\n    enabled: true\n    maxReplicas: lots\n"));
  EXPECT_NE(e.find("spec.scaling.maxReplicas: must be an integer, got 'lots'"), std::string::npos)
      << e;
  e = ErrorOf(Actor("a", "  scaling:\n    enabled: maybe\n"));
  EXPECT_NE(e.find("spec.scaling.enabled: must be a boolean"), std::string::npos) << e;
  e = ErrorOf(Actor("a", "", "              - name: RATE\n                value: 5\n"));
  EXPECT_NE(e.find("env[RATE].value: must be a string, got '5' (quote it: \"5\")"),
            std::string::npos)
      << e;
  e = ErrorOf(Actor("a", "  scaling: [1, 2]\n"));
  EXPECT_NE(e.find("spec.scaling: must be an object, got a list"), std::string::npos) << e;
}

TEST(Manifest, RefusesMissingRequiredFields) {
  const std::string no_transport =
      "apiVersion: asya.sh/v1alpha1\nkind: AsyncActor\nmetadata:\n  name: a\nspec:\n"
      "  workload:\n    replicas: 1\n";
  std::string e = ErrorOf(no_transport, /*require_transport=*/true);
  EXPECT_NE(e.find("m.yaml: actor \"a\": spec.transport: is required"), std::string::npos) << e;
  // asya up picks the transport itself: only the template is missing there.
  e = ErrorOf(no_transport);
  EXPECT_EQ(e.find("spec.transport"), std::string::npos) << e;
  EXPECT_NE(e.find("spec.workload.template: is required"), std::string::npos) << e;
  e = ErrorOf("apiVersion: asya.sh/v1alpha1\nkind: AsyncActor\nmetadata: {}\nspec: {}\n");
  EXPECT_NE(e.find("metadata.name: is required"), std::string::npos) << e;
}

TEST(Manifest, RefusesMissingHandler) {
  std::string text =
      "apiVersion: asya.sh/v1alpha1\nkind: AsyncActor\nmetadata:\n  name: a\nspec:\n"
      "  transport: sqs\n  workload:\n    template:\n      spec:\n        containers:\n"
      "          - name: asya-runtime\n            image: x\n";
  std::string e = ErrorOf(text);
  EXPECT_NE(e.find("ASYA_HANDLER is required"), std::string::npos) << e;
}

TEST(Manifest, RefusesBadEnums) {
  std::string e = ErrorOf(Actor("a", "  workload:\n    kind: Pod\n"));
  // `workload` appears twice in this text: YAML keeps one; either way an error must name a field.
  EXPECT_FALSE(e.empty());
  std::string text = Actor("a");
  text.replace(text.find("  workload:\n"), 12, "  workload:\n    kind: ReplicaSet\n");
  e = ErrorOf(text);
  EXPECT_NE(e.find("spec.workload.kind: must be one of Deployment, StatefulSet, got 'ReplicaSet'"),
            std::string::npos)
      << e;
}

TEST(Manifest, RefusesWrongKindAndApiVersion) {
  std::string e = ErrorOf("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n");
  EXPECT_NE(e.find("kind: must be AsyncActor"), std::string::npos) << e;
  std::string text = Actor("a");
  text.replace(0, std::string("apiVersion: asya.sh/v1alpha1").size(), "apiVersion: asya.sh/v2");
  e = ErrorOf(text);
  EXPECT_NE(e.find("apiVersion: must be asya.sh/v1alpha1, got 'asya.sh/v2'"), std::string::npos)
      << e;
}

TEST(Manifest, RefusesInvalidYamlWithLine) {
  std::string e = ErrorOf("apiVersion: asya.sh/v1alpha1\nkind: [unclosed\n");
  EXPECT_NE(e.find("m.yaml:"), std::string::npos) << e;
  EXPECT_NE(e.find("invalid YAML"), std::string::npos) << e;
}

TEST(Manifest, RefusesDuplicateNames) {
  std::string e = ErrorOf(Actor("a") + "---\n" + Actor("a"));
  EXPECT_NE(e.find("actor \"a\": metadata.name: declared twice"), std::string::npos) << e;
}

TEST(Manifest, ReportsEveryProblemAtOnce) {
  std::string e = ErrorOf(Actor("Bad_Name", "  scaling:\n    enabled: true\n    queueLength: 0\n",
                                "            command: [x]\n"));
  EXPECT_NE(e.find("DNS-1123"), std::string::npos);
  EXPECT_NE(e.find("queueLength"), std::string::npos);
  EXPECT_NE(e.find("command"), std::string::npos);
}

TEST(Manifest, ScalingBlockWithoutEnabledMeansOn) {  // DESIGN precise behaviour 11
  auto r = ParseManifests(Actor("a", "  scaling:\n    minReplicas: 0\n    maxReplicas: 3\n"),
                          "m.yaml", "/");
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_TRUE(r->actors[0].scaling.enabled);
  EXPECT_EQ(r->actors[0].scaling.max_replicas, 3);
  r = ParseManifests(Actor("a", "  scaling:\n    enabled: false\n"), "m.yaml", "/");
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_TRUE(r->actors[0].scaling.present);
  EXPECT_FALSE(r->actors[0].scaling.enabled);
}

TEST(Manifest, WarnsAboutDisabledScaling) {
  auto r = ParseManifests(Actor("a", "  scaling:\n    enabled: false\n    minReplicas: 0\n"),
                          "m.yaml", "/");
  ASSERT_TRUE(r) << r.error().message;
  std::string all;
  for (const auto& w : r->warnings) {
    all += w + "\n";
  }
  EXPECT_NE(all.find("spec.scaling.enabled: is false"), std::string::npos) << all;
}

// Issue 11 item 7: misspelt fields are refused (as the CRD's strict validation does), naming
// file, actor and field, with the closest known name.
TEST(Manifest, RefusesMisspeltFieldsWithASuggestion) {
  struct Case {
    std::string spec_extra;
    std::string line;
  };
  const std::vector<Case> cases = {
      {"  scalling:\n    enabled: true\n",
       "m.yaml: actor \"a\": spec.scalling: unknown field; did you mean `scaling`?"},
      {"  scaling:\n    minReplica: 0\n",
       "m.yaml: actor \"a\": spec.scaling.minReplica: unknown field; did you mean "
       "`minReplicas`?"},
      {"  scaling:\n    maxReplicaz: 3\n",
       "m.yaml: actor \"a\": spec.scaling.maxReplicaz: unknown field; did you mean "
       "`maxReplicas`?"},
      {"  timeout:\n    procesing: 5\n",
       "m.yaml: actor \"a\": spec.timeout.procesing: unknown field; did you mean `processing`?"},
      {"  retry:\n    maxAttempt: 3\n",
       "m.yaml: actor \"a\": spec.retry.maxAttempt: unknown field; did you mean `maxAttempts`?"},
      {"  sidecar:\n    concurency: 2\n",
       "m.yaml: actor \"a\": spec.sidecar.concurency: unknown field; did you mean `concurrency`?"},
      {"  scaling:\n    advanced:\n      fromula: x\n",
       "spec.scaling.advanced.fromula: unknown field; did you mean `formula`?"},
      {"  colour: blue\n",
       "spec.colour: unknown field (known: transport, sidecar, timeout, scaling, workload, "
       "retry, maxDeliveries)"},
  };
  for (const auto& c : cases) {
    std::string e = ErrorOf(Actor("a", c.spec_extra));
    EXPECT_NE(e.find(c.line), std::string::npos) << c.spec_extra << "\n" << e;
  }
  std::string text = Actor("a");
  text.replace(text.find("  workload:\n"), 12, "  workload:\n    replica: 2\n");
  std::string e = ErrorOf(text);
  EXPECT_NE(e.find("spec.workload.replica: unknown field; did you mean `replicas`?"),
            std::string::npos)
      << e;
  e = ErrorOf("sepc: {}\n" + Actor("a"));
  EXPECT_NE(e.find("m.yaml: actor \"a\": sepc: unknown field; did you mean `spec`?"),
            std::string::npos)
      << e;
  // metadata and the pod template are free-form as on a cluster.
  EXPECT_EQ(ErrorOf(Actor("a", "", "            imagePullPolicy: Always\n")), "");
}

TEST(Manifest, UnknownFieldTextSuggestsOnlyCloseNames) {
  EXPECT_EQ(UnknownFieldText("minReplica", {"minReplicas", "maxReplicas"}),
            "unknown field; did you mean `minReplicas`?");
  EXPECT_EQ(UnknownFieldText("QueueLength", {"queueLength"}),
            "unknown field; did you mean `queueLength`?");
  EXPECT_EQ(UnknownFieldText("zzz", {"image", "env"}), "unknown field (known: image, env)");
}

TEST(Manifest, EmptyTransportIsFineForUp) {
  std::string text = Actor("a");
  text.replace(text.find("  transport: rabbitmq\n"), 22, "  transport: \"\"\n");
  EXPECT_EQ(ErrorOf(text), "");
  EXPECT_NE(ErrorOf(text, /*require_transport=*/true).find("spec.transport: is required"),
            std::string::npos);
}

// ---- values files ----

TEST(Values, ActorsAreDeepMergedOverDefaults) {  // deploy/README.md: the chart's algorithm
  std::string text = R"(
transport: rabbitmq
default:
  scaling:
    minReplicas: 0
    queueLength: 2
actors:
  - name: first
    workload:
      template:
        spec:
          containers:
            - name: asya-runtime
              image: img
              env:
                - name: ASYA_HANDLER
                  value: first.handle
  - name: second
    transport: sqs
    scaling:
      enabled: true
      maxReplicas: 3
    workload:
      replicas: 2
      template:
        spec:
          containers:
            - name: asya-runtime
              image: img
              env:
                - name: ASYA_HANDLER
                  value: second.handle
)";
  auto r = ParseManifests(text, "values.yaml", "/v");
  ASSERT_TRUE(r) << r.error().message;
  ASSERT_EQ(r->actors.size(), 2u);
  const ActorSpec& first = r->actors[0];
  // default.scaling is deep-merged with the chart default (Helm), then with the actor's own.
  EXPECT_EQ(first.transport, "rabbitmq");
  EXPECT_TRUE(first.scaling.enabled);
  EXPECT_EQ(first.scaling.min_replicas, 0);
  EXPECT_EQ(first.scaling.max_replicas, 10);
  EXPECT_EQ(first.scaling.queue_length, 2);
  EXPECT_EQ(first.scaling.cooldown_period_s, 60);
  const ActorSpec& second = r->actors[1];
  // An actor's own scaling merges key by key over the defaults.
  EXPECT_EQ(second.transport, "sqs");
  EXPECT_TRUE(second.scaling.enabled);
  EXPECT_EQ(second.scaling.max_replicas, 3);
  EXPECT_EQ(second.scaling.min_replicas, 0);
  EXPECT_EQ(second.scaling.queue_length, 2);
  EXPECT_EQ(second.scaling.cooldown_period_s, 60);
  EXPECT_EQ(second.workload_replicas, 2);
  EXPECT_EQ(second.RuntimeEnv("ASYA_HANDLER"), "second.handle");
}

TEST(Values, DefaultWorkloadIsUsedWhenTheActorHasNone) {
  std::string text = R"(
transport: sqs
default:
  workload:
    template:
      spec:
        containers:
          - name: asya-runtime
            image: shared
            env:
              - name: ASYA_HANDLER
                value: shared.handle
actors:
  - name: uses-default
)";
  auto r = ParseManifests(text, "values.yaml", "/v");
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->actors[0].RuntimeEnv("ASYA_HANDLER"), "shared.handle");
  EXPECT_TRUE(r->actors[0].scaling.enabled);  // chart default scaling
  EXPECT_EQ(r->actors[0].scaling.min_replicas, 1);
}

TEST(Values, DisabledScalingRendersOnlyEnabled) {
  std::string text = R"(
transport: sqs
actors:
  - name: manual
    scaling:
      enabled: false
      minReplicas: 7
)";
  auto r = ParseManifests(text, "values.yaml", "/v");
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_FALSE(r->actors[0].scaling.enabled);
  EXPECT_EQ(r->actors[0].scaling.min_replicas, 0);  // not rendered by the chart
}

TEST(Values, SeedShorthandAndRootFallbacks) {
  std::string text = R"(
transport: sqs
namespace: team-a
default:
  workload:
    template:
      spec:
        containers:
          - name: asya-runtime
            image: base:1
            env:
              - name: ASYA_HANDLER
                value: base.handle
              - name: KEEP
                value: "k"
              - name: LEVEL
                value: "1"
actors:
  - name: text-processor
    scaling:
      minReplicas: 0
      maxReplicas: 50
    image: my-processor:v1
    handler: processor.TextProcessor.process
    env:
      - name: LEVEL
        value: "2"
    resources:
      limits:
        cpu: "1"
)";
  auto r = ParseManifests(text, "values.yaml", "/v");
  ASSERT_TRUE(r) << r.error().message;
  const ActorSpec& a = r->actors[0];
  EXPECT_EQ(a.transport, "sqs");
  EXPECT_EQ(a.namespace_, "team-a");
  EXPECT_TRUE(a.scaling.enabled);
  EXPECT_EQ(a.scaling.min_replicas, 0);
  EXPECT_EQ(a.scaling.max_replicas, 50);
  EXPECT_EQ(a.RuntimeEnv("ASYA_HANDLER"), "processor.TextProcessor.process");
  std::vector<EnvVar> want = {
      {"KEEP", "k"}, {"LEVEL", "2"}, {"ASYA_HANDLER", "processor.TextProcessor.process"}};
  EXPECT_EQ(a.runtime_env, want);
  const auto& c = a.pod_template["spec"]["containers"][0];
  EXPECT_EQ(c["image"], "my-processor:v1");
  EXPECT_EQ(c["resources"]["limits"]["cpu"], "1");
}

TEST(Values, ErrorsNameTheListPosition) {
  std::string text = R"(
transport: sqs
actors:
  - name: Bad_Name
  - 42
)";
  auto r = ParseManifests(text, "values.yaml", "/v");
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("values.yaml: actors[0]: actor \"Bad_Name\": metadata.name"),
            std::string::npos)
      << r.error().message;
  EXPECT_NE(r.error().message.find("values.yaml: actors[1]: must be an object"), std::string::npos)
      << r.error().message;
}

TEST(Values, MissingTransportIsReported) {
  ParseOptions options;
  options.require_transport = true;
  auto r = ParseManifests("actors:\n  - name: a\n", "values.yaml", "/v", options);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("spec.transport: is required"), std::string::npos)
      << r.error().message;
}

TEST(Load, DirectoriesFilesAndCrossFileDuplicates) {
  namespace fs = std::filesystem;
  fs::path dir = fs::temp_directory_path() / ("asya-manifest-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  std::ofstream(dir / "a.yaml") << Actor("one");
  std::ofstream(dir / "b.yml") << Actor("two");
  std::ofstream(dir / "notes.txt") << "ignored";
  auto r = LoadManifests({dir.string()});
  ASSERT_TRUE(r) << r.error().message;
  ASSERT_EQ(r->actors.size(), 2u);
  EXPECT_EQ(r->actors[0].name, "one");
  EXPECT_EQ(r->actors[0].directory, dir.string());
  std::ofstream(dir / "c.yaml") << Actor("one");
  r = LoadManifests({dir.string()});
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("c.yaml: actor \"one\": metadata.name: declared more than once"),
            std::string::npos)
      << r.error().message;
  auto missing = LoadManifests({(dir / "nope.yaml").string()});
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, ErrorCode::kNotFound);
  fs::remove_all(dir);
}

TEST(Load, OversizedManifestsAreRefusedWithTheirSize) {
  namespace fs = std::filesystem;
  fs::path file = fs::temp_directory_path() / ("asya-big-" + std::to_string(::getpid()) + ".yaml");
  std::string text = Actor("big") + "# " + std::string(kMaxManifestBytes, 'x') + "\n";
  std::ofstream(file) << text;
  auto r = LoadManifests({file.string()});
  fs::remove(file);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument);
  EXPECT_NE(r.error().message.find(std::to_string(text.size()) +
                                   " bytes; a manifest file may have at most 4194304 bytes"),
            std::string::npos)
      << r.error().message;
  auto p = ParseManifests(text, "stdin", "/v", {});
  ASSERT_FALSE(p);
  EXPECT_NE(p.error().message.find("stdin: "), std::string::npos) << p.error().message;
  // Deeply nested YAML is refused too (yaml-cpp's depth guard), not a stack overflow.
  auto deep = ParseManifests(std::string(5000, '['), "deep.yaml", "/v", {});
  ASSERT_FALSE(deep);
  EXPECT_EQ(deep.error().code, ErrorCode::kInvalidArgument);
}

TEST(Load, CrewNamesAreIgnoredWithAWarning) {
  namespace fs = std::filesystem;
  fs::path file = fs::temp_directory_path() / ("asya-crew-" + std::to_string(::getpid()) + ".yaml");
  std::ofstream(file) << Actor("happy-end");
  auto r = LoadManifests({file.string()});
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_TRUE(r->actors.empty());
  ASSERT_FALSE(r->warnings.empty());
  EXPECT_NE(r->warnings[0].find("asya up runs its own crew actor"), std::string::npos);
  fs::remove(file);
}

TEST(SplitCommand, QuotesAndEscapes) {
  auto r = SplitCommand(R"(a "b c" 'd e' f\ g)");
  ASSERT_TRUE(r);
  EXPECT_EQ(*r, (std::vector<std::string>{"a", "b c", "d e", "f g"}));
  EXPECT_FALSE(SplitCommand("a 'b"));
}

TEST(Fingerprint, ChangesWithSpec) {
  auto a = ParseManifests(Actor("a"), "m.yaml", "/");
  auto b = ParseManifests(Actor("a", "  timeout:\n    processing: 5\n"), "m.yaml", "/");
  ASSERT_TRUE(a && b);
  EXPECT_NE(a->actors[0].Fingerprint(), b->actors[0].Fingerprint());
  EXPECT_EQ(a->actors[0].Fingerprint(),
            ParseManifests(Actor("a"), "x", "/")->actors[0].Fingerprint());
}

// ---- our additions: concurrency, retry policy, max deliveries, visibility ----

TEST(Fields, AreReadAndMappedToTheSidecar) {
  auto r = ParseManifests(Actor("a",
                                "  sidecar:\n    concurrency: 4\n"
                                "    env:\n      - name: ASYA_LOG_LEVEL\n        value: debug\n"
                                "  retry:\n    maxAttempts: 3\n    backoff: 500ms\n"
                                "    maxBackoff: 1m\n    nonRetryable: [ValueError, KeyError]\n"
                                "  maxDeliveries: 7\n"
                                "  timeout:\n    processing: 60\n    visibility: 90\n"),
                          "m.yaml", "/");
  ASSERT_TRUE(r) << r.error().message;
  const ActorSpec& a = r->actors[0];
  EXPECT_EQ(a.sidecar_concurrency, 4);
  EXPECT_EQ(a.retry.max_attempts, 3);
  EXPECT_EQ(a.max_deliveries, 7);
  EXPECT_EQ(a.visibility_timeout_s, 90);
  std::vector<EnvVar> want = {{"ASYA_ACTOR_NAME", "a"},
                              {"ASYA_RUNTIME_TIMEOUT", "60s"},
                              {"ASYA_SIDECAR_CONCURRENCY", "4"},
                              {"ASYA_RETRY_MAX_ATTEMPTS", "3"},
                              {"ASYA_RETRY_BACKOFF", "500ms"},
                              {"ASYA_RETRY_MAX_BACKOFF", "1m"},
                              {"ASYA_RETRY_NON_RETRYABLE", "ValueError,KeyError"},
                              {"ASYA_MAX_DELIVERIES", "7"},
                              {"ASYA_VISIBILITY_TIMEOUT", "90s"}};
  EXPECT_EQ(SidecarSpecEnv(a), want);
  want.push_back({"ASYA_LOG_LEVEL", "debug"});
  EXPECT_EQ(EffectiveSidecarEnv(a), want);
}

TEST(Fields, DefaultsMapToTheSidecarsOwnDefaults) {
  auto r = ParseManifests(Actor("happy-end"), "m.yaml", "/");
  ASSERT_TRUE(r) << r.error().message;
  std::vector<EnvVar> want = {{"ASYA_ACTOR_NAME", "happy-end"}, {"ASYA_IS_END_ACTOR", "true"},
                              {"ASYA_RUNTIME_TIMEOUT", "300s"}, {"ASYA_SIDECAR_CONCURRENCY", "1"},
                              {"ASYA_RETRY_MAX_ATTEMPTS", "1"}, {"ASYA_RETRY_BACKOFF", "1s"},
                              {"ASYA_RETRY_MAX_BACKOFF", "5m"}, {"ASYA_MAX_DELIVERIES", "5"}};
  EXPECT_EQ(SidecarSpecEnv(r->actors[0]), want);
}

TEST(Fields, ClusterOnlyPartsAreKeptAsJson) {
  auto r = ParseManifests(
      Actor("a",
            "  sidecar:\n    image: side:1\n    imagePullPolicy: Always\n"
            "    resources:\n      limits:\n        cpu: 500m\n        memory: 128Mi\n"
            "    env:\n      - name: SECRET\n        valueFrom:\n          secretKeyRef:\n"
            "            name: s\n            key: k\n",
            "            ports:\n              - containerPort: 9000\n"),
      "m.yaml", "/");
  ASSERT_TRUE(r) << r.error().message;
  const ActorSpec& a = r->actors[0];
  EXPECT_EQ(a.sidecar_image, "side:1");
  EXPECT_EQ(a.sidecar_image_pull_policy, "Always");
  EXPECT_EQ(a.sidecar_resources["limits"]["cpu"], "500m");
  ASSERT_EQ(a.sidecar_env_json.size(), 1u);
  EXPECT_EQ(a.sidecar_env_json[0]["valueFrom"]["secretKeyRef"]["key"], "k");
  EXPECT_TRUE(a.sidecar_env.empty());  // valueFrom cannot be resolved by asya up
  const auto& c = a.pod_template["spec"]["containers"][0];
  EXPECT_EQ(c["ports"][0]["containerPort"], 9000);  // typed as a number
  EXPECT_EQ(c["env"][0]["value"], "scorer.Scorer.score");
}

TEST(Yaml, ScalarsAreTypedLikeAnApiServerReadsThem) {
  auto docs = ParseYamlDocuments("a: 1\nb: '1'\nc: true\nd: ~\ne: 1.5\nf: text\ng: \"yes\"\n---\n",
                                 "x.yaml");
  ASSERT_TRUE(docs) << docs.error().message;
  ASSERT_EQ(docs->size(), 1u);
  EXPECT_EQ((*docs)[0], nlohmann::json::parse(
                            R"({"a":1,"b":"1","c":true,"d":null,"e":1.5,"f":"text","g":"yes"})"));
  auto bad = ParseYamlDocuments("a: [\n", "x.yaml");
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message.find("x.yaml:"), std::string::npos);
}

// Every refusal, with the exact line asya up and asya render print.
TEST(Refusals, EveryMessageNamesFileActorAndField) {
  struct Case {
    std::string spec_extra, container_extra, pod_extra, want;
  };
  const std::string p = "m.yaml: actor \"a\": ";
  std::vector<Case> cases = {
      {"  sidecar:\n    concurrency: 0\n", "", "",
       p + "spec.sidecar.concurrency: must be >= 1, got 0"},
      {"  sidecar:\n    concurrency: many\n", "", "",
       p + "spec.sidecar.concurrency: must be an integer, got 'many'"},
      {"  sidecar:\n    imagePullPolicy: Sometimes\n", "", "",
       p + "spec.sidecar.imagePullPolicy: must be one of Always, IfNotPresent, Never, got "
           "'Sometimes'"},
      {"  sidecar:\n    resources: 1\n", "", "",
       p + "spec.sidecar.resources: must be an object, got a scalar ('1')"},
      {"  retry:\n    maxAttempts: 0\n", "", "", p + "spec.retry.maxAttempts: must be >= 1, got 0"},
      {"  retry:\n    backoff: soon\n", "", "", p + "spec.retry.backoff: invalid duration 'soon'"},
      {"  retry:\n    maxBackoff: -1s\n", "", "",
       p + "spec.retry.maxBackoff: invalid duration '-1s'"},
      {"  retry:\n    nonRetryable: [\"A,B\"]\n", "", "",
       p + "spec.retry.nonRetryable[0]: must be one exception class name"},
      {"  retry:\n    nonRetryable: ValueError\n", "", "",
       p + "spec.retry.nonRetryable: must be a list, got a scalar ('ValueError')"},
      {"  maxDeliveries: 0\n", "", "", p + "spec.maxDeliveries: must be >= 1, got 0"},
      {"  timeout:\n    visibility: -5\n", "", "",
       p + "spec.timeout.visibility: must be >= 0, got -5"},
      {"  timeout:\n    gracefulShutdown: -1\n", "", "",
       p + "spec.timeout.gracefulShutdown: must be >= 0, got -1"},
      {"  scaling:\n    maxReplicas: 0\n", "", "",
       p + "spec.scaling.maxReplicas: must be >= 1, got 0"},
      {"  scaling:\n    minReplicas: -1\n", "", "",
       p + "spec.scaling.minReplicas: must be >= 0, got -1"},
      {"  scaling:\n    pollingInterval: 0\n", "", "",
       p + "spec.scaling.pollingInterval: must be >= 1 second, got 0"},
      {"  scaling:\n    cooldownPeriod: -1\n", "", "",
       p + "spec.scaling.cooldownPeriod: must be >= 0, got -1"},
      {"  scaling:\n    advanced:\n      formula: ceil(queueLength / 10)\n", "", "",
       p + "spec.scaling.advanced.target: is required with a formula"},
      {"  scaling:\n    advanced:\n      metricType: Max\n", "", "",
       p + "spec.scaling.advanced.metricType: must be one of AverageValue, Value, Utilization"},
      {"",
       "            volumeMounts:\n              - name: x\n"
       "                mountPath: /opt/asya/asya_runtime.py\n",
       "",
       p + "spec.workload.template.spec.containers[0].volumeMounts[0].mountPath: "
           "'/opt/asya/asya_runtime.py' is reserved"},
      {"", "", "        volumes:\n          - name: tmp\n",
       p + "spec.workload.template.spec.volumes[0].name: 'tmp' is reserved"},
      {"", "", "        volumes:\n          - name: asya-runtime\n",
       p + "spec.workload.template.spec.volumes[0].name: 'asya-runtime' is reserved"},
      {"", "              - name: X\n                value: [1]\n", "",
       p + "spec.workload.template.spec.containers[0].env[X].value: must be a string, got a list"},
  };
  for (const auto& c : cases) {
    std::string text = Actor("a", c.spec_extra, c.container_extra, c.pod_extra);
    if (c.spec_extra.rfind("  transport:", 0) == 0) {
      text.replace(text.find("  transport: rabbitmq\n"), 22, "");
    }
    std::string e = ErrorOf(text);
    EXPECT_NE(e.find(c.want), std::string::npos) << "want: " << c.want << "\ngot: " << e;
  }
}

TEST(Refusals, UnknownFieldsAreRefusedEverywhereWeRead) {
  std::string all = ErrorOf(Actor("a",
                                  "  sidecar:\n    concurency: 2\n"
                                  "  retry:\n    attempts: 2\n  maxDelivery: 3\n"));
  EXPECT_NE(all.find("m.yaml: actor \"a\": spec.sidecar.concurency: unknown field; did you mean "
                     "`concurrency`?"),
            std::string::npos)
      << all;
  EXPECT_NE(all.find("spec.retry.attempts: unknown field; did you mean `maxAttempts`?"),
            std::string::npos)
      << all;
  EXPECT_NE(all.find("spec.maxDelivery: unknown field; did you mean `maxDeliveries`?"),
            std::string::npos)
      << all;
}

TEST(Values, ScalingWithoutEnabledIsOnAndNewFieldsPassThrough) {
  std::string text = R"(
transport: rabbitmq
actors:
  - name: text-processor
    namespace: team-a
    scaling:
      minReplicas: 0
      maxReplicas: 50
    sidecar:
      concurrency: 2
    retry:
      maxAttempts: 4
    maxDeliveries: 9
)";
  auto r = ParseManifests(text, "values.yaml", "/v");
  ASSERT_TRUE(r) << r.error().message;
  const ActorSpec& a = r->actors[0];
  EXPECT_TRUE(a.scaling.enabled);
  EXPECT_EQ(a.scaling.max_replicas, 50);
  EXPECT_EQ(a.namespace_, "team-a");
  EXPECT_EQ(a.sidecar_concurrency, 2);
  EXPECT_EQ(a.retry.max_attempts, 4);
  EXPECT_EQ(a.max_deliveries, 9);
}

TEST(Load, CrewManifestsAreKeptForRender) {
  namespace fs = std::filesystem;
  fs::path file =
      fs::temp_directory_path() / ("asya-crew2-" + std::to_string(::getpid()) + ".yaml");
  std::ofstream(file) << Actor("error-end");
  ParseOptions options;
  options.skip_crew = false;
  auto r = LoadManifests({file.string()}, options);
  ASSERT_TRUE(r) << r.error().message;
  ASSERT_EQ(r->actors.size(), 1u);
  EXPECT_TRUE(r->actors[0].IsEndActor());
  fs::remove(file);
}

}  // namespace
TEST(Values, MisspeltKeysAreRefusedNamingTheActor) {
  std::string text = R"(
transport: sqs
defualt:
  image: x
default:
  handler: a.b
  scalling: {}
actors:
  - name: first
    handler: first.handle
    minReplica: 1
    scaling:
      minReplica: 0
)";
  auto r = ParseManifests(text, "values.yaml", "/v");
  ASSERT_FALSE(r);
  const std::string& e = r.error().message;
  EXPECT_NE(e.find("values.yaml: defualt: unknown field; did you mean `default`?"),
            std::string::npos)
      << e;
  EXPECT_NE(e.find("values.yaml: default.scalling: unknown field; did you mean `scaling`?"),
            std::string::npos)
      << e;
  EXPECT_NE(e.find("values.yaml: actors[0]: actor \"first\": minReplica: unknown field"),
            std::string::npos)
      << e;
  EXPECT_NE(e.find("values.yaml: actors[0]: actor \"first\": spec.scaling.minReplica: unknown "
                   "field; did you mean `minReplicas`?"),
            std::string::npos)
      << e;
}

// Issue 11 item 15: ASYA_RUNTIME_TIMEOUT in either container is the timeout of both processes.
TEST(Manifest, RuntimeTimeoutFromEitherContainerReachesTheSidecar) {
  auto r = ParseManifests(
      Actor("a", "", "              - name: ASYA_RUNTIME_TIMEOUT\n                value: 1s\n"),
      "m.yaml", "/");
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(EffectiveRuntimeTimeout(r->actors[0]), "1s");
  bool found = false;
  for (const auto& e : SidecarSpecEnv(r->actors[0])) {
    if (e.name == "ASYA_RUNTIME_TIMEOUT") {
      EXPECT_EQ(e.value, "1s");
      found = true;
    }
  }
  EXPECT_TRUE(found);
  r = ParseManifests(Actor("a", "  timeout:\n    processing: 7\n"), "m.yaml", "/");
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(EffectiveRuntimeTimeout(r->actors[0]), "7s");
  std::string e = ErrorOf(
      Actor("a", "  sidecar:\n    env:\n      - name: ASYA_RUNTIME_TIMEOUT\n        value: 5s\n",
            "              - name: ASYA_RUNTIME_TIMEOUT\n                value: 1s\n"));
  EXPECT_NE(e.find("m.yaml: actor \"a\": spec.sidecar.env[ASYA_RUNTIME_TIMEOUT]: is 5s but the "
                   "asya-runtime container sets 1s"),
            std::string::npos)
      << e;
  e = ErrorOf(Actor("a", "",
                    "              - name: ASYA_RUNTIME_TIMEOUT\n                value: "
                    "soon\n"));
  EXPECT_NE(e.find("env[ASYA_RUNTIME_TIMEOUT]"), std::string::npos) << e;
}

// A "billion laughs" document: each level's alias list repeats the level below ten times, so a
// few hundred bytes expand to 10^9 values; and an alias inside its own anchor (a cycle).
std::string AliasBomb() {
  std::string y = "l0: &l0 [\"lol\"]\n";
  for (int i = 1; i <= 9; ++i) {
    const std::string prev = "*l" + std::to_string(i - 1);
    y += "l" + std::to_string(i) + ": &l" + std::to_string(i) + " [";
    for (int k = 0; k < 10; ++k) {
      y += (k == 0 ? "" : ", ") + prev;
    }
    y += "]\n";
  }
  return y;
}

// Looking for the cause of render_fuzz's 2 GB out-of-memory stop (session 7; its input was not
// saved): nested aliases expand without bound when the documents are converted to JSON.
TEST(Manifest, AliasesThatExpandWithoutBoundOrNestInThemselvesAreRefused) {
  auto r = ParseYamlDocuments(AliasBomb(), "bomb.yaml");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(r.error().message,
            "bomb.yaml: invalid YAML: document 1: its aliases expand past 262144 values (each "
            "alias repeats its anchor's whole value)");
  std::string long_leaves = AliasBomb();  // 200-byte leaves: the byte limit comes first
  long_leaves.replace(long_leaves.find("lol"), 3, std::string(200, 'o'));
  auto bytes = ParseYamlDocuments(long_leaves, "long.yaml");
  ASSERT_FALSE(bytes);
  EXPECT_EQ(bytes.error().message,
            "long.yaml: invalid YAML: document 1: its aliases expand past 16 MiB (each alias "
            "repeats its anchor's whole value)");
  auto m = ParseManifests(Actor() + "---\n" + AliasBomb(), "m.yaml", "/");
  ASSERT_FALSE(m);
  EXPECT_NE(m.error().message.find("m.yaml: invalid YAML: document 2: its aliases expand past"),
            std::string::npos)
      << m.error().message;
  auto cycle = ParseYamlDocuments("a: &x [1, *x]\n", "cycle.yaml");
  ASSERT_FALSE(cycle);
  EXPECT_EQ(cycle.error().message,
            "cycle.yaml: invalid YAML: document 1: nested more than 200 levels deep (or an alias "
            "inside its own anchor)");
  auto fine = ParseYamlDocuments("a: &x {k: 1}\nb: *x\nc: *x\n", "ok.yaml");  // aliases are fine
  ASSERT_TRUE(fine) << fine.error().message;
  EXPECT_EQ((*fine)[0]["c"]["k"], 1);
}

// Nested aliases whose leaves are `levels` levels of ten copies of a list of `leaf_count` nulls:
// leaf_count * 10^levels values of no bytes (the byte limit does not see them).
std::string NullBomb(int leaf_count, int levels, const std::string& prefix = "") {
  std::string y = prefix + "l0: &l0 [";
  for (int k = 0; k < leaf_count; ++k) {
    y += k == 0 ? "~" : ", ~";
  }
  y += "]\n";
  for (int i = 1; i <= levels; ++i) {
    y += prefix + "l" + std::to_string(i) + ": &l" + std::to_string(i) + " [";
    for (int k = 0; k < 10; ++k) {
      y += (k == 0 ? "*l" : ", *l") + std::to_string(i - 1);
    }
    y += "]\n";
  }
  return y;
}

// render_fuzz's out-of-memory stop (sessions 7-8): aliases of lists of nulls passed the 16 MiB
// limit (a null counts one byte) while each value costs ~0.5 KB once converted, rendered and read
// back; and each document of a file had a budget of its own.
TEST(Manifest, AliasesThatExpandPastTheValueCountOrAcrossDocumentsAreRefused) {
  auto r = ParseYamlDocuments(NullBomb(10, 5), "nulls.yaml");  // 10^6 nulls, ~1.1 MB counted
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(r.error().message,
            "nulls.yaml: invalid YAML: document 1: its aliases expand past 262144 values (each "
            "alias repeats its anchor's whole value)");
  const std::string half = NullBomb(15, 4);  // 150,000 nulls: fine alone, not twice in one file
  ASSERT_TRUE(ParseYamlDocuments(half, "half.yaml"));
  auto twice = ParseYamlDocuments(half + "---\n" + half, "twice.yaml");
  ASSERT_FALSE(twice);
  EXPECT_EQ(twice.error().message,
            "twice.yaml: invalid YAML: document 2: its aliases expand past 262144 values (each "
            "alias repeats its anchor's whole value) (the limit is for all documents of a file "
            "together)");
  // A text without aliases holds fewer values than bytes: its limit grows with its size, so only
  // aliases are refused (a 4 MiB file of literal values stays readable).
  EXPECT_EQ(asya::YamlExpansionBudget(300000).values_limit, 300000u);
  EXPECT_EQ(asya::YamlExpansionBudget(1000).values_limit, asya::kYamlMaxExpandedValues);
  auto m = ParseManifests(Actor() + "---\n" + NullBomb(10, 5), "m.yaml", "/");
  ASSERT_FALSE(m);
  EXPECT_NE(m.error().message.find("m.yaml: invalid YAML: document 2: its aliases expand past "
                                   "262144 values"),
            std::string::npos)
      << m.error().message;
}

// A values file copies `default` into each actor: a `default` of 20,000 values (by aliases) and
// 20 actors listed by alias would be 400,000 copied values.
TEST(Values, ActorsEachCopyingALargeDefaultAreRefused) {
  std::string text = "default:\n  workload:\n    extra:\n" + NullBomb(20, 3, "      ") +
                     "actors:\n  - &a {name: a}\n";
  for (int i = 1; i < 20; ++i) {
    text += "  - *a\n";
  }
  auto r = ParseManifests(text, "values.yaml", "/v");
  ASSERT_FALSE(r);
  EXPECT_NE(
      r.error().message.find(
          ": each actor is merged with a copy of `default`, and the actors so far expand past "
          "262144 values or 16 MiB (the limit of one file)"),
      std::string::npos)
      << r.error().message;
  EXPECT_NE(r.error().message.find("values.yaml: actors[1"), std::string::npos)
      << r.error().message;
}

// Found by fuzz/render_fuzz: bytes that are not UTF-8 passed yaml-cpp into the rendered objects,
// whose YAML did not read back the same and whose JSON needed replacement characters.
TEST(Manifest, TextThatIsNotUtf8OrHasControlCharactersIsRefusedNamingTheLine) {
  auto r = ParseManifests(Actor() + "# caf\xE9\n", "m.yaml", "/");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument);
  EXPECT_NE(r.error().message.find("m.yaml:"), std::string::npos) << r.error().message;
  EXPECT_NE(r.error().message.find(": invalid UTF-8 at byte "), std::string::npos)
      << r.error().message;
  const std::string nul("a: \0\n", 5);
  auto d = ParseYamlDocuments(nul, "v.yaml");
  ASSERT_FALSE(d);
  EXPECT_EQ(d.error().message,
            "v.yaml:1: control character U+0000 at byte 3 (YAML does not allow it)");
  auto ok = ParseYamlDocuments("a: caf\xC3\xA9\n", "v.yaml");
  ASSERT_TRUE(ok) << ok.error().message;
}

// Found by fuzz/manifest_fuzz: a CR alone inside a quoted string is folded to a space by libyaml
// and kept by yaml-cpp, so the two loaders read one file two ways. CRLF line endings stay fine.
TEST(Manifest, ACarriageReturnWithoutALineFeedIsRefusedNamingTheLine) {
  auto d = ParseYamlDocuments("a: 1\nb: \"x\ry\"\n", "v.yaml");
  ASSERT_FALSE(d);
  EXPECT_EQ(d.error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(d.error().message,
            "v.yaml:2: carriage return without a line feed at byte 10 (use LF or CRLF line "
            "endings)");
  auto last = ParseYamlDocuments("a: 1\r", "v.yaml");
  ASSERT_FALSE(last);
  auto crlf = ParseYamlDocuments("a: 1\r\nb: \"x y\"\r\n", "v.yaml");
  ASSERT_TRUE(crlf) << crlf.error().message;
}

// A manifest that yaml-cpp 0.7 alone would load for ever (and out of memory) gets an error.
TEST(Manifest, AFileStartingWithACommaIsAnErrorNotAHang) {
  EXPECT_NE(ErrorOf(",11").find("m.yaml"), std::string::npos);
  EXPECT_NE(ErrorOf(",11").find("unexpected token where a document starts"), std::string::npos)
      << ErrorOf(",11");
  auto d = ParseYamlDocuments("a: 1\n---\n, b\n", "v.yaml");
  ASSERT_FALSE(d);
  EXPECT_NE(d.error().message.find("v.yaml"), std::string::npos) << d.error().message;
}

}  // namespace asya::actor
