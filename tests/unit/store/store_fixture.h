// The store contract suite runs against both backends: each test gets a fresh database (a new
// SQLite file, or a new database on the shared throw-away PostgreSQL server) and a ManualClock.
#pragma once

#include <memory>
#include <string>

#include <gtest/gtest.h>

#include "asya/base/clock.h"
#include "asya/store/store.h"
#include "support/postgres_fixture.h"
#include "support/status_matchers.h"
#include "support/temp_dir.h"

namespace asya::store::testing {

enum class Backend { kSqlite, kPostgres };

inline std::string BackendName(const ::testing::TestParamInfo<Backend>& info) {
  return info.param == Backend::kSqlite ? "Sqlite" : "Postgres";
}

class StoreTest : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    if (GetParam() == Backend::kSqlite) {
      url_ = "sqlite://" + dir_.File("store.db");
    } else {
      auto db = asya::test::PostgresServer::Shared().NewDatabase();
      ASSERT_TRUE(db.has_value()) << db.error().ToString();
      url_ = *db;
    }
    auto opened = Open(url_, clock_);
    ASSERT_TRUE(opened.has_value()) << opened.error().ToString();
    store_ = std::move(*opened);
  }

  // A second Store on the same database (another gateway replica).
  std::unique_ptr<Store> OpenAnother() {
    auto opened = Open(url_, clock_);
    EXPECT_TRUE(opened.has_value()) << opened.error().ToString();
    return opened.has_value() ? std::move(*opened) : nullptr;
  }

  static Envelope Make(const std::string& id, std::vector<std::string> actors = {"a", "b"}) {
    Envelope e;
    e.id = id;
    e.route_actors = std::move(actors);
    e.payload_json = R"({"x":1})";
    return e;
  }

  asya::test::TempDir dir_{"asya-store"};
  ManualClock clock_;
  std::string url_;
  std::unique_ptr<Store> store_;
};

}  // namespace asya::store::testing
