// Private helpers shared by envelope.cc, runtime_response.cc and error_envelope.cc.
//
// Parsing is two-level: ScanJson (json_validate.cc, over the base scanner) checks the whole text
// once and reports the raw spans of the shallow members (so the payload is located without simdjson
// ever walking it); the small typed parts (route, headers, details) are then read with simdjson
// On-Demand.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <simdjson.h>

#include "asya/base/json_scan.h"
#include "asya/base/result.h"
#include "asya/envelope/envelope.h"

namespace asya::envelope::internal {

namespace od = simdjson::ondemand;

// ValidateJson plus span reporting for containers up to `visit_depth` (<= json::kMaxVisitDepth).
// Spans are only valid when the whole scan succeeds.
Status ScanJson(std::string_view json, size_t visit_depth, json::ScanVisitor* visitor);

// Size limit and UTF-8 check shared by every entry point.
Status CheckInput(std::string_view json, size_t max_bytes);

// Owns the padded copy of the input and the On-Demand parser for one parse. Small documents
// reuse a thread-local parser; large ones get a private parser that is freed afterwards (simdjson
// keeps ~4 bytes of index per input byte).
class Document {
 public:
  Document() = default;
  Document(const Document&) = delete;
  Document& operator=(const Document&) = delete;

  // Checks size, UTF-8 and RFC 8259 syntax, then starts On-Demand iteration.
  Status Open(std::string_view json, size_t max_bytes);
  // Starts On-Demand iteration over text that has already passed ScanJson.
  Status OpenChecked(std::string_view json);
  od::document& doc() { return doc_; }

 private:
  std::unique_ptr<od::parser> own_parser_;
  std::string own_buffer_;
  od::document doc_;
};

// "object", "array", "string", ...
std::string_view TypeName(od::json_type type);
// Type of a raw JSON value that passed ScanJson (looks at its first byte).
od::json_type RawType(std::string_view raw);

// Converts a simdjson error that slipped past validation into kInvalidArgument.
tl::unexpected<Error> JsonError(simdjson::error_code code);
tl::unexpected<Error> FieldError(std::string_view field, std::string_view expected,
                                 od::json_type got);

Result<od::json_type> TypeOf(od::value& v);
// Exact raw JSON text of a value (objects/arrays from bracket to bracket; scalars trimmed).
Result<std::string_view> RawJson(od::value& v);
// String value, or nullopt for JSON null; other types -> "field '<field>' must be a string".
Result<std::optional<std::string>> StringOrNull(od::value& v, std::string_view field);
// Parses a route object; `prefix` names the field in error messages ("route" or "[3].route").
Status ParseRoute(od::value& v, std::string_view prefix, Route& route);
// Parses a headers object into key/raw-value pairs (duplicate keys: last wins).
Status ParseHeaders(od::value& v, std::string_view field, std::vector<Header>& headers);

// The same readers over raw spans reported by ScanJson.
Result<std::optional<std::string>> RawStringOrNull(std::string_view raw, std::string_view field);
Status ParseRawRoute(std::string_view raw, std::string_view prefix, Route& route);
Status ParseRawHeaders(std::string_view raw, std::string_view field, std::vector<Header>& headers);
// True when a raw object text is "{}" apart from whitespace.
bool IsEmptyObjectText(std::string_view raw);

// Adds or replaces `key` in `headers`.
void SetHeader(std::vector<Header>& headers, std::string_view key, std::string raw_json);

// Appends `"key":` (escaped) to out.
void AppendKey(std::string& out, std::string_view key);
// Appends `["a","b"]`.
void AppendStringArray(std::string& out, const std::vector<std::string>& items);
// Appends `{"k":<raw>,...}` (an empty raw value is written as null).
void AppendHeaders(std::string& out, const std::vector<Header>& headers);

}  // namespace asya::envelope::internal
