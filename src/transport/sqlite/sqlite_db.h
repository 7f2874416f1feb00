// Thin RAII layer over the SQLite C API used by the sqlite transport (private header).
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>

#include "asya/base/result.h"

struct sqlite3;
struct sqlite3_stmt;

namespace asya::transport::sqlite {

// A cached prepared statement in use; resets it and clears its bindings when it goes away.
class Query {
 public:
  explicit Query(sqlite3_stmt* stmt, sqlite3* db) : stmt_(stmt), db_(db) {}
  Query(const Query&) = delete;
  Query& operator=(const Query&) = delete;
  Query(Query&& other) noexcept : stmt_(other.stmt_), db_(other.db_) { other.stmt_ = nullptr; }
  Query& operator=(Query&&) = delete;
  ~Query();

  // Parameters are 1-based, as in SQL ("?1").
  Query& Bind(int index, int64_t value);
  Query& BindText(int index, std::string_view value);
  // Not copied: `value` must stay alive until the query is run or destroyed.
  Query& BindBlob(int index, std::string_view value);
  Query& BindNull(int index);

  // true = a row is available, false = done.
  Result<bool> Step();
  // Steps to completion (for statements that return no rows) and resets the statement, so it can
  // be bound and run again.
  Status Run();

  [[nodiscard]] int64_t Int(int column) const;
  [[nodiscard]] bool IsNull(int column) const;
  [[nodiscard]] std::string Text(int column) const;
  [[nodiscard]] std::string Blob(int column) const;

 private:
  sqlite3_stmt* stmt_;
  sqlite3* db_;
};

class Database {
 public:
  Database() = default;
  Database(const Database&) = delete;
  Database& operator=(const Database&) = delete;
  Database(Database&& other) noexcept;
  Database& operator=(Database&& other) noexcept;
  ~Database();

  // Opens (creating if needed) the file at `path` in read-write mode.
  static Result<Database> Open(const std::string& path, int busy_timeout_ms);

  // Parses and runs `sql` (one or more statements) every time: for schema set-up and pragmas.
  Status Exec(const char* sql);
  // Runs one statement that returns no rows (BEGIN, COMMIT, SAVEPOINT, ...) from the statement
  // cache: parsed once per connection, not on every call as Exec does.
  Status Run(const char* sql);
  // Prepares `sql` once per connection and reuses it afterwards.
  Result<Query> Prepare(const char* sql);
  // The rowid of the last INSERT on this connection.
  [[nodiscard]] int64_t LastInsertRowid() const;
  // Rows changed by the last finished INSERT, UPDATE or DELETE on this connection.
  [[nodiscard]] int64_t Changes() const;
  // Incremental blob I/O on `table`.`column` of row `rowid` (the row must exist; a write must fit
  // the blob's size, e.g. a zeroblob(n) inserted before): the bytes move between `data` and the
  // database pages without SQLite building the whole value in memory.
  Status WriteBlob(const char* table, const char* column, int64_t rowid, std::string_view data);
  Result<std::string> ReadBlob(const char* table, const char* column, int64_t rowid);
  [[nodiscard]] const std::string& path() const { return path_; }

 private:
  void Close();

  // Retries a locked database with short sleeps (50 us doubling up to 2 ms) until busy_timeout:
  // SQLite's default handler sleeps 1, 2, 5, 10, ... ms, which adds tens of ms to a contended
  // hand-off between a publisher and a consumer.
  struct BusyState {
    std::chrono::milliseconds timeout{0};
    std::chrono::steady_clock::time_point since;
  };
  static int OnBusy(void* state, int attempt);

  sqlite3* db_ = nullptr;
  std::string path_;
  std::unique_ptr<BusyState> busy_;  // heap: its address is the handler's context across moves
  std::map<std::string, sqlite3_stmt*, std::less<>> statements_;
};

// Maps the last error of `db` (after result code `rc`) to an asya::Error.
Error SqliteError(sqlite3* db, int rc, std::string_view what);

// BEGIN IMMEDIATE (write) or BEGIN (read) ... COMMIT; rolls back when destroyed uncommitted.
class Transaction {
 public:
  static Result<Transaction> Begin(Database& db, bool write);
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;
  Transaction(Transaction&& other) noexcept : db_(other.db_) { other.db_ = nullptr; }
  Transaction& operator=(Transaction&&) = delete;
  ~Transaction();
  Status Commit();

 private:
  explicit Transaction(Database* db) : db_(db) {}
  Database* db_;
};

}  // namespace asya::transport::sqlite
