// Open(): URL schemes and the errors a bad URL or an unreachable database gives.
#include <fstream>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "asya/store/store.h"
#include "support/postgres_fixture.h"
#include "support/status_matchers.h"
#include "support/temp_dir.h"

namespace asya::store {
namespace {

Error OpenError(std::string_view url) {
  ManualClock clock;
  auto r = Open(url, clock);
  EXPECT_FALSE(r.has_value()) << url;
  return r.has_value() ? Error{} : r.error();
}

TEST(StoreOpenTest, UnknownOrMissingSchemeIsInvalidArgument) {
  for (const char* url : {"mysql://u@h/db", "/var/lib/asya.db", "", "sqlite:", "http://x"}) {
    Error e = OpenError(url);
    EXPECT_EQ(e.code, ErrorCode::kInvalidArgument) << url;
    EXPECT_NE(e.message.find("postgresql://"), std::string::npos) << e.message;
  }
}

TEST(StoreOpenTest, SqliteUrlWithoutPathIsInvalidArgument) {
  Error e = OpenError("sqlite://");
  EXPECT_EQ(e.code, ErrorCode::kInvalidArgument);
  EXPECT_NE(e.message.find("names no file"), std::string::npos) << e.message;
}

TEST(StoreOpenTest, SqliteAbsoluteAndRelativePaths) {
  test::TempDir dir("asya-store-open");
  ManualClock clock;
  std::string abs = dir.File("abs.db");
  ASSIGN_OR_FAIL(auto a, Open("sqlite://" + abs, clock));
  EXPECT_TRUE(std::ifstream(abs).good());
  char cwd[4096];
  ASSERT_NE(getcwd(cwd, sizeof(cwd)), nullptr);
  ASSERT_EQ(chdir(dir.path().c_str()), 0);
  auto b = Open("sqlite://rel.db", clock);
  bool exists = std::ifstream(dir.File("rel.db")).good();
  ASSERT_EQ(chdir(cwd), 0);
  ASSERT_OK(b);
  EXPECT_TRUE(exists);
}

TEST(StoreOpenTest, SqliteInAMissingDirectoryIsUnavailable) {
  Error e = OpenError("sqlite:///nonexistent-dir-asya/x/store.db");
  EXPECT_EQ(e.code, ErrorCode::kUnavailable);
  EXPECT_NE(e.message.find("/nonexistent-dir-asya/x/store.db"), std::string::npos) << e.message;
}

TEST(StoreOpenTest, SqliteFileThatIsNotADatabaseIsUnavailableAndUntouched) {
  test::TempDir dir("asya-store-open");
  std::string path = dir.Write("junk.db", std::string(4096, 'j'));
  Error e = OpenError("sqlite://" + path);
  EXPECT_EQ(e.code, ErrorCode::kUnavailable);
  EXPECT_NE(e.message.find("junk.db"), std::string::npos) << e.message;
  std::ifstream in(path);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(text, std::string(4096, 'j'));
}

TEST(StoreOpenTest, MalformedPostgresUrlIsInvalidArgument) {
  for (const char* url : {"postgresql://[::1/db", "postgresql://h/db?no_such_option=1",
                          "postgres://h:5432/db?sslmode"}) {
    Error e = OpenError(url);
    EXPECT_EQ(e.code, ErrorCode::kInvalidArgument) << url << ": " << e.message;
  }
}

TEST(StoreOpenTest, UnreachablePostgresIsUnavailableAndHidesThePassword) {
  // A loopback port nobody listens on.
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  socklen_t len = sizeof(addr);
  ASSERT_EQ(getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  int port = ntohs(addr.sin_port);
  close(fd);
  Error e = OpenError("postgresql://asya:s3cret@127.0.0.1:" + std::to_string(port) + "/asya");
  EXPECT_EQ(e.code, ErrorCode::kUnavailable);
  EXPECT_NE(e.message.find("cannot connect"), std::string::npos) << e.message;
  EXPECT_EQ(e.message.find("s3cret"), std::string::npos) << e.message;
}

TEST(StoreOpenTest, UnknownPostgresDatabaseIsUnavailable) {
  Error e = OpenError(test::PostgresServer::Shared().url("no_such_db"));
  EXPECT_EQ(e.code, ErrorCode::kUnavailable);
  EXPECT_NE(e.message.find("no_such_db"), std::string::npos) << e.message;
}

TEST(StoreOpenTest, ZeroConnectionsIsInvalidArgument) {
  test::TempDir dir("asya-store-open");
  ManualClock clock;
  OpenOptions options;
  options.max_connections = 0;
  auto r = Open("sqlite://" + dir.File("x.db"), clock, options);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument);
}

TEST(PostgresFixtureTest, MissingServerBinariesAreAFailureThatSaysWhat) {
  setenv("ASYA_PG_BINDIR", "/nonexistent-asya-pg/bin", 1);  // NOLINT(concurrency-mt-unsafe)
  auto server = test::PostgresServer::Start();
  unsetenv("ASYA_PG_BINDIR");  // NOLINT(concurrency-mt-unsafe)
  ASSERT_FALSE(server.has_value());
  EXPECT_EQ(server.error().code, ErrorCode::kFailedPrecondition);
  EXPECT_NE(server.error().message.find("postgresql"), std::string::npos) << server.error().message;
}

TEST(StoreOpenTest, StatusNamesRoundTrip) {
  for (Status s : {Status::kPending, Status::kRunning, Status::kSucceeded, Status::kFailed,
                   Status::kCancelled, Status::kUnknown}) {
    auto parsed = ParseStatus(StatusName(s));
    ASSERT_TRUE(parsed.has_value());
    EXPECT_EQ(*parsed, s);
  }
  EXPECT_FALSE(ParseStatus("Running").has_value());
  EXPECT_FALSE(ParseStatus("").has_value());
  EXPECT_TRUE(IsFinal(Status::kCancelled));
  EXPECT_FALSE(IsFinal(Status::kUnknown));
}

}  // namespace
}  // namespace asya::store
