// The small shared helpers: string splitting and trimming, atomic file writes, time formats.
#include <filesystem>
#include <fstream>
#include <sstream>

#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "asya/base/file.h"
#include "asya/base/strings.h"
#include "asya/base/time_format.h"
#include "support/temp_dir.h"

namespace asya {
namespace {

namespace fs = std::filesystem;
using std::chrono::microseconds;
using std::chrono::milliseconds;
using std::chrono::nanoseconds;
using std::chrono::seconds;
using Strings = std::vector<std::string>;

TEST(TrimSpace, RemovesAsciiWhitespaceAtBothEnds) {
  EXPECT_EQ(TrimSpace(""), "");
  EXPECT_EQ(TrimSpace(" \t\r\n "), "");
  EXPECT_EQ(TrimSpace("\t a b \r\n"), "a b");
  EXPECT_EQ(TrimSpace("x"), "x");
}

TEST(SplitTrimmed, EdgeCases) {
  EXPECT_EQ(SplitTrimmed(""), Strings{});
  EXPECT_EQ(SplitTrimmed("  "), Strings{});
  EXPECT_EQ(SplitTrimmed(","), Strings{});
  EXPECT_EQ(SplitTrimmed("a"), Strings{"a"});
  EXPECT_EQ(SplitTrimmed(" a , b,,c ,"), (Strings{"a", "b", "c"}));
  EXPECT_EQ(SplitTrimmed("a;b c;", ';'), (Strings{"a", "b c"}));
  // keep_empty keeps every position (so a caller can reject "a,,b").
  EXPECT_EQ(SplitTrimmed("", ',', true), Strings{""});
  EXPECT_EQ(SplitTrimmed("a,,b", ',', true), (Strings{"a", "", "b"}));
  EXPECT_EQ(SplitTrimmed(" a , ", ',', true), (Strings{"a", ""}));
}

class FileTest : public ::testing::Test {
 protected:
  void TearDown() override { ::chmod(dir_.c_str(), 0700); }  // so TempDir can remove it
  static std::string Read(const std::string& path) {
    std::ifstream in(path);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
  }
  size_t Entries() const {
    return static_cast<size_t>(std::distance(fs::directory_iterator(dir_), {}));
  }
  test::TempDir tmp_{"asya-file"};
  std::string dir_ = tmp_.path();
};

TEST_F(FileTest, WritesAndReplaces) {
  const std::string path = dir_ + "/status.json";
  ASSERT_TRUE(WriteFileAtomic(path, "one").has_value());
  EXPECT_EQ(Read(path), "one");
  ASSERT_TRUE(WriteFileAtomic(path, std::string("two\0bytes", 9)).has_value());
  EXPECT_EQ(Read(path), std::string("two\0bytes", 9));
  ASSERT_TRUE(WriteFileAtomic(path, "").has_value());
  EXPECT_EQ(Read(path), "");
  EXPECT_EQ(Entries(), 1u);  // no temporary file left behind
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(
      st.st_mode & 0777, 0644u & ~[] {
        mode_t m = ::umask(0);
        ::umask(m);
        return m;
      }());
}

TEST_F(FileTest, AFailedWriteLeavesTheOldFileIntact) {
  if (::geteuid() == 0) {
    // root ignores directory permissions; make the rename fail instead: the target is a
    // non-empty directory.
    const std::string path = dir_ + "/target";
    fs::create_directories(path + "/child");
    auto r = WriteFileAtomic(path, "new");
    ASSERT_FALSE(r.has_value());
    EXPECT_EQ(r.error().code, ErrorCode::kUnavailable);
    EXPECT_NE(r.error().message.find(path), std::string::npos) << r.error().message;
    EXPECT_TRUE(fs::is_directory(path + "/child"));
    EXPECT_EQ(Entries(), 1u);  // the temporary file was removed
    return;
  }
  const std::string path = dir_ + "/status.json";
  ASSERT_TRUE(WriteFileAtomic(path, "old").has_value());
  ASSERT_EQ(::chmod(dir_.c_str(), 0500), 0);  // no new files in the directory
  auto r = WriteFileAtomic(path, "new");
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, ErrorCode::kUnavailable);
  EXPECT_EQ(Read(path), "old");
  EXPECT_EQ(Entries(), 1u);
}

TEST_F(FileTest, AMissingDirectoryIsAnErrorNamingTheFile) {
  auto r = WriteFileAtomic(dir_ + "/no/such/dir/file", "x");
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, ErrorCode::kUnavailable);
  EXPECT_NE(r.error().message.find("/no/such/dir/file"), std::string::npos);
  EXPECT_NE(r.error().message.find("No such file"), std::string::npos) << r.error().message;
}

TEST(TimeFormat, FormatsRfc3339InUtc) {
  const Clock::WallTime t = Clock::WallTime(seconds(1'700'000'000)) + nanoseconds(123'456'789);
  EXPECT_EQ(FormatRfc3339(t), "2023-11-14T22:13:20Z");
  EXPECT_EQ(FormatRfc3339(t, 3), "2023-11-14T22:13:20.123Z");
  EXPECT_EQ(FormatRfc3339(t, 6), "2023-11-14T22:13:20.123456Z");
  EXPECT_EQ(FormatRfc3339(t, 9), "2023-11-14T22:13:20.123456789Z");
  EXPECT_EQ(FormatRfc3339(Clock::WallTime{}, 3), "1970-01-01T00:00:00.000Z");
  // Before the epoch the fraction still counts forward from the whole second.
  EXPECT_EQ(FormatRfc3339(Clock::WallTime{} - milliseconds(1), 3), "1969-12-31T23:59:59.999Z");
  EXPECT_EQ(FormatUtc(t, "%Y%m%dT%H%M%SZ"), "20231114T221320Z");
}

TEST(TimeFormat, FormatAndParseRoundTrip) {
  const Clock::WallTime t = Clock::WallTime(seconds(1'700'000'000)) + microseconds(250'001);
  auto parsed = ParseRfc3339(FormatRfc3339(t, 6));
  ASSERT_TRUE(parsed.has_value());
  EXPECT_EQ(*parsed, std::chrono::time_point_cast<microseconds>(t));
  EXPECT_EQ(ParseRfc3339("2023-11-14T23:13:20+01:00")->time_since_epoch(), seconds(1'700'000'000));
  auto bad = ParseRfc3339("2023-11-14T22:13:20");
  ASSERT_FALSE(bad.has_value());
  EXPECT_EQ(bad.error().code, ErrorCode::kInvalidArgument);
}

TEST(TimeFormat, Millis) {
  EXPECT_EQ(UnixMillis(Clock::WallTime(seconds(2)) + microseconds(1500)), 2001);
  ManualClock clock;
  const int64_t before = SteadyMillis(clock.Now());
  clock.Advance(milliseconds(250));
  EXPECT_EQ(SteadyMillis(clock.Now()) - before, 250);
  EXPECT_EQ(UnixMillis(clock.WallNow()), 1'700'000'000'250);
}

}  // namespace
}  // namespace asya
