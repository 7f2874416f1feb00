// The sqlite transport: see asya/transport/sqlite.h and README.md beside this file.
#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <optional>
#include <random>

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "asya/base/log.h"
#include "asya/base/time_format.h"
#include "asya/transport/sqlite.h"
#include "transport/sqlite/group_commit.h"
#include "transport/sqlite/sqlite_db.h"
#include "transport/sqlite/wake.h"

namespace asya::transport {
namespace {

using sqlite::Database;
using sqlite::Transaction;

constexpr int kSchemaVersion = 2;
constexpr size_t kMaxQueueName = 200;
constexpr size_t kMaxBatch = 1000;
// Bodies of at least this size live in `message_bodies`, apart from the message's row: a claim,
// nack or visibility extension then rewrites a small row instead of the whole body (SQLite builds
// every updated record in memory), and the body is written and read with incremental blob I/O
// (no whole-body copy inside SQLite). Smaller bodies stay in the row (one b-tree, fewer writes).
constexpr size_t kExternalBodyBytes = 64u << 10;

// Version 2. `queue_messages` is version 1's `messages` (renamed by the migration, so a process
// still running version-1 code fails loudly instead of reading an external body as empty) plus
// `body_ext`: 1 when the body is in `message_bodies` (then `body` is empty).
constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS queues(
  name TEXT PRIMARY KEY,
  created_ms INTEGER NOT NULL,
  visibility_ms INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS queue_messages(
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  queue TEXT NOT NULL,
  body BLOB NOT NULL,
  headers TEXT,
  visible_at INTEGER NOT NULL,
  receipt TEXT,
  delivery_count INTEGER NOT NULL DEFAULT 0,
  enqueued_at INTEGER NOT NULL,
  body_ext INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS messages_by_visibility ON queue_messages(queue, visible_at, id);
CREATE TABLE IF NOT EXISTS message_bodies(
  id INTEGER PRIMARY KEY,
  body BLOB NOT NULL
);
CREATE TRIGGER IF NOT EXISTS message_body_gone AFTER DELETE ON queue_messages
  WHEN old.body_ext != 0 BEGIN DELETE FROM message_bodies WHERE id = old.id; END;
)sql";

// Version 1 -> 2: rename (the index, the AUTOINCREMENT sequence and the rows move along) and add
// the column (no rewrite of the rows: every existing body stays in its row, body_ext = 0).
constexpr const char* kMigrateV1 = R"sql(
ALTER TABLE messages RENAME TO queue_messages;
ALTER TABLE queue_messages ADD COLUMN body_ext INTEGER NOT NULL DEFAULT 0;
)sql";

int64_t NowMs() {
  return UnixMillis(SystemClock().WallNow());
}

Status ValidateQueueName(std::string_view queue) {
  bool ok = !queue.empty() && queue.size() <= kMaxQueueName && queue.front() != '.';
  for (char c : queue) {
    bool allowed = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                   c == '-' || c == '_' || c == '.' || c == ':';
    ok = ok && allowed;
  }
  if (ok) {
    return Ok();
  }
  return MakeError(ErrorCode::kInvalidArgument,
                   "invalid queue name '" + std::string(queue) +
                       "': use 1-200 characters from [A-Za-z0-9._:-], not starting with '.'");
}

struct Receipt {
  int64_t id = 0;
  std::string token;
};

Result<Receipt> ParseReceipt(const Message& message) {
  const std::string& r = message.receipt;
  size_t colon = r.find(':');
  Receipt out;
  if (colon != std::string::npos && colon > 0 && colon + 1 < r.size()) {
    const char* begin = r.data();
    char* end = nullptr;
    errno = 0;
    long long id = std::strtoll(begin, &end, 10);
    if (errno == 0 && end == begin + colon && id > 0) {
      out.id = id;
      out.token = r.substr(colon + 1);
      return out;
    }
  }
  return MakeError(ErrorCode::kInvalidArgument,
                   "malformed sqlite receipt '" + r + "' (expected '<id>:<token>')");
}

Result<std::string> EncodeHeaders(const std::map<std::string, std::string>& headers) {
  if (headers.empty()) {
    return std::string();
  }
  try {
    return nlohmann::json(headers).dump();
  } catch (const nlohmann::json::exception& e) {
    return MakeError(ErrorCode::kInvalidArgument,
                     std::string("message headers must be valid UTF-8: ") + e.what());
  }
}

// Checks a publish's queue name and encodes its headers: what Publish and PublishAndAck both need
// before taking the lock.
Result<std::string> PreparePublish(std::string_view queue, const PublishOptions& options) {
  ASYA_RETURN_IF_ERROR(ValidateQueueName(queue));
  return EncodeHeaders(options.headers);
}

std::map<std::string, std::string> DecodeHeaders(const std::string& text, int64_t id) {
  std::map<std::string, std::string> out;
  if (text.empty()) {
    return out;
  }
  try {
    auto j = nlohmann::json::parse(text);
    for (const auto& [k, v] : j.items()) {
      out.emplace(k, v.is_string() ? v.get<std::string>() : v.dump());
    }
  } catch (const nlohmann::json::exception& e) {
    log::Warn("sqlite: unreadable headers ignored",
              {{"message_id", static_cast<long long>(id)}, {"error", e.what()}});
  }
  return out;
}

class SqliteTransport final : public Transport {
 public:
  SqliteTransport(SqliteSettings settings, Database db, int interrupt_fd)
      : settings_(std::move(settings)),
        db_(std::move(db)),
        wake_(settings_.path + ".wake"),
        interrupt_fd_(interrupt_fd),
        rng_(std::random_device{}()) {}

  ~SqliteTransport() override { ::close(interrupt_fd_); }

  SqliteTransport(const SqliteTransport&) = delete;
  SqliteTransport& operator=(const SqliteTransport&) = delete;

  [[nodiscard]] std::string_view Name() const override { return "sqlite"; }

  Result<std::vector<Message>> Receive(std::string_view queue,
                                       const ReceiveOptions& options) override;
  Status Publish(std::string_view queue, std::string_view body,
                 const PublishOptions& options) override;
  Status Ack(const Message& message) override;
  std::optional<SettleFailure> PublishAndAck(const Message& message,
                                             std::span<const Outgoing> outgoing) override;
  std::optional<SettleFailure> PublishAckAndReceive(const Message& message,
                                                    std::span<const Outgoing> outgoing,
                                                    SettleReceive& also) override;
  Status Nack(const Message& message, Millis delay) override;
  Status Requeue(const Message& message) override;
  Status ExtendVisibility(const Message& message, Millis visibility) override;
  void Interrupt() override;
  [[nodiscard]] bool KeepsHeldBodies() const override { return true; }
  Result<std::string> ReadBody(const Message& message) override;

  Status CreateQueue(std::string_view queue, const QueueOptions& options) override;
  Status DeleteQueue(std::string_view queue) override;
  Result<bool> QueueExists(std::string_view queue) override;
  Result<QueueDepth> Depth(std::string_view queue) override;
  Result<std::vector<std::string>> ListQueues() override;
  Status Purge(std::string_view queue) override;

 private:
  struct Attempt {
    std::vector<Message> messages;
    std::optional<int64_t> next_visible_ms;  // earliest future visible_at in the queue
    bool raced = false;  // saw a visible message, but another consumer took it first
  };

  Result<Attempt> TryReceive(std::string_view queue, size_t max, Millis visibility);
  // Inside the caller's write transaction: claims up to `max` visible messages of `queue`.
  Result<std::vector<Message>> ClaimLocked(std::string_view queue, size_t max, Millis visibility,
                                           int64_t now);
  Result<bool> QueueExistsLocked(std::string_view queue);
  // Inserts one message (creating its queue) inside the caller's write transaction.
  Status InsertLocked(std::string_view queue, std::string_view body, const std::string& headers,
                      Millis delay, int64_t now);
  // Explains why an UPDATE/DELETE keyed by (id, receipt) touched no row.
  Error ReceiptMismatch(const Receipt& r, std::string_view op);
  // Applies `sql` (?1 = id, ?2 = token, optional ?3 = value; `RETURNING queue`) to the message a
  // receipt names and returns its queue.
  Result<std::string> UpdateByReceipt(const char* sql, const Message& message, int64_t value,
                                      std::string_view op);
  std::string NewToken();

  // PublishAndAck, with a receive in the same transaction when `also` is set.
  std::optional<SettleFailure> Settle1(const Message& message, std::span<const Outgoing> outgoing,
                                       SettleReceive* also);
  // One PublishAndAck call waiting to be committed (group commit: see PublishAndAck).
  struct Settle {
    const std::span<const Outgoing> outgoing;
    std::vector<std::string> headers;  // encoded transport headers per outgoing message
    Receipt receipt;
    SettleReceive* also = nullptr;  // a receive in the same transaction (PublishAckAndReceive)
    std::optional<SettleFailure> result;
    sqlite::GroupCommit::Entry entry;  // its place in group_'s line
  };
  // Commits `batch` in one write transaction and sets every `result`. Tries the whole batch
  // without savepoints first; if a settle or a folded claim fails there, rolls that transaction
  // back and commits again with each settle (and claim) in its own savepoint, so a failed one
  // (stale receipt, bad insert) rolls back alone.
  void CommitSettles(const std::vector<Settle*>& batch);
  // One attempt of CommitSettles with mu_ held. Without `savepoints` it gives up (returns false,
  // nothing committed, every claim cleared) when any settle or claim fails, unless the batch is a
  // single settle whose own failure is the answer anyway; otherwise returns true.
  bool CommitSettlesLocked(const std::vector<Settle*>& batch, bool savepoints);
  // Runs one settle inside the open transaction; nullopt on success.
  std::optional<SettleFailure> ApplySettle(const Settle& settle, int64_t now);

  const SqliteSettings settings_;
  std::mutex mu_;  // guards db_ and rng_
  Database db_;
  sqlite::WakeDir wake_;
  int interrupt_fd_;
  std::atomic<bool> interrupted_{false};
  std::mt19937_64 rng_;
  std::string busy_queue_;     // guarded by mu_: the last receive on it claimed a full batch
  sqlite::GroupCommit group_;  // concurrent settles, committed together
};

std::string SqliteTransport::NewToken() {
  char buf[17];
  std::snprintf(buf, sizeof(buf), "%016llx", static_cast<unsigned long long>(rng_()));
  return buf;
}

Result<bool> SqliteTransport::QueueExistsLocked(std::string_view queue) {
  ASYA_ASSIGN_OR_RETURN(auto q, db_.Prepare("SELECT 1 FROM queues WHERE name = ?1"));
  q.BindText(1, queue);
  return q.Step();
}

Result<std::vector<Message>> SqliteTransport::ClaimLocked(std::string_view queue, size_t max,
                                                          Millis visibility, int64_t now) {
  std::vector<Message> messages;
  int64_t visibility_ms = visibility.count();
  if (visibility_ms <= 0) {
    ASYA_ASSIGN_OR_RETURN(auto vq, db_.Prepare("SELECT visibility_ms FROM queues WHERE name = ?1"));
    vq.BindText(1, queue);
    ASYA_ASSIGN_OR_RETURN(bool row, vq.Step());
    visibility_ms = row && vq.Int(0) > 0 ? vq.Int(0) : settings_.default_visibility.count();
  }
  std::vector<Receipt> claims;
  {
    ASYA_ASSIGN_OR_RETURN(auto select,
                          db_.Prepare("SELECT id, body, headers, delivery_count, body_ext "
                                      "FROM queue_messages WHERE queue = ?1 AND visible_at <= ?2 "
                                      "ORDER BY visible_at, id LIMIT ?3"));
    select.BindText(1, queue).Bind(2, now).Bind(3, static_cast<int64_t>(max));
    for (;;) {
      ASYA_ASSIGN_OR_RETURN(bool row, select.Step());
      if (!row) {
        break;
      }
      Message m;
      int64_t id = select.Int(0);
      m.queue = std::string(queue);
      m.id = std::to_string(id);
      if (select.Int(4) != 0) {
        ASYA_ASSIGN_OR_RETURN(m.body, db_.ReadBlob("message_bodies", "body", id));
      } else {
        m.body = select.Blob(1);
      }
      m.headers = DecodeHeaders(select.Text(2), id);
      m.delivery_count = select.Int(3) + 1;
      m.redelivered = m.delivery_count > 1;
      claims.push_back(Receipt{id, NewToken()});
      m.receipt = m.id + ":" + claims.back().token;
      messages.push_back(std::move(m));
    }
  }
  ASYA_ASSIGN_OR_RETURN(auto update,
                        db_.Prepare("UPDATE queue_messages SET visible_at = ?2, receipt = ?3, "
                                    "delivery_count = delivery_count + 1 WHERE id = ?1"));
  for (const Receipt& claim : claims) {
    ASYA_RETURN_IF_ERROR(
        update.Bind(1, claim.id).Bind(2, now + visibility_ms).BindText(3, claim.token).Run());
  }
  return messages;
}

Result<SqliteTransport::Attempt> SqliteTransport::TryReceive(std::string_view queue, size_t max,
                                                             Millis visibility) {
  std::lock_guard lock(mu_);
  Attempt out;
  int64_t now = NowMs();
  // While the last receive on this queue found messages (a busy queue: a burst, a pipeline under
  // load), go straight to the claiming transaction; the read-only look would find messages too
  // and only cost a transaction (locks, page-cache revalidation). A claim that finds nothing
  // clears the hint, and the next attempt looks read-only again.
  const bool busy = busy_queue_ == queue;
  if (!busy) {
    // Read-only first: most wake-ups of an idle or contended queue find nothing, and a read does
    // not take the database's write lock.
    ASYA_ASSIGN_OR_RETURN(auto read, Transaction::Begin(db_, /*write=*/false));
    ASYA_ASSIGN_OR_RETURN(bool exists, QueueExistsLocked(queue));
    if (!exists) {
      return MakeError(ErrorCode::kNotFound, "queue '" + std::string(queue) + "' does not exist");
    }
    ASYA_ASSIGN_OR_RETURN(auto ready,
                          db_.Prepare("SELECT 1 FROM queue_messages WHERE queue = ?1 AND "
                                      "visible_at <= ?2 LIMIT 1"));
    ready.BindText(1, queue).Bind(2, now);
    ASYA_ASSIGN_OR_RETURN(bool any, ready.Step());
    if (!any) {
      ASYA_ASSIGN_OR_RETURN(auto next, db_.Prepare("SELECT MIN(visible_at) FROM queue_messages "
                                                   "WHERE queue = ?1 AND visible_at > ?2"));
      next.BindText(1, queue).Bind(2, now);
      ASYA_ASSIGN_OR_RETURN(bool row, next.Step());
      if (row && !next.IsNull(0)) {
        out.next_visible_ms = next.Int(0);
      }
      return out;
    }
  }

  ASYA_ASSIGN_OR_RETURN(auto txn, Transaction::Begin(db_, /*write=*/true));
  ASYA_ASSIGN_OR_RETURN(out.messages, ClaimLocked(queue, max, visibility, NowMs()));
  ASYA_RETURN_IF_ERROR(txn.Commit());
  // Empty after a look that saw a message: another consumer took it (look again at once). Empty
  // without a look: the queue may simply be empty now; the next attempt looks read-only.
  out.raced = out.messages.empty();
  if (out.messages.size() == max) {
    busy_queue_.assign(queue);
  } else {
    busy_queue_.clear();
  }
  return out;
}

Result<std::vector<Message>> SqliteTransport::Receive(std::string_view queue,
                                                      const ReceiveOptions& options) {
  ASYA_RETURN_IF_ERROR(ValidateQueueName(queue));
  if (options.max_messages == 0 || options.max_messages > kMaxBatch) {
    return MakeError(ErrorCode::kInvalidArgument, "max_messages must be in [1, " +
                                                      std::to_string(kMaxBatch) + "], got " +
                                                      std::to_string(options.max_messages));
  }
  const auto deadline = std::chrono::steady_clock::now() + options.wait;
  sqlite::Waiter waiter;
  bool wake_failed = false;
  for (;;) {
    if (interrupted_.load()) {
      return std::vector<Message>{};
    }
    ASYA_ASSIGN_OR_RETURN(Attempt attempt,
                          TryReceive(queue, options.max_messages, options.visibility));
    if (!attempt.messages.empty()) {
      return std::move(attempt.messages);
    }
    auto remaining =
        std::chrono::duration_cast<Millis>(deadline - std::chrono::steady_clock::now());
    if (remaining.count() <= 0) {
      return std::vector<Message>{};
    }
    if (attempt.raced) {
      continue;  // look again at once (this also learns the next visible_at)
    }
    if (!waiter.registered() && !wake_failed) {
      // Register first, then look again: a publish that committed in between is not missed.
      auto w = wake_.Register(queue);
      if (w) {
        waiter = std::move(*w);
        continue;
      }
      wake_failed = true;
      log::Warn("sqlite: no wake-ups, falling back to polling", {{"error", w.error().message}});
    }
    Millis sleep = std::min(remaining, wake_failed ? Millis(50) : settings_.safety_poll);
    if (attempt.next_visible_ms) {
      // +1: wake just after the message becomes visible, not just before.
      sleep = std::min(sleep, Millis(std::max<int64_t>(0, *attempt.next_visible_ms - NowMs() + 1)));
    }
    pollfd fds[2] = {{interrupt_fd_, POLLIN, 0}, {waiter.fd(), POLLIN, 0}};
    int rc = ::poll(fds, waiter.registered() ? 2 : 1, static_cast<int>(sleep.count()));
    if (rc < 0 && errno != EINTR) {
      return MakeError(ErrorCode::kInternal, std::string("poll: ") + std::strerror(errno));
    }
    waiter.Drain();
  }
}

Status SqliteTransport::InsertLocked(std::string_view queue, std::string_view body,
                                     const std::string& headers, Millis delay, int64_t now) {
  {
    ASYA_ASSIGN_OR_RETURN(auto create, db_.Prepare("INSERT OR IGNORE INTO queues(name, created_ms) "
                                                   "VALUES (?1, ?2)"));
    ASYA_RETURN_IF_ERROR(create.BindText(1, queue).Bind(2, now).Run());
  }
  const bool external = body.size() >= kExternalBodyBytes;
  ASYA_ASSIGN_OR_RETURN(auto insert,
                        db_.Prepare("INSERT INTO queue_messages(queue, body, headers, visible_at, "
                                    "enqueued_at, body_ext) VALUES (?1, ?2, ?3, ?4, ?5, ?6)"));
  insert.BindText(1, queue).BindBlob(2, external ? std::string_view() : body);
  if (headers.empty()) {
    insert.BindNull(3);
  } else {
    insert.BindText(3, headers);
  }
  insert.Bind(4, now + std::max<int64_t>(0, delay.count())).Bind(5, now).Bind(6, external ? 1 : 0);
  ASYA_RETURN_IF_ERROR(insert.Run());
  if (!external) {
    return Ok();
  }
  // The body: a zero-filled blob of its size (SQLite writes the zeros page by page, without a
  // buffer of that size), then overwritten in place from the caller's buffer.
  const int64_t id = db_.LastInsertRowid();
  ASYA_ASSIGN_OR_RETURN(auto put, db_.Prepare("INSERT INTO message_bodies(id, body) "
                                              "VALUES (?1, zeroblob(?2))"));
  ASYA_RETURN_IF_ERROR(put.Bind(1, id).Bind(2, static_cast<int64_t>(body.size())).Run());
  return db_.WriteBlob("message_bodies", "body", id, body);
}

Status SqliteTransport::Publish(std::string_view queue, std::string_view body,
                                const PublishOptions& options) {
  ASYA_ASSIGN_OR_RETURN(std::string headers, PreparePublish(queue, options));
  {
    std::lock_guard lock(mu_);
    ASYA_ASSIGN_OR_RETURN(auto txn, Transaction::Begin(db_, /*write=*/true));
    ASYA_RETURN_IF_ERROR(InsertLocked(queue, body, headers, options.delay, NowMs()));
    ASYA_RETURN_IF_ERROR(txn.Commit());
  }
  wake_.Notify(queue);
  return Ok();
}

// Group commit (group_commit.h): a caller queues its settle; if no commit is running it becomes
// the committer and commits everything queued so far in one transaction, else it sleeps until a
// commit took it (or it is handed the next commit). Under concurrency (a sidecar's workers) one
// commit then settles several messages; alone, a call commits at once, as a plain transaction
// would.
std::optional<SettleFailure> SqliteTransport::PublishAndAck(const Message& message,
                                                            std::span<const Outgoing> outgoing) {
  return Settle1(message, outgoing, nullptr);
}

std::optional<SettleFailure> SqliteTransport::PublishAckAndReceive(
    const Message& message, std::span<const Outgoing> outgoing, SettleReceive& also) {
  also.received.clear();
  if (!ValidateQueueName(also.queue) || also.max_messages == 0 || also.max_messages > kMaxBatch) {
    return Settle1(message, outgoing, nullptr);  // the caller's own Receive reports the error
  }
  return Settle1(message, outgoing, &also);
}

std::optional<SettleFailure> SqliteTransport::Settle1(const Message& message,
                                                      std::span<const Outgoing> outgoing,
                                                      SettleReceive* also) {
  auto receipt = ParseReceipt(message);
  if (!receipt) {
    return SettleFailure{.in_ack = true, .error = receipt.error()};
  }
  Settle settle{.outgoing = outgoing,
                .headers = std::vector<std::string>(outgoing.size()),
                .receipt = *receipt,
                .also = also};
  for (size_t i = 0; i < outgoing.size(); ++i) {
    auto encoded = PreparePublish(outgoing[i].queue, outgoing[i].options);
    if (!encoded) {
      return SettleFailure{.index = i, .error = encoded.error()};
    }
    settle.headers[i] = std::move(*encoded);
  }
  settle.entry.item = &settle;
  group_.Join(settle.entry, [this](std::span<sqlite::GroupCommit::Entry* const> entries) {
    std::vector<Settle*> batch;
    batch.reserve(entries.size());
    for (sqlite::GroupCommit::Entry* e : entries) {
      batch.push_back(static_cast<Settle*>(e->item));
    }
    CommitSettles(batch);
  });
  if (settle.result) {
    return settle.result;
  }
  for (size_t i = 0; i < outgoing.size(); ++i) {
    bool seen = false;
    for (size_t j = 0; j < i && !seen; ++j) {
      seen = outgoing[j].queue == outgoing[i].queue;
    }
    if (!seen) {
      wake_.Notify(outgoing[i].queue);
    }
  }
  return std::nullopt;
}

void SqliteTransport::CommitSettles(const std::vector<Settle*>& batch) {
  std::lock_guard lock(mu_);
  // Savepoints cost two statements each and make SQLite copy every page the batch changes again
  // into its sub-journal. Settles and claims rarely fail (a stale receipt, a full disk), so the
  // batch goes without them first, and only a failure pays for a second, careful transaction.
  if (!CommitSettlesLocked(batch, /*savepoints=*/false)) {
    (void)CommitSettlesLocked(batch, /*savepoints=*/true);
  }
}

bool SqliteTransport::CommitSettlesLocked(const std::vector<Settle*>& batch, bool savepoints) {
  auto txn = Transaction::Begin(db_, /*write=*/true);
  if (!txn) {
    for (Settle* settle : batch) {
      settle->result = SettleFailure{.error = txn.error()};
    }
    return true;
  }
  const int64_t now = NowMs();
  const auto clear_claims = [&] {
    for (Settle* s : batch) {
      if (s->also != nullptr) {
        s->also->received.clear();
      }
    }
  };
  if (batch.size() == 1) {  // alone: the transaction itself is the settle's savepoint
    batch[0]->result = ApplySettle(*batch[0], now);
    if (batch[0]->result) {
      return true;  // rolled back by ~Transaction
    }
  } else {
    for (Settle* settle : batch) {
      if (!savepoints) {
        settle->result = ApplySettle(*settle, now);
        if (settle->result) {
          settle->result.reset();
          return false;  // rolled back by ~Transaction: again, with savepoints
        }
        continue;
      }
      if (auto st = db_.Run("SAVEPOINT settle"); !st) {
        settle->result = SettleFailure{.error = st.error()};
        continue;
      }
      settle->result = ApplySettle(*settle, now);
      if (settle->result) {
        (void)db_.Run("ROLLBACK TO settle");
      }
      (void)db_.Run("RELEASE settle");
    }
  }
  // Receives folded into these settles: claimed last, in the same transaction. A claim that
  // fails leaves that caller with nothing received (it receives on its own later); it does not
  // fail the settles.
  for (Settle* settle : batch) {
    if (settle->also == nullptr || settle->result) {
      continue;
    }
    if (!savepoints) {
      auto claimed = ClaimLocked(settle->also->queue, settle->also->max_messages,
                                 settle->also->visibility, now);
      if (!claimed) {
        clear_claims();
        return false;  // rolled back by ~Transaction: again, with savepoints
      }
      settle->also->received = std::move(*claimed);
      continue;
    }
    if (auto st = db_.Run("SAVEPOINT claim"); !st) {
      continue;
    }
    auto claimed =
        ClaimLocked(settle->also->queue, settle->also->max_messages, settle->also->visibility, now);
    if (claimed) {
      settle->also->received = std::move(*claimed);
    } else {
      (void)db_.Run("ROLLBACK TO claim");
    }
    (void)db_.Run("RELEASE claim");
  }
  if (auto st = txn->Commit(); !st) {
    for (Settle* settle : batch) {
      settle->result = SettleFailure{.error = st.error()};  // nothing was committed
    }
    clear_claims();
  }
  return true;
}

std::optional<SettleFailure> SqliteTransport::ApplySettle(const Settle& settle, int64_t now) {
  for (size_t i = 0; i < settle.outgoing.size(); ++i) {
    const Outgoing& o = settle.outgoing[i];
    if (auto st = InsertLocked(o.queue, o.body, settle.headers[i], o.options.delay, now); !st) {
      return SettleFailure{.index = i, .error = st.error()};
    }
  }
  // No RETURNING: SQLite collects RETURNING rows in an ephemeral table (its own pager and page
  // cache, an ~87 KB allocation) on every run; the change count says the same here.
  auto del = db_.Prepare("DELETE FROM queue_messages WHERE id = ?1 AND receipt = ?2");
  if (!del) {
    return SettleFailure{.error = del.error()};
  }
  if (auto st = del->Bind(1, settle.receipt.id).BindText(2, settle.receipt.token).Run(); !st) {
    return SettleFailure{.error = st.error()};
  }
  if (db_.Changes() == 0) {
    // Not ours any more: publish nothing, so whoever holds the message now does the work once.
    return SettleFailure{.in_ack = true, .error = ReceiptMismatch(settle.receipt, "ack")};
  }
  return std::nullopt;
}

Error SqliteTransport::ReceiptMismatch(const Receipt& r, std::string_view op) {
  auto q = db_.Prepare("SELECT 1 FROM queue_messages WHERE id = ?1");
  bool exists = false;
  if (q) {
    q->Bind(1, r.id);
    auto row = q->Step();
    exists = row && *row;
  }
  std::string id = std::to_string(r.id);
  if (exists) {
    return Error{ErrorCode::kFailedPrecondition,
                 std::string(op) + ": stale receipt for message " + id +
                     " (it was returned to the queue or received again by another consumer)"};
  }
  return Error{ErrorCode::kNotFound, std::string(op) + ": message " + id +
                                         " no longer exists (acked, purged or its queue deleted)"};
}

Result<std::string> SqliteTransport::UpdateByReceipt(const char* sql, const Message& message,
                                                     int64_t value, std::string_view op) {
  ASYA_ASSIGN_OR_RETURN(Receipt r, ParseReceipt(message));
  std::lock_guard lock(mu_);
  ASYA_ASSIGN_OR_RETURN(auto q, db_.Prepare(sql));
  q.Bind(1, r.id).BindText(2, r.token).Bind(3, value);
  ASYA_ASSIGN_OR_RETURN(bool row, q.Step());
  if (!row) {
    return Unexpected(ReceiptMismatch(r, op));
  }
  std::string queue = q.Text(0);
  ASYA_RETURN_IF_ERROR(q.Run());  // finish the statement so its write commits
  return queue;
}

Status SqliteTransport::Ack(const Message& message) {
  return UpdateByReceipt(
             "DELETE FROM queue_messages WHERE id = ?1 AND receipt = ?2 RETURNING queue", message,
             0, "ack")
      .transform([](const std::string&) {});
}

Status SqliteTransport::Nack(const Message& message, Millis delay) {
  ASYA_ASSIGN_OR_RETURN(
      std::string queue,
      UpdateByReceipt("UPDATE queue_messages SET visible_at = ?3, receipt = NULL "
                      "WHERE id = ?1 AND receipt = ?2 RETURNING queue",
                      message, NowMs() + std::max<int64_t>(0, delay.count()), "nack"));
  wake_.Notify(queue);
  return Ok();
}

Status SqliteTransport::Requeue(const Message& message) {
  ASYA_ASSIGN_OR_RETURN(
      std::string queue,
      UpdateByReceipt("UPDATE queue_messages SET visible_at = ?3, receipt = NULL, "
                      "delivery_count = MAX(delivery_count - 1, 0) "
                      "WHERE id = ?1 AND receipt = ?2 RETURNING queue",
                      message, NowMs(), "requeue"));
  wake_.Notify(queue);
  return Ok();
}

Status SqliteTransport::ExtendVisibility(const Message& message, Millis visibility) {
  return UpdateByReceipt(
             "UPDATE queue_messages SET visible_at = ?3 WHERE id = ?1 AND receipt = ?2 "
             "RETURNING queue",
             message, NowMs() + std::max<int64_t>(0, visibility.count()), "extend visibility")
      .transform([](const std::string&) {});
}

Result<std::string> SqliteTransport::ReadBody(const Message& message) {
  ASYA_ASSIGN_OR_RETURN(Receipt r, ParseReceipt(message));
  std::lock_guard lock(mu_);
  ASYA_ASSIGN_OR_RETURN(auto q, db_.Prepare("SELECT body, body_ext FROM queue_messages "
                                            "WHERE id = ?1 AND receipt = ?2"));
  q.Bind(1, r.id).BindText(2, r.token);
  ASYA_ASSIGN_OR_RETURN(bool row, q.Step());
  if (!row) {
    return Unexpected(ReceiptMismatch(r, "read body"));
  }
  if (q.Int(1) != 0) {
    return db_.ReadBlob("message_bodies", "body", r.id);
  }
  return q.Blob(0);
}

void SqliteTransport::Interrupt() {
  interrupted_.store(true);
  uint64_t one = 1;
  // The eventfd is never read, so it stays readable and every later poll() returns at once.
  (void)::write(interrupt_fd_, &one, sizeof(one));
}

Status SqliteTransport::CreateQueue(std::string_view queue, const QueueOptions& options) {
  ASYA_RETURN_IF_ERROR(ValidateQueueName(queue));
  std::string dlq = std::string(queue) + "-dlq";
  if (options.create_dlq) {
    ASYA_RETURN_IF_ERROR(ValidateQueueName(dlq));
  }
  std::lock_guard lock(mu_);
  ASYA_ASSIGN_OR_RETURN(auto txn, Transaction::Begin(db_, /*write=*/true));
  int64_t now = NowMs();
  {
    ASYA_ASSIGN_OR_RETURN(auto create,
                          db_.Prepare("INSERT INTO queues(name, created_ms, visibility_ms) "
                                      "VALUES (?1, ?2, ?3) ON CONFLICT(name) DO UPDATE SET "
                                      "visibility_ms = excluded.visibility_ms WHERE ?3 > 0"));
    ASYA_RETURN_IF_ERROR(
        create.BindText(1, queue).Bind(2, now).Bind(3, options.visibility.count()).Run());
    if (options.create_dlq) {
      ASYA_RETURN_IF_ERROR(create.BindText(1, dlq).Bind(2, now).Bind(3, 0).Run());
    }
  }
  return txn.Commit();
}

Status SqliteTransport::DeleteQueue(std::string_view queue) {
  ASYA_RETURN_IF_ERROR(ValidateQueueName(queue));
  {
    std::lock_guard lock(mu_);
    ASYA_ASSIGN_OR_RETURN(auto txn, Transaction::Begin(db_, /*write=*/true));
    {
      ASYA_ASSIGN_OR_RETURN(auto del, db_.Prepare("DELETE FROM queue_messages WHERE queue = ?1"));
      ASYA_RETURN_IF_ERROR(del.BindText(1, queue).Run());
      ASYA_ASSIGN_OR_RETURN(auto delq, db_.Prepare("DELETE FROM queues WHERE name = ?1"));
      ASYA_RETURN_IF_ERROR(delq.BindText(1, queue).Run());
    }
    ASYA_RETURN_IF_ERROR(txn.Commit());
  }
  wake_.Notify(queue);  // blocked receivers of a deleted queue return kNotFound now
  return Ok();
}

Result<bool> SqliteTransport::QueueExists(std::string_view queue) {
  ASYA_RETURN_IF_ERROR(ValidateQueueName(queue));
  std::lock_guard lock(mu_);
  return QueueExistsLocked(queue);
}

Result<QueueDepth> SqliteTransport::Depth(std::string_view queue) {
  ASYA_RETURN_IF_ERROR(ValidateQueueName(queue));
  std::lock_guard lock(mu_);
  ASYA_ASSIGN_OR_RETURN(auto read, Transaction::Begin(db_, /*write=*/false));
  ASYA_ASSIGN_OR_RETURN(bool exists, QueueExistsLocked(queue));
  if (!exists) {
    return MakeError(ErrorCode::kNotFound, "queue '" + std::string(queue) + "' does not exist");
  }
  ASYA_ASSIGN_OR_RETURN(auto q, db_.Prepare("SELECT COALESCE(SUM(visible_at <= ?2), 0), "
                                            "COALESCE(SUM(visible_at > ?2), 0) "
                                            "FROM queue_messages WHERE queue = ?1"));
  q.BindText(1, queue).Bind(2, NowMs());
  ASYA_ASSIGN_OR_RETURN(bool row, q.Step());
  QueueDepth d;
  if (row) {
    d.ready = q.Int(0);
    d.inflight = q.Int(1);
  }
  return d;
}

Result<std::vector<std::string>> SqliteTransport::ListQueues() {
  std::lock_guard lock(mu_);
  ASYA_ASSIGN_OR_RETURN(auto q, db_.Prepare("SELECT name FROM queues ORDER BY name"));
  std::vector<std::string> out;
  for (;;) {
    ASYA_ASSIGN_OR_RETURN(bool row, q.Step());
    if (!row) {
      return out;
    }
    out.push_back(q.Text(0));
  }
}

Status SqliteTransport::Purge(std::string_view queue) {
  ASYA_RETURN_IF_ERROR(ValidateQueueName(queue));
  std::lock_guard lock(mu_);
  ASYA_ASSIGN_OR_RETURN(auto txn, Transaction::Begin(db_, /*write=*/true));
  {
    ASYA_ASSIGN_OR_RETURN(bool exists, QueueExistsLocked(queue));
    if (!exists) {
      return MakeError(ErrorCode::kNotFound, "queue '" + std::string(queue) + "' does not exist");
    }
    ASYA_ASSIGN_OR_RETURN(auto del, db_.Prepare("DELETE FROM queue_messages WHERE queue = ?1"));
    ASYA_RETURN_IF_ERROR(del.BindText(1, queue).Run());
  }
  return txn.Commit();
}

Status InitSchema(Database& db) {
  // journal_mode=WAL is persistent in the file; setting it again is a no-op.
  // Two processes opening a brand-new file race for the journal-mode switch, and that pragma
  // may report SQLITE_BUSY without consulting the busy handler: retry briefly.
  Status wal = db.Exec("PRAGMA journal_mode = WAL");
  for (int i = 0; !wal && wal.error().code == ErrorCode::kUnavailable && i < 100; ++i) {
    ::usleep(20'000);
    wal = db.Exec("PRAGMA journal_mode = WAL");
  }
  ASYA_RETURN_IF_ERROR(wal);
  ASYA_ASSIGN_OR_RETURN(auto txn, Transaction::Begin(db, /*write=*/true));
  int64_t version = 0;
  {
    ASYA_ASSIGN_OR_RETURN(auto v, db.Prepare("PRAGMA user_version"));
    ASYA_ASSIGN_OR_RETURN(bool row, v.Step());
    version = row ? v.Int(0) : 0;
    if (version > kSchemaVersion) {
      return MakeError(ErrorCode::kFailedPrecondition,
                       "sqlite: '" + db.path() + "' has queue schema version " +
                           std::to_string(version) + ", newer than this program's " +
                           std::to_string(kSchemaVersion));
    }
  }
  if (version == 1) {
    ASYA_RETURN_IF_ERROR(db.Exec(kMigrateV1));
  }
  ASYA_RETURN_IF_ERROR(db.Exec(kSchema));
  ASYA_RETURN_IF_ERROR(
      db.Exec(("PRAGMA user_version = " + std::to_string(kSchemaVersion)).c_str()));
  return txn.Commit();
}

}  // namespace

Result<TransportPtr> MakeSqliteTransport(const SqliteSettings& settings) {
  if (settings.path.empty()) {
    return MakeError(ErrorCode::kInvalidArgument, "sqlite: the database path is empty");
  }
  std::string sync = settings.synchronous;
  std::transform(sync.begin(), sync.end(), sync.begin(), ::toupper);
  if (sync != "NORMAL" && sync != "FULL" && sync != "OFF") {
    return MakeError(ErrorCode::kInvalidArgument,
                     "sqlite: synchronous='" + settings.synchronous + "' is not NORMAL|FULL|OFF");
  }
  std::filesystem::path parent = std::filesystem::path(settings.path).parent_path();
  if (!parent.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(parent, ec);
    if (ec) {
      return MakeError(ErrorCode::kUnavailable, "sqlite: cannot create directory '" +
                                                    parent.string() + "': " + ec.message());
    }
  }
  ASYA_ASSIGN_OR_RETURN(
      Database db, Database::Open(settings.path, static_cast<int>(settings.busy_timeout.count())));
  ASYA_RETURN_IF_ERROR(InitSchema(db));
  ASYA_RETURN_IF_ERROR(db.Exec(("PRAGMA synchronous = " + sync).c_str()));
  int fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (fd < 0) {
    return MakeError(ErrorCode::kInternal, std::string("eventfd: ") + std::strerror(errno));
  }
  return std::make_unique<SqliteTransport>(settings, std::move(db), fd);
}

}  // namespace asya::transport
