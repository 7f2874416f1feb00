// Base64: the RFC 4648 test vectors both ways, and every malformed shape refused.
#include "asya/base/base64.h"

#include <gtest/gtest.h>

namespace asya {
namespace {

TEST(Base64, Rfc4648VectorsRoundTrip) {
  const std::pair<const char*, const char*> vectors[] = {{"", ""},
                                                         {"f", "Zg=="},
                                                         {"fo", "Zm8="},
                                                         {"foo", "Zm9v"},
                                                         {"foob", "Zm9vYg=="},
                                                         {"fooba", "Zm9vYmE="},
                                                         {"foobar", "Zm9vYmFy"}};
  for (const auto& [plain, encoded] : vectors) {
    EXPECT_EQ(Base64Encode(plain), encoded);
    EXPECT_EQ(Base64Decode(encoded), plain);
  }
}

TEST(Base64, EveryByteValueRoundTrips) {
  std::string all;
  for (int b = 0; b < 256; ++b) {
    all.push_back(char(b));
  }
  for (std::size_t n = 0; n <= all.size(); n += 37) {
    const std::string part = all.substr(0, n);
    EXPECT_EQ(Base64Decode(Base64Encode(part)), part) << n;
  }
  std::string out = "prefix:";
  AppendBase64(out, std::string_view("\xff\x00", 2));
  EXPECT_EQ(out, "prefix:/wA=");
}

TEST(Base64, MalformedInputIsRefused) {
  EXPECT_FALSE(Base64Decode("Zm9"));       // not a multiple of 4
  EXPECT_FALSE(Base64Decode("Zm9v\n"));    // whitespace
  EXPECT_FALSE(Base64Decode("Zm*v"));      // outside the alphabet
  EXPECT_FALSE(Base64Decode("Zm-_"));      // the URL alphabet is another encoding
  EXPECT_FALSE(Base64Decode("Z=9v"));      // padding inside a quantum
  EXPECT_FALSE(Base64Decode("Zg==Zm9v"));  // padding before the last quantum
  EXPECT_FALSE(Base64Decode("Zg=v"));      // data after padding
  EXPECT_FALSE(Base64Decode("Z==="));      // three padding characters
  EXPECT_FALSE(Base64Decode("Zh=="));      // stray bits in the last character
  EXPECT_FALSE(Base64Decode("Zm9="));      // likewise with one '='
}

}  // namespace
}  // namespace asya
