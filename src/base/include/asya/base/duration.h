// Go-style durations ("300ms", "30s", "5m", "1h30m"); a bare number means seconds.
#pragma once

#include <chrono>
#include <string>
#include <string_view>

#include "asya/base/result.h"

namespace asya {

using Millis = std::chrono::milliseconds;

Result<Millis> ParseDuration(std::string_view text);
// Formats as Go's time.Duration.String() does for whole milliseconds: "5m0s", "1.5s", "300ms".
std::string FormatGoDuration(Millis d);

}  // namespace asya
