#include "services/gateway/client_limiter.h"

#include <cmath>

#include "absl/strings/str_cat.h"

namespace crm::gateway {

namespace {

std::optional<base::SourceThrottle> ThrottleOf(int per_minute) {
  if (per_minute <= 0) return std::nullopt;
  absl::StatusOr<base::SourceThrottle> t =
      base::SourceThrottle::Create({.max_attempts = per_minute, .window = absl::Minutes(1)});
  return t.ok() ? std::optional<base::SourceThrottle>(*t) : std::nullopt;
}

}  // namespace

ClientLimiter::ClientLimiter(int per_minute, const base::Clock& clock)
    : throttle_(ThrottleOf(per_minute)), clock_(clock) {}

absl::Status ClientLimiter::Admit(const std::string& client, absl::Duration* retry_after) {
  if (!throttle_.has_value()) return absl::OkStatus();
  const std::string key = base::SourceKeyOf(client);
  absl::MutexLock lock(&mu_);
  // A flood of distinct addresses must not grow the map without bound.
  if (windows_.size() >= kMaxClients && !windows_.contains(key)) windows_.clear();
  base::SourceThrottle::Attempt a = throttle_->OnAttempt(windows_[key], clock_.Now());
  windows_[key] = a.window;
  if (a.decision.allowed) return absl::OkStatus();
  *retry_after = a.decision.retry_after;
  return absl::ResourceExhaustedError(absl::StrCat(
      "too many requests from this address; retry in ",
      std::max<int64_t>(1, static_cast<int64_t>(std::ceil(absl::ToDoubleSeconds(*retry_after)))),
      " s"));
}

}  // namespace crm::gateway
