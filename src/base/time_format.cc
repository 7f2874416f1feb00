#include "asya/base/time_format.h"

#include <cstdio>
#include <ctime>

namespace asya {
namespace {

bool ParseDigits(std::string_view s, size_t pos, size_t n, int& out) {
  if (pos + n > s.size()) {
    return false;
  }
  int v = 0;
  for (size_t i = pos; i < pos + n; ++i) {
    if (s[i] < '0' || s[i] > '9') {
      return false;
    }
    v = v * 10 + (s[i] - '0');
  }
  out = v;
  return true;
}

std::tm UtcFields(std::chrono::sys_seconds secs) {
  std::time_t t = static_cast<std::time_t>(secs.time_since_epoch().count());
  std::tm tm{};
  ::gmtime_r(&t, &tm);
  return tm;
}

}  // namespace

std::string FormatUtc(Clock::WallTime t, const char* pattern) {
  std::tm tm = UtcFields(std::chrono::floor<std::chrono::seconds>(t));
  char buf[128];
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"  // the pattern is the caller's, by design
  size_t n = std::strftime(buf, sizeof(buf), pattern, &tm);
#pragma GCC diagnostic pop
  return std::string(buf, n);
}

std::string FormatRfc3339(Clock::WallTime t, int fraction_digits) {
  const auto secs = std::chrono::floor<std::chrono::seconds>(t);
  std::string out = FormatUtc(t, "%Y-%m-%dT%H:%M:%S");
  if (fraction_digits > 0) {
    const int digits = fraction_digits > 9 ? 9 : fraction_digits;
    int64_t nanos = std::chrono::duration_cast<std::chrono::nanoseconds>(t - secs).count();
    for (int i = digits; i < 9; ++i) {
      nanos /= 10;
    }
    char buf[16];
    std::snprintf(buf, sizeof(buf), ".%0*lld", digits, static_cast<long long>(nanos));
    out += buf;
  }
  out += 'Z';
  return out;
}

int64_t UnixMillis(Clock::WallTime t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

int64_t SteadyMillis(Clock::MonoTime t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

Result<Timestamp> ParseRfc3339(std::string_view s) {
  auto bad = [&]() {
    return MakeError(ErrorCode::kInvalidArgument,
                     "expected an RFC 3339 timestamp such as 2025-01-02T03:04:05Z");
  };
  int year = 0;
  int month = 0;
  int day = 0;
  int hour = 0;
  int minute = 0;
  int second = 0;
  if (!ParseDigits(s, 0, 4, year) || s.size() < 20 || s[4] != '-' || !ParseDigits(s, 5, 2, month) ||
      s[7] != '-' || !ParseDigits(s, 8, 2, day) || (s[10] != 'T' && s[10] != 't' && s[10] != ' ') ||
      !ParseDigits(s, 11, 2, hour) || s[13] != ':' || !ParseDigits(s, 14, 2, minute) ||
      s[16] != ':' || !ParseDigits(s, 17, 2, second)) {
    return bad();
  }
  size_t pos = 19;
  int64_t micros = 0;
  if (pos < s.size() && s[pos] == '.') {
    ++pos;
    size_t digits = 0;
    while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') {
      if (digits < 6) {
        micros = micros * 10 + (s[pos] - '0');
      }
      ++digits;
      ++pos;
    }
    if (digits == 0) {
      return bad();
    }
    for (size_t i = digits; i < 6; ++i) {
      micros *= 10;
    }
  }
  int offset_minutes = 0;
  if (pos < s.size() && (s[pos] == 'Z' || s[pos] == 'z')) {
    ++pos;
  } else if (pos < s.size() && (s[pos] == '+' || s[pos] == '-')) {
    int oh = 0;
    int om = 0;
    if (!ParseDigits(s, pos + 1, 2, oh) || pos + 3 >= s.size() || s[pos + 3] != ':' ||
        !ParseDigits(s, pos + 4, 2, om)) {
      return bad();
    }
    offset_minutes = (oh * 60 + om) * (s[pos] == '-' ? -1 : 1);
    pos += 6;
  } else {
    return bad();
  }
  if (pos != s.size() || month < 1 || month > 12 || hour > 23 || minute > 59 || second > 60) {
    return bad();
  }
  std::chrono::year_month_day ymd{std::chrono::year(year),
                                  std::chrono::month(static_cast<unsigned>(month)),
                                  std::chrono::day(static_cast<unsigned>(day))};
  if (!ymd.ok()) {
    return bad();
  }
  auto tp = std::chrono::sys_days(ymd) + std::chrono::hours(hour) + std::chrono::minutes(minute) +
            std::chrono::seconds(second) - std::chrono::minutes(offset_minutes);
  return std::chrono::time_point_cast<std::chrono::microseconds>(tp) +
         std::chrono::microseconds(micros);
}

}  // namespace asya
