#include "asya/protocol/frame.h"

#include <cstring>

namespace asya::protocol {

void EncodeHeader(uint32_t body_size, unsigned char out[kHeaderBytes]) {
  out[0] = static_cast<unsigned char>((body_size >> 24) & 0xFF);
  out[1] = static_cast<unsigned char>((body_size >> 16) & 0xFF);
  out[2] = static_cast<unsigned char>((body_size >> 8) & 0xFF);
  out[3] = static_cast<unsigned char>(body_size & 0xFF);
}

Result<uint32_t> DecodeHeader(const unsigned char in[kHeaderBytes], size_t max_bytes) {
  uint32_t n = (static_cast<uint32_t>(in[0]) << 24) | (static_cast<uint32_t>(in[1]) << 16) |
               (static_cast<uint32_t>(in[2]) << 8) | static_cast<uint32_t>(in[3]);
  if (n > max_bytes) {
    return MakeError(ErrorCode::kResourceExhausted,
                     "frame of " + std::to_string(n) + " bytes exceeds the limit of " +
                         std::to_string(max_bytes) + " bytes (ASYA_MAX_MESSAGE_BYTES)");
  }
  return n;
}

Result<std::string> EncodeFrame(std::string_view body, size_t max_bytes) {
  if (body.size() > max_bytes || body.size() > UINT32_MAX) {
    return MakeError(ErrorCode::kResourceExhausted,
                     "message of " + std::to_string(body.size()) + " bytes exceeds the limit of " +
                         std::to_string(max_bytes) + " bytes (ASYA_MAX_MESSAGE_BYTES)");
  }
  std::string out;
  out.resize(kHeaderBytes + body.size());
  EncodeHeader(static_cast<uint32_t>(body.size()), reinterpret_cast<unsigned char*>(out.data()));
  if (!body.empty()) {
    std::memcpy(out.data() + kHeaderBytes, body.data(), body.size());
  }
  return out;
}

Status FrameDecoder::Feed(std::string_view bytes) {
  if (failed_) {
    return MakeError(ErrorCode::kFailedPrecondition, "frame decoder already failed");
  }
  if (offset_ > 0 && offset_ == buffer_.size()) {
    buffer_.clear();
    checked_ -= offset_;
    offset_ = 0;
  }
  buffer_.append(bytes);
  while (buffer_.size() >= checked_ + kHeaderBytes) {
    auto n =
        DecodeHeader(reinterpret_cast<const unsigned char*>(buffer_.data() + checked_), max_bytes_);
    if (!n) {
      failed_ = true;
      return Unexpected(n.error());
    }
    checked_ += kHeaderBytes + *n;
  }
  return Ok();
}

bool FrameDecoder::Next(std::string& out) {
  if (failed_ || Pending() < kHeaderBytes) {
    return false;
  }
  // Feed() has checked this header against max_bytes_.
  const auto* p = reinterpret_cast<const unsigned char*>(buffer_.data() + offset_);
  const size_t n = (static_cast<size_t>(p[0]) << 24) | (static_cast<size_t>(p[1]) << 16) |
                   (static_cast<size_t>(p[2]) << 8) | static_cast<size_t>(p[3]);
  if (Pending() < kHeaderBytes + n) {
    return false;
  }
  out.assign(buffer_, offset_ + kHeaderBytes, n);
  offset_ += kHeaderBytes + n;
  if (offset_ == buffer_.size()) {
    buffer_.clear();
    checked_ -= offset_;
    offset_ = 0;
  } else if (offset_ > (1u << 20) && offset_ * 2 > buffer_.size()) {
    buffer_.erase(0, offset_);
    checked_ -= offset_;
    offset_ = 0;
  }
  return true;
}

}  // namespace asya::protocol
