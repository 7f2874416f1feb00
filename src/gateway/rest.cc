#include "asya/gateway/rest.h"

#include <algorithm>
#include <mutex>
#include <optional>
#include <vector>

#include <nlohmann/json.hpp>

#include "asya/base/json_text.h"
#include "asya/base/log.h"
#include "asya/gateway/envelope_json.h"

namespace asya::gateway {
namespace {

using json = nlohmann::ordered_json;

constexpr char kBatchPath[] = "/envelopes/batch";
constexpr size_t kMaxBatch = 1000;  // reports per batch request

Response Text(int status, std::string body) {
  Response r;
  r.status = status;
  r.headers["Content-Type"] = "text/plain; charset=utf-8";
  r.body = std::move(body);
  if (r.body.empty() || r.body.back() != '\n') {
    r.body += '\n';
  }
  return r;
}

Response Json(int status, std::string body) {
  Response r;
  r.status = status;
  r.headers["Content-Type"] = "application/json";
  r.body = std::move(body);
  return r;
}

Response MethodNotAllowed(const char* allow) {
  Response r = Text(405, "Method not allowed");
  r.headers["Allow"] = allow;
  return r;
}

int StatusFor(const Error& e) {
  switch (e.code) {
    case ErrorCode::kNotFound:
      return 404;
    case ErrorCode::kInvalidArgument:
      return 400;
    case ErrorCode::kAlreadyExists:
      return 409;
    case ErrorCode::kUnavailable:
    case ErrorCode::kResourceExhausted:
      return 503;
    default:
      return 500;
  }
}

std::string PercentDecode(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && HexDigitValue(s[i + 1]) >= 0 &&
        HexDigitValue(s[i + 2]) >= 0) {
      out += static_cast<char>(HexDigitValue(s[i + 1]) * 16 + HexDigitValue(s[i + 2]));
      i += 2;
    } else {
      out += s[i];
    }
  }
  return out;
}

std::string ToolListJson(const std::vector<Tool>& tools) {
  json list = json::array();
  for (const auto& t : tools) {
    json o = json::object();
    o["name"] = t.name;
    o["description"] = t.description;
    o["inputSchema"] = json::parse(t.input_schema_json, nullptr, false);
    o["route"] = t.route;
    o["progress"] = t.progress;
    o["timeout"] = t.timeout_seconds;
    if (!t.metadata_json.empty()) {
      o["metadata"] = json::parse(t.metadata_json, nullptr, false);
    }
    list.push_back(o);
  }
  json r = json::object();
  r["tools"] = list;
  return r.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string ToolError(const std::string& message) {
  json r = json::object();
  r["content"] = json::array({json{{"type", "text"}, {"text", message}}});
  r["isError"] = true;
  return r.dump(-1, ' ', false, json::error_handler_t::replace);
}

// One SSE subscriber: replays history, then forwards live updates, without gaps or duplicates
// (subscribed before the history is read; live updates with seq <= the last sent are dropped).
class SseSession : public std::enable_shared_from_this<SseSession> {
 public:
  SseSession(Service& service, std::string id, std::shared_ptr<EventStream> stream)
      : service_(service), id_(std::move(id)), stream_(std::move(stream)) {}

  void Start(std::int64_t after) {
    last_seq_ = after;
    std::weak_ptr<SseSession> weak = shared_from_this();
    auto sub = service_.Subscribe(id_, [weak](const store::Update& u) {
      if (auto self = weak.lock()) {
        self->OnLive(u);
      }
    });
    {
      std::lock_guard lock(mu_);
      sub_ = std::move(sub);
    }
    stream_->OnClose([weak] {
      if (auto self = weak.lock()) {
        self->Finish(false);
      }
    });
    auto history = service_.History(id_, after);
    if (!history) {
      log::Warn("stream history failed",
                {{"envelope_id", id_}, {"error", history.error().message}});
      Finish(true);
      return;
    }
    std::vector<store::Update> pending;
    {
      std::lock_guard lock(mu_);
      for (const auto& u : *history) {
        SendLocked(u);
      }
      replaying_ = false;
      pending.swap(pending_);
      for (const auto& u : pending) {
        SendLocked(u);
      }
    }
    if (!final_sent_) {
      // A final envelope whose final row is gone (or was never written): say it once.
      auto env = service_.Get(id_);
      if (env && store::IsFinal(env->status) && after == 0) {
        store::Update u;
        u.envelope_id = env->id;
        u.status = env->status;
        u.message = env->message;
        u.error = env->error;
        u.result_json = env->result_json;
        u.progress_percent = env->progress_percent;
        u.timestamp = env->updated_at;
        std::lock_guard lock(mu_);
        SendLocked(u);
      } else if (env && store::IsFinal(env->status)) {
        std::lock_guard lock(mu_);
        final_sent_ = true;  // the client resumed after the final event: nothing left
      }
    }
    if (final_sent_) {
      Finish(true);
    }
  }

 private:
  void OnLive(const store::Update& u) {
    bool done = false;
    {
      std::lock_guard lock(mu_);
      if (finished_) {
        return;
      }
      if (replaying_) {
        pending_.push_back(u);
        return;
      }
      SendLocked(u);
      done = final_sent_;
    }
    if (done) {
      Finish(true);
    }
  }

  void SendLocked(const store::Update& u) {
    if (final_sent_ || (u.seq > 0 && u.seq <= last_seq_)) {
      return;
    }
    if (u.seq > 0) {
      last_seq_ = u.seq;
    }
    stream_->Send(UpdateEvent(u));
    if (store::IsFinal(u.status)) {
      final_sent_ = true;
    }
  }

  void Finish(bool close_stream) {
    std::unique_ptr<Subscription> sub;
    {
      std::lock_guard lock(mu_);
      if (finished_) {
        return;
      }
      finished_ = true;
      sub = std::move(sub_);
    }
    if (sub) {
      sub->Cancel();
    }
    if (close_stream) {
      stream_->Close();
    }
  }

  Service& service_;
  std::string id_;
  std::shared_ptr<EventStream> stream_;
  std::mutex mu_;
  std::unique_ptr<Subscription> sub_;
  std::vector<store::Update> pending_;
  std::int64_t last_seq_ = 0;
  bool replaying_ = true;
  bool final_sent_ = false;
  bool finished_ = false;
};

class Rest {
 public:
  Rest(Service& s, Callbacks* c, Handler mcp, Clock& clock)
      : service_(s), callbacks_(c), mcp_(std::move(mcp)), clock_(clock) {}

  void Handle(Request req, Responder resp) {
    const std::string& p = req.path;
    if (p == "/health") {
      resp.Reply(Text(200, "OK"));
      return;
    }
    if (p == "/mcp" || p.rfind("/mcp/", 0) == 0) {
      if (mcp_) {
        mcp_(std::move(req), std::move(resp));
      } else {
        resp.Reply(Text(404, "Not found"));
      }
      return;
    }
    if (p == "/tools/call") {
      resp.Reply(req.method == "POST" ? CallTool(req) : MethodNotAllowed("POST"));
      return;
    }
    if (p == "/tools") {
      resp.Reply(req.method == "GET" ? Json(200, ToolListJson(service_.Tools()))
                                     : MethodNotAllowed("GET"));
      return;
    }
    if (p == "/envelopes") {
      resp.Reply(req.method == "POST" ? CreateChild(req) : MethodNotAllowed("POST"));
      return;
    }
    if (p == kBatchPath && req.method == "POST") {  // GET: the envelope with the id "batch"
      resp.Reply(Batch(req));
      return;
    }
    if (p.rfind("/envelopes/", 0) == 0) {
      Envelopes(std::move(req), std::move(resp));
      return;
    }
    resp.Reply(Text(404, "Not found"));
  }

 private:
  Response CallTool(const Request& req) {
    json body = json::parse(req.body, nullptr, false);
    if (body.is_discarded() || !body.is_object()) {
      return Text(400, "Invalid request body");
    }
    auto name = body.find("name");
    if (name == body.end() || !name->is_string() || name->get<std::string>().empty()) {
      return Text(400, "Tool name is required");
    }
    std::string args = "{}";
    if (auto a = body.find("arguments"); a != body.end() && !a->is_null()) {
      if (!a->is_object()) {
        return Json(200, ToolError("arguments must be a JSON object"));
      }
      args = a->dump(-1, ' ', false, json::error_handler_t::replace);
    }
    const Tool* tool = service_.FindTool(name->get<std::string>());
    if (tool == nullptr) {
      return Text(404, "Tool \"" + name->get<std::string>() + "\" not found");
    }
    auto env = service_.CallTool(tool->name, args);
    if (!env) {
      if (env.error().code == ErrorCode::kNotFound) {
        return Text(404, env.error().message);
      }
      return Json(200, ToolError(env.error().message));
    }
    json text = json::object();
    text["envelope_id"] = env->id;
    text["message"] = "Envelope created successfully";
    text["status_url"] = "/envelopes/" + env->id;
    if (tool->progress) {
      text["stream_url"] = "/envelopes/" + env->id + "/stream";
    }
    if (!tool->metadata_json.empty()) {
      text["metadata"] = json::parse(tool->metadata_json, nullptr, false);
    }
    json r = json::object();
    r["content"] = json::array({json{{"type", "text"}, {"text", text.dump()}}});
    return Json(200, r.dump());
  }

  Response CreateChild(const Request& req) {
    if (callbacks_ == nullptr) {
      return Text(404, "Not found");
    }
    json body = json::parse(req.body, nullptr, false);
    if (body.is_discarded() || !body.is_object()) {
      return Text(400, "Invalid request body");
    }
    return CreateChild(body);
  }

  // Callback routes with a parsed object body (single POSTs and the items of a batch).
  Response CreateChild(const json& body) {
    auto id = body.find("id");
    if (id == body.end() || !id->is_string() || id->get<std::string>().empty()) {
      return Text(400, "Missing required field: id");
    }
    std::string parent;
    if (auto p = body.find("parent_id"); p != body.end() && !p->is_null()) {
      if (!p->is_string()) {
        return Text(400, "Invalid request body: parent_id must be a string");
      }
      parent = p->get<std::string>();
    }
    std::vector<std::string> actors;
    if (auto a = body.find("actors"); a != body.end() && !a->is_null()) {
      if (!a->is_array()) {
        return Text(400, "Invalid request body: actors must be a list of strings");
      }
      for (const auto& x : *a) {
        if (!x.is_string()) {
          return Text(400, "Invalid request body: actors must be a list of strings");
        }
        actors.push_back(x.get<std::string>());
      }
    }
    int current = 0;
    if (auto c = body.find("current"); c != body.end() && !c->is_null()) {
      if (!c->is_number_integer() || c->get<long long>() < 0 || c->get<long long>() > 1'000'000) {
        return Text(400, "Invalid request body: current must be a non-negative integer");
      }
      current = c->get<int>();
    }
    auto r = callbacks_->RecordChild(id->get<std::string>(), parent, actors, current);
    if (!r) {
      return Text(StatusFor(r.error()), r.error().message);
    }
    json out = json::object();
    out["status"] = "created";
    out["id"] = id->get<std::string>();
    return Json(201, out.dump());
  }

  void Envelopes(Request req, Responder resp) {
    std::string_view rest(req.path);
    rest.remove_prefix(std::string_view("/envelopes/").size());
    std::string_view id_raw = rest;
    std::string_view action;
    if (auto slash = rest.find('/'); slash != std::string_view::npos) {
      id_raw = rest.substr(0, slash);
      action = rest.substr(slash + 1);
      if (action != "stream" && action != "active" && action != "progress" && action != "final" &&
          action != "cancel") {
        resp.Reply(Text(400, "Invalid envelope path"));
        return;
      }
    }
    if (id_raw.empty()) {
      resp.Reply(Text(400, "Invalid envelope path: empty id"));
      return;
    }
    const std::string id = PercentDecode(id_raw);
    if (action.empty()) {
      if (req.method != "GET") {
        resp.Reply(MethodNotAllowed("GET"));
        return;
      }
      auto env = service_.Get(id);
      if (!env) {
        resp.Reply(env.error().code == ErrorCode::kNotFound ? Text(404, "Envelope not found")
                                                            : Text(500, env.error().message));
        return;
      }
      resp.Reply(Json(200, EnvelopeJson(*env)));
    } else if (action == "stream") {
      if (req.method != "GET") {
        resp.Reply(MethodNotAllowed("GET"));
        return;
      }
      Stream(req, std::move(resp), id);
    } else if (action == "active") {
      resp.Reply(req.method == "GET" ? Active(id) : MethodNotAllowed("GET"));
    } else if (action == "progress") {
      resp.Reply(req.method == "POST" ? Progress(req, id) : MethodNotAllowed("POST"));
    } else if (action == "final") {
      resp.Reply(req.method == "POST" ? Final(req, id) : MethodNotAllowed("POST"));
    } else {
      resp.Reply(req.method == "POST" ? CancelEnvelope(req, id) : MethodNotAllowed("POST"));
    }
  }

  // POST /envelopes/batch {"reports":[{"path","body"},...]}: each report handled as the single
  // POST of its path (POST /envelopes, /envelopes/<id>/progress, /envelopes/<id>/final), in order;
  // 200 {"statuses":[the HTTP status each single POST would have answered]}.
  Response Batch(const Request& req) {
    if (callbacks_ == nullptr) {
      return Text(404, "Not found");
    }
    json body = json::parse(req.body, nullptr, false);
    auto reports = body.is_object() ? body.find("reports") : body.end();
    if (body.is_discarded() || !body.is_object() || reports == body.end() || !reports->is_array()) {
      return Text(400, "Invalid request body: reports must be a list");
    }
    if (reports->size() > kMaxBatch) {
      return Text(400, "Invalid request body: more than " + std::to_string(kMaxBatch) + " reports");
    }
    std::string out = "{\"statuses\":[";
    // Envelopes this batch found unknown: their later progress reports are answered 404 without
    // a store look-up (the sidecar drops such progress; a final status is always looked up).
    std::vector<std::string> unknown;
    for (size_t i = 0; i < reports->size(); ++i) {
      const json& item = (*reports)[i];
      int status = 400;
      auto path = item.is_object() ? item.find("path") : item.end();
      auto b = item.is_object() ? item.find("body") : item.end();
      if (path != item.end() && path->is_string() && b != item.end() && b->is_object()) {
        status = BatchItem(path->get_ref<const std::string&>(), *b, unknown);
      }
      if (i > 0) {
        out += ',';
      }
      out += std::to_string(status);
    }
    out += "]}";
    return Json(200, std::move(out));
  }

  int BatchItem(const std::string& path, const json& body, std::vector<std::string>& unknown) {
    if (path == "/envelopes") {
      return CreateChild(body).status;
    }
    std::string_view rest(path);
    if (rest.rfind("/envelopes/", 0) != 0) {
      return 404;
    }
    rest.remove_prefix(std::string_view("/envelopes/").size());
    const auto slash = rest.find('/');
    if (slash == std::string_view::npos || slash == 0) {
      return 404;
    }
    const std::string_view action = rest.substr(slash + 1);
    const std::string id = PercentDecode(rest.substr(0, slash));
    if (action == "progress") {
      if (std::find(unknown.begin(), unknown.end(), id) != unknown.end()) {
        return 404;
      }
      const int status = Progress(body, id).status;
      if (status == 404) {
        unknown.push_back(id);
      }
      return status;
    }
    if (action == "final") {
      return Final(body, id).status;
    }
    return 404;
  }

  Response Active(const std::string& id) {
    auto env = service_.Get(id);
    bool active = env && !store::IsFinal(env->status) && env->status != store::Status::kUnknown &&
                  (!env->deadline || *env->deadline > clock_.WallNow());
    return Json(active ? 200 : 410, active ? "{\"active\":true}" : "{\"active\":false}");
  }

  Response Progress(const Request& req, const std::string& id) {
    if (callbacks_ == nullptr) {
      return Text(404, "Not found");
    }
    json body = json::parse(req.body, nullptr, false);
    if (body.is_discarded() || !body.is_object()) {
      return Text(400, "Invalid request body");
    }
    return Progress(body, id);
  }

  Response Progress(const json& body, const std::string& id) {
    store::ProgressReport r;
    if (auto a = body.find("actors"); a != body.end() && !a->is_null()) {
      if (!a->is_array()) {
        return Text(400, "Invalid request body: actors must be a list of strings");
      }
      for (const auto& x : *a) {
        if (!x.is_string()) {
          return Text(400, "Invalid request body: actors must be a list of strings");
        }
        r.actors.push_back(x.get<std::string>());
      }
    }
    if (auto c = body.find("current_actor_idx"); c != body.end() && !c->is_null()) {
      if (!c->is_number_integer() || c->get<long long>() < 0 || c->get<long long>() > 1'000'000) {
        return Text(400, "Invalid request body: current_actor_idx must be a non-negative integer");
      }
      r.current_actor_idx = c->get<int>();
    }
    if (auto s = body.find("status"); s != body.end() && !s->is_null()) {
      if (!s->is_string()) {
        return Text(400, "Invalid request body: status must be a string");
      }
      r.state = s->get<std::string>();
      if (r.state != "received" && r.state != "processing" && r.state != "completed") {
        return Text(400, "Invalid status: must be received, processing or completed");
      }
    }
    if (auto m = body.find("message"); m != body.end() && m->is_string()) {
      r.message = m->get<std::string>();
    }
    auto t = callbacks_->ReportProgress(id, r);
    if (!t) {
      return t.error().code == ErrorCode::kNotFound ? Text(404, "Envelope not found")
                                                    : Text(StatusFor(t.error()), t.error().message);
    }
    json out = json::object();
    out["status"] = "ok";
    out["progress_percent"] = t->envelope.progress_percent;
    if (!t->applied) {
      out["applied"] = false;
    }
    return Json(200, out.dump());
  }

  Response Final(const Request& req, const std::string& id) {
    if (callbacks_ == nullptr) {
      return Text(404, "Not found");
    }
    json body = json::parse(req.body, nullptr, false);
    if (body.is_discarded() || !body.is_object()) {
      return Text(400, "Invalid request body");
    }
    return Final(body, id);
  }

  Response Final(const json& body, const std::string& id) {
    auto st = body.find("status");
    if (st == body.end() || !st->is_string() || (*st != "succeeded" && *st != "failed")) {
      return Text(400, "Invalid status: must be succeeded or failed");
    }
    auto str = [&](const char* k) -> std::string {
      auto it = body.find(k);
      return it != body.end() && it->is_string() ? it->get<std::string>() : std::string();
    };
    store::FinalReport f;
    if (*st == "succeeded") {
      f.status = store::Status::kSucceeded;
      if (auto r = body.find("result"); r != body.end()) {
        f.result_json = r->dump(-1, ' ', false, json::error_handler_t::replace);
      }
      f.message = "Envelope completed successfully";
      if (auto md = body.find("metadata"); md != body.end() && md->is_object()) {
        if (auto s3 = md->find("s3_uri"); s3 != md->end() && s3->is_string()) {
          f.message += ", results stored at " + s3->get<std::string>();
        }
      }
    } else {
      f.status = store::Status::kFailed;
      f.error = str("error");
      const std::string actor = str("current_actor_name");
      // The handler's own words (error_details {message, type}) make the message useful.
      std::string why = f.error;
      if (auto d = body.find("error_details"); d != body.end() && d->is_object()) {
        auto m = d->find("message");
        auto t = d->find("type");
        if (m != d->end() && m->is_string() && !m->get<std::string>().empty()) {
          std::string detail = m->get<std::string>();
          if (t != d->end() && t->is_string() && !t->get<std::string>().empty()) {
            detail = t->get<std::string>() + ": " + detail;
          }
          why = why.empty() ? detail : why + " (" + detail + ")";
        }
      }
      if (!actor.empty() && !why.empty()) {
        f.message = "Envelope failed at actor '" + actor + "': " + why;
      } else if (!why.empty()) {
        f.message = "Envelope failed: " + why;
      } else {
        f.message = "Envelope failed";
      }
      if (auto d = body.find("error_details"); d != body.end() && !d->is_null()) {
        json res = json::object();
        res["error"] = f.error;
        res["details"] = *d;
        if (!actor.empty()) {
          res["failed_actor"] = actor;
        }
        if (auto i = body.find("current_actor_idx"); i != body.end() && i->is_number_integer()) {
          res["failed_actor_idx"] = *i;
        }
        if (auto a = body.find("actors"); a != body.end() && a->is_array()) {
          res["route"] = *a;
        }
        f.result_json = res.dump(-1, ' ', false, json::error_handler_t::replace);
      }
    }
    auto t = callbacks_->ReportFinal(id, f);
    if (!t) {
      return t.error().code == ErrorCode::kNotFound ? Text(404, "Envelope not found")
                                                    : Text(StatusFor(t.error()), t.error().message);
    }
    return Json(200, t->applied ? "{\"status\":\"ok\"}" : "{\"status\":\"ok\",\"applied\":false}");
  }

  Response CancelEnvelope(const Request& req, const std::string& id) {
    std::string reason;
    if (!req.body.empty()) {
      json body = json::parse(req.body, nullptr, false);
      if (body.is_discarded() || !body.is_object()) {
        return Text(400, "Invalid request body");
      }
      if (auto r = body.find("reason"); r != body.end() && r->is_string()) {
        reason = r->get<std::string>();
      }
    }
    auto t = service_.Cancel(id, reason);
    if (!t) {
      return t.error().code == ErrorCode::kNotFound ? Text(404, "Envelope not found")
                                                    : Text(StatusFor(t.error()), t.error().message);
    }
    if (!t->applied) {
      return Text(409, std::string("Envelope is already ") + StatusText(t->envelope.status));
    }
    return Json(200, EnvelopeJson(t->envelope));
  }

  void Stream(const Request& req, Responder resp, const std::string& id) {
    auto env = service_.Get(id);
    if (!env) {
      resp.Reply(env.error().code == ErrorCode::kNotFound ? Text(404, "Envelope not found")
                                                          : Text(500, env.error().message));
      return;
    }
    std::int64_t after = 0;
    std::string_view last = req.Header("Last-Event-ID");
    if (!last.empty()) {
      char* end = nullptr;
      std::string s(last);
      long long v = std::strtoll(s.c_str(), &end, 10);
      if (end != nullptr && *end == '\0' && v > 0) {
        after = v;
      }
    }
    Headers h;
    h["Content-Type"] = "text/event-stream";
    h["Cache-Control"] = "no-cache";
    h["X-Accel-Buffering"] = "no";
    auto stream = resp.OpenStream(200, h);
    auto session = std::make_shared<SseSession>(service_, id, stream);
    // The session keeps itself alive through the stream's OnClose callback and the subscription.
    stream->OnClose([session] {});
    session->Start(after);
  }

  Service& service_;
  Callbacks* callbacks_;
  Handler mcp_;
  Clock& clock_;
};

}  // namespace

Handler MakeRestHandler(Service& service, Callbacks* callbacks, Handler mcp, Clock& clock) {
  auto rest = std::make_shared<Rest>(service, callbacks, std::move(mcp), clock);
  return [rest](Request req, Responder resp) { rest->Handle(std::move(req), std::move(resp)); };
}

}  // namespace asya::gateway
