// The transport contract suite on the sqs transport against a real moto_server (one per process).
#include "asya/transport/sqs.h"
#include "contract/transport_fixture.h"
#include "unit/sqs/moto_server.h"

namespace asya::transport::contract {
namespace {

class SqsFixture : public TransportFixture {
 public:
  Status Start() override {
    if (!moto_.Start()) {
      return MakeError(ErrorCode::kUnavailable, moto_.error());
    }
    return Ok();
  }
  void Stop() override { moto_.Stop(); }
  Result<TransportPtr> Connect() override {
    SqsSettings s;
    s.endpoint = moto_.endpoint();
    s.access_key_id = "test";
    s.secret_access_key = "test";
    s.queue_retry_max_attempts = 1;  // a missing queue is reported at once
    return MakeSqsTransport(s);
  }
  [[nodiscard]] Capabilities Caps() const override {
    Capabilities c;
    c.binary_bodies = false;           // SQS carries Unicode text only
    c.max_body_bytes = 256 * 1024;     // the SQS message size limit
    c.fifo_order = false;              // standard queues do not promise order
    c.exact_batch = false;             // ReceiveMessage may return fewer than asked
    c.stale_receipt_rejected = false;  // moto (and AWS, at times) accepts stale receipts
    c.exclusive_receive = false;       // standard queues are at-least-once
    c.visibility = Millis(1000);       // SQS visibility has 1 s granularity
    return c;
  }

 private:
  asya::test::MotoServer moto_;
};

INSTANTIATE_TEST_SUITE_P(Sqs, TransportContract,
                         ::testing::Values(ContractParam{
                             "sqs", [] { return std::make_unique<SqsFixture>(); }}),
                         ContractParamName);

}  // namespace
}  // namespace asya::transport::contract
