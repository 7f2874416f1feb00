#include "transport/rabbitmq/amqp_table.h"

namespace asya::transport::rabbitmq {

std::string BytesToString(amqp_bytes_t bytes) {
  if (bytes.bytes == nullptr || bytes.len == 0) {
    return {};
  }
  return std::string(static_cast<const char*>(bytes.bytes), bytes.len);
}

std::map<std::string, std::string> TableToMap(const amqp_table_t& table) {
  std::map<std::string, std::string> out;
  for (int i = 0; i < table.num_entries; ++i) {
    const amqp_table_entry_t& e = table.entries[i];
    std::string key = BytesToString(e.key);
    const amqp_field_value_t& v = e.value;
    switch (v.kind) {
      case AMQP_FIELD_KIND_UTF8:
      case AMQP_FIELD_KIND_BYTES:
        out[key] = BytesToString(v.value.bytes);
        break;
      case AMQP_FIELD_KIND_BOOLEAN:
        out[key] = v.value.boolean ? "true" : "false";
        break;
      case AMQP_FIELD_KIND_I8:
        out[key] = std::to_string(v.value.i8);
        break;
      case AMQP_FIELD_KIND_U8:
        out[key] = std::to_string(v.value.u8);
        break;
      case AMQP_FIELD_KIND_I16:
        out[key] = std::to_string(v.value.i16);
        break;
      case AMQP_FIELD_KIND_U16:
        out[key] = std::to_string(v.value.u16);
        break;
      case AMQP_FIELD_KIND_I32:
        out[key] = std::to_string(v.value.i32);
        break;
      case AMQP_FIELD_KIND_U32:
        out[key] = std::to_string(v.value.u32);
        break;
      case AMQP_FIELD_KIND_I64:
        out[key] = std::to_string(v.value.i64);
        break;
      case AMQP_FIELD_KIND_U64:
      case AMQP_FIELD_KIND_TIMESTAMP:
        out[key] = std::to_string(v.value.u64);
        break;
      case AMQP_FIELD_KIND_F32:
        out[key] = std::to_string(v.value.f32);
        break;
      case AMQP_FIELD_KIND_F64:
        out[key] = std::to_string(v.value.f64);
        break;
      default:  // tables (x-death), arrays, decimals, void: not representable as one string
        break;
    }
  }
  return out;
}

void TableBuilder::AddString(std::string key, std::string value) {
  entries_.push_back(Entry{std::move(key), std::move(value), 0, false});
}

void TableBuilder::AddInt(std::string key, int64_t value) {
  entries_.push_back(Entry{std::move(key), {}, value, true});
}

amqp_table_t TableBuilder::Table() {
  raw_.clear();
  raw_.reserve(entries_.size());
  for (Entry& e : entries_) {
    amqp_table_entry_t t{};
    t.key = amqp_bytes_t{e.key.size(), e.key.data()};
    if (e.is_int) {
      t.value.kind = AMQP_FIELD_KIND_I64;
      t.value.value.i64 = e.number;
    } else {
      t.value.kind = AMQP_FIELD_KIND_UTF8;
      t.value.value.bytes = amqp_bytes_t{e.text.size(), e.text.data()};
    }
    raw_.push_back(t);
  }
  amqp_table_t table{};
  table.num_entries = static_cast<int>(raw_.size());
  table.entries = raw_.empty() ? nullptr : raw_.data();
  return table;
}

PublishProperties::PublishProperties(std::string message_id, const Headers& headers,
                                     uint64_t unix_seconds)
    : message_id_(std::move(message_id)) {
  props_._flags = AMQP_BASIC_CONTENT_TYPE_FLAG | AMQP_BASIC_DELIVERY_MODE_FLAG |
                  AMQP_BASIC_TIMESTAMP_FLAG | AMQP_BASIC_MESSAGE_ID_FLAG;
  props_.content_type = amqp_cstring_bytes("application/json");
  props_.delivery_mode = AMQP_DELIVERY_PERSISTENT;
  props_.timestamp = unix_seconds;
  props_.message_id = Bytes(message_id_);
  if (!headers.empty()) {
    for (const auto& [k, v] : headers) {
      table_.AddString(k, v);
    }
    props_._flags |= AMQP_BASIC_HEADERS_FLAG;
    props_.headers = table_.Table();
  }
}

ReceivedProperties ReadProperties(const amqp_basic_properties_t& props) {
  ReceivedProperties out;
  if ((props._flags & AMQP_BASIC_MESSAGE_ID_FLAG) != 0) {
    out.message_id = BytesToString(props.message_id);
  }
  if ((props._flags & AMQP_BASIC_HEADERS_FLAG) != 0) {
    out.headers = TableToMap(props.headers);
  }
  return out;
}

}  // namespace asya::transport::rabbitmq
