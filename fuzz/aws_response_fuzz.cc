// Fuzzes what the SQS transport and the AWS credential chain read from outside: STS
// AssumeRoleWithWebIdentity answers (XML), container credentials answers (JSON), shared
// credentials files (INI), SQS error responses (JSON body and x-amzn-query-error header) and the
// queue URLs SQS returns, plus the checks a message body and its attributes go through before
// they are sent.
//
// Invariants:
// - Nothing crashes (no signed overflow on far-away expiration times, no out-of-range reads).
// - Accepted credentials have both keys; every error has a message.
// - A service error always has a code; MapServiceError is total.
// - QueueNameFromUrl/RewriteQueueUrl keep the last path segment.
// - ValidateMessage accepts only bodies ValidateBody accepts.
#include <algorithm>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <utility>

#include "asya/aws/credentials.h"
#include "fuzz_check.h"
#include "transport/sqs/sqs_util.h"

namespace {

void CheckCredentials(const asya::Result<asya::aws::Credentials>& c) {
  if (c) {
    FUZZ_CHECK(!c->access_key_id.empty() && !c->secret_access_key.empty());
  } else {
    FUZZ_CHECK(!c.error().message.empty());
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  namespace sqs = asya::transport::sqs;
  const std::string_view in(reinterpret_cast<const char*>(data), size);

  for (long status : {200L, 400L, 403L}) {
    CheckCredentials(asya::aws::ParseAssumeRoleResponse(status, in, "arn:aws:iam::1:role/r"));
    CheckCredentials(asya::aws::ParseContainerCredentials(status, in, "http://169.254.170.2/c"));
  }
  CheckCredentials(asya::aws::ParseSharedCredentials(in, "default", "credentials"));
  CheckCredentials(asya::aws::ParseSharedCredentials(in, "prod", "credentials"));

  // The first line is the x-amzn-query-error header, the rest the body (and the whole input
  // alone as the body).
  const size_t nl = in.find('\n');
  const std::string_view header = nl == std::string_view::npos ? "" : in.substr(0, nl);
  const std::string_view body = nl == std::string_view::npos ? in : in.substr(nl + 1);
  for (long status : {400L, 403L, 500L}) {
    for (auto [b, h] : {std::pair{in, std::string_view()}, std::pair{body, header}}) {
      sqs::ServiceError e = sqs::ParseServiceError(status, b, h);
      FUZZ_CHECK(!e.code.empty());
      (void)sqs::MapServiceError(status, e.code);
      (void)sqs::IsCredentialError(e.code);
    }
  }

  // Queue URLs as SQS returns them.
  const std::string name = sqs::QueueNameFromUrl(in);
  FUZZ_CHECK(name.find('/') == std::string::npos);
  const std::string rewritten = sqs::RewriteQueueUrl(in, "http://127.0.0.1:5000");
  // (For URLs with a path and no query: a bare "https://host" names no queue.)
  const size_t host = in.find("://");
  if (in.find_first_of("?#") == std::string_view::npos && host != std::string_view::npos &&
      in.find('/', host + 3) != std::string_view::npos) {
    FUZZ_CHECK(sqs::QueueNameFromUrl(rewritten) == name || rewritten == in);
  }
  (void)sqs::ValidateQueueName(name);

  // Outgoing messages: body plus attributes taken from the header line.
  std::map<std::string, std::string> attributes;
  if (!header.empty()) {
    const size_t cut = std::min<size_t>(64, header.size());
    attributes[std::string(header.substr(0, cut))] = std::string(header.substr(cut));
  }
  auto checked = sqs::ValidateMessage(body, attributes);
  if (checked) {
    FUZZ_CHECK(sqs::ValidateBody(body).has_value());
    FUZZ_CHECK(*checked >= body.size());
  } else {
    FUZZ_CHECK(!checked.error().message.empty());
  }
  (void)sqs::CeilSeconds(static_cast<long long>(size) * 997 - 5000, sqs::kMaxDelaySeconds);
  return 0;
}
