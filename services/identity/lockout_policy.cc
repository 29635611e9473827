#include "services/identity/lockout_policy.h"

#include <algorithm>

#include "absl/status/status.h"

namespace crm::identity {

absl::StatusOr<LockoutPolicy> LockoutPolicy::Create(const LockoutParams& params) {
  if (params.max_failures < 1) return absl::InvalidArgumentError("max_failures: must be >= 1");
  if (params.base_lock <= absl::ZeroDuration() || params.base_lock == absl::InfiniteDuration()) {
    return absl::InvalidArgumentError("base_lock: must be positive and finite");
  }
  if (params.max_lock < params.base_lock || params.max_lock == absl::InfiniteDuration()) {
    return absl::InvalidArgumentError("max_lock: must be finite and >= base_lock");
  }
  if (params.lockouts_before_admin < 0) {
    return absl::InvalidArgumentError("lockouts_before_admin: must be >= 0");
  }
  if (params.failure_window <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("failure_window: must be positive");
  }
  return LockoutPolicy(params);
}

bool LockoutPolicy::IsLocked(const LockoutState& state, absl::Time now) const {
  return state.admin_unlock_required || now < state.locked_until;
}

absl::Duration LockoutPolicy::LockDuration(int lockout) const {
  absl::Duration d = params_.base_lock;
  for (int i = 1; i < lockout && d < params_.max_lock; ++i) d *= 2;
  return std::min(d, params_.max_lock);
}

FailureOutcome LockoutPolicy::OnFailure(const LockoutState& state, absl::Time now) const {
  FailureOutcome out{state};
  if (IsLocked(state, now)) return out;
  LockoutState& s = out.state;
  if (s.consecutive_failures > 0 && now - s.last_failure > params_.failure_window) {
    s.consecutive_failures = 0;
  }
  ++s.consecutive_failures;
  s.last_failure = now;
  if (s.consecutive_failures < params_.max_failures) return out;

  s.consecutive_failures = 0;
  ++s.lockouts;
  if (params_.lockouts_before_admin > 0 && s.lockouts >= params_.lockouts_before_admin) {
    s.admin_unlock_required = true;
    s.locked_until = absl::InfiniteFuture();
    out.event = LockoutEvent::kAdminLocked;
    out.lock_duration = absl::InfiniteDuration();
  } else {
    out.lock_duration = LockDuration(s.lockouts);
    s.locked_until = now + out.lock_duration;
    out.event = LockoutEvent::kLocked;
  }
  return out;
}

LockoutState LockoutPolicy::OnSuccess(const LockoutState& state) const {
  LockoutState s = state;
  s.consecutive_failures = 0;
  s.last_failure = absl::InfinitePast();
  return s;
}

LockoutState LockoutPolicy::AdminUnlock(const LockoutState& /*state*/) const {
  return LockoutState{};
}

}  // namespace crm::identity
