// asya-crew: runtime of the end actors happy-end and error-end (envelope mode).
//
// Environment (besides the SDK's ASYA_SOCKET_DIR, ASYA_RUNTIME_CONCURRENCY, ...):
//   ASYA_CREW_DIR     directory the envelopes are written under (required)
//   ASYA_CREW_PREFIX  key prefix (default `happy-asya/`; `asya up` sets `results/` or `errors/`)
// Each envelope is written to <ASYA_CREW_DIR>/<prefix><timestamp>/<last_actor>/<id>.json. The
// handler returns no output; the end-actor sidecar acks the message. A message that cannot be
// stored (no id, disk error) is reported as a processing_error so the sidecar's end-actor policy
// applies (it is never lost silently).
#include <cstdio>
#include <string>

#include "asya/base/crew_layout.h"
#include "asya/base/env_names.h"
#include "asya/base/log.h"
#include "asya/runtime/serve.h"
#include "bin/common/env.h"
#include "bin/crew/crew_store.h"

int main() {
  auto dir = asya::env::Get(asya::env_name::kCrewDir);
  if (!dir) {
    std::fputs("asya-crew: ASYA_CREW_DIR is required (directory to store envelopes in)\n", stderr);
    return 1;
  }
  const std::string root = *dir;
  const std::string prefix =
      asya::env::GetOr(asya::env_name::kCrewPrefix, asya::crew_layout::kDefaultPrefix);
  auto handler = asya::runtime::Handler::Envelope([root, prefix](nlohmann::json envelope) {
    auto key = asya::crew::MakeKey(envelope, prefix, std::chrono::system_clock::now());
    if (!key) {
      throw asya::runtime::HandlerError{"ValueError", key.error().message};
    }
    if (auto st = asya::crew::Store(root, *key, envelope); !st) {
      throw asya::runtime::HandlerError{"OSError", st.error().message};
    }
    asya::log::Debug("stored envelope", {{"key", *key}});
    return nlohmann::json(nullptr);
  });
  return asya::runtime::Serve(std::move(handler));
}
