#include "asya/base/duration.h"

#include <cmath>
#include <cstdlib>

namespace asya {

Result<Millis> ParseDuration(std::string_view text) {
  auto bad = [&](std::string_view why) {
    return MakeError(ErrorCode::kInvalidArgument,
                     "invalid duration '" + std::string(text) + "': " + std::string(why) +
                         " (use e.g. 300ms, 30s, 5m, 1h30m or a number of seconds)");
  };
  if (text.empty()) {
    return bad("empty");
  }
  std::string_view s = text;
  bool negative = false;
  if (s.front() == '-' || s.front() == '+') {
    negative = s.front() == '-';
    s.remove_prefix(1);
  }
  if (negative) {
    return bad("negative");
  }
  double total_ms = 0;
  bool any = false;
  while (!s.empty()) {
    size_t i = 0;
    while (i < s.size() && (std::isdigit(static_cast<unsigned char>(s[i])) || s[i] == '.')) {
      ++i;
    }
    if (i == 0) {
      return bad("expected a number");
    }
    std::string num(s.substr(0, i));
    char* end = nullptr;
    double value = std::strtod(num.c_str(), &end);
    if (end != num.c_str() + num.size() || !std::isfinite(value)) {
      return bad("bad number");
    }
    s.remove_prefix(i);
    size_t j = 0;
    while (j < s.size() && !std::isdigit(static_cast<unsigned char>(s[j])) && s[j] != '.') {
      ++j;
    }
    std::string_view unit = s.substr(0, j);
    s.remove_prefix(j);
    double factor = 0;
    if (unit.empty()) {
      if (any || !s.empty()) {
        return bad("missing unit");
      }
      factor = 1000;  // bare number: seconds
    } else if (unit == "ns") {
      factor = 1e-6;
    } else if (unit == "us" || unit == "\xC2\xB5s" || unit == "\xCE\xBCs") {
      factor = 1e-3;
    } else if (unit == "ms") {
      factor = 1;
    } else if (unit == "s") {
      factor = 1000;
    } else if (unit == "m") {
      factor = 60'000;
    } else if (unit == "h") {
      factor = 3'600'000;
    } else {
      return bad("unknown unit '" + std::string(unit) + "'");
    }
    total_ms += value * factor;
    any = true;
  }
  if (total_ms > 1e15) {
    return bad("too large");
  }
  return Millis(static_cast<int64_t>(std::llround(total_ms)));
}

std::string FormatGoDuration(Millis d) {
  int64_t ms = d.count();
  if (ms == 0) {
    return "0s";
  }
  std::string out;
  if (ms < 0) {
    out += '-';
    ms = -ms;
  }
  if (ms < 1000) {
    return out + std::to_string(ms) + "ms";
  }
  int64_t h = ms / 3'600'000;
  ms %= 3'600'000;
  int64_t m = ms / 60'000;
  ms %= 60'000;
  int64_t s = ms / 1000;
  int64_t frac = ms % 1000;
  if (h > 0) {
    out += std::to_string(h) + "h";
  }
  if (h > 0 || m > 0) {
    out += std::to_string(m) + "m";
  }
  out += std::to_string(s);
  if (frac > 0) {
    std::string f = std::to_string(frac);
    f.insert(0, 3 - f.size(), '0');
    while (!f.empty() && f.back() == '0') {
      f.pop_back();
    }
    out += "." + f;
  }
  out += "s";
  return out;
}

}  // namespace asya
