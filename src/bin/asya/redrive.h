// `asya queue redrive ACTOR`: moves dead letters from asya-ACTOR-dlq back to asya-ACTOR.
//
// Each message is published to asya-ACTOR as a new message (exact body; a fresh delivery count:
// the transport headers that count deliveries are dropped) that keeps the dead-letter reason in
// `x-asya-dlq-reason` (and the deliveries it had in `x-asya-dlq-deliveries`) and carries the
// dead letter's broker message id in `x-asya-redrive-id`; only then is the dead letter deleted.
// - sqlite: publish and delete are one transaction (Transport::PublishAndAck): an interruption
//   at any point moves a message entirely or not at all.
// - RabbitMQ, SQS: publish (confirmed), then a journal line "P <id>" (fsync'ed), then the delete,
//   then "D <id>". A dead letter whose id the journal lists as published is deleted without being
//   published again, so a re-run after a kill between publish and delete does not duplicate it.
//   Only a kill between the broker's confirm and the journal write (no await in between) can,
//   on a re-run, publish that one message a second time; nothing is ever lost.
// Moves at most the DLQ's ready count at the start (so messages dead-lettered again meanwhile
// wait for the next run) and at most `limit`.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "asya/transport/transport.h"

namespace asya::cli {

struct RedriveOptions {
  std::string actor;
  std::optional<int64_t> limit;                             // --limit N (N >= 1)
  transport::Millis visibility{transport::Millis(60'000)};  // hides a message being moved
  std::string journal_path;                                 // RabbitMQ/SQS only
  bool json_output = false;
  // Test hook (ASYA_TEST_REDRIVE_EXIT_AFTER_PUBLISH): _Exit(137) right after the n-th publish
  // and its journal line, before the dead letter is deleted (a kill between publish and delete).
  int64_t exit_after_publish = 0;
};

// Runs the redrive; returns the exit code (exit_codes.h) after printing the result or the error.
int Redrive(transport::Transport& t, const RedriveOptions& options);

}  // namespace asya::cli
