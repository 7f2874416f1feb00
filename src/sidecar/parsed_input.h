// The envelope of one received message, parsed once on receipt and carried along the message's
// path (checks, runtime call, gateway reports, publish failure) instead of being parsed again.
//
// One exception keeps large messages from being held twice: for a body of at least
// kDropPayloadBytes, DropPayload() frees the parsed copy of the payload while the runtime is
// called (the success path builds its outputs from the runtime's results). WithPayload() brings it
// back by parsing the body again, only on the rare paths that need the original payload (error
// envelopes, retries, empty responses, end actors' final status).
#pragma once

#include <cstddef>
#include <limits>
#include <string>
#include <string_view>

#include "asya/envelope/envelope.h"

namespace asya::sidecar {

inline constexpr size_t kDropPayloadBytes = 1u << 20;

class ParsedInput {
 public:
  // `body` must outlive this object.
  explicit ParsedInput(std::string_view body) : body_(body) {
    if (auto parsed = envelope::Parse(body_, Options())) {
      env_ = std::move(*parsed);
      ok_ = true;
    } else {
      error_ = std::move(parsed.error().message);
    }
  }

  [[nodiscard]] std::string_view body() const { return body_; }
  // The parsed envelope (its payload is "" after DropPayload()), or nullptr when parsing failed.
  [[nodiscard]] const envelope::Envelope* envelope() const { return ok_ ? &env_ : nullptr; }
  [[nodiscard]] std::string_view parse_error() const { return error_; }
  [[nodiscard]] bool payload_dropped() const { return dropped_; }

  // Frees the parsed payload of a large body; returns whether it did.
  bool DropPayload() {
    if (!ok_ || dropped_ || body_.size() < kDropPayloadBytes) {
      return false;
    }
    std::string().swap(env_.payload_json);
    dropped_ = true;
    return true;
  }

  // The envelope with its payload (parses the body again if DropPayload() freed it). The pointer
  // is the same as envelope().
  const envelope::Envelope* WithPayload() {
    if (dropped_) {
      if (auto full = envelope::Parse(body_, Options())) {
        env_ = std::move(*full);
        dropped_ = false;
      }
    }
    return envelope();
  }

 private:
  // The size limit is the router's check (with its own error text), not the parser's.
  static envelope::ParseOptions Options() {
    return {.max_bytes = std::numeric_limits<size_t>::max()};
  }

  std::string_view body_;
  envelope::Envelope env_;
  std::string error_;
  bool ok_ = false;
  bool dropped_ = false;
};

}  // namespace asya::sidecar
