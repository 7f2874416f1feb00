// SigV4 signer: the published AWS test-suite vectors, building blocks, and a differential test
// against botocore's SigV4Auth on randomised requests.
#include "asya/aws/sigv4.h"

#include <cstdio>
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "asya/base/base64.h"

namespace asya::aws {
namespace {

using nlohmann::json;

std::chrono::system_clock::time_point FromEpoch(int64_t seconds) {
  return std::chrono::system_clock::time_point(std::chrono::seconds(seconds));
}

HeaderList Pairs(const json& array) {
  HeaderList out;
  for (const auto& pair : array) {
    out.emplace_back(pair.at(0).get<std::string>(), pair.at(1).get<std::string>());
  }
  return out;
}

json LoadSuite() {
  std::ifstream in(std::string(ASYA_SQS_TESTDATA) + "/sigv4_suite.json");
  EXPECT_TRUE(in.good());
  return json::parse(in);
}

TEST(SigV4Suite, EveryPublishedVectorMatches) {
  json suite = LoadSuite();
  ASSERT_GE(suite["cases"].size(), 30u);
  for (const auto& c : suite["cases"]) {
    SCOPED_TRACE(c["name"].get<std::string>());
    std::string body = c["body"].get<std::string>();
    SigningRequest request{c["method"].get<std::string>(), c["path"].get<std::string>(),
                           Pairs(c["query"]), Pairs(c["headers"]), body};
    Credentials credentials{suite["access_key_id"].get<std::string>(),
                            suite["secret_access_key"].get<std::string>()};
    SigningParams params{suite["region"].get<std::string>(), suite["service"].get<std::string>(),
                         FromEpoch(suite["time"].get<int64_t>()), c["normalize"].get<bool>()};
    Signature sig = Sign(request, credentials, params);
    EXPECT_EQ(sig.authorization, c["authorization"].get<std::string>());
    if (c.contains("canonical_request")) {
      EXPECT_EQ(sig.canonical_request, c["canonical_request"].get<std::string>());
    }
    if (c.contains("string_to_sign")) {
      EXPECT_EQ(sig.string_to_sign, c["string_to_sign"].get<std::string>());
    }
  }
}

TEST(SigV4Suite, SessionTokenIsAddedAndSigned) {
  // get-vanilla-with-session-token, with the token coming from the credentials.
  SigningRequest request{"GET", "/", {}, {{"Host", "example.amazonaws.com"}}, ""};
  Credentials credentials{"AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
                          "6e86291e8372ff2a2260956d9b8aae1d763fbf315fa00fa31553b73ebf194267"};
  Signature sig = Sign(request, credentials, {"us-east-1", "service", FromEpoch(1440938160)});
  EXPECT_EQ(sig.signature, "07ec1639c89043aa0e3e2de82b96708f198cceab042d4a97044c66dd9f74e7f8");
  ASSERT_EQ(sig.added_headers.size(), 3u);
  EXPECT_EQ(sig.added_headers[0],
            (std::pair<std::string, std::string>{"X-Amz-Date", "20150830T123600Z"}));
  EXPECT_EQ(sig.added_headers[1].first, "X-Amz-Security-Token");
  EXPECT_EQ(sig.added_headers[2].first, "Authorization");
}

TEST(SigV4, ContentSha256HeaderIsOptIn) {
  SigningRequest request{"PUT", "/bucket/key", {}, {{"Host", "s3.amazonaws.com"}}, "abc"};
  Credentials credentials{"AK", "SK"};
  SigningParams params{"us-east-1", "s3", FromEpoch(1440938160), false, true};
  Signature sig = Sign(request, credentials, params);
  EXPECT_NE(sig.authorization.find("SignedHeaders=host;x-amz-content-sha256;x-amz-date"),
            std::string::npos);
  EXPECT_EQ(sig.added_headers[1].second, Sha256Hex("abc"));
}

TEST(SigV4, DerivedKeyMatchesTheDocumentedExample) {
  // AWS documentation example (iam, us-east-1, 20120215).
  EXPECT_EQ(HexEncode(DeriveSigningKey("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "20120215",
                                       "us-east-1", "iam")),
            "f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d");
}

TEST(SigV4, UriEncodingRules) {
  EXPECT_EQ(UriEncode("a b/c~d", true), "a%20b/c~d");
  EXPECT_EQ(UriEncode("a b/c~d", false), "a%20b%2Fc~d");
  EXPECT_EQ(UriEncode("\xE1\x88\xB4", false), "%E1%88%B4");
  EXPECT_EQ(UriEncode("+=&%", false), "%2B%3D%26%25");
}

TEST(SigV4, PathNormalisation) {
  EXPECT_EQ(NormalizePath(""), "/");
  EXPECT_EQ(NormalizePath("//"), "/");
  EXPECT_EQ(NormalizePath("/a/./b/../c/"), "/a/c/");
  EXPECT_EQ(NormalizePath("/../.."), "/");
  EXPECT_EQ(NormalizePath("/123456789012/asya-x"), "/123456789012/asya-x");
}

TEST(SigV4, QueryIsSortedByEncodedNameThenValue) {
  EXPECT_EQ(CanonicalQuery({{"b", "2"}, {"a", "z"}, {"a", "y"}, {"A", "0"}}), "A=0&a=y&a=z&b=2");
  EXPECT_EQ(CanonicalQuery({}), "");
}

TEST(SigV4, AmzDateIsUtc) {
  EXPECT_EQ(FormatAmzDate(FromEpoch(0)), "19700101T000000Z");
}

TEST(SigV4Differential, MatchesBotocoreOnRandomisedRequests) {
  constexpr int kCount = 500;
  std::string command = std::string(ASYA_PYTHON) + " " + ASYA_SQS_TESTDIR + "/botocore_sign.py " +
                        std::to_string(kCount) + " 20260101";
  FILE* pipe = popen(command.c_str(), "r");
  ASSERT_NE(pipe, nullptr);
  std::string output;
  char buf[65536];
  size_t n = 0;
  while ((n = fread(buf, 1, sizeof(buf), pipe)) > 0) {
    output.append(buf, n);
  }
  ASSERT_EQ(pclose(pipe), 0) << "botocore_sign.py failed: " << command;

  std::istringstream lines(output);
  std::string line;
  int compared = 0;
  while (std::getline(lines, line)) {
    json c = json::parse(line);
    std::string body = Base64Decode(c["body_b64"].get<std::string>()).value();
    SigningRequest request{c["method"].get<std::string>(), c["path"].get<std::string>(),
                           Pairs(c["query"]), Pairs(c["headers"]), body};
    Credentials credentials{c["access_key_id"].get<std::string>(),
                            c["secret_access_key"].get<std::string>(),
                            c["session_token"].get<std::string>()};
    SigningParams params{c["region"].get<std::string>(), c["service"].get<std::string>(),
                         FromEpoch(c["time"].get<int64_t>())};
    EXPECT_EQ(Sign(request, credentials, params).authorization,
              c["authorization"].get<std::string>())
        << line;
    ++compared;
  }
  EXPECT_EQ(compared, kCount);
}

}  // namespace
}  // namespace asya::aws
