// Fuzzes protocol::FrameDecoder against a simple reference decoder.
//
// Input: byte 0 picks the frame limit (0..1020 bytes), byte 1 seeds the chunking of the rest,
// which is fed to the decoder in pieces of 1..64 bytes.
// Invariants: the decoder yields exactly the reference's frames, in order; an oversize header is
// reported by the Feed() whose chunk completes it and the decoder stays failed; Pending() equals
// the bytes after the last complete frame; EncodeFrame output decodes to the same body.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "asya/protocol/frame.h"
#include "fuzz_check.h"

using asya::protocol::FrameDecoder;
using asya::protocol::kHeaderBytes;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) {
    return 0;
  }
  const size_t max_bytes = static_cast<size_t>(data[0]) * 4;
  uint32_t seed = data[1];
  const std::string_view stream(reinterpret_cast<const char*>(data + 2), size - 2);

  // Reference: walk the stream frame by frame.
  std::vector<std::string> ref_frames;
  std::vector<size_t> ref_ends;  // stream offset just past each frame
  size_t pos = 0;
  size_t oversize_header_end = SIZE_MAX;  // offset just past an oversize header, if any
  while (stream.size() - pos >= kHeaderBytes) {
    const auto* h = reinterpret_cast<const unsigned char*>(stream.data() + pos);
    size_t n = (size_t{h[0]} << 24) | (size_t{h[1]} << 16) | (size_t{h[2]} << 8) | h[3];
    if (n > max_bytes) {
      oversize_header_end = pos + kHeaderBytes;
      break;
    }
    if (stream.size() - pos - kHeaderBytes < n) {
      break;
    }
    ref_frames.emplace_back(stream.substr(pos + kHeaderBytes, n));
    pos += kHeaderBytes + n;
    ref_ends.push_back(pos);
  }

  FrameDecoder decoder(max_bytes);
  std::vector<std::string> got;
  size_t fed = 0;
  bool failed = false;
  std::string frame;
  while (fed < stream.size()) {
    seed = seed * 1103515245u + 12345u;
    size_t chunk = std::min<size_t>(1 + (seed >> 16) % 64, stream.size() - fed);
    auto status = decoder.Feed(stream.substr(fed, chunk));
    fed += chunk;
    if (failed) {
      FUZZ_CHECK(!status.has_value());
      FUZZ_CHECK(status.error().code == asya::ErrorCode::kFailedPrecondition);
      FUZZ_CHECK(!decoder.Next(frame));
      continue;
    }
    if (!status.has_value()) {
      // Fails exactly when this chunk completed the oversize header.
      FUZZ_CHECK(status.error().code == asya::ErrorCode::kResourceExhausted);
      FUZZ_CHECK(fed >= oversize_header_end && fed - chunk < oversize_header_end);
      FUZZ_CHECK(decoder.Failed());
      FUZZ_CHECK(!decoder.Next(frame));
      failed = true;
      continue;
    }
    FUZZ_CHECK(fed < oversize_header_end);
    while (decoder.Next(frame)) {
      FUZZ_CHECK(got.size() < ref_frames.size());
      FUZZ_CHECK(frame == ref_frames[got.size()]);
      got.push_back(frame);
    }
    // Every reference frame that ends within the fed bytes has been taken.
    size_t complete = 0;
    while (complete < ref_ends.size() && ref_ends[complete] <= fed) {
      ++complete;
    }
    FUZZ_CHECK(got.size() == complete);
    FUZZ_CHECK(decoder.Pending() == fed - (complete == 0 ? 0 : ref_ends[complete - 1]));
  }
  FUZZ_CHECK(failed == (oversize_header_end != SIZE_MAX));

  // Encoding round trip for a body taken from the input.
  const std::string_view body = stream.substr(0, std::min(stream.size(), max_bytes));
  auto encoded = asya::protocol::EncodeFrame(body, max_bytes);
  FUZZ_CHECK(encoded.has_value());
  FrameDecoder round_trip(max_bytes);
  FUZZ_CHECK(round_trip.Feed(*encoded).has_value());
  FUZZ_CHECK(round_trip.Next(frame) && frame == body);
  FUZZ_CHECK(round_trip.Pending() == 0);
  return 0;
}
