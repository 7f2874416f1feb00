#include <gtest/gtest.h>

#include "asya/base/duration.h"
#include "asya/base/log.h"
#include "asya/base/result.h"

namespace asya {
namespace {

TEST(Duration, ParsesGoStyleUnits) {
  EXPECT_EQ(ParseDuration("300ms").value(), Millis(300));
  EXPECT_EQ(ParseDuration("30s").value(), Millis(30'000));
  EXPECT_EQ(ParseDuration("5m").value(), Millis(300'000));
  EXPECT_EQ(ParseDuration("1h30m").value(), Millis(5'400'000));
  EXPECT_EQ(ParseDuration("1.5s").value(), Millis(1500));
  EXPECT_EQ(ParseDuration("2000us").value(), Millis(2));
}

TEST(Duration, BareNumberIsSeconds) {
  EXPECT_EQ(ParseDuration("5").value(), Millis(5000));
  EXPECT_EQ(ParseDuration("0").value(), Millis(0));
  EXPECT_EQ(ParseDuration("0.25").value(), Millis(250));
}

TEST(Duration, RejectsGarbageWithClearMessage) {
  for (const char* bad : {"", "abc", "5x", "-5s", "1m5", "ms"}) {
    auto r = ParseDuration(bad);
    ASSERT_FALSE(r.has_value()) << bad;
    EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument);
    EXPECT_NE(r.error().message.find("invalid duration"), std::string::npos);
  }
}

TEST(Duration, FormatsLikeGo) {
  EXPECT_EQ(FormatGoDuration(Millis(300'000)), "5m0s");
  EXPECT_EQ(FormatGoDuration(Millis(3000)), "3s");
  EXPECT_EQ(FormatGoDuration(Millis(1500)), "1.5s");
  EXPECT_EQ(FormatGoDuration(Millis(250)), "250ms");
  EXPECT_EQ(FormatGoDuration(Millis(3'723'000)), "1h2m3s");
  EXPECT_EQ(FormatGoDuration(Millis(0)), "0s");
}

Result<int> Half(int x) {
  if (x % 2 != 0) {
    return MakeError(ErrorCode::kInvalidArgument, "odd");
  }
  return x / 2;
}

Result<int> Quarter(int x) {
  ASYA_ASSIGN_OR_RETURN(int h, Half(x));
  ASYA_ASSIGN_OR_RETURN(int q, Half(h));
  return q;
}

TEST(Result, MacrosPropagateErrors) {
  EXPECT_EQ(Quarter(8).value(), 2);
  auto r = Quarter(6);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().ToString(), "invalid_argument: odd");
}

TEST(Log, ParsesLevelsAndFormats) {
  EXPECT_EQ(log::ParseLevel("WARNING").value(), log::Level::kWarn);
  EXPECT_EQ(log::ParseLevel("debug").value(), log::Level::kDebug);
  EXPECT_FALSE(log::ParseLevel("loud").has_value());
  EXPECT_EQ(log::ParseFormat("JSON").value(), log::Format::kJson);
  EXPECT_FALSE(log::ParseFormat("xml").has_value());
}

}  // namespace
}  // namespace asya
