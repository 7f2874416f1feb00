#include "bin/common/env.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>

#include <unistd.h>

#include "asya/base/redact.h"

namespace asya::env {

std::optional<std::string> Get(const char* name) {
  const char* v = std::getenv(name);  // NOLINT(concurrency-mt-unsafe): read at start-up only
  if (v == nullptr || *v == '\0') {
    return std::nullopt;
  }
  return std::string(v);
}

std::string GetOr(const char* name, std::string_view fallback) {
  auto v = Get(name);
  return v ? *v : std::string(fallback);
}

Result<bool> ParseBool(std::string_view name, std::string_view value) {
  std::string t(value);
  std::transform(t.begin(), t.end(), t.begin(), [](unsigned char c) { return std::tolower(c); });
  if (t == "true" || t == "1" || t == "yes" || t == "on") {
    return true;
  }
  if (t == "false" || t == "0" || t == "no" || t == "off") {
    return false;
  }
  return MakeError(ErrorCode::kInvalidArgument,
                   std::string(name) + "='" + std::string(value) +
                       "' is not a boolean (true|false|1|0|yes|no|on|off)");
}

Result<int64_t> ParseInt(std::string_view name, std::string_view value, int64_t min, int64_t max) {
  std::string t(value);
  char* end = nullptr;
  errno = 0;
  long long v = std::strtoll(t.c_str(), &end, 10);
  if (t.empty() || end != t.c_str() + t.size() || errno != 0) {
    return MakeError(ErrorCode::kInvalidArgument,
                     std::string(name) + "='" + t + "' is not an integer");
  }
  if (v < min || v > max) {
    return MakeError(ErrorCode::kInvalidArgument, std::string(name) + "=" + t +
                                                      " is out of range [" + std::to_string(min) +
                                                      ", " + std::to_string(max) + "]");
  }
  return static_cast<int64_t>(v);
}

Result<Millis> ParseDurationVar(std::string_view name, std::string_view value) {
  auto d = ParseDuration(value);
  if (!d) {
    return MakeError(ErrorCode::kInvalidArgument, std::string(name) + ": " + d.error().message);
  }
  return *d;
}

Result<bool> Bool(const char* name, bool fallback) {
  auto v = Get(name);
  return v ? ParseBool(name, *v) : Result<bool>(fallback);
}

Result<int64_t> Int(const char* name, int64_t fallback, int64_t min, int64_t max) {
  auto v = Get(name);
  return v ? ParseInt(name, *v, min, max) : Result<int64_t>(fallback);
}

Result<Millis> Duration(const char* name, Millis fallback) {
  auto v = Get(name);
  return v ? ParseDurationVar(name, *v) : Result<Millis>(fallback);
}

void RegisterSecretsFromEnvironment() {
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    std::string_view entry(*e);
    size_t eq = entry.find('=');
    if (eq == std::string_view::npos) {
      continue;
    }
    RegisterEnvSecret(entry.substr(0, eq), entry.substr(eq + 1));
  }
}

}  // namespace asya::env
