// Thin RAII wrapper over one librabbitmq connection. NOT thread-safe: only the transport's I/O
// thread touches it (librabbitmq has no locking).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>

#include <amqp.h>

#include "asya/base/result.h"
#include "asya/transport/rabbitmq.h"
#include "transport/rabbitmq/amqp_table.h"

namespace asya::transport::rabbitmq {

class AmqpConnection {
 public:
  AmqpConnection() = default;
  ~AmqpConnection();
  AmqpConnection(const AmqpConnection&) = delete;
  AmqpConnection& operator=(const AmqpConnection&) = delete;

  // Opens the socket (TCP or TLS), logs in, sets timeouts. Errors: kPermissionDenied (login
  // refused), kNotFound (vhost), kInvalidArgument (TLS files), kUnavailable (network).
  Status Open(const RabbitMqEndpoint& endpoint, const RabbitMqSettings& settings);
  // Sends connection.close (best effort) and frees the connection.
  void Close();

  amqp_connection_state_t state() { return conn_; }
  int fd() const { return fd_; }
  // True once any call saw a connection-level failure; the owner must reconnect.
  bool broken() const { return broken_; }
  void MarkBroken() { broken_ = true; }

  Status OpenChannel(amqp_channel_t channel);
  // Converts an RPC reply. A channel-level exception completes the close handshake (the channel
  // is then closed); a connection-level one marks the connection broken. Server reply codes map
  // to 404 -> kNotFound, 403 -> kPermissionDenied, 406 -> kFailedPrecondition.
  Status CheckReply(amqp_rpc_reply_t reply, amqp_channel_t channel, std::string_view what);
  Status CheckReply(amqp_channel_t channel, std::string_view what) {
    return CheckReply(amqp_get_rpc_reply(conn_), channel, what);
  }
  // Answers a server-initiated channel.close.
  void SendChannelCloseOk(amqp_channel_t channel);
  void SendConnectionCloseOk();
  // Maps a librabbitmq status code (< 0) to an error, marking the connection broken.
  Status LibraryError(int status, std::string_view what);

 private:
  amqp_connection_state_t conn_ = nullptr;
  int fd_ = -1;
  bool broken_ = false;
  std::string where_;  // "user@host:port vhost '/'" for messages
};

}  // namespace asya::transport::rabbitmq
