// The envelope of one received message, parsed once on receipt and carried along the message's
// path (checks, runtime call, gateway reports, publish failure) instead of being parsed again.
//
// Large messages (a body of at least kDropPayloadBytes) are not held twice: their payload is not
// copied out of the body at all (the success path builds its outputs from the runtime's results
// and needs only id, route, headers and deadline of the input). WithPayload() parses the body
// again, only on the rare paths that need the original payload (error envelopes, retries, empty
// responses, end actors' final status). Where the transport keeps the body (SQLite), the sidecar
// even frees the body itself while the runtime works on it (ReleaseBody) and, on those paths,
// reads it back and Rebind()s.
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
  // `body` must outlive this object (or until ReleaseBody()).
  explicit ParsedInput(std::string_view body) : body_(body) {
    const bool large = body_.size() >= kDropPayloadBytes;
    envelope::ParseOptions options = Options();
    options.keep_payload = !large;
    if (auto parsed = envelope::Parse(body_, options)) {
      env_ = std::move(*parsed);
      ok_ = true;
      dropped_ = large;
    } else {
      error_ = std::move(parsed.error().message);
    }
  }

  // The body ("" after ReleaseBody(), until Rebind()).
  [[nodiscard]] std::string_view body() const { return body_; }
  // The parsed envelope (its payload is "" while payload_dropped()), or nullptr when parsing
  // failed.
  [[nodiscard]] const envelope::Envelope* envelope() const { return ok_ ? &env_ : nullptr; }
  [[nodiscard]] std::string_view parse_error() const { return error_; }
  [[nodiscard]] bool payload_dropped() const { return dropped_; }
  [[nodiscard]] bool body_released() const { return released_; }

  // Frees the parsed payload of a large body; returns whether it did.
  bool DropPayload() {
    if (!ok_ || dropped_ || body_.size() < kDropPayloadBytes) {
      return false;
    }
    std::string().swap(env_.payload_json);
    dropped_ = true;
    return true;
  }

  // The caller is freeing the body this object views (the envelope stays, without payload).
  void ReleaseBody() {
    DropPayload();
    body_ = {};
    released_ = true;
  }
  // The same body again, read back into `body` (which must outlive this object).
  void Rebind(std::string_view body) {
    body_ = body;
    released_ = false;
  }

  // The envelope with its payload (parses the body again if it was not kept). The pointer is the
  // same as envelope(). While the body is released the payload stays "".
  const envelope::Envelope* WithPayload() {
    if (dropped_ && !released_) {
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
  bool released_ = false;
};

}  // namespace asya::sidecar
