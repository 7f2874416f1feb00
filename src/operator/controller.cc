#include "asya/operator/controller.h"

#include <array>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <utility>

#include <sys/stat.h>

#include "asya/actor/manifest.h"
#include "asya/base/base64.h"
#include "asya/base/log.h"
#include "asya/base/time_format.h"
#include "asya/http/url.h"
#include "asya/operator/render.h"
#include "asya/operator/status.h"

namespace asya::op {

using nlohmann::json;
namespace res = k8s::res;

struct Controller::QueueAdmin {
  std::mutex mu;
  transport::TransportPtr transport;
};

std::string ContentHash(const json& object) {
  std::string text = object.dump();
  uint64_t h = 1469598103934665603ULL;
  for (unsigned char c : text) {
    h ^= c;
    h *= 1099511628211ULL;
  }
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

namespace {

constexpr const char* kAbsent = "-";  // applied_ value: known not to exist

const k8s::Resource* ResourceOf(const std::string& kind) {
  static const std::map<std::string, const k8s::Resource*> kinds = {
      {"Deployment", &res::kDeployments},
      {"StatefulSet", &res::kStatefulSets},
      {"ConfigMap", &res::kConfigMaps},
      {"ServiceAccount", &res::kServiceAccounts},
      {"Service", &res::kServices},
      {"ScaledObject", &res::kScaledObjects},
      {"TriggerAuthentication", &res::kTriggerAuthentications}};
  auto it = kinds.find(kind);
  return it == kinds.end() ? nullptr : it->second;
}

std::pair<std::string, std::string> SplitKey(const std::string& key) {
  auto slash = key.find('/');
  return {key.substr(0, slash), key.substr(slash + 1)};
}

bool HasFinalizer(const json& obj) {
  const json& m = obj["metadata"];
  if (!m.contains("finalizers"))
    return false;
  for (const auto& f : m["finalizers"]) {
    if (f == kFinalizer)
      return true;
  }
  return false;
}

int IntAt(const json& obj, const char* a, const char* b) {
  if (!obj.contains(a) || !obj[a].is_object())
    return 0;
  auto it = obj[a].find(b);
  return it != obj[a].end() && it->is_number_integer() ? it->get<int>() : 0;
}

std::string LabelOf(const json& obj, const char* label) {
  const json& m = obj["metadata"];
  if (m.contains("labels") && m["labels"].contains(label) && m["labels"][label].is_string()) {
    return m["labels"][label].get<std::string>();
  }
  return "";
}

}  // namespace

Controller::Controller(const k8s::Client& client, ControllerOptions options, Clock* clock)
    : client_(client),
      options_(std::move(options)),
      clock_(clock != nullptr ? clock : &SystemClock()),
      queue_(clock_) {}

Controller::~Controller() {
  stopping_ = true;
  cancel_.Cancel();
  queue_.ShutDown();
  for (auto& t : threads_) {
    if (t.joinable())
      t.join();
  }
}

std::pair<std::string, std::string> Controller::RuntimeScript() const {
  struct stat st {};
  std::string tag = "-";
  if (::stat(options_.runtime_script_path.c_str(), &st) == 0) {
    tag = std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino) + ":" +
          std::to_string(st.st_size) + ":" + std::to_string(st.st_mtim.tv_sec) + "." +
          std::to_string(st.st_mtim.tv_nsec);
  }
  std::lock_guard<std::mutex> lock(script_mu_);
  if (tag == "-" || tag != script_tag_) {
    std::ifstream in(options_.runtime_script_path, std::ios::binary);
    std::ostringstream s;
    s << in.rdbuf();
    script_ = s.str();
    script_tag_ = tag;
  }
  return {script_, script_tag_ + ":" + std::to_string(script_.size())};
}

// ---------------------------------------------------------------------------------------------
// Transport administration

Result<transport::Transport*> Controller::TransportFor(const TransportEntry& entry,
                                                       const std::string& ns, std::mutex** mu) {
  std::string cache_key = entry.name + "/" + ns;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = transports_.find(cache_key);
    if (it != transports_.end()) {
      *mu = &it->second->mu;
      return it->second->transport.get();
    }
  }
  transport::TransportSettings s;
  s.kind = entry.type;
  if (entry.type == "rabbitmq") {
    const auto& r = entry.rabbitmq;
    std::string user = r.username;
    std::string password = "guest";
    auto secret_value = [&](const SecretKeyRef& ref) -> Result<std::string> {
      auto secret = client_.Get(res::kSecrets, ns, ref.name);
      if (!secret)
        return Unexpected(secret.error());
      if (!(*secret).contains("data") || !(*secret)["data"].contains(ref.key)) {
        return MakeError(ErrorCode::kNotFound,
                         "secret " + ns + "/" + ref.name + " has no key " + ref.key);
      }
      const auto& data = (*secret)["data"][ref.key];
      auto value = data.is_string() ? Base64Decode(data.get<std::string>()) : std::nullopt;
      if (!value) {
        return MakeError(ErrorCode::kInvalidArgument, "secret " + ns + "/" + ref.name + " key " +
                                                          ref.key + ": data is not valid Base64");
      }
      return *std::move(value);
    };
    if (r.password_secret) {
      ASYA_ASSIGN_OR_RETURN(password, secret_value(*r.password_secret));
    }
    if (r.username_secret) {
      ASYA_ASSIGN_OR_RETURN(user, secret_value(*r.username_secret));
    }
    // User info and vhost are percent-encoded: a password may hold ':', '@', '/' or '%'.
    const std::string userinfo = http::PercentEncode(user) + ":" + http::PercentEncode(password);
    s.rabbitmq.url = "amqp://" + userinfo + "@" + r.host + ":" + std::to_string(r.port) + "/" +
                     http::PercentEncode(r.vhost);
    s.rabbitmq.management_url =
        "http://" + userinfo + "@" + r.host + ":" + std::to_string(r.management_port);
    if (!r.exchange.empty())
      s.rabbitmq.exchange = r.exchange;
    s.rabbitmq.connect_timeout = std::chrono::milliseconds(5000);
    s.rabbitmq.operation_timeout = std::chrono::milliseconds(10000);
  } else if (entry.type == "sqs") {
    s.sqs = options_.sqs_defaults;
    s.sqs.region = entry.sqs.region;
    s.sqs.credential_sources.region = entry.sqs.region;
    if (!entry.sqs.endpoint.empty())
      s.sqs.endpoint = entry.sqs.endpoint;
    if (entry.sqs.queues.dlq_enabled) {
      s.sqs.redrive_max_receive_count = entry.sqs.queues.dlq_max_retry_count;
    }
  } else {
    return MakeError(ErrorCode::kInvalidArgument, "unsupported transport type " + entry.type);
  }
  auto t = transport::MakeTransport(s);
  if (!t)
    return Unexpected(t.error());
  std::lock_guard<std::mutex> lock(mu_);
  auto& slot = transports_[cache_key];
  if (!slot) {
    slot = std::make_unique<QueueAdmin>();
    slot->transport = std::move(*t);
  }
  *mu = &slot->mu;
  return slot->transport.get();
}

namespace {
std::string QueueMemo(const std::string& transport, const std::string& ns,
                      const std::string& actor) {
  return "queue/" + transport + "/" + ns + "/" + actor;
}
}  // namespace

Status Controller::EnsureQueue(const TransportEntry& entry, const std::string& ns,
                               const std::string& actor) {
  // A queue seen or made once is not asked for again until the next resync (which clears
  // applied_) or until the operator deletes it.
  const std::string memo = QueueMemo(entry.name, ns, actor);
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (applied_.count(memo) != 0)
      return Ok();
  }
  std::mutex* mu = nullptr;
  ASYA_ASSIGN_OR_RETURN(transport::Transport * t, TransportFor(entry, ns, &mu));
  std::lock_guard<std::mutex> lock(*mu);
  const std::string queue = "asya-" + actor;
  auto exists = t->QueueExists(queue);
  if (!exists)
    return Unexpected(exists.error());
  auto remember = [&] {
    std::lock_guard<std::mutex> memo_lock(mu_);
    applied_[memo] = "exists";
  };
  if (*exists) {
    remember();
    return Ok();
  }
  const QueueSettings& qs = entry.type == "sqs" ? entry.sqs.queues : entry.rabbitmq.queues;
  if (!qs.auto_create) {
    return MakeError(ErrorCode::kNotFound, "queue " + queue + " does not exist (autoCreate off)");
  }
  transport::QueueOptions qo;
  qo.create_dlq = qs.dlq_enabled;
  if (entry.type == "sqs" && entry.sqs.visibility_timeout_s > 0) {
    qo.visibility = std::chrono::seconds(entry.sqs.visibility_timeout_s);
  }
  ASYA_RETURN_IF_ERROR(t->CreateQueue(queue, qo));
  remember();
  return Ok();
}

Result<transport::QueueDepth> Controller::QueueDepthOf(const TransportEntry& entry,
                                                       const std::string& ns,
                                                       const std::string& actor) {
  std::mutex* mu = nullptr;
  ASYA_ASSIGN_OR_RETURN(transport::Transport * t, TransportFor(entry, ns, &mu));
  std::lock_guard<std::mutex> lock(*mu);
  return t->Depth("asya-" + actor);
}

Status Controller::DeleteQueue(const TransportEntry& entry, const std::string& ns,
                               const std::string& actor) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    applied_.erase(QueueMemo(entry.name, ns, actor));
  }
  std::mutex* mu = nullptr;
  ASYA_ASSIGN_OR_RETURN(transport::Transport * t, TransportFor(entry, ns, &mu));
  std::lock_guard<std::mutex> lock(*mu);
  return t->DeleteQueue("asya-" + actor);
}

// ---------------------------------------------------------------------------------------------
// Apply

namespace {

// A workload's selector is immutable. One made by another controller (the original operator
// selects on app / asya.sh/asya / asya.sh/workload) is kept as found, and its labels are added to
// the pod template so the selector still matches; asya.sh/actor is added beside them. So an
// existing actor is adopted by a rolling update, never deleted and recreated. The applied-hash
// annotation stays that of the rendered object: the adjustment depends only on the live
// selector, which cannot change.
void AdoptWorkloadSelector(const json& live, json& desired) {
  const std::string kind = desired.value("kind", "");
  if (kind != "Deployment" && kind != "StatefulSet")
    return;
  const json* live_sel = nullptr;
  if (auto s = live.find("spec"); s != live.end())
    if (auto sel = s->find("selector"); sel != s->end())
      live_sel = &*sel;
  if (live_sel == nullptr || !live_sel->is_object() || desired["spec"]["selector"] == *live_sel)
    return;
  json& labels = desired["spec"]["template"]["metadata"]["labels"];
  if (auto m = live_sel->find("matchLabels"); m != live_sel->end() && m->is_object())
    for (const auto& [k, v] : m->items())
      labels[k] = v;
  desired["spec"]["selector"] = *live_sel;
}

}  // namespace

Result<bool> Controller::ApplyObject(const json& desired_in, const json& owner) {
  json desired = desired_in;
  const std::string kind = desired.value("kind", "");
  const k8s::Resource* r = ResourceOf(kind);
  if (r == nullptr)
    return MakeError(ErrorCode::kInternal, "no resource for kind " + kind);
  json& meta = desired["metadata"];
  const std::string ns = meta.value("namespace", "");
  const std::string name = meta.value("name", "");
  if (!owner.is_null()) {
    meta["ownerReferences"] = json::array({{{"apiVersion", "asya.sh/v1alpha1"},
                                            {"kind", "AsyncActor"},
                                            {"name", owner["metadata"].value("name", "")},
                                            {"uid", owner["metadata"].value("uid", "")},
                                            {"controller", true},
                                            {"blockOwnerDeletion", true}}});
  }
  const std::string hash = ContentHash(desired);
  meta["annotations"][kAppliedHashAnnotation] = hash;
  const std::string memo_key = kind + "/" + ns + "/" + name;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = applied_.find(memo_key);
    if (it != applied_.end() && it->second == hash)
      return false;  // known to be live as is
  }
  auto live = client_.Get(*r, ns, name);
  if (live) {
    const json& lm = (*live)["metadata"];
    if (!lm.contains("deletionTimestamp") && lm.contains("annotations") &&
        lm["annotations"].value(kAppliedHashAnnotation, "") == hash) {
      std::lock_guard<std::mutex> lock(mu_);
      applied_[memo_key] = hash;
      return false;  // already what we want: no write
    }
  } else if (!k8s::IsNotFound(live.error())) {
    return Unexpected(live.error());
  }
  if (live)
    AdoptWorkloadSelector(*live, desired);
  auto out = client_.Apply(*r, ns, desired, kFieldManager);
  if (!out)
    return Unexpected(out.error());
  ++applies_;
  std::lock_guard<std::mutex> lock(mu_);
  applied_[memo_key] = hash;
  return true;
}

// ---------------------------------------------------------------------------------------------
// Reconcile

Status Controller::WriteStatus(const std::string& ns, const std::string& name, json status,
                               const json& old_status, const json& actor) {
  if (SameStatus(status, old_status))
    return Ok();
  json obj = actor;
  for (int attempt = 0; attempt < 4; ++attempt) {
    obj["status"] = status;
    auto out = client_.UpdateStatus(res::kAsyncActors, ns, obj);
    if (out) {
      ++status_writes_;
      std::string before = old_status.value("status", "");
      std::string after = status.value("status", "");
      if (before != after) {
        bool good = after == "Running" || after == "Napping" || after == "ScalingUp" ||
                    after == "ScalingDown";
        std::string msg = "status " + (before.empty() ? std::string("-") : before) + " -> " + after;
        if (const json* w = FindCondition(status, "WorkloadReady");
            w != nullptr && w->value("status", "") == "False") {
          msg += ": " + w->value("message", "");
        } else if (const json* t = FindCondition(status, "TransportReady");
                   t != nullptr && t->value("status", "") == "False") {
          msg += ": " + t->value("message", "");
        }
        if (client_.RecordEvent(*out, good ? "Normal" : "Warning", after, msg, kFieldManager)) {
          ++events_;
        }
      }
      return Ok();
    }
    if (!k8s::IsConflict(out.error()))
      return Unexpected(out.error());
    auto fresh = client_.Get(res::kAsyncActors, ns, name);
    if (!fresh)
      return Unexpected(fresh.error());
    obj = *fresh;
    if (obj.contains("status") && SameStatus(obj["status"], status))
      return Ok();
  }
  return MakeError(ErrorCode::kFailedPrecondition,
                   "status of " + ns + "/" + name + ": conflict after retries");
}

Status Controller::ReconcileDelete(json actor) {
  const std::string ns = actor["metadata"].value("namespace", "");
  const std::string name = actor["metadata"].value("name", "");
  if (!HasFinalizer(actor))
    return Ok();
  for (const auto* r : {&res::kScaledObjects, &res::kTriggerAuthentications}) {
    std::string n = r == &res::kScaledObjects ? name : name + "-trigger-auth";
    if (auto d = client_.Delete(*r, ns, n); !d && !k8s::IsNotFound(d.error())) {
      log::Warn("operator: delete " + r->kind + " " + ns + "/" + n + ": " + d.error().message);
    }
  }
  if (options_.queue_management && actor.contains("spec") && actor["spec"].contains("transport") &&
      actor["spec"]["transport"].is_string()) {
    auto it = options_.config.transports.find(actor["spec"]["transport"].get<std::string>());
    if (it != options_.config.transports.end() && it->second.enabled) {
      if (auto d = DeleteQueue(it->second, ns, name); !d) {
        log::Warn("operator: delete queue asya-" + name + ": " + d.error().message);
      }
    }
  }
  for (int attempt = 0; attempt < 4; ++attempt) {
    json fins = json::array();
    for (const auto& f : actor["metadata"].value("finalizers", json::array())) {
      if (f != kFinalizer)
        fins.push_back(f);
    }
    actor["metadata"]["finalizers"] = fins;
    auto out = client_.Update(res::kAsyncActors, ns, actor);
    if (out || k8s::IsNotFound(out.error())) {
      log::Info("operator: " + ns + "/" + name + " finalized");
      return Ok();
    }
    if (!k8s::IsConflict(out.error()))
      return Unexpected(out.error());
    auto fresh = client_.Get(res::kAsyncActors, ns, name);
    if (!fresh)
      return k8s::IsNotFound(fresh.error()) ? Ok() : Status(Unexpected(fresh.error()));
    actor = *fresh;
    if (!HasFinalizer(actor))
      return Ok();
  }
  return MakeError(ErrorCode::kFailedPrecondition,
                   "finalizer of " + ns + "/" + name + ": conflict after retries");
}

Status Controller::Reconcile(const std::string& key) {
  ++reconciles_;
  // Plain variables, not a structured binding: lambdas below capture them (clang 14, the fuzz
  // preset's compiler, cannot capture structured bindings).
  const auto parts = SplitKey(key);
  const std::string& ns = parts.first;
  const std::string& name = parts.second;
  auto got = client_.Get(res::kAsyncActors, ns, name);
  if (!got)
    return k8s::IsNotFound(got.error()) ? Ok() : Status(Unexpected(got.error()));
  json actor = std::move(*got);
  if (actor["metadata"].contains("deletionTimestamp"))
    return ReconcileDelete(std::move(actor));
  if (!HasFinalizer(actor)) {
    actor["metadata"]["finalizers"].push_back(kFinalizer);
    auto out = client_.Update(res::kAsyncActors, ns, actor);
    if (!out)
      return Unexpected(out.error());
    actor = std::move(*out);
  }
  const int64_t generation = actor["metadata"].value("generation", int64_t{0});
  const json old_status = actor.contains("status") ? actor["status"] : json::object();
  json status = old_status;
  const std::string now = FormatRfc3339(clock_->WallNow());
  status["observedGeneration"] = generation;

  auto finish = [&](bool scaling_enabled) -> Status {
    status["status"] = OverallStatus(status, false, scaling_enabled, false);
    return WriteStatus(ns, name, status, old_status, actor);
  };

  // Validate with the one AsyncActor model.
  json manifest = actor;
  manifest.erase("status");
  actor::ParseOptions po;
  po.require_transport = true;
  po.skip_crew = false;
  auto parsed = actor::ParseManifests(manifest.dump(), "AsyncActor " + ns + "/" + name, "", po);
  if (parsed && parsed->actors.size() != 1) {
    parsed = MakeError(ErrorCode::kInvalidArgument, "actor \"" + name + "\": not an actor");
  }
  if (!parsed) {
    SetCondition(status, "WorkloadReady", false, "ValidationError", parsed.error().message,
                 generation, now);
    return finish(false);
  }
  actor::ActorSpec spec = parsed->actors[0];
  spec.namespace_ = ns;
  const bool scaling = spec.scaling.enabled;
  status["scalingMode"] = scaling ? "KEDA" : "Manual";

  auto entry = options_.config.transports.find(spec.transport);
  if (entry == options_.config.transports.end() || !entry->second.enabled) {
    std::string msg =
        "transport '" + spec.transport + "' " +
        (entry == options_.config.transports.end() ? "not found in operator configuration"
                                                   : "is disabled in operator configuration");
    SetCondition(status, "TransportReady", false, "InvalidTransport", msg, generation, now);
    status["transportStatus"] = "NotReady";
    return finish(scaling);
  }

  RenderOptions ro;
  ro.namespace_ = ns;
  auto [script, script_tag] = RuntimeScript();
  ro.runtime_script = std::move(script);
  auto objects = RenderActor(spec, options_.config, ro);
  if (!objects) {
    SetCondition(status, "WorkloadReady", false, "ValidationError", objects.error().message,
                 generation, now);
    return finish(scaling);
  }

  // Queue first: a workload without its queue only crash-loops.
  if (options_.queue_management) {
    if (auto q = EnsureQueue(entry->second, ns, name); !q) {
      SetCondition(status, "TransportReady", false, "QueueError",
                   "queue asya-" + name + ": " + q.error().message, generation, now);
      status["transportStatus"] = "NotReady";
      auto w = finish(scaling);
      if (!w)
        return w;
      return Unexpected(q.error());  // retried with backoff
    }
    // Queue metrics for the wide columns (best effort; refreshed whenever the actor reconciles).
    if (auto d = QueueDepthOf(entry->second, ns, name)) {
      status["queuedMessages"] = d->ready;
      if (d->inflight >= 0)
        status["processingMessages"] = d->inflight;
    }
  }
  SetCondition(status, "TransportReady", true, "TransportValidated",
               "Transport configuration validated", generation, now);
  status["transportStatus"] = "Ready";

  // The shared runtime ConfigMap (no owner: it outlives any one actor), then the actor's.
  std::vector<json> all;
  all.push_back(RenderRuntimeConfigMap(ns, options_.config, ro.runtime_script));
  json workload;
  for (auto& o : *objects) {
    if (o.value("kind", "") == "Deployment" || o.value("kind", "") == "StatefulSet")
      workload = o;
    all.push_back(std::move(o));
  }
  // The shared ConfigMap is the same for every actor of the namespace: once it is known to be
  // applied from this version of the script, it is not hashed and compared again until the next
  // resync (which clears applied_).
  const std::string runtime_memo = "runtime-script/" + ns;
  bool runtime_known = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = applied_.find(runtime_memo);
    runtime_known = it != applied_.end() && it->second == script_tag;
  }
  for (size_t i = runtime_known ? 1 : 0; i < all.size(); ++i) {
    auto applied = ApplyObject(all[i], i == 0 ? json() : actor);
    if (applied && i == 0) {
      std::lock_guard<std::mutex> lock(mu_);
      applied_[runtime_memo] = script_tag;
    }
    if (!applied) {
      SetCondition(status, "WorkloadReady", false, "ReconcileError",
                   all[i].value("kind", "") + " " + name + ": " + applied.error().message,
                   generation, now);
      auto w = finish(scaling);
      if (!w)
        return w;
      return Unexpected(applied.error());
    }
  }
  if (!scaling) {
    for (const auto* r : {&res::kScaledObjects, &res::kTriggerAuthentications}) {
      std::string n = r == &res::kScaledObjects ? name : name + "-trigger-auth";
      const std::string memo_key = r->kind + "/" + ns + "/" + n;
      {
        std::lock_guard<std::mutex> lock(mu_);
        auto it = applied_.find(memo_key);
        if (it != applied_.end() && it->second == kAbsent)
          continue;
      }
      if (client_.Get(*r, ns, n)) {
        if (auto d = client_.Delete(*r, ns, n); !d && !k8s::IsNotFound(d.error())) {
          return Unexpected(d.error());
        }
      }
      std::lock_guard<std::mutex> lock(mu_);
      applied_[memo_key] = kAbsent;
    }
  } else {
    SetCondition(status, "ScalingReady", true, "ScaledObjectCreated",
                 "KEDA ScaledObject successfully created", generation, now);
    status["scaledObjectRef"] = {{"name", name}, {"namespace", ns}};
  }

  // Observe the workload and its pods.
  const std::string wkind = workload.value("kind", "Deployment");
  const k8s::Resource* wr = ResourceOf(wkind);
  // From the informers' caches (filled before any worker started), not from the API.
  json live = json::object();
  json pods = json::array();
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (auto it = workloads_.find(wr->kind + "/" + ns + "/" + name); it != workloads_.end()) {
      live = it->second;
    }
    if (auto it = pods_.find(ns + "/" + name); it != pods_.end()) {
      for (const auto& [pod_name, pod] : it->second)
        pods.push_back(pod);
    }
  }
  const int desired = live.contains("spec") ? live["spec"].value("replicas", 0) : 0;
  const int ready = IntAt(live, "status", "readyReplicas");
  const int total = IntAt(live, "status", "replicas");
  PodScan scan = ScanPods(pods, desired > 0);
  if (scan.problem.empty()) {
    SetCondition(status, "WorkloadReady", true, "WorkloadCreated", "Workload successfully created",
                 generation, now);
  } else {
    SetCondition(status, "WorkloadReady", false, "PodsNotHealthy", scan.problem, generation, now);
  }
  const int old_ready = old_status.value("replicas", -1);
  status["readyReplicas"] = ready;
  status["totalReplicas"] = total;
  status["pendingReplicas"] = scan.pending;
  status["failingPods"] = scan.failing;
  status["replicas"] = ready;
  status["desiredReplicas"] = desired;
  status["readyReplicasSummary"] = std::to_string(ready) + "/" + std::to_string(total);
  status["replicasSummary"] = std::to_string(ready) + "/" + std::to_string(desired);
  int true_conds = 0;
  for (const char* t : {"TransportReady", "WorkloadReady", "ScalingReady"}) {
    const json* c = FindCondition(status, t);
    if (c != nullptr && c->value("status", "") == "True" &&
        (scaling || std::string(t) != "ScalingReady")) {
      ++true_conds;
    }
  }
  status["readySummary"] = std::to_string(true_conds) + "/" + (scaling ? "3" : "2");
  status["workloadRef"] = {
      {"apiVersion", "apps/v1"}, {"kind", wkind}, {"name", name}, {"namespace", ns}};
  if (old_ready >= 0 && old_ready != ready) {
    // A fixed timestamp rather than "Ns ago": a text that ages would be a write per resync.
    std::string dir = ready > old_ready ? "up" : "down";
    status["lastScaleTime"] = now;
    status["lastScaleDirection"] = dir;
    status["lastScaleFormatted"] = now + " (" + dir + ")";
  } else if (!status.contains("lastScaleFormatted")) {
    status["lastScaleFormatted"] = "-";
  }
  bool long_ago = false;
  if (status.contains("lastScaleTime")) {
    if (auto t = ParseRfc3339(status["lastScaleTime"].get<std::string>())) {
      (void)t;
      long_ago = status["lastScaleTime"].get<std::string>() <
                 FormatRfc3339(clock_->WallNow() - std::chrono::minutes(5));
    }
  }
  status["status"] = OverallStatus(status, false, scaling, long_ago);
  ASYA_RETURN_IF_ERROR(WriteStatus(ns, name, status, old_status, actor));
  const std::string s = status["status"];
  if (s != "Running" && s != "Napping")
    queue_.AddAfter(key, options_.requeue_unsteady);
  return Ok();
}

// ---------------------------------------------------------------------------------------------
// Informers, workers

void Controller::WatchLoop(const k8s::Resource& r, const std::string& label_selector,
                           std::function<std::string(const json&)> key_of, bool is_primary,
                           std::atomic<bool>* synced) {
  const std::string& ns = options_.watch_namespace;
  const bool is_pod = &r == &res::kPods;
  const bool is_workload = &r == &res::kDeployments || &r == &res::kStatefulSets;
  // Caches of what the status needs (trimmed: the full objects would cost memory per actor).
  auto remember = [&](const std::string& type, const json& obj) {
    const json& m = obj["metadata"];
    const std::string ns_name = m.value("namespace", "") + "/" + m.value("name", "");
    std::lock_guard<std::mutex> lock(mu_);
    if (is_workload) {
      if (type == "DELETED") {
        workloads_.erase(r.kind + "/" + ns_name);
        return;
      }
      // Fields of the wrong type count as absent (never an exception on the watch thread).
      const json* spec = obj.contains("spec") && obj["spec"].is_object() ? &obj["spec"] : nullptr;
      const bool has_replicas =
          spec != nullptr && spec->contains("replicas") && (*spec)["replicas"].is_number_integer();
      json t = {{"spec", {{"replicas", has_replicas ? (*spec)["replicas"].get<int64_t>() : 0}}},
                {"status", obj.contains("status") && obj["status"].is_object() ? obj["status"]
                                                                               : json::object()}};
      t["status"].erase("conditions");
      workloads_[r.kind + "/" + ns_name] = std::move(t);
    } else if (is_pod) {
      const std::string actor_key = m.value("namespace", "") + "/" + LabelOf(obj, kActorLabel);
      if (type == "DELETED") {
        if (auto it = pods_.find(actor_key); it != pods_.end()) {
          it->second.erase(m.value("name", ""));
          if (it->second.empty())
            pods_.erase(it);
        }
        return;
      }
      json t = {{"metadata", {{"name", m.value("name", "")}}}, {"status", json::object()}};
      if (m.contains("deletionTimestamp"))
        t["metadata"]["deletionTimestamp"] = m["deletionTimestamp"];
      if (obj.contains("status") && obj["status"].is_object()) {
        for (const char* k :
             {"phase", "conditions", "containerStatuses", "initContainerStatuses"}) {
          if (obj["status"].contains(k))
            t["status"][k] = obj["status"][k];
        }
      }
      pods_[actor_key][m.value("name", "")] = std::move(t);
    }
  };
  auto enqueue = [&](const std::string& type, const json& obj) {
    if (is_pod || is_workload)
      remember(type, obj);
    if (!is_primary && type == "DELETED") {
      // An owned object went away (a user, or garbage collection): check it again next time.
      std::lock_guard<std::mutex> lock(mu_);
      applied_.erase(r.kind + "/" + obj["metadata"].value("namespace", "") + "/" +
                     obj["metadata"].value("name", ""));
    }
    std::string key = key_of(obj);
    if (key.empty())
      return;
    if (is_primary) {
      const json& m = obj["metadata"];
      std::string sig = std::to_string(m.value("generation", 0)) + "|" +
                        (m.contains("deletionTimestamp") ? "d" : "") + "|" +
                        (m.contains("finalizers") ? m["finalizers"].dump() : "");
      std::lock_guard<std::mutex> lock(mu_);
      if (type == "DELETED") {
        primary_seen_.erase(key);
        return;
      }
      auto it = primary_seen_.find(key);
      if (it != primary_seen_.end() && it->second == sig && type == "MODIFIED")
        return;
      primary_seen_[key] = sig;
    }
    queue_.Add(key);
  };
  while (!stopping_) {
    k8s::ListOptions lo;
    lo.label_selector = label_selector;
    auto list = client_.List(r, ns, lo);
    if (list && !list->is_object()) {
      list = MakeError(ErrorCode::kInternal, "the list response is not a JSON object");
    }
    if (!list) {
      log::Warn("operator: list " + r.plural + ": " + list.error().message);
      clock_->SleepFor(std::chrono::seconds(1));
      continue;
    }
    ++relists_;
    if (is_pod || is_workload) {  // a relist replaces the cache: deletions in the gap count
      std::lock_guard<std::mutex> lock(mu_);
      if (is_pod) {
        pods_.clear();
      } else {
        for (auto it = workloads_.begin(); it != workloads_.end();) {
          it = it->first.rfind(r.kind + "/", 0) == 0 ? workloads_.erase(it) : std::next(it);
        }
      }
    }
    const json& items = (*list)["items"];
    for (const auto& item : items.is_array() ? items : json::array()) {
      if (std::string why = k8s::MalformedObject(item); !why.empty()) {
        log::Warn("operator: list " + r.plural + ": skipped an item: " + why);
        continue;
      }
      enqueue("ADDED", item);
    }
    if (synced != nullptr)
      *synced = true;
    k8s::WatchOptions wo;
    const json& list_meta = (*list)["metadata"];
    wo.resource_version = list_meta.is_object() && list_meta.contains("resourceVersion") &&
                                  list_meta["resourceVersion"].is_string()
                              ? list_meta["resourceVersion"].get<std::string>()
                              : "";
    wo.label_selector = label_selector;
    wo.timeout_seconds = 300;
    while (!stopping_) {
      auto rv = client_.Watch(
          r, ns, wo,
          [&](const std::string& type, const json& obj) {
            if (type != "BOOKMARK")
              enqueue(type, obj);
            return !stopping_.load();
          },
          &cancel_);
      if (!rv) {
        if (!k8s::IsGone(rv.error()) && !stopping_) {
          log::Warn("operator: watch " + r.plural + ": " + rv.error().message);
          clock_->SleepFor(std::chrono::milliseconds(500));
        }
        break;  // relist
      }
      ++watch_restarts_;
      wo.resource_version = *rv;
    }
  }
}

void Controller::Worker() {
  while (auto key = queue_.Get()) {
    auto s = Reconcile(*key);
    if (s) {
      queue_.Forget(*key);
    } else {
      ++reconcile_errors_;
      log::Warn("operator: reconcile " + *key + ": " + s.error().message);
      queue_.AddRateLimited(*key);
    }
    queue_.Done(*key);
  }
}

// ---------------------------------------------------------------------------------------------
// Leader election (coordination.k8s.io/v1 Lease). A lease is taken over when its holder has not
// renewed it (its resourceVersion did not change) for lease_duration of OUR clock, so clock skew
// between instances does not matter.

bool Controller::TryAcquireOrRenew() {
  const std::string now = FormatRfc3339(clock_->WallNow(), 6);
  const int duration_s = static_cast<int>(
      std::chrono::duration_cast<std::chrono::seconds>(options_.lease_duration).count());
  auto lease = client_.Get(res::kLeases, options_.lease_namespace, options_.lease_name);
  if (!lease) {
    if (!k8s::IsNotFound(lease.error()))
      return false;
    json l = {
        {"apiVersion", "coordination.k8s.io/v1"},
        {"kind", "Lease"},
        {"metadata", {{"name", options_.lease_name}, {"namespace", options_.lease_namespace}}},
        {"spec",
         {{"holderIdentity", options_.identity},
          {"leaseDurationSeconds", duration_s},
          {"acquireTime", now},
          {"renewTime", now},
          {"leaseTransitions", 0}}}};
    return static_cast<bool>(client_.Create(res::kLeases, options_.lease_namespace, l));
  }
  json l = *lease;
  const std::string holder = l["spec"].value("holderIdentity", "");
  const std::string rv = l["metadata"].value("resourceVersion", "");
  if (rv != observed_lease_rv_) {
    observed_lease_rv_ = rv;
    observed_at_ = clock_->Now();
  }
  if (holder != options_.identity) {
    bool expired = holder.empty() || clock_->Now() - observed_at_ >= options_.lease_duration;
    if (!expired)
      return false;
    l["spec"]["holderIdentity"] = options_.identity;
    l["spec"]["acquireTime"] = now;
    l["spec"]["leaseTransitions"] = l["spec"].value("leaseTransitions", 0) + 1;
  }
  l["spec"]["renewTime"] = now;
  l["spec"]["leaseDurationSeconds"] = duration_s;
  auto out = client_.Update(res::kLeases, options_.lease_namespace, l);
  if (!out)
    return false;
  observed_lease_rv_ = (*out)["metadata"].value("resourceVersion", "");
  observed_at_ = clock_->Now();
  return true;
}

Status Controller::LeaderLoop(const std::atomic<bool>& stop) {
  // Wait to acquire.
  while (!stop) {
    if (TryAcquireOrRenew())
      break;
    clock_->SleepFor(options_.retry_interval);
  }
  if (stop)
    return Ok();
  leading_ = true;
  last_renew_ = clock_->Now();
  log::Info("operator: leading as " + options_.identity);
  return Ok();
}

Status Controller::Run(const std::atomic<bool>& stop) {
  if (options_.leader_elect) {
    ready_ = true;  // a standby is ready (it serves nothing but its probes)
    ASYA_RETURN_IF_ERROR(LeaderLoop(stop));
    if (stop)
      return Ok();
    ready_ = false;
  } else {
    leading_ = true;
  }
  auto actor_key = [](const json& o) {
    return o["metadata"].value("namespace", "") + "/" + o["metadata"].value("name", "");
  };
  auto label_key = [](const json& o) {
    std::string a = LabelOf(o, kActorLabel);
    return a.empty() ? std::string() : o["metadata"].value("namespace", "") + "/" + a;
  };
  auto hpa_key = [](const json& o) {
    std::string n = o["metadata"].value("name", "");
    if (n.rfind("keda-hpa-", 0) != 0)
      return std::string();
    return o["metadata"].value("namespace", "") + "/" + n.substr(9);
  };
  std::array<std::atomic<bool>, 6> synced{};
  const std::string sel = kActorLabel;  // "has label"
  threads_.emplace_back(
      [&, actor_key] { WatchLoop(res::kAsyncActors, "", actor_key, true, &synced[0]); });
  threads_.emplace_back(
      [&, label_key, sel] { WatchLoop(res::kDeployments, sel, label_key, false, &synced[1]); });
  threads_.emplace_back(
      [&, label_key, sel] { WatchLoop(res::kStatefulSets, sel, label_key, false, &synced[2]); });
  threads_.emplace_back(
      [&, label_key, sel] { WatchLoop(res::kScaledObjects, sel, label_key, false, &synced[3]); });
  threads_.emplace_back(
      [&, label_key, sel] { WatchLoop(res::kPods, sel, label_key, false, &synced[4]); });
  threads_.emplace_back([&, hpa_key] { WatchLoop(res::kHpas, "", hpa_key, false, &synced[5]); });
  // Workers start once every cache has listed: a status computed from a half-filled cache
  // would be wrong, and written.
  auto all_synced = [&] {
    for (const auto& s : synced) {
      if (!s.load())
        return false;
    }
    return true;
  };
  while (!stop && !all_synced())
    clock_->SleepFor(std::chrono::milliseconds(20));
  for (int i = 0; i < std::max(1, options_.workers); ++i) {
    threads_.emplace_back([this] { Worker(); });
  }
  auto next_resync = clock_->Now() + options_.resync;
  Status result = Ok();
  while (!stop) {
    ready_ = true;
    clock_->SleepFor(std::chrono::milliseconds(200));
    if (clock_->Now() >= next_resync) {
      next_resync = clock_->Now() + options_.resync;
      std::vector<std::string> keys;
      {
        std::lock_guard<std::mutex> lock(mu_);
        applied_.clear();  // re-check every live object (reads only; writes only on drift)
        for (const auto& [k, v] : primary_seen_)
          keys.push_back(k);
      }
      for (const auto& k : keys)
        queue_.Add(k);
    }
    if (options_.leader_elect && clock_->Now() - last_renew_ >= options_.renew_interval) {
      if (TryAcquireOrRenew()) {
        last_renew_ = clock_->Now();
      } else if (clock_->Now() - last_renew_ >= options_.lease_duration) {
        result = MakeError(ErrorCode::kUnavailable, "leader election lost");
        break;
      }
    }
  }
  leading_ = false;
  stopping_ = true;
  cancel_.Cancel();
  queue_.ShutDown();
  for (auto& t : threads_) {
    if (t.joinable())
      t.join();
  }
  threads_.clear();
  return result;
}

std::string Controller::Metrics() const {
  std::string out;
  auto counter = [&](const char* name, const char* help, long v) {
    out += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " counter\n" + name +
           " " + std::to_string(v) + "\n";
  };
  counter("asya_operator_reconciles_total", "Reconciles run.", reconciles_.load());
  counter("asya_operator_reconcile_errors_total", "Reconciles that failed.",
          reconcile_errors_.load());
  counter("asya_operator_applies_total", "Server-side applies sent.", applies_.load());
  counter("asya_operator_status_writes_total", "AsyncActor status writes.", status_writes_.load());
  counter("asya_operator_events_total", "Kubernetes Events recorded.", events_.load());
  counter("asya_operator_relists_total", "Lists done by the informers.", relists_.load());
  out +=
      "# HELP asya_operator_workqueue_depth Keys ready in the work queue.\n"
      "# TYPE asya_operator_workqueue_depth gauge\nasya_operator_workqueue_depth " +
      std::to_string(queue_.Len()) + "\n";
  out +=
      "# HELP asya_operator_leader 1 while this instance leads.\n"
      "# TYPE asya_operator_leader gauge\nasya_operator_leader " +
      std::string(leading_ ? "1" : "0") + "\n";
  return out;
}

}  // namespace asya::op
