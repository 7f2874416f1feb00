// Serve(): the runtime program's main. The only part of the SDK that reads the environment.
#include "asya/runtime/serve.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <string>

#include <pthread.h>
#include <signal.h>

#include "asya/base/duration.h"
#include "asya/base/log.h"

namespace asya::runtime {
namespace {

// nullptr when unset; the value as is otherwise (empty included).
const char* Raw(const char* name) {
  return std::getenv(name);  // NOLINT(concurrency-mt-unsafe): read once at start-up
}

std::string Trimmed(const char* v) {
  std::string s(v == nullptr ? "" : v);
  auto not_space = [](unsigned char c) { return !std::isspace(c); };
  s.erase(s.begin(), std::find_if(s.begin(), s.end(), not_space));
  s.erase(std::find_if(s.rbegin(), s.rend(), not_space).base(), s.end());
  return s;
}

std::string Lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

Error BadVar(const char* name, const std::string& value, std::string_view expected) {
  return Error{ErrorCode::kInvalidArgument, std::string("invalid ") + name + "='" + value +
                                                "': expected " + std::string(expected)};
}

Result<int64_t> PositiveInt(const char* name, int64_t fallback) {
  std::string v = Trimmed(Raw(name));
  if (v.empty()) {
    return fallback;
  }
  char* end = nullptr;
  errno = 0;
  long long n = std::strtoll(v.c_str(), &end, 10);
  if (end != v.c_str() + v.size() || errno != 0 || n <= 0) {
    return Unexpected(BadVar(name, v, "a positive integer"));
  }
  return static_cast<int64_t>(n);
}

}  // namespace

Result<ServeOptions> OptionsFromEnv() {
  ServeOptions o;
  if (auto v = Trimmed(Raw("ASYA_SOCKET_DIR")); !v.empty()) {
    o.socket_dir = v;
  }
  if (auto v = Trimmed(Raw("ASYA_SOCKET_NAME")); !v.empty()) {
    o.socket_name = v;
  }
  if (const char* raw = Raw("ASYA_SOCKET_CHMOD"); raw != nullptr) {
    std::string v = Trimmed(raw);
    if (v.empty()) {
      o.socket_mode.reset();  // set but empty: leave the mode alone, as the original
    } else {
      std::string digits = Lower(v).rfind("0o", 0) == 0 ? v.substr(2) : v;
      char* end = nullptr;
      unsigned long mode = std::strtoul(digits.c_str(), &end, 8);
      if (digits.empty() || end != digits.c_str() + digits.size() || mode > 07777) {
        return Unexpected(BadVar("ASYA_SOCKET_CHMOD", v, "an octal mode such as 0o666 or 660"));
      }
      o.socket_mode = static_cast<unsigned>(mode);
    }
  }
  if (const char* raw = Raw("ASYA_ENABLE_VALIDATION"); raw != nullptr) {
    std::string v = Lower(Trimmed(raw));
    o.validate = v == "true";  // as the original: only the literal "true" (any case) enables
    if (v != "true" && v != "false") {
      log::Warn("ASYA_ENABLE_VALIDATION is not 'true': validation is disabled", {{"value", v}});
    }
  }
  if (auto v = Lower(Trimmed(Raw("ASYA_HANDLER_MODE"))); !v.empty()) {
    if (v == "payload") {
      o.mode = HandlerMode::kPayload;
    } else if (v == "envelope") {
      o.mode = HandlerMode::kEnvelope;
    } else {
      return Unexpected(BadVar("ASYA_HANDLER_MODE", v, "'payload' or 'envelope'"));
    }
  }
  if (auto v = Trimmed(Raw("ASYA_RUNTIME_TIMEOUT")); !v.empty()) {
    auto d = ParseDuration(v);
    if (!d) {
      return Unexpected(BadVar("ASYA_RUNTIME_TIMEOUT", v, "a duration such as 30s, 5m or 300"));
    }
    o.handler_timeout = *d;
  }
  ASYA_ASSIGN_OR_RETURN(int64_t concurrency, PositiveInt("ASYA_RUNTIME_CONCURRENCY", 1));
  o.concurrency = static_cast<int>(std::min<int64_t>(concurrency, 4096));
  ASYA_ASSIGN_OR_RETURN(int64_t max_bytes,
                        PositiveInt("ASYA_MAX_MESSAGE_BYTES", static_cast<int64_t>(64u << 20)));
  o.max_message_bytes = static_cast<size_t>(std::min<int64_t>(max_bytes, UINT32_MAX));
  return o;
}

int Serve(Handler handler) {
  auto level = log::Level::kInfo;
  std::string level_text = Trimmed(Raw("ASYA_LOG_LEVEL"));
  auto parsed_level = log::ParseLevel(level_text.empty() ? "INFO" : level_text);
  if (parsed_level) {
    level = *parsed_level;
  }
  auto format = log::Format::kText;
  if (auto f = log::ParseFormat(Trimmed(Raw("ASYA_LOG_FORMAT"))); f) {
    format = *f;
  }
  log::Configure(level, format, "runtime");
  if (!parsed_level) {
    log::Warn("unknown ASYA_LOG_LEVEL, using INFO", {{"value", level_text}});
  }
  auto options = OptionsFromEnv();
  if (!options) {
    log::Error("invalid configuration", {{"error", options.error().message}});
    return kExitConfigError;
  }
  return Serve(std::move(handler), std::move(*options));
}

int Serve(Handler handler, ServeOptions options) {
  // Block the stop signals in every thread (workers inherit the mask); this thread waits for them.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  ::signal(SIGPIPE, SIG_IGN);

  auto server = Server::Start(std::move(handler), std::move(options));
  if (!server) {
    log::Error("cannot start the runtime", {{"error", server.error().message}});
    return kExitConfigError;
  }
  int sig = 0;
  while (sigwait(&stop_signals, &sig) != 0) {
  }
  log::Info("received a stop signal", {{"signal", sig == SIGTERM ? "SIGTERM" : "SIGINT"}});
  (*server)->Stop();
  return kExitOk;
}

}  // namespace asya::runtime
