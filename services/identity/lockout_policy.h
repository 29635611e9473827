// Account lockout and per-source throttling for identity's login path, as pure
// rules over plain state structs. The caller owns the state (a row in
// PostgreSQL for an account's LockoutState, two Redis counters per source for
// a SourceWindow), loads it, applies a rule with the current time from its
// injected crm::base::Clock, and stores the result; nothing here reads a clock,
// sleeps or keeps state.
//
// LockoutPolicy: after `max_failures` consecutive failed logins the account
// locks for base_lock * 2^(lockouts - 1), capped at max_lock (default 15 min,
// 30 min, 1 h, ... 24 h). The `lockouts_before_admin`-th lockout (default the
// third) is permanent until AdminUnlock. A successful login resets the failure
// count but not the lockout count, so the schedule keeps escalating.
//
// SourceThrottle (libs/base/sliding_window.h) limits login attempts per
// source key (an address, or a /64 for IPv6), so one client cannot cheaply
// try many accounts or lock everyone out.
//
// Used by identity's login handler; the Redis-backed counters come with the
// store layer. Thread-safety: LockoutPolicy is immutable after Create(); all
// methods are const, pure and may be called concurrently.
#pragma once

#include <cstdint>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "libs/base/sliding_window.h"

namespace crm::identity {

struct LockoutParams {
  // Consecutive failures that lock the account. Default 5. Valid: >= 1.
  int max_failures = 5;
  // First lock duration; each further lockout doubles it. Default 15 min.
  // Valid: > 0.
  absl::Duration base_lock = absl::Minutes(15);
  // Cap on one lock's duration. Default 24 h. Valid: >= base_lock.
  absl::Duration max_lock = absl::Hours(24);
  // The lockout with this number locks until an admin unlocks. Default 3.
  // 0 disables admin locks (lockouts stay timed forever). Valid: >= 0.
  int lockouts_before_admin = 3;
  // A failure more than this long after the previous one starts the count
  // afresh. Default infinite: failures count until a success or a lock.
  // Valid: > 0.
  absl::Duration failure_window = absl::InfiniteDuration();
};

// An account's lockout state, persisted by the caller. A default-constructed
// state is a fresh, unlocked account.
struct LockoutState {
  // Failures since the last success, lock or window expiry.
  int consecutive_failures = 0;
  // Lockouts so far (timed and admin); reset only by AdminUnlock.
  int lockouts = 0;
  // Locked while now < locked_until (InfiniteFuture for an admin lock).
  absl::Time locked_until = absl::InfinitePast();
  // Locked until AdminUnlock, whatever the time.
  bool admin_unlock_required = false;
  // Time of the last counted failure (InfinitePast if none).
  absl::Time last_failure = absl::InfinitePast();

  friend bool operator==(const LockoutState&, const LockoutState&) = default;
};

enum class LockoutEvent {
  kNone,         // the failure was counted (or ignored while locked)
  kLocked,       // this failure started a timed lock
  kAdminLocked,  // this failure started a lock only an admin can lift
};

struct FailureOutcome {
  LockoutState state;
  LockoutEvent event = LockoutEvent::kNone;
  // The duration of the lock just started: zero for kNone, InfiniteDuration
  // for kAdminLocked.
  absl::Duration lock_duration = absl::ZeroDuration();
};

class LockoutPolicy {
 public:
  // Fails with INVALID_ARGUMENT naming the setting if `params` is invalid.
  static absl::StatusOr<LockoutPolicy> Create(const LockoutParams& params = LockoutParams());

  const LockoutParams& params() const { return params_; }

  // True if the account is locked at `now`. A locked account must be refused
  // even with the right password, in the same way and time as a wrong one.
  bool IsLocked(const LockoutState& state, absl::Time now) const;

  // Records a failed login at `now`. While the account is locked the state is
  // returned unchanged (event kNone): failures during a lock neither extend
  // it nor count towards the next one. Otherwise the failure is counted
  // (restarting the count if failure_window has passed since the last one),
  // and the max_failures-th starts a lock and resets the count.
  FailureOutcome OnFailure(const LockoutState& state, absl::Time now) const;

  // Records a successful login (call only when !IsLocked): clears the failure
  // count; the lockout count stays.
  LockoutState OnSuccess(const LockoutState& state) const;

  // Lifts any lock, timed or admin, and forgets the failure and lockout
  // counts: the account starts afresh.
  LockoutState AdminUnlock(const LockoutState& state) const;

  // Duration of timed lockout number `lockout` (1-based):
  // min(base_lock * 2^(lockout - 1), max_lock). Does not consider admin locks.
  absl::Duration LockDuration(int lockout) const;

 private:
  explicit LockoutPolicy(const LockoutParams& params) : params_(params) {}
  LockoutParams params_;
};

// The sliding window is shared with other limits (libs/base/sliding_window.h).
using base::SourceThrottle;
using base::SourceWindow;
using base::ThrottleDecision;
using base::ThrottleParams;

}  // namespace crm::identity
