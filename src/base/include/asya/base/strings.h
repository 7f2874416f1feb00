// Small string helpers shared by every library. Pure functions.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace asya {

// `text` without leading and trailing ASCII whitespace (space, \t, \n, \v, \f, \r).
std::string_view TrimSpace(std::string_view text);

// Splits on `sep` and trims each item. "a, b,,c" -> {"a","b","c"}; with keep_empty
// {"a","b","","c"}. An empty (or all-blank) text gives {} ({""} with keep_empty).
std::vector<std::string> SplitTrimmed(std::string_view text, char sep = ',',
                                      bool keep_empty = false);

}  // namespace asya
