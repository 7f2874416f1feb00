#include "asya/local/spawn.h"

#include <csignal>
#include <cstring>

#include <fcntl.h>
#include <sys/prctl.h>
#include <unistd.h>

namespace asya::local {

ExecArgs MakeExecArgs(std::vector<std::string> argv, std::vector<std::string> env) {
  ExecArgs a;
  a.argv_strings = std::move(argv);
  a.env_strings = std::move(env);
  for (auto& s : a.argv_strings) {
    a.argv.push_back(s.data());
  }
  a.argv.push_back(nullptr);
  for (auto& s : a.env_strings) {
    a.envp.push_back(s.data());
  }
  a.envp.push_back(nullptr);
  return a;
}

namespace {
void WriteErr(const char* text) {
  (void)!::write(2, text, std::strlen(text));
}
}  // namespace

void ExecChild(const ExecArgs& args, const char* cwd, int out_fd, pid_t parent) {
  ::setpgid(0, 0);
  ::prctl(PR_SET_PDEATHSIG, SIGTERM);
  if (::getppid() != parent) {
    ::_exit(127);
  }
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  ::signal(SIGPIPE, SIG_DFL);
  int devnull = ::open("/dev/null", O_RDONLY);
  if (devnull >= 0) {
    ::dup2(devnull, 0);
  }
  ::dup2(out_fd, 1);
  ::dup2(out_fd, 2);
  if (cwd[0] != '\0' && ::chdir(cwd) != 0) {
    WriteErr("asya up: cannot change to the directory ");
    WriteErr(cwd);
    WriteErr("\n");
    ::_exit(127);
  }
  ::execvpe(args.argv[0], args.argv.data(), args.envp.data());
  WriteErr("asya up: cannot execute ");
  WriteErr(args.argv[0]);
  WriteErr("\n");
  ::_exit(127);
}

}  // namespace asya::local
