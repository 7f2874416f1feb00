// Fuzzes the one strict JSON scanner (asya/base/json_scan.h) that the envelope library and the C++
// SDK build on, and the string helpers of asya/base/json_text.h.
//
// Invariants:
// - Scan agrees with nlohmann's parser on what is JSON (a second, independent implementation),
//   except where Scan is stricter by contract (nesting beyond max_depth).
// - The visitor's spans of an accepted text are themselves complete JSON values, keys decode, and
//   ForEachMember/ForEachElement walk exactly the members/elements the visitor reported.
// - A text Scan rejects reports an offset inside it (<= size) and its token not after the offset.
// - AppendJsonString writes valid JSON for any bytes; for valid UTF-8 it decodes back unchanged.
// - DecodeJsonString of a string literal Scan accepted succeeds and equals JsonStringText.
// - ParseInt agrees with a reference conversion for integer tokens.
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "asya/base/json_scan.h"
#include "asya/base/json_text.h"
#include "fuzz_check.h"

namespace {

namespace json = asya::json;

struct Recorder final : json::ScanVisitor {
  std::vector<std::pair<std::string_view, std::string_view>> members;  // depth 1
  std::vector<std::string_view> elements;                              // depth 1
  std::vector<std::string_view> deeper;
  void Member(size_t depth, std::string_view key, std::string_view value) override {
    if (depth == 1) {
      members.emplace_back(key, value);
    } else {
      deeper.push_back(key);
      deeper.push_back(value);
    }
  }
  void Element(size_t depth, std::string_view value) override {
    (depth == 1 ? elements : deeper).push_back(value);
  }
};

size_t Depth(std::string_view text) {
  size_t depth = 0;
  size_t max = 0;
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (in_string) {
      if (c == '\\') {
        ++i;
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      max = std::max(max, ++depth);
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
  return max;
}

// True when a number token outside strings overflows a double (nlohmann rejects those; they are
// valid JSON and Scan accepts them).
bool HasHugeNumber(std::string_view text) {
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (in_string) {
      if (c == '\\') {
        ++i;
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    if (c == '"') {
      in_string = true;
    } else if (c == '-' || (c >= '0' && c <= '9')) {
      size_t j = i;
      while (j < text.size() && std::strchr("-+.eE0123456789", text[j]) != nullptr) {
        ++j;
      }
      std::string token(text.substr(i, j - i));
      if (std::isinf(std::strtod(token.c_str(), nullptr))) {
        return true;
      }
      i = j - 1;
    }
  }
  return false;
}

void CheckString(std::string_view raw) {
  auto decoded = asya::DecodeJsonString(raw, asya::LoneSurrogates::kReplace);
  FUZZ_CHECK(decoded.has_value());
  std::string scratch;
  FUZZ_CHECK(asya::JsonStringText(raw, scratch) == *decoded);
  std::string again;
  asya::AppendJsonString(again, *decoded);
  FUZZ_CHECK(asya::DecodeJsonString(again) == decoded);
}

void CheckInt(std::string_view token) {
  if (!json::IsIntegerToken(token)) {
    FUZZ_CHECK(!json::ParseInt(token).has_value());
    return;
  }
  // Reference: digits accumulated as an unsigned magnitude with overflow checks.
  const bool negative = token[0] == '-';
  const uint64_t limit = negative ? (uint64_t{1} << 63) : (uint64_t{1} << 63) - 1;
  uint64_t value = 0;
  bool fits = true;
  for (size_t i = negative ? 1 : 0; i < token.size() && fits; ++i) {
    const auto digit = static_cast<uint64_t>(token[i] - '0');
    fits = value <= (limit - digit) / 10;
    value = value * 10 + digit;
  }
  auto got = json::ParseInt(token);
  FUZZ_CHECK(got.has_value() == fits);
  if (fits) {
    FUZZ_CHECK(*got == (negative ? static_cast<int64_t>(0 - value) : static_cast<int64_t>(value)));
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);

  json::ScanOptions options;
  options.visit_depth = 2;
  Recorder rec;
  json::ScanResult r = json::Scan(in, options, &rec);
  // nlohmann skips a UTF-8 byte order mark (RFC 8259 lets a parser ignore it; we refuse it, as
  // Python's json.loads does for str).
  // nlohmann also stops at a NUL byte as if the text ended there (never valid JSON for Scan).
  const bool quirk = in.substr(0, 3) == "\xEF\xBB\xBF" || in.find('\0') != std::string_view::npos;
  const bool reference = quirk || nlohmann::json::accept(in);
  if (r.ok()) {
    FUZZ_CHECK(reference || HasHugeNumber(in));
    json::ScanOptions unchecked = options;
    unchecked.check_utf8 = false;
    FUZZ_CHECK(json::Scan(in, unchecked, nullptr).ok());
    const std::string_view value = [&] {
      size_t b = in.find_first_not_of(" \t\r\n");
      size_t e = in.find_last_not_of(" \t\r\n");
      return in.substr(b, e - b + 1);
    }();
    const json::Kind kind = json::KindOf(value[0]);
    if (kind == json::Kind::kObject) {
      size_t i = 0;
      json::ForEachMember(value, [&](std::string_view key, json::Value v) {
        FUZZ_CHECK(i < rec.members.size());
        FUZZ_CHECK(rec.members[i].first == key && rec.members[i].second == v.text);
        FUZZ_CHECK(v.kind == json::KindOf(v.text[0]));
        CheckString(key);
        ++i;
      });
      FUZZ_CHECK(i == rec.members.size() && rec.elements.empty());
    } else if (kind == json::Kind::kArray) {
      size_t i = 0;
      json::ForEachElement(value, [&](json::Value v) {
        FUZZ_CHECK(i < rec.elements.size() && rec.elements[i] == v.text);
        ++i;
      });
      FUZZ_CHECK(i == rec.elements.size() && rec.members.empty());
    } else {
      FUZZ_CHECK(rec.members.empty() && rec.elements.empty());
      if (kind == json::Kind::kString) {
        CheckString(value);
      } else if (kind == json::Kind::kNumber) {
        CheckInt(value);
      }
    }
    for (const auto& [key, v] : rec.members) {
      FUZZ_CHECK(json::Scan(key).ok() && json::Scan(v).ok());
    }
    for (std::string_view v : rec.elements) {
      FUZZ_CHECK(json::Scan(v).ok());
      if (json::KindOf(v[0]) == json::Kind::kNumber) {
        CheckInt(v);
      }
    }
    for (std::string_view v : rec.deeper) {
      FUZZ_CHECK(json::Scan(v).ok());
    }
    // Lone surrogates allowed: still accepted.
    json::ScanOptions lone;
    lone.allow_lone_surrogates = true;
    FUZZ_CHECK(json::Scan(in, lone, nullptr).ok());
  } else {
    FUZZ_CHECK(r.offset <= in.size());
    FUZZ_CHECK(r.token <= r.offset);
    if (r.kind == json::ErrorKind::kTooDeep) {
      FUZZ_CHECK(Depth(in) > json::kMaxScanDepth);
    } else if (r.kind != json::ErrorKind::kLoneLowSurrogate &&
               r.kind != json::ErrorKind::kUnpairedHighSurrogate) {
      // nlohmann rejects lone surrogates too; everything else must be rejected by both.
      FUZZ_CHECK(!reference || quirk);
    }
    if (r.kind == json::ErrorKind::kInvalidUtf8) {
      FUZZ_CHECK(asya::FindInvalidUtf8(in).has_value());
    }
  }

  // Writing any bytes as a string literal gives valid JSON; valid UTF-8 comes back unchanged.
  std::string literal;
  asya::AppendJsonString(literal, in);
  FUZZ_CHECK(json::Scan(literal).ok());
  auto back = asya::DecodeJsonString(literal);
  FUZZ_CHECK(back.has_value());
  if (!asya::FindInvalidUtf8(in).has_value()) {
    FUZZ_CHECK(*back == in);
  } else {
    FUZZ_CHECK(!asya::FindInvalidUtf8(*back).has_value());
  }

  // The input as a string literal body: DecodeJsonString accepts exactly what Scan accepts.
  if (in.size() >= 2 && in.front() == '"' && in.back() == '"') {
    json::ScanOptions plain;
    plain.check_utf8 = false;
    plain.allow_lone_surrogates = false;
    const bool scanned = json::Scan(in, plain, nullptr).ok();
    FUZZ_CHECK(scanned == asya::DecodeJsonString(in).has_value());
  }
  return 0;
}
