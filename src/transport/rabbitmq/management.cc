#include "transport/rabbitmq/management.h"

#include <cstdio>

#include <curl/curl.h>
#include <nlohmann/json.hpp>

namespace asya::transport::rabbitmq {
namespace {

std::string Escape(const std::string& text) {
  std::string out;
  for (unsigned char c : text) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      char buf[4];
      std::snprintf(buf, sizeof(buf), "%%%02X", c);
      out += buf;
    }
  }
  return out;
}

size_t Collect(char* data, size_t size, size_t n, void* user) {
  static_cast<std::string*>(user)->append(data, size * n);
  return size * n;
}

}  // namespace

ManagementClient::ManagementClient(std::string base_url, std::string vhost)
    : base_url_(std::move(base_url)), vhost_(std::move(vhost)) {
  while (!base_url_.empty() && base_url_.back() == '/') {
    base_url_.pop_back();
  }
}

Result<std::string> ManagementClient::Get(const std::string& path) const {
  CURL* curl = curl_easy_init();
  if (curl == nullptr) {
    return MakeError(ErrorCode::kInternal, "curl_easy_init failed");
  }
  std::string body;
  std::string url = base_url_ + path;
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, Collect);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &body);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 10'000L);
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  CURLcode rc = curl_easy_perform(curl);
  long status = 0;
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
  curl_easy_cleanup(curl);
  if (rc != CURLE_OK) {
    return MakeError(ErrorCode::kUnavailable,
                     "RabbitMQ management API (" + base_url_ + "): " + curl_easy_strerror(rc));
  }
  if (status == 404) {
    return MakeError(ErrorCode::kNotFound, "RabbitMQ management API: 404 for " + path);
  }
  if (status != 200) {
    return MakeError(ErrorCode::kUnavailable,
                     "RabbitMQ management API: HTTP " + std::to_string(status) + " for " + path);
  }
  return body;
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
