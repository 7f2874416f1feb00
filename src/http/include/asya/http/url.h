// URL helpers: the one percent-encoder, form bodies and URL splitting. Pure functions.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "asya/base/result.h"

namespace asya::http {

// RFC 3986 percent-encoding: unreserved characters (A-Z a-z 0-9 - . _ ~) stay, every other byte
// becomes %XX with upper-case hex; with keep_slash, '/' stays too (a path). This is also SigV4's
// UriEncode and what RabbitMQ's management API and amqp:// user info expect.
std::string PercentEncode(std::string_view text, bool keep_slash = false);

// application/x-www-form-urlencoded body "a=1&b=2" from name/value pairs (PercentEncode rules).
std::string FormEncode(const std::vector<std::pair<std::string, std::string>>& fields);

// Splits "scheme://host[:port]/path?query" into its parts (no user info, no fragment).
struct Url {
  std::string scheme;     // "http" | "https"
  std::string authority;  // host[:port] exactly as written
  std::string host;       // without port
  std::string path;       // "/" when empty
  std::string query;      // raw, without '?'
};
Result<Url> ParseUrl(std::string_view url);

}  // namespace asya::http
