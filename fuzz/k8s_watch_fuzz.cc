// Fuzzes what the operator reads from the Kubernetes API: watch streams (k8s::ParseWatchLine on
// each newline-delimited event, as Client::Watch does), error Status bodies (k8s::StatusError)
// and kubeconfig files (k8s::ParseKubeconfig).
//
// Invariants:
// - Nothing crashes or throws.
// - A delivered object is well formed (MalformedObject is ""), so the operator's readers of
//   metadata (name, namespace, generation, labels, resourceVersion) cannot throw on it; an event
//   written back as JSON decodes to the same event.
// - An ERROR event always has a message; a skipped non-empty line says why.
// - StatusError keeps the "<what>: HTTP <code>: " prefix; kubeconfig errors name the source.
#include <cstdint>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "asya/k8s/client.h"
#include "fuzz_check.h"

namespace {

using asya::k8s::WatchEvent;
using nlohmann::json;

// The reads controller.cc does on every watched object (keys, caches, signatures).
void ReadLikeTheOperator(const json& obj) {
  const json& m = obj["metadata"];
  std::string key = m.value("namespace", "") + "/" + m.value("name", "");
  std::string sig = std::to_string(m.value("generation", 0)) + "|" +
                    (m.contains("deletionTimestamp") ? "d" : "") + "|" +
                    (m.contains("finalizers") ? m["finalizers"].dump() : "");
  if (m.contains("labels") && m["labels"].contains("asya.sh/actor") &&
      m["labels"]["asya.sh/actor"].is_string()) {
    key += m["labels"]["asya.sh/actor"].get<std::string>();
  }
  (void)m.value("resourceVersion", "");
  (void)m.value("uid", "");
  (void)sig;
}

void CheckLine(std::string_view line) {
  WatchEvent ev = asya::k8s::ParseWatchLine(line);
  switch (ev.kind) {
    case WatchEvent::Kind::kSkip:
      FUZZ_CHECK(line.empty() == ev.message.empty());
      break;
    case WatchEvent::Kind::kError:
      FUZZ_CHECK(!ev.message.empty());
      break;
    case WatchEvent::Kind::kObject: {
      FUZZ_CHECK(asya::k8s::MalformedObject(ev.object).empty());
      ReadLikeTheOperator(ev.object);
      const std::string again = json{{"type", ev.type}, {"object", ev.object}}.dump();
      WatchEvent ev2 = asya::k8s::ParseWatchLine(again);
      FUZZ_CHECK(ev2.kind == WatchEvent::Kind::kObject);
      FUZZ_CHECK(ev2.type == ev.type && ev2.object == ev.object);
      FUZZ_CHECK(ev2.resource_version == ev.resource_version);
      break;
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);

  // A watch response body, line by line.
  size_t start = 0;
  while (start <= in.size()) {
    size_t end = in.find('\n', start);
    if (end == std::string_view::npos) {
      end = in.size();
    }
    CheckLine(in.substr(start, end - start));
    start = end + 1;
  }

  for (long code : {404L, 409L, 410L, 500L}) {
    asya::Error e = asya::k8s::StatusError(code, in, "GET /x");
    FUZZ_CHECK(e.message.rfind("GET /x: HTTP " + std::to_string(code) + ": ", 0) == 0);
  }

  auto config = asya::k8s::ParseKubeconfig(in, "kubeconfig.yaml", "", "/nonexistent");
  if (!config) {
    FUZZ_CHECK(config.error().message.find("kubeconfig.yaml") != std::string::npos);
  }
  return 0;
}
