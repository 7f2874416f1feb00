#include "asya/base/json_scan.h"

#include <algorithm>
#include <cstring>

namespace asya::json {
namespace {

#define ALWAYS_INLINE inline __attribute__((always_inline))

// ' ', \t, \n, \r (one compare for the common case of a byte above ' ').
bool IsSpace(unsigned char c) {
  constexpr uint64_t kSpaces = (1ULL << ' ') | (1ULL << '\t') | (1ULL << '\n') | (1ULL << '\r');
  return c <= ' ' && ((kSpaces >> c) & 1) != 0;
}
bool IsDigit(unsigned char c) {
  return c >= '0' && c <= '9';
}

// True when any byte of `w` is '"', '\\' or < 0x20, or (kHighToo) >= 0x80. SWAR, 8 bytes at once.
template <bool kHighToo>
bool WordNeedsAttention(uint64_t w) {
  constexpr uint64_t kOnes = 0x0101010101010101ULL;
  constexpr uint64_t kHigh = 0x8080808080808080ULL;
  uint64_t quote = w ^ (kOnes * '"');
  uint64_t slash = w ^ (kOnes * '\\');
  uint64_t t = ((quote - kOnes) & ~quote) | ((slash - kOnes) & ~slash) | (w - kOnes * 0x20);
  if constexpr (kHighToo) {
    return ((t & ~w) | w) & kHigh;
  } else {
    return (t & ~w & kHigh) != 0;
  }
}

template <bool kCheckUtf8>
class Scanner {
 public:
  Scanner(std::string_view s, const ScanOptions& options, ScanVisitor* visitor)
      : text_(s),
        p_(reinterpret_cast<const unsigned char*>(s.data())),
        n_(s.size()),
        max_depth_(std::min(options.max_depth, kMaxScanDepth)),
        visit_depth_(visitor == nullptr ? 0 : std::min(options.visit_depth, kMaxVisitDepth)),
        allow_lone_surrogates_(options.allow_lone_surrogates),
        visitor_(visitor) {}

  ScanResult Run() {
    SkipSpace();
    char stack[kMaxScanDepth];  // '{' or '[' per open container
    size_t depth = 0;
    if (!Value(stack, depth)) {
      result_.depth = depth;
      result_.in_object = depth > 0 && stack[depth - 1] == '{';
    } else {
      SkipSpace();
      if (i_ != n_) {
        Fail(ErrorKind::kTrailingData, i_);
      }
    }
    return result_;
  }

 private:
  // Records the error (Run adds depth and container); always false.
  bool Fail(ErrorKind kind, size_t at, size_t token) {
    result_.kind = kind;
    result_.offset = at;
    result_.token = token;
    return false;
  }
  bool Fail(ErrorKind kind, size_t at) { return Fail(kind, at, at); }

  ALWAYS_INLINE void SkipSpace() {
    while (i_ < n_ && IsSpace(p_[i_])) {
      ++i_;
    }
  }

  std::string_view Span(size_t from) const { return text_.substr(from, i_ - from); }

  // A value inside the container at `depth` (1-based) ended at i_: report it when shallow enough.
  ALWAYS_INLINE void Completed(const char* stack, size_t depth) {
    if (depth == 0 || depth > visit_depth_) {
      return;
    }
    if (stack[depth - 1] == '{') {
      visitor_->Member(depth, key_[depth], Span(value_start_[depth]));
    } else {
      visitor_->Element(depth, Span(value_start_[depth]));
    }
  }

  // A byte >= 0x80 where the grammar wants something else: name it precisely when it is not
  // even UTF-8.
  bool FailAt(ErrorKind kind, size_t at) {
    if (kCheckUtf8 && at < n_ && p_[at] >= 0x80) {
      Utf8Error e;
      if (Utf8SequenceLength(text_, at, &e) == 0) {
        result_.utf8 = e;
        return Fail(ErrorKind::kInvalidUtf8, at);
      }
    }
    return Fail(kind, at);
  }

  // Iterative so that deep nesting cannot overflow the stack; `depth` stays a local (a member
  // would be reloaded after every byte store).
  bool Value(char* stack, size_t& depthref) {
    size_t depth = 0;
    struct Sync {  // hands the depth back to Run on every exit
      size_t& out;
      size_t& value;
      ~Sync() { out = value; }
    } sync{depthref, depth};
    while (true) {
      SkipSpace();
      if (i_ == n_) {
        return Fail(ErrorKind::kExpectedValue, i_);
      }
      if (depth <= visit_depth_) {
        value_start_[depth] = i_;
      }
      unsigned char c = p_[i_];
      bool opened = false;
      if (c == '{' || c == '[') {
        if (depth == max_depth_) {
          return Fail(ErrorKind::kTooDeep, i_);
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
      } else if (IsConstant(i_)) {
        return Fail(ErrorKind::kNonFiniteConstant, i_);
      } else {
        return FailAt(ErrorKind::kExpectedValue, i_);
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
          return Fail(ErrorKind::kExpectedCommaOrClose, i_);
        }
        unsigned char d = p_[i_];
        const char close = stack[depth - 1] == '{' ? '}' : ']';
        if (d == static_cast<unsigned char>(close)) {
          ++i_;
          --depth;
          Completed(stack, depth);
          continue;
        }
        if (d != ',') {
          return FailAt(ErrorKind::kExpectedCommaOrClose, i_);
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

  // NaN, Infinity or -Infinity at `at`.
  bool IsConstant(size_t at) const {
    std::string_view rest = text_.substr(at);
    return rest.starts_with("NaN") || rest.starts_with("Infinity") || rest.starts_with("-Infinity");
  }

  // A member key followed by ':' in the innermost (object) container, at `depth`.
  ALWAYS_INLINE bool Key(size_t depth) {
    if (i_ == n_ || p_[i_] != '"') {
      return FailAt(ErrorKind::kExpectedKey, i_);
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
      return FailAt(ErrorKind::kExpectedColon, i_);
    }
    ++i_;
    return true;
  }

  ALWAYS_INLINE bool Literal(std::string_view word) {
    if (n_ - i_ < word.size() || std::memcmp(p_ + i_, word.data(), word.size()) != 0) {
      return Fail(ErrorKind::kInvalidLiteral, i_);
    }
    i_ += word.size();
    return true;
  }

  ALWAYS_INLINE bool Number() {
    const size_t start = i_;
    if (p_[i_] == '-') {
      if (IsConstant(i_)) {
        return Fail(ErrorKind::kNonFiniteConstant, i_);
      }
      ++i_;
    }
    if (i_ == n_ || !IsDigit(p_[i_])) {
      return Fail(ErrorKind::kNumberNoDigit, i_, start);
    }
    if (p_[i_] == '0') {
      ++i_;
      if (i_ < n_ && IsDigit(p_[i_])) {
        return Fail(ErrorKind::kNumberLeadingZero, i_, start);
      }
    } else {
      while (i_ < n_ && IsDigit(p_[i_])) {
        ++i_;
      }
    }
    if (i_ < n_ && p_[i_] == '.') {
      ++i_;
      if (i_ == n_ || !IsDigit(p_[i_])) {
        return Fail(ErrorKind::kNumberNoFractionDigit, i_, start);
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
        return Fail(ErrorKind::kNumberNoExponentDigit, i_, start);
      }
      while (i_ < n_ && IsDigit(p_[i_])) {
        ++i_;
      }
    }
    return true;
  }

  // \uXXXX at i_ (after the backslash and 'u'); -1 when malformed.
  int32_t Hex4() {
    if (n_ - i_ < 4) {
      return -1;
    }
    int32_t v = ParseHex4(text_.data() + i_);
    if (v >= 0) {
      i_ += 4;
    }
    return v;
  }

  ALWAYS_INLINE bool String() {
    const size_t start = i_++;  // opening quote
    while (true) {
      while (n_ - i_ >= 8) {
        uint64_t w;
        std::memcpy(&w, p_ + i_, 8);
        if (WordNeedsAttention<kCheckUtf8>(w)) {
          break;
        }
        i_ += 8;
      }
      if (i_ == n_) {
        return Fail(ErrorKind::kUnterminatedString, i_, start);
      }
      unsigned char c = p_[i_];
      if (c == '"') {
        ++i_;
        return true;
      }
      if (c < 0x20) {
        return Fail(ErrorKind::kControlCharacter, i_, start);
      }
      if (c >= 0x80) {
        if constexpr (kCheckUtf8) {
          Utf8Error e;
          size_t len = Utf8SequenceLength(text_, i_, &e);
          if (len == 0) {
            result_.utf8 = e;
            return Fail(ErrorKind::kInvalidUtf8, i_, start);
          }
          i_ += len;
        } else {
          ++i_;
        }
        continue;
      }
      if (c != '\\') {
        ++i_;
        continue;
      }
      const size_t escape = i_++;
      if (i_ == n_) {
        return Fail(ErrorKind::kUnterminatedString, i_, start);
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
          int32_t cp = Hex4();
          if (cp < 0) {
            return Fail(ErrorKind::kInvalidUnicodeEscape, escape, start);
          }
          if (allow_lone_surrogates_) {
            break;
          }
          if (IsLowSurrogate(static_cast<uint32_t>(cp))) {
            return Fail(ErrorKind::kLoneLowSurrogate, escape, start);
          }
          if (IsHighSurrogate(static_cast<uint32_t>(cp))) {
            bool paired = n_ - i_ >= 2 && p_[i_] == '\\' && p_[i_ + 1] == 'u';
            if (paired) {
              i_ += 2;
              int32_t lo = Hex4();
              paired = lo >= 0 && IsLowSurrogate(static_cast<uint32_t>(lo));
            }
            if (!paired) {
              return Fail(ErrorKind::kUnpairedHighSurrogate, escape, start);
            }
          }
          break;
        }
        default:
          return Fail(ErrorKind::kInvalidEscape, escape, start);
      }
    }
  }

  const std::string_view text_;
  const unsigned char* p_;
  const size_t n_;
  size_t i_ = 0;
  const size_t max_depth_;
  const size_t visit_depth_;
  const bool allow_lone_surrogates_;
  ScanVisitor* const visitor_;
  ScanResult result_;
  size_t value_start_[kMaxVisitDepth + 1] = {};
  std::string_view key_[kMaxVisitDepth + 1];
};

}  // namespace

ScanResult Scan(std::string_view text, const ScanOptions& options, ScanVisitor* visitor) {
  if (options.check_utf8) {
    return Scanner<true>(text, options, visitor).Run();
  }
  return Scanner<false>(text, options, visitor).Run();
}

// ---- reading text that Scan accepted ----

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

Kind KindOf(char first) {
  switch (first) {
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

bool IsIntegerToken(std::string_view number) {
  return number.find_first_of(".eE") == std::string_view::npos;
}

std::optional<int64_t> ParseInt(std::string_view number) {
  if (number.empty() || !IsIntegerToken(number)) {
    return std::nullopt;
  }
  const bool negative = number[0] == '-';
  size_t i = negative ? 1 : 0;
  if (i == number.size() || number.size() - i > 18) {
    return std::nullopt;  // 18 digits always fit; longer ones are refused
  }
  int64_t v = 0;
  for (; i < number.size(); ++i) {
    if (!IsDigit(static_cast<unsigned char>(number[i]))) {
      return std::nullopt;
    }
    v = v * 10 + (number[i] - '0');
  }
  return negative ? -v : v;
}

namespace internal {

const char* SkipSpace(const char* p) {
  while (IsSpace(static_cast<unsigned char>(*p))) {
    ++p;
  }
  return p;
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
    case 'n':
      return p + 4;
    case 'f':
      return p + 5;
    default:
      ++p;
      while (IsDigit(static_cast<unsigned char>(*p)) || *p == '.' || *p == 'e' || *p == 'E' ||
             *p == '+' || *p == '-') {
        ++p;
      }
      return p;
  }
}

}  // namespace internal
}  // namespace asya::json
