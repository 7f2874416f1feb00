// The PostgreSQL backend (libpq): a small connection pool, parameterised statements only
// (PQexecParams; the constant schema DDL is the one exception), the schema created and migrated
// by the store itself, and a change feed across processes through LISTEN/NOTIFY.
//
// Transitions lock the envelope row (SELECT ... FOR UPDATE), so concurrent reports for one
// envelope apply one after the other and a final state is final for every replica.
#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <libpq-fe.h>
#include <nlohmann/json.hpp>

#include "asya/base/redact.h"
#include "asya/store/rules.h"
#include "asya/store/store.h"
#include "store/internal.h"

namespace asya::store::internal {
namespace {

// Serialises concurrent migrations of one database (pg_advisory_xact_lock key).
constexpr const char* kMigrationLock = "7346091823";

// Migration 1: the original gateway's tables (reference-controlplane §7.12), created only when
// absent, so a database the original gateway made is adopted as it is.
constexpr const char* kMigration1 = R"sql(
CREATE TABLE IF NOT EXISTS envelopes (
  id TEXT PRIMARY KEY,
  parent_id TEXT,
  status TEXT NOT NULL CHECK (status IN ('pending','running','succeeded','failed','unknown')),
  route_actors TEXT[] NOT NULL,
  route_current INTEGER NOT NULL DEFAULT 0,
  payload JSONB,
  result JSONB,
  error TEXT,
  message TEXT,
  current_actor_name TEXT,
  timeout_sec INTEGER,
  deadline TIMESTAMPTZ,
  progress_percent DECIMAL(5,2) DEFAULT 0 CHECK (progress_percent >= 0 AND progress_percent <= 100),
  current_actor_idx INTEGER DEFAULT 0,
  actors_completed INTEGER DEFAULT 0 CHECK (actors_completed >= 0),
  total_actors INTEGER DEFAULT 0 CHECK (total_actors >= 0),
  created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS idx_envelopes_parent_id ON envelopes(parent_id) WHERE parent_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS idx_envelopes_status ON envelopes(status);
CREATE INDEX IF NOT EXISTS idx_envelopes_deadline ON envelopes(deadline) WHERE deadline IS NOT NULL;
CREATE INDEX IF NOT EXISTS idx_envelopes_progress ON envelopes(progress_percent)
  WHERE progress_percent < 100;
CREATE INDEX IF NOT EXISTS idx_envelopes_created_at ON envelopes(created_at DESC);
CREATE INDEX IF NOT EXISTS idx_envelopes_updated_at ON envelopes(updated_at DESC);
CREATE TABLE IF NOT EXISTS envelope_updates (
  id BIGSERIAL PRIMARY KEY,
  envelope_id TEXT NOT NULL REFERENCES envelopes(id) ON DELETE CASCADE,
  status TEXT NOT NULL,
  message TEXT,
  error TEXT,
  actor TEXT,
  result JSONB,
  progress_percent DECIMAL(5,2),
  envelope_state TEXT CHECK (envelope_state IS NULL OR
    envelope_state IN ('received','processing','completed')),
  "timestamp" TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS idx_envelope_updates_envelope_id
  ON envelope_updates(envelope_id, "timestamp" DESC);
CREATE INDEX IF NOT EXISTS idx_envelope_updates_timestamp ON envelope_updates("timestamp" DESC);
UPDATE envelopes SET status = lower(status) WHERE status <> lower(status);
UPDATE envelope_updates SET status = lower(status) WHERE status <> lower(status);
)sql";

// Migration 2: our additions. Nullable columns, the `cancelled` status, an updated_at trigger
// that keeps the time the store stamped (sessions of this store set asya.store_clock=on; any
// other writer still gets now()), the NOTIFY trigger of the change feed, and an index for
// History's order.
constexpr const char* kMigration2 = R"sql(
ALTER TABLE envelopes ADD COLUMN IF NOT EXISTS tool TEXT,
  ADD COLUMN IF NOT EXISTS route_metadata JSONB,
  ADD COLUMN IF NOT EXISTS headers JSONB;
ALTER TABLE envelope_updates ADD COLUMN IF NOT EXISTS actors TEXT[],
  ADD COLUMN IF NOT EXISTS current_actor_idx INTEGER;
DO $$
DECLARE c record;
BEGIN
  FOR c IN SELECT conname FROM pg_constraint
           WHERE conrelid = 'envelopes'::regclass AND contype = 'c'
             AND pg_get_constraintdef(oid) LIKE '%status%' LOOP
    EXECUTE format('ALTER TABLE envelopes DROP CONSTRAINT %I', c.conname);
  END LOOP;
END $$;
ALTER TABLE envelopes ADD CONSTRAINT envelopes_status_check
  CHECK (status IN ('pending','running','succeeded','failed','cancelled','unknown'));
CREATE OR REPLACE FUNCTION asya_envelopes_touch() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF current_setting('asya.store_clock', true) IS DISTINCT FROM 'on' THEN
    NEW.updated_at = now();
  END IF;
  RETURN NEW;
END $$;
DROP TRIGGER IF EXISTS update_envelopes_updated_at ON envelopes;
CREATE TRIGGER update_envelopes_updated_at BEFORE UPDATE ON envelopes
  FOR EACH ROW EXECUTE FUNCTION asya_envelopes_touch();
CREATE OR REPLACE FUNCTION asya_notify_envelope_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('asya_envelope_updates', NEW.id::text);
  RETURN NULL;
END $$;
DROP TRIGGER IF EXISTS asya_envelope_updates_notify ON envelope_updates;
CREATE TRIGGER asya_envelope_updates_notify AFTER INSERT ON envelope_updates
  FOR EACH ROW EXECUTE FUNCTION asya_notify_envelope_update();
CREATE INDEX IF NOT EXISTS idx_envelope_updates_envelope_seq ON envelope_updates(envelope_id, id);
)sql";

// Migration 3: MCP sessions shared by every replica.
constexpr const char* kMigration3 = R"sql(
CREATE TABLE IF NOT EXISTS mcp_sessions (
  id TEXT PRIMARY KEY,
  protocol_version TEXT NOT NULL,
  client_capabilities JSONB,
  created_at TIMESTAMPTZ NOT NULL,
  last_seen_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX IF NOT EXISTS idx_mcp_sessions_last_seen_at ON mcp_sessions(last_seen_at);
)sql";

// Migration 4: the change feed's NOTIFY carries the update itself, so no listener reads it
// back: "<seq> <json>" with the row's columns as the feed's SELECT returns them (result as its
// jsonb text, time in microseconds). A payload that would not fit NOTIFY's limit (8000 bytes;
// a large result) is the bare "<seq>", which listeners read back as before. A listener that only
// parses the leading number (an older replica during a rolling upgrade) still works.
constexpr const char* kMigration4 = R"sql(
CREATE OR REPLACE FUNCTION asya_notify_envelope_update() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE p text;
BEGIN
  p := NEW.id::text || ' ' || json_build_object(
    'e', NEW.envelope_id, 's', NEW.status, 'm', NEW.message, 'x', NEW.error, 'a', NEW.actor,
    'as', NEW.actors, 'i', NEW.current_actor_idx, 'r', NEW.result::text,
    'p', NEW.progress_percent::float8, 'st', NEW.envelope_state,
    't', (extract(epoch from NEW."timestamp") * 1000000)::bigint)::text;
  IF octet_length(p) > 7900 THEN
    p := NEW.id::text;
  END IF;
  PERFORM pg_notify('asya_envelope_updates', p);
  RETURN NULL;
END $$;
)sql";

struct Migration {
  int version;
  const char* name;
  const char* sql;
};
constexpr Migration kMigrations[] = {
    {1, "original gateway tables (sqitch 001-004)", kMigration1},
    {2, "asya additions: tool, route_metadata, headers, cancelled, feed trigger", kMigration2},
    {3, "mcp sessions", kMigration3},
    {4, "feed: NOTIFY payload carries the update", kMigration4},
};

#define ASYA_TS(n) "('epoch'::timestamptz + $" #n "::bigint * interval '1 microsecond')"
#define ASYA_MICROS(col) "(extract(epoch from " col ") * 1000000)::bigint"
#define ASYA_ACTORS(n)                                \
  "ARRAY(SELECT a FROM json_array_elements_text($" #n \
  "::json) WITH ORDINALITY AS t(a, n) "               \
  "ORDER BY n)"

#define ASYA_ENVELOPE_COLUMNS \
  "id, parent_id, status, array_to_json(route_actors)::text, route_current, "                   \
  "route_metadata::text, payload::text, result::text, error, message, tool, timeout_sec, "      \
  ASYA_MICROS("deadline") ", progress_percent::float8, current_actor_idx, current_actor_name, " \
  "total_actors, " ASYA_MICROS("created_at") ", " ASYA_MICROS("updated_at")

constexpr const char* kEnvelopeSelect = "SELECT " ASYA_ENVELOPE_COLUMNS " FROM envelopes ";

constexpr const char* kUpdateSelect =
    "SELECT id, envelope_id, status, message, error, actor, array_to_json(actors)::text, "
    "current_actor_idx, result::text, progress_percent::float8, envelope_state, " ASYA_MICROS(
        "\"timestamp\"") " FROM envelope_updates ";

// A URL fit for an error message: user-info replaced by *** (asya/base/redact.h).
std::string Redact(const std::string& url) {
  return RedactSecrets(RedactUrl(url));
}

std::string Trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) {
    s.pop_back();
  }
  return s;
}

class PgResult {
 public:
  explicit PgResult(PGresult* r) : r_(r) {}
  PgResult(PgResult&& o) noexcept : r_(std::exchange(o.r_, nullptr)) {}
  PgResult& operator=(PgResult&&) = delete;
  PgResult(const PgResult&) = delete;
  ~PgResult() { PQclear(r_); }
  int Rows() const { return PQntuples(r_); }
  bool Null(int row, int col) const { return PQgetisnull(r_, row, col) != 0; }
  std::string Text(int row, int col) const {
    return Null(row, col) ? std::string()
                          : std::string(PQgetvalue(r_, row, col), PQgetlength(r_, row, col));
  }
  std::int64_t Int(int row, int col) const {
    return Null(row, col) ? 0 : std::strtoll(PQgetvalue(r_, row, col), nullptr, 10);
  }
  double Real(int row, int col) const {
    return Null(row, col) ? 0 : std::strtod(PQgetvalue(r_, row, col), nullptr);
  }
  std::int64_t Affected() const { return std::strtoll(PQcmdTuples(r_), nullptr, 10); }

 private:
  PGresult* r_;
};

// Text parameters; nullopt is SQL NULL.
class Params {
 public:
  Params& Add(std::string v) {
    values_.emplace_back(std::move(v));
    return *this;
  }
  Params& AddOrNull(const std::string& v) {
    if (v.empty()) {
      values_.emplace_back(std::nullopt);
    } else {
      values_.emplace_back(v);
    }
    return *this;
  }
  Params& Null() {
    values_.emplace_back(std::nullopt);
    return *this;
  }
  Params& Int(std::int64_t v) { return Add(std::to_string(v)); }
  std::vector<const char*> Pointers() const {
    std::vector<const char*> out;
    out.reserve(values_.size());
    for (const auto& v : values_) {
      out.push_back(v ? v->c_str() : nullptr);
    }
    return out;
  }
  int size() const { return static_cast<int>(values_.size()); }

 private:
  std::vector<std::optional<std::string>> values_;
};

bool Broken(PGconn* c) {
  return PQstatus(c) != CONNECTION_OK;
}

// An idle connection is alive when its socket has nothing to read, or what it has (a notice) is
// not the end of the stream. No round trip.
bool Alive(PGconn* c) {
  for (int i = 0; i < 8 && !Broken(c); ++i) {
    pollfd fd{PQsocket(c), POLLIN, 0};
    if (poll(&fd, 1, 0) <= 0) {
      return true;
    }
    if (PQconsumeInput(c) == 0) {
      return false;
    }
  }
  return !Broken(c);
}

// Checks a result; maps SQLSTATEs to error codes.
Result<PgResult> Check(PGconn* c, PGresult* raw, const char* what) {
  PgResult res(raw);
  ExecStatusType st = PQresultStatus(raw);
  if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
    return res;
  }
  std::string msg = raw != nullptr ? Trim(PQresultErrorMessage(raw)) : Trim(PQerrorMessage(c));
  const char* state = raw != nullptr ? PQresultErrorField(raw, PG_DIAG_SQLSTATE) : nullptr;
  std::string sqlstate = state != nullptr ? state : "";
  ErrorCode code = ErrorCode::kInternal;
  if (Broken(c) || sqlstate.rfind("08", 0) == 0 || sqlstate.rfind("57P", 0) == 0) {
    code = ErrorCode::kUnavailable;
  } else if (sqlstate == "23505") {
    code = ErrorCode::kAlreadyExists;
  } else if (sqlstate.rfind("22", 0) == 0 || sqlstate == "23514") {
    code = ErrorCode::kInvalidArgument;
  } else if (sqlstate == "40001" || sqlstate == "40P01") {
    code = ErrorCode::kUnavailable;
  }
  return MakeError(code, std::string("postgres store: ") + what + ": " + msg);
}

Result<PgResult> Run(PGconn* c, const char* what, const char* sql,
                     const Params& params = Params()) {
  std::vector<const char*> values = params.Pointers();
  PGresult* raw = PQexecParams(c, sql, params.size(), nullptr, values.data(), nullptr, nullptr, 0);
  return Check(c, raw, what);
}

Result<PGconn*> Connect(const std::string& url) {
  // Later keywords win, and the URL (expanded from dbname) overrides the earlier defaults.
  const char* keys[] = {"connect_timeout", "application_name", "options", "dbname", nullptr};
  const char* values[] = {"10", "asya-store",
                          "-c asya.store_clock=on -c client_min_messages=warning", url.c_str(),
                          nullptr};
  PGconn* c = PQconnectdbParams(keys, values, /*expand_dbname=*/1);
  if (c == nullptr) {
    return MakeError(ErrorCode::kResourceExhausted, "postgres store: out of memory");
  }
  if (PQstatus(c) != CONNECTION_OK) {
    std::string msg = Trim(PQerrorMessage(c));
    PQfinish(c);
    return MakeError(ErrorCode::kUnavailable,
                     "postgres store: cannot connect to " + Redact(url) + ": " + msg);
  }
  // Server notices (and the FATAL of a terminated session) are not written to stderr: the
  // store reports what matters through its results.
  PQsetNoticeProcessor(
      c, [](void*, const char*) {}, nullptr);
  return c;
}

class Pool {
 public:
  Pool(std::string url, int max) : url_(std::move(url)), max_(max) {}
  ~Pool() {
    for (PGconn* c : idle_) {
      PQfinish(c);
    }
  }

  Result<PGconn*> Acquire() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return !idle_.empty() || open_ < max_; });
    while (!idle_.empty()) {
      PGconn* c = idle_.back();
      idle_.pop_back();
      // A session the server ended while idle (restart, pg_terminate_backend) shows here
      // without a round trip: its socket is readable (the FATAL message, then end of stream).
      if (Alive(c)) {
        return c;
      }
      PQfinish(c);
      --open_;
    }
    ++open_;
    lock.unlock();
    auto c = Connect(url_);
    if (!c) {
      lock.lock();
      --open_;
      cv_.notify_one();
    }
    return c;
  }

  // A broken connection is closed, and so is every idle one (after a server restart or a
  // terminated session they are likely broken too).
  void Release(PGconn* c) {
    std::vector<PGconn*> doomed;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (Broken(c)) {
        doomed.push_back(c);
        doomed.insert(doomed.end(), idle_.begin(), idle_.end());
        open_ -= static_cast<int>(doomed.size());
        idle_.clear();
      } else if (PQtransactionStatus(c) != PQTRANS_IDLE) {
        doomed.push_back(c);  // left inside a transaction: never reuse
        --open_;
      } else {
        idle_.push_back(c);
      }
    }
    for (PGconn* d : doomed) {
      PQfinish(d);
    }
    cv_.notify_all();
  }

  const std::string& url() const { return url_; }

 private:
  std::string url_;
  int max_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<PGconn*> idle_;
  int open_ = 0;
};

Result<Envelope> ReadEnvelope(const PgResult& r, int row) {
  Envelope e;
  e.id = r.Text(row, 0);
  e.parent_id = r.Text(row, 1);
  e.status = StatusFromColumn(r.Text(row, 2));
  ASYA_ASSIGN_OR_RETURN(e.route_actors, ActorsFromJson(r.Text(row, 3)));
  e.route_current = static_cast<int>(r.Int(row, 4));
  e.route_metadata_json = r.Text(row, 5);
  e.payload_json = r.Text(row, 6);
  e.result_json = r.Text(row, 7);
  e.error = r.Text(row, 8);
  e.message = r.Text(row, 9);
  e.tool = r.Text(row, 10);
  e.timeout_seconds = static_cast<int>(r.Int(row, 11));
  if (!r.Null(row, 12)) {
    e.deadline = FromMicros(r.Int(row, 12));
  }
  e.progress_percent = r.Real(row, 13);
  e.current_actor_idx = static_cast<int>(r.Int(row, 14));
  e.current_actor_name = r.Text(row, 15);
  e.total_actors = static_cast<int>(r.Int(row, 16));
  e.created_at = FromMicros(r.Int(row, 17));
  e.updated_at = FromMicros(r.Int(row, 18));
  return e;
}

Result<Update> ReadUpdate(const PgResult& r, int row) {
  Update u;
  u.seq = r.Int(row, 0);
  u.envelope_id = r.Text(row, 1);
  u.status = StatusFromColumn(r.Text(row, 2));
  u.message = r.Text(row, 3);
  u.error = r.Text(row, 4);
  u.actor = r.Text(row, 5);
  ASYA_ASSIGN_OR_RETURN(u.actors, ActorsFromJson(r.Text(row, 6)));
  if (!r.Null(row, 7)) {
    u.current_actor_idx = static_cast<int>(r.Int(row, 7));
  }
  u.result_json = r.Text(row, 8);
  if (!r.Null(row, 9)) {
    u.progress_percent = r.Real(row, 9);
  }
  u.envelope_state = r.Text(row, 10);
  u.timestamp = FromMicros(r.Int(row, 11));
  return u;
}

Result<std::vector<Update>> ReadUpdates(const PgResult& r) {
  std::vector<Update> out;
  out.reserve(static_cast<std::size_t>(r.Rows()));
  for (int i = 0; i < r.Rows(); ++i) {
    ASYA_ASSIGN_OR_RETURN(Update u, ReadUpdate(r, i));
    out.push_back(std::move(u));
  }
  return out;
}

std::vector<std::string> ReadIds(const PgResult& r) {
  std::vector<std::string> out;
  for (int i = 0; i < r.Rows(); ++i) {
    out.push_back(r.Text(i, 0));
  }
  return out;
}

// The feed: a dedicated connection LISTENs; each NOTIFY carries an update's seq, which the
// listener reads back and hands to the callback (on its own thread). After a broken connection
// it reconnects and catches up on the updates after the last one it delivered.
class Listener {
 public:
  Listener(std::string url, Clock& clock) : url_(std::move(url)), clock_(clock) {}
  ~Listener() { Stop(); }

  asya::Status Start(std::function<void(const Update&)> on_update) {
    if (thread_.joinable()) {
      return MakeError(ErrorCode::kFailedPrecondition, "the store's feed is already started");
    }
    wake_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (wake_ < 0) {
      return MakeError(ErrorCode::kInternal, "postgres store: eventfd failed");
    }
    on_update_ = std::move(on_update);
    asya::Status listening = Listen();
    if (listening) {
      auto max = Run(conn_, "feed start", "SELECT COALESCE(max(id), 0) FROM envelope_updates");
      if (max) {
        last_seq_ = max->Int(0, 0);
        thread_ = std::thread([this] { Loop(); });
        return Ok();
      }
      listening = Unexpected(max.error());
    }
    Stop();  // closes what was opened; Start may be called again
    return listening;
  }

  void Stop() {
    if (thread_.joinable()) {
      {
        std::lock_guard<std::mutex> lock(mu_);
        stop_ = true;
      }
      cv_.notify_all();
      std::uint64_t one = 1;
      (void)!write(wake_, &one, sizeof(one));
      thread_.join();
    }
    if (conn_ != nullptr) {
      PQfinish(conn_);
      conn_ = nullptr;
    }
    if (wake_ >= 0) {
      close(wake_);
      wake_ = -1;
    }
  }

 private:
  asya::Status Listen() {
    ASYA_ASSIGN_OR_RETURN(conn_, Connect(url_));
    auto r = Run(conn_, "LISTEN", "LISTEN asya_envelope_updates");
    if (!r) {
      PQfinish(conn_);
      conn_ = nullptr;
      return Unexpected(r.error());
    }
    return Ok();
  }

  bool Stopping() {
    std::lock_guard<std::mutex> lock(mu_);
    return stop_;
  }

  void Loop() {
    auto backoff = std::chrono::milliseconds(100);
    while (!Stopping()) {
      if (conn_ == nullptr) {
        if (Listen()) {
          backoff = std::chrono::milliseconds(100);
          CatchUp();
        } else {
          std::unique_lock<std::mutex> lock(mu_);
          clock_.WaitFor(lock, cv_, backoff, [&] { return stop_; });
          backoff = std::min(backoff * 2, std::chrono::milliseconds(5000));
        }
        continue;
      }
      pollfd fds[2] = {{PQsocket(conn_), POLLIN, 0}, {wake_, POLLIN, 0}};
      if (poll(fds, 2, -1) < 0) {
        continue;  // EINTR
      }
      if ((fds[1].revents & POLLIN) != 0) {
        break;
      }
      if (PQconsumeInput(conn_) == 0) {
        Drop();
        continue;
      }
      Drain();
    }
  }

  void Drop() {
    PQfinish(conn_);
    conn_ = nullptr;
  }

  // Delivers what arrived: updates carried in their payload as they are, the others (payload
  // too large for NOTIFY, or written by an older trigger) read back in one SELECT; in seq order.
  void Drain() {
    while (conn_ != nullptr) {
      std::vector<Update> carried;
      std::string ids;
      while (PGnotify* n = PQnotifies(conn_)) {
        if (auto u = ParsePayload(n->extra)) {
          carried.push_back(std::move(*u));
        } else {
          ids += ids.empty() ? "{" : ",";
          ids += std::to_string(std::strtoll(n->extra, nullptr, 10));
        }
        PQfreemem(n);
      }
      if (carried.empty() && ids.empty()) {
        return;
      }
      if (!ids.empty()) {
        ids += "}";
        std::string sql = std::string(kUpdateSelect) + "WHERE id = ANY($1::bigint[]) ORDER BY id";
        auto rows = Run(conn_, "feed fetch", sql.c_str(), Params().Add(ids));
        if (!rows && Broken(conn_)) {
          Drop();  // the reconnect's catch-up reads these (and the carried ones) again
          return;
        }
        auto read =
            rows ? ReadUpdates(*rows) : Result<std::vector<Update>>(Unexpected(rows.error()));
        if (read) {
          carried.insert(carried.end(), std::make_move_iterator(read->begin()),
                         std::make_move_iterator(read->end()));
        }
      }
      std::sort(carried.begin(), carried.end(),
                [](const Update& a, const Update& b) { return a.seq < b.seq; });
      for (const Update& u : carried) {
        last_seq_ = std::max(last_seq_, u.seq);
        on_update_(u);
      }
    }
  }

  // "<seq> <json>" as migration 4's trigger writes it; nullopt for a bare "<seq>" (or anything
  // else), which is read back from the table.
  static std::optional<Update> ParsePayload(const char* payload) {
    char* end = nullptr;
    const long long seq = std::strtoll(payload, &end, 10);
    if (end == payload || *end != ' ') {
      return std::nullopt;
    }
    auto j = nlohmann::json::parse(end + 1, nullptr, /*allow_exceptions=*/false);
    if (!j.is_object()) {
      return std::nullopt;
    }
    auto text = [&](const char* key) -> std::string {
      auto it = j.find(key);
      return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
    };
    Update u;
    u.seq = seq;
    u.envelope_id = text("e");
    if (u.envelope_id.empty()) {
      return std::nullopt;
    }
    u.status = StatusFromColumn(text("s"));
    u.message = text("m");
    u.error = text("x");
    u.actor = text("a");
    if (auto it = j.find("as"); it != j.end() && it->is_array()) {
      for (const auto& a : *it) {
        if (!a.is_string()) {
          return std::nullopt;
        }
        u.actors.push_back(a.get<std::string>());
      }
    }
    if (auto it = j.find("i"); it != j.end() && it->is_number_integer()) {
      u.current_actor_idx = it->get<int>();
    }
    u.result_json = text("r");
    if (auto it = j.find("p"); it != j.end() && it->is_number()) {
      u.progress_percent = it->get<double>();
    }
    u.envelope_state = text("st");
    auto t = j.find("t");
    if (t == j.end() || !t->is_number_integer()) {
      return std::nullopt;
    }
    u.timestamp = FromMicros(t->get<std::int64_t>());
    return u;
  }

  void CatchUp() {
    std::string sql = std::string(kUpdateSelect) + "WHERE id > $1::bigint ORDER BY id LIMIT 10000";
    Deliver(Run(conn_, "feed catch-up", sql.c_str(), Params().Int(last_seq_)));
  }

  void Deliver(Result<PgResult> rows) {
    if (!rows) {
      if (Broken(conn_)) {
        Drop();
      }
      return;
    }
    auto updates = ReadUpdates(*rows);
    if (!updates) {
      return;
    }
    for (const Update& u : *updates) {
      last_seq_ = std::max(last_seq_, u.seq);
      on_update_(u);
    }
  }

  std::string url_;
  Clock& clock_;
  std::function<void(const Update&)> on_update_;
  PGconn* conn_ = nullptr;
  int wake_ = -1;
  std::int64_t last_seq_ = 0;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread thread_;
};

class PostgresStore final : public Store {
 public:
  PostgresStore(std::string url, Clock& clock, int max_connections)
      : pool_(url, max_connections), listener_(std::move(url), clock), clock_(clock) {}

  asya::Status Migrate() {
    return InTx([&](PGconn* c) -> asya::Status {
      ASYA_RETURN_IF_ERROR(Run(c, "migration lock", "SELECT pg_advisory_xact_lock($1::bigint)",
                               Params().Add(kMigrationLock)));
      ASYA_RETURN_IF_ERROR(Run(c, "migrations table",
                               "CREATE TABLE IF NOT EXISTS asya_store_migrations ("
                               "version INTEGER PRIMARY KEY, name TEXT NOT NULL, "
                               "applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"));
      ASYA_ASSIGN_OR_RETURN(auto v, Run(c, "migration version",
                                        "SELECT COALESCE(max(version), 0) FROM "
                                        "asya_store_migrations"));
      std::int64_t version = v.Int(0, 0);
      for (const Migration& m : kMigrations) {
        if (m.version <= version) {
          continue;
        }
        // Constant DDL without parameters: the simple query protocol runs it as one batch.
        ASYA_RETURN_IF_ERROR(Check(c, PQexec(c, m.sql), m.name));
        ASYA_RETURN_IF_ERROR(Run(c, "record migration",
                                 "INSERT INTO asya_store_migrations (version, name) "
                                 "VALUES ($1::int, $2)",
                                 Params().Int(m.version).Add(m.name)));
      }
      return Ok();
    });
  }

  // Create's 22 parameters, in the order of its statement (CreateMany repeats them per row).
  static void AddCreateParams(Params& p, const Plan& plan) {
    const Envelope& e = plan.after;
    const Update& u = plan.update;
    p.Add(e.id)
        .AddOrNull(e.parent_id)
        .Add(std::string(StatusName(e.status)))
        .Add(ActorsToJson(e.route_actors))
        .Int(e.route_current)
        .AddOrNull(e.route_metadata_json)
        .AddOrNull(e.payload_json)
        .AddOrNull(e.result_json)
        .AddOrNull(e.error)
        .AddOrNull(e.message)
        .AddOrNull(e.tool)
        .Int(e.timeout_seconds);
    if (e.deadline) {
      p.Int(ToMicros(*e.deadline));
    } else {
      p.Null();
    }
    p.Add(PercentText(e.progress_percent))
        .Int(e.current_actor_idx)
        .AddOrNull(e.current_actor_name)
        .Int(e.total_actors)
        .Int(ToMicros(e.created_at))
        .Int(ToMicros(e.updated_at))
        .AddOrNull(u.message)
        .Add(PercentText(u.progress_percent.value_or(0)))
        .Int(ToMicros(u.timestamp));
  }

  Result<void> Create(const Envelope& envelope) override {
    ASYA_RETURN_IF_ERROR(ValidateNewEnvelope(envelope));
    Plan plan = PlanCreate(envelope, clock_.WallNow());
    const Envelope& e = plan.after;
    Params p;
    AddCreateParams(p, plan);
    // One statement (its own transaction, one round trip): the row and its first update.
    ASYA_ASSIGN_OR_RETURN(PGconn * c, pool_.Acquire());
    auto ins = Run(
        c, "create envelope",
        "WITH e AS (INSERT INTO envelopes (id, parent_id, status, route_actors, route_current, "
        "route_metadata, payload, result, error, message, tool, timeout_sec, deadline, "
        "progress_percent, current_actor_idx, current_actor_name, total_actors, created_at, "
        "updated_at) VALUES ($1, $2, $3, " ASYA_ACTORS(4) ", $5::int, $6::jsonb, $7::jsonb, "
        "$8::jsonb, $9, $10, $11, $12::int, " ASYA_TS(13) ", $14::numeric, $15::int, $16, "
        "$17::int, " ASYA_TS(18) ", " ASYA_TS(19) ") ON CONFLICT (id) DO NOTHING "
        "RETURNING id, status) "
        "INSERT INTO envelope_updates (envelope_id, status, message, progress_percent, "
        "\"timestamp\") SELECT id, status, $20, $21::numeric, " ASYA_TS(22) " FROM e "
        "RETURNING id",
        p);
    pool_.Release(c);
    if (!ins) {
      return Unexpected(ins.error());
    }
    if (ins->Rows() == 0) {
      return MakeError(ErrorCode::kAlreadyExists, "envelope '" + e.id + "' already exists");
    }
    return Ok();
  }

  // Create's statement for a batch: the rows as VALUES (every parameter cast, as in Create), the
  // envelopes inserted in the order given, and the first update of each envelope actually
  // inserted. One statement: one transaction, one commit, one round trip.
  std::vector<Result<void>> CreateMany(const std::vector<Envelope>& envelopes) override {
    if (envelopes.size() <= 1) {
      return Store::CreateMany(envelopes);
    }
    std::vector<Result<void>> out(envelopes.size(), Result<void>{});
    const TimePoint now = clock_.WallNow();
    Params p;
    std::string rows;
    std::vector<std::size_t> sent;  // indices of the envelopes in the statement
    std::map<std::string, std::size_t, std::less<>> ids;
    int n = 0;  // last parameter number used
    // Appends the next parameter with its cast (a timestamp from microseconds for "ts").
    auto arg = [&rows, &n](std::string_view cast) {
      rows += ", ";
      if (cast == "ts") {
        rows += "('epoch'::timestamptz + $" + std::to_string(++n) +
                "::bigint * interval '1 microsecond')";
      } else if (cast == "actors") {
        rows += "ARRAY(SELECT a FROM json_array_elements_text($" + std::to_string(++n) +
                "::json) WITH ORDINALITY AS t(a, n) ORDER BY n)";
      } else {
        rows += "$" + std::to_string(++n) + "::" + std::string(cast);
      }
    };
    // The columns of v after ord, in AddCreateParams' order.
    static constexpr std::string_view kCasts[] = {
        "text", "text", "text", "actors", "int",     "jsonb",   "jsonb", "jsonb",
        "text", "text", "text", "int",    "ts",      "numeric", "int",   "text",
        "int",  "ts",   "ts",   "text",   "numeric", "ts"};
    for (std::size_t i = 0; i < envelopes.size(); ++i) {
      if (auto st = ValidateNewEnvelope(envelopes[i]); !st) {
        out[i] = Unexpected(st.error());
        continue;
      }
      if (!ids.emplace(envelopes[i].id, i).second) {
        out[i] = MakeError(ErrorCode::kAlreadyExists,
                           "envelope '" + envelopes[i].id + "' already exists");
        continue;
      }
      Plan plan = PlanCreate(envelopes[i], now);
      AddCreateParams(p, plan);
      rows += rows.empty() ? "(" : ", (";
      rows += std::to_string(sent.size());
      for (std::string_view cast : kCasts) {
        arg(cast);
      }
      rows += ")";
      sent.push_back(i);
    }
    if (sent.empty()) {
      return out;
    }
    const std::string sql =
        "WITH v (ord, id, parent_id, status, route_actors, route_current, route_metadata, "
        "payload, result, error, message, tool, timeout_sec, deadline, progress_percent, "
        "current_actor_idx, current_actor_name, total_actors, created_at, updated_at, "
        "u_message, u_percent, u_ts) AS (VALUES " +
        rows +
        "), e AS (INSERT INTO envelopes (id, parent_id, status, route_actors, route_current, "
        "route_metadata, payload, result, error, message, tool, timeout_sec, deadline, "
        "progress_percent, current_actor_idx, current_actor_name, total_actors, created_at, "
        "updated_at) SELECT id, parent_id, status, route_actors, route_current, route_metadata, "
        "payload, result, error, message, tool, timeout_sec, deadline, progress_percent, "
        "current_actor_idx, current_actor_name, total_actors, created_at, updated_at FROM v "
        "ORDER BY ord ON CONFLICT (id) DO NOTHING RETURNING id, status) "
        "INSERT INTO envelope_updates (envelope_id, status, message, progress_percent, "
        "\"timestamp\") SELECT e.id, e.status, v.u_message, v.u_percent, v.u_ts FROM e "
        "JOIN v ON v.id = e.id ORDER BY v.ord RETURNING envelope_id";
    auto conn = pool_.Acquire();
    if (!conn) {
      for (std::size_t i : sent) {
        out[i] = Unexpected(conn.error());
      }
      return out;
    }
    auto ins = Run(*conn, "create envelopes", sql.c_str(), p);
    pool_.Release(*conn);
    if (!ins) {
      for (std::size_t i : sent) {
        out[i] = Unexpected(ins.error());
      }
      return out;
    }
    for (int row = 0; row < ins->Rows(); ++row) {
      ids.erase(ins->Text(row, 0));
    }
    for (std::size_t i : sent) {  // not inserted: the id was taken
      if (ids.count(envelopes[i].id) > 0) {
        out[i] = MakeError(ErrorCode::kAlreadyExists,
                           "envelope '" + envelopes[i].id + "' already exists");
      }
    }
    return out;
  }

  Result<Envelope> Get(std::string_view id) override {
    return InRead([&](PGconn* c) { return Load(c, id, false); });
  }

  // MarkRunning and Finish are one conditional UPDATE each (plus the history row, in the same
  // statement): one round trip when applied. Under concurrency PostgreSQL re-checks the WHERE on
  // the row a competing transaction committed, so exactly one caller applies. The effect is the
  // one PlanMarkRunning / PlanFinish describe (the contract suite holds both backends to it).
  Result<Transition> MarkRunning(std::string_view id, std::string_view message) override {
    const TimePoint now = clock_.WallNow();
    Params p;
    p.Add(std::string(id)).AddOrNull(std::string(message)).Int(ToMicros(now));
    Update u;
    u.envelope_id = std::string(id);
    u.status = Status::kRunning;
    u.message = std::string(message);
    u.timestamp = now;
    return Conditional(id, p, std::move(u),
                       "WITH u AS (UPDATE envelopes SET status = 'running', "
                       "message = COALESCE($2, message), updated_at = " ASYA_TS(3) " "
                       "WHERE id = $1 AND status = 'pending' RETURNING *), "
                       "h AS (INSERT INTO envelope_updates (envelope_id, status, message, "
                       "\"timestamp\") SELECT id, 'running', $2, " ASYA_TS(3) " FROM u "
                       "RETURNING id) "
                       "SELECT " ASYA_ENVELOPE_COLUMNS ", (SELECT id FROM h) FROM u");
  }

  // The batch form of MarkRunning's statement: the envelopes still pending move, each with its
  // history row; the others are read back afterwards (final, running or unknown).
  std::vector<Result<Transition>> MarkRunningMany(const std::vector<std::string>& ids,
                                                  std::string_view message) override {
    if (ids.size() <= 1) {
      return Store::MarkRunningMany(ids, message);
    }
    const TimePoint now = clock_.WallNow();
    Params p;
    p.Add(ActorsToJson(ids)).AddOrNull(std::string(message)).Int(ToMicros(now));
    std::vector<Result<Transition>> out;
    out.reserve(ids.size());
    auto conn = pool_.Acquire();
    if (!conn) {
      for (std::size_t i = 0; i < ids.size(); ++i) {
        out.push_back(Unexpected(conn.error()));
      }
      return out;
    }
    PGconn* c = *conn;
    auto r = Run(c, "transition batch",
                 "WITH u AS (UPDATE envelopes SET status = 'running', "
                 "message = COALESCE($2, message), updated_at = " ASYA_TS(3) " "
                 "WHERE id = ANY(ARRAY(SELECT json_array_elements_text($1::json))) "
                 "AND status = 'pending' RETURNING *), "
                 "h AS (INSERT INTO envelope_updates (envelope_id, status, message, "
                 "\"timestamp\") SELECT id, 'running', $2, " ASYA_TS(3) " FROM u "
                 "RETURNING id AS seq, envelope_id AS eid) "
                 "SELECT " ASYA_ENVELOPE_COLUMNS ", h.seq FROM u JOIN h ON h.eid = u.id",
                 p);
    pool_.Release(c);
    if (!r) {
      for (std::size_t i = 0; i < ids.size(); ++i) {
        out.push_back(Unexpected(r.error()));
      }
      return out;
    }
    std::map<std::string, Transition, std::less<>> moved;
    for (int row = 0; row < r->Rows(); ++row) {
      auto e = ReadEnvelope(*r, row);
      if (!e) {
        continue;  // read back below
      }
      Transition t;
      t.applied = true;
      Update u;
      u.seq = r->Int(row, 19);
      u.envelope_id = e->id;
      u.status = Status::kRunning;
      u.message = std::string(message);
      u.timestamp = now;
      t.update = std::move(u);
      t.envelope = std::move(*e);
      std::string id = t.envelope.id;
      moved.emplace(std::move(id), std::move(t));
    }
    for (const auto& id : ids) {
      if (auto it = moved.find(id); it != moved.end()) {
        out.push_back(std::move(it->second));
        moved.erase(it);
        continue;
      }
      auto e = Get(id);
      if (!e) {
        out.push_back(Unexpected(e.error()));
        continue;
      }
      Transition t;
      t.envelope = std::move(*e);
      out.push_back(std::move(t));
    }
    return out;
  }

  Result<Transition> ReportProgress(std::string_view id, const ProgressReport& report) override {
    return Apply(id, [&](const Envelope& before, TimePoint now) {
      return PlanProgress(before, report, now);
    });
  }

  Result<Transition> Finish(std::string_view id, const FinalReport& report) override {
    ASYA_RETURN_IF_ERROR(ValidateFinalReport(report));
    const TimePoint now = clock_.WallNow();
    Params p;
    p.Add(std::string(id))
        .Add(std::string(StatusName(report.status)))
        .AddOrNull(report.result_json)
        .AddOrNull(report.error)
        .AddOrNull(report.message)
        .Int(ToMicros(now));
    Update u;
    u.envelope_id = std::string(id);
    u.status = report.status;
    u.message = report.message;
    u.error = report.error;
    u.result_json = report.result_json;
    u.progress_percent = 100;
    u.timestamp = now;
    return Conditional(
        id, p, std::move(u),
        "WITH u AS (UPDATE envelopes SET status = $2, result = COALESCE($3::jsonb, result), "
        "error = COALESCE($4, error), message = COALESCE($5, message), progress_percent = 100, "
        "updated_at = " ASYA_TS(6) " WHERE id = $1 AND status NOT IN "
        "('succeeded','failed','cancelled') RETURNING *), "
        "h AS (INSERT INTO envelope_updates (envelope_id, status, message, error, result, "
        "progress_percent, \"timestamp\") SELECT id, $2, $5, $4, $3::jsonb, 100, " ASYA_TS(6) " "
        "FROM u RETURNING id) "
        "SELECT " ASYA_ENVELOPE_COLUMNS ", (SELECT id FROM h) FROM u");
  }

  Result<std::vector<Update>> History(std::string_view id, std::int64_t after_seq) override {
    std::string sql =
        std::string(kUpdateSelect) + "WHERE envelope_id = $1 AND id > $2::bigint ORDER BY id";
    return InRead([&](PGconn* c) -> Result<std::vector<Update>> {
      ASYA_ASSIGN_OR_RETURN(
          auto r, Run(c, "history", sql.c_str(), Params().Add(std::string(id)).Int(after_seq)));
      return ReadUpdates(r);
    });
  }

  Result<std::vector<std::string>> Children(std::string_view id) override {
    return InRead([&](PGconn* c) -> Result<std::vector<std::string>> {
      ASYA_ASSIGN_OR_RETURN(
          auto r, Run(c, "children",
                      "SELECT e.id FROM envelopes e WHERE e.parent_id = $1 ORDER BY e.created_at, "
                      "(SELECT min(u.id) FROM envelope_updates u WHERE u.envelope_id = e.id), e.id",
                      Params().Add(std::string(id))));
      return ReadIds(r);
    });
  }

  Result<std::vector<std::string>> ExpiredBefore(TimePoint now, int limit) override {
    return InRead([&](PGconn* c) -> Result<std::vector<std::string>> {
      ASYA_ASSIGN_OR_RETURN(
          auto r, Run(c, "expired",
                      "SELECT id FROM envelopes WHERE deadline IS NOT NULL AND deadline < " ASYA_TS(
                          1) " AND status NOT IN ('succeeded','failed','cancelled') "
                             "ORDER BY deadline, id LIMIT $2::int",
                      Params().Int(ToMicros(now)).Int(limit)));
      return ReadIds(r);
    });
  }

  Result<std::int64_t> PurgeFinishedBefore(TimePoint cutoff) override {
    return InTx([&](PGconn* c) -> Result<std::int64_t> {
      ASYA_ASSIGN_OR_RETURN(
          auto r, Run(c, "purge",
                      "DELETE FROM envelopes WHERE status IN ('succeeded','failed','cancelled') "
                      "AND updated_at < " ASYA_TS(1),
                      Params().Int(ToMicros(cutoff))));
      return r.Affected();
    });
  }

  Result<void> StartFeed(std::function<void(const Update&)> on_update) override {
    return listener_.Start(std::move(on_update));
  }

  Result<void> CreateSession(const McpSession& session) override {
    ASYA_RETURN_IF_ERROR(ValidateNewSession(session));
    Params p;
    p.Add(session.id)
        .Add(session.protocol_version)
        .AddOrNull(session.client_capabilities_json)
        .Int(ToMicros(clock_.WallNow()));
    return Once([&](PGconn* c) -> Result<void> {
      ASYA_ASSIGN_OR_RETURN(
          auto r,
          Run(c, "create session",
              "INSERT INTO mcp_sessions (id, protocol_version, "
              "client_capabilities, created_at, last_seen_at) VALUES "
              "($1, $2, $3::jsonb, " ASYA_TS(4) ", " ASYA_TS(4) ") "
                                                                "ON CONFLICT (id) DO NOTHING",
              p));
      if (r.Affected() == 0) {
        return MakeError(ErrorCode::kAlreadyExists, "session '" + session.id + "' already exists");
      }
      return Ok();
    });
  }

  Result<McpSession> GetSession(std::string_view id) override {
    return InRead([&](PGconn* c) -> Result<McpSession> {
      ASYA_ASSIGN_OR_RETURN(
          auto r, Run(c, "get session",
                      "SELECT id, protocol_version, client_capabilities::text, " ASYA_MICROS(
                          "created_at") ", " ASYA_MICROS("last_seen_at") " FROM mcp_sessions "
                                                                         "WHERE id = $1",
                      Params().Add(std::string(id))));
      if (r.Rows() == 0) {
        return MakeError(ErrorCode::kNotFound, "session '" + std::string(id) + "' not found");
      }
      McpSession s;
      s.id = r.Text(0, 0);
      s.protocol_version = r.Text(0, 1);
      s.client_capabilities_json = r.Text(0, 2);
      s.created_at = FromMicros(r.Int(0, 3));
      s.last_seen_at = FromMicros(r.Int(0, 4));
      return s;
    });
  }

  Result<void> TouchSession(std::string_view id) override {
    return InRead([&](PGconn* c) -> Result<void> {
      ASYA_ASSIGN_OR_RETURN(
          auto r, Run(c, "touch session",
                      "UPDATE mcp_sessions SET last_seen_at = " ASYA_TS(2) " WHERE id = $1",
                      Params().Add(std::string(id)).Int(ToMicros(clock_.WallNow()))));
      if (r.Affected() == 0) {
        return MakeError(ErrorCode::kNotFound, "session '" + std::string(id) + "' not found");
      }
      return Ok();
    });
  }

  Result<bool> DeleteSession(std::string_view id) override {
    return InRead([&](PGconn* c) -> Result<bool> {
      ASYA_ASSIGN_OR_RETURN(auto r,
                            Run(c, "delete session", "DELETE FROM mcp_sessions WHERE id = $1",
                                Params().Add(std::string(id))));
      return r.Affected() > 0;
    });
  }

  Result<std::int64_t> PurgeSessionsIdleBefore(TimePoint cutoff) override {
    return InRead([&](PGconn* c) -> Result<std::int64_t> {
      ASYA_ASSIGN_OR_RETURN(auto r, Run(c, "purge sessions",
                                        "DELETE FROM mcp_sessions WHERE last_seen_at < " ASYA_TS(1),
                                        Params().Int(ToMicros(cutoff))));
      return r.Affected();
    });
  }

  Result<std::vector<Envelope>> List(const ListQuery& query) override {
    ASYA_RETURN_IF_ERROR(ValidateListQuery(query));
    std::string sql = std::string(kEnvelopeSelect) +
                      "WHERE ($1 = '' OR tool = $1) AND ($2 = '' OR status = $2) "
                      "AND (NOT $3::bool OR parent_id IS NULL) AND ($4 = '' OR (created_at, id) < "
                      "(SELECT created_at, id FROM envelopes WHERE id = $4)) "
                      "ORDER BY created_at DESC, id DESC LIMIT $5::int";
    return InRead([&](PGconn* c) -> Result<std::vector<Envelope>> {
      if (!query.before_id.empty()) {
        ASYA_RETURN_IF_ERROR(Load(c, query.before_id, false));  // kNotFound for a bad cursor
      }
      Params p;
      p.Add(query.tool)
          .Add(query.status ? std::string(StatusName(*query.status)) : std::string())
          .Add(query.roots_only ? "true" : "false")
          .Add(query.before_id)
          .Int(query.limit);
      ASYA_ASSIGN_OR_RETURN(auto r, Run(c, "list", sql.c_str(), p));
      std::vector<Envelope> out;
      for (int i = 0; i < r.Rows(); ++i) {
        ASYA_ASSIGN_OR_RETURN(Envelope e, ReadEnvelope(r, i));
        out.push_back(std::move(e));
      }
      return out;
    });
  }

 private:
  // Runs `fn(conn)` inside BEGIN/COMMIT. A pooled connection found broken at BEGIN (a server
  // restart, a terminated session) is replaced once by a fresh one.
  template <class Fn>
  auto InTx(Fn fn) -> decltype(fn(static_cast<PGconn*>(nullptr))) {
    for (int attempt = 0;; ++attempt) {
      ASYA_ASSIGN_OR_RETURN(PGconn * c, pool_.Acquire());
      auto begin = Run(c, "begin", "BEGIN");
      if (!begin) {
        bool broken = Broken(c);
        pool_.Release(c);
        if (broken && attempt == 0) {
          continue;
        }
        return Unexpected(begin.error());
      }
      auto out = fn(c);
      if (!out) {
        (void)Run(c, "rollback", "ROLLBACK");
        pool_.Release(c);
        return out;
      }
      auto commit = Run(c, "commit", "COMMIT");
      pool_.Release(c);
      if (!commit) {
        return Unexpected(commit.error());
      }
      return out;
    }
  }

  // Runs one statement that must not be repeated (not retried on a broken connection).
  template <class Fn>
  auto Once(Fn fn) -> decltype(fn(static_cast<PGconn*>(nullptr))) {
    ASYA_ASSIGN_OR_RETURN(PGconn * c, pool_.Acquire());
    auto out = fn(c);
    pool_.Release(c);
    return out;
  }

  // Runs a read-only (or idempotent single-statement) `fn(conn)`; retried once on a fresh
  // connection when the pooled one was broken.
  template <class Fn>
  auto InRead(Fn fn) -> decltype(fn(static_cast<PGconn*>(nullptr))) {
    for (int attempt = 0;; ++attempt) {
      ASYA_ASSIGN_OR_RETURN(PGconn * c, pool_.Acquire());
      auto out = fn(c);
      bool broken = Broken(c);
      pool_.Release(c);
      if (!out && broken && attempt == 0) {
        continue;
      }
      return out;
    }
  }

  Result<Envelope> Load(PGconn* c, std::string_view id, bool for_update) {
    std::string sql =
        std::string(kEnvelopeSelect) + "WHERE id = $1" + (for_update ? " FOR UPDATE" : "");
    ASYA_ASSIGN_OR_RETURN(auto r,
                          Run(c, "load envelope", sql.c_str(), Params().Add(std::string(id))));
    if (r.Rows() == 0) {
      return MakeError(ErrorCode::kNotFound, "envelope '" + std::string(id) + "' not found");
    }
    return ReadEnvelope(r, 0);
  }

  // Runs a conditional UPDATE that returns the envelope's columns and the new history row's id
  // when it applied; when it did not, reads the envelope (kNotFound for an unknown id).
  Result<Transition> Conditional(std::string_view id, const Params& p, Update update,
                                 const char* sql) {
    ASYA_ASSIGN_OR_RETURN(PGconn * c, pool_.Acquire());
    auto r = Run(c, "transition", sql, p);
    pool_.Release(c);
    if (!r) {
      return Unexpected(r.error());
    }
    Transition t;
    if (r->Rows() == 0) {
      ASYA_ASSIGN_OR_RETURN(t.envelope, Get(id));
      return t;
    }
    ASYA_ASSIGN_OR_RETURN(t.envelope, ReadEnvelope(*r, 0));
    t.applied = true;
    update.seq = r->Int(0, 19);
    t.update = std::move(update);
    return t;
  }

  template <class Planner>
  Result<Transition> Apply(std::string_view id, Planner planner) {
    return InTx([&](PGconn* c) -> Result<Transition> {
      ASYA_ASSIGN_OR_RETURN(Envelope before, Load(c, id, true));
      ASYA_ASSIGN_OR_RETURN(Plan plan, planner(before, clock_.WallNow()));
      Transition t;
      t.applied = plan.applied;
      t.envelope = std::move(plan.after);
      if (plan.applied) {
        ASYA_RETURN_IF_ERROR(Save(c, t.envelope));
        ASYA_ASSIGN_OR_RETURN(Update u, Append(c, plan.update));
        t.update = std::move(u);
      }
      return t;
    });
  }

  asya::Status Save(PGconn* c, const Envelope& e) {
    Params p;
    p.Add(e.id)
        .Add(std::string(StatusName(e.status)))
        .Add(ActorsToJson(e.route_actors))
        .AddOrNull(e.result_json)
        .AddOrNull(e.error)
        .AddOrNull(e.message)
        .Add(PercentText(e.progress_percent))
        .Int(e.current_actor_idx)
        .AddOrNull(e.current_actor_name)
        .Int(e.total_actors)
        .Int(ToMicros(e.updated_at));
    ASYA_RETURN_IF_ERROR(Run(c, "update envelope",
                             "UPDATE envelopes SET status = $2, route_actors = " ASYA_ACTORS(
                                 3) ", "
                                    "result = $4::jsonb, error = $5, message = $6, "
                                    "progress_percent = $7::numeric, current_actor_idx = $8::int, "
                                    "current_actor_name = $9, total_actors = $10::int, "
                                    "updated_at = " ASYA_TS(11) " WHERE id = $1",
                             p));
    return Ok();
  }

  Result<Update> Append(PGconn* c, Update u) {
    Params p;
    p.Add(u.envelope_id)
        .Add(std::string(StatusName(u.status)))
        .AddOrNull(u.message)
        .AddOrNull(u.error)
        .AddOrNull(u.actor);
    if (u.actors.empty()) {
      p.Null();
    } else {
      p.Add(ActorsToJson(u.actors));
    }
    if (u.current_actor_idx) {
      p.Int(*u.current_actor_idx);
    } else {
      p.Null();
    }
    p.AddOrNull(u.result_json);
    if (u.progress_percent) {
      p.Add(PercentText(*u.progress_percent));
    } else {
      p.Null();
    }
    p.AddOrNull(u.envelope_state).Int(ToMicros(u.timestamp));
    ASYA_ASSIGN_OR_RETURN(
        auto r,
        Run(c, "append update",
            "INSERT INTO envelope_updates (envelope_id, status, message, error, actor, "
            "actors, current_actor_idx, result, progress_percent, envelope_state, "
            "\"timestamp\") VALUES ($1, $2, $3, $4, $5, CASE WHEN $6::json IS NULL THEN "
            "NULL ELSE " ASYA_ACTORS(6) " END, $7::int, $8::jsonb, $9::numeric, $10, " ASYA_TS(
                11) ") RETURNING id",
            p));
    u.seq = r.Int(0, 0);
    return u;
  }

  Pool pool_;
  Listener listener_;
  Clock& clock_;
};

}  // namespace

Result<std::unique_ptr<Store>> OpenPostgres(const std::string& url, Clock& clock,
                                            int max_connections) {
  char* err = nullptr;
  PQconninfoOption* opts = PQconninfoParse(url.c_str(), &err);
  if (opts == nullptr) {
    std::string msg = err != nullptr ? Trim(err) : "malformed";
    PQfreemem(err);
    return MakeError(ErrorCode::kInvalidArgument,
                     "store URL '" + Redact(url) + "' is not a valid PostgreSQL URL: " + msg);
  }
  PQconninfoFree(opts);
  auto store = std::make_unique<PostgresStore>(url, clock, max_connections);
  ASYA_RETURN_IF_ERROR(store->Migrate());
  return std::unique_ptr<Store>(std::move(store));
}

}  // namespace asya::store::internal
