#include "asya/check/schedule.h"

#include <algorithm>
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
    if (deck_.empty()) {  // a new round: every kind once, in a random order
      deck_ = kinds_;
      std::shuffle(deck_.begin(), deck_.end(), rng_);
    }
    e.kind = deck_.back();
    deck_.pop_back();
  }
  e.pick = rng_();
  return e;
}

}  // namespace asya::check
