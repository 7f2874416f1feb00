// Builds a transport by name ("sqlite", "rabbitmq", "sqs").
#pragma once

#include <string>

#include "asya/transport/rabbitmq.h"
#include "asya/transport/sqlite.h"
#include "asya/transport/sqs.h"
#include "asya/transport/transport.h"

namespace asya::transport {

struct TransportSettings {
  std::string kind = "sqlite";
  SqliteSettings sqlite;
  RabbitMqSettings rabbitmq;
  SqsSettings sqs;
};

Result<TransportPtr> MakeTransport(const TransportSettings& settings);

}  // namespace asya::transport
