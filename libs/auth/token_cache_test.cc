#include "libs/auth/token_cache.h"

#include <string>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace crm::auth {
namespace {

const absl::Time kNow = absl::FromUnixSeconds(1'800'000'000);

std::shared_ptr<const Principal> P(const std::string& user) {
  auto p = std::make_shared<Principal>();
  p->user_id = user;
  return p;
}

TEST(VerifiedTokenCacheTest, HitUntilExpiry) {
  VerifiedTokenCache cache(10);
  auto p = P("u");
  cache.Insert("h1", p, kNow + absl::Minutes(5), 1);
  EXPECT_EQ(cache.Lookup("h1", kNow, 1), p);
  EXPECT_EQ(cache.Lookup("h1", kNow + absl::Minutes(5) - absl::Seconds(1), 1), p);
  EXPECT_EQ(cache.Lookup("h1", kNow + absl::Minutes(5), 1), nullptr);
  EXPECT_EQ(cache.size(), 0u);  // expired entry dropped
  EXPECT_EQ(cache.hits(), 2u);
  EXPECT_EQ(cache.misses(), 1u);
}

TEST(VerifiedTokenCacheTest, OtherKeyGenerationMisses) {
  VerifiedTokenCache cache(10);
  cache.Insert("h1", P("u"), kNow + absl::Hours(1), 1);
  EXPECT_EQ(cache.Lookup("h1", kNow, 2), nullptr);
  EXPECT_EQ(cache.size(), 0u);
}

TEST(VerifiedTokenCacheTest, EvictsLeastRecentlyUsed) {
  VerifiedTokenCache cache(2);
  cache.Insert("a", P("a"), kNow + absl::Hours(1), 1);
  cache.Insert("b", P("b"), kNow + absl::Hours(1), 1);
  ASSERT_NE(cache.Lookup("a", kNow, 1), nullptr);  // a is now the most recent
  cache.Insert("c", P("c"), kNow + absl::Hours(1), 1);
  EXPECT_EQ(cache.size(), 2u);
  EXPECT_NE(cache.Lookup("a", kNow, 1), nullptr);
  EXPECT_EQ(cache.Lookup("b", kNow, 1), nullptr);
  EXPECT_NE(cache.Lookup("c", kNow, 1), nullptr);
}

TEST(VerifiedTokenCacheTest, ReinsertRefreshesWithoutGrowing) {
  VerifiedTokenCache cache(2);
  cache.Insert("a", P("a"), kNow + absl::Minutes(1), 1);
  auto p2 = P("a2");
  cache.Insert("a", p2, kNow + absl::Hours(1), 1);
  EXPECT_EQ(cache.size(), 1u);
  EXPECT_EQ(cache.Lookup("a", kNow + absl::Minutes(30), 1), p2);
}

TEST(VerifiedTokenCacheTest, ZeroCapacityDisables) {
  VerifiedTokenCache cache(0);
  cache.Insert("a", P("a"), kNow + absl::Hours(1), 1);
  EXPECT_EQ(cache.Lookup("a", kNow, 1), nullptr);
  EXPECT_EQ(cache.size(), 0u);
}

TEST(VerifiedTokenCacheTest, ConcurrentUseStaysWithinCapacity) {
  VerifiedTokenCache cache(64);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&cache, t] {
      for (int i = 0; i < 2000; ++i) {
        const std::string key = std::to_string((i * 7 + t) % 100);
        if (cache.Lookup(key, kNow, 1) == nullptr) {
          cache.Insert(key, P(key), kNow + absl::Hours(1), 1);
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_LE(cache.size(), 64u);
  EXPECT_EQ(cache.hits() + cache.misses(), 8000u);
}

}  // namespace
}  // namespace crm::auth
