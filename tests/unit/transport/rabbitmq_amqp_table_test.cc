// AMQP field tables and message properties (src/transport/rabbitmq/amqp_table.h), without a
// broker: what we publish is what a consumer decodes.
#include <string>

#include <gtest/gtest.h>

#include "transport/rabbitmq/amqp_table.h"

namespace asya::transport::rabbitmq {
namespace {

TEST(RabbitMqAmqpTable, BuiltTablesDecodeToTheSameHeaders) {
  TableBuilder b;
  b.AddString("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
  b.AddString("empty", "");
  b.AddString("utf8", "h\xc3\xa9llo");
  b.AddInt("x-message-ttl", 1500);
  b.AddInt("negative", -3);
  amqp_table_t t = b.Table();
  ASSERT_EQ(t.num_entries, 5);
  EXPECT_EQ(t.entries[3].value.kind, AMQP_FIELD_KIND_I64);
  EXPECT_EQ(t.entries[0].value.kind, AMQP_FIELD_KIND_UTF8);
  EXPECT_EQ(TableToMap(t),
            (Headers{{"traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"},
                     {"empty", ""},
                     {"utf8", "h\xc3\xa9llo"},
                     {"x-message-ttl", "1500"},
                     {"negative", "-3"}}));
  TableBuilder none;
  amqp_table_t e = none.Table();
  EXPECT_EQ(e.num_entries, 0);
  EXPECT_TRUE(TableToMap(e).empty());
}

// What a broker may send (quorum x-delivery-count is a long; x-death is an array of tables).
TEST(RabbitMqAmqpTable, DecodesScalarsAndSkipsNestedValues) {
  amqp_table_entry_t e[8]{};
  auto key = [](const char* k) { return amqp_cstring_bytes(k); };
  e[0].key = key("bool");
  e[0].value.kind = AMQP_FIELD_KIND_BOOLEAN;
  e[0].value.value.boolean = 1;
  e[1].key = key("x-delivery-count");
  e[1].value.kind = AMQP_FIELD_KIND_I64;
  e[1].value.value.i64 = 2;
  e[2].key = key("i32");
  e[2].value.kind = AMQP_FIELD_KIND_I32;
  e[2].value.value.i32 = -7;
  e[3].key = key("u8");
  e[3].value.kind = AMQP_FIELD_KIND_U8;
  e[3].value.value.u8 = 200;
  e[4].key = key("ts");
  e[4].value.kind = AMQP_FIELD_KIND_TIMESTAMP;
  e[4].value.value.u64 = 1700000000;
  e[5].key = key("bytes");
  e[5].value.kind = AMQP_FIELD_KIND_BYTES;
  e[5].value.value.bytes = amqp_cstring_bytes("raw");
  e[6].key = key("x-death");
  e[6].value.kind = AMQP_FIELD_KIND_ARRAY;
  e[6].value.value.array = amqp_array_t{0, nullptr};
  e[7].key = key("void");
  e[7].value.kind = AMQP_FIELD_KIND_VOID;
  amqp_table_t t{8, e};
  EXPECT_EQ(TableToMap(t), (Headers{{"bool", "true"},
                                    {"x-delivery-count", "2"},
                                    {"i32", "-7"},
                                    {"u8", "200"},
                                    {"ts", "1700000000"},
                                    {"bytes", "raw"}}));
}

TEST(RabbitMqAmqpTable, PublishPropertiesArePersistentJsonWithIdAndHeaders) {
  Headers headers{{"x-asya-deliveries", "2"}, {"traceparent", "00-a-b-01"}};
  PublishProperties p("inst-1-7", headers, 1700000000);
  const amqp_basic_properties_t& props = *p.get();
  EXPECT_EQ(props.delivery_mode, AMQP_DELIVERY_PERSISTENT);
  EXPECT_NE(props._flags & AMQP_BASIC_DELIVERY_MODE_FLAG, 0u);
  EXPECT_NE(props._flags & AMQP_BASIC_TIMESTAMP_FLAG, 0u);
  EXPECT_EQ(props.timestamp, 1700000000u);
  EXPECT_NE(props._flags & AMQP_BASIC_CONTENT_TYPE_FLAG, 0u);
  EXPECT_EQ(BytesToString(props.content_type), "application/json");
  ReceivedProperties back = ReadProperties(props);
  EXPECT_EQ(back.message_id, "inst-1-7");
  EXPECT_EQ(back.headers, headers);
}

TEST(RabbitMqAmqpTable, NoHeadersMeansNoHeadersProperty) {
  PublishProperties p("id", {}, 0);
  EXPECT_EQ(p.get()->_flags & AMQP_BASIC_HEADERS_FLAG, 0u);
  ReceivedProperties back = ReadProperties(*p.get());
  EXPECT_EQ(back.message_id, "id");
  EXPECT_TRUE(back.headers.empty());
  amqp_basic_properties_t bare{};  // a message published by someone else, without properties
  ReceivedProperties none = ReadProperties(bare);
  EXPECT_TRUE(none.message_id.empty());
  EXPECT_TRUE(none.headers.empty());
}

TEST(RabbitMqAmqpTable, BytesViewAndCopy) {
  std::string s("a\0b", 3);
  amqp_bytes_t b = Bytes(s);
  EXPECT_EQ(b.len, 3u);
  EXPECT_EQ(b.bytes, s.data());
  EXPECT_EQ(BytesToString(b), s);
  EXPECT_EQ(BytesToString(amqp_empty_bytes), "");
}

}  // namespace
}  // namespace asya::transport::rabbitmq
