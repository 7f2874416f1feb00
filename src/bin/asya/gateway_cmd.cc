// `asya list|show|call|status|stream`: the gateway client (the original `asya-mcp` commands,
// reference-controlplane §8).
//
//   asya list                       tools as YAML (-o json)
//   asya show TOOL                  one tool with its parameters' description, default, options
//   asya call [OPTIONS] TOOL [JSON | - | --name value ...]
//                                   runs the tool: a live progress bar on stderr when it is a
//                                   terminal (plain lines otherwise), then the result alone on
//                                   stdout. Options must come before TOOL: everything after it
//                                   belongs to the tool (--name value, --name=value, --flag).
//   asya status ID                  GET /envelopes/ID, pretty JSON
//   asya stream ID                  the envelope's SSE updates, one JSON line each, until final
//
// The gateway: --url, else ASYA_GATEWAY_URL, else the URL `asya up` wrote to
// <state dir>/gateway.url (--state-dir, ASYA_STATE_DIR, default .asya). Bearer token: --token,
// else ASYA_GATEWAY_CLIENT_TOKEN. list/show/call speak MCP over streamable HTTP (POST /mcp); status and
// stream the REST endpoints.
// Exit codes (DESIGN §4 precise 12): 0 succeeded; 1 failed (the envelope failed, a tool error, an
// unknown tool or envelope, the gateway refused or is unreachable); 2 usage or invalid arguments;
// 3 no final result within --timeout.
#include <cstdio>
#include <fstream>
#include <iostream>
#include <iterator>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include <sys/ioctl.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "asya/base/env_names.h"
#include "asya/base/exit_codes.h"
#include "asya/base/state_dir.h"
#include "bin/asya/commands.h"
#include "bin/asya/gateway_client.h"
#include "bin/common/env.h"

namespace asya::cli {
namespace {

using gateway::Client;
using nlohmann::json;
using std::chrono::milliseconds;

struct Common {
  std::string url;
  std::string token;
  std::string state_dir;
  double timeout_s = 300;
  std::string output = "yaml";
};

int Fail(const std::string& cmd, const std::string& message, int code) {
  std::fprintf(stderr, "asya %s: %s\n", cmd.c_str(), message.c_str());
  return code;
}

int ExitOf(const Error& e) {
  switch (e.code) {
    case ErrorCode::kInvalidArgument:
      return exit_code::kUsage;
    case ErrorCode::kDeadlineExceeded:
      return exit_code::kNothingArrived;
    default:
      return exit_code::kFailed;
  }
}

// --url > ASYA_GATEWAY_URL > <state dir>/gateway.url.
Result<std::string> ResolveUrl(const Common& c) {
  std::string url = c.url;
  if (url.empty()) {
    url = env::GetOr("ASYA_GATEWAY_URL", "");
  }
  if (url.empty()) {
    std::string dir = c.state_dir;
    if (dir.empty()) {
      dir = env::GetOr(env_name::kStateDir, state_dir::kDefault);
    }
    const std::string file = dir + "/" + state_dir::kGatewayUrlFile;
    std::ifstream in(file);
    if (!in) {
      return MakeError(
          ErrorCode::kInvalidArgument,
          "no gateway: pass --url, set ASYA_GATEWAY_URL, or run `asya up` (no " + file + ")");
    }
    std::getline(in, url);
    while (!url.empty() && (url.back() == '\r' || url.back() == ' ')) {
      url.pop_back();
    }
  }
  return gateway::NormalizeBaseUrl(url);
}

Result<std::unique_ptr<Client>> Connect(const Common& c) {
  ASYA_ASSIGN_OR_RETURN(std::string url, ResolveUrl(c));
  std::string token = c.token.empty() ? env::GetOr(env_name::kGatewayClientToken, "") : c.token;
  return std::make_unique<Client>(gateway::ClientOptions{.url = url, .token = token});
}

std::string Seconds(double s) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%g", s);
  return buf;
}

milliseconds TimeoutOf(const Common& c) {
  return milliseconds(static_cast<int64_t>(c.timeout_s * 1000));
}

// Progress on stderr: a redrawn bar on a terminal, a line per change otherwise.
class ProgressView {
 public:
  ProgressView() : tty_(::isatty(STDERR_FILENO) == 1) {
    winsize ws{};
    if (tty_ && ::ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0) {
      width_ = ws.ws_col;
    }
  }
  ~ProgressView() { Done(); }
  void Show(const gateway::Progress& p) {
    if (tty_) {
      std::fprintf(stderr, "\r\033[K%s", gateway::RenderBar(p, width_).c_str());
      drawn_ = true;
    } else {
      std::string line = gateway::RenderLine(p);
      if (line != last_) {
        std::fprintf(stderr, "%s\n", line.c_str());
        last_ = std::move(line);
      }
    }
    std::fflush(stderr);
  }
  void Done() {
    if (drawn_) {
      std::fputs("\r\033[K", stderr);
      std::fflush(stderr);
      drawn_ = false;
    }
  }

 private:
  bool tty_;
  int width_ = 80;
  bool drawn_ = false;
  std::string last_;
};

void AddCommon(CLI::App& app, Common& c, bool timeout) {
  app.add_option("--url", c.url, "gateway URL (ASYA_GATEWAY_URL; default: the local mesh's)");
  app.add_option("--token", c.token, "client bearer token (ASYA_GATEWAY_CLIENT_TOKEN)");
  app.add_option("--state-dir", c.state_dir, "state dir of `asya up` (ASYA_STATE_DIR, .asya)");
  if (timeout) {
    app.add_option("--timeout", c.timeout_s, "seconds to wait for the final result (300)")
        ->check(CLI::PositiveNumber);
  }
}

Result<json> ListTools(Client& client) {
  ASYA_RETURN_IF_ERROR(client.Initialize());
  return client.ListTools();
}

int RunListOrShow(const std::string& cmd, int argc, char** argv) {
  CLI::App app{"asya " + cmd};
  app.name("asya " + cmd);
  Common c;
  std::string tool;
  AddCommon(app, c, false);
  app.add_option("-o,--output", c.output, "yaml or json")->check(CLI::IsMember({"yaml", "json"}));
  if (cmd == "show") {
    app.add_option("tool", tool, "tool name")->required();
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? exit_code::kOk : exit_code::kUsage;
  }
  auto client = Connect(c);
  if (!client) {
    return Fail(cmd, client.error().message, ExitOf(client.error()));
  }
  auto tools = ListTools(**client);
  if (!tools) {
    return Fail(cmd, tools.error().message, ExitOf(tools.error()));
  }
  const bool as_json = c.output == "json";
  if (cmd == "list") {
    std::fputs(gateway::FormatToolList(*tools, as_json).c_str(), stdout);
    return exit_code::kOk;
  }
  auto t = gateway::FindTool(*tools, tool);
  if (!t) {
    return Fail(cmd, "no tool '" + tool + "' (`asya list` shows the tools)", exit_code::kFailed);
  }
  std::fputs(gateway::FormatTool(*t, as_json).c_str(), stdout);
  return exit_code::kOk;
}

// Follows envelope `id` to its end; returns the final update / envelope, or the error.
Result<json> Follow(Client& client, const std::string& id, milliseconds timeout,
                    const std::function<void(const json&)>& on_update) {
  std::optional<json> final_update;
  Status st = client.Stream(id, timeout, [&](const json& u) {
    on_update(u);
    if (gateway::IsFinalStatus(u.value("status", ""))) {
      final_update = u;
      return false;
    }
    return true;
  });
  if (!st && st.error().code != ErrorCode::kUnavailable) {
    return tl::unexpected(st.error());
  }
  // Without a final event (the stream ended or broke): ask for the envelope itself.
  auto env = client.Envelope(id);
  if (env && gateway::IsFinalStatus(env->value("status", ""))) {
    if (final_update && !final_update->contains("result") && env->contains("result")) {
      (*final_update)["result"] = (*env)["result"];
    }
    return final_update ? *final_update : *env;
  }
  if (final_update) {
    return *final_update;
  }
  if (!st) {
    return tl::unexpected(st.error());
  }
  if (!env) {
    return tl::unexpected(env.error());
  }
  return MakeError(ErrorCode::kDeadlineExceeded, "the stream of envelope " + id +
                                                     " ended before it finished (status " +
                                                     env->value("status", "?") + ")");
}

int ReportFinal(const std::string& cmd, const std::string& id, const json& final_state) {
  if (final_state.value("status", "") == "succeeded") {
    json result = final_state.contains("result") ? final_state["result"] : json(nullptr);
    std::fputs((result.dump(2) + "\n").c_str(), stdout);
    return exit_code::kOk;
  }
  std::string error = final_state.contains("error") && final_state["error"].is_string()
                          ? final_state["error"].get<std::string>()
                          : final_state.value("message", "failed");
  return Fail(cmd, "envelope " + id + " failed: " + error, exit_code::kFailed);
}

int RunCall(int argc, char** argv) {
  const std::string cmd = "call";
  Common c;
  bool no_stream = false;
  std::vector<std::string> rest;
  int i = 1;
  auto value = [&](const std::string& a, const char* name, std::string& out) -> int {
    const std::string flag = std::string("--") + name;
    if (a == flag) {
      if (i + 1 >= argc) {
        return -1;
      }
      out = argv[++i];
      return 1;
    }
    if (a.rfind(flag + "=", 0) == 0) {
      out = a.substr(flag.size() + 1);
      return 1;
    }
    return 0;
  };
  for (; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "-h" || a == "--help") {
      std::fputs(
          "usage: asya call [--url URL] [--token T] [--state-dir DIR] [--timeout S] [--no-stream]"
          " TOOL [JSON | - | --name value ...]\n",
          stdout);
      return exit_code::kOk;
    }
    if (a == "--no-stream") {
      no_stream = true;
      continue;
    }
    std::string timeout;
    int r = 0;
    for (auto [name, out] :
         {std::pair{"url", &c.url}, std::pair{"token", &c.token},
          std::pair{"state-dir", &c.state_dir}, std::pair{"timeout", &timeout}}) {
      if ((r = value(a, name, *out)) != 0) {
        break;
      }
    }
    if (r < 0) {
      return Fail(cmd, a + " needs a value", exit_code::kUsage);
    }
    if (r > 0) {
      if (!timeout.empty()) {
        char* end = nullptr;
        c.timeout_s = std::strtod(timeout.c_str(), &end);
        if (end != timeout.c_str() + timeout.size() || !(c.timeout_s > 0)) {
          return Fail(cmd, "--timeout must be a positive number of seconds", exit_code::kUsage);
        }
      }
      continue;
    }
    if (a.rfind("--", 0) == 0) {
      return Fail(cmd, "unknown option " + a + " before TOOL (tool parameters go after TOOL)",
                  exit_code::kUsage);
    }
    break;
  }
  if (i >= argc) {
    return Fail(cmd, "TOOL is required (usage: asya call TOOL [JSON | --name value ...])",
                exit_code::kUsage);
  }
  const std::string tool = argv[i++];
  rest.assign(argv + i, argv + argc);

  std::string hint;  // `asya call TOOL --url U`: the option went to the tool
  for (const auto& a : rest) {
    for (const char* o : {"--url", "--token", "--state-dir", "--timeout", "--no-stream"}) {
      if (a == o || a.rfind(std::string(o) + "=", 0) == 0) {
        hint = " (note: " + std::string(o) +
               " after TOOL is a tool parameter; options go before TOOL)";
      }
    }
  }
  auto client = Connect(c);
  if (!client) {
    return Fail(cmd, client.error().message + hint, ExitOf(client.error()));
  }
  auto tools = ListTools(**client);
  if (!tools) {
    return Fail(cmd, tools.error().message + hint, ExitOf(tools.error()));
  }
  auto t = gateway::FindTool(*tools, tool);
  if (!t) {
    return Fail(cmd, "no tool '" + tool + "' (`asya list` shows the tools)", exit_code::kFailed);
  }
  auto arguments = gateway::ParseToolArguments(rest, t->value("inputSchema", json::object()), [] {
    return std::string(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
  });
  if (!arguments) {
    return Fail(cmd, tool + ": " + arguments.error().message + hint, exit_code::kUsage);
  }

  const auto deadline = std::chrono::steady_clock::now() + TimeoutOf(c);
  ProgressView view;
  auto result = (*client)->CallTool(tool, *arguments, TimeoutOf(c), [&](const json& params) {
    view.Show(gateway::ProgressOfNotification(params));
  });
  if (!result) {
    view.Done();
    if (result.error().message.find("JSON-RPC error -32602") != std::string::npos) {
      return Fail(cmd, result.error().message, exit_code::kUsage);
    }
    if (result.error().code == ErrorCode::kDeadlineExceeded) {
      return Fail(cmd, "no result within " + Seconds(c.timeout_s) + "s (--timeout)",
                  exit_code::kNothingArrived);
    }
    return Fail(cmd, result.error().message, ExitOf(result.error()));
  }
  // The envelope of a pipeline that runs on: the original gateway's acknowledgement, or a
  // synchronous answer that ran out of its bounded wait (isError, with envelope_id/status_url).
  const std::string id = gateway::AsyncEnvelopeId(*result);
  if (id.empty() && result->value("isError", false)) {
    view.Done();
    return Fail(cmd, tool + ": " + gateway::ErrorText(*result), exit_code::kFailed);
  }
  if (id.empty() || no_stream) {
    view.Done();
    std::fputs(gateway::FormatCallResult(*result).c_str(), stdout);
    return exit_code::kOk;
  }
  std::fprintf(stderr, "envelope %s\n", id.c_str());
  const auto left =
      std::chrono::duration_cast<milliseconds>(deadline - std::chrono::steady_clock::now());
  auto final_state = Follow(**client, id, std::max(left, milliseconds(1)),
                            [&](const json& u) { view.Show(gateway::ProgressOfUpdate(u)); });
  view.Done();
  if (!final_state) {
    if (final_state.error().code == ErrorCode::kDeadlineExceeded) {
      return Fail(cmd,
                  "no result for envelope " + id + " within " + Seconds(c.timeout_s) +
                      "s; follow it with `asya stream " + id + "`",
                  exit_code::kNothingArrived);
    }
    return Fail(cmd, final_state.error().message, ExitOf(final_state.error()));
  }
  return ReportFinal(cmd, id, *final_state);
}

int RunStatusOrStream(const std::string& cmd, int argc, char** argv) {
  CLI::App app{"asya " + cmd};
  app.name("asya " + cmd);
  Common c;
  std::string id;
  AddCommon(app, c, cmd == "stream");
  app.add_option("id", id, "envelope id")->required();
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? exit_code::kOk : exit_code::kUsage;
  }
  auto client = Connect(c);
  if (!client) {
    return Fail(cmd, client.error().message, ExitOf(client.error()));
  }
  if (cmd == "status") {
    auto env = (*client)->Envelope(id);
    if (!env) {
      return Fail(cmd, env.error().message, ExitOf(env.error()));
    }
    std::fputs((env->dump(2) + "\n").c_str(), stdout);
    return exit_code::kOk;
  }
  auto final_state = Follow(**client, id, TimeoutOf(c), [](const json& u) {
    std::fputs((u.dump() + "\n").c_str(), stdout);
    std::fflush(stdout);
  });
  if (!final_state) {
    return Fail(cmd, final_state.error().message, ExitOf(final_state.error()));
  }
  return final_state->value("status", "") == "succeeded" ? exit_code::kOk : exit_code::kFailed;
}

}  // namespace

int RunGateway(int argc, char** argv) {
  const std::string cmd = argv[0];
  if (cmd == "call") {
    return RunCall(argc, argv);
  }
  if (cmd == "list" || cmd == "show") {
    return RunListOrShow(cmd, argc, argv);
  }
  return RunStatusOrStream(cmd, argc, argv);
}

}  // namespace asya::cli
