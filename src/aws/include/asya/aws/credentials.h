// AWS credentials: where they may come from (CredentialSources, filled by a program from the
// environment) and a thread-safe provider that resolves, caches and refreshes them.
//
// Resolution order (the first configured source wins; a configured source that fails is an error,
// never a silent fall-through):
//   1. static keys        CredentialSources::access_key_id/secret_access_key/session_token
//                         (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN)
//   2. web identity       role_arn + web_identity_token_file (AWS_ROLE_ARN,
//                         AWS_WEB_IDENTITY_TOKEN_FILE, AWS_ROLE_SESSION_NAME) -> STS
//                         AssumeRoleWithWebIdentity (unsigned) at sts_endpoint
//   3. shared file        shared_credentials_file (AWS_SHARED_CREDENTIALS_FILE, default
//                         $HOME/.aws/credentials), section `profile` (AWS_PROFILE, "default")
//   4. container          container_credentials_full_uri (AWS_CONTAINER_CREDENTIALS_FULL_URI) or
//                         http://169.254.170.2 + container_credentials_relative_uri
//                         (AWS_CONTAINER_CREDENTIALS_RELATIVE_URI), Authorization header from
//                         container_authorization_token(_file)
//                         (AWS_CONTAINER_AUTHORIZATION_TOKEN(_FILE); the file is re-read on
//                         refresh)
// Temporary credentials (web identity, container) are refreshed `refresh_margin` before they
// expire; Get() then blocks the caller for the refresh.
#pragma once

#include <chrono>
#include <memory>
#include <mutex>
#include <string>

#include "asya/aws/sigv4.h"
#include "asya/base/result.h"

namespace asya::aws {

struct CredentialSources {
  std::string access_key_id;
  std::string secret_access_key;
  std::string session_token;

  std::string role_arn;
  std::string web_identity_token_file;
  std::string role_session_name;  // default "asya-<pid>"
  std::string sts_endpoint;       // default https://sts.<region>.amazonaws.com
  std::string region = "us-east-1";

  std::string shared_credentials_file;  // empty: not used (the program fills the default path)
  std::string profile = "default";

  std::string container_credentials_full_uri;
  std::string container_credentials_relative_uri;
  std::string container_authorization_token;
  std::string container_authorization_token_file;

  std::chrono::milliseconds refresh_margin{std::chrono::minutes(5)};
};

// Parses an AWS shared credentials file (INI) and returns the keys of `profile`.
// Errors name the file, the line and the problem.
Result<Credentials> ParseSharedCredentials(std::string_view text, std::string_view profile,
                                           std::string_view file_name);

// The credentials in an STS AssumeRoleWithWebIdentity answer (HTTP `status`, XML `body`).
// Errors: kPermissionDenied for a non-200 answer (with STS's Code and Message, naming
// `role_arn`), kInternal when the keys are missing, kInvalidArgument for a bad Expiration.
Result<Credentials> ParseAssumeRoleResponse(long status, std::string_view body,
                                            std::string_view role_arn);

// The credentials a container credentials endpoint answered (HTTP `status`, JSON `body`):
// AccessKeyId and SecretAccessKey strings, optional Token and Expiration. Errors name `url`.
Result<Credentials> ParseContainerCredentials(long status, std::string_view body,
                                              std::string_view url);

class CredentialProvider {
 public:
  explicit CredentialProvider(CredentialSources sources);

  // Returns valid credentials, resolving or refreshing them when needed. Thread-safe.
  Result<Credentials> Get();
  // Forgets cached credentials (e.g. after the service rejected them).
  void Invalidate();
  // Which source Get() uses ("static", "web-identity", "shared-file", "container") or an error
  // when none is configured.
  [[nodiscard]] Result<std::string> SourceName() const;

 private:
  Result<Credentials> Resolve();
  Result<Credentials> FromWebIdentity();
  Result<Credentials> FromSharedFile();
  Result<Credentials> FromContainer();

  const CredentialSources sources_;
  std::mutex mu_;
  bool have_ = false;
  Credentials cached_;
};

using CredentialProviderPtr = std::shared_ptr<CredentialProvider>;

}  // namespace asya::aws
