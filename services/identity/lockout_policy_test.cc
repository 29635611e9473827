#include "services/identity/lockout_policy.h"

#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "libs/base/clock.h"
#include "libs/testing/status_matchers.h"

namespace crm::identity {
namespace {

using ::crm::testing::IsOk;
using ::crm::testing::StatusIs;
using ::testing::HasSubstr;

class LockoutPolicyTest : public ::testing::Test {
 protected:
  // Applies `n` failures at the current fake time; returns the last outcome.
  FailureOutcome Fail(int n) {
    FailureOutcome out{state_};
    for (int i = 0; i < n; ++i) {
      out = policy_.OnFailure(state_, clock_.Now());
      state_ = out.state;
    }
    return out;
  }
  bool Locked() const { return policy_.IsLocked(state_, clock_.Now()); }

  base::FakeClock clock_;
  LockoutPolicy policy_ = *LockoutPolicy::Create();
  LockoutState state_;
};

TEST_F(LockoutPolicyTest, FourFailuresDoNotLock) {
  EXPECT_EQ(Fail(4).event, LockoutEvent::kNone);
  EXPECT_FALSE(Locked());
  EXPECT_EQ(state_.consecutive_failures, 4);
}

TEST_F(LockoutPolicyTest, FifthFailureLocksForFifteenMinutes) {
  Fail(4);
  const FailureOutcome out = Fail(1);
  EXPECT_EQ(out.event, LockoutEvent::kLocked);
  EXPECT_EQ(out.lock_duration, absl::Minutes(15));
  EXPECT_EQ(state_.lockouts, 1);
  EXPECT_EQ(state_.consecutive_failures, 0);
  EXPECT_TRUE(Locked());
  clock_.Advance(absl::Minutes(15) - absl::Nanoseconds(1));
  EXPECT_TRUE(Locked());
  clock_.Advance(absl::Nanoseconds(1));
  EXPECT_FALSE(Locked());
}

TEST_F(LockoutPolicyTest, SuccessResetsTheFailureCount) {
  Fail(4);
  state_ = policy_.OnSuccess(state_);
  EXPECT_EQ(state_.consecutive_failures, 0);
  EXPECT_EQ(Fail(4).event, LockoutEvent::kNone);
  EXPECT_FALSE(Locked());
}

TEST_F(LockoutPolicyTest, NextLockoutAfterSuccessLastsThirtyMinutes) {
  Fail(5);
  clock_.Advance(absl::Minutes(15));
  state_ = policy_.OnSuccess(state_);
  EXPECT_EQ(state_.lockouts, 1);  // a success does not forgive lockouts
  const FailureOutcome out = Fail(5);
  EXPECT_EQ(out.event, LockoutEvent::kLocked);
  EXPECT_EQ(out.lock_duration, absl::Minutes(30));
  clock_.Advance(absl::Minutes(30) - absl::Seconds(1));
  EXPECT_TRUE(Locked());
  clock_.Advance(absl::Seconds(1));
  EXPECT_FALSE(Locked());
}

TEST_F(LockoutPolicyTest, ThirdLockoutRequiresAnAdmin) {
  Fail(5);
  clock_.Advance(absl::Minutes(15));
  Fail(5);
  clock_.Advance(absl::Minutes(30));
  const FailureOutcome out = Fail(5);
  EXPECT_EQ(out.event, LockoutEvent::kAdminLocked);
  EXPECT_EQ(out.lock_duration, absl::InfiniteDuration());
  EXPECT_TRUE(state_.admin_unlock_required);
  clock_.Advance(absl::Hours(24 * 365 * 10));
  EXPECT_TRUE(Locked());
  // A success cannot happen while locked, and would not unlock if misused.
  state_ = policy_.OnSuccess(state_);
  EXPECT_TRUE(Locked());

  state_ = policy_.AdminUnlock(state_);
  EXPECT_FALSE(Locked());
  EXPECT_EQ(state_, LockoutState{});
  // Afresh: the next lockout is 15 minutes again.
  EXPECT_EQ(Fail(5).lock_duration, absl::Minutes(15));
}

TEST_F(LockoutPolicyTest, FailuresWhileLockedNeitherExtendNorCount) {
  Fail(5);
  const LockoutState locked = state_;
  clock_.Advance(absl::Minutes(10));
  const FailureOutcome out = Fail(20);
  EXPECT_EQ(out.event, LockoutEvent::kNone);
  EXPECT_EQ(state_, locked);
  clock_.Advance(absl::Minutes(5));
  EXPECT_FALSE(Locked());
  EXPECT_EQ(Fail(4).event, LockoutEvent::kNone);
  EXPECT_FALSE(Locked());
}

TEST_F(LockoutPolicyTest, AdminUnlockLiftsATimedLock) {
  Fail(5);
  EXPECT_TRUE(Locked());
  state_ = policy_.AdminUnlock(state_);
  EXPECT_FALSE(Locked());
  EXPECT_EQ(state_.lockouts, 0);
}

TEST_F(LockoutPolicyTest, DurationDoublesAndCapsAtTwentyFourHours) {
  policy_ = *LockoutPolicy::Create({.lockouts_before_admin = 10});
  const std::vector<absl::Duration> expected = {
      absl::Minutes(15), absl::Minutes(30), absl::Hours(1),  absl::Hours(2), absl::Hours(4),
      absl::Hours(8),    absl::Hours(16),   absl::Hours(24), absl::Hours(24)};
  for (size_t i = 0; i < expected.size(); ++i) {
    const FailureOutcome out = Fail(5);
    EXPECT_EQ(out.event, LockoutEvent::kLocked) << i;
    EXPECT_EQ(out.lock_duration, expected[i]) << i;
    EXPECT_EQ(state_.locked_until, clock_.Now() + expected[i]);
    clock_.Advance(out.lock_duration);
  }
  EXPECT_EQ(Fail(5).event, LockoutEvent::kAdminLocked);
  EXPECT_EQ(state_.lockouts, 10);
}

TEST_F(LockoutPolicyTest, LockDurationDoesNotOverflow) {
  EXPECT_EQ(policy_.LockDuration(1), absl::Minutes(15));
  EXPECT_EQ(policy_.LockDuration(100), absl::Hours(24));
  EXPECT_EQ(policy_.LockDuration(1 << 30), absl::Hours(24));
}

TEST_F(LockoutPolicyTest, ZeroLockoutsBeforeAdminNeverAdminLocks) {
  policy_ = *LockoutPolicy::Create({.lockouts_before_admin = 0});
  for (int i = 0; i < 20; ++i) {
    const FailureOutcome out = Fail(5);
    ASSERT_EQ(out.event, LockoutEvent::kLocked) << i;
    clock_.Advance(out.lock_duration);
  }
}

TEST_F(LockoutPolicyTest, FailuresOutsideTheWindowStartTheCountAfresh) {
  policy_ = *LockoutPolicy::Create({.failure_window = absl::Hours(1)});
  Fail(4);
  clock_.Advance(absl::Hours(1));  // exactly the window: still counts
  EXPECT_EQ(Fail(1).event, LockoutEvent::kLocked);

  clock_.Advance(absl::Minutes(15));
  Fail(4);
  clock_.Advance(absl::Hours(1) + absl::Seconds(1));
  EXPECT_EQ(Fail(1).event, LockoutEvent::kNone);
  EXPECT_EQ(state_.consecutive_failures, 1);
}

TEST_F(LockoutPolicyTest, DefaultFailureWindowNeverExpires) {
  Fail(4);
  clock_.Advance(absl::Hours(24 * 365));
  EXPECT_EQ(Fail(1).event, LockoutEvent::kLocked);
}

TEST_F(LockoutPolicyTest, CreateRejectsBadParams) {
  EXPECT_THAT(LockoutPolicy::Create({.max_failures = 0}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("max_failures")));
  EXPECT_THAT(LockoutPolicy::Create({.base_lock = absl::ZeroDuration()}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("base_lock")));
  EXPECT_THAT(LockoutPolicy::Create({.base_lock = absl::Hours(2), .max_lock = absl::Hours(1)}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("max_lock")));
  EXPECT_THAT(LockoutPolicy::Create({.lockouts_before_admin = -1}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("lockouts_before_admin")));
  EXPECT_THAT(LockoutPolicy::Create({.failure_window = absl::ZeroDuration()}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("failure_window")));
}

class SourceThrottleTest : public ::testing::Test {
 protected:
  SourceThrottleTest() {
    // Start exactly at a window boundary.
    clock_.Set(absl::FromUnixSeconds(1'800'000'000 / 60 * 60));
  }

  // One attempt at the current fake time; true if allowed.
  bool Try() {
    const SourceThrottle::Attempt a = throttle_.OnAttempt(window_, clock_.Now());
    window_ = a.window;
    last_ = a.decision;
    return a.decision.allowed;
  }
  int TryMany(int n) {
    int allowed = 0;
    for (int i = 0; i < n; ++i) allowed += Try() ? 1 : 0;
    return allowed;
  }

  base::FakeClock clock_;
  SourceThrottle throttle_ = *SourceThrottle::Create();
  SourceWindow window_;
  ThrottleDecision last_;
};

TEST_F(SourceThrottleTest, AllowsTwentyAttemptsInAMinuteThenDenies) {
  EXPECT_EQ(TryMany(20), 20);
  EXPECT_FALSE(Try());
  EXPECT_GT(last_.retry_after, absl::ZeroDuration());
  EXPECT_EQ(window_.current, 20);  // denied attempts are not counted
}

TEST_F(SourceThrottleTest, PreviousWindowWeighsLinearlyLess) {
  EXPECT_EQ(TryMany(20), 20);
  clock_.Advance(absl::Minutes(1));  // start of the next window: 20 * 1.0
  EXPECT_FALSE(Try());
  clock_.Advance(absl::Seconds(30));  // halfway: 20 * 0.5 + 0 = 10
  EXPECT_EQ(TryMany(30), 10);
  EXPECT_EQ(window_.previous, 20);
  EXPECT_EQ(window_.current, 10);
}

TEST_F(SourceThrottleTest, RetryAfterIsExact) {
  EXPECT_EQ(TryMany(20), 20);
  clock_.Advance(absl::Seconds(10));
  ASSERT_FALSE(Try());
  const absl::Duration wait = last_.retry_after;
  // Current is full: wait for the next window (50 s) plus until 20 * (1 - f)
  // drops below 20, which is 1 ns into it.
  EXPECT_EQ(wait, absl::Seconds(50) + absl::Nanoseconds(1));
  clock_.Advance(wait - absl::Nanoseconds(1));
  EXPECT_FALSE(Try());
  clock_.Advance(absl::Nanoseconds(1));
  EXPECT_TRUE(Try());
}

TEST_F(SourceThrottleTest, RetryAfterWithinTheWindowIsExact) {
  EXPECT_EQ(TryMany(20), 20);
  clock_.Advance(absl::Minutes(1) + absl::Seconds(15));
  // 20 * 0.75 = 15: five more are allowed, then denied until the estimate
  // 20 * (1 - f) + 5 < 20, i.e. f > 0.25: just after 15 s into the window.
  EXPECT_EQ(TryMany(5), 5);
  ASSERT_FALSE(Try());
  EXPECT_EQ(last_.retry_after, absl::Nanoseconds(1));
  clock_.Advance(absl::Nanoseconds(1));
  EXPECT_TRUE(Try());
  ASSERT_FALSE(Try());
  // Six counted now: 20 * (1 - f) + 6 < 20 once f > 0.3, i.e. at 18 s.
  EXPECT_EQ(last_.retry_after, absl::Seconds(3));
  clock_.Advance(last_.retry_after - absl::Nanoseconds(1));
  EXPECT_FALSE(Try());
  clock_.Advance(absl::Nanoseconds(1));
  EXPECT_TRUE(Try());
}

TEST_F(SourceThrottleTest, QuietSourceStartsAfresh) {
  EXPECT_EQ(TryMany(20), 20);
  clock_.Advance(absl::Minutes(2));
  EXPECT_EQ(TryMany(25), 20);
}

TEST_F(SourceThrottleTest, RollMovesCountersForward) {
  const int64_t i = throttle_.WindowIndex(clock_.Now());
  const SourceWindow w{i, 7, 3};
  EXPECT_EQ(throttle_.Roll(w, clock_.Now() + absl::Seconds(59)), w);
  EXPECT_EQ(throttle_.Roll(w, clock_.Now() + absl::Seconds(60)), (SourceWindow{i + 1, 0, 7}));
  EXPECT_EQ(throttle_.Roll(w, clock_.Now() + absl::Seconds(120)), (SourceWindow{i + 2, 0, 0}));
  EXPECT_EQ(throttle_.Roll(w, clock_.Now() - absl::Seconds(1)), w);  // clock stepped back
}

TEST_F(SourceThrottleTest, WindowIndexIsTheFloor) {
  const absl::Time t = clock_.Now();
  EXPECT_EQ(throttle_.WindowIndex(t), 1'800'000'000 / 60);
  EXPECT_EQ(throttle_.WindowIndex(t - absl::Nanoseconds(1)), 1'800'000'000 / 60 - 1);
  EXPECT_EQ(throttle_.WindowIndex(absl::UnixEpoch() - absl::Seconds(1)), -1);
}

TEST_F(SourceThrottleTest, ClockSteppingBackDoesNotReset) {
  EXPECT_EQ(TryMany(20), 20);
  clock_.Advance(-absl::Minutes(5));
  EXPECT_FALSE(Try());
}

TEST_F(SourceThrottleTest, ConfiguredLimitAndWindow) {
  throttle_ = *SourceThrottle::Create({.max_attempts = 3, .window = absl::Seconds(10)});
  EXPECT_EQ(TryMany(5), 3);
  clock_.Advance(absl::Seconds(20));
  EXPECT_EQ(TryMany(5), 3);
}

TEST_F(SourceThrottleTest, CreateRejectsBadParams) {
  EXPECT_THAT(SourceThrottle::Create({.max_attempts = 0}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("max_attempts")));
  EXPECT_THAT(SourceThrottle::Create({.window = absl::ZeroDuration()}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("window")));
  EXPECT_THAT(SourceThrottle::Create({.window = absl::InfiniteDuration()}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("window")));
  EXPECT_THAT(SourceThrottle::Create(), IsOk());
}

}  // namespace
}  // namespace crm::identity
