// JSON text helpers shared by every layer: UTF-8, \uXXXX escapes, reading and writing JSON string
// literals. The grammar scanner that uses them is asya/base/json_scan.h.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace asya {

// ---- UTF-8 ----

// Why a UTF-8 sequence is invalid (the words are Python's codec messages).
enum class Utf8Problem : uint8_t {
  kInvalidStartByte,     // "invalid start byte"
  kInvalidContinuation,  // "invalid continuation byte"
  kUnexpectedEnd,        // "unexpected end of data"
};
std::string_view Utf8ProblemText(Utf8Problem problem);

struct Utf8Error {
  size_t offset = 0;  // first byte of the bad sequence
  size_t length = 1;  // bytes of it that were a valid prefix (>= 1; Python's "bytes in position")
  Utf8Problem problem = Utf8Problem::kInvalidStartByte;
};

// Length of the valid UTF-8 sequence starting at s[i] (1 for ASCII), or 0 when it is invalid
// (overlong forms, surrogates and code points above U+10FFFF are invalid); then `error`, when
// given, says why.
size_t Utf8SequenceLength(std::string_view s, size_t i, Utf8Error* error = nullptr);

// The first invalid UTF-8 sequence in `text`, or nullopt.
std::optional<Utf8Error> FindInvalidUtf8(std::string_view text);

// Appends code point `cp` (<= U+10FFFF) as UTF-8.
void AppendUtf8(std::string& out, uint32_t cp);

// ---- \uXXXX ----

// Value of one hex digit, or -1.
int HexDigitValue(char c);
// Value of the 4 hex digits at p[0..3], or -1 when one is not a hex digit.
int32_t ParseHex4(const char* p);

inline bool IsHighSurrogate(uint32_t cp) {
  return cp >= 0xD800 && cp <= 0xDBFF;
}
inline bool IsLowSurrogate(uint32_t cp) {
  return cp >= 0xDC00 && cp <= 0xDFFF;
}

// ---- JSON string literals ----

// What DecodeJsonString does with a \uD800-\uDFFF escape that is not part of a pair.
enum class LoneSurrogates : uint8_t { kReject, kReplace /* with U+FFFD */ };

// Decodes a JSON string literal (quotes included) to UTF-8; nullopt when `raw` is not one (bad
// escapes, unescaped quotes or control characters, lone surrogates under kReject). Bytes >= 0x80
// are copied as they are (check UTF-8 separately).
std::optional<std::string> DecodeJsonString(std::string_view raw,
                                            LoneSurrogates lone = LoneSurrogates::kReject);

// The text of a string literal that passed the scanner: a view of its bytes between the quotes
// when it has no escapes, else the decoded text in `scratch` (lone surrogates -> U+FFFD).
std::string_view JsonStringText(std::string_view raw, std::string& scratch);

// Appends `s` as a JSON string literal (quotes included): control characters, quotes and
// backslashes escaped, valid UTF-8 copied as is, each invalid byte written as \ufffd so the
// output is always valid JSON.
void AppendJsonString(std::string& out, std::string_view s);

}  // namespace asya
