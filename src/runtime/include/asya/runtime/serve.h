// The C++ handler SDK: turns a C++ function into an Asya runtime that speaks the sidecar socket
// protocol (reference-dataplane §3; DESIGN §3.2).
//
// Example (a complete program):
//
//   #include "asya/runtime/serve.h"
//
//   asya::runtime::Outputs Echo(const asya::runtime::Request& request) {
//     return std::string(request.payload());  // raw JSON text in, raw JSON text out
//   }
//   int main() { return asya::runtime::Serve(Echo); }
//
// Handler kinds (the kind decides the mode; ASYA_HANDLER_MODE, when set, must agree):
//   payload mode, raw:   Outputs f(const Request&)                      (fastest: no DOM)
//   payload mode, JSON:  nlohmann::json f(const nlohmann::json& payload[, const Request&])
//   envelope mode:       Handler::Envelope(nlohmann::json f(nlohmann::json envelope))
// JSON handlers return like Python handlers: null -> no output, an array -> one output per element,
// anything else -> one output. Errors: return HandlerError (raw) or throw anything; a thrown
// exception becomes `processing_error` with details.type = its demangled type name.
//
// Handlers run on ServeOptions::concurrency threads at once; with concurrency > 1 they must be
// thread-safe.
#pragma once

#include <chrono>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "asya/base/result.h"
#include "asya/base/runtime_files.h"

namespace asya::runtime {

// An error reported by a handler -> `{"error":"processing_error","details":{message,type,...}}`.
// May be returned inside Outputs or thrown.
struct HandlerError {
  std::string type;  // e.g. "ValueError" (matched by the sidecar's ASYA_RETRY_NON_RETRYABLE)
  std::string message;
};

// What a raw payload handler returns: zero, one or many payloads (each raw JSON text) or an error.
class Outputs {
 public:
  Outputs() = default;  // no output: the sidecar sends the original envelope to happy-end
  Outputs(std::string payload_json) { payloads_.push_back(std::move(payload_json)); }  // NOLINT
  Outputs(std::string_view payload_json) { payloads_.emplace_back(payload_json); }     // NOLINT
  Outputs(const char* payload_json) { payloads_.emplace_back(payload_json); }          // NOLINT
  Outputs(std::vector<std::string> payloads_json)                                      // NOLINT
      : payloads_(std::move(payloads_json)) {}
  Outputs(HandlerError error) : error_(std::move(error)) {}  // NOLINT

  // Appends one more output (fan-out).
  Outputs& Add(std::string payload_json) {
    payloads_.push_back(std::move(payload_json));
    return *this;
  }

  [[nodiscard]] bool ok() const { return !error_.has_value(); }
  [[nodiscard]] const std::vector<std::string>& payloads() const { return payloads_; }
  [[nodiscard]] const HandlerError& error() const { return *error_; }

 private:
  std::vector<std::string> payloads_;
  std::optional<HandlerError> error_;
};

// The message a payload-mode handler receives. Views are valid during the call only.
class Request {
 public:
  Request(std::string_view payload, std::string_view headers_json)
      : payload_(payload), headers_json_(headers_json) {}

  // The payload as raw JSON text, byte for byte from the envelope.
  [[nodiscard]] std::string_view payload() const { return payload_; }
  // The payload parsed (throws nlohmann::json::exception on text nlohmann rejects).
  [[nodiscard]] nlohmann::json PayloadJson() const { return nlohmann::json::parse(payload_); }

  // The envelope's `headers` object as raw JSON text, or "" when the envelope has none.
  [[nodiscard]] std::string_view headers_json() const { return headers_json_; }
  // The raw JSON text of header `key`, or nullopt.
  [[nodiscard]] std::optional<std::string_view> Header(std::string_view key) const;
  // Header `key` when it is a JSON string, decoded; nullopt otherwise.
  [[nodiscard]] std::optional<std::string> HeaderString(std::string_view key) const;
  // 1-based attempt number (header `x-asya-attempt`, a number or a numeric string); 1 if absent.
  [[nodiscard]] int64_t Attempt() const;

 private:
  std::string_view payload_;
  std::string_view headers_json_;
};

enum class HandlerMode { kPayload, kEnvelope };

using RawFn = std::function<Outputs(const Request&)>;
using EnvelopeFn = std::function<nlohmann::json(nlohmann::json envelope)>;

// Converts a JSON handler result (Python normalisation) into Outputs.
Outputs OutputsFromJson(const nlohmann::json& result);

// A handler of one of the three kinds; build it implicitly from a callable, or with Envelope().
class Handler {
 public:
  // Raw payload handler: Outputs (or anything convertible to it) f(const Request&).
  template <typename F>
  requires std::is_invocable_v<F&, const Request&> Handler(F f)
      : mode_(HandlerMode::kPayload), raw_(std::move(f)) {}  // NOLINT

  // JSON payload handler: nlohmann::json f(const nlohmann::json& payload, const Request&).
  template <typename F>
  requires(!std::is_invocable_v<F&, const Request&> &&
           std::is_invocable_v<F&, const nlohmann::json&, const Request&>) Handler(F f)  // NOLINT
      : mode_(HandlerMode::kPayload), raw_([f = std::move(f)](const Request& r) mutable -> Outputs {
          return OutputsFromJson(f(r.PayloadJson(), r));
        }) {}

  // JSON payload handler without the request: nlohmann::json f(const nlohmann::json& payload).
  template <typename F>
  requires(!std::is_invocable_v<F&, const Request&> &&
           !std::is_invocable_v<F&, const nlohmann::json&, const Request&> &&
           std::is_invocable_v<F&, const nlohmann::json&>) Handler(F f)  // NOLINT
      : mode_(HandlerMode::kPayload), raw_([f = std::move(f)](const Request& r) mutable -> Outputs {
          return OutputsFromJson(f(r.PayloadJson()));
        }) {}

  // Envelope-mode handler: gets the whole (validated) envelope, returns envelope(s) and advances
  // route.current itself.
  static Handler Envelope(EnvelopeFn f) {
    Handler h;
    h.mode_ = HandlerMode::kEnvelope;
    h.envelope_ = std::move(f);
    return h;
  }

  [[nodiscard]] HandlerMode mode() const { return mode_; }
  [[nodiscard]] const RawFn& raw() const { return raw_; }
  [[nodiscard]] const EnvelopeFn& envelope() const { return envelope_; }

 private:
  Handler() = default;
  HandlerMode mode_ = HandlerMode::kPayload;
  RawFn raw_;
  EnvelopeFn envelope_;
};

struct ServeOptions {
  std::string socket_dir = runtime_files::kDefaultSocketDir;  // ASYA_SOCKET_DIR
  std::string socket_name = runtime_files::kSocketName;       // ASYA_SOCKET_NAME
  std::optional<unsigned> socket_mode = 0666;          // ASYA_SOCKET_CHMOD (nullopt: no chmod)
  bool validate = true;                                // ASYA_ENABLE_VALIDATION
  int concurrency = 1;                                 // ASYA_RUNTIME_CONCURRENCY (handler threads)
  std::chrono::milliseconds handler_timeout{300'000};  // ASYA_RUNTIME_TIMEOUT; 0 = no watchdog
  size_t max_message_bytes = 64u << 20;                // ASYA_MAX_MESSAGE_BYTES (each frame)
  std::optional<HandlerMode> mode;                     // ASYA_HANDLER_MODE; must match the handler
};

// Exit codes of Serve() (same as asya_runtime.py).
inline constexpr int kExitOk = 0;
inline constexpr int kExitConfigError = 1;
inline constexpr int kExitHandlerTimeout = 3;

// A running runtime: bound socket, ready file written, worker threads serving.
class Server {
 public:
  // Binds the socket (a stale file is unlinked), chmods it, starts the workers and the watchdog,
  // then writes the ready file. Errors: kInvalidArgument (bad options), kUnavailable (socket).
  static Result<std::unique_ptr<Server>> Start(Handler handler, ServeOptions options);
  ~Server();  // Stop()
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Graceful stop, as on SIGTERM: stops accepting, removes the socket and ready files, lets
  // requests already received finish and answer, closes every connection, joins the threads.
  // Idempotent.
  void Stop();

  [[nodiscard]] const std::string& socket_path() const;
  [[nodiscard]] const std::string& ready_path() const;

 private:
  struct Impl;
  explicit Server(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Reads ASYA_* variables (see src/runtime/README.md). Errors name the variable.
Result<ServeOptions> OptionsFromEnv();

// Runs a runtime until SIGTERM/SIGINT; returns the process exit code. The first overload reads the
// environment (OptionsFromEnv, ASYA_LOG_LEVEL, ASYA_LOG_FORMAT); the second uses `options` as
// given.
int Serve(Handler handler);
int Serve(Handler handler, ServeOptions options);

}  // namespace asya::runtime
