#include "asya/base/strings.h"

namespace asya {
namespace {

bool IsSpace(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

}  // namespace

std::string_view TrimSpace(std::string_view text) {
  while (!text.empty() && IsSpace(text.front())) {
    text.remove_prefix(1);
  }
  while (!text.empty() && IsSpace(text.back())) {
    text.remove_suffix(1);
  }
  return text;
}

std::vector<std::string> SplitTrimmed(std::string_view text, char sep, bool keep_empty) {
  std::vector<std::string> out;
  size_t start = 0;
  while (true) {
    size_t end = text.find(sep, start);
    std::string_view item =
        TrimSpace(text.substr(start, end == std::string_view::npos ? end : end - start));
    if (keep_empty || !item.empty()) {
      out.emplace_back(item);
    }
    if (end == std::string_view::npos) {
      return out;
    }
    start = end + 1;
  }
}

}  // namespace asya
