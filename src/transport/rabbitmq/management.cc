#include "transport/rabbitmq/management.h"

#include <nlohmann/json.hpp>

#include "asya/http/url.h"

namespace asya::transport::rabbitmq {
namespace {

std::string Escape(const std::string& text) {
  return http::PercentEncode(text);
}

}  // namespace

ManagementClient::ManagementClient(std::string base_url, std::string vhost)
    : base_url_(std::move(base_url)),
      vhost_(std::move(vhost)),
      http_(http::ClientOptions{.base_url = base_url_,
                                .timeout = http::Millis(10'000),
                                .connect_timeout = http::Millis(10'000)}) {
  while (!base_url_.empty() && base_url_.back() == '/') {
    base_url_.pop_back();
  }
}

Result<std::string> ManagementClient::Get(const std::string& path) const {
  auto response = http_.Get(path);
  if (!response) {
    return MakeError(ErrorCode::kUnavailable,
                     "RabbitMQ management API: " + response.error().message);
  }
  const long status = response->status;
  if (status == 404) {
    return MakeError(ErrorCode::kNotFound, "RabbitMQ management API: 404 for " + path);
  }
  if (status != 200) {
    return MakeError(ErrorCode::kUnavailable,
                     "RabbitMQ management API: HTTP " + std::to_string(status) + " for " + path);
  }
  return std::move(response->body);
}

Result<ManagementQueueStats> ManagementClient::QueueStats(const std::string& queue) const {
  ASYA_ASSIGN_OR_RETURN(std::string body,
                        Get("/api/queues/" + Escape(vhost_) + "/" + Escape(queue)));
  auto doc = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (!doc.is_object()) {
    return MakeError(ErrorCode::kInternal, "RabbitMQ management API: queue stats are not JSON");
  }
  ManagementQueueStats stats;
  // Fields are absent (or null) until the first statistics tick after the queue was declared.
  if (auto it = doc.find("messages_ready"); it != doc.end() && it->is_number_integer()) {
    stats.ready = it->get<int64_t>();
  }
  if (auto it = doc.find("messages_unacknowledged"); it != doc.end() && it->is_number_integer()) {
    stats.unacked = it->get<int64_t>();
  }
  if (auto it = doc.find("state"); it != doc.end() && it->is_string()) {
    stats.running = it->get<std::string>() == "running";
  }
  return stats;
}

Result<std::vector<std::string>> ManagementClient::QueueNames() const {
  ASYA_ASSIGN_OR_RETURN(std::string body, Get("/api/queues/" + Escape(vhost_) + "?columns=name"));
  auto doc = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (!doc.is_array()) {
    return MakeError(ErrorCode::kInternal, "RabbitMQ management API: queue list is not JSON");
  }
  std::vector<std::string> names;
  for (const auto& q : doc) {
    if (q.is_object() && q.contains("name") && q["name"].is_string()) {
      names.push_back(q["name"].get<std::string>());
    }
  }
  return names;
}

}  // namespace asya::transport::rabbitmq
