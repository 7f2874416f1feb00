// Fuzzes the operator side of manifests: the operator's config file (op::ParseOperatorConfig)
// and the renderer (`asya render`, the operator's reconcile) on every actor the manifest parser
// accepts, with the YAML writer checked against the YAML reader.
//
// Invariants:
// - Nothing crashes or throws; config errors name the source.
// - Rendered objects written as YAML (ToYamlStream) read back as the same JSON values, and the
//   JSON list form parses.
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "asya/actor/manifest.h"
#include "asya/operator/config.h"
#include "asya/operator/render.h"
#include "fuzz_check.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);

  auto config = asya::op::ParseOperatorConfig(in, "config.yaml");
  if (!config) {
    FUZZ_CHECK(config.error().message.find("config.yaml") != std::string::npos);
  }

  asya::actor::ParseOptions options;
  options.skip_crew = false;
  auto parsed = asya::actor::ParseManifests(in, "fuzz.yaml", "/srv/actors", options);
  if (!parsed) {
    return 0;
  }
  static const asya::op::OperatorConfig defaults = asya::op::DefaultOperatorConfig();
  auto objects = asya::op::RenderAll(parsed->actors, defaults, {});
  if (!objects) {
    FUZZ_CHECK(!objects.error().message.empty());
    return 0;
  }
  const std::string yaml = asya::op::ToYamlStream(*objects);
  auto back = asya::actor::ParseYamlDocuments(yaml, "rendered");
  if (!back &&
      back.error().message.find("for all documents of a file together") != std::string::npos) {
    // Many actors render more values than one file may hold (the limit of
    // asya/base/yaml_text.h, for all documents together); each object must still read back.
    std::vector<nlohmann::json> each;
    for (const auto& object : *objects) {
      auto one = asya::actor::ParseYamlDocuments(asya::op::ToYamlStream({object}), "rendered");
      FUZZ_CHECK(one.has_value() && one->size() == 1);
      each.push_back(std::move(one->front()));
    }
    back = std::move(each);
  }
  if (!back) {
    std::fprintf(stderr, "rendered YAML does not read back: %s\n%s\n", back.error().message.c_str(),
                 yaml.c_str());
  }
  FUZZ_CHECK(back.has_value());
  FUZZ_CHECK(back->size() == objects->size());
  for (size_t i = 0; i < objects->size(); ++i) {
    if ((*back)[i] != (*objects)[i]) {
      std::fprintf(stderr, "object %zu differs after YAML:\n%s\n%s\n", i,
                   (*objects)[i].dump().c_str(), (*back)[i].dump().c_str());
    }
    FUZZ_CHECK((*back)[i] == (*objects)[i]);
  }
  FUZZ_CHECK(!nlohmann::json::parse(asya::op::ToJsonList(*objects), nullptr, false).is_discarded());
  return 0;
}
