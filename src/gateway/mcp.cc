#include "asya/gateway/mcp.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <thread>
#include <unordered_map>
#include <utility>

#include "asya/base/log.h"
#include "asya/base/strings.h"
#include "gateway/mcp_wire.h"

namespace asya::gateway {

using mcp::Json;

namespace {

constexpr std::string_view kSessionHeader = "Mcp-Session-Id";
constexpr std::string_view kVersionHeader = "MCP-Protocol-Version";
constexpr std::string_view kEnvelopeUriPrefix = "asya://envelopes/";

std::string Lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

std::string HeaderValue(const Request& request, std::string_view name) {
  return std::string(TrimSpace(request.Header(name)));
}

bool HasHeader(const Request& request, std::string_view name) {
  return request.headers.find(std::string(name)) != request.headers.end();
}

std::string NewSessionId() {
  static std::mutex mu;
  static std::mt19937_64 rng{std::random_device{}() ^
                             (static_cast<std::uint64_t>(std::random_device{}()) << 32)};
  std::uint64_t a = 0;
  std::uint64_t b = 0;
  {
    std::lock_guard<std::mutex> lock(mu);
    a = rng();
    b = rng();
  }
  // UUID version 4, variant 1.
  a = (a & 0xffffffffffff0fffULL) | 0x0000000000004000ULL;
  b = (b & 0x3fffffffffffffffULL) | 0x8000000000000000ULL;
  char buf[64];
  std::snprintf(
      buf, sizeof buf, "mcp-session-%08llx-%04llx-%04llx-%04llx-%012llx",
      static_cast<unsigned long long>(a >> 32), static_cast<unsigned long long>((a >> 16) & 0xffff),
      static_cast<unsigned long long>(a & 0xffff), static_cast<unsigned long long>(b >> 48),
      static_cast<unsigned long long>(b & 0xffffffffffffULL));
  return buf;
}

// The host part of a Host header or an Origin's authority ("[::1]:8080" -> "[::1]").
std::string HostOnly(std::string_view authority) {
  if (!authority.empty() && authority.front() == '[') {
    const auto close = authority.find(']');
    return Lower(
        authority.substr(0, close == std::string_view::npos ? authority.size() : close + 1));
  }
  const auto colon = authority.find(':');
  return Lower(authority.substr(0, colon));
}

// Where one JSON-RPC answer goes: the HTTP reply of a single request, or one slot of a batch.
struct Sink {
  // Sends a notification related to the request (dropped when the reply cannot stream).
  std::function<void(const Json&)> notify;
  // Sends the response (once); `status` is the HTTP status of a single-request reply.
  std::function<void(int status, Json response)> finish;
  // Opens the response as an SSE stream now, when the client accepts one (single requests only);
  // `on_gone` runs if the client disconnects before the response was sent. False: not streamed.
  std::function<bool(std::function<void()> on_gone)> stream;
};

// The HTTP reply to one POST: JSON, or an SSE stream opened on the first notification.
class Reply : public std::enable_shared_from_this<Reply> {
 public:
  Reply(Responder responder, bool accept_json, bool accept_sse)
      : responder_(std::move(responder)), accept_json_(accept_json), accept_sse_(accept_sse) {}

  void AddHeader(std::string name, std::string value) {
    std::lock_guard<std::mutex> lock(mu_);
    headers_[std::move(name)] = std::move(value);
  }

  bool OpenStream(std::function<void()> on_gone) {
    std::lock_guard<std::mutex> lock(mu_);
    if (!accept_sse_ || finished_) {
      return false;
    }
    {
      std::lock_guard<std::mutex> gone_lock(gone_mu_);
      on_gone_ = std::move(on_gone);
    }
    OpenLocked();
    return true;
  }

  void Notify(const Json& notification) {
    std::lock_guard<std::mutex> lock(mu_);
    if (finished_ || !accept_sse_) {
      return;
    }
    if (!stream_) {
      OpenLocked();
    }
    stream_->Send(mcp::SseFrame(notification));
  }

  void Finish(int status, const Json& response) {
    std::lock_guard<std::mutex> lock(mu_);
    if (finished_.exchange(true)) {
      return;
    }
    if (!stream_ && !accept_json_) {
      OpenLocked();  // the client takes only SSE
    }
    if (stream_) {
      stream_->Send(mcp::SseFrame(response));
      stream_->Close();
      return;
    }
    Response r;
    r.status = status;
    r.headers = headers_;
    r.headers["Content-Type"] = "application/json";
    r.body = mcp::Dump(response);
    responder_.Reply(std::move(r));
  }

  // 202 Accepted without a body (notifications, client responses).
  void Accepted() {
    std::lock_guard<std::mutex> lock(mu_);
    if (finished_.exchange(true)) {
      return;
    }
    Response r;
    r.status = 202;
    r.headers = headers_;
    responder_.Reply(std::move(r));
  }

  Sink AsSink() {
    auto self = shared_from_this();
    Sink sink;
    sink.notify = [self](const Json& n) { self->Notify(n); };
    sink.finish = [self](int status, Json response) { self->Finish(status, response); };
    sink.stream = [self](std::function<void()> on_gone) {
      return self->OpenStream(std::move(on_gone));
    };
    return sink;
  }

 private:
  void OpenLocked() {
    Headers headers = headers_;
    headers["Content-Type"] = "text/event-stream";
    headers["Cache-Control"] = "no-cache";
    headers["X-Accel-Buffering"] = "no";
    stream_ = responder_.OpenStream(200, std::move(headers));
    std::weak_ptr<Reply> weak = weak_from_this();
    stream_->OnClose([weak] {
      auto self = weak.lock();
      if (!self || self->finished_.exchange(true)) {
        return;  // closed by Finish, or nobody waits
      }
      std::function<void()> gone;
      {
        std::lock_guard<std::mutex> gone_lock(self->gone_mu_);
        gone = std::move(self->on_gone_);
      }
      if (gone) {
        gone();
      }
    });
  }

  std::mutex mu_;
  Responder responder_;
  const bool accept_json_;
  const bool accept_sse_;
  Headers headers_;
  std::shared_ptr<EventStream> stream_;
  std::atomic<bool> finished_{false};
  std::mutex gone_mu_;
  std::function<void()> on_gone_;
};

// Collects the responses of a JSON-RPC batch and replies with them as one JSON array.
class BatchReply {
 public:
  BatchReply(std::shared_ptr<Reply> reply, std::size_t pending)
      : reply_(std::move(reply)), pending_(pending) {}

  Sink SlotSink(std::shared_ptr<BatchReply> self) {
    Sink sink;
    sink.notify = [](const Json&) {};
    sink.finish = [self](int, Json response) { self->Add(std::move(response)); };
    sink.stream = [](std::function<void()>) { return false; };
    return sink;
  }

 private:
  void Add(Json response) {
    Json all;
    {
      std::lock_guard<std::mutex> lock(mu_);
      responses_.push_back(std::move(response));
      if (--pending_ > 0) {
        return;
      }
      all = std::move(responses_);
    }
    reply_->Finish(200, all);
  }

  std::mutex mu_;
  std::shared_ptr<Reply> reply_;
  std::size_t pending_;
  Json responses_ = Json::array();
};

// The protocol context of one JSON-RPC request.
struct Context {
  bool modern = false;
  std::string version;
  Json client_capabilities = Json::object();
  bool tasks = false;                // the client declared the Tasks extension (modern only)
  const Request* request = nullptr;  // valid during the synchronous part of Dispatch only
};

// A legacy session as the store keeps it, or why it cannot be used: 404 for an unknown or ended
// session, 503 when the store cannot be asked.
struct SessionLookup {
  std::optional<store::McpSession> session;
  int status = 0;
  std::string error;
};

Json CapabilitiesOf(const store::McpSession& session) {
  if (session.client_capabilities_json.empty()) {
    return Json::object();
  }
  Json caps = Json::parse(session.client_capabilities_json, nullptr, /*allow_exceptions=*/false);
  return caps.is_object() ? caps : Json::object();
}

}  // namespace

class McpHandler::Impl : public std::enable_shared_from_this<McpHandler::Impl> {
 public:
  // A synchronous tool call waiting for its envelope to finish.
  struct SyncCall {
    std::mutex mu;
    bool done = false;
    std::uint64_t key = 0;
    std::string envelope_id;
    Json rpc_id;
    Json progress_token;  // null: no progress notifications
    bool modern = false;
    double last_progress = -1;
    std::int64_t last_seq = 0;
    Sink sink;
    std::unique_ptr<Subscription> subscription;
    std::uint64_t timer = 0;
  };

  // A subscriptions/listen stream delivering notifications/tasks for some task ids.
  struct ListenCall {
    std::mutex mu;
    bool done = false;
    std::uint64_t key = 0;
    Json subscription_id;
    Sink sink;
    std::map<std::string, store::Envelope> tasks;  // last known state per task id
    std::map<std::string, std::int64_t> last_seq;
    std::vector<std::unique_ptr<Subscription>> subscriptions;
  };

  Impl(Service& service, Clock& clock, McpOptions options)
      : service_(service), clock_(clock), options_(std::move(options)) {
    timer_thread_ = std::thread([this] { TimerLoop(); });
  }

  // While this replica holds notification streams, checks their sessions every
  // session_check_interval and closes the streams of sessions ended elsewhere (another replica's
  // DELETE, expiry). Called with streams_mu_ held.
  void ArmStreamCheckLocked() {
    if (stream_check_armed_ || options_.session_check_interval.count() <= 0) {
      return;
    }
    stream_check_armed_ = true;
    std::weak_ptr<Impl> weak_self = weak_from_this();
    AddTimer(options_.session_check_interval, [weak_self] {
      if (auto self = weak_self.lock()) {
        self->CloseStreamsOfEndedSessions();
        std::lock_guard<std::mutex> lock(self->streams_mu_);
        self->stream_check_armed_ = false;
        if (!self->streams_.empty()) {
          self->ArmStreamCheckLocked();
        }
      }
    });
  }

  ~Impl() { Stop(); }

  void Stop() {
    {
      std::lock_guard<std::mutex> lock(timer_mu_);
      if (stop_) {
        return;
      }
      stop_ = true;
    }
    timer_cv_.notify_all();
    if (timer_thread_.joinable()) {
      timer_thread_.join();
    }
    std::unordered_map<std::uint64_t, std::shared_ptr<SyncCall>> calls;
    {
      std::lock_guard<std::mutex> lock(calls_mu_);
      calls.swap(calls_);
    }
    for (auto& [key, call] : calls) {
      ReleaseSubscription(*call);
    }
    std::unordered_map<std::uint64_t, std::shared_ptr<ListenCall>> listens;
    {
      std::lock_guard<std::mutex> lock(calls_mu_);
      listens.swap(listens_);
    }
    for (auto& [key, listen] : listens) {
      ReleaseListen(*listen);
    }
  }

  void Handle(Request request, Responder responder);

 private:
  // ---- HTTP level ----
  bool CheckOrigin(const Request& request, const Responder& responder);
  void HandlePost(Request request, Responder responder);
  void HandleGet(const Request& request, const Responder& responder);
  void HandleDelete(const Request& request, const Responder& responder);
  void ServeModern(const Request& request, const Json& message,
                   const std::shared_ptr<Reply>& reply);
  void ServeLegacy(const Request& request, const Json& message,
                   const std::shared_ptr<Reply>& reply);
  void ServeBatch(const Request& request, const Json& batch, const std::shared_ptr<Reply>& reply);

  // ---- JSON-RPC level ----
  void Dispatch(const Context& ctx, const Json& message, const Sink& sink);
  void Fail(const Context& ctx, const Sink& sink, const Json& id, int code, std::string_view text,
            Json data = nullptr);
  Json Complete(const Context& ctx, Json result) const;
  Json CachingHints(const Context& ctx, Json result, std::string_view scope) const;
  Json Capabilities(bool modern) const;

  void Initialize(const Json& message, const std::shared_ptr<Reply>& reply);
  void Discover(const Context& ctx, const Json& message, const Sink& sink);
  void ToolsList(const Context& ctx, const Json& message, const Sink& sink);
  void ToolsCall(const Context& ctx, const Json& message, const Sink& sink);
  void TasksMethod(const Context& ctx, const Json& message, const Sink& sink);
  void ResourcesRead(const Context& ctx, const Json& message, const Sink& sink);
  void Listen(const Context& ctx, const Json& message, const Sink& sink);
  void OnTaskUpdate(const std::shared_ptr<ListenCall>& listen, const store::Update& update);
  void SendTask(ListenCall& listen, const store::Envelope& envelope);
  void ReleaseListen(ListenCall& listen);
  bool CheckParamHeaders(const Context& ctx, const Tool& tool, const Json& arguments,
                         const Json& id, const Sink& sink);

  // ---- synchronous tool calls ----
  void StartSyncWait(const Context& ctx, const Json& id, const store::Envelope& envelope,
                     const Tool& tool, Json progress_token, const Sink& sink);
  void OnUpdate(const std::shared_ptr<SyncCall>& call, const store::Update& update);
  void FinishCall(const std::shared_ptr<SyncCall>& call, Json result);
  void ReleaseSubscription(SyncCall& call);
  void Forget(std::uint64_t key);

  // ---- timers and deferred work (one thread) ----
  std::uint64_t AddTimer(Clock::Duration after, std::function<void()> fn);
  void CancelTimer(std::uint64_t id);
  void Post(std::function<void()> fn);
  void TimerLoop();

  // ---- legacy sessions (in the store; notification streams are this replica's own) ----
  SessionLookup LookupSession(const std::string& id);
  void CloseStreams(const std::string& session_id);
  void CloseStreamsOfEndedSessions();

  Service& service_;
  Clock& clock_;
  const McpOptions options_;

  std::mutex streams_mu_;
  // GET notification streams open on this replica, by session id.
  std::unordered_map<std::string, std::vector<std::shared_ptr<EventStream>>> streams_;
  bool stream_check_armed_ = false;

  std::mutex calls_mu_;
  std::unordered_map<std::uint64_t, std::shared_ptr<SyncCall>> calls_;
  std::unordered_map<std::uint64_t, std::shared_ptr<ListenCall>> listens_;
  std::atomic<std::uint64_t> next_call_{1};

  std::mutex timer_mu_;
  std::condition_variable timer_cv_;
  bool stop_ = false;
  bool wake_ = false;
  std::uint64_t next_timer_ = 1;
  std::multimap<Clock::MonoTime, std::uint64_t> timers_;
  std::unordered_map<
      std::uint64_t,
      std::pair<std::multimap<Clock::MonoTime, std::uint64_t>::iterator, std::function<void()>>>
      timer_fns_;
  std::deque<std::function<void()>> posted_;
  std::thread timer_thread_;
};

// ================================ HTTP level ================================

void McpHandler::Impl::Handle(Request request, Responder responder) {
  if (!CheckOrigin(request, responder)) {
    return;
  }
  if (request.method == "POST") {
    HandlePost(std::move(request), std::move(responder));
  } else if (request.method == "GET") {
    HandleGet(request, responder);
  } else if (request.method == "DELETE") {
    HandleDelete(request, responder);
  } else {
    Response r;
    r.status = 405;
    r.headers["Allow"] = "GET, POST, DELETE";
    r.headers["Content-Type"] = "application/json";
    r.body = mcp::Dump(
        mcp::ErrorResponse(nullptr, mcp::kInvalidRequest,
                           "method " + request.method + " is not allowed on the MCP endpoint"));
    responder.Reply(std::move(r));
  }
}

bool McpHandler::Impl::CheckOrigin(const Request& request, const Responder& responder) {
  if (options_.allowed_hosts.empty()) {
    return true;
  }
  auto allowed = [&](const std::string& host) {
    return std::any_of(options_.allowed_hosts.begin(), options_.allowed_hosts.end(),
                       [&](const std::string& a) { return Lower(a) == host; });
  };
  std::string reason;
  const std::string host = HostOnly(TrimSpace(request.Header("Host")));
  if (!host.empty() && !allowed(host)) {
    reason = "Host '" + host + "' is not allowed";
  }
  const std::string_view origin = TrimSpace(request.Header("Origin"));
  if (reason.empty() && !origin.empty()) {
    const auto scheme = origin.find("://");
    const std::string origin_host =
        scheme == std::string_view::npos ? "" : HostOnly(origin.substr(scheme + 3));
    if (origin_host.empty() || !allowed(origin_host)) {
      reason = "Origin '" + std::string(origin) + "' is not allowed";
    }
  }
  if (reason.empty()) {
    return true;
  }
  Response r;
  r.status = 403;
  r.headers["Content-Type"] = "application/json";
  Json error = {{"jsonrpc", "2.0"}};
  error["error"] = mcp::ErrorObject(mcp::kInvalidRequest, "Forbidden: " + reason);
  r.body = mcp::Dump(error);
  responder.Reply(std::move(r));
  return false;
}

namespace {

void ReplyError(const Responder& responder, int status, const Json& id, int code,
                std::string_view text, Json data = nullptr) {
  Response r;
  r.status = status;
  r.headers["Content-Type"] = "application/json";
  r.body = mcp::Dump(mcp::ErrorResponse(id, code, text, std::move(data)));
  responder.Reply(std::move(r));
}

bool ValidId(const Json& id) {
  return id.is_string() || id.is_number_integer();
}

// The id of a message for an error response: its id when usable, else null.
Json IdOf(const Json& message) {
  if (message.is_object()) {
    const auto it = message.find("id");
    if (it != message.end() && ValidId(*it)) {
      return *it;
    }
  }
  return nullptr;
}

// Checks the JSON-RPC 2.0 shape; on failure returns the error text.
std::string ShapeError(const Json& message) {
  if (!message.is_object()) {
    return "a JSON-RPC message must be an object";
  }
  const auto version = message.find("jsonrpc");
  if (version == message.end() || *version != "2.0") {
    return "Invalid JSON-RPC version: jsonrpc must be \"2.0\"";
  }
  const auto method = message.find("method");
  if (method == message.end()) {
    if (message.contains("result") || message.contains("error")) {
      return "";  // a response from the client
    }
    return "a JSON-RPC request needs a method";
  }
  if (!method->is_string()) {
    return "method must be a string";
  }
  const auto id = message.find("id");
  if (id != message.end() && !ValidId(*id)) {
    return "id must be a string or an integer";
  }
  const auto params = message.find("params");
  if (params != message.end() && !params->is_object() && !params->is_array()) {
    return "params must be an object";
  }
  return "";
}

bool IsRequest(const Json& message) {
  return message.contains("method") && message.contains("id");
}

std::string_view MethodOf(const Json& message) {
  const auto it = message.find("method");
  return it != message.end() && it->is_string()
             ? std::string_view(it->get_ref<const std::string&>())
             : std::string_view();
}

const Json& ParamsOf(const Json& message) {
  static const Json kEmpty = Json::object();
  const auto it = message.find("params");
  return it != message.end() && it->is_object() ? *it : kEmpty;
}

// The body field a method's Mcp-Name header mirrors ("" when none).
std::string_view NameField(std::string_view method) {
  if (method == "tools/call" || method == "prompts/get")
    return "name";
  if (method == "resources/read")
    return "uri";
  if (method == "tasks/get" || method == "tasks/update" || method == "tasks/cancel") {
    return "taskId";
  }
  return "";
}

}  // namespace

void McpHandler::Impl::HandlePost(Request request, Responder responder) {
  const std::string content_type = Lower(request.Header("Content-Type"));
  if (content_type.find("application/json") == std::string::npos) {
    ReplyError(responder, 415, nullptr, mcp::kInvalidRequest,
               "Unsupported Media Type: Content-Type must be application/json");
    return;
  }
  const std::string accept = Lower(request.Header("Accept"));
  const bool any = accept.empty() || accept.find("*/*") != std::string::npos;
  const bool accept_json = any || accept.find("application/json") != std::string::npos ||
                           accept.find("application/*") != std::string::npos;
  const bool accept_sse = any || accept.find("text/event-stream") != std::string::npos;
  if (!accept_json && !accept_sse) {
    ReplyError(responder, 406, nullptr, mcp::kInvalidRequest,
               "Not Acceptable: Accept must include application/json or text/event-stream");
    return;
  }
  Json message = Json::parse(request.body, nullptr, /*allow_exceptions=*/false);
  if (message.is_discarded()) {
    ReplyError(responder, 400, nullptr, mcp::kParseError, "Parse error: the body is not JSON");
    return;
  }
  auto reply = std::make_shared<Reply>(std::move(responder), accept_json, accept_sse);
  if (message.is_array()) {
    ServeBatch(request, message, reply);
    return;
  }
  if (const std::string error = ShapeError(message); !error.empty()) {
    reply->Finish(
        400, mcp::ErrorResponse(IdOf(message), mcp::kInvalidRequest, "Invalid Request: " + error));
    return;
  }
  // Modern when the body carries a per-request protocol version or the header names a version
  // that is not a session-based one; legacy otherwise.
  const Json& meta = ParamsOf(message).contains("_meta") ? ParamsOf(message)["_meta"] : Json();
  const bool meta_version = meta.is_object() && meta.contains(mcp::kMetaProtocolVersion);
  const std::string header_version = HeaderValue(request, kVersionHeader);
  const bool modern =
      meta_version || (!header_version.empty() && !mcp::IsLegacyVersion(header_version));
  if (modern) {
    ServeModern(request, message, reply);
  } else {
    ServeLegacy(request, message, reply);
  }
}

void McpHandler::Impl::ServeModern(const Request& request, const Json& message,
                                   const std::shared_ptr<Reply>& reply) {
  const Json id = IdOf(message);
  auto reject = [&](int status, int code, const std::string& text, Json data = nullptr) {
    reply->Finish(status, mcp::ErrorResponse(id, code, text, std::move(data)));
  };
  if (!message.contains("method")) {
    reply->Accepted();  // a response from the client: nothing to do with it
    return;
  }
  const std::string method(MethodOf(message));
  // Standard headers mirror the body (SEP-2243): present and equal, or 400 HeaderMismatch.
  if (!HasHeader(request, "Mcp-Method")) {
    reject(400, mcp::kHeaderMismatch, "Header mismatch: the Mcp-Method header is required");
    return;
  }
  if (const std::string header = HeaderValue(request, "Mcp-Method"); header != method) {
    reject(400, mcp::kHeaderMismatch,
           "Header mismatch: Mcp-Method header value '" + header +
               "' does not match body method '" + method + "'");
    return;
  }
  if (!HasHeader(request, kVersionHeader)) {
    reject(400, mcp::kHeaderMismatch,
           "Header mismatch: the MCP-Protocol-Version header is required");
    return;
  }
  const Json& params = ParamsOf(message);
  if (const std::string_view field = NameField(method); !field.empty()) {
    const auto value = params.find(std::string(field));
    if (value != params.end() && value->is_string()) {
      if (!HasHeader(request, "Mcp-Name")) {
        reject(400, mcp::kHeaderMismatch, "Header mismatch: the Mcp-Name header is required");
        return;
      }
      const auto decoded = mcp::DecodeHeaderValue(HeaderValue(request, "Mcp-Name"));
      if (!decoded) {
        reject(400, mcp::kHeaderMismatch, "Header mismatch: Mcp-Name has invalid Base64");
        return;
      }
      if (*decoded != value->get<std::string>()) {
        reject(400, mcp::kHeaderMismatch,
               "Header mismatch: Mcp-Name header value '" + *decoded +
                   "' does not match body value '" + value->get<std::string>() + "'");
        return;
      }
    }
  }
  // Per-request metadata (SEP-2575).
  const auto meta = params.find("_meta");
  if (meta == params.end() || !meta->is_object()) {
    reject(400, mcp::kInvalidParams, "Invalid params: params._meta is required");
    return;
  }
  const auto version = meta->find(mcp::kMetaProtocolVersion);
  if (version == meta->end() || !version->is_string()) {
    reject(400, mcp::kInvalidParams,
           "Invalid params: _meta." + std::string(mcp::kMetaProtocolVersion) + " is required");
    return;
  }
  const auto caps = meta->find(mcp::kMetaClientCapabilities);
  if (caps == meta->end() || !caps->is_object()) {
    reject(400, mcp::kInvalidParams,
           "Invalid params: _meta." + std::string(mcp::kMetaClientCapabilities) +
               " is required (an object)");
    return;
  }
  const std::string requested = version->get<std::string>();
  if (const std::string header = HeaderValue(request, kVersionHeader); header != requested) {
    reject(400, mcp::kHeaderMismatch,
           "Header mismatch: MCP-Protocol-Version header value '" + header +
               "' does not match _meta protocol version '" + requested + "'");
    return;
  }
  if (requested != mcp::kModernVersion) {
    reject(400, mcp::kUnsupportedProtocolVersion, "Unsupported protocol version",
           Json{{"supported", mcp::SupportedVersions()}, {"requested", requested}});
    return;
  }
  if (!message.contains("id")) {
    reply->Accepted();  // notifications carry nothing this server acts on
    return;
  }
  Context ctx;
  ctx.modern = true;
  ctx.version = requested;
  ctx.client_capabilities = *caps;
  const auto ext = caps->find("extensions");
  ctx.tasks = ext != caps->end() && ext->is_object() && ext->contains(mcp::kTasksExtension);
  ctx.request = &request;
  Dispatch(ctx, message, reply->AsSink());
}

void McpHandler::Impl::ServeLegacy(const Request& request, const Json& message,
                                   const std::shared_ptr<Reply>& reply) {
  const Json id = IdOf(message);
  const std::string_view method = MethodOf(message);
  if (method == "initialize" && IsRequest(message)) {
    Initialize(message, reply);
    return;
  }
  const std::string session_id = HeaderValue(request, kSessionHeader);
  if (session_id.empty()) {
    reply->Finish(400, mcp::ErrorResponse(id, mcp::kInvalidRequest,
                                          "Bad Request: the Mcp-Session-Id header is required "
                                          "(send initialize first)"));
    return;
  }
  const SessionLookup found = LookupSession(session_id);
  if (!found.session) {
    reply->Finish(
        found.status,
        mcp::ErrorResponse(id, found.status == 404 ? mcp::kSessionNotFound : mcp::kInternalError,
                           found.error));
    return;
  }
  if (!IsRequest(message)) {
    reply->Accepted();  // notifications/initialized, cancellations, client responses
    return;
  }
  Context ctx;
  ctx.version = found.session->protocol_version;
  ctx.client_capabilities = CapabilitiesOf(*found.session);
  ctx.request = &request;
  Dispatch(ctx, message, reply->AsSink());
}

void McpHandler::Impl::ServeBatch(const Request& request, const Json& batch,
                                  const std::shared_ptr<Reply>& reply) {
  if (batch.empty()) {
    reply->Finish(
        400, mcp::ErrorResponse(nullptr, mcp::kInvalidRequest, "Invalid Request: an empty batch"));
    return;
  }
  const std::string session_id = HeaderValue(request, kSessionHeader);
  SessionLookup found;
  if (!session_id.empty()) {
    found = LookupSession(session_id);
    if (!found.session) {
      reply->Finish(found.status,
                    mcp::ErrorResponse(
                        nullptr, found.status == 404 ? mcp::kSessionNotFound : mcp::kInternalError,
                        found.error));
      return;
    }
  }
  const auto& session = found.session;
  if (!session || !mcp::AllowsBatch(session->protocol_version)) {
    reply->Finish(400,
                  mcp::ErrorResponse(nullptr, mcp::kInvalidRequest,
                                     session ? "Invalid Request: protocol version " +
                                                   session->protocol_version +
                                                   " does not accept JSON-RPC batches"
                                             : "Invalid Request: JSON-RPC batches need a session "
                                               "of protocol version 2024-11-05 or 2025-03-26"));
    return;
  }
  std::vector<const Json*> requests;
  std::vector<Json> errors;
  for (const Json& message : batch) {
    if (const std::string error = ShapeError(message); !error.empty()) {
      errors.push_back(
          mcp::ErrorResponse(IdOf(message), mcp::kInvalidRequest, "Invalid Request: " + error));
    } else if (IsRequest(message)) {
      requests.push_back(&message);
    }
  }
  if (requests.empty() && errors.empty()) {
    reply->Accepted();
    return;
  }
  auto collector = std::make_shared<BatchReply>(reply, requests.size() + errors.size());
  for (Json& error : errors) {
    collector->SlotSink(collector).finish(200, std::move(error));
  }
  Context ctx;
  ctx.version = session->protocol_version;
  ctx.client_capabilities = CapabilitiesOf(*session);
  ctx.request = &request;
  for (const Json* message : requests) {
    const Sink sink = collector->SlotSink(collector);
    if (MethodOf(*message) == "initialize") {
      sink.finish(200, mcp::ErrorResponse(IdOf(*message), mcp::kInvalidRequest,
                                          "Invalid Request: initialize must not be batched"));
      continue;
    }
    Dispatch(ctx, *message, sink);
  }
}

void McpHandler::Impl::HandleGet(const Request& request, const Responder& responder) {
  const std::string version = HeaderValue(request, kVersionHeader);
  const std::string session_id = HeaderValue(request, kSessionHeader);
  if ((!version.empty() && !mcp::IsLegacyVersion(version)) || session_id.empty()) {
    Response r;
    r.status = 405;
    r.headers["Allow"] = "POST";
    r.headers["Content-Type"] = "application/json";
    r.body =
        mcp::Dump(mcp::ErrorResponse(nullptr, mcp::kInvalidRequest,
                                     "Method Not Allowed: a notification stream needs a session "
                                     "(protocol versions 2025-03-26 to 2025-11-25)"));
    responder.Reply(std::move(r));
    return;
  }
  const SessionLookup found = LookupSession(session_id);
  if (!found.session) {
    ReplyError(responder, found.status, nullptr,
               found.status == 404 ? mcp::kSessionNotFound : mcp::kInternalError, found.error);
    return;
  }
  const std::string accept = Lower(request.Header("Accept"));
  if (accept.find("text/event-stream") == std::string::npos &&
      accept.find("*/*") == std::string::npos) {
    ReplyError(responder, 406, nullptr, mcp::kInvalidRequest,
               "Not Acceptable: Accept must include text/event-stream");
    return;
  }
  Headers headers;
  headers["Content-Type"] = "text/event-stream";
  headers["Cache-Control"] = "no-cache";
  headers["X-Accel-Buffering"] = "no";
  headers[std::string(kSessionHeader)] = session_id;
  auto stream = responder.OpenStream(200, std::move(headers));
  std::lock_guard<std::mutex> lock(streams_mu_);
  auto& streams = streams_[session_id];
  streams.erase(std::remove_if(streams.begin(), streams.end(),
                               [](const std::shared_ptr<EventStream>& s) { return s->Closed(); }),
                streams.end());
  streams.push_back(stream);
  ArmStreamCheckLocked();
}

void McpHandler::Impl::HandleDelete(const Request& request, const Responder& responder) {
  const std::string version = HeaderValue(request, kVersionHeader);
  if (!version.empty() && !mcp::IsLegacyVersion(version)) {
    Response r;
    r.status = 405;
    r.headers["Allow"] = "POST";
    responder.Reply(std::move(r));
    return;
  }
  const std::string session_id = HeaderValue(request, kSessionHeader);
  if (session_id.empty()) {
    ReplyError(responder, 400, nullptr, mcp::kInvalidRequest,
               "Bad Request: the Mcp-Session-Id header is required");
    return;
  }
  const auto ended = service_.EndSession(session_id);
  if (!ended) {
    log::Warn("MCP session store failed", {{"error", ended.error().message}});
    ReplyError(responder, 503, nullptr, mcp::kInternalError,
               "Service Unavailable: the session store cannot be reached");
    return;
  }
  CloseStreams(session_id);
  if (!*ended) {
    ReplyError(responder, 404, nullptr, mcp::kSessionNotFound, "Session not found");
    return;
  }
  Response r;
  r.status = 200;
  responder.Reply(std::move(r));
}

// ================================ JSON-RPC level ================================

void McpHandler::Impl::Fail(const Context& ctx, const Sink& sink, const Json& id, int code,
                            std::string_view text, Json data) {
  int status = 200;
  if (ctx.modern) {
    // The modern HTTP binding reports request errors in the status too.
    switch (code) {
      case mcp::kMethodNotFound:
        status = 404;
        break;
      case mcp::kParseError:
      case mcp::kInvalidRequest:
      case mcp::kInvalidParams:
      case mcp::kHeaderMismatch:
      case mcp::kMissingClientCapability:
      case mcp::kUnsupportedProtocolVersion:
        status = 400;
        break;
      default:
        status = 500;
    }
  }
  sink.finish(status, mcp::ErrorResponse(id, code, text, std::move(data)));
}

Json McpHandler::Impl::Complete(const Context& ctx, Json result) const {
  if (!ctx.modern) {
    return result;
  }
  Json out = {{"resultType", "complete"}};
  for (auto& [key, value] : result.items()) {
    if (key != "resultType") {
      out[key] = std::move(value);
    }
  }
  return out;
}

Json McpHandler::Impl::CachingHints(const Context& ctx, Json result, std::string_view scope) const {
  if (ctx.modern) {
    result["ttlMs"] = std::max<std::int64_t>(0, options_.list_ttl_ms);
    result["cacheScope"] = std::string(scope);
  }
  return result;
}

Json McpHandler::Impl::Capabilities(bool modern) const {
  Json caps = Json::object();
  caps["tools"] = {{"listChanged", false}};
  caps["prompts"] = {{"listChanged", false}};
  caps["resources"] = {{"subscribe", false}, {"listChanged", false}};
  if (modern) {
    caps["extensions"] = {{std::string(mcp::kTasksExtension), Json::object()}};
  }
  return caps;
}

void McpHandler::Impl::Dispatch(const Context& ctx, const Json& message, const Sink& sink) {
  const Json id = IdOf(message);
  const std::string method(MethodOf(message));
  if (message.contains("params") && !message["params"].is_object()) {
    Fail(ctx, sink, id, mcp::kInvalidParams, "Invalid params: params must be an object");
    return;
  }
  if (method == "server/discover" && ctx.modern) {
    Discover(ctx, message, sink);
  } else if (method == "ping" && !ctx.modern) {
    sink.finish(200, mcp::ResultResponse(id, Json::object()));
  } else if (method == "tools/list") {
    ToolsList(ctx, message, sink);
  } else if (method == "tools/call") {
    ToolsCall(ctx, message, sink);
  } else if (ctx.modern &&
             (method == "tasks/get" || method == "tasks/update" || method == "tasks/cancel")) {
    TasksMethod(ctx, message, sink);
  } else if (method == "prompts/list") {
    sink.finish(200,
                mcp::ResultResponse(
                    id, CachingHints(ctx, Complete(ctx, {{"prompts", Json::array()}}), "public")));
  } else if (method == "prompts/get") {
    const Json& name = ParamsOf(message).contains("name") ? ParamsOf(message)["name"] : Json();
    Fail(ctx, sink, id, mcp::kInvalidParams,
         "Invalid params: unknown prompt " + (name.is_string() ? name.get<std::string>() : ""));
  } else if (method == "resources/list") {
    sink.finish(
        200, mcp::ResultResponse(
                 id, CachingHints(ctx, Complete(ctx, {{"resources", Json::array()}}), "public")));
  } else if (method == "resources/templates/list") {
    Json templ = {{"uriTemplate", std::string(kEnvelopeUriPrefix) + "{id}"},
                  {"name", "envelope"},
                  {"title", "Envelope"},
                  {"description",
                   "Status, progress and result of a tool call's pipeline (the envelope id is "
                   "the task id)"},
                  {"mimeType", "application/json"}};
    sink.finish(
        200, mcp::ResultResponse(
                 id, CachingHints(ctx, Complete(ctx, {{"resourceTemplates", Json::array({templ})}}),
                                  "public")));
  } else if (method == "resources/read") {
    ResourcesRead(ctx, message, sink);
  } else if (method == "subscriptions/listen" && ctx.modern) {
    Listen(ctx, message, sink);
  } else {
    Fail(ctx, sink, id, mcp::kMethodNotFound, "Method not found: " + method);
  }
}

void McpHandler::Impl::Initialize(const Json& message, const std::shared_ptr<Reply>& reply) {
  const Json id = IdOf(message);
  const Json& params = ParamsOf(message);
  const auto requested = params.find("protocolVersion");
  if (requested == params.end() || !requested->is_string()) {
    reply->Finish(200, mcp::ErrorResponse(id, mcp::kInvalidParams,
                                          "Invalid params: protocolVersion is required"));
    return;
  }
  store::McpSession session;
  session.id = NewSessionId();
  session.protocol_version = mcp::NegotiateLegacyVersion(requested->get<std::string>());
  if (params.contains("capabilities") && params["capabilities"].is_object()) {
    session.client_capabilities_json = mcp::Dump(params["capabilities"]);
  }
  if (auto opened = service_.OpenSession(session); !opened) {
    log::Warn("MCP session store failed", {{"error", opened.error().message}});
    reply->Finish(503, mcp::ErrorResponse(id, mcp::kInternalError,
                                          "Service Unavailable: the session store cannot be "
                                          "reached"));
    return;
  }
  const std::string& session_id = session.id;
  Json result = {{"protocolVersion", session.protocol_version}};
  result["capabilities"] = Capabilities(false);
  result["serverInfo"] = {{"name", options_.server_name}, {"version", options_.server_version}};
  if (!options_.instructions.empty()) {
    result["instructions"] = options_.instructions;
  }
  reply->AddHeader(std::string(kSessionHeader), session_id);
  reply->Finish(200, mcp::ResultResponse(id, std::move(result)));
}

void McpHandler::Impl::Discover(const Context& ctx, const Json& message, const Sink& sink) {
  Json result = {{"supportedVersions", mcp::SupportedVersions()}};
  result["capabilities"] = Capabilities(true);
  if (!options_.instructions.empty()) {
    result["instructions"] = options_.instructions;
  }
  result["_meta"] = {{std::string(mcp::kMetaServerInfo),
                      {{"name", options_.server_name}, {"version", options_.server_version}}}};
  sink.finish(200,
              mcp::ResultResponse(IdOf(message),
                                  CachingHints(ctx, Complete(ctx, std::move(result)), "public")));
}

void McpHandler::Impl::ToolsList(const Context& ctx, const Json& message, const Sink& sink) {
  const bool with_execution = ctx.modern || ctx.version == "2025-11-25";
  Json tools = Json::array();
  for (const Tool& tool : service_.Tools()) {
    tools.push_back(mcp::ToolEntry(tool, with_execution));
  }
  sink.finish(200, mcp::ResultResponse(
                       IdOf(message),
                       CachingHints(ctx, Complete(ctx, {{"tools", std::move(tools)}}), "public")));
}

bool McpHandler::Impl::CheckParamHeaders(const Context& ctx, const Tool& tool,
                                         const Json& arguments, const Json& id, const Sink& sink) {
  if (!ctx.modern || ctx.request == nullptr) {
    return true;
  }
  for (const mcp::ParamHeader& param : mcp::ParamHeaders(mcp::InputSchema(tool))) {
    const Json* value = &arguments;
    for (const std::string& key : param.path) {
      if (!value->is_object() || !value->contains(key)) {
        value = nullptr;
        break;
      }
      value = &(*value)[key];
    }
    if (value == nullptr || value->is_null()) {
      continue;  // no value: no header expected
    }
    const auto expected = mcp::HeaderForm(*value);
    if (!expected) {
      continue;  // not a primitive the header can mirror
    }
    const std::string name = "Mcp-Param-" + param.header;
    if (!HasHeader(*ctx.request, name)) {
      Fail(ctx, sink, id, mcp::kHeaderMismatch,
           "Header mismatch: the " + name + " header is required (argument present in the body)");
      return false;
    }
    const auto decoded = mcp::DecodeHeaderValue(HeaderValue(*ctx.request, name));
    if (!decoded) {
      Fail(ctx, sink, id, mcp::kHeaderMismatch,
           "Header mismatch: " + name + " has an invalid Base64 value");
      return false;
    }
    bool same = *decoded == *expected;
    if (!same && value->is_number()) {
      // Integers compare numerically ("42.0" matches 42).
      char* end = nullptr;
      const double d = std::strtod(decoded->c_str(), &end);
      same = !decoded->empty() && end == decoded->c_str() + decoded->size() &&
             d == value->get<double>();
    }
    if (!same) {
      Fail(ctx, sink, id, mcp::kHeaderMismatch,
           "Header mismatch: " + name + " header value does not match the argument in the body");
      return false;
    }
  }
  return true;
}

void McpHandler::Impl::ToolsCall(const Context& ctx, const Json& message, const Sink& sink) {
  const Json id = IdOf(message);
  const Json& params = ParamsOf(message);
  const auto name = params.find("name");
  if (name == params.end() || !name->is_string()) {
    Fail(ctx, sink, id, mcp::kInvalidParams, "Invalid params: params.name must be a string");
    return;
  }
  Json arguments = Json::object();
  if (const auto args = params.find("arguments"); args != params.end() && !args->is_null()) {
    if (!args->is_object()) {
      Fail(ctx, sink, id, mcp::kInvalidParams,
           "Invalid params: params.arguments must be an object");
      return;
    }
    arguments = *args;
  }
  const Tool* found = service_.FindTool(name->get<std::string>());
  if (found == nullptr) {
    Fail(ctx, sink, id, mcp::kInvalidParams, "Unknown tool: " + name->get<std::string>());
    return;
  }
  const Tool tool = *found;
  if (!CheckParamHeaders(ctx, tool, arguments, id, sink)) {
    return;
  }
  const bool as_task = ctx.modern && ctx.tasks && tool.task_support != "forbidden";
  if (ctx.modern && !ctx.tasks && tool.task_support == "required") {
    Fail(ctx, sink, id, mcp::kMissingClientCapability,
         "Missing required client capability: tool " + tool.name +
             " runs only as a task (io.modelcontextprotocol/tasks)",
         Json{{"requiredCapabilities",
               {{"extensions", {{std::string(mcp::kTasksExtension), Json::object()}}}}}});
    return;
  }
  Result<store::Envelope> envelope = service_.CallTool(tool.name, mcp::Dump(arguments));
  if (!envelope) {
    const Error& error = envelope.error();
    if (error.code == ErrorCode::kInvalidArgument) {
      // Argument errors are tool errors the model can read and correct.
      sink.finish(200, mcp::ResultResponse(id, Complete(ctx, mcp::ToolErrorResult(error.message))));
    } else if (error.code == ErrorCode::kNotFound) {
      Fail(ctx, sink, id, mcp::kInvalidParams, "Unknown tool: " + tool.name);
    } else {
      Fail(ctx, sink, id, mcp::kInternalError, "Internal error: " + error.message);
    }
    return;
  }
  if (as_task) {
    Json result = {{"resultType", "task"}};
    Json task =
        mcp::TaskOf(*envelope, {options_.task_ttl_ms, options_.task_poll_interval_ms}, false);
    for (auto& [key, value] : task.items()) {
      result[key] = std::move(value);
    }
    sink.finish(200, mcp::ResultResponse(id, std::move(result)));
    return;
  }
  Json progress_token;
  if (const auto meta = params.find("_meta"); meta != params.end() && meta->is_object()) {
    const auto token = meta->find("progressToken");
    if (token != meta->end() && (token->is_string() || token->is_number_integer())) {
      progress_token = *token;
    }
  }
  StartSyncWait(ctx, id, *envelope, tool, std::move(progress_token), sink);
}

void McpHandler::Impl::TasksMethod(const Context& ctx, const Json& message, const Sink& sink) {
  const Json id = IdOf(message);
  const std::string method(MethodOf(message));
  if (!ctx.tasks) {
    Fail(ctx, sink, id, mcp::kMissingClientCapability,
         "Missing required client capability: " + method + " needs the " +
             std::string(mcp::kTasksExtension) + " extension",
         Json{{"requiredCapabilities",
               {{"extensions", {{std::string(mcp::kTasksExtension), Json::object()}}}}}});
    return;
  }
  const Json& params = ParamsOf(message);
  const auto task_id = params.find("taskId");
  if (task_id == params.end() || !task_id->is_string() ||
      task_id->get_ref<const std::string&>().empty()) {
    Fail(ctx, sink, id, mcp::kInvalidParams, "Invalid params: params.taskId must be a string");
    return;
  }
  const std::string tid = task_id->get<std::string>();
  auto unknown = [&](const Error& error) {
    if (error.code == ErrorCode::kNotFound) {
      Fail(ctx, sink, id, mcp::kInvalidParams, "Invalid params: unknown task " + tid);
    } else {
      Fail(ctx, sink, id, mcp::kInternalError, "Internal error: " + error.message);
    }
  };
  if (method == "tasks/get") {
    auto envelope = service_.Get(tid);
    if (!envelope) {
      unknown(envelope.error());
      return;
    }
    sink.finish(
        200,
        mcp::ResultResponse(
            id, Complete(ctx, mcp::TaskOf(*envelope,
                                          {options_.task_ttl_ms, options_.task_poll_interval_ms},
                                          true))));
  } else if (method == "tasks/update") {
    // No pipeline asks for client input: every key is "not outstanding" and ignored.
    if (params.contains("inputResponses") && !params["inputResponses"].is_object()) {
      Fail(ctx, sink, id, mcp::kInvalidParams,
           "Invalid params: params.inputResponses must be an object");
      return;
    }
    auto envelope = service_.Get(tid);
    if (!envelope) {
      unknown(envelope.error());
      return;
    }
    sink.finish(200, mcp::ResultResponse(id, Complete(ctx, Json::object())));
  } else {  // tasks/cancel
    auto transition = service_.Cancel(tid, "cancelled by the client (tasks/cancel)");
    if (!transition) {
      unknown(transition.error());
      return;
    }
    sink.finish(200, mcp::ResultResponse(id, Complete(ctx, Json::object())));
  }
}

void McpHandler::Impl::ResourcesRead(const Context& ctx, const Json& message, const Sink& sink) {
  const Json id = IdOf(message);
  const Json& params = ParamsOf(message);
  const auto uri = params.find("uri");
  if (uri == params.end() || !uri->is_string()) {
    Fail(ctx, sink, id, mcp::kInvalidParams, "Invalid params: params.uri must be a string");
    return;
  }
  const std::string text = uri->get<std::string>();
  const bool ours =
      text.rfind(kEnvelopeUriPrefix, 0) == 0 && text.size() > kEnvelopeUriPrefix.size();
  Result<store::Envelope> envelope =
      ours ? service_.Get(std::string_view(text).substr(kEnvelopeUriPrefix.size()))
           : Result<store::Envelope>(tl::unexpected(Error{ErrorCode::kNotFound, ""}));
  if (!envelope) {
    if (envelope.error().code == ErrorCode::kNotFound) {
      Fail(ctx, sink, id, mcp::kInvalidParams, "Resource not found", Json{{"uri", text}});
    } else {
      Fail(ctx, sink, id, mcp::kInternalError, "Internal error: " + envelope.error().message);
    }
    return;
  }
  Json state = {{"id", envelope->id},
                {"status", std::string(mcp::TaskStatus(*envelope))},
                {"progress_percent", envelope->progress_percent}};
  if (!envelope->message.empty())
    state["message"] = envelope->message;
  if (!envelope->error.empty())
    state["error"] = envelope->error;
  if (!envelope->result_json.empty()) {
    Json result = Json::parse(envelope->result_json, nullptr, false);
    state["result"] = result.is_discarded() ? Json(envelope->result_json) : result;
  }
  Json content = {{"uri", text}, {"mimeType", "application/json"}, {"text", mcp::Dump(state)}};
  sink.finish(200, mcp::ResultResponse(
                       id, CachingHints(ctx, Complete(ctx, {{"contents", Json::array({content})}}),
                                        "private")));
}

// Task status notifications (SEP-2663 over SEP-2575's subscriptions/listen): the stream opens
// with notifications/subscriptions/acknowledged, then carries notifications/tasks with the full
// task state whenever a listed task changes (its current state first). List-changed
// notifications are never honoured: the tool list does not change while the gateway runs.
void McpHandler::Impl::Listen(const Context& ctx, const Json& message, const Sink& sink) {
  const Json id = IdOf(message);
  const Json& params = ParamsOf(message);
  const auto filter = params.find("notifications");
  if (filter == params.end() || !filter->is_object()) {
    Fail(ctx, sink, id, mcp::kInvalidParams,
         "Invalid params: params.notifications must be an object");
    return;
  }
  std::vector<std::string> task_ids;
  if (const auto ids = filter->find("taskIds"); ids != filter->end()) {
    if (!ids->is_array() ||
        !std::all_of(ids->begin(), ids->end(), [](const Json& v) { return v.is_string(); })) {
      Fail(ctx, sink, id, mcp::kInvalidParams,
           "Invalid params: notifications.taskIds must be an array of strings");
      return;
    }
    if (!ctx.tasks) {
      Fail(ctx, sink, id, mcp::kMissingClientCapability,
           "Missing required client capability: task notifications need the " +
               std::string(mcp::kTasksExtension) + " extension",
           Json{{"requiredCapabilities",
                 {{"extensions", {{std::string(mcp::kTasksExtension), Json::object()}}}}}});
      return;
    }
    for (const Json& v : *ids)
      task_ids.push_back(v.get<std::string>());
  }
  auto listen = std::make_shared<ListenCall>();
  listen->key = next_call_++;
  listen->subscription_id = id;
  listen->sink = sink;
  std::weak_ptr<Impl> weak_self = weak_from_this();
  std::weak_ptr<ListenCall> weak_listen = listen;
  const bool streaming = sink.stream([weak_self, weak_listen] {
    if (auto self = weak_self.lock()) {
      self->Post([weak_self, weak_listen] {
        auto impl = weak_self.lock();
        auto l = weak_listen.lock();
        if (impl && l) {
          impl->ReleaseListen(*l);
          std::lock_guard<std::mutex> lock(impl->calls_mu_);
          impl->listens_.erase(l->key);
        }
      });
    }
  });
  if (!streaming) {
    Fail(ctx, sink, id, mcp::kInvalidRequest,
         "Invalid Request: subscriptions/listen answers with an SSE stream; Accept must include "
         "text/event-stream");
    return;
  }
  {
    std::lock_guard<std::mutex> lock(calls_mu_);
    listens_[listen->key] = listen;
  }
  Json honoured = Json::object();
  if (filter->contains("taskIds")) {
    honoured["taskIds"] = task_ids;
  }
  Json ack = {{"jsonrpc", "2.0"}, {"method", "notifications/subscriptions/acknowledged"}};
  ack["params"] = {{"notifications", honoured},
                   {"_meta", {{"io.modelcontextprotocol/subscriptionId", id}}}};
  {
    std::lock_guard<std::mutex> lock(listen->mu);
    sink.notify(ack);
  }
  for (const std::string& task_id : task_ids) {
    auto envelope = service_.Get(task_id);
    if (!envelope) {
      continue;  // unknown ids stay silent
    }
    auto subscription =
        service_.Subscribe(task_id, [weak_self, weak_listen](const store::Update& u) {
          auto self = weak_self.lock();
          auto l = weak_listen.lock();
          if (self && l) {
            self->OnTaskUpdate(l, u);
          }
        });
    // The state after subscribing, so no change between Get and Subscribe is missed.
    auto current = service_.Get(task_id);
    std::lock_guard<std::mutex> lock(listen->mu);
    listen->subscriptions.push_back(std::move(subscription));
    if (current && !listen->done) {
      listen->tasks[task_id] = *current;
      SendTask(*listen, *current);
    }
  }
}

void McpHandler::Impl::OnTaskUpdate(const std::shared_ptr<ListenCall>& listen,
                                    const store::Update& u) {
  std::lock_guard<std::mutex> lock(listen->mu);
  if (listen->done) {
    return;
  }
  auto& last = listen->last_seq[u.envelope_id];
  if (u.seq != 0 && u.seq <= last) {
    return;
  }
  last = std::max(last, u.seq);
  auto it = listen->tasks.find(u.envelope_id);
  if (it == listen->tasks.end()) {
    return;
  }
  store::Envelope& e = it->second;
  if (store::IsFinal(e.status)) {
    return;  // final states are final: nothing more to tell
  }
  const std::string before(mcp::TaskStatus(e));
  e.status = u.status;
  if (!u.message.empty())
    e.message = u.message;
  if (!u.error.empty())
    e.error = u.error;
  if (!u.result_json.empty())
    e.result_json = u.result_json;
  if (u.timestamp > e.updated_at)
    e.updated_at = u.timestamp;
  if (std::string(mcp::TaskStatus(e)) != before || store::IsFinal(e.status)) {
    SendTask(*listen, e);
  }
}

void McpHandler::Impl::SendTask(ListenCall& listen, const store::Envelope& envelope) {
  Json params = mcp::TaskOf(envelope, {options_.task_ttl_ms, options_.task_poll_interval_ms}, true);
  params["_meta"] = {{"io.modelcontextprotocol/subscriptionId", listen.subscription_id}};
  Json notification = {{"jsonrpc", "2.0"}, {"method", "notifications/tasks"}};
  notification["params"] = std::move(params);
  listen.sink.notify(notification);
}

void McpHandler::Impl::ReleaseListen(ListenCall& listen) {
  std::vector<std::unique_ptr<Subscription>> subscriptions;
  {
    std::lock_guard<std::mutex> lock(listen.mu);
    listen.done = true;
    subscriptions.swap(listen.subscriptions);
  }
  for (auto& s : subscriptions) {
    s->Cancel();
  }
}

// ================================ synchronous tool calls ================================

void McpHandler::Impl::StartSyncWait(const Context& ctx, const Json& id,
                                     const store::Envelope& envelope, const Tool& tool,
                                     Json progress_token, const Sink& sink) {
  auto call = std::make_shared<SyncCall>();
  call->key = next_call_++;
  call->envelope_id = envelope.id;
  call->rpc_id = id;
  call->progress_token = std::move(progress_token);
  call->modern = ctx.modern;
  call->sink = sink;
  {
    std::lock_guard<std::mutex> lock(calls_mu_);
    calls_[call->key] = call;
  }
  std::weak_ptr<Impl> weak_self = weak_from_this();
  std::weak_ptr<SyncCall> weak_call = call;
  if (!call->progress_token.is_null()) {
    // Stream the answer so progress can flow; a client that goes away cancels the pipeline
    // (the modern binding's cancellation) or just stops waiting (legacy).
    sink.stream([weak_self, weak_call] {
      // May run inside the server's stream code: do the work on the timer thread.
      auto self = weak_self.lock();
      if (!self) {
        return;
      }
      self->Post([weak_self, weak_call] {
        auto impl = weak_self.lock();
        auto c = weak_call.lock();
        if (!impl || !c) {
          return;
        }
        std::uint64_t timer = 0;
        {
          std::lock_guard<std::mutex> lock(c->mu);
          if (c->done) {
            return;
          }
          c->done = true;
          timer = c->timer;
        }
        impl->CancelTimer(timer);
        if (c->modern) {
          (void)impl->service_.Cancel(c->envelope_id, "the client closed the request stream");
        }
        impl->ReleaseSubscription(*c);
        impl->Forget(c->key);
      });
    });
  }
  auto subscription =
      service_.Subscribe(envelope.id, [weak_self, weak_call](const store::Update& u) {
        auto self = weak_self.lock();
        auto c = weak_call.lock();
        if (self && c) {
          self->OnUpdate(c, u);
        }
      });
  {
    std::lock_guard<std::mutex> lock(call->mu);
    call->subscription = std::move(subscription);
  }
  // Bounded wait: the tool's deadline (enforced by the store) plus grace, at most max_sync_wait.
  Clock::Duration wait = options_.max_sync_wait;
  if (tool.timeout_seconds > 0) {
    wait = std::min<Clock::Duration>(
        wait, std::chrono::seconds(tool.timeout_seconds) + options_.sync_grace);
  }
  const std::uint64_t timer = AddTimer(wait, [weak_self, weak_call, wait] {
    auto self = weak_self.lock();
    auto c = weak_call.lock();
    if (!self || !c) {
      return;
    }
    const auto secs = std::chrono::duration_cast<std::chrono::milliseconds>(wait).count() / 1000.0;
    char text[64];
    std::snprintf(text, sizeof text, "%.1f", secs);
    Json result = mcp::ToolErrorResult("the pipeline is still running after " + std::string(text) +
                                       " s; its envelope is " + c->envelope_id +
                                       " (GET /envelopes/" + c->envelope_id + " for its status)");
    result["structuredContent"] = {{"envelope_id", c->envelope_id},
                                   {"status_url", "/envelopes/" + c->envelope_id}};
    self->FinishCall(c, std::move(result));
  });
  {
    std::lock_guard<std::mutex> lock(call->mu);
    call->timer = timer;
  }
  // Replay what happened before the subscription started (seq-deduplicated), then check whether
  // the envelope already finished.
  if (auto history = service_.History(envelope.id, 0)) {
    for (const store::Update& u : *history) {
      OnUpdate(call, u);
    }
  }
  if (auto current = service_.Get(envelope.id); current && store::IsFinal(current->status)) {
    FinishCall(call, mcp::CallToolResultOf(*current));
  }
}

void McpHandler::Impl::OnUpdate(const std::shared_ptr<SyncCall>& call, const store::Update& u) {
  Json notification;
  bool final = false;
  {
    std::lock_guard<std::mutex> lock(call->mu);
    if (call->done || (u.seq != 0 && u.seq <= call->last_seq)) {
      return;
    }
    call->last_seq = std::max(call->last_seq, u.seq);
    final = store::IsFinal(u.status);
    if (!call->progress_token.is_null()) {
      double pct = u.progress_percent.value_or(-1);
      if (final && u.status == store::Status::kSucceeded) {
        pct = 100;
      }
      if (pct > call->last_progress) {
        call->last_progress = pct;
        Json params = {{"progressToken", call->progress_token}, {"progress", pct}, {"total", 100}};
        if (!u.message.empty()) {
          params["message"] = u.message;
        }
        notification = {{"jsonrpc", "2.0"},
                        {"method", "notifications/progress"},
                        {"params", std::move(params)}};
        // Sent under the call's lock so notifications leave in order and never after the result.
        call->sink.notify(notification);
      }
    }
  }
  if (final) {
    store::Envelope envelope;
    envelope.id = call->envelope_id;
    envelope.status = u.status;
    envelope.result_json = u.result_json;
    envelope.error = u.error;
    envelope.message = u.message;
    FinishCall(call, mcp::CallToolResultOf(envelope));
  }
}

void McpHandler::Impl::FinishCall(const std::shared_ptr<SyncCall>& call, Json result) {
  std::uint64_t timer = 0;
  {
    std::lock_guard<std::mutex> lock(call->mu);
    if (call->done) {
      return;
    }
    call->done = true;
    timer = call->timer;
  }
  CancelTimer(timer);
  Context ctx;
  ctx.modern = call->modern;
  call->sink.finish(200, mcp::ResultResponse(call->rpc_id, Complete(ctx, std::move(result))));
  // Unsubscribe away from the feed thread that may be calling us right now.
  std::weak_ptr<Impl> weak_self = weak_from_this();
  Post([weak_self, call] {
    if (auto self = weak_self.lock()) {
      self->ReleaseSubscription(*call);
      self->Forget(call->key);
    }
  });
}

void McpHandler::Impl::ReleaseSubscription(SyncCall& call) {
  std::unique_ptr<Subscription> subscription;
  {
    std::lock_guard<std::mutex> lock(call.mu);
    subscription = std::move(call.subscription);
  }
  if (subscription) {
    subscription->Cancel();
  }
}

void McpHandler::Impl::Forget(std::uint64_t key) {
  std::shared_ptr<SyncCall> call;
  std::lock_guard<std::mutex> lock(calls_mu_);
  const auto it = calls_.find(key);
  if (it != calls_.end()) {
    call = std::move(it->second);
    calls_.erase(it);
  }
}

// ================================ timers ================================

std::uint64_t McpHandler::Impl::AddTimer(Clock::Duration after, std::function<void()> fn) {
  std::lock_guard<std::mutex> lock(timer_mu_);
  const std::uint64_t id = next_timer_++;
  const auto it = timers_.emplace(clock_.Now() + after, id);
  timer_fns_[id] = {it, std::move(fn)};
  wake_ = true;
  timer_cv_.notify_all();
  return id;
}

void McpHandler::Impl::CancelTimer(std::uint64_t id) {
  std::lock_guard<std::mutex> lock(timer_mu_);
  const auto it = timer_fns_.find(id);
  if (it != timer_fns_.end()) {
    timers_.erase(it->second.first);
    timer_fns_.erase(it);
  }
}

void McpHandler::Impl::Post(std::function<void()> fn) {
  {
    std::lock_guard<std::mutex> lock(timer_mu_);
    if (stop_) {
      return;
    }
    posted_.push_back(std::move(fn));
    wake_ = true;
  }
  timer_cv_.notify_all();
}

void McpHandler::Impl::TimerLoop() {
  std::unique_lock<std::mutex> lock(timer_mu_);
  while (!stop_) {
    if (!posted_.empty()) {
      auto fn = std::move(posted_.front());
      posted_.pop_front();
      lock.unlock();
      fn();
      lock.lock();
      continue;
    }
    if (!timers_.empty() && timers_.begin()->first <= clock_.Now()) {
      const std::uint64_t id = timers_.begin()->second;
      timers_.erase(timers_.begin());
      auto node = timer_fns_.extract(id);
      lock.unlock();
      if (!node.empty()) {
        node.mapped().second();
      }
      lock.lock();
      continue;
    }
    wake_ = false;
    if (timers_.empty()) {
      timer_cv_.wait(lock, [this] { return stop_ || wake_; });
    } else {
      const Clock::Duration left = timers_.begin()->first - clock_.Now();
      clock_.WaitFor(lock, timer_cv_, left, [this] { return stop_ || wake_; });
    }
  }
}

// ================================ legacy sessions ================================

SessionLookup McpHandler::Impl::LookupSession(const std::string& id) {
  SessionLookup out;
  auto found = service_.FindSession(id);
  if (found) {
    out.session = std::move(*found);
  } else if (found.error().code == ErrorCode::kNotFound) {
    out.status = 404;
    out.error = "Session not found: initialize a new session";
  } else {
    log::Warn("MCP session store failed", {{"error", found.error().message}});
    out.status = 503;
    out.error = "Service Unavailable: the session store cannot be reached";
  }
  return out;
}

void McpHandler::Impl::CloseStreams(const std::string& session_id) {
  std::vector<std::shared_ptr<EventStream>> streams;
  {
    std::lock_guard<std::mutex> lock(streams_mu_);
    if (auto node = streams_.extract(session_id); !node.empty()) {
      streams = std::move(node.mapped());
    }
  }
  for (const auto& stream : streams) {
    stream->Close();
  }
}

void McpHandler::Impl::CloseStreamsOfEndedSessions() {
  std::vector<std::string> ids;
  {
    std::lock_guard<std::mutex> lock(streams_mu_);
    for (auto it = streams_.begin(); it != streams_.end();) {
      auto& streams = it->second;
      streams.erase(
          std::remove_if(streams.begin(), streams.end(),
                         [](const std::shared_ptr<EventStream>& s) { return s->Closed(); }),
          streams.end());
      if (streams.empty()) {
        it = streams_.erase(it);
      } else {
        ids.push_back(it->first);
        ++it;
      }
    }
  }
  for (const std::string& id : ids) {
    auto found = service_.FindSession(id);
    if (!found && found.error().code == ErrorCode::kNotFound) {
      CloseStreams(id);
    }
  }
}

// ================================ public ================================

McpHandler::McpHandler(Service& service, Clock& clock, McpOptions options)
    : impl_(std::make_shared<Impl>(service, clock, std::move(options))) {}

McpHandler::~McpHandler() {
  impl_->Stop();
}

void McpHandler::Handle(Request request, Responder responder) {
  impl_->Handle(std::move(request), std::move(responder));
}

Handler McpHandler::AsHandler() {
  return [this](Request request, Responder responder) {
    Handle(std::move(request), std::move(responder));
  };
}

}  // namespace asya::gateway
