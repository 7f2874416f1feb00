// PostgreSQL-only behaviour: the feed across replicas, adopting the original gateway's schema,
// surviving broken connections.
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <vector>

#include <libpq-fe.h>

#include "unit/store/store_fixture.h"

namespace asya::store::testing {
namespace {

using asya::test::PostgresServer;

class Collected {
 public:
  std::function<void(const Update&)> Callback() {
    return [this](const Update& u) {
      std::lock_guard<std::mutex> lock(mu_);
      updates_.push_back(u);
      cv_.notify_all();
    };
  }
  // Waits until an update with status `status` for `id` arrived (generous limit; the caller
  // asserts on the result, not on time).
  bool WaitFor(const std::string& id, Status status) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, std::chrono::seconds(30), [&] {
      for (const Update& u : updates_) {
        if (u.envelope_id == id && u.status == status) {
          return true;
        }
      }
      return false;
    });
  }
  std::vector<Update> Snapshot() {
    std::lock_guard<std::mutex> lock(mu_);
    return updates_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Update> updates_;
};

// One value from a query, through libpq directly (what an operator would see in psql).
std::string Query(const std::string& url, const std::string& sql) {
  PGconn* c = PQconnectdb(url.c_str());
  PGresult* r = PQexec(c, sql.c_str());
  std::string out = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) > 0
                        ? std::string(PQgetvalue(r, 0, 0))
                        : std::string("<") + PQresultErrorMessage(r) + ">";
  PQclear(r);
  PQfinish(c);
  return out;
}

class PostgresStoreTest : public StoreTest {};

TEST_P(PostgresStoreTest, AnUpdateByOneReplicaReachesTheOthersFeed) {
  auto replica = OpenAnother();
  ASSERT_NE(replica, nullptr);
  Collected mine;
  Collected theirs;
  ASSERT_OK(store_->StartFeed(mine.Callback()));
  ASSERT_OK(replica->StartFeed(theirs.Callback()));

  ASSERT_OK(store_->Create(Make("x1")));
  ASSERT_OK(store_->MarkRunning("x1", "sent"));
  FinalReport fin;
  fin.status = Status::kSucceeded;
  fin.result_json = R"({"v":1})";
  ASSERT_OK(replica->Finish("x1", fin));  // the other replica ends it

  ASSERT_TRUE(theirs.WaitFor("x1", Status::kSucceeded));
  ASSERT_TRUE(mine.WaitFor("x1", Status::kSucceeded));
  ASSIGN_OR_FAIL(auto history, replica->History("x1", 0));
  for (auto* feed : {&mine, &theirs}) {
    auto got = feed->Snapshot();
    ASSERT_EQ(got.size(), history.size());
    for (std::size_t i = 0; i < got.size(); ++i) {
      EXPECT_EQ(got[i].seq, history[i].seq);
      EXPECT_EQ(got[i].status, history[i].status);
    }
  }
}

TEST_P(PostgresStoreTest, ConcurrentFinishFromTwoReplicasAppliesOnce) {
  auto replica = OpenAnother();
  ASSERT_NE(replica, nullptr);
  ASSERT_OK(store_->Create(Make("both")));
  std::atomic<int> applied{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 8; ++i) {
    Store* s = i % 2 == 0 ? store_.get() : replica.get();
    threads.emplace_back([&, s] {
      FinalReport fin;
      fin.status = Status::kCancelled;
      auto t = s->Finish("both", fin);
      EXPECT_TRUE(t.has_value());
      if (t.has_value() && t->applied) {
        applied.fetch_add(1);
      }
    });
  }
  for (auto& t : threads) {
    t.join();
  }
  EXPECT_EQ(applied.load(), 1);
}

TEST_P(PostgresStoreTest, SurvivesTerminatedConnections) {
  Collected feed;
  ASSERT_OK(store_->StartFeed(feed.Callback()));
  ASSERT_OK(store_->Create(Make("t1")));
  ASSERT_OK(store_->Get("t1"));  // the pool now holds an idle connection
  std::string db = url_.substr(url_.rfind('/') + 1);
  ASSIGN_OR_FAIL(int killed, PostgresServer::Shared().TerminateConnections(db));
  EXPECT_GE(killed, 2);  // the pool's and the listener's

  ASSIGN_OR_FAIL(Envelope got, store_->Get("t1"));  // read: retried on a fresh connection
  EXPECT_EQ(got.id, "t1");
  ASSIGN_OR_FAIL(int killed_again, PostgresServer::Shared().TerminateConnections(db));
  EXPECT_GE(killed_again, 1);
  ASSIGN_OR_FAIL(Transition t, store_->MarkRunning("t1", "after"));  // write: fresh BEGIN
  EXPECT_TRUE(t.applied);

  // The listener reconnects and catches up, so the feed still sees the update.
  ASSERT_TRUE(feed.WaitFor("t1", Status::kRunning));
  FinalReport fin;
  fin.status = Status::kSucceeded;
  ASSERT_OK(store_->Finish("t1", fin));
  EXPECT_TRUE(feed.WaitFor("t1", Status::kSucceeded));
}

TEST_P(PostgresStoreTest, MigrationsAreRecordedAndIdempotent) {
  EXPECT_EQ(Query(url_,
                  "SELECT string_agg(version::text, ',' ORDER BY version) FROM "
                  "asya_store_migrations"),
            "1,2,3,4");
  auto again = OpenAnother();
  ASSERT_NE(again, nullptr);
  EXPECT_EQ(Query(url_, "SELECT count(*) FROM asya_store_migrations"), "4");
  // The original's trigger name is kept.
  EXPECT_EQ(Query(url_,
                  "SELECT count(*) FROM pg_trigger WHERE tgname = "
                  "'update_envelopes_updated_at'"),
            "1");
}

TEST_P(PostgresStoreTest, UpdatedAtTriggerStillStampsOtherWriters) {
  ASSERT_OK(store_->Create(Make("w")));
  // ManualClock time is 2023; a writer that is not the store (no asya.store_clock) gets now().
  ASSERT_OK(PostgresServer::Exec(url_, "UPDATE envelopes SET message = 'by hand' WHERE id = 'w'"));
  ASSIGN_OR_FAIL(Envelope got, store_->Get("w"));
  EXPECT_GT(got.updated_at, clock_.WallNow() + std::chrono::hours(24));
}

INSTANTIATE_TEST_SUITE_P(Backends, PostgresStoreTest, ::testing::Values(Backend::kPostgres),
                         BackendName);

// The original gateway's schema (sqitch changes 001-004, reference-controlplane §7.12), as that
// gateway left it, with a row it wrote.
constexpr const char* kOriginalSchema = R"sql(
CREATE TABLE envelopes (
  id TEXT PRIMARY KEY,
  parent_id TEXT,
  status TEXT NOT NULL CHECK (status IN ('pending','running','succeeded','failed','unknown')),
  route_actors TEXT[] NOT NULL,
  route_current INTEGER NOT NULL DEFAULT 0,
  payload JSONB,
  result JSONB,
  error TEXT,
  message TEXT,
  timeout_sec INTEGER,
  deadline TIMESTAMPTZ,
  progress_percent DECIMAL(5,2) DEFAULT 0 CHECK (progress_percent >= 0 AND progress_percent <= 100),
  current_actor_idx INTEGER DEFAULT 0,
  current_actor_name TEXT,
  actors_completed INTEGER DEFAULT 0 CHECK (actors_completed >= 0),
  total_actors INTEGER DEFAULT 0 CHECK (total_actors >= 0),
  created_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
  updated_at TIMESTAMPTZ NOT NULL DEFAULT NOW()
);
CREATE INDEX idx_envelopes_status ON envelopes(status);
CREATE INDEX idx_envelopes_parent ON envelopes(parent_id) WHERE parent_id IS NOT NULL;
CREATE INDEX idx_envelopes_deadline ON envelopes(deadline) WHERE deadline IS NOT NULL;
CREATE INDEX idx_envelopes_progress ON envelopes(progress_percent) WHERE progress_percent < 100;
CREATE INDEX idx_envelopes_created ON envelopes(created_at DESC);
CREATE INDEX idx_envelopes_updated ON envelopes(updated_at DESC);
CREATE OR REPLACE FUNCTION update_updated_at_column() RETURNS TRIGGER AS $$
BEGIN NEW.updated_at = NOW(); RETURN NEW; END; $$ LANGUAGE plpgsql;
CREATE TRIGGER update_envelopes_updated_at BEFORE UPDATE ON envelopes
  FOR EACH ROW EXECUTE FUNCTION update_updated_at_column();
CREATE TABLE envelope_updates (
  id BIGSERIAL PRIMARY KEY,
  envelope_id TEXT NOT NULL REFERENCES envelopes(id) ON DELETE CASCADE,
  status TEXT NOT NULL,
  message TEXT,
  result JSONB,
  error TEXT,
  progress_percent DECIMAL(5,2),
  actor TEXT,
  envelope_state TEXT CHECK (envelope_state IS NULL OR
    envelope_state IN ('received','processing','completed')),
  timestamp TIMESTAMPTZ NOT NULL DEFAULT NOW()
);
CREATE INDEX idx_envelope_updates_envelope ON envelope_updates(envelope_id, timestamp DESC);
CREATE INDEX idx_envelope_updates_timestamp ON envelope_updates(timestamp DESC);
INSERT INTO envelopes (id, status, route_actors, payload, result, message, progress_percent,
                       current_actor_idx, current_actor_name, total_actors)
  VALUES ('legacy', 'running', ARRAY['prep','infer'], '{"q":"hi"}', '{}', 'working', 55.00, 1,
          'infer', 2);
INSERT INTO envelope_updates (envelope_id, status, message, actor, progress_percent,
                              envelope_state)
  VALUES ('legacy', 'running', 'working', 'infer', 55.00, 'processing');
)sql";

TEST(PostgresAdoptTest, OpensTheOriginalSchemaAndMigratesIt) {
  ASSIGN_OR_FAIL(std::string url, PostgresServer::Shared().NewDatabase());
  ASSERT_OK(PostgresServer::Exec(url, kOriginalSchema));
  ManualClock clock;
  ASSIGN_OR_FAIL(auto store, Open(url, clock));

  ASSIGN_OR_FAIL(Envelope legacy, store->Get("legacy"));
  EXPECT_EQ(legacy.status, Status::kRunning);
  EXPECT_EQ(legacy.route_actors, (std::vector<std::string>{"prep", "infer"}));
  EXPECT_DOUBLE_EQ(legacy.progress_percent, 55);
  EXPECT_EQ(legacy.current_actor_name, "infer");
  EXPECT_EQ(legacy.tool, "");
  ASSIGN_OR_FAIL(auto history, store->History("legacy", 0));
  ASSERT_EQ(history.size(), 1u);
  EXPECT_EQ(history[0].envelope_state, "processing");
  EXPECT_EQ(history[0].actor, "infer");

  // Progress keeps the legacy value monotonic; `cancelled` (ours) is now allowed.
  ProgressReport r;
  r.current_actor_idx = 0;
  r.state = "received";
  ASSIGN_OR_FAIL(Transition p, store->ReportProgress("legacy", r));
  EXPECT_DOUBLE_EQ(p.envelope.progress_percent, 55);
  FinalReport cancel;
  cancel.status = Status::kCancelled;
  cancel.message = "cancelled by client";
  ASSIGN_OR_FAIL(Transition c, store->Finish("legacy", cancel));
  EXPECT_TRUE(c.applied);
  EXPECT_EQ(Query(url, "SELECT status FROM envelopes WHERE id = 'legacy'"), "cancelled");

  // New envelopes use our columns.
  Envelope e;
  e.id = "new";
  e.tool = "echo";
  e.route_actors = {"a"};
  e.route_metadata_json = R"({"job_id":"new"})";
  ASSERT_OK(store->Create(e));
  EXPECT_EQ(Query(url, "SELECT tool FROM envelopes WHERE id = 'new'"), "echo");
  EXPECT_EQ(Query(url, "SELECT route_metadata->>'job_id' FROM envelopes WHERE id = 'new'"), "new");
  EXPECT_EQ(Query(url, "SELECT count(*) FROM asya_store_migrations"), "4");
}

TEST(PostgresAdoptTest, LegacyTitleCaseStatusesAreLowerCased) {
  ASSIGN_OR_FAIL(std::string url, PostgresServer::Shared().NewDatabase());
  ASSERT_OK(PostgresServer::Exec(url, kOriginalSchema));
  ASSERT_OK(PostgresServer::Exec(url,
                                 "ALTER TABLE envelopes DROP CONSTRAINT envelopes_status_check; "
                                 "UPDATE envelopes SET status = 'Running' WHERE id = 'legacy'"));
  ManualClock clock;
  ASSIGN_OR_FAIL(auto store, Open(url, clock));
  ASSIGN_OR_FAIL(Envelope legacy, store->Get("legacy"));
  EXPECT_EQ(legacy.status, Status::kRunning);
}

}  // namespace
}  // namespace asya::store::testing
