// Transport kinds: the values of ASYA_TRANSPORT, `--transport`, desired.json's "transport" and
// TransportSettings::kind (DESIGN §4 precise 9). One spelling for the factory, the sidecar, the
// CLI and the supervisor.
#pragma once

#include <string_view>

namespace asya::transport_kind {

inline constexpr char kSqlite[] = "sqlite";
inline constexpr char kRabbitmq[] = "rabbitmq";
inline constexpr char kSqs[] = "sqs";

// Every kind, in the order error messages list them.
inline constexpr const char* kAll[] = {kSqlite, kRabbitmq, kSqs};

inline constexpr bool IsKnown(std::string_view kind) {
  for (std::string_view k : kAll) {
    if (k == kind) {
      return true;
    }
  }
  return false;
}

}  // namespace asya::transport_kind
