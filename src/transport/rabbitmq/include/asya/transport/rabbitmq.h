// RabbitMQ transport (AMQP 0-9-1 via librabbitmq): topic exchange, quorum queues, confirms.
//
// One I/O thread owns the AMQP connection (librabbitmq is not thread-safe); every public method
// hands work to it and waits. Publish() uses publisher confirms + mandatory routing, so it returns
// only once the broker has the message in a queue. The connection is re-established with capped
// backoff after a loss; receipts from the old connection then fail Ack/Nack with
// kFailedPrecondition (the broker redelivers those messages). Design notes, delays and delivery
// counting: src/transport/rabbitmq/README.md.
#pragma once

#include <string>

#include "asya/transport/transport.h"

namespace asya::transport {

struct RabbitMqSettings {
  std::string url;  // ASYA_RABBITMQ_URL, or built from host/port/user/password (amqp[s]://)
  std::string exchange = "asya";  // ASYA_RABBITMQ_EXCHANGE
  int prefetch = 1;               // ASYA_RABBITMQ_PREFETCH (the sidecar raises it to concurrency)
  int queue_retry_max_attempts = 10;  // ASYA_QUEUE_RETRY_MAX_ATTEMPTS
  Millis queue_retry_backoff{1000};   // ASYA_QUEUE_RETRY_BACKOFF
  bool quorum_queues = true;          // queues we declare are quorum queues

  // TLS (amqps:// URLs). `?verify=false` in the URL also turns verification off.
  bool tls_verify = true;   // ASYA_RABBITMQ_TLS_VERIFY: check the certificate and host name
  std::string tls_ca_file;  // ASYA_RABBITMQ_TLS_CA_FILE: PEM bundle (default: system store)
  // Management HTTP API base URL, e.g. "http://guest:guest@127.0.0.1:15672"
  // (ASYA_RABBITMQ_MGMT_URL). Used for Depth().inflight and ListQueues(); empty -> inflight is -1
  // and ListQueues() returns the queues this process declared or consumed.
  std::string management_url;

  // How long MakeRabbitMqTransport() waits for the first connection (0 = do not wait: connect in
  // the background). Wrong credentials fail at once; unreachable brokers are retried until then.
  Millis connect_timeout{Millis(15'000)};
  // How long Publish() and queue administration wait (for a connection and for the confirm).
  Millis operation_timeout{Millis(30'000)};
  Millis reconnect_backoff_min{Millis(100)};    // reconnect delay doubles from here ...
  Millis reconnect_backoff_max{Millis(5'000)};  // ... up to here
  int heartbeat_seconds = 10;                   // AMQP heartbeat (0 = off)
  // How long a quorum holding queue this process has just created is left alone before the first
  // message goes into it. RabbitMQ 3.10.8 (Ra 2.2.0; fixed upstream by rabbitmq/ra#443) saves a new
  // quorum queue's Raft member registration to disk only on its next 500 ms auto-save; killed (kill
  // -9) before that, the broker restarts the queue as a new, empty member and everything confirmed
  // into it is lost. 0 turns the wait off (tests that never kill their broker). Costs this once per
  // new holding queue per broker; the I/O thread waits.
  Millis holding_queue_settle{Millis(1'500)};
};

Result<TransportPtr> MakeRabbitMqTransport(const RabbitMqSettings& settings);

// Parsed form of an amqp[s]:// URL (exposed for the CLI and tests).
struct RabbitMqEndpoint {
  bool tls = false;
  std::string host;
  int port = 5672;
  std::string user = "guest";
  std::string password = "guest";
  std::string vhost = "/";  // an empty path means "/" (DESIGN precise 7); "%2F" works too
  bool verify = true;       // false when the URL has ?verify=false
};

// Parses amqp://user:pass@host:port/vhost[?verify=false]; percent-escapes are decoded.
Result<RabbitMqEndpoint> ParseRabbitMqUrl(std::string_view url);

}  // namespace asya::transport
