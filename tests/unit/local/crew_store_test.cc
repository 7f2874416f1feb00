#include "bin/crew/crew_store.h"

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <unistd.h>

#include <gtest/gtest.h>

namespace asya::crew {
namespace {

using nlohmann::json;

json Env(json actors, int current) {
  return {{"id", "abc"}, {"route", {{"actors", actors}, {"current", current}}}, {"payload", 1}};
}

TEST(CrewStore, LastActorRule) {
  EXPECT_EQ(LastActor(Env({"a", "b", "c"}, 1)), "b");
  EXPECT_EQ(LastActor(Env({"a", "b", "c"}, 2)), "c");
  // current 0 or past the end -> the last actor (the original's quirk, kept for compatibility).
  EXPECT_EQ(LastActor(Env({"a", "b", "c"}, 0)), "c");
  EXPECT_EQ(LastActor(Env({"a", "b", "c"}, 3)), "c");
  EXPECT_EQ(LastActor(Env(json::array(), 0)), "unknown");
  EXPECT_EQ(LastActor(json{{"id", "x"}}), "unknown");
}

TEST(CrewStore, KeyLayout) {
  auto t = std::chrono::system_clock::time_point(std::chrono::microseconds(1'700'000'000'123'456));
  EXPECT_EQ(FormatTimestamp(t), "2023-11-14T22:13:20.123456Z");
  auto key = MakeKey(Env({"a", "b"}, 1), "results/", t);
  ASSERT_TRUE(key) << key.error().message;
  EXPECT_EQ(*key, "results/2023-11-14T22:13:20.123456Z/b/abc.json");
}

TEST(CrewStore, KeysNeverLeaveTheirDirectory) {
  json env = Env({"../x"}, 0);
  env["id"] = "../../etc/passwd";
  auto key = MakeKey(env, "results/", std::chrono::system_clock::now());
  ASSERT_TRUE(key);
  EXPECT_EQ(key->find("/../"), std::string::npos) << *key;
  EXPECT_NE(key->find("/_._x/_._.._etc_passwd.json"), std::string::npos) << *key;
}

TEST(CrewStore, RefusesEnvelopesWithoutId) {
  EXPECT_FALSE(MakeKey(json{{"payload", 1}}, "p/", std::chrono::system_clock::now()));
  EXPECT_FALSE(MakeKey(json{{"id", 5}}, "p/", std::chrono::system_clock::now()));
  EXPECT_FALSE(MakeKey(json::array(), "p/", std::chrono::system_clock::now()));
}

TEST(CrewStore, StoresPrettyJson) {
  namespace fs = std::filesystem;
  fs::path root = fs::temp_directory_path() / ("asya-crew-" + std::to_string(::getpid()));
  ASSERT_TRUE(Store(root.string(), "results/t/a/abc.json", Env({"a"}, 0)));
  std::ifstream in(root / "results/t/a/abc.json");
  std::stringstream text;
  text << in.rdbuf();
  EXPECT_EQ(json::parse(text.str()), Env({"a"}, 0));
  EXPECT_NE(text.str().find("\n  \"id\": \"abc\""), std::string::npos) << text.str();
  fs::remove_all(root);
}

}  // namespace
}  // namespace asya::crew
