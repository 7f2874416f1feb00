// Fuzzes the C++ handler SDK's request parser: runtime::Processor (payload and envelope mode,
// validation on and off) and PyDecode over the base JSON scanner.
//
// Invariants:
// - Process never crashes; every response is a JSON array that is either one error element
//   ({"error", "details": {message, type, traceback}} with non-empty message and type) or items.
// - PyDecode accepts exactly what the base scanner accepts (lone surrogates allowed, nesting
//   <= 512) in valid UTF-8, and every rejection has a Python exception type and message.
// - For a request our sidecar would send (envelope::Parse accepts it), the response is one the
//   sidecar can read (envelope::ParseRuntimeResponse accepts it), in payload mode.
#include <cstdint>
#include <string>
#include <string_view>

#include "asya/base/json_scan.h"
#include "asya/envelope/envelope.h"
#include "fuzz_check.h"
#include "runtime/json_scan.h"
#include "runtime/processor.h"

namespace {

using asya::runtime::Handler;
using asya::runtime::Outputs;
using asya::runtime::Request;

const Handler& EchoHandler() {
  static const Handler handler = [](const Request& r) {
    (void)r.Attempt();  // reads headers through the validated-text walkers
    (void)r.HeaderString("traceparent");
    return Outputs(std::string(r.payload()));
  };
  return handler;
}

const Handler& EnvelopeHandler() {
  static const Handler handler = Handler::Envelope([](nlohmann::json e) {
    if (e.is_object() && e.contains("route") && e["route"].is_object() &&
        e["route"]["current"].is_number_integer()) {
      e["route"]["current"] = e["route"]["current"].get<int64_t>() + 1;
    }
    return e;
  });
  return handler;
}

void CheckResponse(std::string_view out) {
  asya::json::ScanResult r = asya::json::Scan(out, {}, nullptr);
  if (!r.ok()) {
    // Lone surrogate escapes pass through from the request (as the Python runtime writes them).
    asya::json::ScanOptions lone;
    lone.allow_lone_surrogates = true;
    r = asya::json::Scan(out, lone, nullptr);
  }
  FUZZ_CHECK(r.ok());
  FUZZ_CHECK(!out.empty() && out.front() == '[');
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);

  asya::runtime::PyError error;
  std::vector<asya::runtime::Member> members;
  auto doc = asya::runtime::PyDecode(in, &error, &members);
  asya::json::ScanOptions options;
  options.allow_lone_surrogates = true;
  options.max_depth = asya::runtime::kMaxJsonDepth;
  const bool scan_ok = asya::json::Scan(in, options, nullptr).ok();
  FUZZ_CHECK(doc.has_value() == scan_ok);
  if (doc) {
    FUZZ_CHECK(!asya::FindInvalidUtf8(in).has_value());
    FUZZ_CHECK(members.empty() || doc->kind == asya::json::Kind::kObject);
  } else {
    FUZZ_CHECK(!error.type.empty() && !error.message.empty());
  }

  for (bool validate : {true, false}) {
    std::string out;
    asya::runtime::Processor(EchoHandler(), validate, 1u << 20).Process(in, out);
    CheckResponse(out);
    if (validate) {
      asya::envelope::ParseOptions limits;
      limits.max_bytes = 1u << 20;
      if (asya::envelope::Parse(in, limits)) {
        auto items = asya::envelope::ParseRuntimeResponse(out, limits);
        if (!items) {
          std::fprintf(stderr, "sidecar cannot read the response: %s\n%s\n",
                       items.error().message.c_str(), out.c_str());
        }
        FUZZ_CHECK(items.has_value());
      }
    }
    out.clear();
    asya::runtime::Processor(EnvelopeHandler(), validate, 1u << 20).Process(in, out);
    CheckResponse(out);
  }
  return 0;
}
