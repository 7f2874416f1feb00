#include "transport/rabbitmq/rules.h"

#include <algorithm>
#include <charconv>

namespace asya::transport::rabbitmq {
namespace {

bool AllDigits(std::string_view s) {
  return !s.empty() && s.find_first_not_of("0123456789") == std::string_view::npos;
}

std::optional<uint64_t> ParseU64(std::string_view s) {
  if (!AllDigits(s)) {
    return std::nullopt;
  }
  uint64_t v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size()) {
    return std::nullopt;
  }
  return v;
}

}  // namespace

Status ValidateQueueName(std::string_view queue) {
  if (queue.empty()) {
    return MakeError(ErrorCode::kInvalidArgument, "queue name is empty");
  }
  if (queue.size() > kMaxQueueName) {
    return MakeError(ErrorCode::kInvalidArgument,
                     "queue name is longer than " + std::to_string(kMaxQueueName) + " bytes");
  }
  for (unsigned char c : queue) {
    if (c < 0x20 || c == 0x7f) {
      return MakeError(ErrorCode::kInvalidArgument, "queue name contains a control character");
    }
  }
  return Ok();
}

std::string RoutingKey(std::string_view queue) {
  constexpr std::string_view kPrefix = "asya-";
  if (queue.substr(0, kPrefix.size()) == kPrefix && queue.size() > kPrefix.size()) {
    return std::string(queue.substr(kPrefix.size()));
  }
  return std::string(queue);
}

int64_t BucketDelayMs(int64_t ms) {
  if (ms <= 10) {
    return std::max<int64_t>(ms, 1);
  }
  static constexpr int64_t kSteps[] = {10, 12, 15, 20, 25, 30, 40, 50, 60, 80};
  for (int64_t scale = 1;; scale *= 10) {
    for (int64_t step : kSteps) {
      if (step * scale >= ms) {
        return step * scale;
      }
    }
  }
}

std::string HoldingQueueName(std::string_view queue, int64_t bucket_ms) {
  return std::string(queue) + "-hold-" + std::to_string(bucket_ms);
}

std::string ClassicHoldingQueueName(std::string_view queue, int64_t bucket_ms) {
  return std::string(queue) + "-delay-" + std::to_string(bucket_ms);
}

std::vector<QueueArgument> HoldingQueueArguments(std::string_view queue, int64_t bucket_ms) {
  return {
      QueueArgument{"x-queue-type", "quorum", 0, false},
      QueueArgument{"x-message-ttl", {}, bucket_ms, true},
      QueueArgument{"x-dead-letter-exchange", "", 0, false},
      QueueArgument{"x-dead-letter-routing-key", std::string(queue), 0, false},
      QueueArgument{"x-dead-letter-strategy", "at-least-once", 0, false},
      QueueArgument{"x-overflow", "reject-publish", 0, false},
  };
}

std::vector<QueueArgument> ClassicHoldingQueueArguments(std::string_view queue, int64_t bucket_ms) {
  return {
      QueueArgument{"x-message-ttl", {}, bucket_ms, true},
      QueueArgument{"x-dead-letter-exchange", "", 0, false},
      QueueArgument{"x-dead-letter-routing-key", std::string(queue), 0, false},
  };
}

std::vector<QueueArgument> QueueArguments(const std::map<std::string, std::string>& attributes,
                                          bool quorum) {
  std::vector<QueueArgument> args;
  bool has_type = false;
  for (const auto& [k, v] : attributes) {
    if (k.rfind("x-", 0) != 0) {
      continue;  // transport-specific extras of other transports
    }
    has_type = has_type || k == "x-queue-type";
    if (v.size() < 19 && AllDigits(v)) {
      args.push_back(QueueArgument{k, {}, std::stoll(v), true});
    } else {
      args.push_back(QueueArgument{k, v, 0, false});
    }
  }
  if (quorum && !has_type) {
    args.push_back(QueueArgument{"x-queue-type", "quorum", 0, false});
  }
  return args;
}

std::optional<int64_t> ParseCount(const Headers& headers, std::string_view key) {
  auto it = headers.find(std::string(key));
  if (it == headers.end() || !AllDigits(it->second) || it->second.size() > 18) {
    return std::nullopt;
  }
  return std::stoll(it->second);
}

bool IsBrokerHeader(std::string_view key) {
  return key == kQuorumCountHeader || key.rfind("x-first-death-", 0) == 0 ||
         key.rfind("x-last-death-", 0) == 0;
}

DeliveryCount CountDelivery(const Headers& headers, bool broker_redelivered) {
  DeliveryCount d;
  d.earlier = ParseCount(headers, kDeliveriesHeader).value_or(0);
  d.redelivered = broker_redelivered || d.earlier > 0;
  if (auto quorum = ParseCount(headers, kQuorumCountHeader)) {
    d.count = d.earlier + *quorum + 1;
  } else if (!broker_redelivered) {
    d.count = d.earlier + 1;
  } else {
    d.needs_counted_copy = true;
    d.count = 0;
  }
  return d;
}

Headers CopyHeaders(const Headers& headers, int64_t deliveries) {
  Headers out;
  for (const auto& [k, v] : headers) {
    if (!IsBrokerHeader(k) && k != kDeliveriesHeader) {
      out.emplace_hint(out.end(), k, v);
    }
  }
  if (deliveries > 0) {
    out[kDeliveriesHeader] = std::to_string(deliveries);
  }
  return out;
}

std::string FormatReceipt(uint64_t incarnation, uint64_t tag) {
  return std::to_string(incarnation) + "." + std::to_string(tag);
}

Result<Receipt> ParseReceipt(std::string_view receipt) {
  size_t dot = receipt.find('.');
  std::optional<uint64_t> incarnation;
  std::optional<uint64_t> tag;
  if (dot != std::string_view::npos) {
    incarnation = ParseU64(receipt.substr(0, dot));
    tag = ParseU64(receipt.substr(dot + 1));
  }
  if (!incarnation || !tag) {
    return MakeError(ErrorCode::kInvalidArgument, "malformed RabbitMQ receipt '" +
                                                      std::string(receipt) +
                                                      "' (expected <consumer>.<delivery-tag>)");
  }
  return Receipt{*incarnation, *tag};
}

std::string MessageIdPrefix(std::string_view instance, uint64_t generation) {
  return std::string(instance) + "-" + std::to_string(generation) + "-";
}

std::optional<uint64_t> PublishSeqFromMessageId(std::string_view id, std::string_view prefix) {
  if (id.substr(0, prefix.size()) != prefix) {
    return std::nullopt;
  }
  return ParseU64(id.substr(prefix.size()));
}

Error UnroutableError(std::string_view exchange, std::string_view routing_key, int reply_code,
                      std::string_view reply_text) {
  return Error{ErrorCode::kNotFound,
               "message was not routed to any queue: exchange '" +
                   (exchange.empty() ? std::string("(default)") : std::string(exchange)) +
                   "' routing key '" + std::string(routing_key) + "' (" +
                   std::to_string(reply_code) + " " + std::string(reply_text) +
                   "); does the queue exist and is it bound?"};
}

size_t MultipleAckRun(std::span<const PendingAck> acks, const std::set<uint64_t>& unsettled,
                      uint64_t incarnation) {
  size_t run = 0;
  auto u = unsettled.begin();
  for (size_t k = 0; k < acks.size() && u != unsettled.end() && *u == acks[k].tag &&
                     acks[k].incarnation == incarnation;
       ++k, ++u) {
    ++run;
  }
  return run >= 2 ? run : 0;
}

}  // namespace asya::transport::rabbitmq
