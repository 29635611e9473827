// RateLimiter: at most `per_second` messages a second to the relay, with
// bursts of up to `burst` (a generic cell rate algorithm: each send reserves
// the next slot; a caller ahead of its slot waits). Shared by a process's
// sending threads, so the limit is per replica: with N replicas, set each to
// the relay's limit / N.
//
// Thread-safe.
#pragma once

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "libs/base/clock.h"

namespace crm::mailing {

class RateLimiter {
 public:
  // per_second > 0, burst >= 1.
  RateLimiter(double per_second, int burst, base::Clock& clock);

  double per_second() const { return per_second_; }
  // Waits (on the clock) until the caller may send one message.
  void Acquire();
  // Reserves the next slot at `now`; how long the caller must wait for it.
  absl::Duration Reserve(absl::Time now);

 private:
  const double per_second_;
  const absl::Duration interval_;
  const absl::Duration tolerance_;  // (burst - 1) intervals
  base::Clock& clock_;
  absl::Mutex mu_;
  absl::Time next_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
};

}  // namespace crm::mailing
