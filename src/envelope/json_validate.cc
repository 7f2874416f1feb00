// Strict RFC 8259 syntax check used before On-Demand extraction (On-Demand does not fully check
// values it skips). UTF-8 is checked separately with simdjson::validate_utf8.
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "asya/envelope/envelope.h"

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
  explicit Validator(std::string_view s)
      : p_(reinterpret_cast<const unsigned char*>(s.data())), n_(s.size()) {}

  Status Run() {
    SkipSpace();
    if (i_ == n_) {
      return Fail("empty document");
    }
    ASYA_RETURN_IF_ERROR(Value());
    SkipSpace();
    if (i_ != n_) {
      return Fail("unexpected data after the JSON value");
    }
    return Ok();
  }

 private:
  Status Fail(std::string_view what) const {
    std::string msg = "invalid JSON at byte ";
    msg += std::to_string(i_);
    msg += ": ";
    msg += what;
    return MakeError(ErrorCode::kInvalidArgument, std::move(msg));
  }

  void SkipSpace() {
    while (i_ < n_ && IsSpace(p_[i_])) {
      ++i_;
    }
  }

  // Iterative so that deep nesting cannot overflow the stack.
  Status Value() {
    std::vector<char> stack;  // '{' or '['
    while (true) {
      SkipSpace();
      if (i_ == n_) {
        return Fail("unexpected end of input, expected a value");
      }
      unsigned char c = p_[i_];
      bool opened = false;
      if (c == '{' || c == '[') {
        if (stack.size() >= kMaxDepth) {
          return Fail("nesting deeper than 1024 levels");
        }
        stack.push_back(static_cast<char>(c));
        ++i_;
        SkipSpace();
        if (i_ < n_ && p_[i_] == (c == '{' ? '}' : ']')) {
          ++i_;
          stack.pop_back();
        } else if (c == '{') {
          ASYA_RETURN_IF_ERROR(Key());
          opened = true;
        } else {
          opened = true;
        }
      } else if (c == '"') {
        ASYA_RETURN_IF_ERROR(String());
      } else if (c == '-' || IsDigit(c)) {
        ASYA_RETURN_IF_ERROR(Number());
      } else if (c == 't') {
        ASYA_RETURN_IF_ERROR(Literal("true"));
      } else if (c == 'f') {
        ASYA_RETURN_IF_ERROR(Literal("false"));
      } else if (c == 'n') {
        ASYA_RETURN_IF_ERROR(Literal("null"));
      } else {
        return Fail("expected a value");
      }
      if (opened) {
        continue;  // parse the first element/member value
      }
      // After a complete value: close containers or move to the next element.
      while (true) {
        if (stack.empty()) {
          return Ok();
        }
        SkipSpace();
        if (i_ == n_) {
          return Fail(stack.back() == '{' ? "unexpected end of input, expected ',' or '}'"
                                          : "unexpected end of input, expected ',' or ']'");
        }
        unsigned char d = p_[i_];
        char close = stack.back() == '{' ? '}' : ']';
        if (d == static_cast<unsigned char>(close)) {
          ++i_;
          stack.pop_back();
          continue;
        }
        if (d != ',') {
          return Fail(stack.back() == '{' ? "expected ',' or '}'" : "expected ',' or ']'");
        }
        ++i_;
        if (stack.back() == '{') {
          SkipSpace();
          ASYA_RETURN_IF_ERROR(Key());
        }
        break;
      }
    }
  }

  // A member key followed by ':'.
  Status Key() {
    if (i_ == n_ || p_[i_] != '"') {
      return Fail(i_ == n_ ? "unexpected end of input, expected a string key"
                           : "expected a string key");
    }
    ASYA_RETURN_IF_ERROR(String());
    SkipSpace();
    if (i_ == n_ || p_[i_] != ':') {
      return Fail("expected ':' after an object key");
    }
    ++i_;
    return Ok();
  }

  Status Literal(std::string_view word) {
    if (n_ - i_ < word.size() || std::memcmp(p_ + i_, word.data(), word.size()) != 0) {
      return Fail("invalid literal");
    }
    i_ += word.size();
    return Ok();
  }

  Status Number() {
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
    return Ok();
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

  Status String() {
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
        return Ok();
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
};

}  // namespace

Status ValidateJson(std::string_view json) {
  return Validator(json).Run();
}

}  // namespace asya::envelope
