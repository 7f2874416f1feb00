#include "runtime/json_scan.h"

#include <cstdio>

namespace asya::runtime {
namespace {

using json::ErrorKind;

// Python's "'utf-8' codec can't decode ..." message.
std::string Utf8Message(std::string_view text, const Utf8Error& e) {
  char buf[160];
  std::string_view why = Utf8ProblemText(e.problem);
  if (e.length <= 1) {
    std::snprintf(buf, sizeof buf, "'utf-8' codec can't decode byte 0x%02x in position %zu: %.*s",
                  static_cast<unsigned char>(text[e.offset]), e.offset,
                  static_cast<int>(why.size()), why.data());
  } else {
    std::snprintf(buf, sizeof buf, "'utf-8' codec can't decode bytes in position %zu-%zu: %.*s",
                  e.offset, e.offset + e.length - 1, static_cast<int>(why.size()), why.data());
  }
  return buf;
}

// Python's JSONDecodeError message: positions count characters (code points), not bytes.
std::string DecodeErrorMessage(std::string_view what, std::string_view text, size_t at) {
  size_t chars = 0;
  size_t line = 1;
  size_t line_start_chars = 0;  // characters before the current line
  for (size_t i = 0; i < at; ++i) {
    auto c = static_cast<unsigned char>(text[i]);
    if ((c & 0xC0) != 0x80) {
      ++chars;
    }
    if (c == '\n') {
      ++line;
      line_start_chars = chars;
    }
  }
  char buf[96];
  std::snprintf(buf, sizeof buf, ": line %zu column %zu (char %zu)", line,
                chars - line_start_chars + 1, chars);
  return std::string(what) + buf;
}

// Where Python's string scanner gives up on a string that runs to the end of the text: a \u escape
// with fewer than 5 characters after its 'u' is an "Invalid \uXXXX escape" (at the 'u'), not an
// unterminated string. Returns that 'u', or npos.
size_t TruncatedUnicodeEscape(std::string_view text, size_t quote) {
  size_t found = std::string_view::npos;
  for (size_t i = quote + 1; i < text.size(); ++i) {
    if (text[i] == '\\' && i + 1 < text.size()) {
      if (text[i + 1] == 'u' && i + 1 + 5 >= text.size()) {
        found = i + 1;
      }
      ++i;
    }
  }
  return found;
}

PyError FromScan(std::string_view text, const json::ScanResult& r) {
  if (r.kind == ErrorKind::kInvalidUtf8) {
    return {"UnicodeDecodeError", Utf8Message(text, r.utf8)};
  }
  if (auto bad = FindInvalidUtf8(text)) {  // Python decodes the whole text before parsing it
    return {"UnicodeDecodeError", Utf8Message(text, *bad)};
  }
  auto decode_error = [&](std::string_view what, size_t at) {
    return PyError{"JSONDecodeError", DecodeErrorMessage(what, text, at)};
  };
  // A number's valid prefix ended at `at`: Python reads the number up to there and then trips on
  // what follows it.
  auto after_number = [&](size_t at) {
    return decode_error(r.depth == 0 ? "Extra data" : "Expecting ',' delimiter", at);
  };
  switch (r.kind) {
    case ErrorKind::kNone:
    case ErrorKind::kInvalidUtf8:
      break;
    case ErrorKind::kExpectedValue:
    case ErrorKind::kInvalidLiteral:
      return decode_error("Expecting value", r.offset);
    case ErrorKind::kNonFiniteConstant: {
      std::string_view name = text[r.offset] == 'N'   ? "NaN"
                              : text[r.offset] == 'I' ? "Infinity"
                                                      : "-Infinity";
      return {"ValueError",
              "Invalid JSON constant " + std::string(name) + " (NaN and Infinity are not JSON)"};
    }
    case ErrorKind::kNumberNoDigit:
      return decode_error("Expecting value", r.token);
    case ErrorKind::kNumberLeadingZero:
      return after_number(r.offset);
    case ErrorKind::kNumberNoFractionDigit:
      return after_number(r.offset - 1);
    case ErrorKind::kNumberNoExponentDigit: {
      size_t e = r.offset - 1;
      if (text[e] == '+' || text[e] == '-') {
        --e;
      }
      return after_number(e);
    }
    case ErrorKind::kUnterminatedString: {
      size_t u = TruncatedUnicodeEscape(text, r.token);
      if (u != std::string_view::npos) {
        return decode_error("Invalid \\uXXXX escape", u);
      }
      return decode_error("Unterminated string starting at", r.token);
    }
    case ErrorKind::kControlCharacter:
      return decode_error("Invalid control character at", r.offset);
    case ErrorKind::kInvalidEscape:
      return decode_error("Invalid \\escape", r.offset);
    case ErrorKind::kInvalidUnicodeEscape:
    case ErrorKind::kLoneLowSurrogate:       // not reported: lone surrogates are allowed
    case ErrorKind::kUnpairedHighSurrogate:  // (as above)
      return decode_error("Invalid \\uXXXX escape", r.offset + 1);
    case ErrorKind::kExpectedKey:
      return decode_error("Expecting property name enclosed in double quotes", r.offset);
    case ErrorKind::kExpectedColon:
      return decode_error("Expecting ':' delimiter", r.offset);
    case ErrorKind::kExpectedCommaOrClose:
      return decode_error("Expecting ',' delimiter", r.offset);
    case ErrorKind::kTrailingData:
      return decode_error("Extra data", r.offset);
    case ErrorKind::kTooDeep:
      return {"RecursionError", text[r.offset] == '{'
                                    ? "maximum recursion depth exceeded while decoding a JSON "
                                      "object from a unicode string"
                                    : "maximum recursion depth exceeded while decoding a JSON "
                                      "array from a unicode string"};
  }
  return decode_error("Expecting value", r.offset);
}

// Collects the members of the top-level object.
class TopMembers final : public json::ScanVisitor {
 public:
  explicit TopMembers(std::vector<runtime::Member>* members) : members_(members) {}
  void Member(size_t /*depth*/, std::string_view raw_key, std::string_view raw_value) override {
    members_->push_back({raw_key, json::Value{json::KindOf(raw_value[0]), raw_value}, {}});
  }
  void Element(size_t /*depth*/, std::string_view /*raw_value*/) override {}

 private:
  std::vector<runtime::Member>* members_;
};

}  // namespace

std::optional<json::Value> PyDecode(std::string_view text, PyError* error,
                                    std::vector<Member>* top_members) {
  json::ScanOptions options;
  options.max_depth = kMaxJsonDepth;
  options.allow_lone_surrogates = true;
  TopMembers visitor(top_members);
  if (top_members != nullptr) {
    options.visit_depth = 1;
  }
  json::ScanResult r = json::Scan(text, options, top_members != nullptr ? &visitor : nullptr);
  if (!r.ok()) {
    *error = FromScan(text, r);
    if (top_members != nullptr) {
      top_members->clear();
    }
    return std::nullopt;
  }
  if (top_members != nullptr) {
    for (auto& m : *top_members) {  // the vector is final now: views into it stay valid
      m.key = JsonStringText(m.key, m.decoded_key);
    }
  }
  const char* start = json::internal::SkipSpace(text.data());
  size_t begin = static_cast<size_t>(start - text.data());
  size_t end = text.find_last_not_of(" \t\r\n") + 1;
  return json::Value{json::KindOf(*start), text.substr(begin, end - begin)};
}

}  // namespace asya::runtime
