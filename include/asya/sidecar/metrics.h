// Prometheus metrics of the sidecar (reference-dataplane §7): same names, labels and buckets.
//
// Thread-safe. Render() writes the Prometheus text exposition format (version 0.0.4). Built-in
// names are prefixed with `<namespace>_`; custom metrics (ASYA_CUSTOM_METRICS) are not.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "asya/base/result.h"

namespace asya::sidecar {

struct MetricsOptions {
  std::string name_space = "asya_actor";  // ASYA_METRICS_NAMESPACE
  std::string actor;                      // label `queue`
  std::string transport;                  // label `transport`
};

class Metrics {
 public:
  explicit Metrics(MetricsOptions options);
  ~Metrics();
  Metrics(const Metrics&) = delete;
  Metrics& operator=(const Metrics&) = delete;

  // Registers ASYA_CUSTOM_METRICS: a JSON array of {name, type, help, labels[], buckets[]}.
  // Names are sanitised (chars outside [A-Za-z0-9_:] -> '_', leading digit -> '_' prefix).
  // Errors (kInvalidArgument): bad JSON, not an array, missing/duplicate name, bad label name.
  // Unknown types are skipped with a warning (as the original).
  Status RegisterCustom(std::string_view json);

  void Received(size_t bytes);              // messages_received_total + size{received}
  void ReceiveDuration(double seconds);     // queue_receive_duration_seconds
  void Processed(std::string_view status);  // messages_processed_total{status}
  void Sent(std::string_view destination, std::string_view message_type, size_t bytes);
  void SendDuration(std::string_view destination, double seconds);
  void Failed(std::string_view reason);  // messages_failed_total{reason}
  void RuntimeError();                   // runtime_errors_total{execution_error}
  void ProcessingDuration(double seconds);
  void RuntimeDuration(double seconds);
  void ActiveAdd(int delta);  // active_messages

  [[nodiscard]] std::string Render() const;

  // Sanitises a metric name as described above.
  static std::string SanitizeName(std::string_view name);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace asya::sidecar
