// Reads a request as the Python runtime does (`json.JSONDecoder.decode(body.decode("utf-8"))`)
// with the base scanner, and words its errors as Python's exceptions so the C++ and the Python
// runtime report malformed input alike ("Expecting value: line 1 column 5 (char 4)").
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "asya/base/json_scan.h"

namespace asya::runtime {

// Deepest nesting accepted (deeper input is a RecursionError, as Python's recursion limit; Python
// allows somewhat more, depending on its version and stack).
inline constexpr size_t kMaxJsonDepth = 512;

// The exception Python would raise: details.type and details.message of a msg_parsing_error.
struct PyError {
  std::string type;  // "UnicodeDecodeError", "JSONDecodeError", "ValueError", "RecursionError"
  std::string message;
};

// A member of the top-level object: its key (escapes decoded) and its value.
struct Member {
  std::string_view key;
  json::Value value;
  std::string decoded_key;  // storage for `key` when the raw key has escapes
};

// Checks UTF-8 and grammar of a whole document. On failure returns nullopt and sets `error`.
// When `top_members` is given and the document is an object, its members are appended in input
// order (found in the same pass).
std::optional<json::Value> PyDecode(std::string_view text, PyError* error,
                                    std::vector<Member>* top_members = nullptr);

}  // namespace asya::runtime
