// The URL helpers against known vectors.
#include "asya/http/url.h"

#include <gtest/gtest.h>

namespace asya::http {
namespace {

TEST(PercentEncode, KnownVectors) {
  EXPECT_EQ(PercentEncode(""), "");
  EXPECT_EQ(PercentEncode("AZaz09-._~"), "AZaz09-._~");
  EXPECT_EQ(PercentEncode("a b/c~d"), "a%20b%2Fc~d");
  EXPECT_EQ(PercentEncode("a b/c~d", /*keep_slash=*/true), "a%20b/c~d");
  EXPECT_EQ(PercentEncode("+=&%?#@:"), "%2B%3D%26%25%3F%23%40%3A");
  EXPECT_EQ(PercentEncode("\xE1\x88\xB4"), "%E1%88%B4");  // UTF-8 bytes, upper-case hex
  EXPECT_EQ(PercentEncode(std::string("\x00\xff", 2)), "%00%FF");
  EXPECT_EQ(PercentEncode("/"), "%2F");  // RabbitMQ's default vhost in a management path
}

TEST(FormEncode, JoinsEncodedPairs) {
  EXPECT_EQ(FormEncode({}), "");
  EXPECT_EQ(FormEncode({{"Action", "Assume Role"}, {"a&b", "c=d"}}),
            "Action=Assume%20Role&a%26b=c%3Dd");
}

TEST(ParseUrl, SplitsAndRejects) {
  auto u = ParseUrl("https://sqs.us-east-1.amazonaws.com:443/123/q?Action=x#frag");
  ASSERT_TRUE(u.has_value());
  EXPECT_EQ(u->scheme, "https");
  EXPECT_EQ(u->authority, "sqs.us-east-1.amazonaws.com:443");
  EXPECT_EQ(u->host, "sqs.us-east-1.amazonaws.com");
  EXPECT_EQ(u->path, "/123/q");
  EXPECT_EQ(u->query, "Action=x");
  EXPECT_EQ(ParseUrl("http://[::1]:8080")->host, "[::1]");
  EXPECT_EQ(ParseUrl("http://h")->path, "/");
  for (const char* bad : {"h/path", "ftp://h/", "http://", "http://u:p@h/"}) {
    auto r = ParseUrl(bad);
    ASSERT_FALSE(r.has_value()) << bad;
    EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument);
  }
}

}  // namespace
}  // namespace asya::http
