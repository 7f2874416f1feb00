#pragma once

namespace asya::cli {

// `asya queue ...`; argv[0] == "queue". Returns the process exit code.
int RunQueue(int argc, char** argv);
// `asya up|down|get|describe|logs|send ...`; argv[0] is the command.
int RunLocal(int argc, char** argv);
// `asya render ...`; argv[0] == "render".
int RunRender(int argc, char** argv);
// `asya completion bash`; argv[0] == "completion".
int RunCompletion(int argc, char** argv);
// `asya check ...` (the no-loss checker); argv[0] == "check".
int RunCheck(int argc, char** argv);
// `asya list|show|call|status|stream ...` (the gateway client); argv[0] is the command.
int RunGateway(int argc, char** argv);

}  // namespace asya::cli
