// `asya queue redrive ACTOR [--limit N]` (see redrive.h for the order of operations).
#include "bin/asya/redrive.h"

#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <set>
#include <span>
#include <string>
#include <vector>

#include <fcntl.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "asya/base/exit_codes.h"
#include "asya/base/file.h"

namespace asya::cli {
namespace {

constexpr std::string_view kReasonHeader = "x-asya-dlq-reason";
constexpr std::string_view kDeliveriesHeader = "x-asya-deliveries";
constexpr std::string_view kKeptDeliveriesHeader = "x-asya-dlq-deliveries";
constexpr std::string_view kRedriveIdHeader = "x-asya-redrive-id";

std::atomic<bool> g_stop{false};

extern "C" void OnStopSignal(int /*sig*/) {
  g_stop.store(true);
}

int Fail(int code, const std::string& message) {
  std::fprintf(stderr, "asya queue redrive: %s\n", message.c_str());
  return code;
}

// A dead letter's identity across redeliveries: the broker's message id (SQS MessageId,
// RabbitMQ message-id, SQLite row id); FNV-1a of body and headers when the broker gave none.
std::string StableId(const transport::Message& m) {
  std::string id = m.id;
  if (id.empty()) {
    uint64_t h = 1469598103934665603ULL;
    auto mix = [&](std::string_view s) {
      for (unsigned char c : s) {
        h = (h ^ c) * 1099511628211ULL;
      }
      h = (h ^ 0xff) * 1099511628211ULL;
    };
    mix(m.body);
    for (const auto& [k, v] : m.headers) {
      if (k.rfind("x-asya-", 0) == 0) {
        mix(k);
        mix(v);
      }
    }
    char buf[32];
    std::snprintf(buf, sizeof buf, "fnv-%016llx", static_cast<unsigned long long>(h));
    id = buf;
  }
  for (char& c : id) {
    if (c == '\n' || c == '\r') {
      c = ' ';
    }
  }
  return id;
}

// The reason the envelope in `body` itself records (the sidecar writes it into the envelope's
// headers too), or "".
std::string ReasonFromBody(const std::string& body) {
  auto doc = nlohmann::json::parse(body, nullptr, false);
  if (doc.is_discarded() || !doc.is_object()) {
    return "";
  }
  auto headers = doc.find("headers");
  if (headers == doc.end() || !headers->is_object()) {
    return "";
  }
  auto reason = headers->find(std::string(kReasonHeader));
  return reason != headers->end() && reason->is_string() ? reason->get<std::string>() : "";
}

// Transport headers of the redriven message: the mesh's own (x-asya-*) without the delivery
// count, which starts afresh; broker-owned ones (x-delivery-count, x-death, ...) are dropped.
std::map<std::string, std::string> RedriveHeaders(const transport::Message& m,
                                                  const std::string& id) {
  std::map<std::string, std::string> out;
  for (const auto& [k, v] : m.headers) {
    if (k.rfind("x-asya-", 0) != 0 || v.empty()) {
      continue;
    }
    if (k == kDeliveriesHeader) {
      out[std::string(kKeptDeliveriesHeader)] = v;
    } else {
      out[k] = v;
    }
  }
  if (out.find(std::string(kReasonHeader)) == out.end()) {
    std::string reason = ReasonFromBody(m.body);
    out[std::string(kReasonHeader)] =
        reason.empty() ? "unknown (dead-lettered without a reason, e.g. by an SQS RedrivePolicy)"
                       : reason;
  }
  out[std::string(kRedriveIdHeader)] = id;
  return out;
}

// Journal of a broker redrive: "P <id>" once a publish is confirmed, "D <id>" once the dead
// letter is deleted. Each line is fsync'ed before the next step.
class Journal {
 public:
  Status Open(const std::string& path) {
    path_ = path;
    std::error_code ec;
    std::filesystem::create_directories(std::filesystem::path(path).parent_path(), ec);
    {
      std::ifstream in(path);
      std::string line;
      while (std::getline(in, line)) {
        if (line.size() > 2 && line[1] == ' ' && line[0] == 'P') {
          published_.insert(line.substr(2));
        } else if (line.size() > 2 && line[1] == ' ' && line[0] == 'D') {
          published_.erase(line.substr(2));
        }
      }
    }
    fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd_ < 0) {
      return MakeError(ErrorCode::kUnavailable,
                       "cannot open the redrive journal " + path + ": " + std::strerror(errno) +
                           " (choose another with --journal); nothing was moved");
    }
    return Ok();
  }
  ~Journal() {
    if (fd_ >= 0) {
      ::close(fd_);
    }
  }
  Journal() = default;
  Journal(const Journal&) = delete;
  Journal& operator=(const Journal&) = delete;

  [[nodiscard]] bool Published(const std::string& id) const { return published_.count(id) > 0; }
  Status Record(char kind, const std::string& id) {
    std::string line = std::string(1, kind) + " " + id + "\n";
    if (::write(fd_, line.data(), line.size()) != static_cast<ssize_t>(line.size()) ||
        ::fdatasync(fd_) != 0) {
      return MakeError(ErrorCode::kUnavailable,
                       "cannot write the redrive journal " + path_ + ": " + std::strerror(errno));
    }
    if (kind == 'P') {
      published_.insert(id);
    } else {
      published_.erase(id);
    }
    return Ok();
  }
  // Rewrites the journal with only the ids still published-but-not-deleted; removes it when
  // there are none.
  void Compact() {
    if (published_.empty()) {
      ::unlink(path_.c_str());
      return;
    }
    std::string content;
    for (const auto& id : published_) {
      content += "P " + id + "\n";
    }
    (void)WriteFileAtomic(path_, content);
  }

 private:
  std::string path_;
  int fd_ = -1;
  std::set<std::string> published_;
};

struct Outcome {
  int64_t moved = 0;
  int64_t finished = 0;  // of which published by an earlier, interrupted run
};

std::string Summary(const Outcome& o, const std::string& from, const std::string& to) {
  std::string s = "moved " + std::to_string(o.moved) + " message" + (o.moved == 1 ? "" : "s") +
                  " from " + from + " to " + to;
  if (o.finished > 0) {
    s += " (" + std::to_string(o.finished) + " published by an interrupted run, now deleted)";
  }
  return s;
}

}  // namespace

int Redrive(transport::Transport& t, const RedriveOptions& o) {
  const std::string dlq = transport::DlqName(o.actor);
  const std::string main_queue = transport::QueueName(o.actor);
  auto dlq_exists = t.QueueExists(dlq);
  if (!dlq_exists) {
    return Fail(exit_code::kFailed, dlq_exists.error().message);
  }
  if (!*dlq_exists) {
    std::string hint =
        o.actor.rfind("asya-", 0) == 0
            ? " (give the actor's name, e.g. '" + o.actor.substr(5) + "')"
            : " (no actor '" + o.actor + "' on this " + std::string(t.Name()) + " transport?)";
    return Fail(exit_code::kUsage, "no dead-letter queue " + dlq + hint);
  }
  auto main_exists = t.QueueExists(main_queue);
  if (!main_exists) {
    return Fail(exit_code::kFailed, main_exists.error().message);
  }
  if (!*main_exists) {
    return Fail(exit_code::kUsage,
                "queue " + main_queue + " does not exist; nothing was moved from " + dlq);
  }
  auto depth = t.Depth(dlq);
  if (!depth) {
    return Fail(exit_code::kFailed, depth.error().message);
  }
  int64_t budget = depth->ready;
  if (o.limit) {
    budget = std::min(budget, *o.limit);
  }

  const bool atomic = t.Name() == "sqlite";  // PublishAndAck is one transaction there
  Journal journal;
  if (!atomic && budget > 0) {
    if (auto st = journal.Open(o.journal_path); !st) {
      return Fail(exit_code::kFailed, st.error().message);
    }
  }

  struct sigaction sa {};
  sa.sa_handler = OnStopSignal;
  sa.sa_flags = SA_RESTART;
  sigemptyset(&sa.sa_mask);
  struct sigaction old_int {};
  struct sigaction old_term {};
  sigaction(SIGINT, &sa, &old_int);
  sigaction(SIGTERM, &sa, &old_term);

  Outcome out;
  int64_t published = 0;
  std::string error;
  while (out.moved < budget && !g_stop.load() && error.empty()) {
    transport::ReceiveOptions ro;
    ro.max_messages = static_cast<size_t>(std::min<int64_t>(10, budget - out.moved));
    ro.wait = transport::Millis(2000);
    ro.visibility = o.visibility;
    auto got = t.Receive(dlq, ro);
    if (!got) {
      error = got.error().message;
      break;
    }
    if (got->empty()) {
      break;  // the rest is in flight elsewhere (or the count was approximate)
    }
    for (auto& m : *got) {
      if (!error.empty() || g_stop.load() || out.moved >= budget) {
        (void)t.Nack(m);  // not moved: visible again at once
        continue;
      }
      const std::string id = StableId(m);
      transport::PublishOptions po;
      po.headers = RedriveHeaders(m, id);
      if (atomic) {
        transport::Outgoing one{.queue = main_queue, .body = m.body, .options = po};
        if (auto failure = t.PublishAndAck(m, std::span(&one, 1))) {
          error = failure->error.message;
          (void)t.Nack(m);
          continue;
        }
        ++published;
      } else {
        const bool done_before = journal.Published(id);
        if (!done_before) {
          if (auto st = t.Publish(main_queue, m.body, po); !st) {
            error = "publishing to " + main_queue + ": " + st.error().message;
            (void)t.Nack(m);
            continue;
          }
          ++published;
          if (auto st = journal.Record('P', id); !st) {
            // Finish this move (the delete below) and stop: without the journal a later
            // interruption could not be told from a message not yet published.
            error = st.error().message;
          }
        }
        if (o.exit_after_publish > 0 && published == o.exit_after_publish) {
          std::fflush(nullptr);
          std::_Exit(137);
        }
        if (auto st = t.Ack(m); !st) {
          error = "deleting from " + dlq + ": " + st.error().message + " (message " + id +
                  " is in " + main_queue + "; a re-run deletes it without publishing it again)";
          continue;
        }
        ++out.moved;
        (void)journal.Record('D', id);
        if (done_before) {
          ++out.finished;
        }
      }
      if (atomic) {
        ++out.moved;
        if (o.exit_after_publish > 0 && published == o.exit_after_publish) {
          std::fflush(nullptr);
          std::_Exit(137);
        }
      }
    }
  }
  sigaction(SIGINT, &old_int, nullptr);
  sigaction(SIGTERM, &old_term, nullptr);
  if (!atomic && budget > 0) {
    journal.Compact();
  }

  if (o.json_output) {
    nlohmann::ordered_json j{{"moved", out.moved}, {"from", dlq}, {"to", main_queue}};
    if (!error.empty()) {
      j["error"] = error;
    }
    std::cout << j.dump() << "\n";
  } else {
    std::cout << Summary(out, dlq, main_queue) << "\n";
  }
  std::cout.flush();
  if (!error.empty()) {
    return Fail(exit_code::kFailed, error);
  }
  if (g_stop.load()) {
    return Fail(exit_code::kFailed, "interrupted; the messages not yet moved are still in " + dlq);
  }
  if (auto after = t.Depth(dlq); after && after->inflight > 0 && out.moved < budget) {
    std::fprintf(stderr,
                 "asya queue redrive: %lld message(s) of %s are in flight (an interrupted run "
                 "or another reader holds them); run again once they are visible\n",
                 static_cast<long long>(after->inflight), dlq.c_str());
  }
  return exit_code::kOk;
}

}  // namespace asya::cli
