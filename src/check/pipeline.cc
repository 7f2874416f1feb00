#include "check/pipeline.h"

#include "asya/base/file.h"

namespace asya::check::internal {

namespace {

// The handlers. chk-flaky fails on known inputs: "<id>-1" of every n % 10 == 7 with a ValueError
// (non-retryable: error-end at once), and every n % 10 == 3 on its first attempt with a
// RuntimeError (retried, then succeeds). accounting.h says where each output belongs.
constexpr char kHandlers[] =
    R"PY("""Handlers of the `asya check` pipeline (written by asya check)."""
import asya_runtime


def split(payload):
    return [dict(payload, k=0), dict(payload, k=1)]


def flaky(payload):
    n = payload["n"]
    if payload.get("k") == 1 and n % 10 == 7:
        raise ValueError("known bad input %d" % n)
    attempt = asya_runtime.current_attempt()
    if n % 10 == 3 and attempt == 1:
        raise RuntimeError("transient failure of %d" % n)
    return dict(payload, attempt=attempt)


def sink(payload):
    return payload
)PY";

std::string Manifest(const std::string& name, const std::string& handler,
                     const PipelineSettings& s) {
  std::string m;
  m += "apiVersion: asya.sh/v1alpha1\nkind: AsyncActor\nmetadata:\n  name: " + name + "\n";
  m += "spec:\n  timeout:\n    processing: " + std::to_string(kRuntimeTimeoutS) + "\n";
  m += "  sidecar:\n    env:\n";
  auto env = [&m](const std::string& k, const std::string& v) {
    m += "      - name: " + k + "\n        value: \"" + v + "\"\n";
  };
  env("ASYA_RETRY_MAX_ATTEMPTS", "5");
  env("ASYA_RETRY_BACKOFF", "200ms");
  env("ASYA_RETRY_MAX_BACKOFF", "2s");
  env("ASYA_RETRY_NON_RETRYABLE", "ValueError");
  env("ASYA_SIDECAR_CONCURRENCY", std::to_string(s.concurrency));
  m += "  workload:\n    replicas: " + std::to_string(s.replicas) + "\n";
  m += "    template:\n      spec:\n        containers:\n          - name: asya-runtime\n";
  m += "            image: python:3.11-slim\n            env:\n";
  m += "              - name: ASYA_HANDLER\n                value: \"chk_handlers." + handler +
       "\"\n";
  return m;
}

}  // namespace

std::vector<std::string> Route() {
  return {kSplit, kFlaky, kSink};
}

std::vector<std::string> AllActors() {
  return {kSplit, kFlaky, kSink, "happy-end", "error-end"};
}

Status WritePipeline(const std::string& dir, const PipelineSettings& settings) {
  ASYA_RETURN_IF_ERROR(WriteFileAtomic(dir + "/chk_handlers.py", kHandlers));
  ASYA_RETURN_IF_ERROR(
      WriteFileAtomic(dir + "/" + kSplit + ".yaml", Manifest(kSplit, "split", settings)));
  ASYA_RETURN_IF_ERROR(
      WriteFileAtomic(dir + "/" + kFlaky + ".yaml", Manifest(kFlaky, "flaky", settings)));
  ASYA_RETURN_IF_ERROR(
      WriteFileAtomic(dir + "/" + kSink + ".yaml", Manifest(kSink, "sink", settings)));
  return {};
}

}  // namespace asya::check::internal
