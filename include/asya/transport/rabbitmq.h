// RabbitMQ transport (AMQP 0-9-1 via librabbitmq): topic exchange, quorum queues, confirms.
#pragma once

#include <string>

#include "asya/transport/transport.h"

namespace asya::transport {

struct RabbitMqSettings {
  std::string url;  // ASYA_RABBITMQ_URL, or built from host/port/user/password (amqp[s]://)
  std::string exchange = "asya";  // ASYA_RABBITMQ_EXCHANGE
  int prefetch = 1;               // ASYA_RABBITMQ_PREFETCH (the sidecar raises it to concurrency)
  int queue_retry_max_attempts = 10;   // ASYA_QUEUE_RETRY_MAX_ATTEMPTS
  Millis queue_retry_backoff{1000};    // ASYA_QUEUE_RETRY_BACKOFF
  bool quorum_queues = true;           // queues we declare are quorum queues
};

Result<TransportPtr> MakeRabbitMqTransport(const RabbitMqSettings& settings);

}  // namespace asya::transport
