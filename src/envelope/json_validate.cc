// The envelope library's wording of the base scanner's errors: "invalid JSON at byte N: <what>".
// UTF-8 is checked before (simdjson::validate_utf8 in CheckInput), so the scan trusts it.
#include <string>
#include <string_view>

#include "asya/base/json_scan.h"
#include "asya/envelope/envelope.h"
#include "envelope/json_util.h"

namespace asya::envelope {
namespace {

using json::ErrorKind;

// What went wrong, and where, in this library's words.
std::string_view Describe(std::string_view text, json::ScanResult& r) {
  const bool at_end = r.offset == text.size();
  switch (r.kind) {
    case ErrorKind::kNone:
      return "";
    case ErrorKind::kExpectedValue:
      if (at_end) {
        return r.depth == 0 ? "empty document" : "unexpected end of input, expected a value";
      }
      return "expected a value";
    case ErrorKind::kInvalidLiteral:
      return "invalid literal";
    case ErrorKind::kNonFiniteConstant:
      if (text[r.offset] == '-') {  // "-Infinity": a '-' without a digit
        ++r.offset;
        return "invalid number: expected a digit";
      }
      return "expected a value";
    case ErrorKind::kNumberNoDigit:
      return "invalid number: expected a digit";
    case ErrorKind::kNumberLeadingZero:
      return "invalid number: leading zero";
    case ErrorKind::kNumberNoFractionDigit:
      return "invalid number: expected a digit after '.'";
    case ErrorKind::kNumberNoExponentDigit:
      return "invalid number: expected a digit in the exponent";
    case ErrorKind::kUnterminatedString:
      return "unterminated string";
    case ErrorKind::kControlCharacter:
      return "unescaped control character in string";
    case ErrorKind::kInvalidEscape:
      ++r.offset;  // this library points at the letter after the backslash
      return "invalid escape in string";
    case ErrorKind::kInvalidUnicodeEscape:
      return "invalid \\u escape";
    case ErrorKind::kLoneLowSurrogate:
      return "lone low surrogate in \\u escape";
    case ErrorKind::kUnpairedHighSurrogate:
      return "high surrogate not followed by a low surrogate";
    case ErrorKind::kExpectedKey:
      return at_end ? "unexpected end of input, expected a string key" : "expected a string key";
    case ErrorKind::kExpectedColon:
      return "expected ':' after an object key";
    case ErrorKind::kExpectedCommaOrClose:
      if (at_end) {
        return r.in_object ? "unexpected end of input, expected ',' or '}'"
                           : "unexpected end of input, expected ',' or ']'";
      }
      return r.in_object ? "expected ',' or '}'" : "expected ',' or ']'";
    case ErrorKind::kTrailingData:
      return "unexpected data after the JSON value";
    case ErrorKind::kTooDeep:
      return "nesting deeper than 1024 levels";
    case ErrorKind::kInvalidUtf8:
      return "invalid UTF-8";
  }
  return "invalid JSON";
}

}  // namespace

namespace internal {

Status ScanJson(std::string_view json, size_t visit_depth, json::ScanVisitor* visitor) {
  json::ScanOptions options;
  options.check_utf8 = false;  // CheckInput did
  options.visit_depth = visit_depth;
  json::ScanResult r = json::Scan(json, options, visitor);
  if (r.ok()) {
    return Ok();
  }
  std::string_view what = Describe(json, r);
  std::string msg = "invalid JSON at byte ";
  msg += std::to_string(r.offset);
  msg += ": ";
  msg += what;
  return MakeError(ErrorCode::kInvalidArgument, std::move(msg));
}

}  // namespace internal

Status ValidateJson(std::string_view json) {
  return internal::ScanJson(json, 0, nullptr);
}

}  // namespace asya::envelope
