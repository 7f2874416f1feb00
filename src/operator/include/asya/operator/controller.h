// The operator's control loop: informer-style list+watch per watched kind feeding a work queue,
// N workers reconciling AsyncActors, a periodic resync, leader election on a Lease, metrics.
//
// Reconcile of one AsyncActor (reference-controlplane §2.3, with the §10 fixes):
//   finalizer asya.sh/finalizer → validate (asya::actor, the same parser as asya up / render;
//   invalid → WorkloadReady=False/ValidationError naming actor and field, no workload) →
//   transport entry by name (missing/disabled → TransportReady=False/InvalidTransport) → render
//   (the same RenderActor as asya render) → server-side apply of each object with an owner
//   reference, skipped when the live object carries the same asya.sh/applied-hash annotation →
//   queue asya-<actor> ensured through the transport administration → status (§4), written only
//   when it differs, with conflict retry; an Event on each change of status.status.
// Deletion: ScaledObject, TriggerAuthentication and the queue are deleted, then the finalizer
// removed (garbage collection takes the rest).
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "asya/base/clock.h"
#include "asya/base/result.h"
#include "asya/k8s/client.h"
#include "asya/operator/config.h"
#include "asya/operator/workqueue.h"
#include "asya/transport/factory.h"

namespace asya::op {

inline constexpr const char* kFinalizer = "asya.sh/finalizer";
inline constexpr const char* kFieldManager = "asya-operator";
inline constexpr const char* kAppliedHashAnnotation = "asya.sh/applied-hash";

struct ControllerOptions {
  OperatorConfig config;
  std::string runtime_script_path = "/runtime/asya_runtime.py";  // re-read when it changes
  int workers = 4;
  std::string watch_namespace;  // "" = all namespaces
  bool queue_management = true;
  transport::SqsSettings sqs_defaults;  // credential chain etc. filled by the program
  Clock::Duration resync = std::chrono::minutes(5);
  Clock::Duration requeue_unsteady = std::chrono::seconds(10);
  // Leader election (Lease `lease_name` in `lease_namespace`).
  bool leader_elect = false;
  std::string lease_name = "asya-operator.asya.sh";
  std::string lease_namespace = "default";
  std::string identity = "asya-operator";
  Clock::Duration lease_duration = std::chrono::seconds(15);
  Clock::Duration renew_interval = std::chrono::seconds(5);
  Clock::Duration retry_interval = std::chrono::seconds(2);
};

class Controller {
 public:
  Controller(const k8s::Client& client, ControllerOptions options, Clock* clock = nullptr);
  ~Controller();

  // Runs until `stop` is set (returns Ok) or leadership is lost (kUnavailable).
  Status Run(const std::atomic<bool>& stop);

  // Reconciles one key "<ns>/<name>" now (used by workers; public for tests).
  Status Reconcile(const std::string& key);

  [[nodiscard]] bool Ready() const { return ready_.load(); }
  [[nodiscard]] bool Leading() const { return leading_.load(); }
  [[nodiscard]] std::string Metrics() const;

 private:
  struct QueueAdmin;
  Status ReconcileDelete(nlohmann::json actor);
  Status WriteStatus(const std::string& ns, const std::string& name, nlohmann::json status,
                     const nlohmann::json& old_status, const nlohmann::json& actor);
  Result<bool> ApplyObject(const nlohmann::json& desired, const nlohmann::json& owner);
  Status EnsureQueue(const TransportEntry& entry, const std::string& ns, const std::string& actor);
  Result<transport::QueueDepth> QueueDepthOf(const TransportEntry& entry, const std::string& ns,
                                             const std::string& actor);
  Status DeleteQueue(const TransportEntry& entry, const std::string& ns, const std::string& actor);
  Result<transport::Transport*> TransportFor(const TransportEntry& entry, const std::string& ns,
                                             std::mutex** mu);
  void WatchLoop(const k8s::Resource& r, const std::string& label_selector,
                 std::function<std::string(const nlohmann::json&)> key_of, bool is_primary,
                 std::atomic<bool>* synced);
  void Worker();
  Status LeaderLoop(const std::atomic<bool>& stop);
  bool TryAcquireOrRenew();
  // The runtime script and a tag of its version (re-read when the file's metadata changes).
  std::pair<std::string, std::string> RuntimeScript() const;

  const k8s::Client& client_;
  ControllerOptions options_;
  Clock* clock_;
  WorkQueue queue_;
  std::atomic<bool> stopping_{false};
  std::atomic<bool> ready_{false};
  std::atomic<bool> leading_{false};
  http::CancelToken cancel_;
  std::vector<std::thread> threads_;

  mutable std::mutex mu_;
  mutable std::mutex script_mu_;
  mutable std::string script_;
  mutable std::string script_tag_;
  std::map<std::string, std::string> primary_seen_;  // key -> generation/deleting/finalizers
  std::map<std::string, std::unique_ptr<QueueAdmin>> transports_;  // entry/ns -> transport
  // "<kind>/<ns>/<name>" -> hash of what is known to be live (or "-": known absent), so a
  // reconcile of an unchanged actor reads nothing but the actor, its workload and pods. Entries
  // go when a watch reports the object deleted and on every periodic resync.
  std::map<std::string, std::string> applied_;
  // Informer caches: "<kind>/<ns>/<name>" -> workload {spec.replicas, status}; "<ns>/<actor>" ->
  // pod name -> pod {metadata.name, deletionTimestamp, status}.
  std::map<std::string, nlohmann::json> workloads_;
  std::map<std::string, std::map<std::string, nlohmann::json>> pods_;

  // leader election observation
  std::string observed_lease_rv_;
  Clock::MonoTime observed_at_{};
  Clock::MonoTime last_renew_{};

  // metrics
  std::atomic<long> reconciles_{0}, reconcile_errors_{0}, applies_{0}, status_writes_{0},
      events_{0}, watch_restarts_{0}, relists_{0};
};

// Stable text hash (FNV-1a 64, hex) of an object's canonical JSON.
std::string ContentHash(const nlohmann::json& object);

}  // namespace asya::op
