// Typed reading of environment variables for programs under src/bin/ (the only code that reads the
// environment). Every parser returns kInvalidArgument with a message naming the variable.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "asya/base/duration.h"
#include "asya/base/result.h"

namespace asya::env {

// Returns the value of `name`, or nullopt when unset or empty (empty = unset, as the original).
std::optional<std::string> Get(const char* name);
std::string GetOr(const char* name, std::string_view fallback);

Result<bool> ParseBool(std::string_view name, std::string_view value);
Result<int64_t> ParseInt(std::string_view name, std::string_view value, int64_t min, int64_t max);
Result<Millis> ParseDurationVar(std::string_view name, std::string_view value);

// Reads and parses; unset -> fallback.
Result<bool> Bool(const char* name, bool fallback);
Result<int64_t> Int(const char* name, int64_t fallback, int64_t min, int64_t max);
Result<Millis> Duration(const char* name, Millis fallback);

// Registers every variable of the environment with asya::RegisterEnvSecret (asya/base/redact.h),
// so no log line or error shows a secret. Every program calls it first thing in main().
void RegisterSecretsFromEnvironment();

}  // namespace asya::env
