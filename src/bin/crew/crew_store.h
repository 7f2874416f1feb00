// Persistence of end-actor envelopes into a directory, in the original crew's key layout:
//   <prefix><UTC timestamp "YYYY-MM-DDTHH:MM:SS.ffffffZ">/<last_actor>/<id>.json
// (reference-dataplane §9). `asya up` uses prefixes `results/` (happy-end) and `errors/`
// (error-end) under its state directory; the defaults are the original's `happy-asya/`.
#pragma once

#include <chrono>
#include <string>

#include <nlohmann/json.hpp>

#include "asya/base/result.h"

namespace asya::crew {

// actors[current] if 0 < current < len(actors), else actors[-1], else "unknown".
std::string LastActor(const nlohmann::json& envelope);

// "2025-01-02T03:04:05.123456Z"
std::string FormatTimestamp(std::chrono::system_clock::time_point t);

// Key of one envelope. Path separators and leading dots in the id or actor name are replaced
// with '_' so a key never leaves its directory.
Result<std::string> MakeKey(const nlohmann::json& envelope, const std::string& prefix,
                            std::chrono::system_clock::time_point now);

// Writes the envelope pretty-printed (indent 2) to <root>/<key>, atomically (temp + rename).
Status Store(const std::string& root, const std::string& key, const nlohmann::json& envelope);

}  // namespace asya::crew
