#include "bin/crew/crew_store.h"

#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>

#include <unistd.h>

#include "asya/base/crew_layout.h"

namespace asya::crew {
namespace fs = std::filesystem;

namespace {

std::string SafeComponent(std::string s) {
  if (s.empty()) {
    return "_";
  }
  for (char& c : s) {
    if (c == '/' || c == '\\' || c == '\0') {
      c = '_';
    }
  }
  if (s[0] == '.') {
    s[0] = '_';
  }
  return s;
}

}  // namespace

std::string LastActor(const nlohmann::json& envelope) {
  auto route = envelope.find("route");
  if (route == envelope.end() || !route->is_object()) {
    return "unknown";
  }
  auto actors = route->find("actors");
  if (actors == route->end() || !actors->is_array() || actors->empty()) {
    return "unknown";
  }
  int64_t current = 0;
  if (auto c = route->find("current"); c != route->end() && c->is_number_integer()) {
    current = c->get<int64_t>();
  }
  const auto& pick = (current > 0 && current < static_cast<int64_t>(actors->size()))
                         ? (*actors)[static_cast<size_t>(current)]
                         : actors->back();
  return pick.is_string() ? pick.get<std::string>() : "unknown";
}

std::string FormatTimestamp(std::chrono::system_clock::time_point t) {
  auto us = std::chrono::duration_cast<std::chrono::microseconds>(t.time_since_epoch()).count();
  std::time_t secs = static_cast<std::time_t>(us / 1'000'000);
  std::tm tm{};
  ::gmtime_r(&secs, &tm);
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d.%06lldZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                static_cast<long long>(us % 1'000'000));
  return buf;
}

Result<std::string> MakeKey(const nlohmann::json& envelope, const std::string& prefix,
                            std::chrono::system_clock::time_point now) {
  if (!envelope.is_object()) {
    return MakeError(ErrorCode::kInvalidArgument, "envelope must be a JSON object");
  }
  auto id = envelope.find("id");
  if (id == envelope.end() || !id->is_string()) {
    return MakeError(ErrorCode::kInvalidArgument, "envelope has no string 'id'");
  }
  return crew_layout::Key(prefix, FormatTimestamp(now), SafeComponent(LastActor(envelope)),
                          SafeComponent(id->get<std::string>()));
}

Status Store(const std::string& root, const std::string& key, const nlohmann::json& envelope) {
  fs::path path = fs::path(root) / key;
  std::error_code ec;
  fs::create_directories(path.parent_path(), ec);
  if (ec) {
    return MakeError(ErrorCode::kUnavailable,
                     "cannot create " + path.parent_path().string() + ": " + ec.message());
  }
  fs::path tmp = path;
  tmp += ".tmp" + std::to_string(::getpid());
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << envelope.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
    out.flush();
    if (!out) {
      return MakeError(ErrorCode::kUnavailable, "cannot write " + tmp.string());
    }
  }
  fs::rename(tmp, path, ec);
  if (ec) {
    return MakeError(ErrorCode::kUnavailable, "cannot rename to " + path.string());
  }
  return Ok();
}

}  // namespace asya::crew
