#include "asya/base/redact.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <cstddef>
#include <mutex>
#include <vector>

namespace asya {
namespace {

struct Registry {
  std::mutex mu;
  std::vector<std::string> secrets;  // longest first, so a secret inside another goes second
};

Registry& GetRegistry() {
  static Registry r;
  return r;
}

bool IsAuthorityEnd(char c) {
  return c == '/' || c == '?' || c == '#' || c == '"' || c == '\'' || c == '<' || c == '>' ||
         c == '`' || std::isspace(static_cast<unsigned char>(c)) != 0;
}

bool IsKeyChar(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '_' || c == '-' || c == '.';
}

bool IsValueEnd(char c) {
  return c == '&' || c == ';' || c == ',' || c == '"' || c == '\'' || c == ')' || c == ']' ||
         c == '}' || std::isspace(static_cast<unsigned char>(c)) != 0;
}

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  return out;
}

bool IsCredentialKey(std::string_view key) {
  const std::string k = Lower(key);
  static constexpr std::array<std::string_view, 8> kContains = {
      "password", "passwd", "secret", "token", "signature", "credential", "apikey", "api_key"};
  for (auto word : kContains) {
    if (k.find(word) != std::string::npos) {
      return true;
    }
  }
  return k == "pwd" || k == "sig";
}

// Userinfo of every URL in `text`.
void RedactUserInfo(std::string& text) {
  size_t pos = 0;
  while ((pos = text.find("://", pos)) != std::string::npos) {
    size_t start = pos + 3;
    size_t end = start;
    while (end < text.size() && !IsAuthorityEnd(text[end])) {
      ++end;
    }
    size_t at = text.rfind('@', end == 0 ? 0 : end - 1);
    if (at != std::string::npos && at >= start && at < end &&
        text.compare(start, at - start, kRedacted) != 0) {
      text.replace(start, at - start, kRedacted);
      end = start + kRedacted.size() + 1;
    }
    pos = end;
  }
}

// `name=value` where the name says credential.
void RedactKeyValues(std::string& text) {
  size_t pos = 0;
  while ((pos = text.find('=', pos)) != std::string::npos) {
    size_t key_start = pos;
    while (key_start > 0 && IsKeyChar(text[key_start - 1])) {
      --key_start;
    }
    size_t value_start = pos + 1;
    size_t value_end = value_start;
    while (value_end < text.size() && !IsValueEnd(text[value_end])) {
      ++value_end;
    }
    const std::string_view value =
        std::string_view(text).substr(value_start, value_end - value_start);
    const bool numeric = std::all_of(value.begin(), value.end(), [](char c) {
      return std::isdigit(static_cast<unsigned char>(c)) != 0;
    });  // max_tokens=4096 is a setting, not a credential
    if (key_start < pos && value_end > value_start && !numeric &&
        IsCredentialKey(std::string_view(text).substr(key_start, pos - key_start)) &&
        text.compare(value_start, value_end - value_start, kRedacted) != 0) {
      text.replace(value_start, value_end - value_start, kRedacted);
      value_end = value_start + kRedacted.size();
    }
    pos = std::max(value_end, pos + 1);
  }
}

// "Bearer <token>", "Basic <base64>".
void RedactAuthSchemes(std::string& text) {
  for (std::string_view scheme : {std::string_view("Bearer "), std::string_view("Basic ")}) {
    size_t pos = 0;
    while ((pos = text.find(scheme, pos)) != std::string::npos) {
      size_t start = pos + scheme.size();
      size_t end = start;
      while (end < text.size() && !IsValueEnd(text[end])) {
        ++end;
      }
      // "Basic" only before base64 of some length ("Basic usage" is English).
      const bool credential =
          scheme == "Bearer " ||
          (end - start >= 8 &&
           std::all_of(text.begin() + static_cast<std::ptrdiff_t>(start),
                       text.begin() + static_cast<std::ptrdiff_t>(end), [](char c) {
                         return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '+' ||
                                c == '/' || c == '=';
                       }));
      if (end > start && credential && text.compare(start, end - start, kRedacted) != 0) {
        text.replace(start, end - start, kRedacted);
      }
      pos = start;
    }
  }
}

void RedactRegistered(std::string& text) {
  Registry& r = GetRegistry();
  std::lock_guard lock(r.mu);
  for (const auto& s : r.secrets) {
    size_t pos = 0;
    while ((pos = text.find(s, pos)) != std::string::npos) {
      text.replace(pos, s.size(), kRedacted);
      pos += kRedacted.size();
    }
  }
}

std::string PercentEncode(std::string_view s) {
  static const char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) != 0 || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

std::string PercentDecode(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && std::isxdigit(static_cast<unsigned char>(s[i + 1])) &&
        std::isxdigit(static_cast<unsigned char>(s[i + 2]))) {
      out += static_cast<char>(std::stoi(std::string(s.substr(i + 1, 2)), nullptr, 16));
      i += 2;
    } else {
      out += s[i];
    }
  }
  return out;
}

void AddSecret(std::string value) {
  if (value.size() < kMinSecretLength) {
    return;
  }
  Registry& r = GetRegistry();
  std::lock_guard lock(r.mu);
  if (std::find(r.secrets.begin(), r.secrets.end(), value) != r.secrets.end()) {
    return;
  }
  r.secrets.push_back(std::move(value));
  std::stable_sort(r.secrets.begin(), r.secrets.end(),
                   [](const std::string& a, const std::string& b) { return a.size() > b.size(); });
}

}  // namespace

std::string RedactUrl(std::string_view url) {
  std::string out(url);
  RedactUserInfo(out);
  return out;
}

void RegisterSecret(std::string_view value) {
  AddSecret(std::string(value));
  AddSecret(PercentEncode(value));
  AddSecret(PercentDecode(value));
}

void RegisterUrlSecrets(std::string_view url) {
  size_t scheme = url.find("://");
  if (scheme == std::string_view::npos) {
    return;
  }
  size_t start = scheme + 3;
  size_t end = start;
  while (end < url.size() && !IsAuthorityEnd(url[end])) {
    ++end;
  }
  size_t at = url.substr(0, end).rfind('@');
  if (at == std::string_view::npos || at < start) {
    return;
  }
  std::string_view info = url.substr(start, at - start);
  size_t colon = info.find(':');
  if (colon != std::string_view::npos) {
    RegisterSecret(info.substr(colon + 1));
  }
  RegisterSecret(info.substr(0, colon));
}

void RegisterEnvSecret(std::string_view name, std::string_view value) {
  if (value.find("://") != std::string_view::npos) {
    RegisterUrlSecrets(value);
  }
  auto ends_with = [&](std::string_view suffix) {
    return name.size() >= suffix.size() &&
           name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0;
  };
  for (std::string_view loc : {"_FILE", "_PATH", "_DIR", "_URI", "_ENDPOINT"}) {
    if (ends_with(loc)) {
      return;
    }
  }
  const std::string upper = [&] {
    std::string u(name);
    for (char& c : u) {
      c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    }
    return u;
  }();
  bool secret = false;
  for (std::string_view word :
       {"SECRET", "TOKEN", "PASSWORD", "PASSWD", "ACCESS_KEY", "API_KEY", "APIKEY"}) {
    secret = secret || upper.find(word) != std::string::npos;
  }
  if (!secret) {
    return;
  }
  RegisterSecret(value);
  size_t start = 0;
  while (start < value.size()) {  // ASYA_GATEWAY_TOKENS=a,b
    size_t comma = value.find(',', start);
    if (comma == std::string_view::npos) {
      comma = value.size();
    }
    std::string_view item = value.substr(start, comma - start);
    while (!item.empty() && std::isspace(static_cast<unsigned char>(item.front())) != 0) {
      item.remove_prefix(1);
    }
    while (!item.empty() && std::isspace(static_cast<unsigned char>(item.back())) != 0) {
      item.remove_suffix(1);
    }
    RegisterSecret(item);
    start = comma + 1;
  }
}

std::string RedactSecrets(std::string_view text) {
  std::string out(text);
  RedactRegistered(out);
  if (out.find("://") != std::string::npos) {
    RedactUserInfo(out);
  }
  if (out.find('=') != std::string::npos) {
    RedactKeyValues(out);
  }
  if (out.find("Bearer ") != std::string::npos || out.find("Basic ") != std::string::npos) {
    RedactAuthSchemes(out);
  }
  return out;
}

bool ContainsSecret(std::string_view text) {
  return RedactSecrets(text) != text;
}

}  // namespace asya
