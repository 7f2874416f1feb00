#include "asya/base/json_text.h"

namespace asya {
namespace {

constexpr char kHex[] = "0123456789abcdef";

}  // namespace

// ---- UTF-8 ----

std::string_view Utf8ProblemText(Utf8Problem problem) {
  switch (problem) {
    case Utf8Problem::kInvalidStartByte:
      return "invalid start byte";
    case Utf8Problem::kInvalidContinuation:
      return "invalid continuation byte";
    case Utf8Problem::kUnexpectedEnd:
      return "unexpected end of data";
  }
  return "invalid start byte";
}

size_t Utf8SequenceLength(std::string_view s, size_t i, Utf8Error* error) {
  auto c = static_cast<unsigned char>(s[i]);
  if (c < 0x80) {
    return 1;
  }
  size_t n;
  unsigned char lo = 0x80;  // allowed range of the second byte
  unsigned char hi = 0xBF;
  if (c >= 0xC2 && c <= 0xDF) {
    n = 2;
  } else if (c >= 0xE0 && c <= 0xEF) {
    n = 3;
    if (c == 0xE0) {
      lo = 0xA0;  // overlong
    } else if (c == 0xED) {
      hi = 0x9F;  // surrogates
    }
  } else if (c >= 0xF0 && c <= 0xF4) {
    n = 4;
    if (c == 0xF0) {
      lo = 0x90;  // overlong
    } else if (c == 0xF4) {
      hi = 0x8F;  // above U+10FFFF
    }
  } else {
    if (error != nullptr) {
      *error = Utf8Error{i, 1, Utf8Problem::kInvalidStartByte};
    }
    return 0;
  }
  for (size_t k = 1; k < n; ++k) {
    if (i + k >= s.size()) {
      if (error != nullptr) {
        *error = Utf8Error{i, k, Utf8Problem::kUnexpectedEnd};
      }
      return 0;
    }
    auto cc = static_cast<unsigned char>(s[i + k]);
    if (cc < (k == 1 ? lo : 0x80) || cc > (k == 1 ? hi : 0xBF)) {
      if (error != nullptr) {
        *error = Utf8Error{i, k, Utf8Problem::kInvalidContinuation};
      }
      return 0;
    }
  }
  return n;
}

std::optional<Utf8Error> FindInvalidUtf8(std::string_view text) {
  size_t i = 0;
  const size_t n = text.size();
  while (i < n) {
    while (i + 8 <= n) {  // 8 ASCII bytes at a time
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
    Utf8Error error;
    size_t len = Utf8SequenceLength(text, i, &error);
    if (len == 0) {
      return error;
    }
    i += len;
  }
  return std::nullopt;
}

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

// ---- \uXXXX ----

int HexDigitValue(char c) {
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

int32_t ParseHex4(const char* p) {
  int32_t v = 0;
  for (int k = 0; k < 4; ++k) {
    int h = HexDigitValue(p[k]);
    if (h < 0) {
      return -1;
    }
    v = (v << 4) | h;
  }
  return v;
}

// ---- JSON string literals ----

std::optional<std::string> DecodeJsonString(std::string_view raw, LoneSurrogates lone) {
  if (raw.size() < 2 || raw.front() != '"' || raw.back() != '"') {
    return std::nullopt;
  }
  const size_t end = raw.size() - 1;  // the closing quote
  // \uXXXX at raw[at] (the backslash); -1 when it is not one.
  auto escape_at = [&](size_t at) -> int32_t {
    if (at + 6 > end || raw[at] != '\\' || raw[at + 1] != 'u') {
      return -1;
    }
    return ParseHex4(raw.data() + at + 2);
  };
  std::string out;
  out.reserve(raw.size() - 2);
  size_t i = 1;
  while (i < end) {
    char c = raw[i];
    if (c == '"' || static_cast<unsigned char>(c) < 0x20) {
      return std::nullopt;
    }
    if (c != '\\') {
      out += c;
      ++i;
      continue;
    }
    if (i + 1 >= end) {
      return std::nullopt;
    }
    char e = raw[i + 1];
    i += 2;
    switch (e) {
      case '"':
      case '\\':
      case '/':
        out += e;
        break;
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
        int32_t cp = escape_at(i - 2);
        if (cp < 0) {
          return std::nullopt;
        }
        i += 4;
        if (IsHighSurrogate(static_cast<uint32_t>(cp))) {
          int32_t low = escape_at(i);
          if (low >= 0 && IsLowSurrogate(static_cast<uint32_t>(low))) {
            cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
            i += 6;
          }
        }
        if (IsHighSurrogate(static_cast<uint32_t>(cp)) ||
            IsLowSurrogate(static_cast<uint32_t>(cp))) {
          if (lone == LoneSurrogates::kReject) {
            return std::nullopt;
          }
          cp = 0xFFFD;
        }
        AppendUtf8(out, static_cast<uint32_t>(cp));
        break;
      }
      default:
        return std::nullopt;
    }
  }
  return out;
}

std::string_view JsonStringText(std::string_view raw, std::string& scratch) {
  if (raw.find('\\') == std::string_view::npos) {
    return raw.substr(1, raw.size() - 2);
  }
  scratch = DecodeJsonString(raw, LoneSurrogates::kReplace).value_or(std::string());
  return scratch;
}

void AppendJsonString(std::string& out, std::string_view s) {
  out.reserve(out.size() + s.size() + 2);
  out += '"';
  size_t run = 0;  // start of the current run of bytes copied verbatim
  size_t i = 0;
  auto flush = [&](size_t end) { out.append(s.data() + run, end - run); };
  while (i < s.size()) {
    auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
      ++i;
      continue;
    }
    if (c >= 0x80) {
      size_t len = Utf8SequenceLength(s, i);
      if (len > 0) {
        i += len;
        continue;
      }
      flush(i);
      out += "\\ufffd";  // invalid UTF-8 byte: keep the output valid JSON
      run = ++i;
      continue;
    }
    flush(i);
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\b':
        out += "\\b";
        break;
      case '\f':
        out += "\\f";
        break;
      default:
        out += "\\u00";
        out += kHex[c >> 4];
        out += kHex[c & 0xF];
    }
    run = ++i;
  }
  flush(i);
  out += '"';
}

}  // namespace asya
