// asya-echo-runtime: returns the payload unchanged (payload mode). Used by the benchmarks and as
// the smallest complete example of the C++ handler SDK.
#include "asya/runtime/serve.h"

namespace {

asya::runtime::Outputs Echo(const asya::runtime::Request& request) {
  return request.payload();  // raw JSON text in, the same text out
}

}  // namespace

int main() {
  return asya::runtime::Serve(Echo);
}
