// Prometheus metrics of the sidecar (reference-dataplane §7): same names, labels and buckets;
// the production MetricsSink.
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
#include "asya/sidecar/metrics_sink.h"

namespace asya::sidecar {

struct MetricsOptions {
  std::string name_space = "asya_actor";  // ASYA_METRICS_NAMESPACE
  std::string actor;                      // label `queue`
  std::string transport;                  // label `transport`
};

class Metrics final : public MetricsSink {
 public:
  explicit Metrics(MetricsOptions options);
  ~Metrics() override;
  Metrics(const Metrics&) = delete;
  Metrics& operator=(const Metrics&) = delete;

  // Registers ASYA_CUSTOM_METRICS: a JSON array of {name, type, help, labels[], buckets[]}.
  // Names are sanitised (chars outside [A-Za-z0-9_:] -> '_', leading digit -> '_' prefix).
  // Errors (kInvalidArgument): bad JSON, not an array, missing/duplicate name, bad label name.
  // Unknown types are skipped with a warning (as the original).
  Status RegisterCustom(std::string_view json);

  void Received(size_t bytes) override;
  void ReceiveDuration(double seconds) override;
  void Processed(std::string_view status) override;
  void Sent(std::string_view destination, std::string_view message_type, size_t bytes) override;
  void SendDuration(std::string_view destination, double seconds) override;
  void Failed(std::string_view reason) override;
  void RuntimeError() override;
  void ProcessingDuration(double seconds) override;
  void RuntimeDuration(double seconds) override;
  void ActiveAdd(int delta) override;

  [[nodiscard]] std::string Render() const;

  // Sanitises a metric name as described above.
  static std::string SanitizeName(std::string_view name);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace asya::sidecar
