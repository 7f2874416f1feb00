#include "transport/rabbitmq/amqp_connection.h"

#include <sys/time.h>

#include <amqp_ssl_socket.h>
#include <amqp_tcp_socket.h>
#include <openssl/ssl.h>

namespace asya::transport::rabbitmq {
namespace {

timeval ToTimeval(Millis d) {
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(d.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>((d.count() % 1000) * 1000);
  return tv;
}

ErrorCode CodeForReply(uint16_t reply_code) {
  switch (reply_code) {
    case 404:
      return ErrorCode::kNotFound;
    case 403:
      return ErrorCode::kPermissionDenied;
    case 406:
      return ErrorCode::kFailedPrecondition;
    case 530:  // NOT_ALLOWED (e.g. unknown vhost)
      return ErrorCode::kPermissionDenied;
    default:
      return ErrorCode::kUnavailable;
  }
}

}  // namespace

AmqpConnection::~AmqpConnection() {
  Close();
}

Status AmqpConnection::Open(const RabbitMqEndpoint& ep, const RabbitMqSettings& settings) {
  Close();
  broken_ = false;
  where_ = "user '" + ep.user + "' at " + ep.host + ":" + std::to_string(ep.port) + " vhost '" +
           ep.vhost + "'";
  conn_ = amqp_new_connection();
  if (conn_ == nullptr) {
    return MakeError(ErrorCode::kResourceExhausted, "amqp_new_connection failed");
  }
  amqp_socket_t* socket = nullptr;
  if (ep.tls) {
    socket = amqp_ssl_socket_new(conn_);
    if (socket == nullptr) {
      return MakeError(ErrorCode::kInternal, "cannot create a TLS socket (OpenSSL init failed)");
    }
    bool verify = ep.verify && settings.tls_verify;
    amqp_ssl_socket_set_verify_peer(socket, verify ? 1 : 0);
    amqp_ssl_socket_set_verify_hostname(socket, verify ? 1 : 0);
    if (!settings.tls_ca_file.empty()) {
      if (amqp_ssl_socket_set_cacert(socket, settings.tls_ca_file.c_str()) != AMQP_STATUS_OK) {
        return MakeError(ErrorCode::kInvalidArgument,
                         "cannot load TLS CA file '" + settings.tls_ca_file + "'");
      }
    } else if (verify) {
      auto* ctx = static_cast<SSL_CTX*>(amqp_ssl_socket_get_context(socket));
      if (ctx != nullptr) {
        SSL_CTX_set_default_verify_paths(ctx);
      }
    }
  } else {
    socket = amqp_tcp_socket_new(conn_);
    if (socket == nullptr) {
      return MakeError(ErrorCode::kResourceExhausted, "amqp_tcp_socket_new failed");
    }
  }
  timeval connect_tv = ToTimeval(Millis(5000));
  int rc = amqp_socket_open_noblock(socket, ep.host.c_str(), ep.port, &connect_tv);
  if (rc != AMQP_STATUS_OK) {
    std::string why = amqp_error_string2(rc);
    Close();
    // A certificate that does not verify will not start verifying by retrying.
    bool tls_refused =
        rc == AMQP_STATUS_SSL_PEER_VERIFY_FAILED || rc == AMQP_STATUS_SSL_HOSTNAME_VERIFY_FAILED;
    return MakeError(
        tls_refused ? ErrorCode::kPermissionDenied : ErrorCode::kUnavailable,
        "cannot connect to RabbitMQ at " + ep.host + ":" + std::to_string(ep.port) + ": " + why);
  }
  timeval handshake_tv = ToTimeval(Millis(10'000));
  amqp_set_handshake_timeout(conn_, &handshake_tv);
  // Announce the capabilities we handle: basic.cancel when a consumed queue is deleted,
  // connection.blocked, and a proper connection.close on failed authentication.
  amqp_table_entry_t caps[4];
  const char* cap_names[] = {"consumer_cancel_notify", "connection.blocked",
                             "authentication_failure_close", "publisher_confirms"};
  for (int i = 0; i < 4; ++i) {
    caps[i].key = amqp_cstring_bytes(cap_names[i]);
    caps[i].value.kind = AMQP_FIELD_KIND_BOOLEAN;
    caps[i].value.value.boolean = 1;
  }
  amqp_table_entry_t props[2];
  props[0].key = amqp_cstring_bytes("capabilities");
  props[0].value.kind = AMQP_FIELD_KIND_TABLE;
  props[0].value.value.table = amqp_table_t{4, caps};
  props[1].key = amqp_cstring_bytes("product");
  props[1].value.kind = AMQP_FIELD_KIND_UTF8;
  props[1].value.value.bytes = amqp_cstring_bytes("asya");
  amqp_table_t client_properties{2, props};
  amqp_rpc_reply_t login = amqp_login_with_properties(
      conn_, ep.vhost.c_str(), 0, 131072, settings.heartbeat_seconds, &client_properties,
      AMQP_SASL_METHOD_PLAIN, ep.user.c_str(), ep.password.c_str());
  if (login.reply_type != AMQP_RESPONSE_NORMAL) {
    Error err{ErrorCode::kUnavailable, ""};
    if (login.reply_type == AMQP_RESPONSE_SERVER_EXCEPTION &&
        login.reply.id == AMQP_CONNECTION_CLOSE_METHOD) {
      auto* close = static_cast<amqp_connection_close_t*>(login.reply.decoded);
      err.code = CodeForReply(close->reply_code);
      err.message = "RabbitMQ refused the login of " + where_ + ": " +
                    std::to_string(close->reply_code) + " " + BytesToString(close->reply_text);
      SendConnectionCloseOk();
    } else if (login.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION &&
               (login.library_error == AMQP_STATUS_CONNECTION_CLOSED ||
                login.library_error == AMQP_STATUS_SOCKET_CLOSED)) {
      // Brokers without authentication_failure_close just drop the socket on bad credentials.
      err.code = ErrorCode::kPermissionDenied;
      err.message = "RabbitMQ closed the connection during login of " + where_ +
                    " (wrong user name or password?): " + amqp_error_string2(login.library_error);
    } else {
      err.message = "AMQP login of " + where_ + " failed: " +
                    (login.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION
                         ? std::string(amqp_error_string2(login.library_error))
                         : std::string("unexpected reply"));
    }
    Close();
    return tl::unexpected(err);
  }
  timeval rpc_tv = ToTimeval(settings.operation_timeout);
  amqp_set_rpc_timeout(conn_, &rpc_tv);
  fd_ = amqp_get_sockfd(conn_);
  return Ok();
}

void AmqpConnection::Close() {
  if (conn_ == nullptr) {
    return;
  }
  if (!broken_ && fd_ >= 0) {
    amqp_connection_close(conn_, AMQP_REPLY_SUCCESS);
  }
  amqp_destroy_connection(conn_);
  conn_ = nullptr;
  fd_ = -1;
}

Status AmqpConnection::OpenChannel(amqp_channel_t channel) {
  amqp_channel_open(conn_, channel);
  return CheckReply(channel, "channel.open");
}

Status AmqpConnection::LibraryError(int status, std::string_view what) {
  broken_ = true;
  return MakeError(ErrorCode::kUnavailable, std::string(what) +
                                                " failed: connection to RabbitMQ (" + where_ +
                                                ") lost: " + amqp_error_string2(status));
}

Status AmqpConnection::CheckReply(amqp_rpc_reply_t reply, amqp_channel_t channel,
                                  std::string_view what) {
  switch (reply.reply_type) {
    case AMQP_RESPONSE_NORMAL:
      return Ok();
    case AMQP_RESPONSE_NONE:
      broken_ = true;
      return MakeError(ErrorCode::kUnavailable, std::string(what) + ": no reply from RabbitMQ");
    case AMQP_RESPONSE_LIBRARY_EXCEPTION:
      return LibraryError(reply.library_error, what);
    case AMQP_RESPONSE_SERVER_EXCEPTION:
      break;
  }
  if (reply.reply.id == AMQP_CHANNEL_CLOSE_METHOD) {
    auto* close = static_cast<amqp_channel_close_t*>(reply.reply.decoded);
    std::string text = std::to_string(close->reply_code) + " " + BytesToString(close->reply_text);
    ErrorCode code = CodeForReply(close->reply_code);
    SendChannelCloseOk(channel);
    return MakeError(code, std::string(what) + ": " + text);
  }
  if (reply.reply.id == AMQP_CONNECTION_CLOSE_METHOD) {
    auto* close = static_cast<amqp_connection_close_t*>(reply.reply.decoded);
    std::string text = std::to_string(close->reply_code) + " " + BytesToString(close->reply_text);
    SendConnectionCloseOk();
    broken_ = true;
    return MakeError(ErrorCode::kUnavailable,
                     std::string(what) + ": RabbitMQ closed the connection: " + text);
  }
  broken_ = true;
  return MakeError(ErrorCode::kInternal, std::string(what) + ": unexpected server reply");
}

void AmqpConnection::SendChannelCloseOk(amqp_channel_t channel) {
  amqp_channel_close_ok_t ok{};
  if (amqp_send_method(conn_, channel, AMQP_CHANNEL_CLOSE_OK_METHOD, &ok) != AMQP_STATUS_OK) {
    broken_ = true;
  }
}

void AmqpConnection::SendConnectionCloseOk() {
  amqp_connection_close_ok_t ok{};
  amqp_send_method(conn_, 0, AMQP_CONNECTION_CLOSE_OK_METHOD, &ok);
  broken_ = true;
}

}  // namespace asya::transport::rabbitmq
