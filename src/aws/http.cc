#include "asya/aws/http.h"

#include <memory>
#include <mutex>

namespace asya::aws {
namespace {

struct Shared {
  std::mutex mu;
  std::shared_ptr<const http::Client> client;
};

Shared& GetShared() {
  static Shared s;
  return s;
}

std::shared_ptr<const http::Client> MakeClient(http::TlsOptions tls) {
  return std::make_shared<const http::Client>(
      http::ClientOptions{.timeout = http::Millis(30'000),
                          .connect_timeout = http::Millis(5'000),
                          .tls = std::move(tls)});
}

}  // namespace

void ConfigureTls(http::TlsOptions tls) {
  auto client = MakeClient(std::move(tls));
  Shared& s = GetShared();
  std::lock_guard lock(s.mu);
  s.client = std::move(client);
}

Result<HttpResponse> Perform(const HttpRequest& request, CancelToken* cancel) {
  std::shared_ptr<const http::Client> client;
  {
    Shared& s = GetShared();
    std::lock_guard lock(s.mu);
    if (!s.client) {
      s.client = MakeClient({});
    }
    client = s.client;
  }
  return client->Do(request, cancel);
}

}  // namespace asya::aws
