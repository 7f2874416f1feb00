// Fuzzes envelope::Parse, Serialize, MakeErrorEnvelope and ParseRuntimeResponse.
//
// Invariants:
// - Parse never crashes; an error always has a message.
// - A parsed envelope serialises to JSON that parses back to the same envelope (with the payload
//   key now present), and serialising that again gives the same bytes.
// - Any accepted input is syntactically valid JSON (ValidateJson agrees).
// - Error envelopes built from anything (parsed or not, with runtime error details) parse.
#include <cstdint>
#include <string>
#include <string_view>

#include "asya/envelope/envelope.h"
#include "fuzz_check.h"

namespace {

using asya::envelope::Envelope;
using asya::envelope::ErrorEnvelopeInput;

void CheckErrorEnvelope(const ErrorEnvelopeInput& input) {
  std::string out = asya::envelope::MakeErrorEnvelope(input);
  auto parsed = asya::envelope::Parse(out);
  if (!parsed) {
    std::fprintf(stderr, "error envelope does not parse: %s\n%s\n", parsed.error().message.c_str(),
                 out.c_str());
  }
  FUZZ_CHECK(parsed.has_value());
  FUZZ_CHECK(parsed->has_payload);
  FUZZ_CHECK(parsed->id == (input.original != nullptr ? input.original->id : ""));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  asya::envelope::ParseOptions options;
  options.max_bytes = 1u << 20;

  auto env = asya::envelope::Parse(in, options);
  ErrorEnvelopeInput error_input;
  error_input.original_body = in;
  error_input.error = "fuzz";
  if (env) {
    FUZZ_CHECK(asya::envelope::ValidateJson(in).has_value());
    std::string first = asya::envelope::Serialize(*env);
    auto again = asya::envelope::Parse(first);
    if (!again) {
      std::fprintf(stderr, "serialised envelope does not parse: %s\n%s\n",
                   again.error().message.c_str(), first.c_str());
    }
    FUZZ_CHECK(again.has_value());
    Envelope expected = *env;
    expected.has_payload = true;
    FUZZ_CHECK(*again == expected);
    FUZZ_CHECK(asya::envelope::Serialize(*again) == first);
    for (const auto& [key, raw] : env->headers) {
      auto s = env->GetHeaderString(key);
      FUZZ_CHECK(s.has_value() == (!raw.empty() && raw[0] == '"'));
      (void)env->GetHeaderInt(key);
    }
    error_input.original = &*env;
    CheckErrorEnvelope(error_input);
  } else {
    FUZZ_CHECK(!env.error().message.empty());
    CheckErrorEnvelope(error_input);
  }

  auto items = asya::envelope::ParseRuntimeResponse(in, options);
  if (items) {
    for (const auto& item : *items) {
      if (item.error) {
        FUZZ_CHECK(!item.error->code.empty());
        error_input.details = &*item.error;
        CheckErrorEnvelope(error_input);
      }
    }
  } else {
    FUZZ_CHECK(!items.error().message.empty());
  }
  return 0;
}
