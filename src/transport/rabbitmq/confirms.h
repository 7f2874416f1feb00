// Publisher-confirm bookkeeping of the publish channel: which publishes wait for the broker's
// basic.ack/basic.nack, and how each one ends. Pure (no connection, no locking: only the I/O
// thread uses it), so it is unit-tested without a broker (tests/unit/transport).
//
// Contract:
// - Reserve() hands out the channel's confirm sequence numbers 1, 2, 3, ... (the numbering the
//   broker uses after confirm.select); Reset() restarts it for a new publish channel.
// - Add(seq, done) registers a publish that was written; `done` runs exactly once: on its confirm
//   (Ok), its nack (kUnavailable "not published"), or FailAll(error).
// - MarkUnroutable(seq, error): a basic.return for that publish (it always precedes the
//   publish's ack): its confirm then ends it with `error` instead of Ok.
// - Resolve(tag, multiple, ok): a basic.ack/nack; `multiple` ends every publish up to tag.
// - Callbacks run after the tracker dropped the entries, so a callback may Add() new publishes.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>

#include "asya/base/result.h"

namespace asya::transport::rabbitmq {

class ConfirmTracker {
 public:
  using Done = std::function<void(Status)>;

  uint64_t Reserve() { return ++last_seq_; }
  void Reset() { last_seq_ = 0; }
  void Add(uint64_t seq, Done done);
  // False when no publish with that number waits (e.g. it was already failed).
  bool MarkUnroutable(uint64_t seq, Error error);
  void Resolve(uint64_t tag, bool multiple, bool ok);
  void FailAll(const Error& error);
  size_t waiting() const { return pending_.size(); }

 private:
  struct Pending {
    Done done;
    std::optional<Error> failure;  // set by basic.return (unroutable)
  };
  uint64_t last_seq_ = 0;
  std::map<uint64_t, Pending> pending_;
};

}  // namespace asya::transport::rabbitmq
