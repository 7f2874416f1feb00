// Open() and the helpers both backends share.
#include "asya/store/store.h"

#include <cmath>
#include <cstdio>

#include <nlohmann/json.hpp>

#include "store/internal.h"

namespace asya::store {
namespace internal {

std::string ActorsToJson(const std::vector<std::string>& actors) {
  return nlohmann::json(actors).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

Result<std::vector<std::string>> ActorsFromJson(std::string_view json) {
  if (json.empty()) {
    return std::vector<std::string>{};
  }
  auto parsed = nlohmann::json::parse(json, nullptr, /*allow_exceptions=*/false);
  if (!parsed.is_array()) {
    return MakeError(ErrorCode::kInternal, "stored actor list is not a JSON array");
  }
  std::vector<std::string> out;
  out.reserve(parsed.size());
  for (const auto& item : parsed) {
    if (!item.is_string()) {
      return MakeError(ErrorCode::kInternal, "stored actor list holds a non-string");
    }
    out.push_back(item.get<std::string>());
  }
  return out;
}

std::int64_t ToMicros(TimePoint t) {
  return std::chrono::duration_cast<std::chrono::microseconds>(t.time_since_epoch()).count();
}

TimePoint FromMicros(std::int64_t micros) {
  return TimePoint(
      std::chrono::duration_cast<TimePoint::duration>(std::chrono::microseconds(micros)));
}

std::string PercentText(double percent) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.2f", percent);
  return buf;
}

Status StatusFromColumn(std::string_view text) {
  return ParseStatus(text).value_or(Status::kUnknown);
}

Result<StoreUrl> ParseStoreUrl(std::string_view url) {
  auto starts = [&](std::string_view p) { return url.substr(0, p.size()) == p; };
  if (starts("postgresql://") || starts("postgres://")) {
    return StoreUrl{StoreUrl::Kind::kPostgres, std::string(url)};
  }
  if (starts("sqlite://")) {
    std::string path(url.substr(std::string_view("sqlite://").size()));
    if (path.empty()) {
      return MakeError(ErrorCode::kInvalidArgument,
                       "store URL 'sqlite://' names no file (sqlite:///abs/path.db or "
                       "sqlite://relative/path.db)");
    }
    if (path.find('?') != std::string::npos) {
      return MakeError(ErrorCode::kInvalidArgument,
                       "store URL '" + std::string(url) + "': sqlite takes no query parameters");
    }
    return StoreUrl{StoreUrl::Kind::kSqlite, path};
  }
  auto colon = url.find("://");
  std::string scheme =
      colon == std::string_view::npos ? std::string() : std::string(url.substr(0, colon));
  return MakeError(
      ErrorCode::kInvalidArgument,
      "store URL '" + std::string(url) +
          "': " + (scheme.empty() ? std::string("no scheme") : "unknown scheme '" + scheme + "'") +
          " (want postgresql://, postgres:// or sqlite://)");
}

FeedDispatcher::~FeedDispatcher() {
  Stop();
}

asya::Status FeedDispatcher::Start(std::function<void(const Update&)> on_update) {
  std::lock_guard<std::mutex> lock(mu_);
  if (started_) {
    return MakeError(ErrorCode::kFailedPrecondition, "the store's feed is already started");
  }
  on_update_ = std::move(on_update);
  started_ = true;
  thread_ = std::thread([this] { Loop(); });
  return Ok();
}

void FeedDispatcher::Push(Update update) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!started_ || stopping_) {
      return;
    }
    queue_.push_back(std::move(update));
  }
  cv_.notify_one();
}

void FeedDispatcher::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) {
    thread_.join();
  }
}

void FeedDispatcher::Loop() {
  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    cv_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
    if (stopping_) {
      return;
    }
    Update u = std::move(queue_.front());
    queue_.pop_front();
    lock.unlock();
    on_update_(u);
    lock.lock();
  }
}

asya::Status ValidateListQuery(const ListQuery& query) {
  if (query.limit < 1 || query.limit > 1000) {
    return MakeError(ErrorCode::kInvalidArgument,
                     "list limit must be 1..1000, not " + std::to_string(query.limit));
  }
  return Ok();
}

}  // namespace internal

std::vector<Result<void>> Store::CreateMany(const std::vector<Envelope>& envelopes) {
  std::vector<Result<void>> out;
  out.reserve(envelopes.size());
  for (const auto& e : envelopes) {
    out.push_back(Create(e));
  }
  return out;
}

std::vector<Result<Transition>> Store::MarkRunningMany(const std::vector<std::string>& ids,
                                                       std::string_view message) {
  std::vector<Result<Transition>> out;
  out.reserve(ids.size());
  for (const auto& id : ids) {
    out.push_back(MarkRunning(id, message));
  }
  return out;
}

Result<std::vector<Envelope>> Store::List(const ListQuery& /*query*/) {
  return MakeError(ErrorCode::kUnimplemented, "this store cannot list envelopes");
}

namespace {
Error NoSessions() {
  return Error{ErrorCode::kUnimplemented, "this store cannot keep MCP sessions"};
}
}  // namespace

Result<void> Store::CreateSession(const McpSession& /*session*/) {
  return tl::unexpected(NoSessions());
}
Result<McpSession> Store::GetSession(std::string_view /*id*/) {
  return tl::unexpected(NoSessions());
}
Result<void> Store::TouchSession(std::string_view /*id*/) {
  return tl::unexpected(NoSessions());
}
Result<bool> Store::DeleteSession(std::string_view /*id*/) {
  return tl::unexpected(NoSessions());
}
Result<std::int64_t> Store::PurgeSessionsIdleBefore(TimePoint /*cutoff*/) {
  return tl::unexpected(NoSessions());
}

Result<std::unique_ptr<Store>> Open(std::string_view url, Clock& clock) {
  return Open(url, clock, OpenOptions{});
}

Result<std::unique_ptr<Store>> Open(std::string_view url, Clock& clock,
                                    const OpenOptions& options) {
  if (options.max_connections < 1) {
    return MakeError(ErrorCode::kInvalidArgument, "store max_connections must be at least 1, not " +
                                                      std::to_string(options.max_connections));
  }
  ASYA_ASSIGN_OR_RETURN(internal::StoreUrl parsed, internal::ParseStoreUrl(url));
  if (parsed.kind == internal::StoreUrl::Kind::kPostgres) {
    return internal::OpenPostgres(parsed.target, clock, options.max_connections);
  }
  return internal::OpenSqlite(parsed.target, clock);
}

}  // namespace asya::store
