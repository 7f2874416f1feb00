// A small validating JSON scanner: checks the grammar of a UTF-8 text and reports the byte spans
// of values, without building a DOM. The runtime uses it on the hot path (payload mode) so that
// payloads, headers and route members pass through as their exact input text.
//
// Error messages follow Python's json module ("Expecting value: line 1 column 5 (char 4)") so the
// C++ and the Python runtime report malformed input alike.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace asya::runtime::json {

enum class Kind { kObject, kArray, kString, kNumber, kTrue, kFalse, kNull };

// "object", "array", "string", "number", "boolean", "null" (as the Python runtime names them).
std::string_view KindName(Kind kind);

struct Value {
  Kind kind = Kind::kNull;
  std::string_view text;  // exact bytes of the value (strings include their quotes)
};

// Maximum nesting depth of arrays/objects (deeper input is rejected, as Python's recursion limit).
inline constexpr int kMaxDepth = 512;

struct Member {
  std::string_view raw_key;  // the key's text between the quotes (escapes not decoded)
  Value value;
};

// Scans a whole document: exactly one value surrounded by optional whitespace. Does not check
// UTF-8 (see FindInvalidUtf8). On failure returns nullopt and sets `error`. When `top_members` is
// given and the document is an object, its members are appended in input order (in the same pass).
std::optional<Value> ScanDocument(std::string_view text, std::string* error,
                                  std::vector<Member>* top_members = nullptr);

// Iterates the members of an object value that ScanDocument (or ScanMembers) already validated.
// `object.text` must start with '{'. Calls fn(raw_key, value) for each member in input order;
// raw_key is the key's text between the quotes (escapes not decoded).
template <typename Fn>
void ForEachMember(std::string_view object_text, Fn&& fn);
// Same for arrays: fn(value) per element.
template <typename Fn>
void ForEachElement(std::string_view array_text, Fn&& fn);

// Returns the byte offset of the first invalid UTF-8 sequence and a Python-style reason
// ("invalid start byte", "invalid continuation byte", "unexpected end of data"), or nullopt.
struct Utf8Error {
  size_t offset;
  std::string_view reason;
};
std::optional<Utf8Error> FindInvalidUtf8(std::string_view text);

// Parses an integer token (no fraction/exponent). nullopt when `number` is not an integer or does
// not fit in int64.
std::optional<int64_t> ParseInt(std::string_view number);
// True when the number token has no fraction and no exponent.
bool IsIntegerToken(std::string_view number);

// Decodes a validated string token (with quotes) into UTF-8.
std::string DecodeString(std::string_view token);
// Appends `s` as a JSON string literal; invalid UTF-8 bytes become U+FFFD so the output is valid.
void AppendString(std::string& out, std::string_view s);

// ---- implementation of the templates ----
namespace internal {
// Skips a value starting exactly at `p` (validated input); returns one past its end.
const char* SkipValidated(const char* p);
const char* SkipWs(const char* p);
Kind KindOf(char c);
}  // namespace internal

template <typename Fn>
void ForEachMember(std::string_view object_text, Fn&& fn) {
  const char* p = internal::SkipWs(object_text.data() + 1);
  if (*p == '}') {
    return;
  }
  while (true) {
    const char* key_begin = p + 1;
    const char* key_end = internal::SkipValidated(p) - 1;
    p = internal::SkipWs(key_end + 1);
    p = internal::SkipWs(p + 1);  // ':'
    const char* v_end = internal::SkipValidated(p);
    fn(std::string_view(key_begin, static_cast<size_t>(key_end - key_begin)),
       Value{internal::KindOf(*p), std::string_view(p, static_cast<size_t>(v_end - p))});
    p = internal::SkipWs(v_end);
    if (*p == '}') {
      return;
    }
    p = internal::SkipWs(p + 1);  // ','
  }
}

template <typename Fn>
void ForEachElement(std::string_view array_text, Fn&& fn) {
  const char* p = internal::SkipWs(array_text.data() + 1);
  if (*p == ']') {
    return;
  }
  while (true) {
    const char* v_end = internal::SkipValidated(p);
    fn(Value{internal::KindOf(*p), std::string_view(p, static_cast<size_t>(v_end - p))});
    p = internal::SkipWs(v_end);
    if (*p == ']') {
      return;
    }
    p = internal::SkipWs(p + 1);
  }
}

}  // namespace asya::runtime::json
