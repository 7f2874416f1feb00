#include "transport/sqs/sqs_util.h"

#include <algorithm>
#include <array>
#include <cstdio>

#include <nlohmann/json.hpp>

#include "asya/aws/http.h"

namespace asya::transport::sqs {
namespace {

bool IsAnyOf(std::string_view code, std::initializer_list<std::string_view> codes) {
  return std::find(codes.begin(), codes.end(), code) != codes.end();
}

std::string CodePoint(uint32_t cp) {
  char buf[16];
  std::snprintf(buf, sizeof(buf), "U+%04X", cp);
  return buf;
}

}  // namespace

Status ValidateQueueName(std::string_view name) {
  std::string_view base = name;
  if (base.size() > 5 && base.substr(base.size() - 5) == ".fifo") {
    base.remove_suffix(5);
  }
  bool chars_ok = std::all_of(base.begin(), base.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_';
  });
  if (name.empty() || name.size() > 80 || base.empty() || !chars_ok) {
    return MakeError(ErrorCode::kInvalidArgument,
                     "queue name '" + std::string(name) +
                         "' is not a valid SQS name (1-80 characters of A-Z a-z 0-9 - _)");
  }
  return Ok();
}

Status ValidateBody(std::string_view body) {
  if (body.empty()) {
    return MakeError(ErrorCode::kInvalidArgument,
                     "SQS cannot carry an empty message body (at least 1 character)");
  }
  size_t i = 0;
  while (i < body.size()) {
    auto c = static_cast<unsigned char>(body[i]);
    uint32_t cp = 0;
    size_t len = 0;
    if (c < 0x80) {
      cp = c;
      len = 1;
    } else if ((c & 0xE0) == 0xC0) {
      cp = c & 0x1F;
      len = 2;
    } else if ((c & 0xF0) == 0xE0) {
      cp = c & 0x0F;
      len = 3;
    } else if ((c & 0xF8) == 0xF0) {
      cp = c & 0x07;
      len = 4;
    } else {
      return MakeError(ErrorCode::kInvalidArgument, "message body is not valid UTF-8 at byte " +
                                                        std::to_string(i) +
                                                        " (SQS carries Unicode text only)");
    }
    if (i + len > body.size()) {
      return MakeError(
          ErrorCode::kInvalidArgument,
          "message body is not valid UTF-8 at byte " + std::to_string(i) + " (truncated sequence)");
    }
    for (size_t k = 1; k < len; ++k) {
      auto cc = static_cast<unsigned char>(body[i + k]);
      if ((cc & 0xC0) != 0x80) {
        return MakeError(ErrorCode::kInvalidArgument,
                         "message body is not valid UTF-8 at byte " + std::to_string(i));
      }
      cp = (cp << 6) | (cc & 0x3F);
    }
    static constexpr std::array<uint32_t, 5> kMinForLen = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < kMinForLen[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
      return MakeError(ErrorCode::kInvalidArgument, "message body is not valid UTF-8 at byte " +
                                                        std::to_string(i) +
                                                        " (overlong or out-of-range sequence)");
    }
    bool allowed = cp == 0x9 || cp == 0xA || cp == 0xD || (cp >= 0x20 && cp <= 0xD7FF) ||
                   (cp >= 0xE000 && cp <= 0xFFFD) || cp >= 0x10000;
    if (!allowed) {
      return MakeError(ErrorCode::kInvalidArgument, "message body contains " + CodePoint(cp) +
                                                        " at byte " + std::to_string(i) +
                                                        ", which SQS does not accept");
    }
    i += len;
  }
  return Ok();
}

Result<size_t> ValidateMessage(std::string_view body,
                               const std::map<std::string, std::string>& headers) {
  size_t size = body.size();
  for (const auto& [name, value] : headers) {
    size += name.size() + value.size() + 6;  // + DataType "String"
  }
  if (size > kMaxMessageBytes) {
    return MakeError(ErrorCode::kInvalidArgument, "message of " + std::to_string(size) +
                                                      " bytes exceeds the SQS limit of " +
                                                      std::to_string(kMaxMessageBytes) + " bytes");
  }
  ASYA_RETURN_IF_ERROR(ValidateBody(body));
  if (headers.size() > kMaxAttributes) {
    return MakeError(
        ErrorCode::kInvalidArgument,
        std::to_string(headers.size()) + " headers exceed the SQS limit of 10 message attributes");
  }
  for (const auto& [name, value] : headers) {
    bool name_ok = !name.empty() && name.size() <= 256 && name.front() != '.' &&
                   name.back() != '.' && name.find("..") == std::string::npos &&
                   std::all_of(name.begin(), name.end(), [](char c) {
                     return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                            (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.';
                   });
    std::string lower = name;
    std::transform(lower.begin(), lower.end(), lower.begin(), ::tolower);
    if (!name_ok || lower.rfind("aws.", 0) == 0 || lower.rfind("amazon.", 0) == 0) {
      return MakeError(ErrorCode::kInvalidArgument,
                       "header '" + name + "' is not a valid SQS message attribute name");
    }
    if (value.empty()) {
      return MakeError(ErrorCode::kInvalidArgument,
                       "header '" + name + "' is empty; SQS message attributes need a value");
    }
    auto valid = ValidateBody(value);
    if (!valid) {
      return MakeError(ErrorCode::kInvalidArgument,
                       "header '" + name + "': " + valid.error().message);
    }
  }
  return size;
}

std::string RewriteQueueUrl(std::string_view queue_url, std::string_view endpoint) {
  if (endpoint.empty()) {
    return std::string(queue_url);
  }
  auto url = aws::ParseUrl(queue_url);
  auto ep = aws::ParseUrl(endpoint);
  if (!url || !ep || (url->scheme == ep->scheme && url->authority == ep->authority)) {
    return std::string(queue_url);
  }
  return ep->scheme + "://" + ep->authority + url->path;
}

std::string QueueNameFromUrl(std::string_view queue_url) {
  while (!queue_url.empty() && queue_url.back() == '/') {
    queue_url.remove_suffix(1);
  }
  size_t slash = queue_url.rfind('/');
  return std::string(slash == std::string_view::npos ? queue_url : queue_url.substr(slash + 1));
}

int CeilSeconds(long long millis, int max) {
  if (millis <= 0) {
    return 0;
  }
  long long seconds = (millis + 999) / 1000;
  return static_cast<int>(std::min<long long>(seconds, max));
}

ServiceError ParseServiceError(long status, std::string_view body,
                               std::string_view query_error_header) {
  ServiceError out;
  nlohmann::json doc = nlohmann::json::parse(body, nullptr, false);
  if (doc.is_object()) {
    if (doc.contains("__type") && doc["__type"].is_string()) {
      out.code = doc["__type"].get<std::string>();
      size_t hash = out.code.rfind('#');
      if (hash != std::string::npos) {
        out.code = out.code.substr(hash + 1);
      }
    }
    for (const char* key : {"message", "Message"}) {
      if (doc.contains(key) && doc[key].is_string()) {
        out.message = doc[key].get<std::string>();
      }
    }
  }
  if (!query_error_header.empty()) {
    // "AWS.SimpleQueueService.NonExistentQueue;Sender"
    std::string_view query_code = query_error_header.substr(0, query_error_header.find(';'));
    if (out.code.empty()) {
      out.code = std::string(query_code);
    } else if (query_code != out.code) {
      out.code += " (" + std::string(query_code) + ")";
    }
  }
  if (out.code.empty()) {
    out.code = "HTTP " + std::to_string(status);
  }
  if (out.message.empty() && !doc.is_object()) {
    out.message = std::string(body.substr(0, 200));
  }
  return out;
}

bool IsCredentialError(std::string_view code) {
  std::string_view base = code.substr(0, code.find(' '));
  return IsAnyOf(
      base, {"InvalidClientTokenId", "UnrecognizedClientException", "SignatureDoesNotMatch",
             "IncompleteSignature", "MissingAuthenticationToken", "ExpiredToken", "InvalidSecurity",
             "RequestExpired", "AccessDenied", "AccessDeniedException", "InvalidAccessKeyId"});
}

ErrorCode MapServiceError(long status, std::string_view code) {
  std::string_view base = code.substr(0, code.find(' '));
  if (IsAnyOf(base, {"QueueDoesNotExist", "AWS.SimpleQueueService.NonExistentQueue"})) {
    return ErrorCode::kNotFound;
  }
  if (IsAnyOf(base, {"QueueAlreadyExists", "QueueNameExists"})) {
    return ErrorCode::kAlreadyExists;
  }
  if (IsCredentialError(base)) {
    return ErrorCode::kPermissionDenied;
  }
  if (IsAnyOf(base, {"MessageNotInflight"})) {
    return ErrorCode::kFailedPrecondition;
  }
  if (IsAnyOf(base, {"ThrottlingException", "RequestThrottled", "OverLimit", "ServiceUnavailable",
                     "InternalError", "InternalFailure", "KmsThrottled", "PurgeQueueInProgress",
                     "AWS.SimpleQueueService.PurgeQueueInProgress"}) ||
      status >= 500 || status == 429) {
    return ErrorCode::kUnavailable;
  }
  return ErrorCode::kInvalidArgument;
}

}  // namespace asya::transport::sqs
