#include "asya/local/send.h"

#include <algorithm>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <random>

#include <nlohmann/json.hpp>

#include "asya/actor/manifest.h"
#include "asya/base/crew_layout.h"
#include "asya/base/exit_codes.h"
#include "asya/base/json_text.h"
#include "asya/base/strings.h"
#include "asya/base/time_format.h"
#include "asya/envelope/envelope.h"
#include "asya/local/status.h"
#include "asya/router/router.h"

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

std::string RootOf(const std::string& id, const std::vector<std::string>& roots) {
  std::string cur = id;
  while (true) {
    if (std::find(roots.begin(), roots.end(), cur) != roots.end()) {
      return cur;
    }
    const size_t dash = cur.rfind('-');
    if (dash == std::string::npos || dash + 1 == cur.size() ||
        cur.find_first_not_of("0123456789", dash + 1) != std::string::npos) {
      return "";
    }
    cur.resize(dash);
  }
}

bool TreeComplete(const std::string& root, const std::vector<FinalEnvelope>& finals) {
  std::set<std::string> ids;
  for (const auto& f : finals) {
    ids.insert(f.id);
  }
  if (ids.count(root) == 0) {
    return false;
  }
  size_t expected = 1;
  for (const auto& f : finals) {
    int64_t widest = 1;
    for (int64_t n : f.fanout) {
      if (n > 1) {
        widest = std::max(widest, n);
        expected += static_cast<size_t>(n - 1);
      }
    }
    for (int64_t i = 1; i < widest; ++i) {
      if (ids.count(f.id + "-" + std::to_string(i)) == 0) {
        return false;
      }
    }
  }
  return finals.size() >= expected;
}

namespace {

// The x-asya-fanout record of a stored envelope (empty when absent or malformed).
std::vector<int64_t> FanoutRecord(const std::string& body) {
  std::vector<int64_t> out;
  auto j = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object() || !j.contains("headers") || !j["headers"].is_object()) {
    return out;
  }
  const auto& h = j["headers"];
  auto it = h.find(std::string(router::kHeaderFanout));
  if (it == h.end() || !it->is_array()) {
    return out;
  }
  for (const auto& n : *it) {
    if (n.is_number_integer()) {
      out.push_back(n.get<int64_t>());
    }
  }
  return out;
}

}  // namespace

ResultWatcher::ResultWatcher(std::string state_dir, std::string since,
                             std::vector<std::string> roots)
    : state_dir_(std::move(state_dir)),
      since_(std::move(since)),
      roots_(std::move(roots)),
      root_set_(roots_.begin(), roots_.end()) {}

std::vector<FinalEnvelope> ResultWatcher::Poll() {
  struct Found {
    std::string stamp;
    FinalEnvelope f;
  };
  std::vector<Found> found;
  std::error_code ec;
  for (const auto& [dir, ok] :
       {std::pair{crew_layout::kResultsDir, true}, std::pair{crew_layout::kErrorsDir, false}}) {
    for (const auto& ts : fs::directory_iterator(state_dir_ + "/" + dir, ec)) {
      const std::string stamp = ts.path().filename().string();
      if (stamp < since_) {
        continue;
      }
      std::error_code ec2;
      for (const auto& actor : fs::directory_iterator(ts.path(), ec2)) {
        std::error_code ec3;
        for (const auto& file : fs::directory_iterator(actor.path(), ec3)) {
          const std::string name = file.path().filename().string();
          const std::string suffix = crew_layout::kSuffix;
          if (name.size() <= suffix.size() ||
              name.compare(name.size() - suffix.size(), suffix.size(), suffix) != 0) {
            continue;
          }
          const std::string id = name.substr(0, name.size() - suffix.size());
          const std::string path = file.path().string();
          if (seen_.count(path) != 0) {
            continue;
          }
          std::string root = root_set_.count(id) != 0 ? id : RootOf(id, roots_);
          if (root.empty()) {
            continue;
          }
          auto body = ReadFile(path);  // the crew writes atomically: whole or absent
          if (!body) {
            continue;
          }
          seen_.insert(path);
          FinalEnvelope f;
          f.root = std::move(root);
          f.id = id;
          f.succeeded = ok;
          f.path = path;
          f.fanout = FanoutRecord(*body);
          f.body = std::move(*body);
          found.push_back({stamp, std::move(f)});
        }
      }
    }
  }
  std::stable_sort(found.begin(), found.end(),
                   [](const Found& a, const Found& b) { return a.stamp < b.stamp; });
  std::vector<FinalEnvelope> out;
  std::set<std::string> touched;
  for (auto& x : found) {
    finals_[x.f.root].push_back(x.f);
    touched.insert(x.f.root);
    out.push_back(std::move(x.f));
  }
  for (const auto& root : touched) {
    if (TreeComplete(root, finals_[root])) {
      complete_.insert(root);
    }
  }
  return out;
}

bool ResultWatcher::Complete(const std::string& root) const {
  return complete_.count(root) != 0;
}

size_t ResultWatcher::CompleteCount() const {
  return complete_.size();
}

WaitSummary WaitForTrees(ResultWatcher& watcher, Clock::Duration timeout, Clock& clock,
                         const std::function<void(const FinalEnvelope&)>& on_final,
                         const std::function<void(const ResultWatcher&)>& on_poll) {
  WaitSummary sum;
  const auto deadline = clock.Now() + timeout;
  while (true) {
    for (auto& f : watcher.Poll()) {
      (f.succeeded ? sum.succeeded : sum.failed) += 1;
      if (on_final) {
        on_final(f);
      }
      sum.finals.push_back(std::move(f));
    }
    if (on_poll) {
      on_poll(watcher);
    }
    if (watcher.AllComplete() || clock.Now() >= deadline) {
      break;
    }
    clock.SleepFor(kPollEvery);
  }
  for (const auto& r : watcher.roots()) {
    if (!watcher.Complete(r)) {
      sum.incomplete.push_back(r);
    }
  }
  sum.outcome = !sum.incomplete.empty() ? SendOutcome::kTimedOut
                : sum.failed > 0        ? SendOutcome::kFailed
                                        : SendOutcome::kSucceeded;
  return sum;
}

std::string CompactJson(std::string_view json) {
  std::string out;
  out.reserve(json.size());
  bool in_string = false;
  bool escaped = false;
  for (char c : json) {
    if (in_string) {
      out += c;
      if (escaped) {
        escaped = false;
      } else if (c == '\\') {
        escaped = true;
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
      out += c;
    } else if (c != ' ' && c != '\n' && c != '\r' && c != '\t') {
      out += c;
    }
  }
  return out;
}

std::string CountLine(size_t succeeded, size_t failed) {
  const size_t n = succeeded + failed;
  return std::to_string(n) + (n == 1 ? " result: " : " results: ") + std::to_string(succeeded) +
         " succeeded, " + std::to_string(failed) + " failed";
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
  return exit_code::kNothingArrived;
}

}  // namespace asya::local
