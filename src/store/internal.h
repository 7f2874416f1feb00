// Private helpers shared by the store's backends (not part of the library's interface).
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "asya/base/clock.h"
#include "asya/base/result.h"
#include "asya/store/store.h"

namespace asya::store::internal {

// A JSON array of strings, and back (kInternal when the stored text is not one).
std::string ActorsToJson(const std::vector<std::string>& actors);
Result<std::vector<std::string>> ActorsFromJson(std::string_view json);

// Microseconds since the Unix epoch (the unit both backends store times in), and back.
std::int64_t ToMicros(TimePoint t);
TimePoint FromMicros(std::int64_t micros);

// "12.34": progress as PostgreSQL's DECIMAL(5,2) stores it.
std::string PercentText(double percent);

// Status read from a database row: a name we do not know (a legacy value) reads as kUnknown.
Status StatusFromColumn(std::string_view text);

struct StoreUrl {
  enum class Kind { kPostgres, kSqlite };
  Kind kind = Kind::kSqlite;
  std::string target;  // the whole URL for PostgreSQL, the file path for SQLite
};
// kInvalidArgument for an unknown scheme or an empty path.
Result<StoreUrl> ParseStoreUrl(std::string_view url);

// Delivers updates to the feed callback on its own thread, in the order they were pushed, so the
// writer never runs the callback (and never waits for it).
class FeedDispatcher {
 public:
  FeedDispatcher() = default;
  ~FeedDispatcher();
  FeedDispatcher(const FeedDispatcher&) = delete;
  FeedDispatcher& operator=(const FeedDispatcher&) = delete;

  // kFailedPrecondition when already started.
  asya::Status Start(std::function<void(const Update&)> on_update);
  // No-op until Start.
  void Push(Update update);
  void Stop();

 private:
  void Loop();

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Update> queue_;
  std::function<void(const Update&)> on_update_;
  bool started_ = false;
  bool stopping_ = false;
  std::thread thread_;
};

Result<std::unique_ptr<Store>> OpenSqlite(const std::string& path, Clock& clock);
Result<std::unique_ptr<Store>> OpenPostgres(const std::string& url, Clock& clock,
                                            int max_connections);

// kInvalidArgument for a limit outside 1..1000.
asya::Status ValidateListQuery(const ListQuery& query);

}  // namespace asya::store::internal
