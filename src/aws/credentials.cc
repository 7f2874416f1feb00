#include "asya/aws/credentials.h"

#include <ctime>
#include <fstream>
#include <sstream>

#include <unistd.h>

#include <nlohmann/json.hpp>

#include "asya/aws/http.h"
#include "asya/base/log.h"
#include "asya/base/strings.h"
#include "asya/base/time_format.h"

namespace asya::aws {
namespace {

using Clock = std::chrono::system_clock;

Result<std::string> ReadFile(const std::string& path, std::string_view what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return MakeError(ErrorCode::kFailedPrecondition,
                     std::string(what) + " '" + path + "' cannot be read");
  }
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// "2026-11-28T12:00:00Z", "2026-11-28T12:00:00.123Z", "2026-11-28T12:00:00+00:00".
// Times outside 1970..2200 are refused: system_clock counts nanoseconds in 64 bits (about
// 1677..2262), so converting a year-9999 expiration would overflow (found by
// fuzz/aws_response_fuzz).
Result<Clock::time_point> ParseIso8601(std::string_view text) {
  auto time = ParseRfc3339(text);
  if (!time) {
    return MakeError(ErrorCode::kInvalidArgument,
                     "expiration '" + std::string(text) + "' is not an ISO 8601 time");
  }
  using std::chrono::sys_days;
  using std::chrono::year;
  if (*time < sys_days(year(1970) / 1 / 1) || *time >= sys_days(year(2201) / 1 / 1)) {
    return MakeError(ErrorCode::kInvalidArgument,
                     "expiration '" + std::string(text) + "' is out of range (1970..2200)");
  }
  return std::chrono::time_point_cast<Clock::duration>(*time);
}

// Text between <tag> and </tag> (first occurrence), for the small STS XML documents.
std::string XmlTag(std::string_view xml, std::string_view tag) {
  std::string open = "<" + std::string(tag) + ">";
  std::string close = "</" + std::string(tag) + ">";
  size_t start = xml.find(open);
  if (start == std::string_view::npos) {
    return "";
  }
  start += open.size();
  size_t end = xml.find(close, start);
  if (end == std::string_view::npos) {
    return "";
  }
  return std::string(xml.substr(start, end - start));
}

}  // namespace

Result<Credentials> ParseAssumeRoleResponse(long status, std::string_view body,
                                            std::string_view role_arn) {
  if (status != 200) {
    std::string code = XmlTag(body, "Code");
    std::string message = XmlTag(body, "Message");
    return MakeError(ErrorCode::kPermissionDenied,
                     "STS AssumeRoleWithWebIdentity for " + std::string(role_arn) +
                         " failed (HTTP " + std::to_string(status) +
                         (code.empty() ? "" : " " + code) +
                         (message.empty() ? "" : ": " + message) + ")");
  }
  Credentials out;
  out.source = "web-identity";
  out.access_key_id = XmlTag(body, "AccessKeyId");
  out.secret_access_key = XmlTag(body, "SecretAccessKey");
  out.session_token = XmlTag(body, "SessionToken");
  if (out.access_key_id.empty() || out.secret_access_key.empty()) {
    return MakeError(ErrorCode::kInternal,
                     "STS AssumeRoleWithWebIdentity answered without credentials");
  }
  std::string expiration = XmlTag(body, "Expiration");
  if (!expiration.empty()) {
    ASYA_ASSIGN_OR_RETURN(out.expiration, ParseIso8601(expiration));
  }
  return out;
}

Result<Credentials> ParseContainerCredentials(long status, std::string_view body,
                                              std::string_view url) {
  if (status != 200) {
    return MakeError(ErrorCode::kPermissionDenied,
                     "container credentials endpoint " + std::string(url) + " answered HTTP " +
                         std::to_string(status) + ": " + std::string(body.substr(0, 200)));
  }
  nlohmann::json doc = nlohmann::json::parse(body, nullptr, false);
  if (!doc.is_object() || !doc.contains("AccessKeyId") || !doc.contains("SecretAccessKey") ||
      !doc["AccessKeyId"].is_string() || !doc["SecretAccessKey"].is_string()) {
    return MakeError(ErrorCode::kInvalidArgument,
                     "container credentials endpoint " + std::string(url) +
                         " did not return a JSON object with AccessKeyId and SecretAccessKey");
  }
  Credentials out;
  out.source = "container";
  out.access_key_id = doc["AccessKeyId"].get<std::string>();
  out.secret_access_key = doc["SecretAccessKey"].get<std::string>();
  if (doc.contains("Token") && doc["Token"].is_string()) {
    out.session_token = doc["Token"].get<std::string>();
  }
  if (doc.contains("Expiration") && doc["Expiration"].is_string()) {
    ASYA_ASSIGN_OR_RETURN(out.expiration, ParseIso8601(doc["Expiration"].get<std::string>()));
  }
  return out;
}

Result<Credentials> ParseSharedCredentials(std::string_view text, std::string_view profile,
                                           std::string_view file_name) {
  Credentials out;
  out.source = "shared-file";
  bool found_profile = false;
  bool in_profile = false;
  int line_no = 0;
  size_t pos = 0;
  auto where = [&] { return std::string(file_name) + ":" + std::to_string(line_no); };
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) {
      end = text.size();
    }
    std::string_view line = TrimSpace(text.substr(pos, end - pos));
    pos = end + 1;
    ++line_no;
    if (line.empty() || line.front() == '#' || line.front() == ';') {
      continue;
    }
    if (line.front() == '[') {
      if (line.back() != ']') {
        return MakeError(ErrorCode::kInvalidArgument,
                         where() + ": malformed section header '" + std::string(line) + "'");
      }
      std::string_view name = TrimSpace(line.substr(1, line.size() - 2));
      if (name.rfind("profile ", 0) == 0) {
        name = TrimSpace(name.substr(8));
      }
      in_profile = name == profile;
      found_profile = found_profile || in_profile;
      continue;
    }
    size_t eq = line.find('=');
    if (eq == std::string_view::npos) {
      return MakeError(ErrorCode::kInvalidArgument,
                       where() + ": expected 'key = value', got '" + std::string(line) + "'");
    }
    if (!in_profile) {
      continue;
    }
    std::string_view key = TrimSpace(line.substr(0, eq));
    std::string value(TrimSpace(line.substr(eq + 1)));
    if (key == "aws_access_key_id") {
      out.access_key_id = value;
    } else if (key == "aws_secret_access_key") {
      out.secret_access_key = value;
    } else if (key == "aws_session_token") {
      out.session_token = value;
    }
  }
  if (!found_profile) {
    return MakeError(ErrorCode::kNotFound, "profile '" + std::string(profile) + "' not found in " +
                                               std::string(file_name));
  }
  if (out.access_key_id.empty() || out.secret_access_key.empty()) {
    return MakeError(ErrorCode::kInvalidArgument,
                     "profile '" + std::string(profile) + "' in " + std::string(file_name) +
                         " lacks aws_access_key_id or aws_secret_access_key");
  }
  return out;
}

CredentialProvider::CredentialProvider(CredentialSources sources) : sources_(std::move(sources)) {}

Result<std::string> CredentialProvider::SourceName() const {
  if (!sources_.access_key_id.empty() || !sources_.secret_access_key.empty()) {
    return std::string("static");
  }
  if (!sources_.role_arn.empty() || !sources_.web_identity_token_file.empty()) {
    return std::string("web-identity");
  }
  if (!sources_.shared_credentials_file.empty()) {
    return std::string("shared-file");
  }
  if (!sources_.container_credentials_full_uri.empty() ||
      !sources_.container_credentials_relative_uri.empty()) {
    return std::string("container");
  }
  return MakeError(ErrorCode::kFailedPrecondition,
                   "no AWS credentials configured: set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, "
                   "AWS_ROLE_ARN+AWS_WEB_IDENTITY_TOKEN_FILE, a shared credentials file "
                   "(AWS_SHARED_CREDENTIALS_FILE / ~/.aws/credentials) or "
                   "AWS_CONTAINER_CREDENTIALS_FULL_URI/_RELATIVE_URI");
}

Result<Credentials> CredentialProvider::Get() {
  std::lock_guard lock(mu_);
  if (have_) {
    bool expires = cached_.expiration != Clock::time_point{};
    if (!expires || Clock::now() + sources_.refresh_margin < cached_.expiration) {
      return cached_;
    }
    log::Debug("refreshing AWS credentials", {{"source", cached_.source}});
  }
  auto fresh = Resolve();
  if (!fresh) {
    // Keep using still-valid credentials if a refresh fails.
    if (have_ && Clock::now() < cached_.expiration) {
      log::Warn("AWS credential refresh failed; using the current credentials until they expire",
                {{"error", fresh.error().message}});
      return cached_;
    }
    return fresh;
  }
  cached_ = std::move(*fresh);
  have_ = true;
  return cached_;
}

void CredentialProvider::Invalidate() {
  std::lock_guard lock(mu_);
  have_ = false;
}

Result<Credentials> CredentialProvider::Resolve() {
  ASYA_ASSIGN_OR_RETURN(std::string source, SourceName());
  if (source == "static") {
    if (sources_.access_key_id.empty() || sources_.secret_access_key.empty()) {
      return MakeError(ErrorCode::kInvalidArgument,
                       "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY must be set together");
    }
    return Credentials{sources_.access_key_id,
                       sources_.secret_access_key,
                       sources_.session_token,
                       {},
                       "environment"};
  }
  if (source == "web-identity") {
    return FromWebIdentity();
  }
  if (source == "shared-file") {
    return FromSharedFile();
  }
  return FromContainer();
}

Result<Credentials> CredentialProvider::FromSharedFile() {
  ASYA_ASSIGN_OR_RETURN(std::string text,
                        ReadFile(sources_.shared_credentials_file, "AWS shared credentials file"));
  return ParseSharedCredentials(text, sources_.profile, sources_.shared_credentials_file);
}

Result<Credentials> CredentialProvider::FromWebIdentity() {
  if (sources_.role_arn.empty() || sources_.web_identity_token_file.empty()) {
    return MakeError(ErrorCode::kInvalidArgument,
                     "web identity needs both AWS_ROLE_ARN and AWS_WEB_IDENTITY_TOKEN_FILE");
  }
  ASYA_ASSIGN_OR_RETURN(std::string token,
                        ReadFile(sources_.web_identity_token_file, "AWS_WEB_IDENTITY_TOKEN_FILE"));
  token = std::string(TrimSpace(token));
  std::string endpoint = sources_.sts_endpoint.empty()
                             ? "https://sts." + sources_.region + ".amazonaws.com"
                             : sources_.sts_endpoint;
  std::string session = sources_.role_session_name.empty() ? "asya-" + std::to_string(::getpid())
                                                           : sources_.role_session_name;
  HttpRequest request;
  request.method = "POST";
  request.url = endpoint;
  request.headers = {{"Content-Type", "application/x-www-form-urlencoded; charset=utf-8"}};
  request.body = FormEncode({{"Action", "AssumeRoleWithWebIdentity"},
                             {"Version", "2011-06-15"},
                             {"RoleArn", sources_.role_arn},
                             {"RoleSessionName", session},
                             {"WebIdentityToken", token}});
  ASYA_ASSIGN_OR_RETURN(HttpResponse response, Perform(request));
  return ParseAssumeRoleResponse(response.status, response.body, sources_.role_arn);
}

Result<Credentials> CredentialProvider::FromContainer() {
  HttpRequest request;
  request.url = !sources_.container_credentials_full_uri.empty()
                    ? sources_.container_credentials_full_uri
                    : "http://169.254.170.2" + sources_.container_credentials_relative_uri;
  request.timeout = std::chrono::seconds(5);
  std::string auth = sources_.container_authorization_token;
  if (!sources_.container_authorization_token_file.empty()) {
    ASYA_ASSIGN_OR_RETURN(auth, ReadFile(sources_.container_authorization_token_file,
                                         "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"));
    auth = std::string(TrimSpace(auth));
  }
  if (!auth.empty()) {
    request.headers.emplace_back("Authorization", auth);
  }
  ASYA_ASSIGN_OR_RETURN(HttpResponse response, Perform(request));
  return ParseContainerCredentials(response.status, response.body, request.url);
}

}  // namespace asya::aws
