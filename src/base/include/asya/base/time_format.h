// Time as text and as integers: the one place that formats and parses timestamps. Take the time
// from a Clock (SystemClock().WallNow() / Now()) so tests can fix it.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "asya/base/clock.h"
#include "asya/base/result.h"

namespace asya {

// UTC RFC 3339 with 'Z': "2025-01-02T03:04:05Z"; `fraction_digits` (1..9) adds a truncated
// fraction: 3 -> "...05.678Z", 6 -> "...05.678901Z".
std::string FormatRfc3339(Clock::WallTime t, int fraction_digits = 0);

// UTC broken down by a strftime(3) `pattern`, e.g. "%Y%m%dT%H%M%SZ" (SigV4's X-Amz-Date).
std::string FormatUtc(Clock::WallTime t, const char* pattern);

// Parses an RFC 3339 timestamp ("2025-01-02T03:04:05.678Z", "...+02:00", 't' or ' ' as the
// separator) with microsecond precision (a 64-bit count of microseconds covers any year, unlike
// system_clock's nanoseconds). kInvalidArgument when malformed.
using Timestamp = std::chrono::sys_time<std::chrono::microseconds>;
Result<Timestamp> ParseRfc3339(std::string_view text);

// Milliseconds since the Unix epoch, and since the monotonic clock's (arbitrary) epoch.
int64_t UnixMillis(Clock::WallTime t);
int64_t SteadyMillis(Clock::MonoTime t);

}  // namespace asya
