// Fuzzes the Go-style durations every ASYA_*_TIMEOUT/BACKOFF variable and manifest field goes
// through (ParseDuration / FormatGoDuration), and RFC 3339 timestamps (ParseRfc3339 /
// FormatRfc3339: Kubernetes objects, STS and container credentials, the gateway's store rows).
//
// Invariants:
// - ParseDuration never crashes; an accepted duration is >= 0, and its Go form parses back to the
//   same number of milliseconds (and formats to the same text again); a rejection says why.
// - ParseRfc3339: an accepted time within system_clock's range formats (with 6 fraction digits)
//   to a text that parses back to the same microsecond.
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <string_view>

#include "asya/base/duration.h"
#include "asya/base/time_format.h"
#include "fuzz_check.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);

  auto d = asya::ParseDuration(in);
  if (d) {
    FUZZ_CHECK(d->count() >= 0);
    const std::string go = asya::FormatGoDuration(*d);
    auto again = asya::ParseDuration(go);
    if (!again || *again != *d) {
      std::fprintf(stderr, "%lld ms -> '%s' -> %s\n", static_cast<long long>(d->count()),
                   go.c_str(), again ? std::to_string(again->count()).c_str() : "error");
    }
    FUZZ_CHECK(again.has_value() && *again == *d);
    FUZZ_CHECK(asya::FormatGoDuration(*again) == go);
  } else {
    FUZZ_CHECK(!d.error().message.empty());
  }
  // Negative values format as Go does and are refused when parsed.
  if (size >= 8) {
    int64_t raw = 0;
    std::memcpy(&raw, data, sizeof raw);
    raw %= int64_t{1'000'000'000'000'000};  // ParseDuration's range (1e15 ms)
    const std::string go = asya::FormatGoDuration(asya::Millis(raw));
    auto back = asya::ParseDuration(go);
    FUZZ_CHECK(back.has_value() == (raw >= 0));
    if (raw >= 0) {
      FUZZ_CHECK(back->count() == raw);
    }
  }

  auto t = asya::ParseRfc3339(in);
  if (t) {
    using namespace std::chrono;
    const auto lo = sys_days(year(1678) / 1 / 1);
    const auto hi = sys_days(year(2261) / 12 / 31);
    if (*t >= lo && *t < hi) {
      const auto wall = time_point_cast<system_clock::duration>(*t);
      const std::string text = asya::FormatRfc3339(wall, 6);
      auto back = asya::ParseRfc3339(text);
      if (!back || *back != *t) {
        std::fprintf(stderr, "'%.*s' -> '%s'\n", static_cast<int>(size), in.data(), text.c_str());
      }
      FUZZ_CHECK(back.has_value() && *back == *t);
    }
  } else {
    FUZZ_CHECK(!t.error().message.empty());
  }
  return 0;
}
