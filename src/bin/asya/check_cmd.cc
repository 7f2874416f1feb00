// `asya check`: the no-loss checker (src/check, docs/reliability.md). This file only parses flags
// and the environment (the transport variables, as `asya queue` reads them).
//
// Transport: --transport (default sqlite). rabbitmq without ASYA_RABBITMQ_URL / _HOST set starts a
// throw-away broker; sqs without an endpoint (ASYA_SQS_ENDPOINT, AWS_ENDPOINT_URL_SQS,
// AWS_ENDPOINT_URL) starts moto_server.
// Exit codes: 0 nothing lost and nothing unexpected, 1 lost or unexpected outputs (or the check
// could not run), 2 usage.
#include <atomic>
#include <cstdio>
#include <filesystem>
#include <string>

#include <signal.h>
#include <unistd.h>

#include <CLI/CLI.hpp>

#include "asya/base/exit_codes.h"
#include "asya/check/check.h"
#include "bin/asya/commands.h"
#include "bin/common/env.h"
#include "bin/common/transport_env.h"

extern char** environ;

namespace asya::cli {

namespace {

std::atomic<bool> g_interrupted{false};

void OnSignal(int /*signum*/) {
  g_interrupted = true;
}

}  // namespace

int RunCheck(int argc, char** argv) {
  CLI::App app{
      "Run a pipeline under `asya up`, drive N numbered envelopes through it while injecting "
      "faults, and account for every expected output at happy-end, error-end or a dead-letter "
      "queue. Ends with `lost=L duplicated=D unexpected=U`; exit 0 only when L = U = 0.",
      "asya check"};
  check::Options o;
  std::string transport = "sqlite";
  std::string faults;
  std::string work_dir;
  app.add_option("--envelopes,-n", o.envelopes, "envelopes to send (default 1000)");
  app.add_option("--transport", transport,
                 "sqlite (default), rabbitmq (own broker unless ASYA_RABBITMQ_URL is set) or sqs "
                 "(moto_server unless an SQS endpoint is set)");
  app.add_option(
      "--faults", faults,
      "comma-separated: kill-sidecar, kill-runtime, stop-runtime, kill-all, disk-full (sqlite), "
      "broker-kill, broker-restart (rabbitmq), partition, partition-long, delay, loss (rabbitmq, "
      "sqs; root: the broker runs in a network namespace); default none");
  app.add_option("--duration", o.duration_s,
                 "seconds of fault injection (default: while envelopes are in flight)");
  app.add_option("--seed", o.seed, "fault schedule seed (default 1)");
  app.add_option("--fault-interval", o.fault_interval_s, "mean seconds between faults (2)");
  app.add_option("--rate", o.rate, "envelopes per second to publish (default: all at once)");
  app.add_option("--replicas", o.replicas, "replicas of each pipeline actor (1)");
  app.add_option("--concurrency", o.concurrency, "ASYA_SIDECAR_CONCURRENCY of each actor (2)");
  app.add_option("--quiet", o.quiet_s,
                 "settled after this many seconds with empty queues and no new output (6)");
  app.add_option("--timeout", o.timeout_s, "give up this long after the fault phase (600)");
  app.add_option("--work-dir", work_dir,
                 "keep state here (default: a temp dir in /dev/shm or /tmp, removed)");
  app.add_flag("--keep", o.keep, "keep the temp work dir");
  app.add_flag("--stats", o.process_stats,
               "RSS and open fds of every process at start and end (soak)");
  app.footer(
      "Faults run on a seeded schedule (gaps uniform in [0.5, 1.5] x --fault-interval); the "
      "fault log, a progress line every 2 s and a summary go to stdout.\n"
      "Exit codes: 0 nothing lost or unexpected, 1 lost or unexpected outputs (or the check could "
      "not run), 2 usage.");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? exit_code::kOk : exit_code::kUsage;
  }
  auto parsed = check::ParseFaults(faults);
  if (!parsed) {
    std::fprintf(stderr, "asya check: %s\n", parsed.error().message.c_str());
    return exit_code::kUsage;
  }
  o.faults = *parsed;
  if (transport != "sqlite" && transport != "rabbitmq" && transport != "sqs") {
    std::fprintf(stderr, "asya check: --transport must be sqlite, rabbitmq or sqs, not '%s'\n",
                 transport.c_str());
    return exit_code::kUsage;
  }
  if (auto st = check::CheckFaultsFit(o.faults, transport); !st) {
    std::fprintf(stderr, "asya check: %s\n", st.error().message.c_str());
    return exit_code::kUsage;
  }
  if (o.envelopes < 1 || o.replicas < 1 || o.concurrency < 1 || o.fault_interval_s <= 0 ||
      o.rate < 0 || o.duration_s < 0) {
    std::fprintf(stderr,
                 "asya check: --envelopes, --replicas, --concurrency and --fault-interval must be "
                 "positive; --rate and --duration not negative\n");
    return exit_code::kUsage;
  }
  env::TransportEnvOptions topts;
  topts.default_kind = transport;
  topts.kind = transport;
  auto settings = env::TransportSettingsFromEnv(topts);
  if (!settings) {
    std::fprintf(stderr, "asya check: %s\n", settings.error().message.c_str());
    return exit_code::kUsage;
  }
  o.transport = *settings;
  o.start_broker =
      transport == "rabbitmq" && !env::Get("ASYA_RABBITMQ_URL") && !env::Get("ASYA_RABBITMQ_HOST");
  o.work_dir = work_dir;
  std::error_code ec;
  o.asya_bin = std::filesystem::read_symlink("/proc/self/exe", ec).string();
  if (ec) {
    o.asya_bin = argv[0];
  }
  for (char** e = environ; *e != nullptr; ++e) {
    o.base_env.emplace_back(*e);
  }
  // Ctrl-C / SIGTERM: the check stops, accounts, and cleans up (mesh, broker, tmpfs).
  struct sigaction sa {};
  sa.sa_handler = OnSignal;
  sigemptyset(&sa.sa_mask);
  ::sigaction(SIGINT, &sa, nullptr);
  ::sigaction(SIGTERM, &sa, nullptr);
  o.interrupted = &g_interrupted;
  auto outcome = check::Run(o);
  if (!outcome) {
    std::fprintf(stderr, "asya check: %s\n", outcome.error().message.c_str());
    return exit_code::kFailed;
  }
  return outcome->ok() ? exit_code::kOk : exit_code::kFailed;
}

}  // namespace asya::cli
