// The transport contract suite on the sqlite transport (a fresh database file per process).
#include <cstdlib>
#include <filesystem>
#include <memory>

#include "asya/transport/sqlite.h"
#include "contract/transport_fixture.h"
#include "support/temp_dir.h"

namespace asya::transport::contract {
namespace {

class SqliteFixture : public TransportFixture {
 public:
  Status Start() override {
    dir_ = std::make_unique<asya::test::TempDir>("asya-sqlite-ct");
    return Ok();
  }
  void Stop() override { dir_.reset(); }
  Result<TransportPtr> Connect() override {
    SqliteSettings s;
    s.path = dir_->File("queues.db");
    return MakeSqliteTransport(s);
  }
  [[nodiscard]] Capabilities Caps() const override {
    Capabilities c;
    c.atomic_settle = true;      // PublishAndAck is one transaction
    c.uncounted_requeue = true;  // Requeue gives the delivery back
    return c;
  }

 private:
  std::unique_ptr<asya::test::TempDir> dir_;
};

INSTANTIATE_TEST_SUITE_P(Sqlite, TransportContract,
                         ::testing::Values(ContractParam{
                             "sqlite", [] { return std::make_unique<SqliteFixture>(); }}),
                         ContractParamName);

}  // namespace
}  // namespace asya::transport::contract
