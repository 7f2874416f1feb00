#include "asya/http/url.h"

namespace asya::http {
namespace {

bool IsUnreserved(unsigned char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '.' || c == '_' || c == '~';
}

}  // namespace

std::string PercentEncode(std::string_view text, bool keep_slash) {
  static constexpr char kDigits[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(text.size());
  for (unsigned char c : text) {
    if (IsUnreserved(c) || (keep_slash && c == '/')) {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kDigits[c >> 4]);
      out.push_back(kDigits[c & 0xF]);
    }
  }
  return out;
}

std::string FormEncode(const std::vector<std::pair<std::string, std::string>>& fields) {
  std::string out;
  for (const auto& [name, value] : fields) {
    if (!out.empty()) {
      out.push_back('&');
    }
    out += PercentEncode(name) + "=" + PercentEncode(value);
  }
  return out;
}

Result<Url> ParseUrl(std::string_view url) {
  Url out;
  size_t scheme_end = url.find("://");
  if (scheme_end == std::string_view::npos) {
    return MakeError(ErrorCode::kInvalidArgument,
                     "URL '" + std::string(url) + "' has no scheme (expected http:// or https://)");
  }
  out.scheme = std::string(url.substr(0, scheme_end));
  if (out.scheme != "http" && out.scheme != "https") {
    return MakeError(ErrorCode::kInvalidArgument,
                     "URL '" + std::string(url) + "' must start with http:// or https://");
  }
  std::string_view rest = url.substr(scheme_end + 3);
  size_t path_start = rest.find_first_of("/?#");
  out.authority = std::string(rest.substr(0, path_start));
  if (out.authority.empty() || out.authority.find('@') != std::string::npos) {
    return MakeError(ErrorCode::kInvalidArgument,
                     "URL '" + std::string(url) + "' has no host (or carries user info)");
  }
  if (out.authority.front() == '[') {
    out.host = out.authority.substr(0, out.authority.find(']') + 1);
  } else {
    out.host = out.authority.substr(0, out.authority.find(':'));
  }
  if (path_start == std::string_view::npos) {
    out.path = "/";
    return out;
  }
  rest = rest.substr(path_start);
  size_t fragment = rest.find('#');
  if (fragment != std::string_view::npos) {
    rest = rest.substr(0, fragment);
  }
  size_t query = rest.find('?');
  out.path = std::string(rest.substr(0, query));
  if (out.path.empty()) {
    out.path = "/";
  }
  if (query != std::string_view::npos) {
    out.query = std::string(rest.substr(query + 1));
  }
  return out;
}

}  // namespace asya::http
