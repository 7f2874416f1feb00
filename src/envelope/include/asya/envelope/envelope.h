// The envelope: the message that travels between actors.
//
// Wire format (reference-dataplane §2, DESIGN §3.1):
//   {"id": str, "parent_id"?: str, "route": {"actors": [str], "current": int, "metadata"?: {}},
//    "headers"?: {}, "payload": <any JSON>, "deadline"?: RFC 3339 str}
//
// The payload is never turned into a DOM here: Parse() keeps it as the exact raw JSON text of the
// input and Serialize() writes that text back unchanged. Headers and route metadata are kept as
// raw JSON text too; header helpers below edit single string/integer members.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "asya/base/json_text.h"
#include "asya/base/result.h"

namespace asya::envelope {

struct Route {
  std::vector<std::string> actors;
  int64_t current = 0;
  // Raw JSON object text of route.metadata, or empty when absent/empty.
  std::string metadata_json;

  // actors[current], or "" when current is out of range.
  [[nodiscard]] std::string_view CurrentActor() const;

  bool operator==(const Route&) const = default;
};

// One header: key and its raw JSON value text (e.g. "\"00-abc-def-01\"" or "3").
using Header = std::pair<std::string, std::string>;

struct Envelope {
  std::string id;
  std::optional<std::string> parent_id;
  bool has_route = false;  // false when "route" was absent or null
  Route route;
  bool has_headers = false;  // "headers" key present (object)
  std::vector<Header> headers;
  bool has_payload = false;           // "payload" key present (value may be null)
  std::string payload_json = "null";  // raw JSON text of the payload, byte-for-byte from the input
  std::optional<std::string> deadline;

  // Header helpers. Get* return nullopt when absent or of another JSON type.
  [[nodiscard]] std::optional<std::string> GetHeaderString(std::string_view key) const;
  [[nodiscard]] std::optional<int64_t> GetHeaderInt(std::string_view key) const;
  void SetHeaderString(std::string_view key, std::string_view value);  // adds or replaces
  void SetHeaderInt(std::string_view key, int64_t value);
  void SetHeaderRaw(std::string_view key, std::string raw_json);

  bool operator==(const Envelope&) const = default;
};

struct ParseOptions {
  // Reject inputs larger than this many bytes (ASYA_MAX_MESSAGE_BYTES).
  size_t max_bytes = 64u << 20;
  // Parse: false leaves Envelope.payload_json empty (has_payload still tells whether there was
  // one; the payload is still checked): a large payload is then not copied out of the input.
  bool keep_payload = true;
};

// Parses a queue message. Errors (kInvalidArgument) carry a decoder message suitable for
// "Failed to parse message: <message>". Validation beyond types (non-empty id, route match) is the
// router's job. Unknown top-level keys are ignored. Invalid UTF-8 is an error.
// Details: the whole input is checked against RFC 8259 first (also inside skipped values:
// `[1,,2]`, bad escapes, lone surrogates, trailing data are errors). Keys match case-sensitively;
// duplicate keys: last wins. `null` counts as absent for id, parent_id, route, route.actors,
// route.current, route.metadata, headers and deadline. Input larger than max_bytes ->
// kResourceExhausted. Error messages name the field: "field 'route.current' must be an integer
// (got string)".
Result<Envelope> Parse(std::string_view json, const ParseOptions& options = {});

// Serialises compactly: id, parent_id (if set), route (actors, current, metadata if non-empty),
// headers (if has_headers or non-empty), payload (raw text), deadline (if set).
// Route is written when has_route is set or any route field is non-default; payload is always
// written ("null" when absent). For a parsed envelope with a payload, Parse(Serialize(e)) == e.
std::string Serialize(const Envelope& envelope);
// The same with `payload_json` written in place of envelope.payload_json (saves copying a large
// payload into an Envelope just to serialise it; "" is written as null).
std::string SerializeWithPayload(const Envelope& envelope, std::string_view payload_json);
// SerializeWithPayload, built inside `payload_json`'s own buffer when its capacity has room for the
// rest of the envelope (the payload is moved up in place; no second buffer of the payload's size),
// else as above. A payload taken by ParseRuntimeResponseTaking() keeps its frame's capacity (the
// frame's other members, plus the spare room protocol::RuntimeClient reserves for large frames).
std::string SerializeIntoPayload(const Envelope& envelope, std::string&& payload_json);
// The size SerializeWithPayload(envelope, payload_json) returns, without building it.
size_t SerializedSize(const Envelope& envelope, std::string_view payload_json);

// Checks RFC 8259 syntax of a complete JSON text (not UTF-8: see simdjson::validate_utf8).
// kInvalidArgument "invalid JSON at byte N: <what>" on failure. Nesting is limited to 1024.
Status ValidateJson(std::string_view json);

// ---- Runtime responses (reference-dataplane §3.6/§3.7) ----

struct RuntimeErrorInfo {
  std::string code;          // "processing_error", "msg_parsing_error", "connection_error", ...
  std::string message;       // details.message
  std::string type;          // details.type (exception class name)
  std::string traceback;     // details.traceback
  std::string details_json;  // raw JSON text of "details" (may hold extra members), or empty
};

struct RuntimeItem {
  // Set when the element is an error (its "error" member is a non-empty string).
  std::optional<RuntimeErrorInfo> error;
  bool has_route = false;
  Route route;
  bool has_headers = false;
  std::vector<Header> headers;
  bool has_payload = false;
  std::string payload_json = "null";
  std::optional<std::string> id;
  std::optional<std::string> parent_id;
};

// Parses the runtime's response frame: a JSON array of items, or `null` (= empty). Any type
// mismatch -> kInvalidArgument ("failed to parse runtime response: ..." is added by the caller).
Result<std::vector<RuntimeItem>> ParseRuntimeResponse(std::string_view json,
                                                      const ParseOptions& options = {});
// ParseRuntimeResponse, taking the frame: when it holds one item with a large payload (>= 64 KiB),
// that payload is moved to the start of the frame's buffer and the buffer becomes the item's
// payload_json (no copy; the buffer keeps its capacity, room for SerializeWithPayload in place).
Result<std::vector<RuntimeItem>> ParseRuntimeResponseTaking(std::string&& json,
                                                            const ParseOptions& options = {});

// ---- Error envelope (reference-dataplane §2.5, DESIGN §4.7) ----

struct ErrorEnvelopeInput {
  std::string_view original_body;      // the queue message as received
  const Envelope* original = nullptr;  // parsed original, or nullptr if it could not be parsed
  std::string error;                   // payload.error
  const RuntimeErrorInfo* details = nullptr;  // payload.details (omitted when null)
  std::string error_end_actor = "error-end";
  // Extra payload members appended verbatim (raw JSON values), e.g. {"attempts", "[...]"}.
  std::vector<std::pair<std::string, std::string>> extra_payload;
  // When the original could not be parsed, its body is kept in payload.original_body (a JSON
  // string; "original_body_base64" when it is not valid UTF-8) if it is at most this many bytes;
  // larger bodies only get "original_body_bytes": <size>. Nothing is lost silently (DESIGN §4.8).
  size_t max_original_body_bytes = 1u << 20;
};

// Builds the error envelope: id (or ""), parent_id, route {actors, current} of the original (or
// {"actors":[error_end_actor],"current":0}), headers of the original (DESIGN §4.7: they survive),
// payload {error, details?, original_payload?, extras...}, deadline of the original.
// details: the non-empty members of message/type/traceback plus any extra members of
// details_json. original_payload only when the original parsed and had a payload key. The route
// falls back to error_end_actor when there is no original or its route.actors is absent/empty.
std::string MakeErrorEnvelope(const ErrorEnvelopeInput& input);

}  // namespace asya::envelope
