// Fuzzes what the RabbitMQ transport reads from the broker: the wire form of a message's basic
// properties and header table (decoded by librabbitmq, converted by ReadProperties/TableToMap),
// the delivery counting and republish rules applied to those headers, receipts and message ids
// the transport hands out and reads back, and the amqp:// URL of ASYA_RABBITMQ_URL.
//
// Input: byte 0 picks what the rest is: even -> an encoded field table, odd -> encoded basic
// properties (flags first); the whole input is also read as a receipt, a message id and a URL.
//
// Invariants:
// - Nothing crashes on any table or property bytes.
// - Headers we read, written back with TableBuilder and decoded again, are the same map.
// - CountDelivery never gives a count below 1; CopyHeaders drops broker headers and sets
//   x-asya-deliveries exactly as asked.
// - ParseReceipt(FormatReceipt(a, b)) == {a, b}; message ids of our prefix give their number.
#include <cstdint>
#include <cstring>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include <amqp.h>

#include <amqp_framing.h>

#include "asya/transport/rabbitmq.h"
#include "fuzz_check.h"
#include "transport/rabbitmq/amqp_table.h"
#include "transport/rabbitmq/rules.h"

namespace {

namespace rmq = asya::transport::rabbitmq;

void CheckHeaders(const rmq::Headers& headers) {
  for (bool redelivered : {false, true}) {
    rmq::DeliveryCount dc = rmq::CountDelivery(headers, redelivered);
    FUZZ_CHECK(dc.needs_counted_copy || dc.count >= 1);
    FUZZ_CHECK(dc.earlier >= 0);
  }
  (void)rmq::ParseCount(headers, rmq::kDeliveriesHeader);
  (void)rmq::ParseCount(headers, rmq::kQuorumCountHeader);
  for (int64_t deliveries : {0, 3}) {
    rmq::Headers copy = rmq::CopyHeaders(headers, deliveries);
    for (const auto& [key, value] : copy) {
      FUZZ_CHECK(!rmq::IsBrokerHeader(key));
    }
    auto it = copy.find(rmq::kDeliveriesHeader);
    FUZZ_CHECK((it != copy.end()) == (deliveries > 0));
    if (deliveries > 0) {
      FUZZ_CHECK(rmq::ParseCount(copy, rmq::kDeliveriesHeader) == deliveries);
    }
  }

  // Written back as strings and read again: the same map (keys longer than an AMQP short string
  // cannot be written).
  rmq::TableBuilder builder;
  rmq::Headers expected;
  for (const auto& [key, value] : headers) {
    if (key.size() <= 255) {
      builder.AddString(key, value);
      expected[key] = value;
    }
  }
  amqp_table_t table = builder.Table();
  std::vector<char> buffer(1 << 20);
  amqp_bytes_t out{buffer.size(), buffer.data()};
  size_t offset = 0;
  if (amqp_encode_table(out, &table, &offset) != AMQP_STATUS_OK) {
    return;  // larger than the buffer
  }
  amqp_pool_t pool;
  init_amqp_pool(&pool, 4096);
  amqp_table_t decoded{};
  size_t read = 0;
  FUZZ_CHECK(amqp_decode_table(amqp_bytes_t{offset, buffer.data()}, &pool, &decoded, &read) ==
             AMQP_STATUS_OK);
  FUZZ_CHECK(read == offset);
  FUZZ_CHECK(rmq::TableToMap(decoded) == expected);
  empty_amqp_pool(&pool);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  if (size >= 1) {
    std::vector<char> bytes(in.begin() + 1, in.end());
    amqp_bytes_t encoded{bytes.size(), bytes.data()};
    amqp_pool_t pool;
    init_amqp_pool(&pool, 4096);
    if (data[0] % 2 == 0) {
      amqp_table_t table{};
      size_t offset = 0;
      if (amqp_decode_table(encoded, &pool, &table, &offset) == AMQP_STATUS_OK) {
        CheckHeaders(rmq::TableToMap(table));
      }
    } else {
      void* decoded = nullptr;
      if (amqp_decode_properties(AMQP_BASIC_CLASS, &pool, encoded, &decoded) == AMQP_STATUS_OK &&
          decoded != nullptr) {
        rmq::ReceivedProperties props =
            rmq::ReadProperties(*static_cast<amqp_basic_properties_t*>(decoded));
        CheckHeaders(props.headers);
        (void)rmq::PublishSeqFromMessageId(props.message_id, "asya-1-2-");
      }
    }
    empty_amqp_pool(&pool);
  }

  auto receipt = rmq::ParseReceipt(in);
  if (receipt) {
    auto again = rmq::ParseReceipt(rmq::FormatReceipt(receipt->incarnation, receipt->tag));
    FUZZ_CHECK(again.has_value() && again->incarnation == receipt->incarnation &&
               again->tag == receipt->tag);
  } else {
    FUZZ_CHECK(!receipt.error().message.empty());
  }
  if (size >= 16) {
    uint64_t a = 0;
    uint64_t b = 0;
    std::memcpy(&a, data, 8);
    std::memcpy(&b, data + 8, 8);
    auto back = rmq::ParseReceipt(rmq::FormatReceipt(a, b));
    FUZZ_CHECK(back.has_value() && back->incarnation == a && back->tag == b);
    const std::string prefix = rmq::MessageIdPrefix("fuzz", a);
    FUZZ_CHECK(rmq::PublishSeqFromMessageId(prefix + std::to_string(b), prefix) == b);
  }
  (void)rmq::PublishSeqFromMessageId(in, rmq::MessageIdPrefix("i", 7));

  auto url = asya::transport::ParseRabbitMqUrl(in);
  if (!url) {
    FUZZ_CHECK(!url.error().message.empty());
  }
  (void)rmq::ValidateQueueName(in);
  return 0;
}
