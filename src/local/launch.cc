#include "asya/local/launch.h"

#include <charconv>
#include <cstring>
#include <filesystem>

#include <unistd.h>

#include "asya/base/env_names.h"
#include "asya/base/runtime_files.h"
#include "asya/base/transport_kinds.h"

namespace asya::local {
namespace fs = std::filesystem;

namespace {

constexpr size_t kMaxSocketPath = 100;  // sun_path is 108 bytes; keep a margin

std::string WorkingDirectory(const actor::ActorSpec& spec, const MeshLaunchSettings& mesh) {
  return spec.directory.empty() ? mesh.state_dir : spec.directory;
}

bool IsPositiveInt(const std::string& text) {
  int n = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
  return ec == std::errc() && ptr == text.data() + text.size() && n > 0;
}

}  // namespace

std::string EnvValue(const std::vector<std::string>& env, std::string_view name) {
  for (const auto& e : env) {
    if (e.size() > name.size() && e.compare(0, name.size(), name) == 0 && e[name.size()] == '=') {
      return e.substr(name.size() + 1);
    }
  }
  return "";
}

void SetEnvValue(std::vector<std::string>& env, std::string_view name, std::string_view value) {
  std::string entry = std::string(name) + "=" + std::string(value);
  for (auto& e : env) {
    if (e.size() > name.size() && e.compare(0, name.size(), name) == 0 && e[name.size()] == '=') {
      e = std::move(entry);
      return;
    }
  }
  env.push_back(std::move(entry));
}

LaunchSpec RuntimeLaunchSpec(const actor::ActorSpec& spec, const MeshLaunchSettings& mesh,
                             const std::string& socket_dir) {
  LaunchSpec out;
  out.cwd = WorkingDirectory(spec, mesh);
  out.env = mesh.base_env;
  if (!spec.local_command.empty()) {
    out.argv = spec.local_command;
    if (out.argv[0].find('/') != std::string::npos && out.argv[0][0] != '/') {
      out.argv[0] = (fs::path(out.cwd) / out.argv[0]).lexically_normal().string();
    }
  } else {
    out.argv = {spec.python_executable, mesh.python_runtime};
  }
  auto& env = out.env;
  for (const auto& e : spec.runtime_env) {
    SetEnvValue(env, e.name, e.value);
  }
  SetEnvValue(env, env_name::kSocketDir, socket_dir);
  // The same value as the sidecar's, wherever the manifest set it.
  if (std::string timeout = actor::EffectiveRuntimeTimeout(spec); !timeout.empty()) {
    SetEnvValue(env, env_name::kRuntimeTimeout, timeout);
  }
  if (spec.is_crew) {
    SetEnvValue(env, env_name::kEnableValidation, "false");
  }
  // A runtime serving fewer connections than its sidecar keeps in flight stalls the extra
  // messages until the runtime timeout: match them unless the manifest sets both. (An invalid
  // value is left to the sidecar to report.)
  if (spec.sidecar_concurrency > 1 && spec.RuntimeEnv(env_name::kRuntimeConcurrency).empty()) {
    SetEnvValue(env, env_name::kRuntimeConcurrency, std::to_string(spec.sidecar_concurrency));
  }
  for (const auto& e : spec.sidecar_env) {
    if (e.name == env_name::kSidecarConcurrency && IsPositiveInt(e.value) &&
        spec.RuntimeEnv(env_name::kRuntimeConcurrency).empty()) {
      SetEnvValue(env, env_name::kRuntimeConcurrency, e.value);
    }
  }
  // The manifest's directory and its parent: code may sit next to the manifests or one level
  // up (examples/<name>/*.py with examples/<name>/manifests/*.yaml).
  std::string pp = out.cwd + ":" + fs::path(out.cwd).parent_path().string();
  if (std::string old = EnvValue(env, "PYTHONPATH"); !old.empty()) {
    pp += ":" + old;
  }
  SetEnvValue(env, "PYTHONPATH", pp);
  SetEnvValue(env, "PYTHONUNBUFFERED", "1");
  return out;
}

LaunchSpec SidecarLaunchSpec(const actor::ActorSpec& spec, const MeshLaunchSettings& mesh,
                             const std::string& socket_dir) {
  LaunchSpec out;
  out.cwd = WorkingDirectory(spec, mesh);
  out.env = mesh.base_env;
  out.argv = {mesh.sidecar_bin};
  auto& env = out.env;
  SetEnvValue(env, env_name::kActorName, spec.name);
  SetEnvValue(env, env_name::kTransport, mesh.transport_kind);
  if (mesh.transport_kind == transport_kind::kSqlite) {
    SetEnvValue(env, env_name::kSqlitePath, mesh.sqlite_path);
  }
  SetEnvValue(env, env_name::kSocketDir, socket_dir);
  if (std::string timeout = actor::EffectiveRuntimeTimeout(spec); !timeout.empty()) {
    SetEnvValue(env, env_name::kRuntimeTimeout, timeout);
  }
  if (spec.is_crew) {
    SetEnvValue(env, env_name::kIsEndActor, "true");
  }
  SetEnvValue(env, env_name::kMetricsEnabled, "false");  // one port per replica would clash
  SetEnvValue(env, env_name::kQueueAutoCreate, "true");
  if (!mesh.gateway_url.empty()) {
    SetEnvValue(env, env_name::kGatewayUrl, mesh.gateway_url);
    SetEnvValue(env, env_name::kGatewayToken, mesh.gateway_token);
  }
  for (const auto& e : actor::EffectiveSidecarEnv(spec)) {
    SetEnvValue(env, e.name, e.value);
  }
  SetEnvValue(env, env_name::kMetricsAddr,
              LoopbackMetricsAddr(EnvValue(env, env_name::kMetricsAddr)));
  return out;
}

std::string LoopbackMetricsAddr(std::string_view addr) {
  const size_t colon = addr.rfind(':');
  std::string_view port =
      colon == std::string_view::npos ? std::string_view() : addr.substr(colon + 1);
  return "127.0.0.1:" + std::string(port.empty() ? "0" : port);
}

Status CheckRuntimeProgram(const actor::ActorSpec& spec, const MeshLaunchSettings& mesh,
                           const std::string& path_env) {
  const std::string program = RuntimeLaunchSpec(spec, mesh, "").argv.at(0);
  const std::string field =
      spec.local_command.empty()
          ? std::string("spec.workload.pythonExecutable")
          : "metadata.annotations[" + std::string(actor::kLocalCommandAnnotation) + "]";
  auto fail = [&](const std::string& text) -> Status {
    return MakeError(ErrorCode::kInvalidArgument,
                     spec.source + ": actor \"" + spec.name + "\": " + field + ": " + text);
  };
  auto executable = [](const std::string& path) {
    std::error_code ec;
    return fs::is_regular_file(path, ec) && ::access(path.c_str(), X_OK) == 0;
  };
  if (program.find('/') != std::string::npos) {
    std::error_code ec;
    if (!fs::exists(program, ec)) {
      return fail(program + ": no such file" +
                  (spec.local_command.empty() ? ""
                                              : " (build it first, or fix the path: a relative "
                                                "path is relative to the manifest's directory)"));
    }
    if (!executable(program)) {
      return fail(program + ": not an executable file");
    }
    return Ok();
  }
  size_t start = 0;
  while (start <= path_env.size()) {
    size_t colon = path_env.find(':', start);
    if (colon == std::string::npos) {
      colon = path_env.size();
    }
    std::string dir = path_env.substr(start, colon - start);
    if (executable((dir.empty() ? "." : dir) + "/" + program)) {
      return Ok();
    }
    start = colon + 1;
  }
  return fail(program + ": not found on PATH");
}

std::string RuntimeCommandLine(const actor::ActorSpec& spec, const std::string& python_runtime) {
  if (spec.local_command.empty()) {
    return spec.python_executable + " " + python_runtime;
  }
  std::string out;
  for (const auto& c : spec.local_command) {
    out += (out.empty() ? "" : " ") + c;
  }
  return out;
}

std::string PreferredSocketDir(const std::string& state_dir, const std::string& actor, int index) {
  std::string dir = state_dir + "/run/" + actor + "-" + std::to_string(index);
  if (dir.size() + 1 + std::strlen(runtime_files::kSocketName) >= kMaxSocketPath) {
    return "";
  }
  return dir;
}

}  // namespace asya::local
