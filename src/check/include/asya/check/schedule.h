// The fault schedule: a deterministic sequence of (time, fault, target pick) from a seed, so a run
// can be repeated with the same --seed (targets are picked among the processes alive at the time,
// by index, so the same seed hits the same actors when the mesh looks the same).
#pragma once

#include <cstdint>
#include <random>
#include <vector>

#include "asya/check/check.h"

namespace asya::check {

struct FaultEvent {
  double at_s = 0;  // seconds since the fault phase began
  FaultKind kind{};
  uint64_t pick = 0;  // chooses the target: pick % candidates
};

class Schedule {
 public:
  // `kinds` empty: Next() is never due. Gaps are uniform in [0.5, 1.5] x interval_s. Kinds come
  // in rounds: each round is every kind once, shuffled (so a short run still sees every kind).
  Schedule(std::vector<FaultKind> kinds, uint64_t seed, double interval_s);
  bool empty() const { return kinds_.empty(); }
  // The next event (times increase).
  FaultEvent Next();

 private:
  std::vector<FaultKind> kinds_;
  std::vector<FaultKind> deck_;
  std::mt19937_64 rng_;
  double interval_s_;
  double t_ = 0;
};

}  // namespace asya::check
