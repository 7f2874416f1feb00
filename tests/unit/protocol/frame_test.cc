#include "asya/protocol/frame.h"

#include <string>

#include <gtest/gtest.h>

namespace asya::protocol {
namespace {

std::string Frame(std::string_view body) {
  auto f = EncodeFrame(body);
  EXPECT_TRUE(f.has_value());
  return f ? *f : std::string();
}

TEST(FrameCodec, HeaderIsBigEndian) {
  unsigned char h[kHeaderBytes];
  EncodeHeader(0x01020304u, h);
  EXPECT_EQ(h[0], 1);
  EXPECT_EQ(h[1], 2);
  EXPECT_EQ(h[2], 3);
  EXPECT_EQ(h[3], 4);
  auto n = DecodeHeader(h, UINT32_MAX);
  ASSERT_TRUE(n.has_value());
  EXPECT_EQ(*n, 0x01020304u);
}

TEST(FrameCodec, EncodeFrame) {
  EXPECT_EQ(Frame("{}"), std::string("\0\0\0\x02{}", 6));
  EXPECT_EQ(Frame(""), std::string("\0\0\0\0", 4));
}

TEST(FrameCodec, OversizeIsRejected) {
  auto f = EncodeFrame("12345", 4);
  ASSERT_FALSE(f.has_value());
  EXPECT_EQ(f.error().code, ErrorCode::kResourceExhausted);
  EXPECT_EQ(f.error().message,
            "message of 5 bytes exceeds the limit of 4 bytes (ASYA_MAX_MESSAGE_BYTES)");
  const unsigned char h[kHeaderBytes] = {0xFF, 0xFF, 0xFF, 0xFF};
  auto n = DecodeHeader(h, 1024);
  ASSERT_FALSE(n.has_value());
  EXPECT_EQ(n.error().code, ErrorCode::kResourceExhausted);
  EXPECT_EQ(n.error().message,
            "frame of 4294967295 bytes exceeds the limit of 1024 bytes (ASYA_MAX_MESSAGE_BYTES)");
}

TEST(FrameDecoder, WholeFrames) {
  FrameDecoder d;
  ASSERT_TRUE(d.Feed(Frame("one") + Frame("") + Frame("three")).has_value());
  std::string out;
  ASSERT_TRUE(d.Next(out));
  EXPECT_EQ(out, "one");
  ASSERT_TRUE(d.Next(out));
  EXPECT_EQ(out, "");
  ASSERT_TRUE(d.Next(out));
  EXPECT_EQ(out, "three");
  EXPECT_FALSE(d.Next(out));
  EXPECT_EQ(d.Pending(), 0u);
}

TEST(FrameDecoder, FedByteByByte) {
  const std::string stream = Frame("{\"a\":1}") + Frame("") + Frame(std::string(300, 'x'));
  FrameDecoder d;
  std::vector<std::string> frames;
  std::string out;
  for (char c : stream) {
    ASSERT_TRUE(d.Feed(std::string_view(&c, 1)).has_value());
    while (d.Next(out)) {
      frames.push_back(out);
    }
  }
  ASSERT_EQ(frames.size(), 3u);
  EXPECT_EQ(frames[0], "{\"a\":1}");
  EXPECT_EQ(frames[1], "");
  EXPECT_EQ(frames[2], std::string(300, 'x'));
  EXPECT_EQ(d.Pending(), 0u);
}

TEST(FrameDecoder, PartialFrameStaysPending) {
  FrameDecoder d;
  std::string f = Frame("hello");
  ASSERT_TRUE(d.Feed(std::string_view(f).substr(0, 6)).has_value());
  std::string out;
  EXPECT_FALSE(d.Next(out));
  EXPECT_EQ(d.Pending(), 6u);
  ASSERT_TRUE(d.Feed(std::string_view(f).substr(6)).has_value());
  ASSERT_TRUE(d.Next(out));
  EXPECT_EQ(out, "hello");
}

TEST(FrameDecoder, OversizeHeaderFailsOnFeedAndStaysFailed) {
  FrameDecoder d(16);
  ASSERT_TRUE(d.Feed(std::string("\0\0", 2)).has_value());
  auto s = d.Feed(std::string("\0\x11", 2));  // completes a header declaring 17 bytes
  ASSERT_FALSE(s.has_value());
  EXPECT_EQ(s.error().code, ErrorCode::kResourceExhausted);
  EXPECT_TRUE(d.Failed());
  std::string out;
  EXPECT_FALSE(d.Next(out));
  auto again = d.Feed("x");
  ASSERT_FALSE(again.has_value());
  EXPECT_EQ(again.error().code, ErrorCode::kFailedPrecondition);
}

TEST(FrameDecoder, OversizeSecondFrameInOneFeed) {
  FrameDecoder d(16);
  std::string bytes = Frame("ok") + std::string("\x7F\0\0\0", 4);
  auto s = d.Feed(bytes);
  ASSERT_FALSE(s.has_value());
  EXPECT_EQ(s.error().code, ErrorCode::kResourceExhausted);
}

TEST(FrameDecoder, FrameAtExactLimit) {
  FrameDecoder d(5);
  ASSERT_TRUE(d.Feed(Frame("12345")).has_value());
  std::string out;
  ASSERT_TRUE(d.Next(out));
  EXPECT_EQ(out, "12345");
}

}  // namespace
}  // namespace asya::protocol
