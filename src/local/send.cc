#include "asya/local/send.h"

#include <ctime>
#include <filesystem>
#include <fstream>
#include <random>

#include "asya/actor/manifest.h"
#include "asya/base/crew_layout.h"
#include "asya/base/exit_codes.h"
#include "asya/base/json_text.h"
#include "asya/base/strings.h"
#include "asya/base/time_format.h"
#include "asya/envelope/envelope.h"

namespace asya::local {
namespace fs = std::filesystem;

namespace {

constexpr auto kPollEvery = std::chrono::milliseconds(100);
constexpr auto kStampSkew = std::chrono::seconds(2);

std::string RandomHex(size_t bytes) {
  std::random_device rd;
  static const char* kHex = "0123456789abcdef";
  std::string out;
  for (size_t i = 0; i < bytes; ++i) {
    unsigned v = rd() & 0xffU;
    out += kHex[v >> 4];
    out += kHex[v & 0xf];
  }
  return out;
}

// RFC 8259 syntax and UTF-8: "invalid JSON at byte N: what".
Status CheckJson(std::string_view text) {
  ASYA_RETURN_IF_ERROR(envelope::ValidateJson(text));
  for (size_t i = 0; i < text.size();) {
    if (static_cast<unsigned char>(text[i]) < 0x80) {
      ++i;
      continue;
    }
    const size_t n = Utf8SequenceLength(text, i);
    if (n == 0) {
      return MakeError(ErrorCode::kInvalidArgument,
                       "invalid JSON at byte " + std::to_string(i) + ": invalid UTF-8");
    }
    i += n;
  }
  return Ok();
}

}  // namespace

Result<std::vector<std::string>> ParseRoute(std::string_view route) {
  std::vector<std::string> actors;
  for (std::string& name : SplitTrimmed(route, ',', /*keep_empty=*/true)) {
    if (!actor::IsValidActorName(name)) {
      return MakeError(
          ErrorCode::kInvalidArgument,
          "ROUTE must be comma-separated actor names (DNS-1123 labels); '" + name + "' is not one");
    }
    actors.push_back(std::move(name));
  }
  return actors;
}

Result<std::string> ReadPayloadText(const std::string& arg, bool jsonl, std::istream& in) {
  if (arg == "-") {
    return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  if (!jsonl) {
    return arg;
  }
  std::ifstream file(arg, std::ios::binary);
  if (!file) {
    return MakeError(ErrorCode::kInvalidArgument, "cannot read " + arg);
  }
  return std::string(std::istreambuf_iterator<char>(file), std::istreambuf_iterator<char>());
}

Result<std::vector<std::string>> SplitPayloads(const std::string& text, bool jsonl) {
  std::vector<std::string> payloads;
  if (jsonl) {
    size_t pos = 0;
    while (pos < text.size()) {
      size_t nl = text.find('\n', pos);
      if (nl == std::string::npos) {
        nl = text.size();
      }
      std::string line = text.substr(pos, nl - pos);
      pos = nl + 1;
      if (line.find_first_not_of(" \t\r") != std::string::npos) {
        payloads.push_back(std::move(line));
      }
    }
  } else {
    payloads.push_back(text);
  }
  for (size_t i = 0; i < payloads.size(); ++i) {
    if (auto st = CheckJson(payloads[i]); !st) {
      return MakeError(ErrorCode::kInvalidArgument,
                       (jsonl ? "payload " + std::to_string(i + 1) : std::string("PAYLOAD")) +
                           " is not valid JSON: " + st.error().message);
    }
  }
  if (payloads.empty()) {
    return MakeError(ErrorCode::kInvalidArgument, "no payloads given");
  }
  return payloads;
}

std::string BuildEnvelope(const std::string& id, const std::vector<std::string>& actors,
                          const std::string& traceparent, std::string_view payload_json) {
  envelope::Envelope e;
  e.id = id;
  e.has_route = true;
  e.route.actors = actors;
  e.route.current = 0;
  e.has_headers = true;
  e.SetHeaderString("traceparent", traceparent);
  e.has_payload = true;
  return envelope::SerializeWithPayload(e, payload_json);
}

std::string NewEnvelopeId() {
  std::string h = RandomHex(16);
  h[12] = '4';
  h[16] = "89ab"[std::stoi(h.substr(16, 1), nullptr, 16) & 3];
  return h.substr(0, 8) + "-" + h.substr(8, 4) + "-" + h.substr(12, 4) + "-" + h.substr(16, 4) +
         "-" + h.substr(20);
}

std::string NewTraceparent() {
  return "00-" + RandomHex(16) + "-" + RandomHex(8) + "-01";
}

std::string CrewStampFloor(Clock::WallTime sent_at) {
  return FormatUtc(sent_at - kStampSkew, "%Y-%m-%dT%H:%M:%S");
}

std::string FindCrewFile(const std::string& dir, const std::string& id, const std::string& since) {
  std::error_code ec;
  for (const auto& ts : fs::directory_iterator(dir, ec)) {
    if (ts.path().filename().string() < since) {
      continue;
    }
    for (const auto& actor : fs::directory_iterator(ts.path(), ec)) {
      fs::path f = actor.path() / crew_layout::FileName(id);
      if (fs::exists(f, ec)) {
        return f.string();
      }
    }
  }
  return "";
}

SendResult WaitForResult(const std::string& state_dir, const std::string& id,
                         const std::string& since, Clock::Duration timeout, Clock& clock) {
  const auto deadline = clock.Now() + timeout;
  while (clock.Now() < deadline) {
    for (const auto& [dir, outcome] : {std::pair{crew_layout::kResultsDir, SendOutcome::kSucceeded},
                                       std::pair{crew_layout::kErrorsDir, SendOutcome::kFailed}}) {
      std::string found = FindCrewFile(state_dir + "/" + dir, id, since);
      if (!found.empty()) {
        return {outcome, found};
      }
    }
    clock.SleepFor(kPollEvery);
  }
  return {SendOutcome::kTimedOut, ""};
}

int ExitCodeOf(SendOutcome outcome) {
  switch (outcome) {
    case SendOutcome::kSucceeded:
      return exit_code::kOk;
    case SendOutcome::kFailed:
      return exit_code::kFailed;
    case SendOutcome::kTimedOut:
      break;
  }
  return exit_code::kSendWaitTimedOut;
}

}  // namespace asya::local
