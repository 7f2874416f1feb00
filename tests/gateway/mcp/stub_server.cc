// mcp_stub_server: McpHandler behind a minimal blocking HTTP/1.1 server, over an in-memory
// Service whose "pipelines" are the conformance fixture tools run on threads. It lets the official
// conformance suite exercise the MCP layer without a mesh; the real end-to-end test runs the same
// fixtures on actors behind asya-gateway (run_conformance.py --gateway).
//
// Usage: mcp_stub_server [port]   (prints "listening <port>" once ready; 0 picks a free port)
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "asya/gateway/mcp.h"

namespace {

using asya::ErrorCode;
using asya::Result;
using namespace asya::gateway;
namespace store = asya::store;
using Json = nlohmann::ordered_json;

// ---------------------------------------------------------------- fixture service

struct Behaviour {
  std::string result;      // JSON result on success
  std::string tool_error;  // non-empty: the tool fails with this error (error-end)
  bool not_run = false;    // the pipeline cannot run (deadline passes)
  int delay_ms = 20;
  std::vector<double> progress;  // progress reports before the end
};

class StubService final : public Service {
 public:
  StubService() {
    Add("test_simple_text", "Returns a simple text response", R"({"type":"object"})", "forbidden",
        {R"("This is a simple text response for testing.")"});
    const std::string png =
        "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5Erk"
        "Jggg==";
    Add("test_image_content", "Returns an image", R"({"type":"object"})", "forbidden",
        {R"({"content":[{"type":"image","data":")" + png + R"(","mimeType":"image/png"}]})"});
    Add("test_audio_content", "Returns audio", R"({"type":"object"})", "forbidden",
        {R"({"content":[{"type":"audio","data":"UklGRiQAAABXQVZFZm10IBAAAAABAAEAQB8AAEAfAAABAAgAZGF0YQAAAAA=","mimeType":"audio/wav"}]})"});
    Add("test_embedded_resource", "Returns an embedded resource", R"({"type":"object"})",
        "forbidden",
        {R"({"content":[{"type":"resource","resource":{"uri":"test://embedded-resource","mimeType":"text/plain","text":"This is an embedded resource content."}}]})"});
    Add("test_multiple_content_types", "Returns text, image and a resource", R"({"type":"object"})",
        "forbidden",
        {R"({"content":[{"type":"text","text":"Multiple content types test:"},{"type":"image","data":")" +
         png +
         R"(","mimeType":"image/png"},{"type":"resource","resource":{"uri":"test://mixed-content-resource","mimeType":"application/json","text":"{\"test\":\"data\",\"value\":123}"}}]})"});
    Add("test_error_handling", "Always fails", R"({"type":"object"})", "forbidden",
        {"", "This tool intentionally returns an error for testing"});
    Add("test_tool_with_progress", "Reports progress", R"({"type":"object"})", "forbidden",
        {R"("Progress test completed")", "", false, 50, {0, 50}});
    Add("test_reconnection", "Takes a moment", R"({"type":"object"})", "forbidden",
        {R"("Reconnection test completed")", "", false, 200});
    Add("json_schema_2020_12_tool", "Tool with JSON Schema 2020-12 features",
        R"({"$schema":"https://json-schema.org/draft/2020-12/schema","type":"object","$defs":{"address":{"$anchor":"addressDef","type":"object","properties":{"street":{"type":"string"},"city":{"type":"string"}}}},"properties":{"name":{"type":"string"},"address":{"$ref":"#/$defs/address"},"contactMethod":{"type":"string","enum":["phone","email"]},"phone":{"type":"string"},"email":{"type":"string"}},"allOf":[{"anyOf":[{"required":["phone"]},{"required":["email"]}]}],"if":{"properties":{"contactMethod":{"const":"phone"}},"required":["contactMethod"]},"then":{"required":["phone"]},"else":{"required":["email"]},"additionalProperties":false})",
        "forbidden", {R"("ok")"});
    Add("greet", "Greets by name",
        R"({"type":"object","properties":{"name":{"type":"string"}},"required":["name"]})",
        "forbidden", {});
    Add("slow_compute", "Sleeps `seconds`, then answers",
        R"({"type":"object","properties":{"seconds":{"type":"number"},"label":{"type":"string"}}})",
        "optional", {});
    Add("failing_job", "Fails after a second", R"({"type":"object"})", "required",
        {"", "failing_job: intentional failure", false, 1000});
    Add("protocol_error_job", "Cannot run", R"({"type":"object"})", "optional",
        {"", "", true, 300});
    Add("test_logging_tool", "Runs without logging (no logLevel requested)", R"({"type":"object"})",
        "forbidden", {R"("logged nothing")"});
    Add("confirm_delete", "Pretends to delete a file after a moment",
        R"({"type":"object","properties":{"filename":{"type":"string"}}})", "optional",
        {R"("not deleted: the gateway's pipelines do not ask for confirmation")", "", false, 1500});
    Add("regional_echo", "Echoes a region (mirrored in the Mcp-Param-Region header)",
        R"({"type":"object","properties":{"region":{"type":"string","x-mcp-header":"Region"}},"required":["region"]})",
        "forbidden", {});
  }

  ~StubService() override {
    for (auto& t : workers_)
      t.join();
  }

  std::vector<Tool> Tools() const override { return tools_; }
  const Tool* FindTool(std::string_view name) const override {
    for (const Tool& t : tools_) {
      if (t.name == name)
        return &t;
    }
    return nullptr;
  }

  Result<store::Envelope> CallTool(std::string_view name, std::string_view arguments) override {
    const Tool* tool = FindTool(name);
    if (tool == nullptr)
      return tl::unexpected(asya::Error{ErrorCode::kNotFound, "no such tool"});
    const Json args = Json::parse(arguments);
    const Json schema = Json::parse(tool->input_schema_json);
    if (schema.contains("required")) {
      for (const auto& r : schema["required"]) {
        if (!args.contains(r.get<std::string>()) && tool->name != "json_schema_2020_12_tool") {
          return tl::unexpected(asya::Error{ErrorCode::kInvalidArgument,
                                            "missing required parameter: " + r.get<std::string>()});
        }
      }
    }
    Behaviour b = behaviours_.at(tool->name);
    if (tool->name == "greet") {
      b.result = Json("Hello, " + args.value("name", std::string("World")) + "!").dump();
    } else if (tool->name == "regional_echo") {
      b.result = Json({{"region", args.value("region", "")}}).dump();
    } else if (tool->name == "slow_compute") {
      const double secs = args.contains("seconds") && args["seconds"].is_number()
                              ? args["seconds"].get<double>()
                              : 0.0;
      b.delay_ms = static_cast<int>(secs * 1000);
      b.result = Json({{"label", args.value("label", "")}, {"seconds", secs}}).dump();
    }
    store::Envelope e;
    {
      std::lock_guard<std::mutex> lock(mu_);
      e.id = "task-" + std::to_string(++next_) + "-" + std::to_string(::getpid());
      e.tool = tool->name;
      e.created_at = e.updated_at = std::chrono::system_clock::now();
      envelopes_[e.id] = e;
    }
    Append(e.id, store::Status::kPending, "Envelope created", "", "", 0);
    std::lock_guard<std::mutex> lock(mu_);
    workers_.emplace_back([this, id = e.id, b] { Run(id, b); });
    return e;
  }

  Result<store::Envelope> Get(std::string_view id) override {
    std::lock_guard<std::mutex> lock(mu_);
    const auto it = envelopes_.find(std::string(id));
    if (it == envelopes_.end()) {
      return tl::unexpected(asya::Error{ErrorCode::kNotFound, "envelope not found"});
    }
    return it->second;
  }
  Result<std::vector<store::Update>> History(std::string_view id, std::int64_t after) override {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<store::Update> out;
    for (const auto& u : history_[std::string(id)]) {
      if (u.seq > after)
        out.push_back(u);
    }
    return out;
  }
  Result<std::vector<std::string>> Children(std::string_view) override {
    return std::vector<std::string>{};
  }
  Result<store::Transition> Cancel(std::string_view id, std::string_view reason) override {
    if (!Get(id))
      return tl::unexpected(asya::Error{ErrorCode::kNotFound, "envelope not found"});
    return Finish(std::string(id), store::Status::kCancelled, "", std::string(reason));
  }
  std::unique_ptr<Subscription> Subscribe(std::string_view id,
                                          std::function<void(const store::Update&)> cb) override {
    std::lock_guard<std::mutex> lock(mu_);
    const int key = ++next_sub_;
    subs_[key] = {std::string(id), std::move(cb)};
    return std::make_unique<Sub>(this, key);
  }

 private:
  struct Sub final : Subscription {
    Sub(StubService* s, int k) : service(s), key(k) {}
    ~Sub() override { Cancel(); }
    void Cancel() override {
      std::lock_guard<std::mutex> lock(service->mu_);
      service->subs_.erase(key);
    }
    StubService* service;
    int key;
  };

  void Add(const std::string& name, const std::string& description, const std::string& schema,
           const std::string& task_support, Behaviour b) {
    Tool t;
    t.name = name;
    t.description = description;
    t.input_schema_json = schema;
    t.route = {name};
    t.task_support = task_support;
    t.timeout_seconds = 120;
    tools_.push_back(t);
    behaviours_[name] = std::move(b);
  }

  void Run(const std::string& id, const Behaviour& b) {
    Append(id, store::Status::kRunning, "Sending envelope to first actor", "", "", 0);
    for (double p : b.progress) {
      Progress(id, p);
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    // Sleep in slices so a cancelled envelope's worker ends early.
    for (int slept = 0; slept < b.delay_ms; slept += 20) {
      if (auto e = Get(id); e && store::IsFinal(e->status))
        return;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    if (b.not_run) {
      Finish(id, store::Status::kFailed, "", "envelope timed out");
    } else if (!b.tool_error.empty()) {
      Finish(id, store::Status::kFailed, "", b.tool_error);
    } else {
      Finish(id, store::Status::kSucceeded, b.result, "");
    }
  }

  void Progress(const std::string& id, double pct) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto& e = envelopes_.at(id);
      if (store::IsFinal(e.status))
        return;
      e.status = store::Status::kRunning;
      e.progress_percent = pct;
      e.updated_at = std::chrono::system_clock::now();
    }
    Append(id, store::Status::kRunning, "processing", "", "", pct);
  }

  Result<store::Transition> Finish(const std::string& id, store::Status status,
                                   const std::string& result, const std::string& error) {
    store::Transition t;
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto& e = envelopes_.at(id);
      if (store::IsFinal(e.status)) {
        t.envelope = e;
        return t;
      }
      e.status = status;
      e.result_json = result;
      e.error = error;
      e.progress_percent = 100;
      e.updated_at = std::chrono::system_clock::now();
      t.applied = true;
      t.envelope = e;
    }
    Append(id, status, "", error, result, 100);
    return t;
  }

  void Append(const std::string& id, store::Status status, const std::string& message,
              const std::string& error, const std::string& result, double pct) {
    store::Update u;
    std::vector<std::function<void(const store::Update&)>> callbacks;
    {
      std::lock_guard<std::mutex> lock(mu_);
      u.seq = ++seq_;
      u.envelope_id = id;
      u.status = status;
      u.message = message;
      u.error = error;
      u.result_json = result;
      u.progress_percent = pct;
      history_[id].push_back(u);
      for (auto& [key, sub] : subs_) {
        if (sub.first == id)
          callbacks.push_back(sub.second);
      }
    }
    for (auto& cb : callbacks)
      cb(u);
  }

  std::vector<Tool> tools_;
  std::map<std::string, Behaviour> behaviours_;
  std::mutex mu_;
  int next_ = 0;
  int next_sub_ = 0;
  std::int64_t seq_ = 0;
  std::map<std::string, store::Envelope> envelopes_;
  std::map<std::string, std::vector<store::Update>> history_;
  std::map<int, std::pair<std::string, std::function<void(const store::Update&)>>> subs_;
  std::vector<std::thread> workers_;
};

// ---------------------------------------------------------------- minimal HTTP/1.1

bool WriteAll(int fd, const std::string& data) {
  std::size_t off = 0;
  while (off < data.size()) {
    const ssize_t n = ::send(fd, data.data() + off, data.size() - off, MSG_NOSIGNAL);
    if (n <= 0)
      return false;
    off += static_cast<std::size_t>(n);
  }
  return true;
}

const char* Reason(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 202:
      return "Accepted";
    case 400:
      return "Bad Request";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 406:
      return "Not Acceptable";
    case 415:
      return "Unsupported Media Type";
    default:
      return "Status";
  }
}

// One connection's answer in progress; the connection thread waits for it to complete.
struct Exchange {
  int fd = -1;
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  bool keep_alive = true;
  std::function<void()> on_close;
  bool closed = false;

  void Complete(bool keep) {
    std::lock_guard<std::mutex> lock(mu);
    done = true;
    keep_alive = keep;
    cv.notify_all();
  }
};

class ChunkedStream final : public EventStream {
 public:
  explicit ChunkedStream(std::shared_ptr<Exchange> ex) : ex_(std::move(ex)) {}
  bool Send(std::string bytes) override {
    std::lock_guard<std::mutex> lock(ex_->mu);
    if (ex_->closed)
      return false;
    char size[32];
    std::snprintf(size, sizeof size, "%zx\r\n", bytes.size());
    return WriteAll(ex_->fd, size + bytes + "\r\n");
  }
  void Close() override { End(true); }
  bool Closed() const override {
    std::lock_guard<std::mutex> lock(ex_->mu);
    return ex_->closed;
  }
  void OnClose(std::function<void()> cb) override {
    std::lock_guard<std::mutex> lock(ex_->mu);
    ex_->on_close = std::move(cb);
  }
  // Ends the stream: by the handler (write the last chunk) or because the client left.
  void End(bool write_last) {
    std::function<void()> cb;
    {
      std::lock_guard<std::mutex> lock(ex_->mu);
      if (ex_->closed)
        return;
      ex_->closed = true;
      if (write_last)
        WriteAll(ex_->fd, "0\r\n\r\n");
      cb = std::move(ex_->on_close);
      ex_->done = true;
      ex_->keep_alive = write_last;
      ex_->cv.notify_all();
    }
    if (cb)
      cb();
  }

 private:
  std::shared_ptr<Exchange> ex_;
};

class SocketResponder final : public Responder::Impl {
 public:
  explicit SocketResponder(std::shared_ptr<Exchange> ex) : ex_(std::move(ex)) {}
  ~SocketResponder() override {
    std::lock_guard<std::mutex> lock(ex_->mu);
    if (!answered_) {
      WriteAll(ex_->fd, "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n");
      ex_->done = true;
      ex_->cv.notify_all();
    }
  }
  void Reply(Response r) override {
    std::string out = "HTTP/1.1 " + std::to_string(r.status) + " " + Reason(r.status) + "\r\n";
    for (const auto& [k, v] : r.headers)
      out += k + ": " + v + "\r\n";
    out += "Content-Length: " + std::to_string(r.body.size()) + "\r\n\r\n" + r.body;
    {
      std::lock_guard<std::mutex> lock(ex_->mu);
      answered_ = true;
      WriteAll(ex_->fd, out);
    }
    ex_->Complete(true);
  }
  std::shared_ptr<EventStream> OpenStream(int status, Headers headers) override {
    std::string out = "HTTP/1.1 " + std::to_string(status) + " " + Reason(status) + "\r\n";
    for (const auto& [k, v] : headers)
      out += k + ": " + v + "\r\n";
    out += "Transfer-Encoding: chunked\r\n\r\n";
    std::lock_guard<std::mutex> lock(ex_->mu);
    answered_ = true;
    WriteAll(ex_->fd, out);
    auto stream = std::make_shared<ChunkedStream>(ex_);
    stream_ = stream;
    return stream;
  }
  std::weak_ptr<ChunkedStream> stream_;

 private:
  std::shared_ptr<Exchange> ex_;
  bool answered_ = false;
};

void ServeConnection(int fd, McpHandler& mcp) {
  std::string buf;
  char chunk[65536];
  for (;;) {
    std::size_t header_end;
    while ((header_end = buf.find("\r\n\r\n")) == std::string::npos) {
      const ssize_t n = ::recv(fd, chunk, sizeof chunk, 0);
      if (n <= 0)
        return;
      buf.append(chunk, static_cast<std::size_t>(n));
    }
    Request req;
    const std::string head = buf.substr(0, header_end);
    std::size_t line_end = head.find("\r\n");
    const std::string first = head.substr(0, line_end);
    const auto sp1 = first.find(' ');
    const auto sp2 = first.find(' ', sp1 + 1);
    req.method = first.substr(0, sp1);
    std::string target = first.substr(sp1 + 1, sp2 - sp1 - 1);
    const auto q = target.find('?');
    req.path = target.substr(0, q);
    if (q != std::string::npos)
      req.query = target.substr(q + 1);
    std::size_t pos = line_end == std::string::npos ? head.size() : line_end + 2;
    while (pos < head.size()) {
      std::size_t e = head.find("\r\n", pos);
      if (e == std::string::npos)
        e = head.size();
      const std::string line = head.substr(pos, e - pos);
      const auto colon = line.find(':');
      if (colon != std::string::npos) {
        std::string value = line.substr(colon + 1);
        while (!value.empty() && value.front() == ' ')
          value.erase(0, 1);
        req.headers[line.substr(0, colon)] = value;
      }
      pos = e + 2;
    }
    std::size_t length = 0;
    if (auto it = req.headers.find("Content-Length"); it != req.headers.end()) {
      length = std::stoul(it->second);
    }
    buf.erase(0, header_end + 4);
    while (buf.size() < length) {
      const ssize_t n = ::recv(fd, chunk, sizeof chunk, 0);
      if (n <= 0)
        return;
      buf.append(chunk, static_cast<std::size_t>(n));
    }
    req.body = buf.substr(0, length);
    buf.erase(0, length);
    if (req.path != "/mcp") {
      WriteAll(fd, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
      continue;
    }
    auto ex = std::make_shared<Exchange>();
    ex->fd = fd;
    auto responder = std::make_shared<SocketResponder>(ex);
    std::weak_ptr<SocketResponder> weak_responder = responder;
    mcp.Handle(std::move(req), Responder(std::move(responder)));
    // Wait for the answer; while a stream is open, watch for the client leaving.
    std::unique_lock<std::mutex> lock(ex->mu);
    while (!ex->done) {
      ex->cv.wait_for(lock, std::chrono::milliseconds(50));
      if (ex->done)
        break;
      lock.unlock();
      pollfd p{fd, POLLIN | POLLRDHUP, 0};
      bool gone = false;
      if (::poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR)))
        gone = true;
      if (gone) {
        std::shared_ptr<ChunkedStream> stream;
        if (auto r = weak_responder.lock())
          stream = r->stream_.lock();
        if (stream)
          stream->End(false);
        lock.lock();
        ex->done = true;
        ex->keep_alive = false;
        break;
      }
      lock.lock();
    }
    if (!ex->keep_alive)
      return;
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::signal(SIGPIPE, SIG_IGN);
  const int port = argc > 1 ? std::atoi(argv[1]) : 0;
  StubService service;
  McpOptions options;
  options.allowed_hosts = {"localhost", "127.0.0.1", "[::1]", "::1"};
  options.max_sync_wait = std::chrono::seconds(60);
  McpHandler mcp(service, asya::SystemClock(), options);

  const int listener = ::socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  ::setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  if (::bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::listen(listener, 128) != 0) {
    std::perror("bind/listen");
    return 1;
  }
  socklen_t len = sizeof addr;
  ::getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len);
  std::printf("listening %d\n", ntohs(addr.sin_port));
  std::fflush(stdout);
  for (;;) {
    const int fd = ::accept(listener, nullptr, nullptr);
    if (fd < 0)
      continue;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    std::thread([fd, &mcp] {
      ServeConnection(fd, mcp);
      ::close(fd);
    }).detach();
  }
}
