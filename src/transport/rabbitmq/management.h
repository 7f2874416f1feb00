// Minimal client for the RabbitMQ management HTTP API (only what Depth/ListQueues need).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "asya/base/result.h"
#include "asya/http/client.h"

namespace asya::transport::rabbitmq {

struct ManagementQueueStats {
  int64_t ready = 0;
  int64_t unacked = 0;
  // The broker reports the queue's state as "running". After a broker restart a quorum queue
  // replays its log before it reports any state (and until then a passive declare counts 0).
  bool running = false;
};

class ManagementClient {
 public:
  // base_url: "http://user:pass@host:15672" (no trailing /api).
  ManagementClient(std::string base_url, std::string vhost);

  // Statistics lag behind by the broker's collect_statistics_interval (5 s by default).
  Result<ManagementQueueStats> QueueStats(const std::string& queue) const;
  Result<std::vector<std::string>> QueueNames() const;

 private:
  Result<std::string> Get(const std::string& path) const;

  std::string base_url_;
  std::string vhost_;
  http::Client http_;  // thread-safe, keeps the connection alive between calls
};

}  // namespace asya::transport::rabbitmq
