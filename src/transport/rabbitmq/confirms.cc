#include "transport/rabbitmq/confirms.h"

#include <utility>
#include <vector>

namespace asya::transport::rabbitmq {

void ConfirmTracker::Add(uint64_t seq, Done done) {
  pending_.emplace(seq, Pending{std::move(done), std::nullopt});
}

bool ConfirmTracker::MarkUnroutable(uint64_t seq, Error error) {
  auto it = pending_.find(seq);
  if (it == pending_.end()) {
    return false;
  }
  it->second.failure = std::move(error);
  return true;
}

void ConfirmTracker::Resolve(uint64_t tag, bool multiple, bool ok) {
  auto end = pending_.upper_bound(tag);
  auto begin = multiple ? pending_.begin() : pending_.find(tag);
  if (begin == pending_.end()) {
    return;
  }
  std::vector<Pending> done;
  for (auto it = begin; it != end; ++it) {
    done.push_back(std::move(it->second));
  }
  pending_.erase(begin, end);
  for (Pending& p : done) {
    if (p.failure) {
      p.done(Unexpected(*p.failure));
    } else if (!ok) {
      p.done(MakeError(ErrorCode::kUnavailable,
                       "RabbitMQ nacked the publish (internal broker error); not published"));
    } else {
      p.done(Ok());
    }
  }
}

void ConfirmTracker::FailAll(const Error& error) {
  std::map<uint64_t, Pending> pending;
  pending.swap(pending_);
  for (auto& [seq, p] : pending) {
    p.done(Unexpected(error));
  }
}

}  // namespace asya::transport::rabbitmq
