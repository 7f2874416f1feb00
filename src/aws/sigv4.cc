#include "asya/aws/sigv4.h"

#include <algorithm>
#include <ctime>
#include <map>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

#include "asya/base/time_format.h"
#include "asya/http/url.h"

namespace asya::aws {
namespace {

constexpr std::string_view kAlgorithm = "AWS4-HMAC-SHA256";

std::string ToLower(std::string_view text) {
  std::string out(text);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

// Trims the value and turns every run of whitespace into one space.
std::string TrimAll(std::string_view value) {
  std::string out;
  bool pending_space = false;
  for (char c : value) {
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f') {
      pending_space = !out.empty();
      continue;
    }
    if (pending_space) {
      out.push_back(' ');
      pending_space = false;
    }
    out.push_back(c);
  }
  return out;
}

bool HasHeader(const HeaderList& headers, std::string_view lower_name) {
  return std::any_of(headers.begin(), headers.end(),
                     [&](const auto& h) { return ToLower(h.first) == lower_name; });
}

}  // namespace

std::string HexEncode(std::string_view bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char c : bytes) {
    out.push_back(kDigits[c >> 4]);
    out.push_back(kDigits[c & 0xF]);
  }
  return out;
}

std::string Sha256Hex(std::string_view data) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(data.data()), data.size(), digest);
  return HexEncode(std::string_view(reinterpret_cast<const char*>(digest), sizeof(digest)));
}

std::string HmacSha256(std::string_view key, std::string_view data) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int out_len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), out, &out_len);
  return std::string(reinterpret_cast<const char*>(out), out_len);
}

std::string UriEncode(std::string_view text, bool keep_slash) {
  return http::PercentEncode(text, keep_slash);
}

std::string NormalizePath(std::string_view path) {
  std::vector<std::string_view> segments;
  size_t pos = 0;
  while (pos <= path.size()) {
    size_t next = path.find('/', pos);
    if (next == std::string_view::npos) {
      next = path.size();
    }
    std::string_view segment = path.substr(pos, next - pos);
    if (segment == "..") {
      if (!segments.empty()) {
        segments.pop_back();
      }
    } else if (!segment.empty() && segment != ".") {
      segments.push_back(segment);
    }
    pos = next + 1;
  }
  std::string out;
  for (std::string_view segment : segments) {
    out.push_back('/');
    out.append(segment);
  }
  bool trailing_slash = !path.empty() && path.back() == '/';
  if (out.empty() || trailing_slash) {
    out.push_back('/');
  }
  return out;
}

std::string CanonicalQuery(const HeaderList& query) {
  std::vector<std::pair<std::string, std::string>> encoded;
  encoded.reserve(query.size());
  for (const auto& [name, value] : query) {
    encoded.emplace_back(UriEncode(name, false), UriEncode(value, false));
  }
  std::sort(encoded.begin(), encoded.end());
  std::string out;
  for (const auto& [name, value] : encoded) {
    if (!out.empty()) {
      out.push_back('&');
    }
    out += name;
    out.push_back('=');
    out += value;
  }
  return out;
}

std::string FormatAmzDate(std::chrono::system_clock::time_point time) {
  return FormatUtc(time, "%Y%m%dT%H%M%SZ");
}

std::string DeriveSigningKey(std::string_view secret, std::string_view date,
                             std::string_view region, std::string_view service) {
  std::string k_date = HmacSha256("AWS4" + std::string(secret), date);
  std::string k_region = HmacSha256(k_date, region);
  std::string k_service = HmacSha256(k_region, service);
  return HmacSha256(k_service, "aws4_request");
}

Signature Sign(const SigningRequest& request, const Credentials& credentials,
               const SigningParams& params) {
  Signature out;
  const std::string amz_date = FormatAmzDate(params.time);
  const std::string date = amz_date.substr(0, 8);
  const std::string payload_hash = Sha256Hex(request.payload);

  HeaderList headers = request.headers;
  auto add = [&](std::string name, std::string value) {
    if (!HasHeader(headers, ToLower(name))) {
      headers.emplace_back(name, value);
      out.added_headers.emplace_back(std::move(name), std::move(value));
    }
  };
  add("X-Amz-Date", amz_date);
  if (!credentials.session_token.empty()) {
    add("X-Amz-Security-Token", credentials.session_token);
  }
  if (params.add_content_sha256_header) {
    add("X-Amz-Content-Sha256", payload_hash);
  }

  // Canonical headers: lower-case names, sorted; repeated names joined with ',' in order.
  std::map<std::string, std::string> canonical;
  for (const auto& [name, value] : headers) {
    std::string& slot = canonical[ToLower(name)];
    if (!slot.empty()) {
      slot.push_back(',');
    }
    slot += TrimAll(value);
  }
  std::string canonical_headers;
  std::string signed_headers;
  for (const auto& [name, value] : canonical) {
    canonical_headers += name + ":" + value + "\n";
    if (!signed_headers.empty()) {
      signed_headers.push_back(';');
    }
    signed_headers += name;
  }

  std::string path = request.path.empty() ? "/" : request.path;
  if (params.normalize_path) {
    path = NormalizePath(path);
  }
  out.canonical_request = request.method + "\n" + UriEncode(path, true) + "\n" +
                          CanonicalQuery(request.query) + "\n" + canonical_headers + "\n" +
                          signed_headers + "\n" + payload_hash;

  const std::string scope = date + "/" + params.region + "/" + params.service + "/aws4_request";
  out.string_to_sign = std::string(kAlgorithm) + "\n" + amz_date + "\n" + scope + "\n" +
                       Sha256Hex(out.canonical_request);
  std::string key =
      DeriveSigningKey(credentials.secret_access_key, date, params.region, params.service);
  out.signature = HexEncode(HmacSha256(key, out.string_to_sign));
  out.authorization = std::string(kAlgorithm) + " Credential=" + credentials.access_key_id + "/" +
                      scope + ", SignedHeaders=" + signed_headers + ", Signature=" + out.signature;
  out.added_headers.emplace_back("Authorization", out.authorization);
  return out;
}

}  // namespace asya::aws
