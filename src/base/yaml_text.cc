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
    // A CR alone is a line break in YAML, but the two loaders disagree on it inside quoted
    // scalars (libyaml folds it like LF, yaml-cpp keeps the byte; found by manifest_fuzz), so
    // one file could mean two things. CRLF is fine.
    if (c == '\r' && (i + 1 == text.size() || text[i + 1] != '\n')) {
      return LineOf(text, i) + ": carriage return without a line feed at byte " +
             std::to_string(i) + " (use LF or CRLF line endings)";
    }
  }
  return std::nullopt;
}

}  // namespace asya
