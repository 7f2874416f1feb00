#include "asya/base/yaml_text.h"

#include <algorithm>
#include <cstdio>

#include "asya/base/json_text.h"

namespace asya {

namespace {
std::string LineOf(std::string_view text, size_t offset) {
  return std::to_string(std::count(text.begin(), text.begin() + static_cast<long>(offset), '\n') +
                        1);
}
}  // namespace

std::optional<std::string> YamlTextProblem(std::string_view text) {
  if (auto bad = FindInvalidUtf8(text)) {
    return LineOf(text, bad->offset) + ": invalid UTF-8 at byte " + std::to_string(bad->offset) +
           " (" + std::string(Utf8ProblemText(bad->problem)) + ")";
  }
  for (size_t i = 0; i < text.size(); ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    if ((c < 0x20 && c != '\t' && c != '\n' && c != '\r') || c == 0x7F) {
      char code[8];
      std::snprintf(code, sizeof code, "%02X", c);
      return LineOf(text, i) + ": control character U+00" + code + " at byte " + std::to_string(i) +
             " (YAML does not allow it)";
    }
  }
  return std::nullopt;
}

}  // namespace asya
