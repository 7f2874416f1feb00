// The child side of starting a mesh process (replica sidecar/runtime, the gateway, the services
// `asya check` starts): shared so every child is set up the same way.
#pragma once

#include <string>
#include <vector>

#include <sys/types.h>

namespace asya::local {

// argv/envp as execvpe wants them, built in the parent before fork (the child of a threaded
// process may only make async-signal-safe calls). The vectors point into `strings`.
struct ExecArgs {
  std::vector<std::string> argv_strings;
  std::vector<std::string> env_strings;
  std::vector<char*> argv;
  std::vector<char*> envp;
};
ExecArgs MakeExecArgs(std::vector<std::string> argv, std::vector<std::string> env);

// In the forked child: own process group, dies with `parent`, default signal mask and SIGPIPE,
// stdin from /dev/null, stdout+stderr to `out_fd`, working directory `cwd` (unchanged when empty),
// then exec. On failure writes "asya up: cannot <what>: <argv[0]>" to stderr and exits 127.
// Async-signal-safe only.
[[noreturn]] void ExecChild(const ExecArgs& args, const char* cwd, int out_fd, pid_t parent);

}  // namespace asya::local
