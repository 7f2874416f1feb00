// Frame codec for the sidecar <-> runtime socket protocol: a 4-byte unsigned big-endian length
// followed by that many bytes of UTF-8 JSON. Pure: no I/O.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "asya/base/result.h"

namespace asya::protocol {

inline constexpr size_t kHeaderBytes = 4;
inline constexpr size_t kDefaultMaxFrameBytes = 64u << 20;  // ASYA_MAX_MESSAGE_BYTES default

// Encodes the 4-byte big-endian length of `body_size` into `out[0..4)`.
void EncodeHeader(uint32_t body_size, unsigned char out[kHeaderBytes]);
// Decodes a header; errors with kResourceExhausted when the length exceeds max_bytes.
Result<uint32_t> DecodeHeader(const unsigned char in[kHeaderBytes], size_t max_bytes);

// Returns header + body in one string (one write on the socket). Errors when body > max_bytes.
Result<std::string> EncodeFrame(std::string_view body, size_t max_bytes = kDefaultMaxFrameBytes);

// Incremental decoder: feed bytes as they arrive, take complete frames out.
class FrameDecoder {
 public:
  explicit FrameDecoder(size_t max_bytes = kDefaultMaxFrameBytes) : max_bytes_(max_bytes) {}

  // Appends bytes. Returns an error (and stays failed) when a declared length exceeds max_bytes;
  // every header that becomes complete is checked here, so an oversize frame is reported by the
  // Feed() that completes its header, before any of its body is buffered beyond what was fed.
  Status Feed(std::string_view bytes);
  // Moves the next complete frame body into `out`; false when none is complete yet (or failed).
  bool Next(std::string& out);
  // Bytes buffered that do not yet form a complete frame.
  [[nodiscard]] size_t Pending() const { return buffer_.size() - offset_; }
  // True after Feed() reported an oversize frame.
  [[nodiscard]] bool Failed() const { return failed_; }

 private:
  size_t max_bytes_;
  std::string buffer_;
  size_t offset_ = 0;   // start of the first frame not yet taken by Next()
  size_t checked_ = 0;  // start of the first frame whose header has not been checked yet
  bool failed_ = false;
};

}  // namespace asya::protocol
