#include "libs/auth/redis_revocation.h"

#include <prometheus/counter.h>
#include <prometheus/registry.h>

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/cleanup/cleanup.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "libs/auth/key_set.h"
#include "libs/auth/token_minter.h"
#include "libs/auth/token_verifier.h"
#include "libs/base/clock.h"
#include "libs/base/uuid.h"
#include "libs/testing/private_redis.h"
#include "libs/testing/status_matchers.h"
#include "libs/testing/test_env.h"

namespace crm::auth {
namespace {

using ::crm::testing::IsOk;
using ::crm::testing::IsOkAndHolds;
using ::crm::testing::PrivateRedisServer;
using ::crm::testing::RedisTestServer;
using ::crm::testing::StatusIs;
using ::crm::testing::TestEnv;
using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::Gt;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Le;
using ::testing::Not;

redis::Options OptionsFor(const RedisTestServer& server) {
  return {.host = server.host, .port = server.port, .password = server.password};
}

std::string Key(absl::string_view session_id) {
  return absl::StrCat(kRevokedKeyPrefix, session_id);
}

class RedisRevocationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    CRM_ASSERT_OK_AND_ASSIGN(env_, TestEnv::Load());
    CRM_ASSERT_OK_AND_ASSIGN(redis_, redis::Client::Create(OptionsFor(env_.redis())));
  }

  std::unique_ptr<RedisRevocationChecker> MakeChecker(RedisRevocationOptions options = {}) {
    auto checker = RedisRevocationChecker::Create(*redis_, clock_, options);
    EXPECT_THAT(checker, IsOk());
    return checker.ok() ? *std::move(checker) : nullptr;
  }

  // Remaining TTL of `key` in ms (-2 missing, -1 no expiry).
  int64_t Pttl(absl::string_view key) {
    absl::StatusOr<redis::Reply> r = redis_->Command("PTTL", key);
    EXPECT_THAT(r, IsOk());
    return r.ok() ? r->integer : -3;
  }

  TestEnv env_;
  std::unique_ptr<redis::Client> redis_;
  base::FakeClock clock_;
};

TEST_F(RedisRevocationTest, UnknownSessionIsNotRevoked) {
  auto checker = MakeChecker();
  ASSERT_NE(checker, nullptr);
  EXPECT_THAT(checker->IsRevoked(base::NewUuid()), IsOkAndHolds(false));
}

TEST_F(RedisRevocationTest, RevokeThenIsRevoked) {
  auto checker = MakeChecker();
  ASSERT_NE(checker, nullptr);
  const std::string sid = base::NewUuid();
  const std::string other = base::NewUuid();
  ASSERT_THAT(checker->Revoke(sid), IsOk());
  EXPECT_THAT(checker->IsRevoked(sid), IsOkAndHolds(true));
  EXPECT_THAT(checker->IsRevoked(other), IsOkAndHolds(false));
  // Stored as key "crm:auth:revoked:<sid>" = "1", with the default TTL.
  EXPECT_THAT(redis_->Get(Key(sid)), IsOkAndHolds(::testing::Optional(std::string("1"))));
  EXPECT_THAT(Pttl(Key(sid)),
              AllOf(Gt(0), Le(absl::ToInt64Milliseconds(absl::Minutes(15) + absl::Seconds(30)))));
  // A second checker without a cache sees it in Redis.
  auto uncached = MakeChecker({.cache_capacity = 0});
  ASSERT_NE(uncached, nullptr);
  EXPECT_THAT(uncached->IsRevoked(sid), IsOkAndHolds(true));
}

TEST_F(RedisRevocationTest, UppercaseUuidSharesTheKey) {
  auto checker = MakeChecker({.cache_capacity = 0});
  ASSERT_NE(checker, nullptr);
  const std::string sid = base::NewUuid();
  ASSERT_THAT(checker->Revoke(absl::AsciiStrToUpper(sid)), IsOk());
  EXPECT_THAT(checker->IsRevoked(sid), IsOkAndHolds(true));
}

TEST_F(RedisRevocationTest, RevocationKeyExpiresWithTheGivenTtl) {
  auto checker = MakeChecker();
  ASSERT_NE(checker, nullptr);
  const std::string sid = base::NewUuid();
  ASSERT_THAT(checker->Revoke(sid, absl::Seconds(5)), IsOk());
  CRM_ASSERT_OK_AND_ASSIGN(redis::Reply ttl, redis_->Command("TTL", Key(sid)));
  EXPECT_THAT(ttl.integer, AllOf(Gt(0), Le(5)));
  EXPECT_THAT(checker->Revoke(sid, absl::Milliseconds(500)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("ttl")));
  EXPECT_THAT(checker->Revoke(sid, absl::InfiniteDuration()),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST_F(RedisRevocationTest, RevokeManyWritesEveryIdInOnePipeline) {
  auto checker = MakeChecker({.cache_capacity = 0});
  ASSERT_NE(checker, nullptr);
  const std::vector<std::string> sids = {base::NewUuid(), base::NewUuid(), base::NewUuid()};
  const uint64_t commands_before = redis_->Stats().commands;
  ASSERT_THAT(checker->RevokeMany(sids, absl::Seconds(60)), IsOk());
  EXPECT_EQ(redis_->Stats().commands - commands_before, sids.size());
  for (const std::string& sid : sids) {
    EXPECT_THAT(checker->IsRevoked(sid), IsOkAndHolds(true));
    EXPECT_THAT(Pttl(Key(sid)), AllOf(Gt(0), Le(60'000)));
  }
  EXPECT_THAT(checker->RevokeMany({}), IsOk());
}

TEST_F(RedisRevocationTest, RevokeManyWritesNothingIfOneIdIsMalformed) {
  auto checker = MakeChecker({.cache_capacity = 0});
  ASSERT_NE(checker, nullptr);
  const std::vector<std::string> sids = {base::NewUuid(), "bad id!"};
  EXPECT_THAT(checker->RevokeMany(sids),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("session_ids[1]"), Not(HasSubstr("bad id!")))));
  EXPECT_THAT(checker->IsRevoked(sids[0]), IsOkAndHolds(false));
}

TEST_F(RedisRevocationTest, MalformedIdIsInvalidArgumentWithoutEchoingIt) {
  auto checker = MakeChecker();
  ASSERT_NE(checker, nullptr);
  const std::string bad[] = {"",
                             "alice@example.com",
                             "short",
                             "has space in it 1234",
                             "crm:auth:revoked:*",
                             std::string(129, 'a')};
  for (const std::string& id : bad) {
    EXPECT_THAT(checker->IsRevoked(id),
                StatusIs(absl::StatusCode::kInvalidArgument,
                         AllOf(HasSubstr("session_id"), Not(HasSubstr(id.empty() ? "\x01" : id)))))
        << id;
    EXPECT_THAT(checker->Revoke(id), StatusIs(absl::StatusCode::kInvalidArgument));
  }
  // An opaque base64url token is accepted.
  EXPECT_THAT(checker->IsRevoked("abcDEF0123456789_-xyz"), IsOkAndHolds(false));
}

TEST_F(RedisRevocationTest, CreateRejectsBadOptions) {
  EXPECT_THAT(RedisRevocationChecker::Create(*redis_, clock_,
                                             {.negative_cache_ttl = absl::Milliseconds(1001)}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("negative_cache_ttl")));
  EXPECT_THAT(
      RedisRevocationChecker::Create(*redis_, clock_, {.revocation_ttl = absl::ZeroDuration()}),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("revocation_ttl")));
}

TEST_F(RedisRevocationTest, RevocationByAnotherProcessIsVisibleAfterNegativeCacheTtl) {
  auto checker = MakeChecker({.negative_cache_ttl = absl::Milliseconds(500)});
  ASSERT_NE(checker, nullptr);
  const std::string sid = base::NewUuid();
  EXPECT_THAT(checker->IsRevoked(sid), IsOkAndHolds(false));
  // Identity (another process) revokes the session.
  ASSERT_THAT(redis_->Set(Key(sid), "1", absl::Seconds(60)), IsOk());
  EXPECT_THAT(checker->IsRevoked(sid), IsOkAndHolds(false));  // cached
  clock_.Advance(absl::Milliseconds(399));
  EXPECT_THAT(checker->IsRevoked(sid), IsOkAndHolds(false));  // still cached
  // The last fifth of the answer's life: the next call asks again.
  clock_.Advance(absl::Milliseconds(1));
  EXPECT_THAT(checker->IsRevoked(sid), IsOkAndHolds(true));
}

TEST_F(RedisRevocationTest, AnExpiredAnswerIsNotUsed) {
  auto checker = MakeChecker({.negative_cache_ttl = absl::Milliseconds(500)});
  ASSERT_NE(checker, nullptr);
  const std::string sid = base::NewUuid();
  EXPECT_THAT(checker->IsRevoked(sid), IsOkAndHolds(false));
  ASSERT_THAT(redis_->Set(Key(sid), "1", absl::Seconds(60)), IsOk());
  clock_.Advance(absl::Milliseconds(500));
  EXPECT_THAT(checker->IsRevoked(sid), IsOkAndHolds(true));
}

TEST_F(RedisRevocationTest, RevokeThroughTheCheckerBypassesItsNegativeCache) {
  auto checker = MakeChecker();
  ASSERT_NE(checker, nullptr);
  const std::string sid = base::NewUuid();
  EXPECT_THAT(checker->IsRevoked(sid), IsOkAndHolds(false));
  ASSERT_THAT(checker->Revoke(sid), IsOk());
  EXPECT_THAT(checker->IsRevoked(sid), IsOkAndHolds(true));
}

TEST_F(RedisRevocationTest, RevokedAnswerIsCachedUntilTheKeyExpires) {
  auto checker = MakeChecker();
  ASSERT_NE(checker, nullptr);
  const std::string sid = base::NewUuid();
  ASSERT_THAT(redis_->Set(Key(sid), "1", absl::Seconds(60)), IsOk());
  EXPECT_THAT(checker->IsRevoked(sid), IsOkAndHolds(true));
  // Stands in for expiry in Redis; the local answer must outlive it until
  // the fake clock passes the TTL the checker saw.
  ASSERT_THAT(redis_->Del(Key(sid)), IsOkAndHolds(1));
  clock_.Advance(absl::Seconds(59));
  EXPECT_THAT(checker->IsRevoked(sid), IsOkAndHolds(true));
  clock_.Advance(absl::Seconds(2));
  EXPECT_THAT(checker->IsRevoked(sid), IsOkAndHolds(false));
}

TEST_F(RedisRevocationTest, NegativeCacheIsBounded) {
  auto checker = MakeChecker({.cache_capacity = 1});
  ASSERT_NE(checker, nullptr);
  const std::string a = base::NewUuid();
  const std::string b = base::NewUuid();
  EXPECT_THAT(checker->IsRevoked(a), IsOkAndHolds(false));  // cached: the only slot
  EXPECT_THAT(checker->IsRevoked(b), IsOkAndHolds(false));  // not cached: full
  ASSERT_THAT(redis_->Set(Key(a), "1", absl::Seconds(60)), IsOk());
  ASSERT_THAT(redis_->Set(Key(b), "1", absl::Seconds(60)), IsOk());
  EXPECT_THAT(checker->IsRevoked(a), IsOkAndHolds(false));
  EXPECT_THAT(checker->IsRevoked(b), IsOkAndHolds(true));
}

TEST_F(RedisRevocationTest, NegativeCacheOffAsksRedisEveryTime) {
  auto checker = MakeChecker({.negative_cache_ttl = absl::ZeroDuration()});
  ASSERT_NE(checker, nullptr);
  const std::string sid = base::NewUuid();
  EXPECT_THAT(checker->IsRevoked(sid), IsOkAndHolds(false));
  ASSERT_THAT(redis_->Set(Key(sid), "1", absl::Seconds(60)), IsOk());
  EXPECT_THAT(checker->IsRevoked(sid), IsOkAndHolds(true));
}

TEST(RedisRevocationDownTest, UnreachableOrFrozenRedisIsUnavailablePromptly) {
  CRM_ASSERT_OK_AND_ASSIGN(auto server, PrivateRedisServer::Start("pw"));
  redis::Options options = OptionsFor(server->info());
  options.connect_timeout = absl::Milliseconds(200);
  options.command_timeout = absl::Milliseconds(200);
  CRM_ASSERT_OK_AND_ASSIGN(auto redis, redis::Client::Create(options));
  base::FakeClock clock;
  CRM_ASSERT_OK_AND_ASSIGN(
      auto checker, RedisRevocationChecker::Create(*redis, clock, {.negative_cache_ttl = {}}));
  const std::string sid = base::NewUuid();
  ASSERT_THAT(checker->IsRevoked(sid), IsOkAndHolds(false));

  ASSERT_THAT(server->Pause(), IsOk());
  absl::Time start = absl::Now();
  EXPECT_THAT(checker->IsRevoked(sid), StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_THAT(checker->Revoke(sid), StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_LT(absl::Now() - start, absl::Seconds(3));
  ASSERT_THAT(server->Resume(), IsOk());

  ASSERT_THAT(server->Stop(), IsOk());
  start = absl::Now();
  const std::string other = base::NewUuid();  // `sid` is known revoked here now
  EXPECT_THAT(checker->IsRevoked(other), StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_THAT(checker->RevokeMany({other}), StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_LT(absl::Now() - start, absl::Seconds(3));
}

TEST_F(RedisRevocationTest, RevokedSessionFailsVerifyEvenWithACachedToken) {
  auto checker = MakeChecker();
  ASSERT_NE(checker, nullptr);
  testing::TokenMinter minter;
  KeySet keys(minter.KeyMap());
  TokenVerifier verifier({.issuer = testing::kTestIssuer, .audience = testing::kTestAudience}, keys,
                         *checker, clock_);
  AccessTokenClaims claims = minter.DefaultClaims(clock_.Now());
  claims.session_id = base::NewUuid();
  const std::string token = minter.Mint(claims);

  EXPECT_THAT(verifier.Verify(token), IsOk());
  EXPECT_THAT(verifier.Verify(token), IsOk());
  ASSERT_EQ(verifier.cache().size(), 1u);
  ASSERT_THAT(checker->Revoke(claims.session_id), IsOk());
  EXPECT_EQ(verifier.cache().size(), 1u);  // still cached
  EXPECT_THAT(verifier.Verify(token),
              StatusIs(absl::StatusCode::kUnauthenticated, HasSubstr("revoked")));
}

// ---- The fallback: identity's record ---------------------------------------------------------

// A fallback that answers from a set and remembers what it was asked.
class RecordingFallback final : public RevocationChecker {
 public:
  absl::StatusOr<bool> IsRevoked(absl::string_view session_id) override {
    absl::MutexLock lock(&mu_);
    asked_.emplace_back(session_id);
    ++waiting_;
    mu_.Await(absl::Condition(
        +[](bool* held) { return !*held; }, &held_));
    --waiting_;
    if (!error_.ok()) return error_;
    return revoked_.contains(session_id);
  }
  // Hold: calls wait in IsRevoked (counted by waiting()) until Release.
  void Hold() {
    absl::MutexLock lock(&mu_);
    held_ = true;
  }
  void Release() {
    absl::MutexLock lock(&mu_);
    held_ = false;
  }
  // Whether `n` calls came to wait within `timeout`.
  bool AwaitWaiting(int n, absl::Duration timeout) {
    absl::MutexLock lock(&mu_);
    auto enough = [&]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return waiting_ >= n; };
    return mu_.AwaitWithTimeout(absl::Condition(&enough), timeout);
  }
  void Revoke(const std::string& session_id) {
    absl::MutexLock lock(&mu_);
    revoked_.insert(session_id);
  }
  void SetError(absl::Status error) {
    absl::MutexLock lock(&mu_);
    error_ = std::move(error);
  }
  std::vector<std::string> asked() {
    absl::MutexLock lock(&mu_);
    return asked_;
  }

 private:
  absl::Mutex mu_;
  absl::flat_hash_set<std::string> revoked_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> asked_ ABSL_GUARDED_BY(mu_);
  absl::Status error_ ABSL_GUARDED_BY(mu_);
  bool held_ ABSL_GUARDED_BY(mu_) = false;
  int waiting_ ABSL_GUARDED_BY(mu_) = 0;
};

// The value of crm_auth_revocation_fallback_total{reason}, or -1 if absent.
double FallbackCount(prometheus::Registry& registry, const std::string& reason) {
  for (const prometheus::MetricFamily& family : registry.Collect()) {
    if (family.name != "crm_auth_revocation_fallback_total") continue;
    for (const prometheus::ClientMetric& m : family.metric) {
      for (const prometheus::ClientMetric::Label& label : m.label) {
        if (label.name == "reason" && label.value == reason) return m.counter.value;
      }
    }
  }
  return -1;
}

// On a private Redis: the complete mark is one key for the whole Redis.
class RevocationFallbackTest : public ::testing::Test {
 protected:
  void SetUp() override {
    CRM_ASSERT_OK_AND_ASSIGN(server_, PrivateRedisServer::Start("pw"));
    redis::Options options = OptionsFor(server_->info());
    options.connect_timeout = absl::Milliseconds(200);
    options.command_timeout = absl::Milliseconds(200);
    CRM_ASSERT_OK_AND_ASSIGN(redis_, redis::Client::Create(options));
    CRM_ASSERT_OK_AND_ASSIGN(checker_, RedisRevocationChecker::Create(
                                           *redis_, clock_, {.fallback = &fallback_}, &registry_));
  }

  // Remaining TTL in ms of the session's key (-2 missing).
  int64_t PttlOf(absl::string_view session_id) {
    absl::StatusOr<redis::Reply> r = redis_->Command("PTTL", Key(session_id));
    EXPECT_THAT(r, IsOk());
    return r.ok() ? r->integer : -3;
  }

  std::unique_ptr<PrivateRedisServer> server_;
  std::unique_ptr<redis::Client> redis_;
  base::FakeClock clock_;
  RecordingFallback fallback_;
  prometheus::Registry registry_;
  std::unique_ptr<RedisRevocationChecker> checker_;
};

TEST_F(RevocationFallbackTest, RedisDownAsksTheFallbackAndCachesItsAnswers) {
  ASSERT_THAT(checker_->Republish({}, absl::Minutes(1)), IsOk());
  const std::string live = base::NewUuid();
  const std::string revoked = base::NewUuid();
  fallback_.Revoke(revoked);
  // Redis answers, and its set is complete: the fallback is not asked.
  EXPECT_THAT(checker_->IsRevoked(live), IsOkAndHolds(false));
  EXPECT_THAT(checker_->IsRevoked(revoked), IsOkAndHolds(false));
  EXPECT_THAT(fallback_.asked(), IsEmpty());
  EXPECT_EQ(FallbackCount(registry_, "redis_unavailable"), 0);

  ASSERT_THAT(server_->Stop(), IsOk());
  clock_.Advance(absl::Seconds(1));  // past the negative cache
  EXPECT_THAT(checker_->IsRevoked(live), IsOkAndHolds(false));
  EXPECT_THAT(checker_->IsRevoked(revoked), IsOkAndHolds(true));
  EXPECT_THAT(fallback_.asked(), ElementsAre(live, revoked));
  EXPECT_EQ(FallbackCount(registry_, "redis_unavailable"), 2);
  // Cached like Redis's answers: "not revoked" briefly, "revoked" for good.
  EXPECT_THAT(checker_->IsRevoked(live), IsOkAndHolds(false));
  EXPECT_THAT(checker_->IsRevoked(revoked), IsOkAndHolds(true));
  EXPECT_EQ(fallback_.asked().size(), 2);
  clock_.Advance(absl::Seconds(1));
  EXPECT_THAT(checker_->IsRevoked(live), IsOkAndHolds(false));
  EXPECT_THAT(checker_->IsRevoked(revoked), IsOkAndHolds(true));
  EXPECT_EQ(fallback_.asked().size(), 3);

  // Neither can answer: the check fails, and the verifier fails closed.
  fallback_.SetError(absl::UnavailableError("identity unreachable"));
  EXPECT_THAT(checker_->IsRevoked(base::NewUuid()), StatusIs(absl::StatusCode::kUnavailable));
}

TEST_F(RevocationFallbackTest, ARevokeThatCannotReachRedisIsStillKnownHere) {
  ASSERT_THAT(server_->Stop(), IsOk());
  const std::string sid = base::NewUuid();
  EXPECT_THAT(checker_->RevokeMany({sid}), StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_THAT(checker_->IsRevoked(sid), IsOkAndHolds(true));
  EXPECT_THAT(fallback_.asked(), IsEmpty());
}

TEST_F(RevocationFallbackTest, AFrozenRedisIsPassedByPromptly) {
  ASSERT_THAT(checker_->Republish({}, absl::Minutes(1)), IsOk());
  ASSERT_THAT(server_->Pause(), IsOk());
  const absl::Time start = absl::Now();
  EXPECT_THAT(checker_->IsRevoked(base::NewUuid()), IsOkAndHolds(false));
  EXPECT_LT(absl::Now() - start, absl::Seconds(3));
  EXPECT_EQ(fallback_.asked().size(), 1);
  ASSERT_THAT(server_->Resume(), IsOk());
}

TEST_F(RevocationFallbackTest, WithoutTheCompleteMarkRedisIsBelievedOnlyWhenItSaysRevoked) {
  // A Redis that came back empty: no mark. Its "not revoked" is not believed.
  const std::string lost = base::NewUuid();
  fallback_.Revoke(lost);
  EXPECT_THAT(checker_->IsComplete(), IsOkAndHolds(false));
  EXPECT_THAT(checker_->IsRevoked(lost), IsOkAndHolds(true));
  EXPECT_THAT(fallback_.asked(), ElementsAre(lost));
  EXPECT_EQ(FallbackCount(registry_, "set_incomplete"), 1);
  // A revocation Redis holds is believed without asking.
  const std::string held = base::NewUuid();
  ASSERT_THAT(redis_->Set(Key(held), "1", absl::Seconds(60)), IsOk());
  EXPECT_THAT(checker_->IsRevoked(held), IsOkAndHolds(true));
  EXPECT_THAT(fallback_.asked(), ElementsAre(lost));

  // Republished with the mark: Redis decides again.
  const std::string again = base::NewUuid();
  ASSERT_THAT(checker_->Republish({again}, absl::Seconds(90)), IsOk());
  EXPECT_THAT(checker_->IsComplete(), IsOkAndHolds(true));
  EXPECT_THAT(PttlOf(again), AllOf(Gt(80'000), Le(90'000)));
  EXPECT_THAT(checker_->IsRevoked(again), IsOkAndHolds(true));
  EXPECT_THAT(checker_->IsRevoked(base::NewUuid()), IsOkAndHolds(false));
  EXPECT_THAT(fallback_.asked(), ElementsAre(lost));
}

// Without the complete mark every "not revoked" comes from the fallback,
// which counts and can hold the asks.
TEST_F(RevocationFallbackTest, ABusySessionIsAskedAgainByOneCallWhileTheOthersUseTheAnswer) {
  const std::string sid = base::NewUuid();
  EXPECT_THAT(checker_->IsRevoked(sid), IsOkAndHolds(false));
  ASSERT_EQ(fallback_.asked().size(), 1);
  clock_.Advance(absl::Milliseconds(450));  // in the answer's last fifth

  fallback_.Hold();
  absl::StatusOr<bool> refreshed;
  std::thread refresher([&] { refreshed = checker_->IsRevoked(sid); });
  absl::Cleanup release = [&] {
    fallback_.Release();
    refresher.join();
  };
  ASSERT_TRUE(fallback_.AwaitWaiting(1, absl::Seconds(10)));
  // While it asks, other calls get the answer in hand at once.
  for (int i = 0; i < 5; ++i) EXPECT_THAT(checker_->IsRevoked(sid), IsOkAndHolds(false));
  EXPECT_EQ(fallback_.asked().size(), 2);
  std::move(release).Invoke();
  EXPECT_THAT(refreshed, IsOkAndHolds(false));

  // The new answer lives a full TTL from the ask, past the first one's end.
  clock_.Advance(absl::Milliseconds(100));
  EXPECT_THAT(checker_->IsRevoked(sid), IsOkAndHolds(false));
  EXPECT_EQ(fallback_.asked().size(), 2);

  // A revocation is seen by the ask in the last fifth.
  fallback_.Revoke(sid);
  clock_.Advance(absl::Milliseconds(300));
  EXPECT_THAT(checker_->IsRevoked(sid), IsOkAndHolds(true));
  EXPECT_EQ(fallback_.asked().size(), 3);
}

TEST_F(RevocationFallbackTest, AFailedEarlyAskKeepsTheAnswerAndTheNextCallAsksAgain) {
  const std::string sid = base::NewUuid();
  EXPECT_THAT(checker_->IsRevoked(sid), IsOkAndHolds(false));
  clock_.Advance(absl::Milliseconds(450));
  fallback_.SetError(absl::UnavailableError("identity unreachable"));
  // Redis is up but its set is incomplete; the fallback fails: the answer in
  // hand is still good.
  EXPECT_THAT(checker_->IsRevoked(sid), IsOkAndHolds(false));
  EXPECT_THAT(checker_->IsRevoked(sid), IsOkAndHolds(false));
  EXPECT_EQ(fallback_.asked().size(), 3);
  // Once it has expired, the failure is the answer: fail closed.
  clock_.Advance(absl::Milliseconds(50));
  EXPECT_THAT(checker_->IsRevoked(sid), StatusIs(absl::StatusCode::kUnavailable));
}

TEST_F(RevocationFallbackTest, RepublishWritesNothingIfOneIdIsMalformed) {
  const std::string good = base::NewUuid();
  EXPECT_THAT(checker_->Republish({good, "not a session"}, absl::Seconds(60)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("session_ids[1]")));
  EXPECT_EQ(PttlOf(good), -2);
  EXPECT_THAT(checker_->IsComplete(), IsOkAndHolds(false));
}

TEST_F(RevocationFallbackTest, WithoutAFallbackTheMarkIsNotConsulted) {
  CRM_ASSERT_OK_AND_ASSIGN(auto plain, RedisRevocationChecker::Create(*redis_, clock_));
  EXPECT_THAT(plain->IsRevoked(base::NewUuid()), IsOkAndHolds(false));
  ASSERT_THAT(server_->Stop(), IsOk());
  EXPECT_THAT(plain->IsRevoked(base::NewUuid()), StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_THAT(fallback_.asked(), IsEmpty());
}

}  // namespace
}  // namespace crm::auth
