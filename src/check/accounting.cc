#include "asya/check/accounting.h"

#include <cstdio>

namespace asya::check {

std::string EnvelopeId(std::string_view prefix, int64_t i) {
  char digits[32];
  std::snprintf(digits, sizeof digits, "%08lld", static_cast<long long>(i));
  return std::string(prefix) + digits;
}

std::vector<Expectation> ExpectedOutputs(std::string_view prefix, int64_t i) {
  std::string id = EnvelopeId(prefix, i);
  Expectation first{id, Place::kHappy};
  Expectation second{id + "-1", i % 10 == 7 ? Place::kError : Place::kHappy};
  return {std::move(first), std::move(second)};
}

int64_t ExpectedCount(int64_t envelopes) {
  return envelopes * 2;
}

namespace {

const char* PlaceName(Place p) {
  switch (p) {
    case Place::kHappy:
      return "happy-end";
    case Place::kError:
      return "error-end";
    case Place::kDlq:
      return "a DLQ";
  }
  return "?";
}

}  // namespace

Tally Account(std::string_view prefix, int64_t envelopes, const Seen& seen, size_t examples) {
  Tally t;
  int64_t matched_ids = 0;
  for (int64_t i = 0; i < envelopes; ++i) {
    for (const Expectation& e : ExpectedOutputs(prefix, i)) {
      ++t.expected;
      auto it = seen.find(e.id);
      if (it == seen.end() || it->second.total() == 0) {
        ++t.lost;
        if (t.lost_ids.size() < examples) {
          t.lost_ids.push_back(e.id);
        }
        continue;
      }
      ++matched_ids;
      const Arrivals& a = it->second;
      ++t.arrived;
      if (a.total() > 1) {
        ++t.duplicated;
        if (t.duplicated_ids.size() < examples) {
          t.duplicated_ids.push_back(e.id + " x" + std::to_string(a.total()));
        }
      }
      if (a.dlq > 0) {
        ++t.dead_lettered;
      }
      const bool wrong =
          (e.place == Place::kHappy && a.error > 0) || (e.place == Place::kError && a.happy > 0);
      if (wrong) {
        ++t.unexpected;
        if (t.unexpected_notes.size() < examples) {
          const Place at = e.place == Place::kHappy ? Place::kError : Place::kHappy;
          t.unexpected_notes.push_back(e.id + ": at " + PlaceName(at) + " (expected " +
                                       PlaceName(e.place) + ")");
        }
      }
    }
  }
  // Ids nobody expects (another run's, a mangled id, a fan-out that should not exist).
  const int64_t seen_ids = static_cast<int64_t>(seen.size());
  if (seen_ids > matched_ids) {
    for (const auto& [id, a] : seen) {
      if (a.total() == 0) {
        continue;
      }
      bool known = false;
      if (id.size() > prefix.size() && id.compare(0, prefix.size(), prefix) == 0) {
        std::string_view rest = std::string_view(id).substr(prefix.size());
        bool child = rest.size() == 10 && rest.substr(8) == "-1";
        if (rest.size() == 8 || child) {
          std::string_view digits = rest.substr(0, 8);
          bool all_digits = true;
          for (char c : digits) {
            all_digits = all_digits && c >= '0' && c <= '9';
          }
          known = all_digits && std::stoll(std::string(digits)) < envelopes;
        }
      }
      if (!known) {
        ++t.unexpected;
        if (t.unexpected_notes.size() < examples) {
          t.unexpected_notes.push_back(id + ": not an expected output");
        }
      }
    }
  }
  return t;
}

std::string ResultLine(const Tally& t) {
  return "lost=" + std::to_string(t.lost) + " duplicated=" + std::to_string(t.duplicated) +
         " unexpected=" + std::to_string(t.unexpected);
}

std::string IdOfCrewFile(std::string_view name) {
  constexpr std::string_view kExt = ".json";
  if (name.size() <= kExt.size() || name.front() == '.' ||
      name.substr(name.size() - kExt.size()) != kExt) {
    return "";
  }
  return std::string(name.substr(0, name.size() - kExt.size()));
}

}  // namespace asya::check
