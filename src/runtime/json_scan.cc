#include "runtime/json_scan.h"

#include <cstdio>

#include "asya/base/json_text.h"

namespace asya::runtime::json {
namespace {

bool IsWs(char c) {
  return c == ' ' || c == '\n' || c == '\r' || c == '\t';
}
bool IsDigit(char c) {
  return c >= '0' && c <= '9';
}
bool IsHex(char c) {
  return IsDigit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

// Bounds-checked validating scanner.
class Scanner {
 public:
  Scanner(std::string_view text, std::string* error, std::vector<Member>* top_members)
      : begin_(text.data()),
        p_(text.data()),
        end_(text.data() + text.size()),
        error_(error),
        top_members_(top_members) {}

  std::optional<Value> Document() {
    SkipWs();
    const char* start = p_;
    if (!ScanValue(0)) {
      return std::nullopt;
    }
    Value v{internal::KindOf(*start), std::string_view(start, static_cast<size_t>(p_ - start))};
    SkipWs();
    if (p_ != end_) {
      return Fail("Extra data", p_);
    }
    return v;
  }

 private:
  void SkipWs() {
    while (p_ < end_ && IsWs(*p_)) {
      ++p_;
    }
  }

  std::nullopt_t Fail(std::string_view what, const char* at) {
    size_t pos = static_cast<size_t>(at - begin_);
    size_t line = 1;
    const char* line_start = begin_;
    for (const char* q = begin_; q < at; ++q) {
      if (*q == '\n') {
        ++line;
        line_start = q + 1;
      }
    }
    size_t col = static_cast<size_t>(at - line_start) + 1;
    char buf[96];
    std::snprintf(buf, sizeof buf, ": line %zu column %zu (char %zu)", line, col, pos);
    *error_ = std::string(what) + buf;
    return std::nullopt;
  }

  bool Literal(std::string_view word) {
    if (static_cast<size_t>(end_ - p_) < word.size() || std::string_view(p_, word.size()) != word) {
      Fail("Expecting value", p_);
      return false;
    }
    p_ += word.size();
    return true;
  }

  bool ScanValue(int depth) {
    if (p_ >= end_) {
      Fail("Expecting value", p_);
      return false;
    }
    switch (*p_) {
      case '{':
        return ScanObject(depth + 1);
      case '[':
        return ScanArray(depth + 1);
      case '"':
        return ScanString();
      case 't':
        return Literal("true");
      case 'f':
        return Literal("false");
      case 'n':
        return Literal("null");
      default:
        if (*p_ == '-' || IsDigit(*p_)) {
          return ScanNumber();
        }
        Fail("Expecting value", p_);
        return false;
    }
  }

  bool ScanNumber() {
    const char* start = p_;
    if (*p_ == '-') {
      ++p_;
    }
    if (p_ >= end_ || !IsDigit(*p_)) {
      Fail("Expecting value", start);
      return false;
    }
    if (*p_ == '0') {
      ++p_;
    } else {
      while (p_ < end_ && IsDigit(*p_)) {
        ++p_;
      }
    }
    if (p_ < end_ && *p_ == '.') {
      if (p_ + 1 >= end_ || !IsDigit(p_[1])) {
        // Python parses "1." as 1 followed by extra data; report it the same way.
        Fail("Extra data", p_);
        return false;
      }
      ++p_;
      while (p_ < end_ && IsDigit(*p_)) {
        ++p_;
      }
    }
    if (p_ < end_ && (*p_ == 'e' || *p_ == 'E')) {
      const char* e = p_++;
      if (p_ < end_ && (*p_ == '+' || *p_ == '-')) {
        ++p_;
      }
      if (p_ >= end_ || !IsDigit(*p_)) {
        Fail("Extra data", e);
        return false;
      }
      while (p_ < end_ && IsDigit(*p_)) {
        ++p_;
      }
    }
    return true;
  }

  bool ScanString() {
    const char* start = p_++;
    while (true) {
      if (p_ >= end_) {
        Fail("Unterminated string starting at", start);
        return false;
      }
      unsigned char c = static_cast<unsigned char>(*p_);
      if (c == '"') {
        ++p_;
        return true;
      }
      if (c < 0x20) {
        Fail("Invalid control character at", p_);
        return false;
      }
      if (c == '\\') {
        if (p_ + 1 >= end_) {
          Fail("Unterminated string starting at", start);
          return false;
        }
        char e = p_[1];
        if (e == 'u') {
          if (end_ - p_ < 6 || !IsHex(p_[2]) || !IsHex(p_[3]) || !IsHex(p_[4]) || !IsHex(p_[5])) {
            Fail("Invalid \\uXXXX escape", p_);
            return false;
          }
          p_ += 6;
          continue;
        }
        if (e != '"' && e != '\\' && e != '/' && e != 'b' && e != 'f' && e != 'n' && e != 'r' &&
            e != 't') {
          Fail("Invalid \\escape", p_);
          return false;
        }
        p_ += 2;
        continue;
      }
      ++p_;
    }
  }

  bool ScanObject(int depth) {
    if (depth > kMaxDepth) {
      Fail("Nesting too deep", p_);
      return false;
    }
    ++p_;
    SkipWs();
    if (p_ < end_ && *p_ == '}') {
      ++p_;
      return true;
    }
    while (true) {
      if (p_ >= end_ || *p_ != '"') {
        Fail("Expecting property name enclosed in double quotes", p_);
        return false;
      }
      const char* key = p_;
      if (!ScanString()) {
        return false;
      }
      const char* key_end = p_;
      SkipWs();
      if (p_ >= end_ || *p_ != ':') {
        Fail("Expecting ':' delimiter", p_);
        return false;
      }
      ++p_;
      SkipWs();
      const char* value = p_;
      if (!ScanValue(depth)) {
        return false;
      }
      if (depth == 1 && top_members_ != nullptr) {
        top_members_->push_back({std::string_view(key + 1, static_cast<size_t>(key_end - key - 2)),
                                 Value{internal::KindOf(*value),
                                       std::string_view(value, static_cast<size_t>(p_ - value))}});
      }
      SkipWs();
      if (p_ < end_ && *p_ == '}') {
        ++p_;
        return true;
      }
      if (p_ >= end_ || *p_ != ',') {
        Fail("Expecting ',' delimiter", p_);
        return false;
      }
      ++p_;
      SkipWs();
    }
  }

  bool ScanArray(int depth) {
    if (depth > kMaxDepth) {
      Fail("Nesting too deep", p_);
      return false;
    }
    ++p_;
    SkipWs();
    if (p_ < end_ && *p_ == ']') {
      ++p_;
      return true;
    }
    while (true) {
      if (!ScanValue(depth)) {
        return false;
      }
      SkipWs();
      if (p_ < end_ && *p_ == ']') {
        ++p_;
        return true;
      }
      if (p_ >= end_ || *p_ != ',') {
        Fail("Expecting ',' delimiter", p_);
        return false;
      }
      ++p_;
      SkipWs();
    }
  }

  const char* begin_;
  const char* p_;
  const char* end_;
  std::string* error_;
  std::vector<Member>* top_members_;  // members of the top-level object, when asked for
};

void AppendUtf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

uint32_t Hex4(const char* p) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) {
    char c = p[i];
    v <<= 4;
    if (IsDigit(c)) {
      v |= static_cast<uint32_t>(c - '0');
    } else if (c >= 'a' && c <= 'f') {
      v |= static_cast<uint32_t>(c - 'a' + 10);
    } else {
      v |= static_cast<uint32_t>(c - 'A' + 10);
    }
  }
  return v;
}

// Length of the valid UTF-8 sequence at s[i], or 0 with `reason` set.
size_t Utf8SeqLen(std::string_view s, size_t i, std::string_view* reason) {
  auto c = static_cast<unsigned char>(s[i]);
  if (c < 0x80) {
    return 1;
  }
  size_t n;
  unsigned char lo = 0x80;
  unsigned char hi = 0xBF;
  if (c >= 0xC2 && c <= 0xDF) {
    n = 2;
  } else if (c >= 0xE0 && c <= 0xEF) {
    n = 3;
    if (c == 0xE0) {
      lo = 0xA0;
    } else if (c == 0xED) {
      hi = 0x9F;  // no surrogates
    }
  } else if (c >= 0xF0 && c <= 0xF4) {
    n = 4;
    if (c == 0xF0) {
      lo = 0x90;
    } else if (c == 0xF4) {
      hi = 0x8F;
    }
  } else {
    *reason = "invalid start byte";
    return 0;
  }
  for (size_t k = 1; k < n; ++k) {
    if (i + k >= s.size()) {
      *reason = "unexpected end of data";
      return 0;
    }
    auto cc = static_cast<unsigned char>(s[i + k]);
    unsigned char l = k == 1 ? lo : 0x80;
    unsigned char h = k == 1 ? hi : 0xBF;
    if (cc < l || cc > h) {
      *reason = "invalid continuation byte";
      return 0;
    }
  }
  return n;
}

}  // namespace

namespace internal {

const char* SkipWs(const char* p) {
  while (IsWs(*p)) {
    ++p;
  }
  return p;
}

Kind KindOf(char c) {
  switch (c) {
    case '{':
      return Kind::kObject;
    case '[':
      return Kind::kArray;
    case '"':
      return Kind::kString;
    case 't':
      return Kind::kTrue;
    case 'f':
      return Kind::kFalse;
    case 'n':
      return Kind::kNull;
    default:
      return Kind::kNumber;
  }
}

const char* SkipValidated(const char* p) {
  switch (*p) {
    case '"':
      ++p;
      while (*p != '"') {
        p += (*p == '\\') ? 2 : 1;
      }
      return p + 1;
    case '{':
    case '[': {
      int depth = 0;
      do {
        char c = *p;
        if (c == '"') {
          p = SkipValidated(p);
          continue;
        }
        if (c == '{' || c == '[') {
          ++depth;
        } else if (c == '}' || c == ']') {
          --depth;
        }
        ++p;
      } while (depth > 0);
      return p;
    }
    case 't':
      return p + 4;
    case 'f':
      return p + 5;
    case 'n':
      return p + 4;
    default:
      ++p;
      while (IsDigit(*p) || *p == '.' || *p == 'e' || *p == 'E' || *p == '+' || *p == '-') {
        ++p;
      }
      return p;
  }
}

}  // namespace internal

std::string_view KindName(Kind kind) {
  switch (kind) {
    case Kind::kObject:
      return "object";
    case Kind::kArray:
      return "array";
    case Kind::kString:
      return "string";
    case Kind::kNumber:
      return "number";
    case Kind::kTrue:
    case Kind::kFalse:
      return "boolean";
    case Kind::kNull:
      return "null";
  }
  return "null";
}

std::optional<Value> ScanDocument(std::string_view text, std::string* error,
                                  std::vector<Member>* top_members) {
  return Scanner(text, error, top_members).Document();
}

std::optional<Utf8Error> FindInvalidUtf8(std::string_view text) {
  size_t i = 0;
  const size_t n = text.size();
  while (i < n) {
    // Fast path: 8 ASCII bytes at a time.
    while (i + 8 <= n) {
      uint64_t w;
      __builtin_memcpy(&w, text.data() + i, 8);
      if ((w & 0x8080808080808080ULL) != 0) {
        break;
      }
      i += 8;
    }
    if (i >= n) {
      break;
    }
    std::string_view reason;
    size_t len = Utf8SeqLen(text, i, &reason);
    if (len == 0) {
      return Utf8Error{i, reason};
    }
    i += len;
  }
  return std::nullopt;
}

bool IsIntegerToken(std::string_view number) {
  return number.find_first_of(".eE") == std::string_view::npos;
}

std::optional<int64_t> ParseInt(std::string_view number) {
  if (number.empty() || !IsIntegerToken(number)) {
    return std::nullopt;
  }
  bool neg = number[0] == '-';
  size_t i = neg ? 1 : 0;
  if (number.size() - i > 18) {
    return std::nullopt;  // would not fit comfortably; such routes are out of bounds anyway
  }
  if (i == number.size()) {
    return std::nullopt;
  }
  int64_t v = 0;
  for (; i < number.size(); ++i) {
    if (!IsDigit(number[i])) {
      return std::nullopt;
    }
    v = v * 10 + (number[i] - '0');
  }
  return neg ? -v : v;
}

std::string DecodeString(std::string_view token) {
  std::string out;
  out.reserve(token.size());
  const char* p = token.data() + 1;
  const char* end = token.data() + token.size() - 1;
  while (p < end) {
    if (*p != '\\') {
      out += *p++;
      continue;
    }
    char e = p[1];
    p += 2;
    switch (e) {
      case 'b':
        out += '\b';
        break;
      case 'f':
        out += '\f';
        break;
      case 'n':
        out += '\n';
        break;
      case 'r':
        out += '\r';
        break;
      case 't':
        out += '\t';
        break;
      case 'u': {
        uint32_t cp = Hex4(p);
        p += 4;
        if (cp >= 0xD800 && cp <= 0xDBFF && end - p >= 6 && p[0] == '\\' && p[1] == 'u') {
          uint32_t lo = Hex4(p + 2);
          if (lo >= 0xDC00 && lo <= 0xDFFF) {
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            p += 6;
          }
        }
        if (cp >= 0xD800 && cp <= 0xDFFF) {
          cp = 0xFFFD;  // lone surrogate
        }
        AppendUtf8(out, cp);
        break;
      }
      default:
        out += e;  // '"', '\\', '/'
    }
  }
  return out;
}

void AppendString(std::string& out, std::string_view s) {
  ::asya::AppendJsonString(out, s);
}

}  // namespace asya::runtime::json
