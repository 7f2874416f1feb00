// Structured logging to stderr, as JSON lines or `key=value` text.
//
// Thread-safe. Configure once at program start (programs under src/bin/ read ASYA_LOG_LEVEL and
// ASYA_LOG_FORMAT); libraries only call Log*. Payloads are never logged above DEBUG.
#pragma once

#include <initializer_list>
#include <string>
#include <string_view>

#include "asya/base/result.h"

namespace asya::log {

enum class Level { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3 };
enum class Format { kText, kJson };

struct Field {
  std::string_view key;
  std::string value;
  Field(std::string_view k, std::string v) : key(k), value(std::move(v)) {}
  Field(std::string_view k, std::string_view v) : key(k), value(v) {}
  Field(std::string_view k, const char* v) : key(k), value(v) {}
  Field(std::string_view k, long long v) : key(k), value(std::to_string(v)) {}
  Field(std::string_view k, int v) : key(k), value(std::to_string(v)) {}
  Field(std::string_view k, unsigned long v) : key(k), value(std::to_string(v)) {}
  Field(std::string_view k, long v) : key(k), value(std::to_string(v)) {}
  Field(std::string_view k, unsigned v) : key(k), value(std::to_string(v)) {}
  Field(std::string_view k, double v) : key(k), value(std::to_string(v)) {}
};

// `component` appears in every line (e.g. "sidecar"); `prefix` (optional) e.g. the actor name.
void Configure(Level level, Format format, std::string component);
// Parses DEBUG|INFO|WARN|WARNING|ERROR (any case).
Result<Level> ParseLevel(std::string_view text);
// Parses json|text (any case).
Result<Format> ParseFormat(std::string_view text);

bool Enabled(Level level);
void Write(Level level, std::string_view message, std::initializer_list<Field> fields = {});

inline void Debug(std::string_view m, std::initializer_list<Field> f = {}) { Write(Level::kDebug, m, f); }
inline void Info(std::string_view m, std::initializer_list<Field> f = {}) { Write(Level::kInfo, m, f); }
inline void Warn(std::string_view m, std::initializer_list<Field> f = {}) { Write(Level::kWarn, m, f); }
inline void Error(std::string_view m, std::initializer_list<Field> f = {}) { Write(Level::kError, m, f); }

}  // namespace asya::log
