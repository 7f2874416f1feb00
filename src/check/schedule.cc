#include "asya/check/schedule.h"

#include <utility>

namespace asya::check {

Schedule::Schedule(std::vector<FaultKind> kinds, uint64_t seed, double interval_s)
    : kinds_(std::move(kinds)), rng_(seed), interval_s_(interval_s) {}

FaultEvent Schedule::Next() {
  std::uniform_real_distribution<double> gap(0.5 * interval_s_, 1.5 * interval_s_);
  t_ += gap(rng_);
  FaultEvent e;
  e.at_s = t_;
  if (!kinds_.empty()) {
    e.kind = kinds_[rng_() % kinds_.size()];
  }
  e.pick = rng_();
  return e;
}

}  // namespace asya::check
