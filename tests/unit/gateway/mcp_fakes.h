// Test doubles for the MCP layer: a fake Service (envelopes in memory, finished on command), a
// recording Responder with fake SSE streams, and request builders for each protocol era.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "asya/gateway/http.h"
#include "asya/gateway/mcp.h"
#include "asya/gateway/service.h"

namespace asya::gateway::testing {

using Json = nlohmann::ordered_json;

class FakeService final : public Service {
 public:
  std::vector<Tool> tools;
  // When set, CallTool finishes the new envelope at once with this status/result/error.
  std::optional<store::FinalReport> finish_on_call;

  std::vector<Tool> Tools() const override { return tools; }

  const Tool* FindTool(std::string_view name) const override {
    for (const Tool& t : tools) {
      if (t.name == name)
        return &t;
    }
    return nullptr;
  }

  Result<store::Envelope> CallTool(std::string_view name, std::string_view arguments) override {
    const Tool* tool = FindTool(name);
    if (tool == nullptr) {
      return tl::unexpected(Error{ErrorCode::kNotFound, "tool not found"});
    }
    // Validates against the schema's `required` and `properties.*.type` (integer/string).
    const Json args = Json::parse(arguments);
    const Json schema =
        tool->input_schema_json.empty() ? Json::object() : Json::parse(tool->input_schema_json);
    if (schema.contains("required")) {
      for (const auto& r : schema["required"]) {
        if (!args.contains(r.get<std::string>())) {
          return tl::unexpected(Error{ErrorCode::kInvalidArgument,
                                      "missing required parameter: " + r.get<std::string>()});
        }
      }
    }
    if (schema.contains("properties")) {
      for (auto& [key, prop] : schema["properties"].items()) {
        if (!args.contains(key) || !prop.contains("type"))
          continue;
        const std::string type = prop["type"].get<std::string>();
        if ((type == "integer" && !args[key].is_number_integer()) ||
            (type == "string" && !args[key].is_string())) {
          return tl::unexpected(
              Error{ErrorCode::kInvalidArgument, "parameter " + key + " must be of type " + type});
        }
      }
    }
    store::Envelope e;
    {
      std::lock_guard<std::mutex> lock(mu_);
      e.id = "env-" + std::to_string(++next_id_);
      e.tool = std::string(name);
      e.payload_json = std::string(arguments);
      e.created_at = e.updated_at = store::TimePoint(std::chrono::seconds(1'700'000'000));
      envelopes_[e.id] = e;
    }
    Append(e.id, store::Status::kPending, "", "", "", std::nullopt);
    if (finish_on_call) {
      Finish(e.id, *finish_on_call);
      return Get(e.id);
    }
    return e;
  }

  Result<store::Envelope> Get(std::string_view id) override {
    std::lock_guard<std::mutex> lock(mu_);
    const auto it = envelopes_.find(std::string(id));
    if (it == envelopes_.end()) {
      return tl::unexpected(Error{ErrorCode::kNotFound, "envelope not found"});
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
    {
      std::lock_guard<std::mutex> lock(mu_);
      cancelled_.emplace_back(id);
      if (!envelopes_.count(std::string(id))) {
        return tl::unexpected(Error{ErrorCode::kNotFound, "envelope not found"});
      }
    }
    store::FinalReport report;
    report.status = store::Status::kCancelled;
    report.error = std::string(reason);
    return Finish(std::string(id), report);
  }

  std::unique_ptr<Subscription> Subscribe(
      std::string_view id, std::function<void(const store::Update&)> on_update) override {
    std::lock_guard<std::mutex> lock(mu_);
    const int key = ++next_sub_;
    subs_[key] = {std::string(id), std::move(on_update)};
    return std::make_unique<Sub>(this, key);
  }

  Result<void> OpenSession(const store::McpSession& session) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (!sessions_.emplace(session.id, session).second) {
      return tl::unexpected(Error{ErrorCode::kAlreadyExists, "session exists"});
    }
    return {};
  }

  Result<store::McpSession> FindSession(std::string_view id) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (sessions_unavailable) {
      return tl::unexpected(Error{ErrorCode::kUnavailable, "store down"});
    }
    const auto it = sessions_.find(std::string(id));
    if (it == sessions_.end()) {
      return tl::unexpected(Error{ErrorCode::kNotFound, "session not found"});
    }
    return it->second;
  }

  Result<bool> EndSession(std::string_view id) override {
    std::lock_guard<std::mutex> lock(mu_);
    return sessions_.erase(std::string(id)) > 0;
  }

  // ---- test controls ----
  // FindSession answers kUnavailable (a store that cannot be reached).
  std::atomic<bool> sessions_unavailable{false};

  std::size_t SessionCount() {
    std::lock_guard<std::mutex> lock(mu_);
    return sessions_.size();
  }

  void Progress(const std::string& id, double pct, const std::string& message) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto& e = envelopes_.at(id);
      e.status = store::Status::kRunning;
      e.progress_percent = pct;
      e.message = message;
    }
    Append(id, store::Status::kRunning, message, "", "", pct);
  }

  store::Transition Finish(const std::string& id, const store::FinalReport& report) {
    store::Transition t;
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto& e = envelopes_.at(id);
      if (store::IsFinal(e.status)) {
        t.envelope = e;
        return t;
      }
      e.status = report.status;
      e.result_json = report.result_json;
      e.error = report.error;
      e.message = report.message;
      e.progress_percent = 100;
      e.updated_at = e.created_at + std::chrono::seconds(3);
      t.applied = true;
      t.envelope = e;
    }
    Append(id, report.status, report.message, report.error, report.result_json, 100.0);
    return t;
  }

  std::vector<std::string> Cancelled() {
    std::lock_guard<std::mutex> lock(mu_);
    return cancelled_;
  }

  std::size_t Subscribers() {
    std::lock_guard<std::mutex> lock(mu_);
    return subs_.size();
  }

 private:
  struct Sub final : Subscription {
    Sub(FakeService* s, int k) : service(s), key(k) {}
    ~Sub() override { Cancel(); }
    void Cancel() override {
      std::lock_guard<std::mutex> lock(service->mu_);
      service->subs_.erase(key);
    }
    FakeService* service;
    int key;
  };

  void Append(const std::string& id, store::Status status, const std::string& message,
              const std::string& error, const std::string& result, std::optional<double> pct) {
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

  std::mutex mu_;
  std::vector<std::string> cancelled_;  // ids passed to Cancel
  int next_id_ = 0;
  int next_sub_ = 0;
  std::int64_t seq_ = 0;
  std::map<std::string, store::Envelope> envelopes_;
  std::map<std::string, std::vector<store::Update>> history_;
  std::map<std::string, store::McpSession> sessions_;
  std::map<int, std::pair<std::string, std::function<void(const store::Update&)>>> subs_;
};

// What the handler answered: a plain reply, or an SSE stream's status, headers and data.
struct Recorded {
  std::mutex mu;
  std::condition_variable cv;
  std::optional<Response> reply;
  bool streamed = false;
  int stream_status = 0;
  Headers stream_headers;
  std::string stream_data;
  bool stream_closed = false;
  std::function<void()> on_close;

  bool Done() { return reply.has_value() || stream_closed; }
  // Waits (a hang guard, not a timing assertion) until the answer is complete.
  bool Wait() {
    std::unique_lock<std::mutex> lock(mu);
    return cv.wait_for(lock, std::chrono::seconds(30), [&] { return Done(); });
  }
  int Status() {
    std::lock_guard<std::mutex> lock(mu);
    return reply ? reply->status : stream_status;
  }
  std::string Header(const std::string& name) {
    std::lock_guard<std::mutex> lock(mu);
    const Headers& h = reply ? reply->headers : stream_headers;
    const auto it = h.find(name);
    return it == h.end() ? "" : it->second;
  }
  // JSON body of a plain reply, or the last JSON-RPC message of a stream.
  Json Body() {
    std::lock_guard<std::mutex> lock(mu);
    if (reply) {
      return reply->body.empty() ? Json() : Json::parse(reply->body);
    }
    const auto events = EventsLocked();
    return events.empty() ? Json() : events.back();
  }
  std::vector<Json> Events() {
    std::lock_guard<std::mutex> lock(mu);
    return EventsLocked();
  }
  // Simulates the client going away mid-stream.
  void Disconnect() {
    std::function<void()> cb;
    {
      std::lock_guard<std::mutex> lock(mu);
      stream_closed = true;
      cb = on_close;
    }
    cv.notify_all();
    if (cb)
      cb();
  }

 private:
  std::vector<Json> EventsLocked() {
    std::vector<Json> out;
    std::size_t pos = 0;
    while ((pos = stream_data.find("data: ", pos)) != std::string::npos) {
      const auto end = stream_data.find('\n', pos);
      out.push_back(Json::parse(stream_data.substr(pos + 6, end - pos - 6)));
      pos = end;
    }
    return out;
  }
};

class FakeStream final : public EventStream {
 public:
  explicit FakeStream(std::shared_ptr<Recorded> r) : rec_(std::move(r)) {}
  bool Send(std::string bytes) override {
    std::lock_guard<std::mutex> lock(rec_->mu);
    if (rec_->stream_closed)
      return false;
    rec_->stream_data += bytes;
    return true;
  }
  void Close() override {
    std::function<void()> cb;
    {
      std::lock_guard<std::mutex> lock(rec_->mu);
      if (rec_->stream_closed)
        return;
      rec_->stream_closed = true;
      cb = rec_->on_close;
    }
    rec_->cv.notify_all();
    if (cb)
      cb();
  }
  bool Closed() const override {
    std::lock_guard<std::mutex> lock(rec_->mu);
    return rec_->stream_closed;
  }
  void OnClose(std::function<void()> callback) override {
    std::lock_guard<std::mutex> lock(rec_->mu);
    rec_->on_close = std::move(callback);
  }

 private:
  std::shared_ptr<Recorded> rec_;
};

class RecordingImpl final : public Responder::Impl {
 public:
  explicit RecordingImpl(std::shared_ptr<Recorded> r) : rec_(std::move(r)) {}
  void Reply(Response response) override {
    {
      std::lock_guard<std::mutex> lock(rec_->mu);
      EXPECT_FALSE(rec_->reply.has_value() || rec_->streamed) << "answered twice";
      rec_->reply = std::move(response);
    }
    rec_->cv.notify_all();
  }
  std::shared_ptr<EventStream> OpenStream(int status, Headers headers) override {
    std::lock_guard<std::mutex> lock(rec_->mu);
    EXPECT_FALSE(rec_->reply.has_value() || rec_->streamed) << "answered twice";
    rec_->streamed = true;
    rec_->stream_status = status;
    rec_->stream_headers = std::move(headers);
    return std::make_shared<FakeStream>(rec_);
  }

 private:
  std::shared_ptr<Recorded> rec_;
};

inline std::shared_ptr<Recorded> Send(McpHandler& handler, Request request) {
  auto rec = std::make_shared<Recorded>();
  handler.Handle(std::move(request), Responder(std::make_shared<RecordingImpl>(rec)));
  return rec;
}

inline Request Post(const std::string& body) {
  Request r;
  r.method = "POST";
  r.path = "/mcp";
  r.headers["Content-Type"] = "application/json";
  r.headers["Accept"] = "application/json, text/event-stream";
  r.headers["Host"] = "127.0.0.1:8080";
  r.body = body;
  return r;
}

inline Json Rpc(const Json& id, const std::string& method, Json params = Json::object()) {
  Json m = {{"jsonrpc", "2.0"}, {"id", id}, {"method", method}};
  m["params"] = std::move(params);
  return m;
}

// A modern (2026-07-28) request with the standard headers and per-request _meta.
inline Request ModernPost(const std::string& method, Json params = Json::object(),
                          bool tasks = false, Json id = 1) {
  Json caps = Json::object();
  if (tasks) {
    caps["extensions"] = {{"io.modelcontextprotocol/tasks", Json::object()}};
  }
  Json meta = params.contains("_meta") ? params["_meta"] : Json::object();
  meta["io.modelcontextprotocol/protocolVersion"] = "2026-07-28";
  meta["io.modelcontextprotocol/clientInfo"] = {{"name", "test"}, {"version", "1"}};
  meta["io.modelcontextprotocol/clientCapabilities"] = caps;
  params["_meta"] = meta;
  Request r = Post(Rpc(id, method, params).dump());
  r.headers["MCP-Protocol-Version"] = "2026-07-28";
  r.headers["Mcp-Method"] = method;
  for (const char* field : {"name", "uri", "taskId"}) {
    if (params.contains(field) && params[field].is_string() &&
        (method == "tools/call" || method == "prompts/get" || method == "resources/read" ||
         method.rfind("tasks/", 0) == 0)) {
      r.headers["Mcp-Name"] = params[field].get<std::string>();
    }
  }
  return r;
}

}  // namespace asya::gateway::testing
