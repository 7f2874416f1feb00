// Placeholder until the local mesh commands land.
#include <cstdio>

#include "bin/asya/commands.h"

namespace asya::cli {

int RunLocal(int /*argc*/, char** /*argv*/) {
  std::fputs("asya: local mesh commands are not built yet\n", stderr);
  return 1;
}

}  // namespace asya::cli
