// AMQP field tables and message properties <-> our std::map headers. Pure data conversion: no
// connection, no I/O, so it is unit-tested without a broker (tests/unit/transport).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include <amqp.h>

namespace asya::transport::rabbitmq {

using Headers = std::map<std::string, std::string>;

// A view of s as AMQP bytes (no copy: valid while s lives).
inline amqp_bytes_t Bytes(std::string_view s) {
  return amqp_bytes_t{s.size(), const_cast<char*>(s.data())};
}
std::string BytesToString(amqp_bytes_t bytes);

// Decoded AMQP field table (headers): strings as they are, booleans as "true"/"false", integers,
// timestamps and floats as decimal text; tables, arrays, decimals and void are skipped.
Headers TableToMap(const amqp_table_t& table);

// Owns the storage an amqp_table_t points into (valid while this object lives and no entry is
// added after Table()).
class TableBuilder {
 public:
  void AddString(std::string key, std::string value);
  void AddInt(std::string key, int64_t value);
  amqp_table_t Table();

 private:
  struct Entry {
    std::string key;
    std::string text;
    int64_t number = 0;
    bool is_int = false;
  };
  std::vector<Entry> entries_;
  std::vector<amqp_table_entry_t> raw_;
};

// The properties of every message this transport publishes: persistent, content type
// application/json, the given message id and timestamp (Unix seconds), and the headers as UTF-8
// strings (the headers property is omitted when there are none). Owns what the properties point
// into; get() stays valid while this object lives.
class PublishProperties {
 public:
  PublishProperties(std::string message_id, const Headers& headers, uint64_t unix_seconds);
  PublishProperties(const PublishProperties&) = delete;
  PublishProperties& operator=(const PublishProperties&) = delete;
  const amqp_basic_properties_t* get() const { return &props_; }

 private:
  std::string message_id_;
  TableBuilder table_;
  amqp_basic_properties_t props_{};
};

// What a received (delivered or returned) message's properties carry for us.
struct ReceivedProperties {
  std::string message_id;  // empty when absent
  Headers headers;
};
ReceivedProperties ReadProperties(const amqp_basic_properties_t& props);

}  // namespace asya::transport::rabbitmq
