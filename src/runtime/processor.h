// Turns one request frame body into one response frame body (pure; no I/O). The server calls it
// from its worker threads; tests call it directly.
#pragma once

#include <string>
#include <string_view>

#include "asya/runtime/serve.h"

namespace asya::runtime {

inline constexpr std::string_view kProcessingError = "processing_error";
inline constexpr std::string_view kParsingError = "msg_parsing_error";
inline constexpr std::string_view kConnectionError = "connection_error";

// Appends `[{"error":code,"details":{"message":...,"type":...,"traceback":""}}]` to `out`.
void AppendErrorResponse(std::string& out, std::string_view code, std::string_view type,
                         std::string_view message);

class Processor {
 public:
  Processor(const Handler& handler, bool validate, size_t max_message_bytes)
      : handler_(handler), validate_(validate), max_bytes_(max_message_bytes) {}

  // Appends the response body for `request` to `out` (which may already hold a frame header).
  // Never throws; handler exceptions become processing_error responses.
  void Process(std::string_view request, std::string& out) const;

 private:
  void ProcessPayload(std::string_view request, std::string& out) const;
  void ProcessEnvelope(std::string_view request, std::string& out) const;

  const Handler& handler_;
  bool validate_;
  size_t max_bytes_;
};

}  // namespace asya::runtime
