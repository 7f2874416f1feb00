// The transport contract suite on the sqlite transport (a fresh database file per process).
#include <cstdlib>
#include <filesystem>

#include "asya/transport/sqlite.h"
#include "contract/transport_fixture.h"

namespace asya::transport::contract {
namespace {

class SqliteFixture : public TransportFixture {
 public:
  Status Start() override {
    char tmpl[] = "/tmp/asya-sqlite-ct-XXXXXX";
    if (::mkdtemp(tmpl) == nullptr) {
      return MakeError(ErrorCode::kInternal, "mkdtemp failed");
    }
    dir_ = tmpl;
    return Ok();
  }
  void Stop() override {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  Result<TransportPtr> Connect() override {
    SqliteSettings s;
    s.path = dir_ + "/queues.db";
    return MakeSqliteTransport(s);
  }
  [[nodiscard]] Capabilities Caps() const override {
    Capabilities c;
    c.atomic_settle = true;      // PublishAndAck is one transaction
    c.uncounted_requeue = true;  // Requeue gives the delivery back
    return c;
  }

 private:
  std::string dir_;
};

INSTANTIATE_TEST_SUITE_P(Sqlite, TransportContract,
                         ::testing::Values(ContractParam{
                             "sqlite", [] { return std::make_unique<SqliteFixture>(); }}),
                         ContractParamName);

}  // namespace
}  // namespace asya::transport::contract
