// Table test of the routing decision: one row per outcome of reference-dataplane §2.3, §4.3-§4.5
// with the changes of DESIGN §4 (headers, hops, deadline, retries, dead-lettering, end actors).
#include "asya/router/router.h"

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace asya::router {
namespace {

using json = nlohmann::json;
using std::chrono::system_clock;

const system_clock::time_point kNow = *ParseRfc3339("2025-06-01T12:00:00Z");

Policy BasePolicy() {
  Policy p;
  p.actor = "a";
  return p;
}

// A regular input envelope at actor "a" of route [a, b].
const char* kBody =
    R"({"id":"m1","parent_id":"p0","route":{"actors":["a","b"],"current":0},)"
    R"("headers":{"traceparent":"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"},)"
    R"("payload":{"x":1},"deadline":"2025-06-01T13:00:00Z"})";

struct Expected {
  std::string queue;
  MessageType type;
  std::string metric_destination;
  std::function<void(const json&)> check;  // checks the published body (may be null)
};

struct Row {
  std::string name;
  std::function<void(Policy&)> policy = nullptr;
  std::string body = kBody;
  int64_t delivery_count = 1;
  // Runtime outcome: nullopt = first call (before the runtime).
  std::optional<RuntimeOutcome::Kind> outcome;
  std::string response = "[]";  // runtime response frame for kResponse
  std::string call_error;       // error text for kCallError
  Action action = Action::kAck;
  std::vector<Expected> publishes;
  std::string failed_reason;
  std::string processed_status;
  bool runtime_error = false;
  std::function<void(const Decision&)> extra = nullptr;
};

RuntimeOutcome MakeOutcome(const Row& row) {
  RuntimeOutcome o;
  o.kind = *row.outcome;
  if (o.kind == RuntimeOutcome::Kind::kResponse) {
    auto items = envelope::ParseRuntimeResponse(row.response);
    EXPECT_TRUE(items.has_value()) << row.response;
    if (items) {
      o.items = std::move(*items);
    }
  }
  o.error = row.call_error;
  return o;
}

Decision RunRow(const Row& row, Policy policy) {
  if (row.policy) {
    row.policy(policy);
  }
  auto parsed = envelope::Parse(row.body, {.max_bytes = size_t(1) << 40});
  Input in;
  in.body = row.body;
  in.envelope = parsed ? &*parsed : nullptr;
  std::string parse_error = parsed ? "" : parsed.error().message;
  in.parse_error = parse_error;
  in.delivery_count = row.delivery_count;
  in.now = kNow;
  in.jitter = 0.5;
  RuntimeOutcome outcome;
  if (row.outcome) {
    outcome = MakeOutcome(row);
    in.outcome = &outcome;
  }
  return Decide(policy, in);
}

const std::string kTraceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

auto ErrorEndWith(std::string error) {
  return [error](const json& j) {
    EXPECT_EQ(j["payload"]["error"], error);
    EXPECT_EQ(j["id"], "m1");
    EXPECT_EQ(j["parent_id"], "p0");
    EXPECT_EQ(j["route"]["actors"], json::array({"a", "b"}));
    EXPECT_EQ(j["route"]["current"], 0);
    EXPECT_EQ(j["headers"]["traceparent"], kTraceparent);
    EXPECT_EQ(j["payload"]["original_payload"], json({{"x", 1}}));
    EXPECT_EQ(j["deadline"], "2025-06-01T13:00:00Z");
  };
}

std::vector<Row> Rows() {
  std::vector<Row> rows;
  using K = RuntimeOutcome::Kind;

  // ---- before the runtime (reference-dataplane §2.3) ----
  rows.push_back({.name = "valid message -> call runtime", .action = Action::kCallRuntime});
  rows.push_back({
      .name = "unparsable body -> error-end, id empty, literal error-end route",
      .body = "{not json",
      .publishes = {{"asya-error-end", MessageType::kErrorEnd, "error-end",
                     [](const json& j) {
                       EXPECT_EQ(j["id"], "");
                       EXPECT_EQ(j["route"]["actors"], json::array({"error-end"}));
                       EXPECT_EQ(j["route"]["current"], 0);
                       std::string e = j["payload"]["error"];
                       EXPECT_EQ(e.rfind("Failed to parse message: ", 0), 0u) << e;
                       EXPECT_FALSE(j["payload"].contains("original_payload"));
                     }}},
      .failed_reason = "parse_error",
  });
  rows.push_back({
      .name = "missing id -> error-end",
      .body = R"({"route":{"actors":["a"],"current":0},"payload":1})",
      .publishes = {{"asya-error-end", MessageType::kErrorEnd, "error-end",
                     [](const json& j) {
                       EXPECT_EQ(j["payload"]["error"], "Envelope missing required 'id' field");
                       EXPECT_EQ(j["payload"]["original_payload"], 1);
                     }}},
      .failed_reason = "validation_error",
  });
  rows.push_back({
      .name = "empty id -> error-end",
      .body = R"({"id":"","route":{"actors":["a"],"current":0},"payload":1})",
      .publishes = {{"asya-error-end", MessageType::kErrorEnd, "error-end", nullptr}},
      .failed_reason = "validation_error",
  });
  rows.push_back({
      .name = "route points at another actor -> route mismatch, runtime not called",
      .body = R"({"id":"m1","route":{"actors":["a","b"],"current":1},"payload":1})",
      .publishes = {{"asya-error-end", MessageType::kErrorEnd, "error-end",
                     [](const json& j) {
                       EXPECT_EQ(j["payload"]["error"],
                                 "Route mismatch: message routed to wrong actor (expected: a, "
                                 "actual: b)");
                       EXPECT_EQ(j["route"]["current"], 1);
                     }}},
      .failed_reason = "route_mismatch",
  });
  rows.push_back({
      .name = "current past the end -> route mismatch with empty actual",
      .body = R"({"id":"m1","route":{"actors":["a"],"current":1},"payload":1})",
      .publishes = {{"asya-error-end", MessageType::kErrorEnd, "error-end",
                     [](const json& j) {
                       EXPECT_EQ(j["payload"]["error"],
                                 "Route mismatch: message routed to wrong actor (expected: a, "
                                 "actual: )");
                     }}},
      .failed_reason = "route_mismatch",
  });
  rows.push_back({
      .name = "no route -> route mismatch",
      .body = R"({"id":"m1","payload":1})",
      .publishes = {{"asya-error-end", MessageType::kErrorEnd, "error-end", nullptr}},
      .failed_reason = "route_mismatch",
  });
  rows.push_back({
      .name = "hops at the limit -> hop limit exceeded",
      .policy = [](Policy& p) { p.max_hops = 3; },
      .body = R"({"id":"m1","route":{"actors":["a"],"current":0},"headers":{"x-asya-hops":3},)"
              R"("payload":1})",
      .publishes = {{"asya-error-end", MessageType::kErrorEnd, "error-end",
                     [](const json& j) {
                       EXPECT_EQ(j["payload"]["error"], "hop limit exceeded");
                       EXPECT_EQ(j["headers"]["x-asya-hops"], 3);
                     }}},
      .failed_reason = "hop_limit_exceeded",
  });
  rows.push_back({
      .name = "hops below the limit -> call runtime",
      .policy = [](Policy& p) { p.max_hops = 3; },
      .body = R"({"id":"m1","route":{"actors":["a"],"current":0},"headers":{"x-asya-hops":2},)"
              R"("payload":1})",
      .action = Action::kCallRuntime,
  });
  rows.push_back({
      .name = "deadline passed -> deadline exceeded",
      .body = R"({"id":"m1","route":{"actors":["a"],"current":0},"payload":1,)"
              R"("deadline":"2025-06-01T11:59:59.5Z"})",
      .publishes = {{"asya-error-end", MessageType::kErrorEnd, "error-end",
                     [](const json& j) {
                       EXPECT_EQ(j["payload"]["error"], "deadline exceeded");
                       EXPECT_EQ(j["deadline"], "2025-06-01T11:59:59.5Z");
                     }}},
      .failed_reason = "deadline_exceeded",
  });
  rows.push_back({
      .name = "deadline with offset still ahead -> call runtime",
      .body = R"({"id":"m1","route":{"actors":["a"],"current":0},"payload":1,)"
              R"("deadline":"2025-06-01T13:30:00+01:00"})",
      .action = Action::kCallRuntime,
  });
  rows.push_back({
      .name = "deadline far in the future -> call runtime",
      .body = R"({"id":"m1","route":{"actors":["a"],"current":0},"payload":1,)"
              R"("deadline":"2999-01-01T00:00:00Z"})",
      .action = Action::kCallRuntime,
  });
  rows.push_back({
      .name = "malformed deadline -> error-end naming it",
      .body = R"({"id":"m1","route":{"actors":["a"],"current":0},"payload":1,)"
              R"("deadline":"tomorrow"})",
      .publishes = {{"asya-error-end", MessageType::kErrorEnd, "error-end",
                     [](const json& j) {
                       std::string e = j["payload"]["error"];
                       EXPECT_EQ(e.rfind("Invalid deadline 'tomorrow': ", 0), 0u) << e;
                     }}},
      .failed_reason = "validation_error",
  });
  rows.push_back({
      .name = "oversize message -> error-end without the payload, id kept",
      .policy = [](Policy& p) { p.max_message_bytes = 50; },
      .publishes = {{"asya-error-end", MessageType::kErrorEnd, "error-end",
                     [](const json& j) {
                       std::string e = j["payload"]["error"];
                       EXPECT_NE(e.find("exceeds ASYA_MAX_MESSAGE_BYTES=50"), std::string::npos);
                       EXPECT_EQ(j["id"], "m1");
                       EXPECT_FALSE(j["payload"].contains("original_payload"));
                     }}},
      .failed_reason = "validation_error",
  });
  rows.push_back({
      .name = "delivered too often -> DLQ with reason in envelope and transport headers",
      .delivery_count = 6,
      .publishes = {{"asya-a-dlq", MessageType::kDeadLetter, "asya-a-dlq",
                     [](const json& j) {
                       EXPECT_EQ(j["id"], "m1");
                       EXPECT_EQ(j["payload"], json({{"x", 1}}));
                       EXPECT_EQ(j["headers"]["x-asya-deliveries"], 6);
                       std::string r = j["headers"]["x-asya-dlq-reason"];
                       EXPECT_NE(r.find("max deliveries exceeded"), std::string::npos);
                       EXPECT_EQ(j["headers"]["traceparent"], kTraceparent);
                     }}},
      .failed_reason = "dead_lettered",
      .extra =
          [](const Decision& d) {
            EXPECT_EQ(d.publishes[0].transport_headers.at("x-asya-deliveries"), "6");
            EXPECT_NE(d.publishes[0].transport_headers.at("x-asya-dlq-reason").find("6 times"),
                      std::string::npos);
          },
  });
  rows.push_back({
      .name = "delivered too often, unparsable -> DLQ keeps the raw body",
      .body = "garbage",
      .delivery_count = 9,
      .publishes = {{"asya-a-dlq", MessageType::kDeadLetter, "asya-a-dlq", nullptr}},
      .failed_reason = "dead_lettered",
      .extra =
          [](const Decision& d) {
            EXPECT_EQ(d.publishes[0].body, "garbage");
            EXPECT_EQ(d.publishes[0].transport_headers.at("x-asya-deliveries"), "9");
          },
  });
  rows.push_back({
      .name = "at the delivery limit -> still processed",
      .delivery_count = 5,
      .action = Action::kCallRuntime,
  });
  rows.push_back({
      .name = "max deliveries 0 disables the limit",
      .policy = [](Policy& p) { p.max_deliveries = 0; },
      .delivery_count = 1000,
      .action = Action::kCallRuntime,
  });

  // ---- end actors (§4.5 with DESIGN §4.2) ----
  auto end_actor = [](Policy& p) {
    p.actor = "error-end";
    p.is_end_actor = true;
  };
  rows.push_back({
      .name = "end actor: unparsable -> its own DLQ, never back to itself",
      .policy = end_actor,
      .body = "{bad",
      .publishes = {{"asya-error-end-dlq", MessageType::kDeadLetter, "asya-error-end-dlq",
                     nullptr}},
      .failed_reason = "parse_error",
      .extra =
          [](const Decision& d) {
            EXPECT_EQ(d.publishes[0].body, "{bad");
            EXPECT_EQ(d.publishes[0]
                          .transport_headers.at("x-asya-dlq-reason")
                          .rfind("Failed to parse message: ", 0),
                      0u);
          },
  });
  rows.push_back({
      .name = "error-end: missing id -> call runtime (the crew stores it under a generated id)",
      .policy = end_actor,
      .body = R"({"route":{"actors":["a"],"current":0},"payload":1})",
      .action = Action::kCallRuntime,
  });
  rows.push_back({
      .name = "error-end: empty id (error envelope of a non-JSON message) -> call runtime",
      .policy = end_actor,
      .body = R"({"id":"","route":{"actors":["error-end"],"current":0},)"
              R"("payload":{"error":"Failed to parse message: x"}})",
      .action = Action::kCallRuntime,
  });
  rows.push_back({
      .name = "happy-end: missing id -> DLQ",
      .policy =
          [](Policy& p) {
            p.actor = "happy-end";
            p.is_end_actor = true;
          },
      .body = R"({"route":{"actors":["a"],"current":0},"payload":1})",
      .publishes = {{"asya-happy-end-dlq", MessageType::kDeadLetter, "asya-happy-end-dlq",
                     [](const json& j) {
                       EXPECT_EQ(j["headers"]["x-asya-dlq-reason"],
                                 "Envelope missing required 'id' field");
                     }}},
      .failed_reason = "validation_error",
  });
  rows.push_back({
      .name = "end actor: any route state, past deadline -> call runtime",
      .policy = end_actor,
      .body = R"({"id":"m1","route":{"actors":["x"],"current":5},"payload":1,)"
              R"("deadline":"2000-01-01T00:00:00Z","headers":{"x-asya-hops":5000}})",
      .action = Action::kCallRuntime,
  });
  rows.push_back({
      .name = "end actor: success -> ack, nothing published, even with a route",
      .policy = end_actor,
      .outcome = K::kResponse,
      .response = R"([{"payload":{},"route":{"actors":["z"],"current":0}}])",
      .processed_status = "end_consumed",
  });
  rows.push_back({
      .name = "end actor: runtime dropped the connection -> nack with backoff",
      .policy = end_actor,
      .delivery_count = 2,
      .outcome = K::kCallError,
      .call_error = "failed to read response from runtime: failed to read length prefix: EOF",
      .action = Action::kNack,
      .failed_reason = "runtime_error",
      .runtime_error = true,
      .extra = [](const Decision& d) { EXPECT_EQ(d.nack_delay, Millis(2000)); },
  });
  rows.push_back({
      .name = "end actor: timeout -> nack",
      .policy = end_actor,
      .outcome = K::kTimeout,
      .action = Action::kNack,
      .failed_reason = "runtime_error",
      .runtime_error = true,
  });
  rows.push_back({
      .name = "end actor: error response (persistence failed) -> nack",
      .policy = end_actor,
      .outcome = K::kResponse,
      .response =
          R"([{"error":"processing_error","details":{"message":"disk full","type":"OSError"}}])",
      .action = Action::kNack,
      .failed_reason = "runtime_error",
  });
  rows.push_back({
      .name = "end actor: delivered too often -> DLQ",
      .policy = end_actor,
      .delivery_count = 6,
      .publishes = {{"asya-error-end-dlq", MessageType::kDeadLetter, "asya-error-end-dlq",
                     nullptr}},
      .failed_reason = "dead_lettered",
  });

  // ---- after the runtime: successes (R3, R5, fan-out §4.4) ----
  rows.push_back({
      .name = "single result -> next actor; id, parent_id, headers, deadline kept; hop counted",
      .outcome = K::kResponse,
      .response = R"([{"payload":{"y":2},"route":{"actors":["a","b"],"current":1,)"
                  R"("metadata":{"k":"v"}},"headers":{"traceparent":")" +
                  kTraceparent + R"(","x-asya-attempt":2}}])",
      .publishes = {{"asya-b", MessageType::kRouting, "asya-b",
                     [](const json& j) {
                       EXPECT_EQ(j["id"], "m1");
                       EXPECT_EQ(j["parent_id"], "p0");
                       EXPECT_EQ(j["route"]["actors"], json::array({"a", "b"}));
                       EXPECT_EQ(j["route"]["current"], 1);
                       EXPECT_EQ(j["route"]["metadata"], json({{"k", "v"}}));
                       EXPECT_EQ(j["payload"], json({{"y", 2}}));
                       EXPECT_EQ(j["headers"]["traceparent"], kTraceparent);
                       EXPECT_EQ(j["headers"]["x-asya-hops"], 1);
                       EXPECT_FALSE(j["headers"].contains("x-asya-attempt"));
                       EXPECT_EQ(j["deadline"], "2025-06-01T13:00:00Z");
                     }}},
      .processed_status = "success",
  });
  rows.push_back({
      .name = "result without headers -> the input's headers travel on",
      .outcome = K::kResponse,
      .response = R"([{"payload":null,"route":{"actors":["a","b"],"current":1}}])",
      .publishes = {{"asya-b", MessageType::kRouting, "asya-b",
                     [](const json& j) {
                       EXPECT_EQ(j["headers"]["traceparent"], kTraceparent);
                       EXPECT_TRUE(j["payload"].is_null());
                       EXPECT_TRUE(j.contains("payload"));
                     }}},
      .processed_status = "success",
  });
  rows.push_back({
      .name = "hop counter increments an existing value",
      .body = R"({"id":"m1","route":{"actors":["a","b"],"current":0},"headers":{"x-asya-hops":7},)"
              R"("payload":1})",
      .outcome = K::kResponse,
      .response = R"([{"payload":1,"route":{"actors":["a","b"],"current":1},)"
                  R"("headers":{"x-asya-hops":7}}])",
      .publishes = {{"asya-b", MessageType::kRouting, "asya-b",
                     [](const json& j) { EXPECT_EQ(j["headers"]["x-asya-hops"], 8); }}},
      .processed_status = "success",
  });
  rows.push_back({
      .name = "route exhausted -> happy-end with the route unchanged",
      .outcome = K::kResponse,
      .response = R"([{"payload":3,"route":{"actors":["a","b"],"current":2}}])",
      .publishes = {{"asya-happy-end", MessageType::kHappyEnd, "asya-happy-end",
                     [](const json& j) {
                       EXPECT_EQ(j["route"]["current"], 2);
                       EXPECT_EQ(j["payload"], 3);
                     }}},
      .processed_status = "success",
  });
  rows.push_back({
      .name = "custom happy-end name",
      .policy = [](Policy& p) { p.happy_end = "done"; },
      .outcome = K::kResponse,
      .response = R"([{"payload":3,"route":{"actors":["a"],"current":1}}])",
      .publishes = {{"asya-done", MessageType::kHappyEnd, "asya-done", nullptr}},
      .processed_status = "success",
  });
  rows.push_back({
      .name = "runtime extended the route -> follows the new route",
      .outcome = K::kResponse,
      .response = R"([{"payload":1,"route":{"actors":["a","b","c","d","e"],"current":3}}])",
      .publishes = {{"asya-d", MessageType::kRouting, "asya-d",
                     [](const json& j) {
                       EXPECT_EQ(j["route"]["actors"].size(), 5u);
                       EXPECT_EQ(j["route"]["current"], 3);
                     }}},
      .processed_status = "success",
  });
  rows.push_back({
      .name = "fan-out of 3 -> ids X, X-1, X-2 with parent_id, order and destinations kept",
      .outcome = K::kResponse,
      .response = R"([{"payload":0,"route":{"actors":["a","b"],"current":1}},)"
                  R"({"payload":1,"route":{"actors":["a","b"],"current":1}},)"
                  R"({"payload":2,"route":{"actors":["a","c"],"current":1}}])",
      .publishes = {{"asya-b", MessageType::kRouting, "asya-b",
                     [](const json& j) {
                       EXPECT_EQ(j["id"], "m1");
                       EXPECT_EQ(j["parent_id"], "p0");
                       EXPECT_EQ(j["payload"], 0);
                       // The fan-out is recorded once, on the element that keeps the id.
                       EXPECT_EQ(j["headers"]["x-asya-fanout"], json::array({3}));
                     }},
                    {"asya-b", MessageType::kRouting, "asya-b",
                     [](const json& j) {
                       EXPECT_EQ(j["id"], "m1-1");
                       EXPECT_EQ(j["parent_id"], "m1");
                       EXPECT_EQ(j["payload"], 1);
                       EXPECT_EQ(j["headers"]["traceparent"], kTraceparent);
                     }},
                    {"asya-c", MessageType::kRouting, "asya-c",
                     [](const json& j) {
                       EXPECT_EQ(j["id"], "m1-2");
                       EXPECT_EQ(j["parent_id"], "m1");
                       EXPECT_EQ(j["payload"], 2);
                       EXPECT_FALSE(j["headers"].contains("x-asya-fanout"));
                     }}},
      .processed_status = "success",
  });
  rows.push_back({
      .name = "second fan-out of the same id appends to its record; children start afresh",
      .body = R"({"id":"m1","route":{"actors":["a","b"],"current":0},)"
              R"("headers":{"x-asya-fanout":[3]},"payload":1})",
      .outcome = K::kResponse,
      .response = R"([{"payload":0,"route":{"actors":["a","b"],"current":1}},)"
                  R"({"payload":1,"route":{"actors":["a","b"],"current":1}}])",
      .publishes = {{"asya-b", MessageType::kRouting, "asya-b",
                     [](const json& j) {
                       EXPECT_EQ(j["headers"]["x-asya-fanout"], json::array({3, 2}));
                     }},
                    {"asya-b", MessageType::kRouting, "asya-b",
                     [](const json& j) {
                       EXPECT_EQ(j["id"], "m1-1");
                       EXPECT_FALSE(j["headers"].contains("x-asya-fanout"));
                     }}},
      .processed_status = "success",
  });
  rows.push_back({
      .name = "single result keeps the fan-out record as it is",
      .body = R"({"id":"m1","route":{"actors":["a","b"],"current":0},)"
              R"("headers":{"x-asya-fanout":[3]},"payload":1})",
      .outcome = K::kResponse,
      .response = R"([{"payload":0,"route":{"actors":["a","b"],"current":1}}])",
      .publishes = {{"asya-b", MessageType::kRouting, "asya-b",
                     [](const json& j) {
                       EXPECT_EQ(j["headers"]["x-asya-fanout"], json::array({3}));
                     }}},
      .processed_status = "success",
  });
  rows.push_back({
      .name = "empty response -> original envelope to happy-end (route not advanced)",
      .outcome = K::kResponse,
      .response = "[]",
      .publishes = {{"asya-happy-end", MessageType::kHappyEnd, "happy-end",
                     [](const json& j) {
                       EXPECT_EQ(j["id"], "m1");
                       EXPECT_EQ(j["parent_id"], "p0");
                       EXPECT_EQ(j["route"]["current"], 0);
                       EXPECT_EQ(j["payload"], json({{"x", 1}}));
                       EXPECT_EQ(j["headers"]["traceparent"], kTraceparent);
                       EXPECT_EQ(j["headers"]["x-asya-hops"], 1);
                     }}},
      .processed_status = "empty_response",
  });
  rows.push_back({
      .name = "null response = empty",
      .outcome = K::kResponse,
      .response = "null",
      .publishes = {{"asya-happy-end", MessageType::kHappyEnd, "happy-end", nullptr}},
      .processed_status = "empty_response",
  });

  // ---- after the runtime: failures (R1, R2, R4) without retries ----
  rows.push_back({
      .name = "processing error -> error-end with details and original payload",
      .outcome = K::kResponse,
      .response = R"([{"error":"processing_error","details":{"message":"boom","type":)"
                  R"("RuntimeError","traceback":"Traceback ..."}}])",
      .publishes = {{"asya-error-end", MessageType::kErrorEnd, "error-end",
                     [](const json& j) {
                       ErrorEndWith("processing_error")(j);
                       EXPECT_EQ(j["payload"]["details"]["message"], "boom");
                       EXPECT_EQ(j["payload"]["details"]["type"], "RuntimeError");
                       EXPECT_EQ(j["payload"]["details"]["traceback"], "Traceback ...");
                       EXPECT_FALSE(j["payload"].contains("attempts"));
                     }}},
      .failed_reason = "runtime_error",
  });
  rows.push_back({
      .name = "error after successes in one response -> the whole response is an error",
      .outcome = K::kResponse,
      .response = R"([{"payload":1,"route":{"actors":["a","b"],"current":1}},)"
                  R"({"error":"processing_error","details":{"message":"m","type":"T"}}])",
      .publishes = {{"asya-error-end", MessageType::kErrorEnd, "error-end", nullptr}},
      .failed_reason = "runtime_error",
  });
  rows.push_back({
      .name = "runtime call error -> error-end with the transport text",
      .outcome = K::kCallError,
      .call_error = "failed to read response from runtime: failed to read length prefix: EOF",
      .publishes = {{"asya-error-end", MessageType::kErrorEnd, "error-end",
                     ErrorEndWith("failed to read response from runtime: failed to read length "
                                  "prefix: EOF")}},
      .failed_reason = "runtime_error",
      .runtime_error = true,
  });
  rows.push_back({
      .name = "timeout -> error-end with the Go duration",
      .policy = [](Policy& p) { p.runtime_timeout = Millis(1500); },
      .outcome = K::kTimeout,
      .publishes = {{"asya-error-end", MessageType::kErrorEnd, "error-end",
                     ErrorEndWith("Runtime timeout exceeded after 1.5s")}},
      .failed_reason = "runtime_error",
      .runtime_error = true,
  });
  rows.push_back({
      .name = "custom error-end name",
      .policy = [](Policy& p) { p.error_end = "oops"; },
      .outcome = K::kTimeout,
      .publishes = {{"asya-oops", MessageType::kErrorEnd, "oops",
                     ErrorEndWith("Runtime timeout exceeded after 5m0s")}},
      .failed_reason = "runtime_error",
      .runtime_error = true,
  });

  // ---- retries (DESIGN precise 1) ----
  auto three_attempts = [](Policy& p) {
    p.retry_max_attempts = 3;
    p.retry_backoff = Millis(1000);
    p.non_retryable = {"ValueError"};
  };
  const std::string boom =
      R"([{"error":"processing_error","details":{"message":"boom","type":"RuntimeError"}}])";
  rows.push_back({
      .name = "first attempt fails -> republished to own queue with attempt 2 and a delay",
      .policy = three_attempts,
      .outcome = K::kResponse,
      .response = boom,
      .publishes = {{"asya-a", MessageType::kRetry, "asya-a",
                     [](const json& j) {
                       EXPECT_EQ(j["id"], "m1");
                       EXPECT_EQ(j["route"]["current"], 0);
                       EXPECT_EQ(j["payload"], json({{"x", 1}}));
                       EXPECT_EQ(j["headers"]["x-asya-attempt"], 2);
                       EXPECT_EQ(j["headers"]["traceparent"], kTraceparent);
                       json h = j["headers"]["x-asya-attempt-history"];
                       ASSERT_EQ(h.size(), 1u);
                       EXPECT_EQ(h[0]["attempt"], 1);
                       EXPECT_EQ(h[0]["error"], "processing_error");
                       EXPECT_EQ(h[0]["type"], "RuntimeError");
                       EXPECT_EQ(h[0]["message"], "boom");
                     }}},
      .extra = [](const Decision& d) { EXPECT_EQ(d.publishes[0].delay, Millis(1000)); },
  });
  rows.push_back({
      .name = "second attempt times out -> attempt 3, backoff doubled",
      .policy = three_attempts,
      .body =
          R"({"id":"m1","route":{"actors":["a"],"current":0},"headers":{"x-asya-attempt":2,)"
          R"("x-asya-attempt-history":[{"attempt":1,"error":"processing_error"}]},"payload":1})",
      .outcome = K::kTimeout,
      .publishes = {{"asya-a", MessageType::kRetry, "asya-a",
                     [](const json& j) {
                       EXPECT_EQ(j["headers"]["x-asya-attempt"], 3);
                       json h = j["headers"]["x-asya-attempt-history"];
                       ASSERT_EQ(h.size(), 2u);
                       EXPECT_EQ(h[1]["attempt"], 2);
                       EXPECT_EQ(h[1]["error"], "Runtime timeout exceeded after 5m0s");
                     }}},
      .runtime_error = true,
      .extra = [](const Decision& d) { EXPECT_EQ(d.publishes[0].delay, Millis(2000)); },
  });
  rows.push_back({
      .name = "last attempt fails -> error-end with every attempt",
      .policy = three_attempts,
      .body =
          R"({"id":"m1","route":{"actors":["a"],"current":0},"headers":{"x-asya-attempt":3,)"
          R"("x-asya-attempt-history":[{"attempt":1,"error":"e1"},{"attempt":2,"error":"e2"}]},)"
          R"("payload":1})",
      .outcome = K::kCallError,
      .call_error = "failed to read response from runtime: EOF",
      .publishes = {{"asya-error-end", MessageType::kErrorEnd, "error-end",
                     [](const json& j) {
                       EXPECT_EQ(j["payload"]["error"],
                                 "failed to read response from runtime: EOF");
                       json a = j["payload"]["attempts"];
                       ASSERT_EQ(a.size(), 3u);
                       EXPECT_EQ(a[0]["error"], "e1");
                       EXPECT_EQ(a[1]["error"], "e2");
                       EXPECT_EQ(a[2]["attempt"], 3);
                       EXPECT_FALSE(j["headers"].contains("x-asya-attempt-history"));
                       EXPECT_EQ(j["payload"]["original_payload"], 1);
                     }}},
      .failed_reason = "runtime_error",
      .runtime_error = true,
  });
  rows.push_back({
      .name = "non-retryable error type -> error-end at once",
      .policy = three_attempts,
      .outcome = K::kResponse,
      .response =
          R"([{"error":"processing_error","details":{"message":"bad","type":"ValueError"}}])",
      .publishes = {{"asya-error-end", MessageType::kErrorEnd, "error-end",
                     [](const json& j) {
                       EXPECT_EQ(j["payload"]["details"]["type"], "ValueError");
                       EXPECT_EQ(j["payload"]["attempts"].size(), 1u);
                     }}},
      .failed_reason = "runtime_error",
  });
  rows.push_back({
      .name = "msg_parsing_error is never retried",
      .policy = three_attempts,
      .outcome = K::kResponse,
      .response =
          R"([{"error":"msg_parsing_error","details":{"message":"bad","type":"ValueError"}}])",
      .publishes = {{"asya-error-end", MessageType::kErrorEnd, "error-end", nullptr}},
      .failed_reason = "runtime_error",
  });
  rows.push_back({
      .name = "success after retries -> attempt headers do not leak to the next actor",
      .policy = three_attempts,
      .body =
          R"({"id":"m1","route":{"actors":["a","b"],"current":0},"headers":{"x-asya-attempt":3,)"
          R"("x-asya-attempt-history":[{"attempt":1,"error":"e1"}]},"payload":1})",
      .outcome = K::kResponse,
      .response = R"([{"payload":1,"route":{"actors":["a","b"],"current":1}}])",
      .publishes = {{"asya-b", MessageType::kRouting, "asya-b",
                     [](const json& j) {
                       EXPECT_FALSE(j["headers"].contains("x-asya-attempt"));
                       EXPECT_FALSE(j["headers"].contains("x-asya-attempt-history"));
                       EXPECT_EQ(j["headers"]["x-asya-hops"], 1);
                     }}},
      .processed_status = "success",
  });
  rows.push_back({
      .name = "result larger than ASYA_MAX_MESSAGE_BYTES -> error-end, nothing routed",
      .policy = [](Policy& p) { p.max_message_bytes = 300; },
      .outcome = K::kResponse,
      .response = R"([{"payload":"small","route":{"actors":["a","b"],"current":1}},)"
                  R"({"payload":")" +
                  std::string(400, 'x') + R"(","route":{"actors":["a","b"],"current":1}}])",
      .publishes = {{"asya-error-end", MessageType::kErrorEnd, "error-end",
                     [](const json& j) {
                       std::string e = j["payload"]["error"];
                       EXPECT_EQ(e.rfind("Result too large: result 1 of 2 is ", 0), 0u) << e;
                       EXPECT_NE(e.find("exceeds ASYA_MAX_MESSAGE_BYTES=300"), std::string::npos);
                       EXPECT_EQ(j["payload"]["original_payload"], json({{"x", 1}}));
                     }}},
      .failed_reason = "routing_error",
  });
  return rows;
}

TEST(RouterTable, EveryRow) {
  for (const Row& row : Rows()) {
    SCOPED_TRACE(row.name);
    Decision d = RunRow(row, BasePolicy());
    EXPECT_EQ(d.action, row.action);
    EXPECT_EQ(FailReasonLabel(d.failed_reason), row.failed_reason);
    EXPECT_EQ(ProcessedLabel(d.processed_status), row.processed_status);
    EXPECT_EQ(d.runtime_error, row.runtime_error);
    EXPECT_FALSE(d.log.empty());
    ASSERT_EQ(d.publishes.size(), row.publishes.size());
    for (size_t i = 0; i < row.publishes.size(); ++i) {
      SCOPED_TRACE("publish " + std::to_string(i));
      const Publish& p = d.publishes[i];
      const Expected& e = row.publishes[i];
      EXPECT_EQ(p.queue, e.queue);
      EXPECT_EQ(p.type, e.type);
      EXPECT_EQ(p.metric_destination, e.metric_destination);
      if (p.type != MessageType::kRetry) {
        EXPECT_EQ(p.delay, Millis(0));
      }
      if (e.check) {
        json j = json::parse(p.body, nullptr, false);
        ASSERT_FALSE(j.is_discarded()) << p.body;
        e.check(j);
      }
      if (p.type == MessageType::kErrorEnd) {
        // One shape for every error envelope: error plus details.type and details.message.
        json j = json::parse(p.body, nullptr, false);
        ASSERT_FALSE(j.is_discarded()) << p.body;
        ASSERT_TRUE(j["payload"]["error"].is_string()) << p.body;
        ASSERT_TRUE(j["payload"]["details"]["type"].is_string()) << p.body;
        ASSERT_TRUE(j["payload"]["details"]["message"].is_string()) << p.body;
        EXPECT_FALSE(j["payload"]["details"]["type"].get<std::string>().empty());
        EXPECT_FALSE(j["payload"]["details"]["message"].get<std::string>().empty());
      }
    }
    if (row.extra) {
      row.extra(d);
    }
  }
}

// Input.take_payloads: every row decides exactly as without it; only a decision that routes the
// results (kSuccess) takes their payloads, any other leaves the outcome as it was.
TEST(RouterTable, TakingThePayloadsChangesNoDecision) {
  for (const Row& row : Rows()) {
    if (!row.outcome) {
      continue;
    }
    SCOPED_TRACE(row.name);
    Policy policy = BasePolicy();
    if (row.policy) {
      row.policy(policy);
    }
    Decision plain = RunRow(row, BasePolicy());
    auto parsed = envelope::Parse(row.body, {.max_bytes = size_t(1) << 40});
    Input in;
    in.body = row.body;
    in.envelope = parsed ? &*parsed : nullptr;
    std::string parse_error = parsed ? "" : parsed.error().message;
    in.parse_error = parse_error;
    in.delivery_count = row.delivery_count;
    in.now = kNow;
    in.jitter = 0.5;
    RuntimeOutcome outcome = MakeOutcome(row);
    const RuntimeOutcome before = MakeOutcome(row);
    in.outcome = &outcome;
    in.take_payloads = &outcome;
    Decision taken = Decide(policy, in);
    EXPECT_EQ(taken.action, plain.action);
    EXPECT_EQ(taken.processed_status, plain.processed_status);
    EXPECT_EQ(taken.log, plain.log);
    ASSERT_EQ(taken.publishes.size(), plain.publishes.size());
    for (size_t i = 0; i < plain.publishes.size(); ++i) {
      EXPECT_EQ(taken.publishes[i].queue, plain.publishes[i].queue);
      EXPECT_EQ(taken.publishes[i].body, plain.publishes[i].body);
    }
    ASSERT_EQ(outcome.items.size(), before.items.size());
    for (size_t i = 0; i < outcome.items.size(); ++i) {
      if (taken.processed_status == Processed::kSuccess &&
          before.items[i].payload_json.size() >= (64u << 10)) {
        EXPECT_TRUE(outcome.items[i].payload_json.empty()) << "result " << i << " not taken";
      } else {
        EXPECT_EQ(outcome.items[i].payload_json, before.items[i].payload_json)
            << "a decision that does not route the results changed them";
      }
    }
  }
}

// A large result payload is moved into its output (the same text as copying it); a result too
// large to publish leaves the outcome whole for the caller's next decision.
TEST(Router, TakesALargeResultPayloadOnlyWhenItIsRouted) {
  const std::string big = "\"" + std::string(100 << 10, 'L') + "\"";
  const std::string response =
      R"([{"payload":)" + big + R"(,"route":{"actors":["a","b"],"current":1}},{"payload":2}])";
  for (size_t limit : {size_t(64) << 20, size_t(50) << 10}) {
    SCOPED_TRACE(limit);
    Policy policy = BasePolicy();
    policy.max_message_bytes = limit;
    auto parsed = envelope::Parse(kBody);
    ASSERT_TRUE(parsed.has_value());
    Input in;
    in.body = kBody;
    in.envelope = &*parsed;
    in.now = kNow;
    auto items = envelope::ParseRuntimeResponse(response);
    ASSERT_TRUE(items.has_value());
    RuntimeOutcome plain_outcome;
    plain_outcome.items = *items;
    in.outcome = &plain_outcome;
    Decision plain = Decide(policy, in);
    RuntimeOutcome outcome;
    outcome.items = std::move(*items);
    in.outcome = &outcome;
    in.take_payloads = &outcome;
    Decision taken = Decide(policy, in);
    EXPECT_EQ(taken.processed_status, plain.processed_status);
    ASSERT_EQ(taken.publishes.size(), plain.publishes.size());
    for (size_t i = 0; i < plain.publishes.size(); ++i) {
      EXPECT_TRUE(taken.publishes[i].body == plain.publishes[i].body) << i;
    }
    if (plain.processed_status == Processed::kSuccess) {
      EXPECT_TRUE(outcome.items[0].payload_json.empty());
      EXPECT_EQ(outcome.items[1].payload_json, "2");  // small: copied
    } else {
      EXPECT_EQ(FailReasonLabel(taken.failed_reason), "routing_error");
      EXPECT_TRUE(outcome.items[0].payload_json == big);
    }
  }
}

// details.type and details.message of each kind of error envelope (docs/sidecar.md).
TEST(Router, EveryErrorEnvelopeHasTypeAndMessage) {
  using K = RuntimeOutcome::Kind;
  struct Case {
    std::string name;
    std::string body = kBody;
    std::optional<K> outcome;
    std::string response = "[]";
    std::string call_error;
    std::function<void(Policy&)> policy = nullptr;
    std::string type;
    std::string message;  // "" = same as payload.error
  };
  const std::string eof = "failed to read response from runtime: failed to read length prefix: EOF";
  const std::vector<Case> cases = {
      {.name = "parse", .body = "{oops", .type = "ParseError"},
      {.name = "missing id",
       .body = R"({"route":{"actors":["a"],"current":0},"payload":1})",
       .type = "ValidationError"},
      {.name = "route mismatch",
       .body = R"({"id":"m1","route":{"actors":["x","a"],"current":0},"payload":1})",
       .type = "RouteMismatch"},
      {.name = "hop limit",
       .body = R"({"id":"m1","route":{"actors":["a"],"current":0},"headers":{"x-asya-hops":5},)"
               R"("payload":1})",
       .policy = [](Policy& p) { p.max_hops = 5; },
       .type = "HopLimitExceeded"},
      {.name = "deadline",
       .body = R"({"id":"m1","route":{"actors":["a"],"current":0},"payload":1,)"
               R"("deadline":"2025-06-01T11:00:00Z"})",
       .type = "DeadlineExceeded"},
      {.name = "too large",
       .policy = [](Policy& p) { p.max_message_bytes = 20; },
       .type = "MessageTooLarge"},
      {.name = "timeout", .outcome = K::kTimeout, .type = "RuntimeTimeout"},
      {.name = "EOF", .outcome = K::kCallError, .call_error = eof, .type = "RuntimeCallError"},
      {.name = "unparsable response",
       .outcome = K::kCallError,
       .call_error = "failed to parse runtime response: not an array",
       .type = "InvalidRuntimeResponse"},
      {.name = "processing_error keeps the runtime's details",
       .outcome = K::kResponse,
       .response =
           R"([{"error":"processing_error","details":{"message":"boom","type":"KeyError"}}])",
       .type = "KeyError",
       .message = "boom"},
      {.name = "error response without details: type = code",
       .outcome = K::kResponse,
       .response = R"([{"error":"connection_error"}])",
       .type = "connection_error"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    Row row;
    row.body = c.body;
    row.outcome = c.outcome;
    row.response = c.response;
    row.call_error = c.call_error;
    row.policy = c.policy;
    Decision d = RunRow(row, BasePolicy());
    ASSERT_EQ(d.publishes.size(), 1u);
    ASSERT_EQ(d.publishes[0].type, MessageType::kErrorEnd);
    json j = json::parse(d.publishes[0].body);
    EXPECT_EQ(j["payload"]["details"]["type"], c.type);
    EXPECT_EQ(j["payload"]["details"]["message"],
              c.message.empty() ? j["payload"]["error"] : json(c.message));
  }
}

TEST(Router, SidecarErrorTypesAreNonRetryableByName) {
  Policy p = BasePolicy();
  p.retry_max_attempts = 3;
  p.non_retryable = {"RuntimeTimeout"};
  Row row;
  row.outcome = RuntimeOutcome::Kind::kTimeout;
  Decision d = RunRow(row, p);
  ASSERT_EQ(d.publishes.size(), 1u);
  EXPECT_EQ(d.publishes[0].type, MessageType::kErrorEnd);
  row.outcome = RuntimeOutcome::Kind::kCallError;
  row.call_error = "failed to read response from runtime: EOF";
  d = RunRow(row, p);
  ASSERT_EQ(d.publishes.size(), 1u);
  EXPECT_EQ(d.publishes[0].type, MessageType::kRetry);
}

TEST(Router, RetryDelayDoublesWithJitterAndCap) {
  Policy p;
  p.retry_backoff = Millis(1000);
  p.retry_max_backoff = Millis(5000);
  EXPECT_EQ(RetryDelay(p, 1, 0.5), Millis(1000));
  EXPECT_EQ(RetryDelay(p, 2, 0.5), Millis(2000));
  EXPECT_EQ(RetryDelay(p, 3, 0.5), Millis(4000));
  EXPECT_EQ(RetryDelay(p, 4, 0.5), Millis(5000));
  EXPECT_EQ(RetryDelay(p, 100, 0.5), Millis(5000));
  EXPECT_EQ(RetryDelay(p, 1, 0.0), Millis(800));
  EXPECT_EQ(RetryDelay(p, 1, 0.999), Millis(1199));
  EXPECT_EQ(RetryDelay(p, 4, 0.999), Millis(5000));  // never above the cap
}

TEST(Router, ParseRfc3339) {
  using namespace std::chrono;
  auto base = *ParseRfc3339("2025-06-01T12:00:00Z");
  EXPECT_EQ(duration_cast<seconds>(base.time_since_epoch()).count(), 1748779200);
  EXPECT_EQ(*ParseRfc3339("2025-06-01T14:00:00+02:00"), base);
  EXPECT_EQ(*ParseRfc3339("2025-06-01t11:30:00-00:30"), base);
  EXPECT_EQ(*ParseRfc3339("2025-06-01T12:00:00.250Z") - base, milliseconds(250));
  EXPECT_EQ(*ParseRfc3339("2025-06-01 12:00:00.123456789Z") - base, microseconds(123456));
  EXPECT_GT(*ParseRfc3339("2999-01-01T00:00:00Z"), base);  // beyond system_clock's range
  EXPECT_LT(*ParseRfc3339("1900-01-01T00:00:00Z"), base);
  for (const char* bad : {"", "2025-06-01", "2025-06-01T12:00:00", "2025-13-01T12:00:00Z",
                          "2025-02-30T12:00:00Z", "2025-06-01T12:00:00.Z", "x025-06-01T12:00:00Z",
                          "2025-06-01T12:00:00+0200", "2025-06-01T12:00:00Zjunk"}) {
    EXPECT_FALSE(ParseRfc3339(bad).has_value()) << bad;
  }
}

TEST(Router, MessageTypeNames) {
  EXPECT_EQ(MessageTypeName(MessageType::kRouting), "routing");
  EXPECT_EQ(MessageTypeName(MessageType::kHappyEnd), "happy_end");
  EXPECT_EQ(MessageTypeName(MessageType::kErrorEnd), "error_end");
  EXPECT_EQ(MessageTypeName(MessageType::kRetry), "retry");
  EXPECT_EQ(MessageTypeName(MessageType::kDeadLetter), "dead_letter");
}

}  // namespace
}  // namespace asya::router

namespace asya::router {
namespace {

// A decision that routed two results (the second publish is the one that fails below).
struct PublishFailureCase {
  envelope::Envelope env = *envelope::Parse(kBody);
  Input in;
  Decision routed;
  PublishFailureCase() {
    in.body = kBody;
    in.envelope = &env;
    in.now = kNow;
    for (const char* q : {"asya-b", "asya-c"}) {
      Publish p;
      p.queue = q;
      p.body = "{}";
      p.type = MessageType::kRouting;
      routed.publishes.push_back(p);
    }
  }
};

TEST(Router, InvalidArgumentPublishGoesToErrorEnd) {
  PublishFailureCase c;
  Error err{ErrorCode::kInvalidArgument,
            "message of 300123 bytes exceeds the SQS limit of 262144 bytes"};
  Decision d = AfterPublishFailure(BasePolicy(), c.in, c.routed, 1, err, Millis(1000));
  EXPECT_EQ(d.action, Action::kAck);
  EXPECT_EQ(d.failed_reason, FailReason::kRouting);
  EXPECT_TRUE(d.warn);
  ASSERT_EQ(d.publishes.size(), 1u);
  EXPECT_EQ(d.publishes[0].queue, "asya-error-end");
  EXPECT_EQ(d.publishes[0].type, MessageType::kErrorEnd);
  ErrorEndWith("failed to publish to asya-c: " + err.message)(json::parse(d.publishes[0].body));
}

TEST(Router, OtherPublishErrorsNack) {
  PublishFailureCase c;
  Decision d = AfterPublishFailure(BasePolicy(), c.in, c.routed, 0,
                                   Error{ErrorCode::kUnavailable, "broker down"}, Millis(1000));
  EXPECT_EQ(d.action, Action::kNack);
  EXPECT_EQ(d.nack_delay, Millis(1000));
  EXPECT_EQ(d.failed_reason, FailReason::kRouting);
  EXPECT_TRUE(d.publishes.empty());
}

TEST(Router, InvalidArgumentOnErrorEndOrDeadLetterNacks) {
  PublishFailureCase c;
  Error err{ErrorCode::kInvalidArgument, "too big"};
  c.routed.publishes[1].type = MessageType::kErrorEnd;
  Decision d = AfterPublishFailure(BasePolicy(), c.in, c.routed, 1, err, Millis(50));
  EXPECT_EQ(d.action, Action::kNack);
  EXPECT_EQ(d.failed_reason, FailReason::kErrorQueueSend);
  EXPECT_TRUE(d.publishes.empty());
  c.routed.publishes[1].type = MessageType::kDeadLetter;
  d = AfterPublishFailure(BasePolicy(), c.in, c.routed, 1, err, Millis(50));
  EXPECT_EQ(d.action, Action::kNack);
  Policy end = BasePolicy();
  end.is_end_actor = true;
  c.routed.publishes[1].type = MessageType::kRouting;
  d = AfterPublishFailure(end, c.in, c.routed, 1, err, Millis(50));
  EXPECT_EQ(d.action, Action::kNack);
}

}  // namespace
}  // namespace asya::router
