#include "libs/base/clock.h"

#include <atomic>
#include <thread>

#include "gtest/gtest.h"

namespace crm::base {
namespace {

TEST(FakeClockTest, MovesOnlyWhenTold) {
  FakeClock clock(absl::FromUnixSeconds(1000));
  EXPECT_EQ(clock.Now(), absl::FromUnixSeconds(1000));
  clock.Advance(absl::Minutes(15));
  EXPECT_EQ(clock.Now(), absl::FromUnixSeconds(1000 + 900));
  clock.Set(absl::FromUnixSeconds(5));
  EXPECT_EQ(clock.Now(), absl::FromUnixSeconds(5));
}

TEST(FakeClockTest, SleepForReturnsOnlyOnceAdvancedPastDeadline) {
  FakeClock clock;
  const absl::Time start = clock.Now();
  std::atomic<bool> done{false};
  absl::Time woke_at;
  std::thread sleeper([&] {
    clock.SleepFor(absl::Seconds(10));
    woke_at = clock.Now();
    done = true;
  });
  // The sleeper may start before or after some of these advances; either way
  // it must not wake before 10 s of fake time have passed from its start.
  for (int i = 0; i < 100000 && !done; ++i) {
    clock.Advance(absl::Seconds(1));
    absl::SleepFor(absl::Microseconds(100));
  }
  sleeper.join();
  ASSERT_TRUE(done);
  EXPECT_GE(woke_at - start, absl::Seconds(10));
}

TEST(RealClockTest, IsCloseToAbslNow) {
  const absl::Time before = absl::Now();
  const absl::Time t = RealClock::Get().Now();
  EXPECT_GE(t, before);
  EXPECT_LE(t, absl::Now());
}

}  // namespace
}  // namespace crm::base
