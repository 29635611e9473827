#include "services/identity/lockout_policy.h"

#include <algorithm>

#include "absl/numeric/int128.h"
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

absl::StatusOr<SourceThrottle> SourceThrottle::Create(const ThrottleParams& params) {
  if (params.max_attempts < 1) return absl::InvalidArgumentError("max_attempts: must be >= 1");
  if (params.window < absl::Milliseconds(1) || params.window > absl::Hours(24 * 366)) {
    return absl::InvalidArgumentError("window: must be 1 ms..366 days");
  }
  return SourceThrottle(params);
}

int64_t SourceThrottle::WindowIndex(absl::Time now) const {
  absl::Duration rem;
  const int64_t q = absl::IDivDuration(now - absl::UnixEpoch(), params_.window, &rem);
  // IDivDuration truncates towards zero; floor it for times before the epoch.
  return rem < absl::ZeroDuration() ? q - 1 : q;
}

absl::Time SourceThrottle::WindowStart(int64_t index) const {
  return absl::UnixEpoch() + params_.window * index;
}

SourceWindow SourceThrottle::Roll(const SourceWindow& w, absl::Time now) const {
  const int64_t index = WindowIndex(now);
  if (index <= w.index) return w;
  if (index == w.index + 1) return SourceWindow{index, 0, w.current};
  return SourceWindow{index, 0, 0};
}

namespace {

// The smallest elapsed time e in [0, window] (nanoseconds) within a window at
// which previous * (window - e) + current * window < max * window, i.e. the
// sliding estimate drops below max; `window` + 1 if it never does in this
// window. Exact integer arithmetic: no rounding at the boundaries.
absl::int128 FirstAllowedElapsed(absl::int128 window, int64_t previous, int64_t current,
                                 int64_t max) {
  if (current >= max) return window + 1;
  if (previous <= 0) return 0;
  const absl::int128 x = absl::int128(max - current) * window;
  const absl::int128 ceil_div = (x + previous - 1) / previous;
  const absl::int128 e = window - ceil_div + 1;
  return e < 0 ? absl::int128(0) : e;
}

}  // namespace

ThrottleDecision SourceThrottle::Decide(const SourceWindow& in, absl::Time now) const {
  const SourceWindow w = Roll(in, now);
  const absl::int128 window_ns = absl::ToInt64Nanoseconds(params_.window);
  // A clock that stepped back into an earlier window counts as the start of
  // w's window: the previous window then weighs fully (the strictest reading).
  const absl::int128 elapsed =
      std::max<int64_t>(0, absl::ToInt64Nanoseconds(now - WindowStart(w.index)));
  const absl::int128 first =
      FirstAllowedElapsed(window_ns, w.previous, w.current, params_.max_attempts);
  ThrottleDecision d;
  if (elapsed >= first) {
    d.allowed = true;
    return d;
  }
  absl::int128 wait;
  if (first <= window_ns) {
    wait = first - elapsed;
  } else {
    // Not before the next window, where `current` becomes `previous`.
    wait = window_ns - elapsed + FirstAllowedElapsed(window_ns, w.current, 0, params_.max_attempts);
  }
  d.retry_after = absl::Nanoseconds(static_cast<int64_t>(wait));
  return d;
}

SourceThrottle::Attempt SourceThrottle::OnAttempt(const SourceWindow& w, absl::Time now) const {
  Attempt a{Roll(w, now), Decide(w, now)};
  if (a.decision.allowed) ++a.window.current;
  return a;
}

}  // namespace crm::identity
