#include "services/mailing/rate_limiter.h"

#include <algorithm>

namespace crm::mailing {

RateLimiter::RateLimiter(double per_second, int burst, base::Clock& clock)
    : per_second_(per_second),
      interval_(absl::Seconds(1) / per_second),
      tolerance_(interval_ * (std::max(burst, 1) - 1)),
      clock_(clock) {}

absl::Duration RateLimiter::Reserve(absl::Time now) {
  absl::MutexLock lock(&mu_);
  next_ = std::max(next_, now);
  const absl::Time allowed_at = next_ - tolerance_;
  next_ += interval_;
  return std::max(absl::ZeroDuration(), allowed_at - now);
}

void RateLimiter::Acquire() {
  const absl::Duration wait = Reserve(clock_.Now());
  if (wait > absl::ZeroDuration()) clock_.SleepFor(wait);
}

}  // namespace crm::mailing
