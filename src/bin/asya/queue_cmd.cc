// Placeholder until `asya queue` lands.
#include <cstdio>

#include "bin/asya/commands.h"

namespace asya::cli {

int RunQueue(int /*argc*/, char** /*argv*/) {
  std::fputs("asya queue: not built yet\n", stderr);
  return 1;
}

}  // namespace asya::cli
