// `asya`: the command-line tool. Each command group lives in its own file.
#include <cstdio>
#include <string_view>

#include "asya/base/exit_codes.h"
#include "bin/asya/commands.h"
#include "bin/common/env.h"

namespace {

void Usage(std::FILE* to) {
  std::fputs(
      "usage: asya <command> [args]      (asya <command> --help for its flags)\n"
      "\n"
      "local mesh (state dir: --state-dir, ASYA_STATE_DIR, default .asya):\n"
      "  up PATH... [--transport T] [--detach] [--prune]   run actors from AsyncActor manifests\n"
      "  down                                    stop a detached mesh\n"
      "  get actors [-o wide|json]               status table\n"
      "  describe actor NAME                     one actor in detail\n"
      "  logs ACTOR [-f]                         an actor's logs\n"
      "  send ROUTE PAYLOAD [--wait]             publish a new envelope\n"
      "\n"
      "queues (any transport; reads ASYA_TRANSPORT, ASYA_SQLITE_PATH, ASYA_RABBITMQ_*, SQS vars):\n"
      "  queue list|depth|publish|get|purge ...\n"
      "\n"
      "gateway (--url, ASYA_GATEWAY_URL, default: the local mesh's; --token, ASYA_GATEWAY_CLIENT_TOKEN):\n"
      "  list | show TOOL                        tools and their parameters\n"
      "  call TOOL [JSON | --name value ...]     run a tool; progress on stderr, result on stdout\n"
      "  status ID | stream ID                   an envelope's state / its live updates\n"
      "\n"
      "reliability:\n"
      "  check --envelopes N [--transport T] [--faults LIST] [--duration S] [--seed S]\n"
      "                                          no-loss checker under injected faults\n"
      "\n"
      "kubernetes (offline):\n"
      "  render PATH... [-n NS] [--operator-config FILE] [-o yaml|json]   objects the operator "
      "applies\n"
      "\n"
      "shell:\n"
      "  completion bash                         bash completion script\n"
      "\n",
      to);
  std::fprintf(to,
               "%s\n"
               "\n"
               "Examples:\n"
               "  asya up examples/text-pipeline/manifests --detach\n"
               "  asya send normalize,split,sentiment,triage '{\"text\": \"Great tea.\"}' "
               "--wait\n",
               asya::exit_code::kHelpTable);
}

}  // namespace

int main(int argc, char** argv) {
  asya::env::RegisterSecretsFromEnvironment();  // no secret in any log line or error
  if (argc < 2) {
    Usage(stderr);
    return asya::exit_code::kUsage;
  }
  std::string_view cmd = argv[1];
  if (cmd == "queue") {
    return asya::cli::RunQueue(argc - 1, argv + 1);
  }
  if (cmd == "up" || cmd == "down" || cmd == "get" || cmd == "describe" || cmd == "logs" ||
      cmd == "send") {
    return asya::cli::RunLocal(argc - 1, argv + 1);
  }
  if (cmd == "list" || cmd == "show" || cmd == "call" || cmd == "status" || cmd == "stream") {
    return asya::cli::RunGateway(argc - 1, argv + 1);
  }
  if (cmd == "check") {
    return asya::cli::RunCheck(argc - 1, argv + 1);
  }
  if (cmd == "render") {
    return asya::cli::RunRender(argc - 1, argv + 1);
  }
  if (cmd == "completion") {
    return asya::cli::RunCompletion(argc - 1, argv + 1);
  }
  if (cmd == "-h" || cmd == "--help" || cmd == "help") {
    Usage(stdout);
    return asya::exit_code::kOk;
  }
  std::fprintf(stderr, "asya: unknown command '%s'\n", argv[1]);
  Usage(stderr);
  return asya::exit_code::kUsage;
}
