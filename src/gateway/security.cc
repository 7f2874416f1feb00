#include "asya/gateway/security.h"

#include <algorithm>
#include <memory>

#include "asya/base/log.h"

namespace asya::gateway {
namespace {

bool ConstantTimeEquals(std::string_view a, std::string_view b) {
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  const size_t n = std::max(a.size(), b.size());
  for (size_t i = 0; i < n; ++i) {
    unsigned char x = i < a.size() ? static_cast<unsigned char>(a[i]) : 0;
    unsigned char y = i < b.size() ? static_cast<unsigned char>(b[i]) : 0;
    diff |= static_cast<unsigned char>(x ^ y);
  }
  return diff == 0;
}

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  return out;
}

// "host[:port]" → host (brackets kept for IPv6 literals).
std::string HostPart(std::string_view hostport) {
  if (!hostport.empty() && hostport.front() == '[') {
    auto end = hostport.find(']');
    return Lower(hostport.substr(0, end == std::string_view::npos ? hostport.size() : end + 1));
  }
  auto colon = hostport.find(':');
  return Lower(hostport.substr(0, colon));
}

bool IsLoopbackHost(const std::string& host) {
  return host == "localhost" || host == "127.0.0.1" || host == "[::1]" ||
         (host.size() > 10 && host.compare(host.size() - 10, 10, ".localhost") == 0);
}

bool LoopbackOrigin(std::string_view origin) {
  std::string o = Lower(origin);
  for (const char* scheme : {"http://", "https://"}) {
    std::string_view s(scheme);
    if (o.rfind(s, 0) == 0) {
      std::string_view rest = std::string_view(o).substr(s.size());
      auto slash = rest.find('/');
      return IsLoopbackHost(HostPart(rest.substr(0, slash)));
    }
  }
  return false;
}

std::string_view BearerToken(const Request& r) {
  std::string_view h = r.Header("Authorization");
  if (h.size() > 7 && Lower(h.substr(0, 7)) == "bearer ") {
    h.remove_prefix(7);
    while (!h.empty() && h.front() == ' ')
      h.remove_prefix(1);
    while (!h.empty() && h.back() == ' ')
      h.remove_suffix(1);
    return h;
  }
  return {};
}

Response Refuse(int status, std::string text) {
  Response r;
  r.status = status;
  r.headers["Content-Type"] = "text/plain; charset=utf-8";
  r.body = std::move(text) + "\n";
  return r;
}

Response Unauthorized(bool had_token) {
  Response r = Refuse(401, had_token ? "Unauthorized: invalid bearer token"
                                     : "Unauthorized: a bearer token is required");
  r.headers["WWW-Authenticate"] = had_token
                                      ? "Bearer realm=\"asya-gateway\", error=\"invalid_token\""
                                      : "Bearer realm=\"asya-gateway\"";
  return r;
}

}  // namespace

bool IsCallbackRoute(const Request& r) {
  if (r.method != "POST") {
    return false;
  }
  if (r.path == "/envelopes" || r.path == "/envelopes/batch") {  // batch: progress/final/children
    return true;
  }
  if (r.path.rfind("/envelopes/", 0) != 0) {
    return false;
  }
  std::string_view rest = std::string_view(r.path).substr(11);
  auto slash = rest.find('/');
  if (slash == std::string_view::npos || slash == 0) {
    return false;
  }
  auto action = rest.substr(slash + 1);
  return action == "progress" || action == "final";
}

Handler Guard(GuardOptions options, Handler inner) {
  auto o = std::make_shared<GuardOptions>(std::move(options));
  return [o, inner = std::move(inner)](Request req, Responder resp) {
    if (o->loopback) {
      std::string host = HostPart(req.Header("Host"));
      if (!host.empty() && !IsLoopbackHost(host)) {
        log::Warn("refused a request for a foreign Host (DNS rebinding?)", {{"peer", req.peer}});
        resp.Reply(Refuse(403, "Forbidden: Host is not allowed"));
        return;
      }
    }
    std::string_view origin = req.Header("Origin");
    if (!origin.empty() && (o->loopback || !o->allowed_origins.empty())) {
      bool ok = std::find(o->allowed_origins.begin(), o->allowed_origins.end(), origin) !=
                o->allowed_origins.end();
      if (!ok && o->loopback) {
        ok = LoopbackOrigin(origin);
      }
      if (!ok) {
        log::Warn("refused a request from a foreign Origin", {{"peer", req.peer}});
        resp.Reply(Refuse(403, "Forbidden: Origin is not allowed"));
        return;
      }
    }
    if (req.path != "/health") {
      std::string_view token = BearerToken(req);
      if (IsCallbackRoute(req)) {
        if (!o->callback_token.empty() && !ConstantTimeEquals(token, o->callback_token)) {
          resp.Reply(Unauthorized(!token.empty()));
          return;
        }
      } else if (!o->client_tokens.empty()) {
        bool ok = false;
        for (const auto& t : o->client_tokens) {
          ok = ConstantTimeEquals(token, t) || ok;
        }
        if (!ok) {
          resp.Reply(Unauthorized(!token.empty()));
          return;
        }
      }
    }
    inner(std::move(req), std::move(resp));
  };
}

}  // namespace asya::gateway
