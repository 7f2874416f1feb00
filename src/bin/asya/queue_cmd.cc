// `asya queue list|depth|publish|get|purge|redrive`: inspect and feed queues on any transport.
//
// Transport: --transport, else ASYA_TRANSPORT, else sqlite (unlike the sidecar, whose default is
// rabbitmq). The sqlite file: --sqlite-path, else ASYA_SQLITE_PATH, else $ASYA_STATE_DIR/queues.db,
// else .asya/queues.db. Other variables as the sidecar reads them (bin/common/transport_env.h).
// Exit codes: 0 ok, 1 error (message on stderr), 2 usage or configuration error, 3 `get` found
// nothing within --wait.
// `publish Q BODY` sends BODY's bytes unvalidated ('-' = stdin); a missing Q is created first, with
// its Q-dlq unless Q itself ends in -dlq. `get` writes exactly the body's bytes to stdout, plus a
// newline only when stdout is a terminal, then acks (or with --no-ack nacks it back at once);
// `get -o json` prints {"id","body","delivery_count","headers"} instead. `redrive ACTOR` moves
// asya-ACTOR-dlq back to asya-ACTOR (redrive.h); a missing DLQ or queue exits 2.
#include <cstdio>
#include <iostream>
#include <iterator>
#include <string>
#include <vector>

#include <unistd.h>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "asya/base/duration.h"
#include "asya/base/env_names.h"
#include "asya/base/exit_codes.h"
#include "asya/base/log.h"
#include "asya/base/redact.h"
#include "asya/base/state_dir.h"
#include "asya/base/transport_kinds.h"
#include "asya/transport/factory.h"
#include "bin/asya/commands.h"
#include "bin/asya/redrive.h"
#include "bin/common/env.h"
#include "bin/common/transport_env.h"

namespace asya::cli {
namespace {

constexpr int kExitError = exit_code::kFailed;
constexpr int kExitUsage = exit_code::kUsage;
constexpr int kExitEmpty = exit_code::kNothingArrived;

int Fail(const Error& e) {
  std::fprintf(stderr, "asya queue: %s\n", RedactSecrets(e.message).c_str());
  return kExitError;
}

struct Flags {
  std::string transport;
  std::string sqlite_path;
  std::string rabbitmq_url;
  std::string sqs_endpoint;
  std::string region;
  std::string output = "text";
  std::string queue;
  std::string body;
  std::string wait = "0";
  bool no_ack = false;
  std::vector<std::string> headers;  // publish --header K=V
  std::string actor;                 // redrive
  int64_t limit = 0;                 // redrive --limit (0 = all)
  std::string visibility = "60s";    // redrive --visibility
  std::string journal;               // redrive --journal
};

Result<transport::TransportPtr> Connect(const Flags& f) {
  env::TransportEnvOptions options;
  options.default_kind = transport_kind::kSqlite;
  options.kind = f.transport;
  auto settings = env::TransportSettingsFromEnv(options);
  if (!settings) {
    return Unexpected(settings.error());
  }
  if (!f.sqlite_path.empty()) {
    settings->sqlite.path = f.sqlite_path;
  }
  if (!f.rabbitmq_url.empty()) {
    settings->rabbitmq.url = f.rabbitmq_url;
  }
  if (!f.sqs_endpoint.empty()) {
    settings->sqs.endpoint = f.sqs_endpoint;
  }
  if (!f.region.empty()) {
    settings->sqs.region = f.region;
  }
  return transport::MakeTransport(*settings);
}

bool EndsWith(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

int List(transport::Transport& t, const Flags& f) {
  auto names = t.ListQueues();
  if (!names) {
    return Fail(names.error());
  }
  if (f.output == "json") {
    std::cout << nlohmann::json(*names).dump() << "\n";
  } else {
    for (const auto& n : *names) {
      std::cout << n << "\n";
    }
  }
  return 0;
}

int Depth(transport::Transport& t, const Flags& f) {
  auto d = t.Depth(f.queue);
  if (!d) {
    return Fail(d.error());
  }
  if (f.output == "json") {
    std::cout << nlohmann::ordered_json{{"ready", d->ready}, {"inflight", d->inflight}}.dump()
              << "\n";
  } else {
    std::cout << "ready=" << d->ready << " inflight=" << d->inflight << "\n";
  }
  if (!d->exact) {
    std::fprintf(stderr,
                 "asya queue depth: not exact: the broker reports no running state for %s yet "
                 "(a queue recovering after a restart counts 0 until it has replayed its log)\n",
                 f.queue.c_str());
  }
  return 0;
}

int Publish(transport::Transport& t, const Flags& f) {
  std::string body = f.body;
  if (body == "-") {
    body.assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
    if (std::cin.bad()) {
      return Fail(Error{ErrorCode::kUnavailable, "cannot read the body from stdin"});
    }
  }
  auto exists = t.QueueExists(f.queue);
  if (!exists) {
    return Fail(exists.error());
  }
  if (!*exists) {
    // Whoever creates asya-X also creates asya-X-dlq (a dead-letter queue gets none itself).
    transport::QueueOptions qo;
    qo.create_dlq = !EndsWith(f.queue, "-dlq");
    if (auto s = t.CreateQueue(f.queue, qo); !s) {
      return Fail(s.error());
    }
  }
  transport::PublishOptions po;
  for (const auto& h : f.headers) {
    auto eq = h.find('=');
    if (eq == std::string::npos || eq == 0) {
      std::fprintf(stderr, "asya queue publish: --header '%s': expected NAME=VALUE\n", h.c_str());
      return kExitUsage;
    }
    po.headers[h.substr(0, eq)] = h.substr(eq + 1);
  }
  if (auto s = t.Publish(f.queue, body, po); !s) {
    return Fail(s.error());
  }
  return 0;
}

int Get(transport::Transport& t, const Flags& f) {
  auto wait = ParseDuration(f.wait);
  if (!wait) {
    std::fprintf(stderr, "asya queue get: --wait: %s\n",
                 asya::RedactSecrets(wait.error().message).c_str());
    return kExitUsage;
  }
  transport::ReceiveOptions ro;
  ro.max_messages = 1;
  ro.wait = *wait;
  ro.visibility = Millis(30'000);
  auto got = t.Receive(f.queue, ro);
  if (!got) {
    return Fail(got.error());
  }
  if (got->empty()) {
    std::fprintf(stderr, "asya queue get: no message in %s within %s\n", f.queue.c_str(),
                 FormatGoDuration(*wait).c_str());
    return kExitEmpty;
  }
  // Stop consuming before settling: the ack frees a prefetch slot, and a message the broker
  // pushed into it now would go back counted as a delivery when this process exits (RabbitMQ).
  t.Interrupt();
  const transport::Message& m = got->front();
  bool written = false;
  if (f.output == "json") {
    nlohmann::ordered_json j{{"id", m.id},
                             {"body", m.body},
                             {"delivery_count", m.delivery_count},
                             {"headers", m.headers}};
    std::string text = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
    written = std::fwrite(text.data(), 1, text.size(), stdout) == text.size();
  } else {
    written = std::fwrite(m.body.data(), 1, m.body.size(), stdout) == m.body.size();
    if (written && ::isatty(STDOUT_FILENO) == 1) {
      written = std::fputc('\n', stdout) != EOF;
    }
  }
  written = std::fflush(stdout) == 0 && written;
  if (!written || f.no_ack) {
    // Put it back at once: the reader did not get it, or asked to leave it there.
    if (auto s = t.Nack(m); !s) {
      return Fail(s.error());
    }
    return written ? 0 : Fail(Error{ErrorCode::kUnavailable, "cannot write to stdout"});
  }
  if (auto s = t.Ack(m); !s) {
    return Fail(s.error());
  }
  return 0;
}

int Purge(transport::Transport& t, const Flags& f) {
  if (auto s = t.Purge(f.queue); !s) {
    return Fail(s.error());
  }
  return 0;
}

int RunRedrive(transport::Transport& t, const Flags& f) {
  RedriveOptions o;
  o.actor = f.actor;
  if (f.limit > 0) {
    o.limit = f.limit;
  }
  auto visibility = ParseDuration(f.visibility);
  if (!visibility || visibility->count() <= 0) {
    std::fprintf(stderr, "asya queue redrive: --visibility '%s': expected a positive duration\n",
                 f.visibility.c_str());
    return kExitUsage;
  }
  o.visibility = *visibility;
  o.json_output = f.output == "json";
  o.journal_path = f.journal;
  if (o.journal_path.empty()) {
    o.journal_path = env::GetOr(env_name::kStateDir, state_dir::kDefault) + "/redrive/" +
                     std::string(t.Name()) + "-" + transport::DlqName(f.actor) + ".log";
  }
  auto hook = env::Int("ASYA_TEST_REDRIVE_EXIT_AFTER_PUBLISH", 0, 0, 1'000'000);
  if (!hook) {
    std::fprintf(stderr, "asya queue redrive: %s\n", hook.error().message.c_str());
    return kExitUsage;
  }
  o.exit_after_publish = *hook;
  return Redrive(t, o);
}

}  // namespace

int RunQueue(int argc, char** argv) {
  log::Configure(log::Level::kWarn, log::Format::kText, "asya");
  Flags f;
  CLI::App app{"Inspect and feed queues (names as the broker sees them: asya-<actor>)",
               "asya queue"};
  app.require_subcommand(1);
  app.fallthrough();
  app.add_option("--transport", f.transport,
                 "sqlite|rabbitmq|sqs (default: ASYA_TRANSPORT, else sqlite)");
  app.add_option("--sqlite-path", f.sqlite_path,
                 "sqlite file (default: ASYA_SQLITE_PATH, else $ASYA_STATE_DIR/queues.db, else "
                 ".asya/queues.db)");
  app.add_option("--rabbitmq-url", f.rabbitmq_url, "amqp[s]:// URL (default: ASYA_RABBITMQ_*)");
  app.add_option("--sqs-endpoint", f.sqs_endpoint,
                 "SQS endpoint (default: ASYA_SQS_ENDPOINT, ...)");
  app.add_option("--region", f.region, "SQS region (default: ASYA_AWS_REGION, else us-east-1)");

  auto* list = app.add_subcommand("list", "print one queue name per line");
  list->add_option("-o,--output", f.output, "text|json")->check(CLI::IsMember({"text", "json"}));
  auto* depth = app.add_subcommand("depth", "print ready=N inflight=M");
  depth->add_option("queue", f.queue, "queue name, e.g. asya-echo")->required();
  depth->add_option("-o,--output", f.output, "text|json")->check(CLI::IsMember({"text", "json"}));
  auto* publish = app.add_subcommand("publish", "publish BODY (exact bytes; '-' reads stdin)");
  publish->add_option("queue", f.queue, "queue name (created if missing)")->required();
  publish->add_option("body", f.body, "message body, or - for stdin")->required();
  auto* get = app.add_subcommand(
      "get",
      "print one message body (a newline is added only on a terminal) and ack it; exit 3 "
      "if none arrives within --wait");
  get->add_option("queue", f.queue, "queue name")->required();
  get->add_option("--wait", f.wait, "seconds (or 300ms, 5s, ...) to wait; 0 = one try");
  get->add_flag("--no-ack", f.no_ack, "put the message back instead of acking it");
  get->add_option("-o,--output", f.output,
                  "text (the body's bytes) | json ({id, body, delivery_count, headers})")
      ->check(CLI::IsMember({"text", "json"}));
  publish->add_option("--header", f.headers,
                      "transport header NAME=VALUE (repeatable), e.g. x-asya-dlq-reason=...");
  auto* purge = app.add_subcommand("purge", "delete every message of a queue");
  purge->add_option("queue", f.queue, "queue name")->required();
  auto* redrive = app.add_subcommand(
      "redrive",
      "move dead letters from asya-ACTOR-dlq back to asya-ACTOR (fresh delivery count, reason "
      "kept in x-asya-dlq-reason); prints the count moved; safe to interrupt and run again");
  redrive->add_option("actor", f.actor, "actor name (not the queue name), e.g. echo")->required();
  redrive->add_option("--limit", f.limit, "move at most N messages (default: all)")
      ->check(CLI::PositiveNumber);
  redrive->add_option("--visibility", f.visibility,
                      "how long a message being moved stays hidden (SQLite, SQS); an interrupted "
                      "run's message is visible again after it (default 60s)");
  redrive->add_option(
      "--journal", f.journal,
      "RabbitMQ/SQS: file recording published ids so a re-run never publishes "
      "twice (default: $ASYA_STATE_DIR, else .asya, /redrive/<transport>-<dlq>.log)");
  redrive->add_option("-o,--output", f.output, "text|json")->check(CLI::IsMember({"text", "json"}));
  const std::string codes = std::string(exit_code::kHelpTable) + "\n\nExamples:\n";
  app.footer(codes +
             "  asya queue list --sqlite-path .asya/queues.db\n"
             "  asya queue get asya-error-end --wait 5s --no-ack");
  list->footer(codes + "  asya queue list -o json");
  depth->footer(codes + "  asya queue depth asya-sentiment -o json");
  publish->footer(codes +
                  "  asya queue publish asya-echo '{\"id\":\"1\",\"route\":{\"actors\":"
                  "[\"echo\"],\"current\":0},\"payload\":{}}'");
  get->footer(codes + "  asya queue get asya-error-end --wait 5s --no-ack");
  purge->footer(codes + "  asya queue purge asya-echo-dlq");
  redrive->footer(codes +
                  " A missing dead-letter queue or queue exits 2, a broker error 1 (with the "
                  "count moved so far).\n  asya queue redrive echo --limit 10");

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return kExitUsage;
  }
  RegisterUrlSecrets(f.rabbitmq_url);  // a password given on the command line stays out of errors

  auto t = Connect(f);
  if (!t) {
    std::fprintf(stderr, "asya queue: %s\n", RedactSecrets(t.error().message).c_str());
    return t.error().code == ErrorCode::kInvalidArgument ? kExitUsage : kExitError;
  }
  transport::Transport& tr = **t;
  if (list->parsed()) {
    return List(tr, f);
  }
  if (depth->parsed()) {
    return Depth(tr, f);
  }
  if (publish->parsed()) {
    return Publish(tr, f);
  }
  if (get->parsed()) {
    return Get(tr, f);
  }
  if (redrive->parsed()) {
    return RunRedrive(tr, f);
  }
  return Purge(tr, f);
}

}  // namespace asya::cli
