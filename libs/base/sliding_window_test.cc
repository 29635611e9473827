#include "libs/base/sliding_window.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "libs/base/clock.h"
#include "libs/testing/status_matchers.h"

namespace crm::base {
namespace {

using ::crm::testing::IsOk;
using ::crm::testing::StatusIs;
using ::testing::HasSubstr;

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

  FakeClock clock_;
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

TEST(SourceKeyOfTest, IPv6ByItsSlash64) {
  EXPECT_EQ(SourceKeyOf("198.51.100.7"), "198.51.100.7");
  EXPECT_EQ(SourceKeyOf("2001:db8:1:2:aaaa:bbbb:cccc:dddd"), "2001:db8:1:2::/64");
  EXPECT_EQ(SourceKeyOf("2001:db8:1:2::1"), SourceKeyOf("2001:db8:1:2:ffff::9"));
  EXPECT_NE(SourceKeyOf("2001:db8:1:2::1"), SourceKeyOf("2001:db8:1:3::1"));
  EXPECT_EQ(SourceKeyOf("::ffff:198.51.100.7"), "198.51.100.7");
  EXPECT_EQ(SourceKeyOf(""), "");
  EXPECT_EQ(SourceKeyOf("not:an:address"), "not:an:address");
}

}  // namespace
}  // namespace crm::base
