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

}  // namespace
}  // namespace crm::identity
