// The hand-off between callers and the I/O thread that owns the AMQP connection (librabbitmq is
// not thread-safe). Callers queue a Command (a closure) or, for Ack(), a bare PendingAck, and
// wake the I/O thread through an eventfd; a Slot<T> carries a command's result back to the
// caller that waits for it.
//
// Contract:
// - Submit()/SubmitAck() are thread-safe. Only the caller that finds the queue empty writes the
//   eventfd: the I/O thread takes everything at once (Take) and checks Idle() before it sleeps,
//   so one wake-up serves a whole batch.
// - Every queued Command ends exactly once: `run` on the I/O thread while connected, or `cancel`
//   when the transport shuts down before running it (TakeAllCommands).
// - A Slot's result is set once (later Set calls are ignored). A caller that stops waiting marks
//   the slot abandoned; Begin() then tells the I/O thread to skip the work.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>
#include <vector>

#include "asya/base/result.h"
#include "transport/rabbitmq/rules.h"

namespace asya::transport::rabbitmq {

struct Command {
  std::function<void()> run;                 // on the I/O thread, while connected
  std::function<void(const Error&)> cancel;  // when the transport shuts down first
};

// Outcome of a command, shared by the waiting caller and the I/O thread.
template <typename T>
struct Slot {
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  bool abandoned = false;
  std::optional<Result<T>> result;

  // False when the caller already gave up: the I/O thread then skips the work.
  bool Begin() {
    std::lock_guard lock(mu);
    return !abandoned;
  }
  // Notifies after unlocking, so the woken caller does not block again on `mu` (the setter holds
  // a reference to the slot, so it outlives the notify).
  void Set(Result<T> r) {
    {
      std::lock_guard lock(mu);
      if (done) {
        return;
      }
      result = std::move(r);
      done = true;
    }
    cv.notify_all();
  }
  // Waits up to `timeout` for the result; on timeout marks the slot abandoned and returns
  // nullopt.
  std::optional<Result<T>> WaitFor(Millis timeout) {
    std::unique_lock lock(mu);
    if (!cv.wait_for(lock, timeout, [&] { return done; })) {
      abandoned = true;
      return std::nullopt;
    }
    return std::move(*result);
  }
};

class CommandQueue {
 public:
  CommandQueue() = default;
  ~CommandQueue();
  CommandQueue(const CommandQueue&) = delete;
  CommandQueue& operator=(const CommandQueue&) = delete;

  // Creates the eventfd; kInternal when the kernel refuses.
  Status Open();
  // The eventfd the I/O thread polls (readable after a wake-up); -1 before Open().
  int wake_fd() const { return wake_fd_; }

  void Submit(Command command);
  void SubmitAck(PendingAck ack);
  // Wakes the I/O thread (also used to stop it).
  void Wake() const;
  // Consumes a pending wake-up (after poll() said the eventfd is readable).
  void ClearWake() const;

  // I/O thread: takes every queued command and ack.
  void Take(std::deque<Command>* commands, std::vector<PendingAck>* acks);
  // I/O thread: puts commands it could not run (connection lost) back at the front, in order.
  void PutBack(std::deque<Command>::iterator begin, std::deque<Command>::iterator end);
  // I/O thread: true when nothing is queued (then it may sleep until the eventfd is readable).
  bool Idle();
  // I/O thread at shutdown: the commands that never ran (to cancel them).
  std::deque<Command> TakeAllCommands();

 private:
  int wake_fd_ = -1;
  std::mutex mu_;
  std::deque<Command> commands_;
  std::vector<PendingAck> acks_;  // Ack() calls not yet written (sent together, see SendAcks)
};

}  // namespace asya::transport::rabbitmq
