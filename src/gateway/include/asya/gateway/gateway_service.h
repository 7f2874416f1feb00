// The real Service (service.h) on an asya::store::Store and a transport, plus the callbacks the
// mesh sends (sidecar progress, end-actor final status, fan-out children).
//
// CallTool (reference-controlplane §7.5): arguments checked against the tool's inputSchema
// (defaults filled in), an envelope stored as pending with id = UUIDv4, route
// {actors, current: 0, metadata: {job_id: id}}, payload = the arguments, deadline = now + timeout
// (none for timeout 0); then, on a publisher thread: running ("Sending envelope to first actor")
// and a publish of §7.10 to `asya-<actors[0]>` through the transport; a publish failure finishes
// the envelope as failed ("failed to send envelope: ...").
//
// The state machine lives in the store (final is final; progress reaches 100 only through
// Finish). Background loops: deadlines (Store::ExpiredBefore → failed "envelope timed out"; they
// survive restarts since the deadline is stored) and retention (Store::PurgeFinishedBefore).
// Fan-out children (POST /envelopes) are recorded, never published: the sidecar already did.
// MCP sessions live in the store too (any replica serves them) and expire when idle.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "asya/base/clock.h"
#include "asya/base/result.h"
#include "asya/gateway/service.h"
#include "asya/store/store.h"
#include "asya/transport/transport.h"

namespace asya::gateway {

// What the mesh reports (REST callback endpoints). Implemented by GatewayService; a separate
// interface so REST handlers are unit-tested with a fake.
class Callbacks {
 public:
  virtual ~Callbacks() = default;
  // A sidecar's progress report; kNotFound for an unknown id.
  virtual Result<store::Transition> ReportProgress(std::string_view id,
                                                   const store::ProgressReport& report) = 0;
  // An end actor's final status; kNotFound for an unknown id.
  virtual Result<store::Transition> ReportFinal(std::string_view id,
                                                const store::FinalReport& report) = 0;
  // Records a fan-out child (pending, never published). Returns false when a child with this id
  // and parent already exists (a retried report); kAlreadyExists when the id belongs to another.
  virtual Result<bool> RecordChild(std::string_view id, std::string_view parent_id,
                                   const std::vector<std::string>& actors, int current) = 0;
};

struct ServiceOptions {
  std::vector<Tool> tools;
  int publish_threads = 4;
  std::size_t publish_queue = 10'000;  // pending publishes; CallTool refuses when full
  // Period of the background loop (deadlines, then retention); 0: no loop (tests call
  // SweepDeadlines / PurgeOnce themselves).
  std::chrono::milliseconds deadline_sweep{1000};
  // Finished envelopes are purged this long after their last update (0 = kept forever).
  std::chrono::seconds retention{std::chrono::hours(24)};
  std::chrono::milliseconds purge_interval{std::chrono::minutes(10)};
  // MCP sessions unused for this long are purged (0 = kept until the client ends them). Use is
  // recorded at most once per `session_touch_interval`, so a busy session costs no writes.
  std::chrono::seconds session_idle_timeout{std::chrono::hours(24)};
  std::chrono::seconds session_touch_interval{std::chrono::minutes(1)};
};

class GatewayService final : public Service, public Callbacks {
 public:
  GatewayService(ServiceOptions options, store::Store& store, transport::Transport& transport,
                 Clock& clock);
  ~GatewayService() override;  // Stop()
  GatewayService(const GatewayService&) = delete;
  GatewayService& operator=(const GatewayService&) = delete;

  // Starts the store feed, the publisher threads and the background loops.
  Status Start();
  // Stops the loops; publishes already queued are finished first (bounded by the transport).
  void Stop();

  // Service
  [[nodiscard]] std::vector<Tool> Tools() const override;
  [[nodiscard]] const Tool* FindTool(std::string_view name) const override;
  Result<store::Envelope> CallTool(std::string_view name, std::string_view arguments_json) override;
  Result<store::Envelope> Get(std::string_view id) override;
  Result<std::vector<store::Update>> History(std::string_view id, std::int64_t after_seq) override;
  Result<std::vector<std::string>> Children(std::string_view id) override;
  Result<store::Transition> Cancel(std::string_view id, std::string_view reason) override;
  std::unique_ptr<Subscription> Subscribe(
      std::string_view id, std::function<void(const store::Update&)> on_update) override;

  Result<void> OpenSession(const store::McpSession& session) override;
  Result<store::McpSession> FindSession(std::string_view id) override;
  Result<bool> EndSession(std::string_view id) override;

  // Callbacks
  Result<store::Transition> ReportProgress(std::string_view id,
                                           const store::ProgressReport& report) override;
  Result<store::Transition> ReportFinal(std::string_view id,
                                        const store::FinalReport& report) override;
  Result<bool> RecordChild(std::string_view id, std::string_view parent_id,
                           const std::vector<std::string>& actors, int current) override;

  // One pass of each background loop (tests drive them with a ManualClock). PurgeOnce purges
  // finished envelopes past the retention (returns how many) and idle MCP sessions.
  Result<int> SweepDeadlines();
  Result<std::int64_t> PurgeOnce();

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

// A random RFC 4122 version-4 UUID ("xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx").
std::string NewUuid4();

// The message published to the first actor (§7.10): {"id","route":{"actors","current",
// "metadata"?},"payload","deadline"?}, deadline RFC 3339 in seconds with `Z`.
std::string PublishBody(const store::Envelope& envelope);

}  // namespace asya::gateway
