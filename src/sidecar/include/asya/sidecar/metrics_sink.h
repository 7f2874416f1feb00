// What the sidecar loop records about its messages (reference-dataplane §7). Metrics (metrics.h)
// is the Prometheus implementation; tests record the calls with a fake. Label values are the
// metric label strings (router::ProcessedLabel, router::FailReasonLabel, router::MessageTypeName),
// so the exported names and labels are decided in one place. Implementations are thread-safe.
#pragma once

#include <cstddef>
#include <string_view>

namespace asya::sidecar {

class MetricsSink {
 public:
  virtual ~MetricsSink() = default;

  virtual void Received(size_t bytes) = 0;              // messages_received_total + size{received}
  virtual void ReceiveDuration(double seconds) = 0;     // queue_receive_duration_seconds
  virtual void Processed(std::string_view status) = 0;  // messages_processed_total{status}
  // messages_sent_total{destination_queue, message_type} + size{sent}
  virtual void Sent(std::string_view destination, std::string_view message_type, size_t bytes) = 0;
  virtual void SendDuration(std::string_view destination, double seconds) = 0;
  virtual void Failed(std::string_view reason) = 0;  // messages_failed_total{reason}
  virtual void RuntimeError() = 0;                   // runtime_errors_total{execution_error}
  virtual void ProcessingDuration(double seconds) = 0;
  virtual void RuntimeDuration(double seconds) = 0;
  virtual void ActiveAdd(int delta) = 0;  // active_messages
};

}  // namespace asya::sidecar
