#include "bin/crew/crew_store.h"

#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>

#include <unistd.h>

#include "asya/base/crew_layout.h"
#include "asya/base/file.h"
#include "asya/base/time_format.h"

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
  return FormatRfc3339(t, 6);
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
  return WriteFileAtomic(
      path.string(), envelope.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n");
}

}  // namespace asya::crew
