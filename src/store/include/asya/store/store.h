// The gateway's envelope status store: one interface, PostgreSQL (libpq) and SQLite behind it.
//
// The store is the one place for the envelope state machine, so every gateway replica applies
// the same rules atomically (in one transaction per call):
//   - final states (succeeded, failed, cancelled) are final: a later progress report, running
//     mark or final report changes nothing and returns `applied = false`;
//   - progress is monotonic and reaches 100 only through Finish (a progress report is capped at
//     99.99 while the envelope is not final);
//   - every applied change appends one Update (the history the SSE stream replays) whose `seq`
//     is strictly increasing across the whole store, so it can serve as an SSE event id.
// Deadlines are stored with the envelope (ExpiredBefore finds them after a restart) and finished
// envelopes are purged after a retention period (Purge), with their history.
//
// Tables are compatible with the original gateway's PostgreSQL schema (`envelopes`,
// `envelope_updates`; reference-controlplane §7.12); our additions are extra nullable columns and
// the `cancelled` status, added by the store's own migrations.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "asya/base/clock.h"
#include "asya/base/result.h"

namespace asya::store {

using TimePoint = std::chrono::system_clock::time_point;

enum class Status { kPending, kRunning, kSucceeded, kFailed, kCancelled, kUnknown };

// "pending", "running", "succeeded", "failed", "cancelled", "unknown".
std::string_view StatusName(Status status);
std::optional<Status> ParseStatus(std::string_view name);
inline bool IsFinal(Status s) {
  return s == Status::kSucceeded || s == Status::kFailed || s == Status::kCancelled;
}

// JSON values are kept as JSON text (never re-encoded by the store); an empty string means
// "absent" (SQL NULL).
struct Envelope {
  std::string id;
  std::string parent_id;  // empty: a root envelope
  Status status = Status::kPending;
  std::vector<std::string> route_actors;
  int route_current = 0;
  std::string route_metadata_json;  // JSON object or empty
  std::string payload_json;         // JSON value or empty
  std::string result_json;          // JSON value or empty
  std::string error;
  std::string message;
  std::string tool;  // the tool that created it (empty for fan-out children / REST-created)
  int timeout_seconds = 0;
  std::optional<TimePoint> deadline;
  double progress_percent = 0;
  int current_actor_idx = 0;
  std::string current_actor_name;
  int total_actors = 0;
  TimePoint created_at{};
  TimePoint updated_at{};
};

// One row of envelope history = one SSE `update` event.
struct Update {
  std::int64_t seq = 0;  // strictly increasing store-wide
  std::string envelope_id;
  Status status = Status::kPending;
  std::string message;
  std::string error;
  std::string actor;
  std::vector<std::string> actors;
  std::optional<int> current_actor_idx;
  std::string result_json;
  std::optional<double> progress_percent;
  std::string envelope_state;  // "received" | "processing" | "completed" | empty
  TimePoint timestamp{};
};

// A sidecar's progress report (POST /envelopes/{id}/progress), reference-controlplane §7.8.
struct ProgressReport {
  std::vector<std::string> actors;
  int current_actor_idx = 0;
  std::string state;  // received | processing | completed
  std::string message;
};

// The end of an envelope: /final from happy-end or error-end, a deadline, a failed publish, a
// client's cancel.
struct FinalReport {
  Status status = Status::kSucceeded;  // kSucceeded, kFailed or kCancelled
  std::string result_json;
  std::string error;
  std::string message;
};

// A page of List(): newest first (created_at, then id, descending).
struct ListQuery {
  std::string tool;              // only envelopes created by this tool; empty: any
  std::optional<Status> status;  // only this status; nullopt: any
  bool roots_only = false;       // skip fan-out children (parent_id set)
  int limit = 100;               // at most this many (1..1000)
  std::string before_id;         // cursor: only envelopes older than this one; empty: none
};

// A session of the session-based MCP revisions (2024-11-05 to 2025-11-25). Kept in the store so
// that any gateway replica serves a session another replica opened.
struct McpSession {
  std::string id;
  std::string protocol_version;
  std::string client_capabilities_json;  // JSON object or empty
  TimePoint created_at{};                // set by CreateSession
  TimePoint last_seen_at{};              // set by CreateSession and TouchSession
};

struct Transition {
  bool applied = false;          // false: the envelope was already final; nothing changed
  Envelope envelope;             // the state after the call
  std::optional<Update> update;  // the appended history row when applied
};

class Store {
 public:
  virtual ~Store() = default;

  // kAlreadyExists when the id is taken. Appends the first Update (status pending).
  virtual Result<void> Create(const Envelope& envelope) = 0;
  // Create for several envelopes at once, one result per envelope in the order given; each is
  // created (or refused) as Create would. PostgreSQL writes the whole batch in one statement (one
  // transaction, commit and round trip: every envelope of the batch is durable when it returns,
  // or none is when the statement failed), which is how the gateway group-commits tool calls
  // under load. An id repeated inside the batch is kAlreadyExists after its first occurrence.
  // The default calls Create once per envelope.
  virtual std::vector<Result<void>> CreateMany(const std::vector<Envelope>& envelopes);
  // kNotFound for an unknown id.
  virtual Result<Envelope> Get(std::string_view id) = 0;
  // pending → running with `message` (no-op on a final or already running envelope, applied
  // tells which).
  virtual Result<Transition> MarkRunning(std::string_view id, std::string_view message) = 0;
  // MarkRunning for several envelopes at once, one result per id in the order given (kNotFound
  // for an unknown id). Each envelope moves as MarkRunning would move it, atomically per
  // envelope; PostgreSQL applies the whole batch in one statement (one transaction and round
  // trip), which is what lets the gateway's publishers keep up under load. Ids should be
  // distinct. The default calls MarkRunning once per id.
  virtual std::vector<Result<Transition>> MarkRunningMany(const std::vector<std::string>& ids,
                                                          std::string_view message);
  virtual Result<Transition> ReportProgress(std::string_view id, const ProgressReport& report) = 0;
  virtual Result<Transition> Finish(std::string_view id, const FinalReport& report) = 0;
  // History of one envelope, oldest first, only rows with seq > after_seq.
  virtual Result<std::vector<Update>> History(std::string_view id, std::int64_t after_seq) = 0;
  // Ids of the envelopes whose parent_id is `id` (fan-out children), oldest first.
  virtual Result<std::vector<std::string>> Children(std::string_view id) = 0;
  // Non-final envelopes whose deadline is before `now`, at most `limit`.
  virtual Result<std::vector<std::string>> ExpiredBefore(TimePoint now, int limit) = 0;
  // Deletes final envelopes (and their history) last updated before `cutoff`; returns how many.
  virtual Result<std::int64_t> PurgeFinishedBefore(TimePoint cutoff) = 0;

  // Change feed: `on_update` is called (on a store-owned thread) for every Update appended by
  // this process *or by any other gateway replica sharing the database* (PostgreSQL:
  // LISTEN/NOTIFY; SQLite: in-process only). Returns when the feed is running; the callback
  // must not block. Call once; the feed stops when the store is destroyed.
  virtual Result<void> StartFeed(std::function<void(const Update&)> on_update) = 0;

  // Envelopes matching `query`, newest first (for listings such as MCP tasks/list). kNotFound
  // when before_id names no envelope; kInvalidArgument for a limit outside 1..1000. The default
  // (for fakes) answers kUnimplemented; both backends implement it.
  virtual Result<std::vector<Envelope>> List(const ListQuery& query);

  // MCP sessions (the defaults, for fakes, answer kUnimplemented; both backends implement them).
  // kAlreadyExists when the id is taken; kInvalidArgument for an empty id or version. Stamps
  // created_at and last_seen_at with the store's clock.
  virtual Result<void> CreateSession(const McpSession& session);
  // kNotFound for an unknown, ended or purged id.
  virtual Result<McpSession> GetSession(std::string_view id);
  // last_seen_at = now; kNotFound when the session is gone.
  virtual Result<void> TouchSession(std::string_view id);
  // Ends a session; false when there was none.
  virtual Result<bool> DeleteSession(std::string_view id);
  // Deletes the sessions last seen before `cutoff`; returns how many.
  virtual Result<std::int64_t> PurgeSessionsIdleBefore(TimePoint cutoff);
};

// Opens (and creates or migrates the schema of) the store at `url`:
//   postgresql://user:pass@host:port/db  (also postgres://)
//   sqlite:///absolute/path.db  or  sqlite://relative/path.db
// kInvalidArgument for another scheme, kUnavailable when the database cannot be reached.
Result<std::unique_ptr<Store>> Open(std::string_view url, Clock& clock);

struct OpenOptions {
  int max_connections = 10;  // PostgreSQL: connections in the pool (the feed adds one); >= 1
};
// Open() with options; kInvalidArgument for max_connections < 1.
Result<std::unique_ptr<Store>> Open(std::string_view url, Clock& clock, const OpenOptions& options);

}  // namespace asya::store
