// Publisher-confirm bookkeeping (src/transport/rabbitmq/confirms.h), without a broker.
#include <map>
#include <string>

#include <gtest/gtest.h>

#include "transport/rabbitmq/confirms.h"

namespace asya::transport::rabbitmq {
namespace {

// Records how each publish ended: "ok", or the error code and message.
class Outcomes {
 public:
  ConfirmTracker::Done For(uint64_t seq) {
    return [this, seq](Status s) {
      EXPECT_EQ(ended_.count(seq), 0u) << "publish " << seq << " ended twice";
      ended_[seq] = s ? std::string("ok") : s.error().ToString();
      if (!s) {
        codes_[seq] = s.error().code;
      }
    };
  }
  bool Ended(uint64_t seq) const { return ended_.count(seq) != 0; }
  const std::string& Text(uint64_t seq) { return ended_.at(seq); }
  ErrorCode Code(uint64_t seq) { return codes_.at(seq); }  // of a publish that failed
  size_t size() const { return ended_.size(); }

 private:
  std::map<uint64_t, std::string> ended_;
  std::map<uint64_t, ErrorCode> codes_;
};

TEST(RabbitMqConfirms, SequenceNumbersRestartOnANewChannel) {
  ConfirmTracker t;
  EXPECT_EQ(t.Reserve(), 1u);
  EXPECT_EQ(t.Reserve(), 2u);
  t.Reset();
  EXPECT_EQ(t.Reserve(), 1u);
}

TEST(RabbitMqConfirms, SingleAndMultipleAcksEndExactlyTheirPublishes) {
  ConfirmTracker t;
  Outcomes o;
  for (int i = 0; i < 5; ++i) {
    uint64_t seq = t.Reserve();
    t.Add(seq, o.For(seq));
  }
  t.Resolve(2, /*multiple=*/false, /*ok=*/true);
  EXPECT_TRUE(o.Ended(2));
  EXPECT_FALSE(o.Ended(1));
  t.Resolve(4, /*multiple=*/true, /*ok=*/true);  // 1, 3, 4 (2 is gone already)
  EXPECT_TRUE(o.Ended(1));
  EXPECT_TRUE(o.Ended(3));
  EXPECT_TRUE(o.Ended(4));
  EXPECT_FALSE(o.Ended(5));
  EXPECT_EQ(t.waiting(), 1u);
  t.Resolve(4, /*multiple=*/false, /*ok=*/true);  // a repeated confirm changes nothing
  t.Resolve(9, /*multiple=*/false, /*ok=*/true);  // an unknown one neither
  EXPECT_EQ(o.size(), 4u);
  for (uint64_t seq : {1, 2, 3, 4}) {
    EXPECT_EQ(o.Text(seq), "ok");
  }
}

TEST(RabbitMqConfirms, NackMeansNotPublished) {
  ConfirmTracker t;
  Outcomes o;
  uint64_t a = t.Reserve();
  t.Add(a, o.For(a));
  t.Resolve(a, false, /*ok=*/false);
  EXPECT_EQ(o.Code(a), ErrorCode::kUnavailable);
  EXPECT_NE(o.Text(a).find("not published"), std::string::npos) << o.Text(a);
}

TEST(RabbitMqConfirms, AReturnedPublishFailsWithItsReasonEvenWhenAcked) {
  ConfirmTracker t;
  Outcomes o;
  uint64_t a = t.Reserve();
  uint64_t b = t.Reserve();
  t.Add(a, o.For(a));
  t.Add(b, o.For(b));
  EXPECT_TRUE(t.MarkUnroutable(a, Error{ErrorCode::kNotFound, "no route for a"}));
  EXPECT_FALSE(t.MarkUnroutable(42, Error{ErrorCode::kNotFound, "unknown"}));
  t.Resolve(b, /*multiple=*/true, /*ok=*/true);
  EXPECT_EQ(o.Code(a), ErrorCode::kNotFound);
  EXPECT_NE(o.Text(a).find("no route for a"), std::string::npos);
  EXPECT_EQ(o.Text(b), "ok");
}

TEST(RabbitMqConfirms, FailAllEndsEveryWaitingPublishOnce) {
  ConfirmTracker t;
  Outcomes o;
  for (int i = 0; i < 3; ++i) {
    uint64_t seq = t.Reserve();
    t.Add(seq, o.For(seq));
  }
  t.FailAll(Error{ErrorCode::kUnavailable, "connection lost"});
  EXPECT_EQ(o.size(), 3u);
  EXPECT_EQ(o.Code(2), ErrorCode::kUnavailable);
  EXPECT_EQ(t.waiting(), 0u);
  t.FailAll(Error{ErrorCode::kUnavailable, "again"});  // nothing left to fail twice
  t.Resolve(3, true, true);
  EXPECT_EQ(o.size(), 3u);
}

// A callback may publish again (a give-back or counted copy chains publishes): the new entry
// must survive the Resolve/FailAll that ran the callback.
TEST(RabbitMqConfirms, CallbacksMayAddPublishes) {
  ConfirmTracker t;
  Outcomes o;
  uint64_t first = t.Reserve();
  uint64_t chained = 0;
  t.Add(first, [&](Status s) {
    ASSERT_TRUE(s.has_value());
    chained = t.Reserve();
    t.Add(chained, o.For(chained));
  });
  t.Resolve(first, /*multiple=*/true, /*ok=*/true);
  ASSERT_EQ(chained, 2u);
  EXPECT_EQ(t.waiting(), 1u);
  uint64_t next = 0;
  t.Add(t.Reserve(), [&](Status) {
    next = t.Reserve();
    t.Add(next, o.For(next));
  });
  t.FailAll(Error{ErrorCode::kUnavailable, "channel closed"});
  EXPECT_EQ(o.Code(chained), ErrorCode::kUnavailable);
  EXPECT_EQ(t.waiting(), 1u) << "a publish added by a FailAll callback was dropped";
  EXPECT_FALSE(o.Ended(next));
}

}  // namespace
}  // namespace asya::transport::rabbitmq
