// amqp[s]:// URL parsing (RabbitMqEndpoint).
#include <cctype>
#include <string>
#include <string_view>

#include "asya/transport/rabbitmq.h"

namespace asya::transport {
namespace {

Result<std::string> PercentDecode(std::string_view text, std::string_view what) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '%') {
      out.push_back(text[i]);
      continue;
    }
    if (i + 2 >= text.size() || !std::isxdigit(static_cast<unsigned char>(text[i + 1])) ||
        !std::isxdigit(static_cast<unsigned char>(text[i + 2]))) {
      return MakeError(ErrorCode::kInvalidArgument,
                       "bad percent-escape in the " + std::string(what) + " of the RabbitMQ URL");
    }
    out.push_back(static_cast<char>(std::stoi(std::string(text.substr(i + 1, 2)), nullptr, 16)));
    i += 2;
  }
  return out;
}

tl::unexpected<Error> BadUrl(std::string_view why) {
  return MakeError(ErrorCode::kInvalidArgument,
                   "invalid RabbitMQ URL: " + std::string(why) +
                       " (expected amqp[s]://user:password@host:port/vhost)");
}

}  // namespace

Result<RabbitMqEndpoint> ParseRabbitMqUrl(std::string_view url) {
  RabbitMqEndpoint ep;
  std::string_view rest = url;
  if (rest.rfind("amqps://", 0) == 0) {
    ep.tls = true;
    ep.port = 5671;
    rest.remove_prefix(8);
  } else if (rest.rfind("amqp://", 0) == 0) {
    rest.remove_prefix(7);
  } else {
    return BadUrl("scheme must be amqp:// or amqps://");
  }
  // Query string: only verify=true|false is understood; anything else is an error, not ignored.
  if (size_t q = rest.find('?'); q != std::string_view::npos) {
    std::string_view query = rest.substr(q + 1);
    rest = rest.substr(0, q);
    while (!query.empty()) {
      size_t amp = query.find('&');
      std::string_view item = query.substr(0, amp);
      query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
      if (item == "verify=false" || item == "verify=0") {
        ep.verify = false;
      } else if (item == "verify=true" || item == "verify=1") {
        ep.verify = true;
      } else if (!item.empty()) {
        return BadUrl("unknown query parameter '" + std::string(item) +
                      "' (only verify=true|false)");
      }
    }
  }
  std::string_view authority = rest;
  std::string_view path;
  if (size_t slash = rest.find('/'); slash != std::string_view::npos) {
    authority = rest.substr(0, slash);
    path = rest.substr(slash + 1);
  }
  if (size_t at = authority.rfind('@'); at != std::string_view::npos) {
    std::string_view userinfo = authority.substr(0, at);
    authority = authority.substr(at + 1);
    size_t colon = userinfo.find(':');
    ASYA_ASSIGN_OR_RETURN(ep.user, PercentDecode(userinfo.substr(0, colon), "user name"));
    ep.password.clear();
    if (colon != std::string_view::npos) {
      ASYA_ASSIGN_OR_RETURN(ep.password, PercentDecode(userinfo.substr(colon + 1), "password"));
    }
  }
  std::string_view host = authority;
  if (!authority.empty() && authority.front() == '[') {  // [::1]:5672
    size_t close = authority.find(']');
    if (close == std::string_view::npos) {
      return BadUrl("unterminated IPv6 address");
    }
    host = authority.substr(1, close - 1);
    authority = authority.substr(close + 1);
    if (!authority.empty() && authority.front() != ':') {
      return BadUrl("junk after IPv6 address");
    }
  } else if (size_t colon = authority.rfind(':'); colon != std::string_view::npos) {
    host = authority.substr(0, colon);
    authority = authority.substr(colon);
  } else {
    authority = {};
  }
  if (!authority.empty()) {  // ":port"
    std::string_view port = authority.substr(1);
    if (port.empty() || port.size() > 5 ||
        port.find_first_not_of("0123456789") != std::string_view::npos) {
      return BadUrl("port '" + std::string(port) + "' is not a number");
    }
    ep.port = std::stoi(std::string(port));
    if (ep.port < 1 || ep.port > 65535) {
      return BadUrl("port " + std::string(port) + " is out of range");
    }
  }
  if (host.empty()) {
    return BadUrl("host is empty");
  }
  ep.host = std::string(host);
  ASYA_ASSIGN_OR_RETURN(ep.vhost, PercentDecode(path, "vhost"));
  if (ep.vhost.empty()) {
    ep.vhost = "/";
  }
  return ep;
}

}  // namespace asya::transport
