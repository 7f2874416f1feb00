#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <future>
#include <map>
#include <mutex>
#include <random>
#include <thread>
#include <tuple>
#include <utility>

#include <nlohmann/json.hpp>

#include "asya/base/json_text.h"
#include "asya/base/log.h"
#include "asya/base/time_format.h"
#include "asya/gateway/gateway_service.h"
#include "asya/gateway/tools_config.h"

namespace asya::gateway {
namespace {

// Live-update fan-out: one store feed, many subscribers. Shared with the Subscription handles so
// a handle may outlive the service.
struct Hub {
  struct Sub {
    std::function<void(const store::Update&)> fn;
    std::atomic<bool> active{true};
  };
  std::mutex mu;
  std::multimap<std::string, std::shared_ptr<Sub>, std::less<>> subs;

  void Dispatch(const store::Update& u) {
    std::vector<std::shared_ptr<Sub>> targets;
    {
      std::lock_guard lock(mu);
      auto [b, e] = subs.equal_range(u.envelope_id);
      for (auto it = b; it != e; ++it) {
        targets.push_back(it->second);
      }
    }
    for (auto& s : targets) {
      if (s->active) {
        try {
          s->fn(u);
        } catch (...) {
          log::Error("update subscriber threw");
        }
      }
    }
  }
};

class SubscriptionImpl final : public Subscription {
 public:
  SubscriptionImpl(std::shared_ptr<Hub> hub, std::string id, std::shared_ptr<Hub::Sub> sub)
      : hub_(std::move(hub)), id_(std::move(id)), sub_(std::move(sub)) {}
  ~SubscriptionImpl() override { Cancel(); }
  void Cancel() override {
    if (!sub_->active.exchange(false)) {
      return;
    }
    std::lock_guard lock(hub_->mu);
    auto [b, e] = hub_->subs.equal_range(id_);
    for (auto it = b; it != e; ++it) {
      if (it->second == sub_) {
        hub_->subs.erase(it);
        break;
      }
    }
  }

 private:
  std::shared_ptr<Hub> hub_;
  std::string id_;
  std::shared_ptr<Hub::Sub> sub_;
};

}  // namespace

std::string NewUuid4() {
  static thread_local std::mt19937_64 gen([] {
    std::random_device rd;
    std::seed_seq seq{rd(), rd(), rd(), rd(), rd(), rd(), rd(), rd()};
    return std::mt19937_64(seq);
  }());
  unsigned char b[16];
  for (int i = 0; i < 16; i += 8) {
    uint64_t r = gen();
    for (int j = 0; j < 8; ++j) {
      b[i + j] = static_cast<unsigned char>(r >> (8 * j));
    }
  }
  b[6] = static_cast<unsigned char>((b[6] & 0x0F) | 0x40);
  b[8] = static_cast<unsigned char>((b[8] & 0x3F) | 0x80);
  char out[37];
  std::snprintf(out, sizeof(out),
                "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1],
                b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14],
                b[15]);
  return out;
}

std::string PublishBody(const store::Envelope& e) {
  std::string b = "{\"id\":";
  AppendJsonString(b, e.id);
  if (!e.parent_id.empty()) {
    b += ",\"parent_id\":";
    AppendJsonString(b, e.parent_id);
  }
  b += ",\"route\":{\"actors\":[";
  for (size_t i = 0; i < e.route_actors.size(); ++i) {
    if (i > 0) {
      b += ',';
    }
    AppendJsonString(b, e.route_actors[i]);
  }
  b += "],\"current\":" + std::to_string(e.route_current);
  if (!e.route_metadata_json.empty()) {
    b += ",\"metadata\":" + e.route_metadata_json;
  }
  b += "},\"payload\":";
  b += e.payload_json.empty() ? std::string("null") : e.payload_json;
  if (e.deadline) {
    b += ",\"deadline\":";
    AppendJsonString(b, FormatRfc3339(*e.deadline, 0));
  }
  b += '}';
  return b;
}

struct GatewayService::Impl {
  ServiceOptions options;
  store::Store& store;
  transport::Transport& transport;
  Clock& clock;
  std::shared_ptr<Hub> hub = std::make_shared<Hub>();

  std::mutex mu;
  std::condition_variable cv;      // the background loop (and Stop)
  std::condition_variable pub_cv;  // the publishers: one is woken per queued envelope
  std::deque<store::Envelope> publishes;
  // Tool calls waiting for their store insert (group commit): the committer takes everything
  // queued and writes it with one Store::CreateMany; each caller waits for its own result.
  struct PendingCreate {
    store::Envelope envelope;
    std::promise<std::pair<Status, bool>> done;  // insert result, queued for publishing
  };
  std::condition_variable create_cv;
  std::deque<PendingCreate*> creates;
  bool stopping = false;
  bool started = false;
  std::vector<std::thread> publishers;
  std::thread committer;
  std::thread loops;

  Impl(ServiceOptions o, store::Store& s, transport::Transport& t, Clock& c)
      : options(std::move(o)), store(s), transport(t), clock(c) {
    std::sort(options.tools.begin(), options.tools.end(),
              [](const Tool& a, const Tool& b) { return a.name < b.name; });
  }

  // Publishes a batch the publisher took from the queue. Each envelope is marked running first
  // (one statement for the whole batch on PostgreSQL), then published; one that was finished
  // meanwhile (cancelled, timed out) is not published. A failed publish finishes it as failed.
  //
  // Crash safety: an envelope is in the store (committed) before the client gets its id and
  // before it is published, so a published envelope is never missing from the store. A gateway
  // that dies after Create or MarkRunning but before the publish leaves a pending/running
  // envelope that no actor got: its deadline (stored with it) finishes it as timed out on any
  // replica or after a restart.
  void PublishBatch(std::vector<store::Envelope>& batch) {
    std::vector<std::string> ids;
    ids.reserve(batch.size());
    for (const auto& e : batch) {
      ids.push_back(e.id);
    }
    auto running = store.MarkRunningMany(ids, "Sending envelope to first actor");
    for (std::size_t k = 0; k < batch.size(); ++k) {
      if (k < running.size() && running[k] && store::IsFinal(running[k]->envelope.status)) {
        continue;  // cancelled or timed out before we got to it
      }
      PublishOne(batch[k]);
    }
  }

  void PublishOne(const store::Envelope& e) {
    Status st;
    if (e.route_actors.empty() || e.route_current < 0 ||
        e.route_current >= static_cast<int>(e.route_actors.size())) {
      st = MakeError(ErrorCode::kInvalidArgument,
                     e.route_actors.empty()
                         ? "route has no actors"
                         : "invalid route.current=" + std::to_string(e.route_current));
    } else {
      st = transport.Publish(transport::QueueName(e.route_actors[e.route_current]), PublishBody(e));
    }
    if (!st) {
      log::Warn("publish failed", {{"envelope_id", e.id}, {"error", st.error().message}});
      store::FinalReport f;
      f.status = store::Status::kFailed;
      f.error = std::string(kSendFailedError) + ": " + st.error().message;
      f.message = "Envelope failed: " + f.error;
      if (auto r = store.Finish(e.id, f); !r) {
        log::Error("cannot record a failed publish",
                   {{"envelope_id", e.id}, {"error", r.error().message}});
      }
    }
  }

  // Each publisher takes what is queued (up to kPublishBatch) at once: under load one
  // MarkRunningMany covers many envelopes; alone, a batch is one envelope, as before.
  static constexpr std::size_t kPublishBatch = 64;

  void PublisherLoop() {
    std::vector<store::Envelope> batch;
    for (;;) {
      batch.clear();
      {
        std::unique_lock lock(mu);
        pub_cv.wait(lock, [&] { return stopping || !publishes.empty(); });
        if (publishes.empty()) {
          return;
        }
        while (!publishes.empty() && batch.size() < kPublishBatch) {
          batch.push_back(std::move(publishes.front()));
          publishes.pop_front();
        }
      }
      PublishBatch(batch);
    }
  }

  // Queues e for publishing; false when the queue is full or the service stops. Caller holds mu.
  bool QueuePublishLocked(const store::Envelope& e) {
    if (stopping || !started || publishes.size() >= options.publish_queue) {
      return false;
    }
    publishes.push_back(e);
    return true;
  }

  // Group commit of tool calls: while one CreateMany is in flight, the calls arriving queue up
  // and go together in the next (up to kCreateBatch). Alone, a batch is one envelope (Create's
  // single-row statement). A call is answered only after its batch committed; the inserted
  // envelopes are queued for the publishers before any caller is woken.
  static constexpr std::size_t kCreateBatch = 64;

  void CommitterLoop() {
    std::vector<PendingCreate*> batch;
    std::vector<store::Envelope> envelopes;
    for (;;) {
      batch.clear();
      envelopes.clear();
      {
        std::unique_lock lock(mu);
        create_cv.wait(lock, [&] { return stopping || !creates.empty(); });
        if (creates.empty()) {
          return;
        }
        while (!creates.empty() && batch.size() < kCreateBatch) {
          batch.push_back(creates.front());
          creates.pop_front();
        }
      }
      for (auto* c : batch) {
        envelopes.push_back(c->envelope);
      }
      auto results = store.CreateMany(envelopes);
      std::vector<bool> queued(batch.size(), false);
      std::size_t n_queued = 0;
      {
        std::lock_guard lock(mu);
        for (std::size_t k = 0; k < batch.size(); ++k) {
          if (k < results.size() && results[k] && QueuePublishLocked(batch[k]->envelope)) {
            queued[k] = true;
            ++n_queued;
          }
        }
      }
      for (std::size_t k = 0; k < std::min(n_queued, publishers.size()); ++k) {
        pub_cv.notify_one();
      }
      for (std::size_t k = 0; k < batch.size(); ++k) {
        Status st = k < results.size()
                        ? results[k]
                        : Status(MakeError(ErrorCode::kInternal, "store returned too few results"));
        batch[k]->done.set_value({std::move(st), queued[k]});
      }
    }
  }

  void BackgroundLoop(GatewayService* self) {
    auto next_purge = clock.Now();
    for (;;) {
      {
        std::unique_lock lock(mu);
        if (clock.WaitFor(lock, cv, options.deadline_sweep, [&] { return stopping; })) {
          return;
        }
      }
      if (auto n = self->SweepDeadlines(); !n) {
        log::Warn("deadline sweep failed", {{"error", n.error().message}});
      }
      if ((options.retention.count() > 0 || options.session_idle_timeout.count() > 0) &&
          clock.Now() >= next_purge) {
        next_purge = clock.Now() + options.purge_interval;
        if (auto n = self->PurgeOnce(); !n) {
          log::Warn("retention purge failed", {{"error", n.error().message}});
        } else if (*n > 0) {
          log::Info("purged finished envelopes", {{"count", static_cast<long long>(*n)}});
        }
      }
    }
  }
};

GatewayService::GatewayService(ServiceOptions options, store::Store& store,
                               transport::Transport& transport, Clock& clock)
    : impl_(std::make_unique<Impl>(std::move(options), store, transport, clock)) {}

GatewayService::~GatewayService() {
  Stop();
}

Status GatewayService::Start() {
  auto& i = *impl_;
  if (i.started) {
    return {};
  }
  std::weak_ptr<Hub> hub = i.hub;
  ASYA_RETURN_IF_ERROR(i.store.StartFeed([hub](const store::Update& u) {
    if (auto h = hub.lock()) {
      h->Dispatch(u);
    }
  }));
  i.started = true;
  for (int t = 0; t < std::max(1, i.options.publish_threads); ++t) {
    i.publishers.emplace_back([&i] { i.PublisherLoop(); });
  }
  i.committer = std::thread([&i] { i.CommitterLoop(); });
  if (i.options.deadline_sweep.count() > 0) {
    i.loops = std::thread([this] { impl_->BackgroundLoop(this); });
  }
  return {};
}

void GatewayService::Stop() {
  auto& i = *impl_;
  {
    std::lock_guard lock(i.mu);
    if (i.stopping) {
      return;
    }
    i.stopping = true;
  }
  i.cv.notify_all();
  i.create_cv.notify_all();
  if (i.committer.joinable()) {
    i.committer.join();  // answers every queued call first (nothing more is published)
  }
  i.pub_cv.notify_all();
  for (auto& t : i.publishers) {
    t.join();
  }
  i.publishers.clear();
  if (i.loops.joinable()) {
    i.loops.join();
  }
}

std::vector<Tool> GatewayService::Tools() const {
  return impl_->options.tools;
}

const Tool* GatewayService::FindTool(std::string_view name) const {
  for (const auto& t : impl_->options.tools) {
    if (t.name == name) {
      return &t;
    }
  }
  return nullptr;
}

Result<store::Envelope> GatewayService::CallTool(std::string_view name,
                                                 std::string_view arguments_json) {
  auto& i = *impl_;
  const Tool* tool = FindTool(name);
  if (tool == nullptr) {
    return MakeError(ErrorCode::kNotFound, "Tool \"" + std::string(name) + "\" not found");
  }
  ASYA_ASSIGN_OR_RETURN(std::string payload,
                        CheckArguments(tool->input_schema_json, arguments_json));
  store::Envelope e;
  e.id = NewUuid4();
  e.status = store::Status::kPending;
  e.route_actors = tool->route;
  e.route_current = 0;
  std::string md = "{\"job_id\":";
  AppendJsonString(md, e.id);
  md += '}';
  e.route_metadata_json = md;
  e.payload_json = std::move(payload);
  e.tool = tool->name;
  e.timeout_seconds = tool->timeout_seconds;
  const auto now = i.clock.WallNow();
  if (tool->timeout_seconds > 0) {
    e.deadline = now + std::chrono::seconds(tool->timeout_seconds);
  }
  e.total_actors = static_cast<int>(e.route_actors.size());
  e.current_actor_name = e.route_actors.empty() ? "" : e.route_actors[0];
  e.created_at = now;
  e.updated_at = now;
  e.message = "Envelope created";
  // Committed before the caller gets the id (crash safety: docs/gateway.md): through the
  // committer's group commit while it runs, else directly.
  Status created;
  bool queued = false;
  Impl::PendingCreate pending{e, {}};
  auto result = pending.done.get_future();
  bool via_committer = false;
  {
    std::lock_guard lock(i.mu);
    if (!i.stopping && i.started) {
      i.creates.push_back(&pending);
      via_committer = true;
    }
  }
  if (via_committer) {
    i.create_cv.notify_one();
    std::tie(created, queued) = result.get();
  } else {
    created = i.store.Create(e);
    if (created) {
      std::lock_guard lock(i.mu);
      queued = i.QueuePublishLocked(e);
    }
    if (queued) {
      i.pub_cv.notify_one();
    }
  }
  if (!created) {
    return MakeError(created.error().code == ErrorCode::kInvalidArgument ? ErrorCode::kInternal
                                                                         : created.error().code,
                     "failed to create envelope: " + created.error().message);
  }
  if (!queued) {
    store::FinalReport f;
    f.status = store::Status::kFailed;
    f.error = std::string(kSendFailedError) + ": gateway is overloaded or stopping";
    f.message = "Envelope failed: " + f.error;
    (void)i.store.Finish(e.id, f);
    return MakeError(ErrorCode::kUnavailable, f.error);
  }
  return e;
}

Result<store::Envelope> GatewayService::Get(std::string_view id) {
  return impl_->store.Get(id);
}

Result<std::vector<store::Update>> GatewayService::History(std::string_view id,
                                                           std::int64_t after_seq) {
  return impl_->store.History(id, after_seq);
}

Result<std::vector<std::string>> GatewayService::Children(std::string_view id) {
  return impl_->store.Children(id);
}

Result<store::Transition> GatewayService::Cancel(std::string_view id, std::string_view reason) {
  store::FinalReport f;
  f.status = store::Status::kCancelled;
  f.error = reason.empty() ? std::string("cancelled") : std::string(reason);
  f.message = "Envelope cancelled";
  return impl_->store.Finish(id, f);
}

std::unique_ptr<Subscription> GatewayService::Subscribe(
    std::string_view id, std::function<void(const store::Update&)> on_update) {
  auto sub = std::make_shared<Hub::Sub>();
  sub->fn = std::move(on_update);
  {
    std::lock_guard lock(impl_->hub->mu);
    impl_->hub->subs.emplace(std::string(id), sub);
  }
  return std::make_unique<SubscriptionImpl>(impl_->hub, std::string(id), sub);
}

Result<store::Transition> GatewayService::ReportProgress(std::string_view id,
                                                         const store::ProgressReport& report) {
  return impl_->store.ReportProgress(id, report);
}

Result<store::Transition> GatewayService::ReportFinal(std::string_view id,
                                                      const store::FinalReport& report) {
  return impl_->store.Finish(id, report);
}

Result<bool> GatewayService::RecordChild(std::string_view id, std::string_view parent_id,
                                         const std::vector<std::string>& actors, int current) {
  auto& i = *impl_;
  store::Envelope e;
  e.id = std::string(id);
  e.parent_id = std::string(parent_id);
  e.status = store::Status::kPending;
  e.route_actors = actors;
  e.route_current = current;
  e.total_actors = static_cast<int>(actors.size());
  e.current_actor_idx = current;
  if (current >= 0 && current < static_cast<int>(actors.size())) {
    e.current_actor_name = actors[current];
  }
  e.created_at = e.updated_at = i.clock.WallNow();
  e.message = "Fan-out child recorded";
  if (!parent_id.empty()) {
    if (auto parent = i.store.Get(parent_id)) {
      e.deadline = parent->deadline;  // the child lives under its parent's deadline
      e.timeout_seconds = parent->timeout_seconds;
      e.route_metadata_json = parent->route_metadata_json;
    }
  }
  auto st = i.store.Create(e);
  if (st) {
    return true;
  }
  if (st.error().code != ErrorCode::kAlreadyExists) {
    return Unexpected(st.error());
  }
  auto existing = i.store.Get(id);
  if (existing && existing->parent_id == parent_id) {
    return false;  // a retried report
  }
  return MakeError(ErrorCode::kAlreadyExists, "envelope " + std::string(id) + " already exists");
}

Result<int> GatewayService::SweepDeadlines() {
  auto& i = *impl_;
  int finished = 0;
  for (int pass = 0;; ++pass) {
    ASYA_ASSIGN_OR_RETURN(auto ids, i.store.ExpiredBefore(i.clock.WallNow(), 100));
    for (const auto& id : ids) {
      store::FinalReport f;
      f.status = store::Status::kFailed;
      f.error = std::string(kTimedOutError);
      f.message = "Envelope timed out";
      auto r = i.store.Finish(id, f);
      if (r && r->applied) {
        ++finished;
      }
    }
    if (ids.size() < 100 || pass >= 50) {
      return finished;
    }
  }
}

Result<std::int64_t> GatewayService::PurgeOnce() {
  auto& i = *impl_;
  const store::TimePoint now = i.clock.WallNow();
  if (i.options.session_idle_timeout.count() > 0) {
    auto sessions = i.store.PurgeSessionsIdleBefore(now - i.options.session_idle_timeout);
    if (!sessions) {
      return Unexpected(sessions.error());
    }
    if (*sessions > 0) {
      log::Info("purged idle MCP sessions", {{"count", static_cast<long long>(*sessions)}});
    }
  }
  if (i.options.retention.count() <= 0) {
    return 0;
  }
  return i.store.PurgeFinishedBefore(now - i.options.retention);
}

Result<void> GatewayService::OpenSession(const store::McpSession& session) {
  return impl_->store.CreateSession(session);
}

Result<store::McpSession> GatewayService::FindSession(std::string_view id) {
  auto& i = *impl_;
  ASYA_ASSIGN_OR_RETURN(store::McpSession session, i.store.GetSession(id));
  const store::TimePoint now = i.clock.WallNow();
  if (i.options.session_idle_timeout.count() > 0 &&
      session.last_seen_at + i.options.session_idle_timeout <= now) {
    return MakeError(ErrorCode::kNotFound, "session expired");  // the purge has not run yet
  }
  if (session.last_seen_at + i.options.session_touch_interval <= now) {
    if (auto touched = i.store.TouchSession(id); !touched) {
      return Unexpected(touched.error());  // kNotFound when ended meanwhile
    }
    session.last_seen_at = now;
  }
  return session;
}

Result<bool> GatewayService::EndSession(std::string_view id) {
  return impl_->store.DeleteSession(id);
}

}  // namespace asya::gateway
