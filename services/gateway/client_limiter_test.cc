#include "services/gateway/client_limiter.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "libs/testing/status_matchers.h"

namespace crm::gateway {
namespace {

using ::crm::testing::IsOk;
using ::crm::testing::StatusIs;
using ::testing::HasSubstr;

TEST(ClientLimiterTest, EachClientHasItsOwnMinute) {
  base::FakeClock clock(absl::FromUnixSeconds(1'800'000'000 / 60 * 60));
  ClientLimiter limiter(3, clock);
  absl::Duration retry = absl::ZeroDuration();
  for (int i = 0; i < 3; ++i) EXPECT_THAT(limiter.Admit("198.51.100.1", &retry), IsOk()) << i;
  EXPECT_THAT(limiter.Admit("198.51.100.1", &retry),
              StatusIs(absl::StatusCode::kResourceExhausted,
                       HasSubstr("too many requests from this address; retry in 61 s")));
  EXPECT_EQ(retry, absl::Minutes(1) + absl::Nanoseconds(1));
  EXPECT_THAT(limiter.Admit("198.51.100.2", &retry), IsOk());
  clock.Advance(absl::Minutes(2));
  EXPECT_THAT(limiter.Admit("198.51.100.1", &retry), IsOk());
}

TEST(ClientLimiterTest, ZeroMeansNoLimit) {
  base::FakeClock clock;
  ClientLimiter limiter(0, clock);
  absl::Duration retry;
  for (int i = 0; i < 10'000; ++i) ASSERT_THAT(limiter.Admit("198.51.100.1", &retry), IsOk());
}

}  // namespace
}  // namespace crm::gateway
