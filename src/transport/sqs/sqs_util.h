// Pure helpers of the SQS transport (validation, URL rewriting, error mapping); unit-tested.
#pragma once

#include <map>
#include <string>
#include <string_view>

#include "asya/base/result.h"

namespace asya::transport::sqs {

inline constexpr size_t kMaxMessageBytes = 262'144;  // SQS body + attributes limit
inline constexpr int kMaxDelaySeconds = 900;
inline constexpr int kMaxVisibilitySeconds = 43'200;
inline constexpr size_t kMaxBatchEntries = 10;
inline constexpr size_t kMaxAttributes = 10;

// SQS queue names: 1-80 characters of [A-Za-z0-9_-] (".fifo" suffix for FIFO queues).
Status ValidateQueueName(std::string_view name);

// SQS accepts #x9 #xA #xD, #x20-#xD7FF, #xE000-#xFFFD, #x10000-#x10FFFF as valid UTF-8, and at
// least one character.
Status ValidateBody(std::string_view body);

// Checks size, attribute count, names and values; returns the byte size SQS counts.
Result<size_t> ValidateMessage(std::string_view body,
                               const std::map<std::string, std::string>& headers);

// When an endpoint override is set and the URL SQS returned names another host (moto answers
// with the Host header it was reached by; LocalStack with its own hostname), replace scheme and
// host with the override's and keep the path.
std::string RewriteQueueUrl(std::string_view queue_url, std::string_view endpoint);

// Last path segment of a queue URL ("https://h/123/asya-x" -> "asya-x").
std::string QueueNameFromUrl(std::string_view queue_url);

// Milliseconds -> whole seconds, rounded up, clamped to [0, max].
int CeilSeconds(long long millis, int max);

// The error of a non-200 SQS response: code from the JSON `__type` (or the
// `x-amzn-query-error` header), mapped to an ErrorCode, with a message naming the action and
// queue.
struct ServiceError {
  std::string code;  // e.g. "QueueDoesNotExist"
  std::string message;
};
ServiceError ParseServiceError(long status, std::string_view body,
                               std::string_view query_error_header);
ErrorCode MapServiceError(long status, std::string_view code);
bool IsCredentialError(std::string_view code);

}  // namespace asya::transport::sqs
