#include "transport/sqlite/sqlite_db.h"

#include <algorithm>
#include <thread>
#include <utility>

#include <sqlite3.h>

namespace asya::transport::sqlite {

Error SqliteError(sqlite3* db, int rc, std::string_view what) {
  ErrorCode code = ErrorCode::kInternal;
  switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
    case SQLITE_IOERR:
    case SQLITE_CANTOPEN:
    case SQLITE_PROTOCOL:
      code = ErrorCode::kUnavailable;
      break;
    case SQLITE_FULL:
    case SQLITE_NOMEM:
      code = ErrorCode::kResourceExhausted;
      break;
    case SQLITE_READONLY:
    case SQLITE_PERM:
    case SQLITE_AUTH:
      code = ErrorCode::kPermissionDenied;
      break;
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
      code = ErrorCode::kFailedPrecondition;
      break;
    default:
      break;
  }
  std::string detail = db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
  return Error{code, "sqlite: " + std::string(what) + ": " + detail};
}

Query::~Query() {
  if (stmt_ != nullptr) {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
  }
}

Query& Query::Bind(int index, int64_t value) {
  sqlite3_bind_int64(stmt_, index, value);
  return *this;
}

Query& Query::BindText(int index, std::string_view value) {
  sqlite3_bind_text64(stmt_, index, value.data(), value.size(), SQLITE_TRANSIENT, SQLITE_UTF8);
  return *this;
}

Query& Query::BindBlob(int index, std::string_view value) {
  // A zero-length blob must still be a blob, not NULL: pass a non-null pointer.
  static const char kEmpty = 0;
  // SQLITE_STATIC: no copy of a (possibly large) body; the caller keeps `value` alive until the
  // query is run or destroyed (both reset the statement and clear its bindings).
  sqlite3_bind_blob64(stmt_, index, value.empty() ? &kEmpty : value.data(), value.size(),
                      SQLITE_STATIC);
  return *this;
}

Query& Query::BindNull(int index) {
  sqlite3_bind_null(stmt_, index);
  return *this;
}

Result<bool> Query::Step() {
  int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) {
    return true;
  }
  if (rc == SQLITE_DONE) {
    return false;
  }
  return Unexpected(SqliteError(db_, rc, "step"));
}

Status Query::Run() {
  for (;;) {
    auto row = Step();
    if (!row || !*row) {
      sqlite3_reset(stmt_);
      sqlite3_clear_bindings(stmt_);
      return row ? Ok() : Unexpected(std::move(row).error());
    }
  }
}

int64_t Query::Int(int column) const {
  return sqlite3_column_int64(stmt_, column);
}

bool Query::IsNull(int column) const {
  return sqlite3_column_type(stmt_, column) == SQLITE_NULL;
}

std::string Query::Text(int column) const {
  const auto* p = sqlite3_column_text(stmt_, column);
  int n = sqlite3_column_bytes(stmt_, column);
  return p == nullptr ? std::string() : std::string(reinterpret_cast<const char*>(p), n);
}

std::string Query::Blob(int column) const {
  const void* p = sqlite3_column_blob(stmt_, column);
  int n = sqlite3_column_bytes(stmt_, column);
  return p == nullptr ? std::string() : std::string(static_cast<const char*>(p), n);
}

Database::Database(Database&& other) noexcept
    : db_(std::exchange(other.db_, nullptr)),
      path_(std::move(other.path_)),
      busy_(std::move(other.busy_)),
      statements_(std::move(other.statements_)) {
  other.statements_.clear();
}

Database& Database::operator=(Database&& other) noexcept {
  if (this != &other) {
    Close();
    db_ = std::exchange(other.db_, nullptr);
    path_ = std::move(other.path_);
    busy_ = std::move(other.busy_);
    statements_ = std::move(other.statements_);
    other.statements_.clear();
  }
  return *this;
}

Database::~Database() {
  Close();
}

void Database::Close() {
  for (auto& [sql, stmt] : statements_) {
    sqlite3_finalize(stmt);
  }
  statements_.clear();
  if (db_ != nullptr) {
    sqlite3_close_v2(db_);
    db_ = nullptr;
  }
}

Result<Database> Database::Open(const std::string& path, int busy_timeout_ms) {
  Database d;
  d.path_ = path;
  int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
  int rc = sqlite3_open_v2(path.c_str(), &d.db_, flags, nullptr);
  if (rc != SQLITE_OK) {
    Error e = SqliteError(d.db_, rc, "cannot open '" + path + "'");
    return Unexpected(std::move(e));
  }
  sqlite3_extended_result_codes(d.db_, 1);
  d.busy_ = std::make_unique<BusyState>();
  d.busy_->timeout = std::chrono::milliseconds(busy_timeout_ms);
  sqlite3_busy_handler(d.db_, &Database::OnBusy, d.busy_.get());
  return d;
}

int Database::OnBusy(void* state, int attempt) {
  auto* busy = static_cast<BusyState*>(state);
  auto now = std::chrono::steady_clock::now();
  if (attempt == 0) {
    busy->since = now;
  } else if (now - busy->since >= busy->timeout) {
    return 0;  // give up: the caller gets SQLITE_BUSY (kUnavailable)
  }
  int64_t sleep_us = std::min<int64_t>(int64_t{50} << std::min(attempt, 6), 2000);
  std::this_thread::sleep_for(std::chrono::microseconds(sleep_us));
  return 1;
}

Status Database::Exec(const char* sql) {
  char* err = nullptr;
  int rc = sqlite3_exec(db_, sql, nullptr, nullptr, &err);
  if (rc != SQLITE_OK) {
    Error e = SqliteError(db_, rc, std::string("'") + sql + "' on '" + path_ + "'");
    sqlite3_free(err);
    return Unexpected(std::move(e));
  }
  return Ok();
}

Status Database::Run(const char* sql) {
  auto q = Prepare(sql);
  if (!q) {
    return Unexpected(std::move(q).error());
  }
  if (auto st = q->Run(); !st) {
    std::string detail = st.error().message;  // "sqlite: step: <what SQLite said>"
    if (size_t at = detail.find(": ", detail.find(": ") + 1); at != std::string::npos) {
      detail.erase(0, at + 2);
    }
    return MakeError(st.error().code,
                     "sqlite: '" + std::string(sql) + "' on '" + path_ + "': " + detail);
  }
  return Ok();
}

Result<Query> Database::Prepare(const char* sql) {
  auto it = statements_.find(std::string_view(sql));
  if (it == statements_.end()) {
    sqlite3_stmt* stmt = nullptr;
    int rc = sqlite3_prepare_v3(db_, sql, -1, SQLITE_PREPARE_PERSISTENT, &stmt, nullptr);
    if (rc != SQLITE_OK) {
      return Unexpected(SqliteError(db_, rc, std::string("prepare '") + sql + "'"));
    }
    it = statements_.emplace(sql, stmt).first;
  }
  return Query(it->second, db_);
}

int64_t Database::LastInsertRowid() const {
  return sqlite3_last_insert_rowid(db_);
}

int64_t Database::Changes() const {
  return sqlite3_changes64(db_);
}

namespace {

// Closes a blob handle when it goes away (an open handle would keep the transaction from
// committing).
struct BlobHandle {
  sqlite3_blob* blob = nullptr;
  ~BlobHandle() {
    if (blob != nullptr) {
      sqlite3_blob_close(blob);
    }
  }
};

}  // namespace

Status Database::WriteBlob(const char* table, const char* column, int64_t rowid,
                           std::string_view data) {
  BlobHandle h;
  int rc = sqlite3_blob_open(db_, "main", table, column, rowid, /*flags=*/1, &h.blob);
  if (rc != SQLITE_OK) {
    return Unexpected(SqliteError(db_, rc, std::string("open blob for writing in ") + table));
  }
  // sqlite3_blob_write takes an int count: write in pieces.
  constexpr size_t kPiece = 1u << 30;
  for (size_t off = 0; off < data.size(); off += kPiece) {
    const size_t n = std::min(kPiece, data.size() - off);
    rc = sqlite3_blob_write(h.blob, data.data() + off, static_cast<int>(n), static_cast<int>(off));
    if (rc != SQLITE_OK) {
      return Unexpected(SqliteError(db_, rc, std::string("write blob in ") + table));
    }
  }
  return Ok();
}

Result<std::string> Database::ReadBlob(const char* table, const char* column, int64_t rowid) {
  BlobHandle h;
  int rc = sqlite3_blob_open(db_, "main", table, column, rowid, /*flags=*/0, &h.blob);
  if (rc != SQLITE_OK) {
    return Unexpected(SqliteError(db_, rc, std::string("open blob for reading in ") + table));
  }
  std::string out(static_cast<size_t>(sqlite3_blob_bytes(h.blob)), '\0');
  if (!out.empty()) {
    rc = sqlite3_blob_read(h.blob, out.data(), static_cast<int>(out.size()), 0);
    if (rc != SQLITE_OK) {
      return Unexpected(SqliteError(db_, rc, std::string("read blob in ") + table));
    }
  }
  return out;
}

Result<Transaction> Transaction::Begin(Database& db, bool write) {
  ASYA_RETURN_IF_ERROR(db.Run(write ? "BEGIN IMMEDIATE" : "BEGIN"));
  return Transaction(&db);
}

Transaction::~Transaction() {
  if (db_ != nullptr) {
    (void)db_->Run("ROLLBACK");
  }
}

Status Transaction::Commit() {
  Database* db = std::exchange(db_, nullptr);
  Status s = db->Run("COMMIT");
  if (!s) {
    (void)db->Run("ROLLBACK");
  }
  return s;
}

}  // namespace asya::transport::sqlite
