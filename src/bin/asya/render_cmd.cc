// `asya render PATH... [--namespace NS] [--operator-config FILE] [-o yaml|json]`: the objects the
// operator applies for these AsyncActor manifests / asya-actor values files, offline.
// Exit codes (DESIGN precise 12): 0 rendered; 2 usage or invalid input (every problem printed,
// one line each, naming file, actor and field; the same lines `asya up` prints for the same
// manifest).
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "asya/actor/manifest.h"
#include "asya/base/exit_codes.h"
#include "asya/base/redact.h"
#include "asya/operator/config.h"
#include "asya/operator/render.h"
#include "bin/asya/commands.h"
#include "bin/common/env.h"

namespace asya::cli {
namespace {

namespace fs = std::filesystem;

constexpr int kExitOk = exit_code::kOk;
constexpr int kExitUsage = exit_code::kUsage;

void PrintLines(const std::string& text, const char* prefix) {
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    std::fprintf(stderr, "%s%s\n", prefix, line.c_str());
  }
}

Result<std::string> ReadText(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return MakeError(ErrorCode::kNotFound, path + ": cannot read file");
  }
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// asya_runtime.py: ASYA_PYTHON_RUNTIME, else next to the binary, else the source tree.
Result<std::string> RuntimeScript() {
  std::vector<std::string> candidates;
  if (auto v = env::Get("ASYA_PYTHON_RUNTIME")) {
    candidates.push_back(*v);
  } else {
    std::error_code ec;
    const std::string dir = fs::read_symlink("/proc/self/exe", ec).parent_path().string();
    candidates = {dir + "/asya_runtime.py", dir + "/../../src/runtime/python/asya_runtime.py",
                  dir + "/../src/runtime/python/asya_runtime.py"};
  }
  for (const auto& c : candidates) {
    std::error_code ec;
    if (fs::exists(c, ec)) {
      return ReadText(c);
    }
  }
  return MakeError(ErrorCode::kNotFound, "asya_runtime.py not found (looked at " +
                                             candidates.front() + "; set ASYA_PYTHON_RUNTIME)");
}

}  // namespace

int RunRender(int argc, char** argv) {
  CLI::App app{"asya render: the Kubernetes objects of AsyncActor manifests, offline"};
  app.name("asya render");
  std::vector<std::string> paths;
  std::string ns;
  std::string config_path;
  std::string output = "yaml";
  app.add_option("paths", paths, "AsyncActor manifests, directories or asya-actor values")
      ->required();
  app.add_option("--namespace,-n", ns, "namespace of actors that set none");
  app.add_option("--operator-config", config_path,
                 "the operator's configuration: transport registry, images (JSON or YAML)");
  app.add_option("-o,--output", output, "yaml (default) or json")
      ->check(CLI::IsMember({"yaml", "json"}));
  app.footer(std::string(exit_code::kHelpTable) +
             "\n\nExamples:\n"
             "  asya render examples/text-pipeline/manifests -o yaml\n"
             "  asya render my-actors/ -n ml --operator-config operator.yaml -o json");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? kExitOk : kExitUsage;
  }

  op::OperatorConfig config = op::DefaultOperatorConfig();
  if (!config_path.empty()) {
    auto text = ReadText(config_path);
    if (!text) {
      std::fprintf(stderr, "asya render: %s\n", asya::RedactSecrets(text.error().message).c_str());
      return kExitUsage;
    }
    auto parsed = op::ParseOperatorConfig(*text, config_path);
    if (!parsed) {
      std::fprintf(stderr, "asya render: invalid operator config:\n");
      PrintLines(parsed.error().message, "  ");
      return kExitUsage;
    }
    config = std::move(*parsed);
  }
  if (!ns.empty() && !actor::IsValidActorName(ns)) {
    std::fprintf(stderr, "asya render: --namespace: must be a DNS-1123 label, got '%s'\n",
                 ns.c_str());
    return kExitUsage;
  }
  // Absolute paths, as `asya up` uses, so both name a file the same way in their messages.
  for (auto& p : paths) {
    std::error_code ec;
    p = fs::absolute(p, ec).lexically_normal().string();
    while (p.size() > 1 && p.back() == '/') {
      p.pop_back();
    }
  }
  actor::ParseOptions options;
  options.require_transport = true;
  options.skip_crew = false;
  auto loaded = actor::LoadManifests(paths, options);
  if (!loaded) {
    std::fprintf(stderr, "asya render: refusing invalid manifests:\n");
    PrintLines(loaded.error().message, "  ");
    return kExitUsage;
  }
  for (const auto& w : loaded->warnings) {
    std::fprintf(stderr, "asya render: warning: %s\n", w.c_str());
  }
  auto script = RuntimeScript();
  if (!script) {
    std::fprintf(stderr, "asya render: %s\n", asya::RedactSecrets(script.error().message).c_str());
    return kExitUsage;
  }
  op::RenderOptions ropts;
  ropts.namespace_ = ns;
  ropts.runtime_script = std::move(*script);
  auto objects = op::RenderAll(loaded->actors, config, ropts);
  if (!objects) {
    std::fprintf(stderr, "asya render: refusing invalid manifests:\n");
    PrintLines(objects.error().message, "  ");
    return kExitUsage;
  }
  const std::string out = output == "json" ? op::ToJsonList(*objects) : op::ToYamlStream(*objects);
  std::fwrite(out.data(), 1, out.size(), stdout);
  return std::fflush(stdout) == 0 ? kExitOk : exit_code::kFailed;
}

}  // namespace asya::cli
