#include "asya/aws/http.h"

namespace asya::aws {

Result<HttpResponse> Perform(const HttpRequest& request, CancelToken* cancel) {
  static http::Client client(
      http::ClientOptions{.timeout = http::Millis(30'000), .connect_timeout = http::Millis(5'000)});
  return client.Do(request, cancel);
}

}  // namespace asya::aws
