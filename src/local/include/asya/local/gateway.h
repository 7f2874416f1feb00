// The mesh's gateway under `asya up` (issue 10 item 5, DESIGN §6, §4.13): one `asya-gateway`
// process, supervised like the actors' processes, bound to 127.0.0.1, with its SQLite store and
// its tools under the state directory. Rules: src/local/README.md "Gateway".
//
//   <state>/gateway.url      "http://127.0.0.1:<port>\n", written once GET /health answers 200,
//                            removed while the gateway is down and when the mesh stops
//   <state>/gateway.db       the gateway's store (ASYA_DATABASE_URL=sqlite://<state>/gateway.db)
//   <state>/gateway-tools/   the tools documents found among asya up's inputs, one file each
//                            (ASYA_CONFIG_PATH; not set when there are none)
//   <state>/logs/gateway.log its output (`asya logs gateway`)
//
// The sidecars get ASYA_GATEWAY_URL and ASYA_GATEWAY_TOKEN (a callback token generated per
// supervisor run and given to both sides).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <sys/types.h>

#include "asya/base/result.h"
#include "asya/local/launch.h"

namespace asya::local {

// ---- Tools documents among the inputs ----

struct ToolsDocument {
  std::string source;  // the file
  int first_line = 1;  // where the document starts in it (1-based)
  std::string text;    // the document's own text
};

// The tools documents (actor::IsToolsDocument) of `paths`, read as LoadManifests reads them (a
// directory: every *.yaml / *.yml directly inside, sorted). Errors: kNotFound for a missing path,
// kInvalidArgument for invalid YAML or a tools document that cannot be separated from the other
// documents of its file.
Result<std::vector<ToolsDocument>> CollectToolsDocuments(const std::vector<std::string>& paths);

// Checks every document as a gateway tools config (errors name its file and line) and the set as
// a whole (a tool or route declared twice). kInvalidArgument, one line per problem.
Status CheckToolsDocuments(const std::vector<ToolsDocument>& docs);

// Replaces <state>/gateway-tools/ with one file per document. Returns the directory, or "" when
// `docs` is empty (the directory is then removed).
Result<std::string> WriteToolsDirectory(const std::string& state_dir,
                                        const std::vector<ToolsDocument>& docs);

// ---- The process ----

std::string GatewayUrlPath(const std::string& state_dir);  // <state>/gateway.url
std::string GatewayUrl(int port);                          // http://127.0.0.1:<port>

// `wanted` > 0: checks that 127.0.0.1:<wanted> can be bound (kAlreadyExists when not). 0: a free
// port picked by the kernel.
Result<int> PickLoopbackPort(int wanted);

// 32 random hex characters.
std::string NewCallbackToken();

struct GatewayLaunchSettings {
  std::string bin;        // asya-gateway
  std::string state_dir;  // absolute
  int port = 0;
  std::string token;      // ASYA_GATEWAY_TOKEN (callbacks)
  std::string tools_dir;  // ASYA_CONFIG_PATH; "" = no tools
  std::string transport_kind;
  std::string sqlite_path;
  std::vector<std::string> base_env;
};

// asya-gateway with ASYA_GATEWAY_ADDR=127.0.0.1, ASYA_GATEWAY_PORT, ASYA_DATABASE_URL,
// ASYA_CONFIG_PATH (removed when there are no tools), ASYA_GATEWAY_TOKEN, ASYA_TRANSPORT
// (+ ASYA_SQLITE_PATH) over the base environment (the other transport variables come from it,
// as for the sidecars); working directory: the state directory.
LaunchSpec GatewayLaunchSpec(const GatewayLaunchSettings& s);

// True when GET http://127.0.0.1:<port>/health answers 200 (short socket timeouts).
bool GatewayHealthy(int port);

// One supervised asya-gateway, driven by the supervisor's poll loop (single-threaded): Tick()
// starts it, restarts it after a crash with the kubelet back-off, probes /health until it answers
// and then writes gateway.url; Stop requests go through Tick(stop=true) once the actors are gone
// (the sidecars' last reports must still reach it).
class GatewayProcess {
 public:
  using LineSink = std::function<void(const std::string& line)>;  // one line, no newline

  GatewayProcess(GatewayLaunchSettings launch, std::chrono::milliseconds backoff_base,
                 std::chrono::milliseconds backoff_max, LineSink emit);
  ~GatewayProcess();
  GatewayProcess(const GatewayProcess&) = delete;
  GatewayProcess& operator=(const GatewayProcess&) = delete;

  // New tools: a running gateway is restarted when `tools_dir` or `fingerprint` changed.
  void SetTools(const std::string& tools_dir, const std::string& fingerprint);

  [[nodiscard]] int out_fd() const { return out_fd_; }
  void ReadOutput(bool flush);
  // True when `pid` was the gateway's (then handled: restart scheduled unless stopping).
  bool OnExit(pid_t pid, int wstatus, int64_t now_ms);
  void Tick(int64_t now_ms, bool stop, bool force_kill);
  [[nodiscard]] bool Alive() const { return pid_ > 0; }
  [[nodiscard]] bool Ready() const { return healthy_; }
  // Sidecars start once the gateway answered /health for the first time (so their start-up
  // health check passes), or after kSidecarWait since its first start (a broken gateway must not
  // hold the mesh back).
  [[nodiscard]] bool SidecarsMayStart(int64_t now_ms) const;
  [[nodiscard]] const std::string& Url() const { return url_; }

 private:
  void Start(int64_t now_ms);
  void Emit(const std::string& line);

  GatewayLaunchSettings launch_;
  std::chrono::milliseconds backoff_base_;
  std::chrono::milliseconds backoff_max_;
  LineSink emit_;
  std::string url_;
  std::string fingerprint_;
  pid_t pid_ = 0;
  int out_fd_ = -1;
  std::string partial_;
  bool healthy_ = false;
  bool stopping_ = false;
  bool restart_requested_ = false;
  int64_t started_at_ = 0;
  int64_t next_start_at_ = 0;
  int64_t next_probe_at_ = 0;
  int64_t kill_at_ = 0;
  int64_t first_start_at_ = -1;
  bool ever_ready_ = false;
  int crashes_ = 0;
};

}  // namespace asya::local
