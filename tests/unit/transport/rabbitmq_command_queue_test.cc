// The caller -> I/O thread hand-off (src/transport/rabbitmq/command_queue.h), without a broker:
// one wake-up per batch, order kept, put-back first, result slots set once.
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <poll.h>

#include <gtest/gtest.h>

#include "transport/rabbitmq/command_queue.h"

namespace asya::transport::rabbitmq {
namespace {

bool Readable(int fd) {
  pollfd p{fd, POLLIN, 0};
  return poll(&p, 1, 0) == 1 && (p.revents & POLLIN) != 0;
}

Command Record(std::vector<std::string>* log, std::string name) {
  return Command{
      [log, name] { log->push_back("run " + name); },
      [log, name](const Error& e) { log->push_back("cancel " + name + ": " + e.message); }};
}

TEST(RabbitMqCommandQueue, OnlyTheFirstSubmitOfABatchWakes) {
  CommandQueue q;
  ASSERT_TRUE(q.Open().has_value());
  ASSERT_GE(q.wake_fd(), 0);
  EXPECT_TRUE(q.Idle());
  EXPECT_FALSE(Readable(q.wake_fd()));
  std::vector<std::string> log;
  q.Submit(Record(&log, "a"));
  EXPECT_TRUE(Readable(q.wake_fd()));
  q.ClearWake();
  q.Submit(Record(&log, "b"));  // the queue was not empty: no second wake-up
  q.SubmitAck(PendingAck{3, 1, 9});
  EXPECT_FALSE(Readable(q.wake_fd()));
  EXPECT_FALSE(q.Idle());

  std::deque<Command> batch;
  std::vector<PendingAck> acks;
  q.Take(&batch, &acks);
  EXPECT_TRUE(q.Idle());
  ASSERT_EQ(batch.size(), 2u);
  ASSERT_EQ(acks.size(), 1u);
  EXPECT_EQ(acks[0].tag, 9u);
  for (Command& c : batch) {
    c.run();
  }
  EXPECT_EQ(log, (std::vector<std::string>{"run a", "run b"}));

  q.SubmitAck(PendingAck{3, 1, 10});  // an ack alone wakes an idle queue too
  EXPECT_TRUE(Readable(q.wake_fd()));
}

TEST(RabbitMqCommandQueue, PutBackRunsBeforeNewerCommandsAndShutdownCancelsTheRest) {
  CommandQueue q;
  ASSERT_TRUE(q.Open().has_value());
  std::vector<std::string> log;
  q.Submit(Record(&log, "1"));
  q.Submit(Record(&log, "2"));
  q.Submit(Record(&log, "3"));
  std::deque<Command> batch;
  std::vector<PendingAck> acks;
  q.Take(&batch, &acks);
  batch[0].run();
  q.Submit(Record(&log, "4"));  // arrives while the connection drops after command 1
  q.PutBack(batch.begin() + 1, batch.end());
  std::deque<Command> rest = q.TakeAllCommands();
  EXPECT_TRUE(q.Idle());
  for (Command& c : rest) {
    c.cancel(Error{ErrorCode::kCancelled, "shutting down"});
  }
  EXPECT_EQ(log, (std::vector<std::string>{"run 1", "cancel 2: shutting down",
                                           "cancel 3: shutting down", "cancel 4: shutting down"}));
}

TEST(RabbitMqCommandQueue, SlotKeepsTheFirstResultAndTimesOutAsAbandoned) {
  auto slot = std::make_shared<Slot<int>>();
  std::thread io([slot] {
    if (slot->Begin()) {
      slot->Set(41);
      slot->Set(MakeError(ErrorCode::kInternal, "late"));  // ignored
    }
  });
  auto r = slot->WaitFor(Millis(60'000));
  io.join();
  ASSERT_TRUE(r.has_value());
  ASSERT_TRUE(r->has_value());
  EXPECT_EQ(**r, 41);

  auto lonely = std::make_shared<Slot<void>>();
  EXPECT_FALSE(lonely->WaitFor(Millis(0)).has_value());
  EXPECT_FALSE(lonely->Begin()) << "the I/O thread must skip work nobody waits for";
}

}  // namespace
}  // namespace asya::transport::rabbitmq
