// The SQLite backend: one connection (WAL, busy timeout) guarded by a mutex; every call is one
// transaction (BEGIN IMMEDIATE for writes). The change feed is in-process.
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>

#include <sqlite3.h>

#include "asya/store/rules.h"
#include "asya/store/store.h"
#include "store/internal.h"

namespace asya::store::internal {
namespace {

constexpr int kBusyTimeoutMs = 10000;

// Tables and columns named as in the PostgreSQL schema; JSON as TEXT, times as µs since the
// epoch, actor lists as JSON arrays.
constexpr const char* kSchemaV1 = R"sql(
CREATE TABLE IF NOT EXISTS envelopes (
  id TEXT PRIMARY KEY,
  parent_id TEXT,
  status TEXT NOT NULL CHECK (status IN
    ('pending','running','succeeded','failed','cancelled','unknown')),
  route_actors TEXT NOT NULL,
  route_current INTEGER NOT NULL DEFAULT 0,
  route_metadata TEXT,
  headers TEXT,
  payload TEXT,
  result TEXT,
  error TEXT,
  message TEXT,
  tool TEXT,
  timeout_sec INTEGER,
  deadline INTEGER,
  progress_percent REAL DEFAULT 0 CHECK (progress_percent >= 0 AND progress_percent <= 100),
  current_actor_idx INTEGER DEFAULT 0,
  current_actor_name TEXT,
  actors_completed INTEGER DEFAULT 0 CHECK (actors_completed >= 0),
  total_actors INTEGER DEFAULT 0 CHECK (total_actors >= 0),
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS idx_envelopes_parent_id ON envelopes(parent_id)
  WHERE parent_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS idx_envelopes_status ON envelopes(status);
CREATE INDEX IF NOT EXISTS idx_envelopes_deadline ON envelopes(deadline)
  WHERE deadline IS NOT NULL;
CREATE INDEX IF NOT EXISTS idx_envelopes_updated_at ON envelopes(updated_at DESC);
CREATE TABLE IF NOT EXISTS envelope_updates (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  envelope_id TEXT NOT NULL REFERENCES envelopes(id) ON DELETE CASCADE,
  status TEXT NOT NULL,
  message TEXT,
  error TEXT,
  actor TEXT,
  actors TEXT,
  current_actor_idx INTEGER,
  result TEXT,
  progress_percent REAL,
  envelope_state TEXT CHECK (envelope_state IS NULL OR
    envelope_state IN ('received','processing','completed')),
  timestamp INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS idx_envelope_updates_envelope_id ON envelope_updates(envelope_id, id);
)sql";

// Migration 2: MCP sessions shared by every gateway on this database.
constexpr const char* kSchemaV2 = R"sql(
CREATE TABLE IF NOT EXISTS mcp_sessions (
  id TEXT PRIMARY KEY,
  protocol_version TEXT NOT NULL,
  client_capabilities TEXT,
  created_at INTEGER NOT NULL,
  last_seen_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS idx_mcp_sessions_last_seen_at ON mcp_sessions(last_seen_at);
)sql";

constexpr const char* kEnvelopeColumns =
    "id, parent_id, status, route_actors, route_current, route_metadata, payload, result, error, "
    "message, tool, timeout_sec, deadline, progress_percent, current_actor_idx, "
    "current_actor_name, total_actors, created_at, updated_at";

constexpr const char* kUpdateColumns =
    "id, envelope_id, status, message, error, actor, actors, current_actor_idx, result, "
    "progress_percent, envelope_state, timestamp";

Error SqliteError(sqlite3* db, int rc, const std::string& what) {
  ErrorCode code = ErrorCode::kInternal;
  int primary = rc & 0xff;
  if (primary == SQLITE_BUSY || primary == SQLITE_LOCKED || primary == SQLITE_CANTOPEN ||
      primary == SQLITE_IOERR || primary == SQLITE_FULL || primary == SQLITE_READONLY) {
    code = ErrorCode::kUnavailable;
  } else if (rc == SQLITE_CONSTRAINT_PRIMARYKEY || rc == SQLITE_CONSTRAINT_UNIQUE) {
    code = ErrorCode::kAlreadyExists;
  }
  const char* msg = db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
  return Error{code, "sqlite store: " + what + ": " + msg};
}

// A prepared statement. One of the store's cache (`in_use` set) is reset and handed back when it
// goes; any other is finalized.
class Stmt {
 public:
  Stmt(sqlite3* db, sqlite3_stmt* stmt, bool* in_use = nullptr)
      : db_(db), stmt_(stmt), in_use_(in_use) {}
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;
  ~Stmt() {
    if (in_use_ != nullptr) {
      sqlite3_reset(stmt_);
      sqlite3_clear_bindings(stmt_);
      *in_use_ = false;
    } else {
      sqlite3_finalize(stmt_);
    }
  }

  Stmt& Text(int i, std::string_view v) {
    // A default string_view has no data pointer, which SQLite would bind as NULL.
    sqlite3_bind_text(stmt_, i, v.data() != nullptr ? v.data() : "", static_cast<int>(v.size()),
                      SQLITE_TRANSIENT);
    return *this;
  }
  // Empty text binds NULL.
  Stmt& TextOrNull(int i, std::string_view v) { return v.empty() ? Null(i) : Text(i, v); }
  Stmt& Int(int i, std::int64_t v) {
    sqlite3_bind_int64(stmt_, i, v);
    return *this;
  }
  Stmt& Real(int i, double v) {
    sqlite3_bind_double(stmt_, i, v);
    return *this;
  }
  Stmt& Null(int i) {
    sqlite3_bind_null(stmt_, i);
    return *this;
  }
  Result<bool> Step() {
    int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW) {
      return true;
    }
    if (rc == SQLITE_DONE) {
      return false;
    }
    return Unexpected(SqliteError(db_, sqlite3_extended_errcode(db_), "step"));
  }
  asya::Status Run() {
    ASYA_ASSIGN_OR_RETURN(bool row, Step());
    (void)row;
    return Ok();
  }
  std::string ColText(int c) const {
    const auto* p = sqlite3_column_text(stmt_, c);
    return p == nullptr ? std::string()
                        : std::string(reinterpret_cast<const char*>(p),
                                      static_cast<std::size_t>(sqlite3_column_bytes(stmt_, c)));
  }
  std::int64_t ColInt(int c) const { return sqlite3_column_int64(stmt_, c); }
  double ColReal(int c) const { return sqlite3_column_double(stmt_, c); }
  bool ColNull(int c) const { return sqlite3_column_type(stmt_, c) == SQLITE_NULL; }

 private:
  sqlite3* db_;
  sqlite3_stmt* stmt_;
  bool* in_use_;
};

class SqliteStore final : public Store {
 public:
  SqliteStore(sqlite3* db, std::string path, Clock& clock)
      : db_(db), path_(std::move(path)), clock_(clock) {}
  ~SqliteStore() override {
    feed_.Stop();
    for (auto& [sql, cached] : cache_) {
      sqlite3_finalize(cached.stmt);
    }
    sqlite3_close_v2(db_);
  }

  asya::Status Migrate() {
    std::lock_guard<std::mutex> lock(mu_);
    ASYA_RETURN_IF_ERROR(Exec("BEGIN IMMEDIATE"));
    auto body = [&]() -> asya::Status {
      ASYA_RETURN_IF_ERROR(
          Exec("CREATE TABLE IF NOT EXISTS asya_store_migrations (version INTEGER PRIMARY KEY, "
               "name TEXT NOT NULL, applied_at INTEGER NOT NULL)"));
      ASYA_ASSIGN_OR_RETURN(auto q, Prepare("SELECT COALESCE(MAX(version), 0) FROM "
                                            "asya_store_migrations"));
      ASYA_RETURN_IF_ERROR(q->Step());
      std::int64_t version = q->ColInt(0);
      if (version < 1) {
        ASYA_RETURN_IF_ERROR(Exec(kSchemaV1));
        ASYA_ASSIGN_OR_RETURN(auto ins, Prepare("INSERT INTO asya_store_migrations(version, name, "
                                                "applied_at) VALUES (1, 'base schema', ?1)"));
        ASYA_RETURN_IF_ERROR(ins->Int(1, ToMicros(clock_.WallNow())).Run());
      }
      if (version < 2) {
        ASYA_RETURN_IF_ERROR(Exec(kSchemaV2));
        ASYA_ASSIGN_OR_RETURN(auto ins, Prepare("INSERT INTO asya_store_migrations(version, name, "
                                                "applied_at) VALUES (2, 'mcp sessions', ?1)"));
        ASYA_RETURN_IF_ERROR(ins->Int(1, ToMicros(clock_.WallNow())).Run());
      }
      return Ok();
    };
    return EndTx(body());
  }

  Result<void> Create(const Envelope& envelope) override {
    ASYA_RETURN_IF_ERROR(ValidateNewEnvelope(envelope));
    Plan plan = PlanCreate(envelope, clock_.WallNow());
    Update update;
    {
      std::lock_guard<std::mutex> lock(mu_);
      ASYA_RETURN_IF_ERROR(Exec("BEGIN IMMEDIATE"));
      auto body = [&]() -> Result<Update> {
        ASYA_ASSIGN_OR_RETURN(auto exists, Prepare("SELECT 1 FROM envelopes WHERE id = ?1"));
        exists->Text(1, envelope.id);
        ASYA_ASSIGN_OR_RETURN(bool found, exists->Step());
        if (found) {
          return MakeError(ErrorCode::kAlreadyExists,
                           "envelope '" + envelope.id + "' already exists");
        }
        ASYA_RETURN_IF_ERROR(Insert(plan.after));
        return Append(plan.update);
      };
      auto r = body();
      ASYA_RETURN_IF_ERROR(
          EndTx(r.has_value() ? asya::Status() : asya::Status(Unexpected(r.error()))));
      update = std::move(*r);
      // Pushed under mu_, so the feed sees updates in commit (= seq) order.
      feed_.Push(std::move(update));
    }
    return Ok();
  }

  Result<Envelope> Get(std::string_view id) override {
    std::lock_guard<std::mutex> lock(mu_);
    return Load(id);
  }

  Result<Transition> MarkRunning(std::string_view id, std::string_view message) override {
    return Apply(id, [&](const Envelope& before, TimePoint now) -> Result<Plan> {
      return PlanMarkRunning(before, message, now);
    });
  }

  Result<Transition> ReportProgress(std::string_view id, const ProgressReport& report) override {
    return Apply(id, [&](const Envelope& before, TimePoint now) {
      return PlanProgress(before, report, now);
    });
  }

  Result<Transition> Finish(std::string_view id, const FinalReport& report) override {
    return Apply(
        id, [&](const Envelope& before, TimePoint now) { return PlanFinish(before, report, now); });
  }

  Result<std::vector<Update>> History(std::string_view id, std::int64_t after_seq) override {
    std::lock_guard<std::mutex> lock(mu_);
    ASYA_ASSIGN_OR_RETURN(auto q, Prepare(std::string("SELECT ") + kUpdateColumns +
                                          " FROM envelope_updates WHERE envelope_id = ?1 AND "
                                          "id > ?2 ORDER BY id"));
    q->Text(1, id).Int(2, after_seq);
    std::vector<Update> out;
    while (true) {
      ASYA_ASSIGN_OR_RETURN(bool row, q->Step());
      if (!row) {
        break;
      }
      ASYA_ASSIGN_OR_RETURN(Update u, ReadUpdate(*q));
      out.push_back(std::move(u));
    }
    return out;
  }

  Result<std::vector<std::string>> Children(std::string_view id) override {
    std::lock_guard<std::mutex> lock(mu_);
    ASYA_ASSIGN_OR_RETURN(
        auto q,
        Prepare("SELECT id FROM envelopes WHERE parent_id = ?1 ORDER BY created_at, rowid"));
    q->Text(1, id);
    return Ids(*q);
  }

  Result<std::vector<std::string>> ExpiredBefore(TimePoint now, int limit) override {
    std::lock_guard<std::mutex> lock(mu_);
    ASYA_ASSIGN_OR_RETURN(
        auto q, Prepare("SELECT id FROM envelopes WHERE deadline IS NOT NULL AND deadline < ?1 "
                        "AND status NOT IN ('succeeded','failed','cancelled') "
                        "ORDER BY deadline, id LIMIT ?2"));
    q->Int(1, ToMicros(now)).Int(2, limit);
    return Ids(*q);
  }

  Result<std::int64_t> PurgeFinishedBefore(TimePoint cutoff) override {
    std::lock_guard<std::mutex> lock(mu_);
    ASYA_RETURN_IF_ERROR(Exec("BEGIN IMMEDIATE"));
    std::int64_t purged = 0;
    auto body = [&]() -> asya::Status {
      constexpr const char* kDoomed =
          "SELECT id FROM envelopes WHERE status IN ('succeeded','failed','cancelled') AND "
          "updated_at < ?1";
      ASYA_ASSIGN_OR_RETURN(auto h, Prepare(std::string("DELETE FROM envelope_updates WHERE "
                                                        "envelope_id IN (") +
                                            kDoomed + ")"));
      ASYA_RETURN_IF_ERROR(h->Int(1, ToMicros(cutoff)).Run());
      ASYA_ASSIGN_OR_RETURN(
          auto e, Prepare(std::string("DELETE FROM envelopes WHERE id IN (") + kDoomed + ")"));
      ASYA_RETURN_IF_ERROR(e->Int(1, ToMicros(cutoff)).Run());
      purged = sqlite3_changes64(db_);
      return Ok();
    };
    ASYA_RETURN_IF_ERROR(EndTx(body()));
    return purged;
  }

  Result<void> StartFeed(std::function<void(const Update&)> on_update) override {
    return feed_.Start(std::move(on_update));
  }

  Result<void> CreateSession(const McpSession& session) override {
    ASYA_RETURN_IF_ERROR(ValidateNewSession(session));
    const std::int64_t now = ToMicros(clock_.WallNow());
    std::lock_guard<std::mutex> lock(mu_);
    ASYA_ASSIGN_OR_RETURN(auto q,
                          Prepare("INSERT INTO mcp_sessions (id, protocol_version, "
                                  "client_capabilities, created_at, last_seen_at) "
                                  "VALUES (?1, ?2, ?3, ?4, ?4) ON CONFLICT(id) DO NOTHING"));
    ASYA_RETURN_IF_ERROR(q->Text(1, session.id)
                             .Text(2, session.protocol_version)
                             .TextOrNull(3, session.client_capabilities_json)
                             .Int(4, now)
                             .Run());
    if (sqlite3_changes64(db_) == 0) {
      return MakeError(ErrorCode::kAlreadyExists, "session '" + session.id + "' already exists");
    }
    return Ok();
  }

  Result<McpSession> GetSession(std::string_view id) override {
    std::lock_guard<std::mutex> lock(mu_);
    ASYA_ASSIGN_OR_RETURN(auto q, Prepare("SELECT id, protocol_version, client_capabilities, "
                                          "created_at, last_seen_at FROM mcp_sessions "
                                          "WHERE id = ?1"));
    q->Text(1, id);
    ASYA_ASSIGN_OR_RETURN(bool found, q->Step());
    if (!found) {
      return MakeError(ErrorCode::kNotFound, "session '" + std::string(id) + "' not found");
    }
    McpSession s;
    s.id = q->ColText(0);
    s.protocol_version = q->ColText(1);
    s.client_capabilities_json = q->ColText(2);
    s.created_at = FromMicros(q->ColInt(3));
    s.last_seen_at = FromMicros(q->ColInt(4));
    return s;
  }

  Result<void> TouchSession(std::string_view id) override {
    std::lock_guard<std::mutex> lock(mu_);
    ASYA_ASSIGN_OR_RETURN(auto q,
                          Prepare("UPDATE mcp_sessions SET last_seen_at = ?2 WHERE id = ?1"));
    ASYA_RETURN_IF_ERROR(q->Text(1, id).Int(2, ToMicros(clock_.WallNow())).Run());
    if (sqlite3_changes64(db_) == 0) {
      return MakeError(ErrorCode::kNotFound, "session '" + std::string(id) + "' not found");
    }
    return Ok();
  }

  Result<bool> DeleteSession(std::string_view id) override {
    std::lock_guard<std::mutex> lock(mu_);
    ASYA_ASSIGN_OR_RETURN(auto q, Prepare("DELETE FROM mcp_sessions WHERE id = ?1"));
    ASYA_RETURN_IF_ERROR(q->Text(1, id).Run());
    return sqlite3_changes64(db_) > 0;
  }

  Result<std::int64_t> PurgeSessionsIdleBefore(TimePoint cutoff) override {
    std::lock_guard<std::mutex> lock(mu_);
    ASYA_ASSIGN_OR_RETURN(auto q, Prepare("DELETE FROM mcp_sessions WHERE last_seen_at < ?1"));
    ASYA_RETURN_IF_ERROR(q->Int(1, ToMicros(cutoff)).Run());
    return static_cast<std::int64_t>(sqlite3_changes64(db_));
  }

  Result<std::vector<Envelope>> List(const ListQuery& query) override {
    ASYA_RETURN_IF_ERROR(ValidateListQuery(query));
    std::lock_guard<std::mutex> lock(mu_);
    if (!query.before_id.empty()) {
      ASYA_RETURN_IF_ERROR(Load(query.before_id));  // kNotFound for an unknown cursor
    }
    ASYA_ASSIGN_OR_RETURN(
        auto q, Prepare(std::string("SELECT ") + kEnvelopeColumns +
                        " FROM envelopes WHERE (?1 = '' OR tool = ?1) AND (?2 = '' OR status = ?2) "
                        "AND (?3 = 0 OR parent_id IS NULL) AND (?4 = '' OR (created_at, id) < "
                        "(SELECT created_at, id FROM envelopes WHERE id = ?4)) "
                        "ORDER BY created_at DESC, id DESC LIMIT ?5"));
    q->Text(1, query.tool)
        .Text(2, query.status ? StatusName(*query.status) : std::string_view())
        .Int(3, query.roots_only ? 1 : 0)
        .Text(4, query.before_id)
        .Int(5, query.limit);
    std::vector<Envelope> out;
    while (true) {
      ASYA_ASSIGN_OR_RETURN(bool row, q->Step());
      if (!row) {
        return out;
      }
      ASYA_ASSIGN_OR_RETURN(Envelope e, ReadEnvelope(*q));
      out.push_back(std::move(e));
    }
  }

 private:
  asya::Status Exec(const char* sql) {
    char* err = nullptr;
    int rc = sqlite3_exec(db_, sql, nullptr, nullptr, &err);
    sqlite3_free(err);
    if (rc != SQLITE_OK) {
      return Unexpected(SqliteError(db_, sqlite3_extended_errcode(db_), "exec"));
    }
    return Ok();
  }

  // Under mu_. Statements are compiled once and kept (every call site has one fixed SQL text); a
  // text whose cached statement is still in use gets a fresh one-off statement.
  Result<std::unique_ptr<Stmt>> Prepare(const std::string& sql) {
    auto it = cache_.find(sql);
    if (it != cache_.end() && !it->second.in_use) {
      it->second.in_use = true;
      return std::make_unique<Stmt>(db_, it->second.stmt, &it->second.in_use);
    }
    const bool keep = it == cache_.end();
    sqlite3_stmt* stmt = nullptr;
    int rc = sqlite3_prepare_v3(db_, sql.c_str(), -1, keep ? SQLITE_PREPARE_PERSISTENT : 0, &stmt,
                                nullptr);
    if (rc != SQLITE_OK) {
      return Unexpected(SqliteError(db_, rc, "prepare"));
    }
    if (!keep) {
      return std::make_unique<Stmt>(db_, stmt);
    }
    Cached& cached = cache_[sql];
    cached.stmt = stmt;
    cached.in_use = true;
    return std::make_unique<Stmt>(db_, stmt, &cached.in_use);
  }

  // Commits when `body` succeeded, else rolls back and returns its error.
  asya::Status EndTx(asya::Status body) {
    if (!body) {
      (void)Exec("ROLLBACK");
      return body;
    }
    asya::Status c = Exec("COMMIT");
    if (!c) {
      (void)Exec("ROLLBACK");
    }
    return c;
  }

  template <class Planner>
  Result<Transition> Apply(std::string_view id, Planner planner) {
    Transition t;
    {
      std::lock_guard<std::mutex> lock(mu_);
      // An unknown id needs no write transaction: one read (autocommit) answers kNotFound, the
      // same answer as the transaction's Load, ordered at that read. Reports for envelopes the
      // gateway never created (`asya send`'s, in `asya up`) all take this path; a known id
      // costs this read on top of the transaction (a primary-key look-up).
      ASYA_RETURN_IF_ERROR(MustExist(id));
      ASYA_RETURN_IF_ERROR(Exec("BEGIN IMMEDIATE"));
      auto body = [&]() -> asya::Status {
        ASYA_ASSIGN_OR_RETURN(Envelope before, Load(id));
        ASYA_ASSIGN_OR_RETURN(Plan plan, planner(before, clock_.WallNow()));
        t.applied = plan.applied;
        t.envelope = std::move(plan.after);
        if (plan.applied) {
          ASYA_RETURN_IF_ERROR(Save(t.envelope));
          ASYA_ASSIGN_OR_RETURN(Update u, Append(plan.update));
          t.update = std::move(u);
        }
        return Ok();
      };
      ASYA_RETURN_IF_ERROR(EndTx(body()));
      if (t.update) {
        feed_.Push(*t.update);  // under mu_: the feed sees updates in seq order
      }
    }
    return t;
  }

  // kNotFound (with Load's message) when no envelope has this id.
  asya::Status MustExist(std::string_view id) {
    ASYA_ASSIGN_OR_RETURN(auto q, Prepare("SELECT 1 FROM envelopes WHERE id = ?1"));
    q->Text(1, id);
    ASYA_ASSIGN_OR_RETURN(bool row, q->Step());
    if (!row) {
      return MakeError(ErrorCode::kNotFound, "envelope '" + std::string(id) + "' not found");
    }
    return Ok();
  }

  Result<Envelope> Load(std::string_view id) {
    ASYA_ASSIGN_OR_RETURN(auto q, Prepare(std::string("SELECT ") + kEnvelopeColumns +
                                          " FROM envelopes WHERE id = ?1"));
    q->Text(1, id);
    ASYA_ASSIGN_OR_RETURN(bool row, q->Step());
    if (!row) {
      return MakeError(ErrorCode::kNotFound, "envelope '" + std::string(id) + "' not found");
    }
    return ReadEnvelope(*q);
  }

  static Result<Envelope> ReadEnvelope(const Stmt& q) {
    Envelope e;
    e.id = q.ColText(0);
    e.parent_id = q.ColText(1);
    e.status = StatusFromColumn(q.ColText(2));
    ASYA_ASSIGN_OR_RETURN(e.route_actors, ActorsFromJson(q.ColText(3)));
    e.route_current = static_cast<int>(q.ColInt(4));
    e.route_metadata_json = q.ColText(5);
    e.payload_json = q.ColText(6);
    e.result_json = q.ColText(7);
    e.error = q.ColText(8);
    e.message = q.ColText(9);
    e.tool = q.ColText(10);
    e.timeout_seconds = static_cast<int>(q.ColInt(11));
    if (!q.ColNull(12)) {
      e.deadline = FromMicros(q.ColInt(12));
    }
    e.progress_percent = q.ColReal(13);
    e.current_actor_idx = static_cast<int>(q.ColInt(14));
    e.current_actor_name = q.ColText(15);
    e.total_actors = static_cast<int>(q.ColInt(16));
    e.created_at = FromMicros(q.ColInt(17));
    e.updated_at = FromMicros(q.ColInt(18));
    return e;
  }

  asya::Status Insert(const Envelope& e) {
    ASYA_ASSIGN_OR_RETURN(
        auto q, Prepare(std::string("INSERT INTO envelopes (") + kEnvelopeColumns +
                        ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, "
                        "?15, ?16, ?17, ?18, ?19)"));
    q->Text(1, e.id)
        .TextOrNull(2, e.parent_id)
        .Text(3, StatusName(e.status))
        .Text(4, ActorsToJson(e.route_actors))
        .Int(5, e.route_current)
        .TextOrNull(6, e.route_metadata_json)
        .TextOrNull(7, e.payload_json)
        .TextOrNull(8, e.result_json)
        .TextOrNull(9, e.error)
        .TextOrNull(10, e.message)
        .TextOrNull(11, e.tool)
        .Int(12, e.timeout_seconds)
        .Real(14, e.progress_percent)
        .Int(15, e.current_actor_idx)
        .TextOrNull(16, e.current_actor_name)
        .Int(17, e.total_actors)
        .Int(18, ToMicros(e.created_at))
        .Int(19, ToMicros(e.updated_at));
    if (e.deadline) {
      q->Int(13, ToMicros(*e.deadline));
    } else {
      q->Null(13);
    }
    return q->Run();
  }

  // Writes the fields a transition may change.
  asya::Status Save(const Envelope& e) {
    ASYA_ASSIGN_OR_RETURN(
        auto q, Prepare("UPDATE envelopes SET status = ?2, route_actors = ?3, result = ?4, "
                        "error = ?5, message = ?6, progress_percent = ?7, current_actor_idx = ?8, "
                        "current_actor_name = ?9, total_actors = ?10, updated_at = ?11 "
                        "WHERE id = ?1"));
    q->Text(1, e.id)
        .Text(2, StatusName(e.status))
        .Text(3, ActorsToJson(e.route_actors))
        .TextOrNull(4, e.result_json)
        .TextOrNull(5, e.error)
        .TextOrNull(6, e.message)
        .Real(7, e.progress_percent)
        .Int(8, e.current_actor_idx)
        .TextOrNull(9, e.current_actor_name)
        .Int(10, e.total_actors)
        .Int(11, ToMicros(e.updated_at));
    return q->Run();
  }

  Result<Update> Append(Update u) {
    ASYA_ASSIGN_OR_RETURN(
        auto q, Prepare("INSERT INTO envelope_updates (envelope_id, status, message, error, "
                        "actor, actors, current_actor_idx, result, progress_percent, "
                        "envelope_state, timestamp) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, "
                        "?10, ?11)"));
    q->Text(1, u.envelope_id)
        .Text(2, StatusName(u.status))
        .TextOrNull(3, u.message)
        .TextOrNull(4, u.error)
        .TextOrNull(5, u.actor)
        .TextOrNull(8, u.result_json)
        .TextOrNull(10, u.envelope_state)
        .Int(11, ToMicros(u.timestamp));
    if (u.actors.empty()) {
      q->Null(6);
    } else {
      q->Text(6, ActorsToJson(u.actors));
    }
    if (u.current_actor_idx) {
      q->Int(7, *u.current_actor_idx);
    } else {
      q->Null(7);
    }
    if (u.progress_percent) {
      q->Real(9, *u.progress_percent);
    } else {
      q->Null(9);
    }
    ASYA_RETURN_IF_ERROR(q->Run());
    u.seq = sqlite3_last_insert_rowid(db_);
    return u;
  }

  static Result<Update> ReadUpdate(const Stmt& q) {
    Update u;
    u.seq = q.ColInt(0);
    u.envelope_id = q.ColText(1);
    u.status = StatusFromColumn(q.ColText(2));
    u.message = q.ColText(3);
    u.error = q.ColText(4);
    u.actor = q.ColText(5);
    ASYA_ASSIGN_OR_RETURN(u.actors, ActorsFromJson(q.ColText(6)));
    if (!q.ColNull(7)) {
      u.current_actor_idx = static_cast<int>(q.ColInt(7));
    }
    u.result_json = q.ColText(8);
    if (!q.ColNull(9)) {
      u.progress_percent = q.ColReal(9);
    }
    u.envelope_state = q.ColText(10);
    u.timestamp = FromMicros(q.ColInt(11));
    return u;
  }

  static Result<std::vector<std::string>> Ids(Stmt& q) {
    std::vector<std::string> out;
    while (true) {
      ASYA_ASSIGN_OR_RETURN(bool row, q.Step());
      if (!row) {
        return out;
      }
      out.push_back(q.ColText(0));
    }
  }

  struct Cached {
    sqlite3_stmt* stmt = nullptr;
    bool in_use = false;
  };

  std::mutex mu_;
  sqlite3* db_;
  std::unordered_map<std::string, Cached> cache_;  // SQL text -> its statement (under mu_)
  std::string path_;
  Clock& clock_;
  FeedDispatcher feed_;
};

}  // namespace

Result<std::unique_ptr<Store>> OpenSqlite(const std::string& path, Clock& clock) {
  sqlite3* db = nullptr;
  int rc =
      sqlite3_open_v2(path.c_str(), &db,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    Error e = SqliteError(db, rc, "cannot open '" + path + "'");
    e.code = ErrorCode::kUnavailable;
    sqlite3_close_v2(db);
    return Unexpected(std::move(e));
  }
  sqlite3_extended_result_codes(db, 1);
  sqlite3_busy_timeout(db, kBusyTimeoutMs);
  auto store = std::make_unique<SqliteStore>(db, path, clock);
  for (const char* pragma :
       {"PRAGMA journal_mode = WAL", "PRAGMA synchronous = NORMAL", "PRAGMA foreign_keys = ON"}) {
    char* err = nullptr;
    rc = sqlite3_exec(db, pragma, nullptr, nullptr, &err);
    sqlite3_free(err);
    if (rc != SQLITE_OK) {
      Error e = SqliteError(db, sqlite3_extended_errcode(db), "'" + path + "': " + pragma);
      e.code = ErrorCode::kUnavailable;
      return Unexpected(std::move(e));
    }
  }
  asya::Status migrated = store->Migrate();
  if (!migrated) {
    Error e = migrated.error();
    e.message = "'" + path + "': " + e.message;
    if (e.code == ErrorCode::kInternal) {
      e.code = ErrorCode::kUnavailable;  // not a database, or not ours
    }
    return Unexpected(std::move(e));
  }
  return std::unique_ptr<Store>(std::move(store));
}

}  // namespace asya::store::internal
