// The shared transport contract suite: every Transport implementation runs the same cases.
//
// To run the suite against a transport, write one file (e.g. rabbitmq_contract_test.cc):
//
//   #include "contract/transport_fixture.h"
//   class RabbitMqFixture : public asya::transport::contract::TransportFixture {
//     Status Start() override { /* start a throw-away broker */ }
//     void Stop() override { /* stop it */ }
//     Result<TransportPtr> Connect() override { /* MakeRabbitMqTransport(...) */ }
//     Capabilities Caps() const override { Capabilities c; c.visibility_timeout = false; ...}
//   };
//   INSTANTIATE_TEST_SUITE_P(RabbitMq, TransportContract,
//       ::testing::Values(ContractParam{"rabbitmq", [] { return
//       std::make_unique<RabbitMqFixture>(); }}), ContractParamName);
//
// and register it in tests/contract/CMakeLists.txt:
//
//   asya_test(NAME rabbitmq_contract_test SRCS rabbitmq_contract_test.cc
//             DEPS asya_transport_contract asya::transport_rabbitmq LABELS contract)
//
// (`asya_transport_contract` is an OBJECT library holding the TEST_Ps, so they are always linked.)
// One fixture instance per ContractParam name is created per test process, started before the
// first case that uses it and stopped after the last (a broker starts once per process).
// Each case uses fresh, uniquely named queues ("asya-ct<pid>x<n>...") and deletes them after.
#pragma once

#include <functional>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "asya/base/result.h"
#include "asya/transport/transport.h"

namespace asya::transport::contract {

// What a transport can do; cases that need a missing capability are skipped (GTEST_SKIP) with
// the capability's name in the message.
struct Capabilities {
  bool visibility_timeout = true;      // an unacked message reappears after its visibility timeout
  bool extend_visibility = true;       // ExtendVisibility() keeps it hidden longer
  bool delivery_count = true;          // delivery_count is exact: 1, then +1 per redelivery
  bool nack_delay = true;              // Nack(delay) hides the message for `delay`
  bool binary_bodies = true;           // any byte sequence (SQS: valid Unicode text only)
  size_t max_body_bytes = 1 << 20;     // largest body the suite publishes
  bool fifo_order = true;              // a single consumer sees publish order
  bool exact_batch = true;             // Receive(max_messages=n) with >= n ready returns n at once
  bool depth_inflight = true;          // Depth().inflight counts received-but-unacked messages
  bool stale_receipt_rejected = true;  // Ack with a receipt superseded by a redelivery fails
  bool receive_missing_queue_fails = true;  // Receive on a missing queue -> kNotFound
  // Two consumers never receive the same message (SQS standard queues are at-least-once and may
  // hand one message to two consumers; moto does so under concurrent receives). When false, the
  // concurrent-consumer cases only require every message to arrive at least once.
  bool exclusive_receive = true;
  Millis visibility{Millis(1000)};  // the short visibility timeout the timing cases use
  // PublishAndAck() is one atomic step: a failure publishes nothing (SQLite: one transaction).
  bool atomic_settle = false;
  // Requeue() does not count the returned delivery (SQLite).
  bool uncounted_requeue = false;
};

class TransportFixture {
 public:
  virtual ~TransportFixture() = default;
  // Starts the backend (broker, server, temp directory). Called once, before the first Connect().
  virtual Status Start() = 0;
  // Stops the backend. Called once, after the last case of the process.
  virtual void Stop() {}
  // A new transport with its own connection to the same backend; called many times (concurrent
  // consumer cases use several at once).
  virtual Result<TransportPtr> Connect() = 0;
  [[nodiscard]] virtual Capabilities Caps() const { return {}; }
};

struct ContractParam {
  std::string name;  // test-name suffix, [A-Za-z0-9_]
  std::function<std::unique_ptr<TransportFixture>()> make_fixture;
};

inline std::ostream& operator<<(std::ostream& os, const ContractParam& p) {
  return os << p.name;
}
inline std::string ContractParamName(const ::testing::TestParamInfo<ContractParam>& info) {
  return info.param.name;
}

// The fixture of every case (the TEST_Ps live in transport_contract_test.cc).
class TransportContract : public ::testing::TestWithParam<ContractParam> {
 protected:
  void SetUp() override;
  void TearDown() override;

  // The shared, started fixture of this parameter.
  TransportFixture& fixture() { return *fixture_; }
  const Capabilities& caps() const { return caps_; }
  // The transport of this case (connected in SetUp).
  Transport& transport() { return *transport_; }
  // Another connection to the same backend; closed at the end of the case.
  Transport& Connect();
  // A new, uniquely named queue, created with `options`; deleted (with its DLQ) in TearDown.
  std::string NewQueue(const QueueOptions& options = {.create_dlq = false});
  // Receives until `count` messages arrived or `wait` passed; fails the case on errors.
  std::vector<Message> ReceiveN(Transport& t, const std::string& queue, size_t count,
                                Millis wait = Millis(10'000), Millis visibility = Millis(60'000));

 private:
  TransportFixture* fixture_ = nullptr;
  Capabilities caps_;
  TransportPtr transport_;
  std::vector<TransportPtr> extra_;
  std::vector<std::string> queues_;
};

}  // namespace asya::transport::contract
