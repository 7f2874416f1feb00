// Strict RFC 8259 syntax check (On-Demand alone does not fully check values it skips) that can
// also report the raw spans of shallow members, so big payloads are located in the same pass.
// UTF-8 is checked separately with simdjson::validate_utf8.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "asya/envelope/envelope.h"
#include "envelope/json_util.h"

namespace asya::envelope {
namespace {

constexpr size_t kMaxDepth = 1024;  // same as simdjson's default

bool IsSpace(unsigned char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}
bool IsDigit(unsigned char c) {
  return c >= '0' && c <= '9';
}

int HexValue(unsigned char c) {
  if (c >= '0' && c <= '9') {
    return c - '0';
  }
  if (c >= 'a' && c <= 'f') {
    return c - 'a' + 10;
  }
  if (c >= 'A' && c <= 'F') {
    return c - 'A' + 10;
  }
  return -1;
}

// True when any byte of `w` is '"', '\\' or < 0x20 (SWAR, 8 bytes at a time).
bool WordNeedsAttention(uint64_t w) {
  constexpr uint64_t kOnes = 0x0101010101010101ULL;
  constexpr uint64_t kHigh = 0x8080808080808080ULL;
  uint64_t quote = w ^ (kOnes * '"');
  uint64_t slash = w ^ (kOnes * '\\');
  uint64_t t = ((quote - kOnes) & ~quote) | ((slash - kOnes) & ~slash) | (w - kOnes * 0x20);
  return (t & ~w & kHigh) != 0;
}

class Validator {
 public:
  Validator(std::string_view s, size_t visit_depth, internal::ScanVisitor* visitor)
      : p_(reinterpret_cast<const unsigned char*>(s.data())),
        n_(s.size()),
        visit_depth_(visitor == nullptr ? 0 : std::min(visit_depth, internal::kMaxVisitDepth)),
        visitor_(visitor) {}

  Status Run() {
    SkipSpace();
    bool ok = i_ == n_ ? Fail("empty document") : Value();
    if (ok) {
      SkipSpace();
      ok = i_ == n_ || Fail("unexpected data after the JSON value");
    }
    if (ok) {
      return Ok();
    }
    std::string msg = "invalid JSON at byte ";
    msg += std::to_string(i_);
    msg += ": ";
    msg += error_;
    return MakeError(ErrorCode::kInvalidArgument, std::move(msg));
  }

 private:
  // Records the error at the current position; always false.
  bool Fail(const char* what) {
    error_ = what;
    return false;
  }

  void SkipSpace() {
    while (i_ < n_ && IsSpace(p_[i_])) {
      ++i_;
    }
  }

  std::string_view Span(size_t from) const {
    return {reinterpret_cast<const char*>(p_) + from, i_ - from};
  }

  // A value inside the container at `depth` (1-based) ended at i_: report it when shallow enough.
  void Completed(const char* stack, size_t depth) {
    if (depth == 0 || depth > visit_depth_) {
      return;
    }
    if (stack[depth - 1] == '{') {
      visitor_->Member(depth, key_[depth], Span(value_start_[depth]));
    } else {
      visitor_->Element(depth, Span(value_start_[depth]));
    }
  }

  // Iterative so that deep nesting cannot overflow the stack.
  bool Value() {
    char stack[kMaxDepth];  // '{' or '[' per open container
    size_t depth = 0;
    while (true) {
      SkipSpace();
      if (i_ == n_) {
        return Fail("unexpected end of input, expected a value");
      }
      if (depth <= visit_depth_) {
        value_start_[depth] = i_;
      }
      unsigned char c = p_[i_];
      bool opened = false;
      if (c == '{' || c == '[') {
        if (depth == kMaxDepth) {
          return Fail("nesting deeper than 1024 levels");
        }
        stack[depth++] = static_cast<char>(c);
        ++i_;
        SkipSpace();
        const unsigned char close = c == '{' ? '}' : ']';
        if (i_ < n_ && p_[i_] == close) {
          ++i_;
          --depth;
        } else if (c == '{') {
          if (!Key(depth)) {
            return false;
          }
          opened = true;
        } else {
          opened = true;
        }
      } else if (c == '"') {
        if (!String()) {
          return false;
        }
      } else if (c == '-' || IsDigit(c)) {
        if (!Number()) {
          return false;
        }
      } else if (c == 't') {
        if (!Literal("true")) {
          return false;
        }
      } else if (c == 'f') {
        if (!Literal("false")) {
          return false;
        }
      } else if (c == 'n') {
        if (!Literal("null")) {
          return false;
        }
      } else {
        return Fail("expected a value");
      }
      if (opened) {
        continue;  // parse the first element/member value
      }
      Completed(stack, depth);
      // After a complete value: close containers or move to the next element.
      while (true) {
        if (depth == 0) {
          return true;
        }
        SkipSpace();
        if (i_ == n_) {
          return Fail(stack[depth - 1] == '{' ? "unexpected end of input, expected ',' or '}'"
                                              : "unexpected end of input, expected ',' or ']'");
        }
        unsigned char d = p_[i_];
        char close = stack[depth - 1] == '{' ? '}' : ']';
        if (d == static_cast<unsigned char>(close)) {
          ++i_;
          --depth;
          Completed(stack, depth);
          continue;
        }
        if (d != ',') {
          return Fail(stack[depth - 1] == '{' ? "expected ',' or '}'" : "expected ',' or ']'");
        }
        ++i_;
        if (stack[depth - 1] == '{') {
          SkipSpace();
          if (!Key(depth)) {
            return false;
          }
        }
        break;
      }
    }
  }

  // A member key followed by ':' in the object at `depth`.
  bool Key(size_t depth) {
    if (i_ == n_ || p_[i_] != '"') {
      return Fail(i_ == n_ ? "unexpected end of input, expected a string key"
                           : "expected a string key");
    }
    const size_t start = i_;
    if (!String()) {
      return false;
    }
    if (depth <= visit_depth_) {
      key_[depth] = Span(start);
    }
    SkipSpace();
    if (i_ == n_ || p_[i_] != ':') {
      return Fail("expected ':' after an object key");
    }
    ++i_;
    return true;
  }

  bool Literal(std::string_view word) {
    if (n_ - i_ < word.size() || std::memcmp(p_ + i_, word.data(), word.size()) != 0) {
      return Fail("invalid literal");
    }
    i_ += word.size();
    return true;
  }

  bool Number() {
    if (p_[i_] == '-') {
      ++i_;
    }
    if (i_ == n_ || !IsDigit(p_[i_])) {
      return Fail("invalid number: expected a digit");
    }
    if (p_[i_] == '0') {
      ++i_;
      if (i_ < n_ && IsDigit(p_[i_])) {
        return Fail("invalid number: leading zero");
      }
    } else {
      while (i_ < n_ && IsDigit(p_[i_])) {
        ++i_;
      }
    }
    if (i_ < n_ && p_[i_] == '.') {
      ++i_;
      if (i_ == n_ || !IsDigit(p_[i_])) {
        return Fail("invalid number: expected a digit after '.'");
      }
      while (i_ < n_ && IsDigit(p_[i_])) {
        ++i_;
      }
    }
    if (i_ < n_ && (p_[i_] == 'e' || p_[i_] == 'E')) {
      ++i_;
      if (i_ < n_ && (p_[i_] == '+' || p_[i_] == '-')) {
        ++i_;
      }
      if (i_ == n_ || !IsDigit(p_[i_])) {
        return Fail("invalid number: expected a digit in the exponent");
      }
      while (i_ < n_ && IsDigit(p_[i_])) {
        ++i_;
      }
    }
    return true;
  }

  // Reads 4 hex digits at i_ (after "\u"); -1 when malformed.
  int32_t Hex4() {
    if (n_ - i_ < 4) {
      return -1;
    }
    int32_t v = 0;
    for (int k = 0; k < 4; ++k) {
      int h = HexValue(p_[i_ + k]);
      if (h < 0) {
        return -1;
      }
      v = (v << 4) | h;
    }
    i_ += 4;
    return v;
  }

  bool String() {
    ++i_;  // opening quote
    while (true) {
      while (n_ - i_ >= 8) {
        uint64_t w;
        std::memcpy(&w, p_ + i_, 8);
        if (WordNeedsAttention(w)) {
          break;
        }
        i_ += 8;
      }
      if (i_ == n_) {
        return Fail("unterminated string");
      }
      unsigned char c = p_[i_];
      if (c == '"') {
        ++i_;
        return true;
      }
      if (c < 0x20) {
        return Fail("unescaped control character in string");
      }
      if (c != '\\') {
        ++i_;
        continue;
      }
      ++i_;
      if (i_ == n_) {
        return Fail("unterminated string");
      }
      c = p_[i_++];
      switch (c) {
        case '"':
        case '\\':
        case '/':
        case 'b':
        case 'f':
        case 'n':
        case 'r':
        case 't':
          break;
        case 'u': {
          const size_t escape_start = i_ - 2;  // errors point at the backslash
          int32_t cp = Hex4();
          if (cp < 0) {
            i_ = escape_start;
            return Fail("invalid \\u escape");
          }
          if (cp >= 0xDC00 && cp <= 0xDFFF) {
            i_ = escape_start;
            return Fail("lone low surrogate in \\u escape");
          }
          if (cp >= 0xD800 && cp <= 0xDBFF) {
            bool paired = n_ - i_ >= 2 && p_[i_] == '\\' && p_[i_ + 1] == 'u';
            if (paired) {
              i_ += 2;
              int32_t lo = Hex4();
              paired = lo >= 0xDC00 && lo <= 0xDFFF;
            }
            if (!paired) {
              i_ = escape_start;
              return Fail("high surrogate not followed by a low surrogate");
            }
          }
          break;
        }
        default:
          --i_;
          return Fail("invalid escape in string");
      }
    }
  }

  const unsigned char* p_;
  size_t n_;
  size_t i_ = 0;
  const char* error_ = "";
  const size_t visit_depth_;
  internal::ScanVisitor* const visitor_;
  size_t value_start_[internal::kMaxVisitDepth + 1] = {};
  std::string_view key_[internal::kMaxVisitDepth + 1];
};

}  // namespace

Status ValidateJson(std::string_view json) {
  return Validator(json, 0, nullptr).Run();
}

namespace internal {

Status ScanJson(std::string_view json, size_t visit_depth, ScanVisitor* visitor) {
  return Validator(json, visit_depth, visitor).Run();
}

}  // namespace internal

}  // namespace asya::envelope
