// Pure helpers of the SQS transport: validation errors, URL rewriting, error mapping.
#include "transport/sqs/sqs_util.h"

#include <vector>

#include <gtest/gtest.h>

namespace asya::transport::sqs {
namespace {

TEST(SqsQueueName, ValidAndInvalid) {
  EXPECT_TRUE(ValidateQueueName("asya-echo"));
  EXPECT_TRUE(ValidateQueueName("asya_echo-dlq"));
  EXPECT_TRUE(ValidateQueueName("orders.fifo"));
  EXPECT_TRUE(ValidateQueueName(std::string(80, 'a')));
  for (const std::string& bad :
       std::vector<std::string>{"", "asya.echo", "asya echo", "asya/x", std::string(81, 'a')}) {
    auto s = ValidateQueueName(bad);
    ASSERT_FALSE(s) << bad;
    EXPECT_EQ(s.error().code, ErrorCode::kInvalidArgument);
    EXPECT_EQ(s.error().message, "queue name '" + bad +
                                     "' is not a valid SQS name (1-80 characters of A-Z a-z 0-9 "
                                     "- _)");
  }
}

TEST(SqsBody, AcceptsUnicodeText) {
  EXPECT_TRUE(ValidateBody("{\"id\":\"1\"}"));
  EXPECT_TRUE(ValidateBody("tab\there\nnew line\r"));
  EXPECT_TRUE(ValidateBody("\xE1\x88\xB4 \xF0\x9F\x98\x80 \xEF\xBF\xBD"));  // ሴ 😀 U+FFFD
}

TEST(SqsBody, RejectsWhatSqsRejectsWithTheOffset) {
  auto empty = ValidateBody("");
  ASSERT_FALSE(empty);
  EXPECT_EQ(empty.error().message, "SQS cannot carry an empty message body (at least 1 character)");
  auto control = ValidateBody("ab\x01");
  ASSERT_FALSE(control);
  EXPECT_EQ(control.error().message,
            "message body contains U+0001 at byte 2, which SQS does not accept");
  auto invalid = ValidateBody("ok\xFF");
  ASSERT_FALSE(invalid);
  EXPECT_EQ(invalid.error().message,
            "message body is not valid UTF-8 at byte 2 (SQS carries Unicode text only)");
  auto truncated = ValidateBody("x\xE1\x88");
  ASSERT_FALSE(truncated);
  EXPECT_EQ(truncated.error().message,
            "message body is not valid UTF-8 at byte 1 (truncated sequence)");
  auto overlong = ValidateBody("\xC0\xAF");
  ASSERT_FALSE(overlong);
  EXPECT_EQ(overlong.error().message,
            "message body is not valid UTF-8 at byte 0 (overlong or out-of-range sequence)");
  auto surrogate = ValidateBody("\xED\xA0\x80");
  ASSERT_FALSE(surrogate);
  auto nonchar = ValidateBody("\xEF\xBF\xBE");  // U+FFFE
  ASSERT_FALSE(nonchar);
  EXPECT_EQ(nonchar.error().message,
            "message body contains U+FFFE at byte 0, which SQS does not accept");
}

TEST(SqsMessage, SizeLimitCountsBodyAndAttributes) {
  std::string body(kMaxMessageBytes, 'a');
  auto at_limit = ValidateMessage(body, {});
  ASSERT_TRUE(at_limit);
  EXPECT_EQ(*at_limit, kMaxMessageBytes);
  auto over = ValidateMessage(body + "a", {});
  ASSERT_FALSE(over);
  EXPECT_EQ(over.error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(over.error().message, "message of 262145 bytes exceeds the SQS limit of 262144 bytes");
  auto with_header = ValidateMessage(body.substr(5), {{"k", "v"}});
  ASSERT_FALSE(with_header);
  EXPECT_EQ(with_header.error().message,
            "message of 262147 bytes exceeds the SQS limit of 262144 bytes");
}

TEST(SqsMessage, HeaderRules) {
  EXPECT_TRUE(ValidateMessage("b", {{"x-asya-dlq-reason", "max deliveries"}, {"a.b_c", "1"}}));
  auto empty = ValidateMessage("b", {{"x-asya-attempt", ""}});
  ASSERT_FALSE(empty);
  EXPECT_EQ(empty.error().message,
            "header 'x-asya-attempt' is empty; SQS message attributes need a value");
  auto bad_name = ValidateMessage("b", {{"has space", "v"}});
  ASSERT_FALSE(bad_name);
  EXPECT_EQ(bad_name.error().message,
            "header 'has space' is not a valid SQS message attribute name");
  EXPECT_FALSE(ValidateMessage("b", {{"AWS.trace", "v"}}));
  EXPECT_FALSE(ValidateMessage("b", {{"a..b", "v"}}));
  std::map<std::string, std::string> eleven;
  for (int i = 0; i < 11; ++i) {
    eleven["h" + std::to_string(i)] = "v";
  }
  auto too_many = ValidateMessage("b", eleven);
  ASSERT_FALSE(too_many);
  EXPECT_EQ(too_many.error().message, "11 headers exceed the SQS limit of 10 message attributes");
  auto bad_value = ValidateMessage("b", {{"k", "\x02"}});
  ASSERT_FALSE(bad_value);
  EXPECT_EQ(bad_value.error().message,
            "header 'k': message body contains U+0002 at byte 0, which SQS does not accept");
}

TEST(SqsQueueUrl, RewrittenToTheEndpointHost) {
  EXPECT_EQ(RewriteQueueUrl("http://localhost:5001/123456789012/asya-x", "http://127.0.0.1:5001"),
            "http://127.0.0.1:5001/123456789012/asya-x");
  EXPECT_EQ(
      RewriteQueueUrl("https://sqs.us-east-1.amazonaws.com/1/asya-x", "http://localstack:4566/"),
      "http://localstack:4566/1/asya-x");
  // Same host, or no override: unchanged.
  EXPECT_EQ(RewriteQueueUrl("http://127.0.0.1:5001/1/q", "http://127.0.0.1:5001"),
            "http://127.0.0.1:5001/1/q");
  EXPECT_EQ(RewriteQueueUrl("https://sqs.eu-west-1.amazonaws.com/1/q", ""),
            "https://sqs.eu-west-1.amazonaws.com/1/q");
  EXPECT_EQ(QueueNameFromUrl("http://h/123456789012/asya-x"), "asya-x");
  EXPECT_EQ(QueueNameFromUrl("http://h/123456789012/asya-x/"), "asya-x");
}

TEST(SqsSeconds, RoundUpAndClamp) {
  EXPECT_EQ(CeilSeconds(0, 900), 0);
  EXPECT_EQ(CeilSeconds(-5, 900), 0);
  EXPECT_EQ(CeilSeconds(1, 900), 1);
  EXPECT_EQ(CeilSeconds(1000, 900), 1);
  EXPECT_EQ(CeilSeconds(1001, 900), 2);
  EXPECT_EQ(CeilSeconds(10'000'000, 900), 900);
}

TEST(SqsErrors, JsonTypeAndQueryErrorHeader) {
  ServiceError e = ParseServiceError(
      400,
      R"({"__type":"com.amazonaws.sqs#QueueDoesNotExist","message":"The specified queue does not exist."})",
      "AWS.SimpleQueueService.NonExistentQueue;Sender");
  EXPECT_EQ(e.code, "QueueDoesNotExist (AWS.SimpleQueueService.NonExistentQueue)");
  EXPECT_EQ(e.message, "The specified queue does not exist.");
  EXPECT_EQ(MapServiceError(400, e.code), ErrorCode::kNotFound);

  ServiceError header_only =
      ParseServiceError(400, "", "AWS.SimpleQueueService.NonExistentQueue;Sender");
  EXPECT_EQ(header_only.code, "AWS.SimpleQueueService.NonExistentQueue");
  EXPECT_EQ(MapServiceError(400, header_only.code), ErrorCode::kNotFound);

  ServiceError html = ParseServiceError(502, "<html>bad gateway</html>", "");
  EXPECT_EQ(html.code, "HTTP 502");
  EXPECT_EQ(html.message, "<html>bad gateway</html>");
  EXPECT_EQ(MapServiceError(502, html.code), ErrorCode::kUnavailable);
}

TEST(SqsErrors, Mapping) {
  EXPECT_EQ(MapServiceError(403, "InvalidClientTokenId"), ErrorCode::kPermissionDenied);
  EXPECT_EQ(MapServiceError(400, "SignatureDoesNotMatch"), ErrorCode::kPermissionDenied);
  EXPECT_EQ(MapServiceError(400, "ExpiredToken"), ErrorCode::kPermissionDenied);
  EXPECT_TRUE(IsCredentialError("UnrecognizedClientException"));
  EXPECT_FALSE(IsCredentialError("QueueDoesNotExist"));
  EXPECT_EQ(MapServiceError(400, "QueueAlreadyExists"), ErrorCode::kAlreadyExists);
  EXPECT_EQ(MapServiceError(400, "ReceiptHandleIsInvalid"), ErrorCode::kInvalidArgument);
  EXPECT_EQ(MapServiceError(400, "MessageNotInflight"), ErrorCode::kFailedPrecondition);
  EXPECT_EQ(MapServiceError(400, "ThrottlingException"), ErrorCode::kUnavailable);
  EXPECT_EQ(MapServiceError(400, "AWS.SimpleQueueService.PurgeQueueInProgress"),
            ErrorCode::kUnavailable);
  EXPECT_EQ(MapServiceError(500, "InternalError"), ErrorCode::kUnavailable);
}

}  // namespace
}  // namespace asya::transport::sqs
