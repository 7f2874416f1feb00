// The checker's pipeline: AsyncActor manifests and their Python handlers, written into a
// directory that `asya up` runs (private header of asya::check).
#pragma once

#include <string>
#include <vector>

#include "asya/base/result.h"

namespace asya::check::internal {

inline constexpr char kSplit[] = "chk-split";
inline constexpr char kFlaky[] = "chk-flaky";
inline constexpr char kSink[] = "chk-sink";
inline constexpr int kRuntimeTimeoutS = 3;  // spec.timeout.processing of every pipeline actor

// The route of every envelope: split -> flaky -> sink.
std::vector<std::string> Route();
// Pipeline actors and the crew, whose queues (and DLQs) the checker watches.
std::vector<std::string> AllActors();

struct PipelineSettings {
  int replicas = 1;
  int concurrency = 2;
};
// Writes chk_handlers.py and one manifest per actor into `dir` (which must exist).
Status WritePipeline(const std::string& dir, const PipelineSettings& settings);

}  // namespace asya::check::internal
