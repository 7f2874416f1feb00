// The one strict JSON scanner (RFC 8259): checks the grammar of a complete text in one pass,
// without building a DOM, and reports what went wrong as an error kind and a byte offset. Callers
// format their own messages (the envelope library says "invalid JSON at byte N: ...", the C++ SDK
// says what Python's json module says). Optionally reports the raw spans of shallow members and
// elements in the same pass, so a caller finds e.g. an envelope's payload without a second walk.
//
// The text helpers it builds on (UTF-8, \uXXXX, string decoding, string writing) are in
// asya/base/json_text.h.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

#include "asya/base/json_text.h"

namespace asya::json {

// Deepest nesting the scanner can track (ScanOptions::max_depth is capped at this).
inline constexpr size_t kMaxScanDepth = 1024;
// Deepest container level a ScanVisitor is told about.
inline constexpr size_t kMaxVisitDepth = 2;

enum class ErrorKind : uint8_t {
  kNone,
  kExpectedValue,          // no value starts at offset (also: end of input, or nothing at all)
  kInvalidLiteral,         // starts like true/false/null but is not; offset = its first byte
  kNonFiniteConstant,      // NaN, Infinity or -Infinity (not JSON); offset = its first byte
  kNumberNoDigit,          // '-' not followed by a digit; offset = after the '-'
  kNumberLeadingZero,      // offset = the digit after a leading 0
  kNumberNoFractionDigit,  // offset = after the '.'
  kNumberNoExponentDigit,  // offset = after 'e'/'E' and its sign
  kUnterminatedString,     // offset = end of input; token = the opening quote
  kControlCharacter,       // unescaped byte < 0x20 in a string; offset = that byte
  kInvalidEscape,          // offset = the backslash
  kInvalidUnicodeEscape,   // \u not followed by 4 hex digits; offset = the backslash
  kLoneLowSurrogate,       // \uDC00-\uDFFF without a high surrogate before it; offset = backslash
  kUnpairedHighSurrogate,  // \uD800-\uDBFF not followed by a low surrogate; offset = backslash
  kExpectedKey,            // offset = where a string key should start
  kExpectedColon,          // offset = where ':' should be
  kExpectedCommaOrClose,   // offset = where ',' or the closing bracket should be (see in_object)
  kTrailingData,           // something after the top-level value; offset = its first byte
  kTooDeep,                // offset = the bracket that would exceed max_depth
  kInvalidUtf8,            // offset = first byte of the bad sequence; see ScanResult::utf8
};

struct ScanResult {
  ErrorKind kind = ErrorKind::kNone;
  size_t offset = 0;       // byte offset of the error (see ErrorKind)
  size_t token = 0;        // first byte of the token that holds the error (a string's quote, ...)
  size_t depth = 0;        // containers open at the error (0 = at the top level)
  bool in_object = false;  // the innermost open container is an object
  Utf8Error utf8;          // for kInvalidUtf8

  bool ok() const { return kind == ErrorKind::kNone; }
};

struct ScanOptions {
  size_t max_depth = kMaxScanDepth;  // containers deeper than this -> kTooDeep
  // Check UTF-8 inside strings (bytes >= 0x80 anywhere else are grammar errors, so a text that
  // passes is valid UTF-8). Off: the caller has checked the whole text already.
  bool check_utf8 = true;
  // Accept \uD800-\uDFFF escapes that are not part of a pair (Python's json does).
  bool allow_lone_surrogates = false;
  // Report members/elements of containers up to this depth (<= kMaxVisitDepth) to the visitor.
  size_t visit_depth = 0;
};

// Receives raw spans (exact input bytes, no surrounding whitespace; keys with their quotes).
// `depth` is the nesting level of the container holding the value (1 = inside the top-level
// value). Spans are only meaningful when the whole scan succeeds.
class ScanVisitor {
 public:
  virtual ~ScanVisitor() = default;
  virtual void Member(size_t depth, std::string_view raw_key, std::string_view raw_value) = 0;
  virtual void Element(size_t depth, std::string_view raw_value) = 0;
};

// Scans a whole document: exactly one value surrounded by optional whitespace (' ', \t, \n, \r).
// Iterative: deep nesting cannot overflow the stack.
ScanResult Scan(std::string_view text, const ScanOptions& options = {},
                ScanVisitor* visitor = nullptr);

// ---- reading text that Scan accepted ----

enum class Kind : uint8_t { kObject, kArray, kString, kNumber, kTrue, kFalse, kNull };

// "object", "array", "string", "number", "boolean", "null".
std::string_view KindName(Kind kind);
// Kind of a value from its first byte.
Kind KindOf(char first);

struct Value {
  Kind kind = Kind::kNull;
  std::string_view text;  // exact bytes of the value (strings with their quotes)
};

// True when a number token has no fraction and no exponent.
bool IsIntegerToken(std::string_view number);
// An integer token as int64; nullopt when it has a fraction/exponent or does not fit.
std::optional<int64_t> ParseInt(std::string_view number);

namespace internal {
// One past the end of the (valid) value starting exactly at p.
const char* SkipValidated(const char* p);
const char* SkipSpace(const char* p);
}  // namespace internal

// Calls fn(raw_key, value) for each member of a valid object text (starting with '{'), in input
// order; raw_key includes its quotes (see JsonStringText to read it).
template <typename Fn>
void ForEachMember(std::string_view object_text, Fn&& fn) {
  const char* p = internal::SkipSpace(object_text.data() + 1);
  if (*p == '}') {
    return;
  }
  while (true) {
    const char* key_end = internal::SkipValidated(p);
    std::string_view key(p, static_cast<size_t>(key_end - p));
    p = internal::SkipSpace(internal::SkipSpace(key_end) + 1);  // past ':'
    const char* v_end = internal::SkipValidated(p);
    fn(key, Value{KindOf(*p), std::string_view(p, static_cast<size_t>(v_end - p))});
    p = internal::SkipSpace(v_end);
    if (*p == '}') {
      return;
    }
    p = internal::SkipSpace(p + 1);  // past ','
  }
}

// Calls fn(value) for each element of a valid array text (starting with '[').
template <typename Fn>
void ForEachElement(std::string_view array_text, Fn&& fn) {
  const char* p = internal::SkipSpace(array_text.data() + 1);
  if (*p == ']') {
    return;
  }
  while (true) {
    const char* v_end = internal::SkipValidated(p);
    fn(Value{KindOf(*p), std::string_view(p, static_cast<size_t>(v_end - p))});
    p = internal::SkipSpace(v_end);
    if (*p == ']') {
      return;
    }
    p = internal::SkipSpace(p + 1);
  }
}

}  // namespace asya::json
