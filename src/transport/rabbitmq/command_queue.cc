#include "transport/rabbitmq/command_queue.h"

#include <iterator>

#include <sys/eventfd.h>
#include <unistd.h>

namespace asya::transport::rabbitmq {

CommandQueue::~CommandQueue() {
  if (wake_fd_ >= 0) {
    close(wake_fd_);
  }
}

Status CommandQueue::Open() {
  wake_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (wake_fd_ < 0) {
    return MakeError(ErrorCode::kInternal, "eventfd failed");
  }
  return Ok();
}

void CommandQueue::Submit(Command command) {
  bool wake = false;
  {
    std::lock_guard lock(mu_);
    wake = commands_.empty() && acks_.empty();
    commands_.push_back(std::move(command));
  }
  if (wake) {
    Wake();
  }
}

void CommandQueue::SubmitAck(PendingAck ack) {
  bool wake = false;
  {
    std::lock_guard lock(mu_);
    wake = commands_.empty() && acks_.empty();
    acks_.push_back(ack);
  }
  if (wake) {
    Wake();
  }
}

void CommandQueue::Wake() const {
  uint64_t one = 1;
  if (wake_fd_ >= 0) {
    [[maybe_unused]] ssize_t n = write(wake_fd_, &one, sizeof(one));
  }
}

void CommandQueue::ClearWake() const {
  uint64_t v;
  [[maybe_unused]] ssize_t n = read(wake_fd_, &v, sizeof(v));
}

void CommandQueue::Take(std::deque<Command>* commands, std::vector<PendingAck>* acks) {
  std::lock_guard lock(mu_);
  commands->swap(commands_);
  acks->swap(acks_);
}

void CommandQueue::PutBack(std::deque<Command>::iterator begin, std::deque<Command>::iterator end) {
  std::lock_guard lock(mu_);
  commands_.insert(commands_.begin(), std::make_move_iterator(begin), std::make_move_iterator(end));
}

bool CommandQueue::Idle() {
  std::lock_guard lock(mu_);
  return commands_.empty() && acks_.empty();
}

std::deque<Command> CommandQueue::TakeAllCommands() {
  std::deque<Command> rest;
  std::lock_guard lock(mu_);
  rest.swap(commands_);
  return rest;
}

}  // namespace asya::transport::rabbitmq
