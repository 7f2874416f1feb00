// Where the crew (asya-crew, the runtime of happy-end and error-end) stores an envelope, and where
// `asya send --wait` looks for it: the original crew's key layout
//   <prefix><UTC timestamp "YYYY-MM-DDTHH:MM:SS.ffffffZ">/<last_actor>/<id>.json
// (reference-dataplane §9). Under `asya up` the prefixes are `results/` (happy-end) and `errors/`
// (error-end), relative to the state directory.
#pragma once

#include <string>
#include <string_view>

namespace asya::crew_layout {

// Directory names under the state directory (`asya up`).
inline constexpr char kResultsDir[] = "results";  // happy-end
inline constexpr char kErrorsDir[] = "errors";    // error-end
// The original crew's default prefix (ASYA_CREW_PREFIX unset).
inline constexpr char kDefaultPrefix[] = "happy-asya/";
inline constexpr char kSuffix[] = ".json";

// The prefix of a state-directory subdirectory: "results" -> "results/".
inline std::string PrefixOf(std::string_view dir) {
  return std::string(dir) + "/";
}

// <prefix><timestamp>/<actor>/<id>.json. Callers make `actor` and `id` safe path components.
inline std::string Key(std::string_view prefix, std::string_view timestamp, std::string_view actor,
                       std::string_view id) {
  std::string key(prefix);
  key.append(timestamp).append("/").append(actor).append("/").append(id).append(kSuffix);
  return key;
}

// The file name of envelope `id` inside an actor directory.
inline std::string FileName(std::string_view id) {
  return std::string(id) + kSuffix;
}

}  // namespace asya::crew_layout
