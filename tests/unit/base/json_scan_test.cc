// The one JSON scanner (json_scan.h) and the text helpers beside it (json_text.h).
#include "asya/base/json_scan.h"

#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace asya::json {
namespace {

TEST(JsonScan, AcceptsValidDocuments) {
  for (std::string_view ok :
       {"0", "-0", "-0.5e+3", "1E9", "\"\\u00e9\\n\\/\"", " [ ] ", "{\"a\":[1,{\"b\":null}]}",
        "true", "false", "null", "\"\xe2\x82\xac\xf0\x9f\x98\x80\"", "\"\\ud83d\\ude00\"",
        " \t\r\n{}\n", "\"a long string of plain ascii characters\""}) {
    EXPECT_TRUE(Scan(ok).ok()) << ok;
  }
}

struct ErrorCase {
  std::string text;
  ErrorKind kind;
  size_t offset;
};

class JsonScanErrors : public testing::TestWithParam<ErrorCase> {};

TEST_P(JsonScanErrors, ReportKindAndOffset) {
  ScanResult r = Scan(GetParam().text);
  EXPECT_EQ(r.kind, GetParam().kind) << GetParam().text;
  EXPECT_EQ(r.offset, GetParam().offset) << GetParam().text;
}

INSTANTIATE_TEST_SUITE_P(
    All, JsonScanErrors,
    testing::Values(ErrorCase{"", ErrorKind::kExpectedValue, 0},
                    ErrorCase{"  ", ErrorKind::kExpectedValue, 2},
                    ErrorCase{"[1,,2]", ErrorKind::kExpectedValue, 3},
                    ErrorCase{"[1,2", ErrorKind::kExpectedCommaOrClose, 4},
                    ErrorCase{"{\"a\":1 2}", ErrorKind::kExpectedCommaOrClose, 7},
                    ErrorCase{"{} x", ErrorKind::kTrailingData, 3},
                    ErrorCase{"\"ab", ErrorKind::kUnterminatedString, 3},
                    ErrorCase{"tru", ErrorKind::kInvalidLiteral, 0},
                    ErrorCase{"[nul]", ErrorKind::kInvalidLiteral, 1},
                    ErrorCase{"NaN", ErrorKind::kNonFiniteConstant, 0},
                    ErrorCase{"[-Infinity]", ErrorKind::kNonFiniteConstant, 1},
                    ErrorCase{"01", ErrorKind::kNumberLeadingZero, 1},
                    ErrorCase{"1.", ErrorKind::kNumberNoFractionDigit, 2},
                    ErrorCase{"1e+", ErrorKind::kNumberNoExponentDigit, 3},
                    ErrorCase{"-", ErrorKind::kNumberNoDigit, 1},
                    ErrorCase{"\"a\tb\"", ErrorKind::kControlCharacter, 2},
                    ErrorCase{"\"\\x\"", ErrorKind::kInvalidEscape, 1},
                    ErrorCase{"\"\\u12\"", ErrorKind::kInvalidUnicodeEscape, 1},
                    ErrorCase{"\"\\udc00\"", ErrorKind::kLoneLowSurrogate, 1},
                    ErrorCase{"\"\\ud800\\u0041\"", ErrorKind::kUnpairedHighSurrogate, 1},
                    ErrorCase{"{1:2}", ErrorKind::kExpectedKey, 1},
                    ErrorCase{"{\"a\" 1}", ErrorKind::kExpectedColon, 5},
                    ErrorCase{"\"\xc3\x28\"", ErrorKind::kInvalidUtf8, 1},
                    ErrorCase{"[\xff]", ErrorKind::kInvalidUtf8, 1},
                    ErrorCase{"[\xc3\xa9]", ErrorKind::kExpectedValue, 1}));

TEST(JsonScan, ReportsTokenDepthAndContainer) {
  ScanResult r = Scan("{\"a\":[\"xy");
  EXPECT_EQ(r.kind, ErrorKind::kUnterminatedString);
  EXPECT_EQ(r.token, 6u);
  EXPECT_EQ(r.depth, 2u);
  EXPECT_FALSE(r.in_object);
  r = Scan("{\"a\":1 ]");
  EXPECT_EQ(r.kind, ErrorKind::kExpectedCommaOrClose);
  EXPECT_TRUE(r.in_object);
  EXPECT_EQ(r.depth, 1u);
}

TEST(JsonScan, Options) {
  ScanOptions lone;
  lone.allow_lone_surrogates = true;
  EXPECT_TRUE(Scan("\"\\udc00 \\ud800\"", lone).ok());

  ScanOptions shallow;
  shallow.max_depth = 3;
  EXPECT_TRUE(Scan("[[[]]]", shallow).ok());
  ScanResult r = Scan("[[{\"a\":[]}]]", shallow);
  EXPECT_EQ(r.kind, ErrorKind::kTooDeep);
  EXPECT_EQ(r.offset, 7u);
  std::string deep(kMaxScanDepth + 1, '[');
  EXPECT_EQ(Scan(deep).kind, ErrorKind::kTooDeep);

  ScanOptions trusted;  // UTF-8 checked by the caller: bytes inside strings are not looked at
  trusted.check_utf8 = false;
  EXPECT_TRUE(Scan("\"\xff\"", trusted).ok());
  ScanResult bad = Scan("\"abcdefgh\xe2\x82\"");
  EXPECT_EQ(bad.kind, ErrorKind::kInvalidUtf8);
  EXPECT_EQ(bad.utf8.offset, 9u);
  EXPECT_EQ(bad.utf8.length, 2u);
  EXPECT_EQ(bad.utf8.problem, Utf8Problem::kInvalidContinuation);
}

class Collect final : public ScanVisitor {
 public:
  void Member(size_t depth, std::string_view raw_key, std::string_view raw_value) override {
    seen.push_back(std::to_string(depth) + " " + std::string(raw_key) + "=" +
                   std::string(raw_value));
  }
  void Element(size_t depth, std::string_view raw_value) override {
    seen.push_back(std::to_string(depth) + " [" + std::string(raw_value) + "]");
  }
  std::vector<std::string> seen;
};

TEST(JsonScan, VisitorSeesShallowSpans) {
  Collect c;
  ScanOptions options;
  options.visit_depth = 2;
  ASSERT_TRUE(Scan(R"( {"a" : [1, {"x":2}] , "b":"s"} )", options, &c).ok());
  EXPECT_EQ(c.seen, (std::vector<std::string>{"2 [1]", R"(2 [{"x":2}])", R"(1 "a"=[1, {"x":2}])",
                                              R"(1 "b"="s")"}));
}

TEST(JsonScan, ReadingValidatedText) {
  std::vector<std::string> keys;
  std::vector<Kind> kinds;
  ForEachMember(R"({ "a" : [1,"]"] , "b\"":{"c":{}}, "n":-1.5e3 })",
                [&](std::string_view k, Value v) {
                  keys.emplace_back(k);
                  kinds.push_back(v.kind);
                });
  EXPECT_EQ(keys, (std::vector<std::string>{"\"a\"", "\"b\\\"\"", "\"n\""}));
  EXPECT_EQ(kinds, (std::vector<Kind>{Kind::kArray, Kind::kObject, Kind::kNumber}));
  size_t n = 0;
  ForEachElement("[ true , false,null ,\"x\"]", [&](Value) { ++n; });
  EXPECT_EQ(n, 4u);
  EXPECT_EQ(KindName(Kind::kTrue), "boolean");
  EXPECT_EQ(ParseInt("-123"), -123);
  EXPECT_FALSE(ParseInt("1.0").has_value());
  EXPECT_FALSE(ParseInt("1234567890123456789").has_value());
  EXPECT_TRUE(IsIntegerToken("-7"));
}

TEST(JsonText, Utf8Problems) {
  EXPECT_FALSE(FindInvalidUtf8("plain ascii text, long enough for the fast path").has_value());
  EXPECT_FALSE(FindInvalidUtf8("\xf0\x9f\x98\x80 \xc3\xa9").has_value());
  auto e = FindInvalidUtf8("abcdefghij\xed\xa0\x80");  // an encoded surrogate
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->offset, 10u);
  EXPECT_EQ(e->length, 1u);
  EXPECT_EQ(Utf8ProblemText(e->problem), "invalid continuation byte");
  e = FindInvalidUtf8("ab\xe2\x82");
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->length, 2u);
  EXPECT_EQ(Utf8ProblemText(e->problem), "unexpected end of data");
  e = FindInvalidUtf8("\x80");
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(Utf8ProblemText(e->problem), "invalid start byte");
  EXPECT_EQ(Utf8SequenceLength("a", 0), 1u);
  EXPECT_EQ(Utf8SequenceLength("\xf4\x90\x80\x80", 0), 0u);  // above U+10FFFF
}

TEST(JsonText, HexAndDecoding) {
  EXPECT_EQ(HexDigitValue('F'), 15);
  EXPECT_EQ(HexDigitValue('g'), -1);
  EXPECT_EQ(ParseHex4("00e9"), 0xe9);
  EXPECT_EQ(ParseHex4("12x4"), -1);
  EXPECT_EQ(DecodeJsonString(R"("a\"b\\c\u00e9\ud83d\ude00\/\b")"),
            "a\"b\\c\xc3\xa9\xf0\x9f\x98\x80/\b");
  EXPECT_FALSE(DecodeJsonString("5"));
  EXPECT_FALSE(DecodeJsonString(R"("\ud83d")"));
  EXPECT_EQ(DecodeJsonString(R"("\ud83dx\udc00")", LoneSurrogates::kReplace),
            "\xef\xbf\xbdx\xef\xbf\xbd");
  EXPECT_FALSE(DecodeJsonString(R"("\")"));
  EXPECT_FALSE(DecodeJsonString(R"("a"b")"));
  std::string scratch;
  EXPECT_EQ(JsonStringText(R"("plain")", scratch), "plain");
  EXPECT_EQ(JsonStringText(R"("t\u0061b")", scratch), "tab");
  std::string out;
  AppendUtf8(out, 0x1F600);
  EXPECT_EQ(out, "\xf0\x9f\x98\x80");
  out.clear();
  AppendJsonString(out, "q\"\n\x01\xff");
  EXPECT_EQ(out, "\"q\\\"\\n\\u0001\\ufffd\"");  // an invalid byte becomes \ufffd
}

}  // namespace
}  // namespace asya::json
