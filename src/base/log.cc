#include "asya/base/log.h"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <mutex>

#include <unistd.h>

#include "asya/base/json_text.h"
#include "asya/base/redact.h"
#include "asya/base/time_format.h"

namespace asya::log {
namespace {

struct State {
  std::atomic<int> level{static_cast<int>(Level::kInfo)};
  Format format = Format::kText;
  std::string component = "asya";
  std::mutex mu;
};

State& GetState() {
  static State state;
  return state;
}

std::string_view LevelName(Level level) {
  switch (level) {
    case Level::kDebug:
      return "debug";
    case Level::kInfo:
      return "info";
    case Level::kWarn:
      return "warn";
    case Level::kError:
      return "error";
  }
  return "info";
}

bool NeedsQuoting(std::string_view s) {
  if (s.empty()) {
    return true;
  }
  for (unsigned char c : s) {
    if (c <= ' ' || c == '"' || c == '=' || c == '\\') {
      return true;
    }
  }
  return false;
}

void AppendTextValue(std::string& out, std::string_view s) {
  if (NeedsQuoting(s)) {
    AppendJsonString(out, s);
  } else {
    out += s;
  }
}

std::string Timestamp() {
  return FormatRfc3339(std::chrono::system_clock::now(), 3);
}

}  // namespace

void Configure(Level level, Format format, std::string component) {
  State& s = GetState();
  std::lock_guard lock(s.mu);
  s.level.store(static_cast<int>(level));
  s.format = format;
  s.component = std::move(component);
}

Result<Level> ParseLevel(std::string_view text) {
  std::string t;
  for (char c : text) {
    t += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  if (t == "debug") {
    return Level::kDebug;
  }
  if (t == "info") {
    return Level::kInfo;
  }
  if (t == "warn" || t == "warning") {
    return Level::kWarn;
  }
  if (t == "error") {
    return Level::kError;
  }
  return MakeError(ErrorCode::kInvalidArgument,
                   "unknown log level '" + std::string(text) + "' (want debug|info|warn|error)");
}

Result<Format> ParseFormat(std::string_view text) {
  std::string t;
  for (char c : text) {
    t += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  if (t == "json") {
    return Format::kJson;
  }
  if (t == "text") {
    return Format::kText;
  }
  return MakeError(ErrorCode::kInvalidArgument,
                   "unknown log format '" + std::string(text) + "' (want json|text)");
}

bool Enabled(Level level) {
  return static_cast<int>(level) >= GetState().level.load(std::memory_order_relaxed);
}

void Write(Level level, std::string_view message, std::initializer_list<Field> fields) {
  if (!Enabled(level)) {
    return;
  }
  State& s = GetState();
  std::string line;
  line.reserve(128 + message.size());
  std::lock_guard lock(s.mu);
  if (s.format == Format::kJson) {
    line += "{\"time\":\"" + Timestamp() + "\",\"level\":\"";
    line += LevelName(level);
    line += "\",\"component\":";
    AppendJsonString(line, s.component);
    line += ",\"msg\":";
    AppendJsonString(line, RedactSecrets(message));
    for (const Field& f : fields) {
      line += ',';
      AppendJsonString(line, f.key);
      line += ':';
      AppendJsonString(line, RedactSecrets(f.value));
    }
    line += "}\n";
  } else {
    line += "time=" + Timestamp() + " level=";
    line += LevelName(level);
    line += " component=";
    AppendTextValue(line, s.component);
    line += " msg=";
    AppendTextValue(line, RedactSecrets(message));
    for (const Field& f : fields) {
      line += ' ';
      line += f.key;
      line += '=';
      AppendTextValue(line, RedactSecrets(f.value));
    }
    line += '\n';
  }
  // One write(2) per line so lines from several processes sharing a pipe do not interleave.
  const char* p = line.data();
  size_t n = line.size();
  while (n > 0) {
    ssize_t w = ::write(STDERR_FILENO, p, n);
    if (w <= 0) {
      break;
    }
    p += w;
    n -= static_cast<size_t>(w);
  }
}

}  // namespace asya::log
