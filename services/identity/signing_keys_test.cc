// SigningKeys on a real PostgreSQL migrated with services/identity/migrations,
// time driven by a FakeClock: first key, signing and verifying, rotation with
// publish-ahead and retirement, several replicas on one database (racing
// included), and stored keys the ring cannot or must not unwrap.
#include "services/identity/signing_keys.h"

#include <atomic>
#include <cstdint>
#include <memory>
#include <pqxx/binarystring>
#include <pqxx/result>
#include <pqxx/transaction>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "libs/auth/base64url.h"
#include "libs/auth/revocation.h"
#include "libs/auth/token_verifier.h"
#include "libs/base/clock.h"
#include "libs/crypto/key_ring.h"
#include "libs/pg/pool.h"
#include "libs/testing/pg_test_database.h"
#include "libs/testing/status_matchers.h"

namespace crm::identity {
namespace {

using ::crm::testing::CreateMigratedDatabase;
using ::crm::testing::IsOk;
using ::crm::testing::MigratedDatabase;
using ::crm::testing::StatusIs;
using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::SizeIs;

constexpr char kIssuer[] = "crm-identity";
constexpr char kAudience[] = "crm-test";
const SigningKeyOptions kDefaults;

// A ring holding `versions`; the KEK of a version is the same in every ring,
// as if all replicas read one key file.
crypto::KeyRing MakeRing(const std::vector<uint32_t>& versions) {
  std::vector<crypto::VersionedKey> keys;
  for (uint32_t v : versions) {
    keys.push_back({v, crypto::SecretBytes::CopyFrom(std::string(32, static_cast<char>(v)))});
  }
  auto ring = crypto::KeyRing::FromKeys(std::move(keys));
  EXPECT_THAT(ring, IsOk());
  return *std::move(ring);
}

auth::AccessTokenClaims Claims(absl::Time now, absl::Duration lifetime = absl::Minutes(15)) {
  auth::AccessTokenClaims c;
  c.issuer = kIssuer;
  c.audience = {kAudience};
  c.subject = "user-1";
  c.session_id = "session-1";
  c.issued_at = now;
  c.expires_at = now + lifetime;
  return c;
}

std::vector<std::string> Kids(const std::vector<PublishedKey>& keys) {
  std::vector<std::string> out;
  for (const PublishedKey& k : keys) out.push_back(k.kid);
  return out;
}

class SigningKeysTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto migrated = CreateMigratedDatabase("identity", "identity_signing_keys", 4);
    ASSERT_THAT(migrated, IsOk());
    migrated_ = new MigratedDatabase(std::move(*migrated));
  }
  static void TearDownTestSuite() {
    delete migrated_;
    migrated_ = nullptr;
  }

  void SetUp() override {
    ASSERT_NE(migrated_, nullptr) << "suite set-up failed";
    ASSERT_THAT(Exec("TRUNCATE signing_keys"), IsOk());
  }

  static pg::Pool& pool() { return *migrated_->pool; }

  // A second pool on the same database: another replica's connections.
  static std::unique_ptr<pg::Pool> OtherPool() {
    auto pool = pg::Pool::Create({.conninfo = migrated_->db->conninfo(), .max_size = 2},
                                 base::RealClock::Get());
    EXPECT_THAT(pool, IsOk());
    return pool.ok() ? *std::move(pool) : nullptr;
  }

  std::unique_ptr<SigningKeys> NewKeys(const crypto::KeyRing& ring, pg::Pool& pool) {
    auto keys = SigningKeys::Create(pool, ring, clock_);
    EXPECT_THAT(keys, IsOk());
    return keys.ok() ? *std::move(keys) : nullptr;
  }
  std::unique_ptr<SigningKeys> NewKeys() { return NewKeys(ring_, pool()); }

  static absl::Status Exec(const std::string& sql) {
    return pool().Transact([&](pqxx::work& tx) {
      tx.exec(sql);
      return absl::OkStatus();
    });
  }

  static int64_t CountRows(const std::string& where = "true") {
    auto n = pool().TransactValue<int64_t>([&](pqxx::work& tx) -> absl::StatusOr<int64_t> {
      return tx.exec(absl::StrCat("SELECT count(*) FROM signing_keys WHERE ", where))[0][0]
          .as<int64_t>();
    });
    EXPECT_THAT(n, IsOk());
    return n.ok() ? *n : -1;
  }

  static std::string Wrapped(const std::string& kid) {
    auto w = pool().TransactValue<std::string>([&](pqxx::work& tx) -> absl::StatusOr<std::string> {
      return pqxx::binarystring(
                 tx.exec_params("SELECT private_key_wrapped FROM signing_keys WHERE kid = $1",
                                kid)[0][0])
          .str();
    });
    EXPECT_THAT(w, IsOk());
    return w.ok() ? *w : "";
  }

  static void SetBytes(const std::string& kid, const std::string& column,
                       const std::string& value) {
    ASSERT_THAT(pool().Transact([&](pqxx::work& tx) {
      tx.exec_params(absl::StrCat("UPDATE signing_keys SET ", column, " = $2 WHERE kid = $1"), kid,
                     pqxx::binarystring(value));
      return absl::OkStatus();
    }),
                IsOk());
  }

  static std::string CurrentKid(const SigningKeys& keys) {
    auto signer = keys.CurrentSigner();
    EXPECT_THAT(signer, IsOk());
    return signer.ok() ? (*signer)->kid() : "";
  }

  std::string Sign(const SigningKeys& keys, absl::Duration lifetime = absl::Minutes(15)) {
    auto signer = keys.CurrentSigner();
    EXPECT_THAT(signer, IsOk());
    if (!signer.ok()) return "";
    auto token = (*signer)->Sign(Claims(clock_.Now(), lifetime));
    EXPECT_THAT(token, IsOk());
    return token.ok() ? *token : "";
  }

  // Verifies `token` against `keys.key_set()` now, with no cache.
  absl::Status Verify(const SigningKeys& keys, const std::string& token) {
    auth::TokenVerifier verifier({.issuer = kIssuer, .audience = kAudience, .cache_capacity = 0},
                                 keys.key_set(), revocation_, clock_);
    return verifier.Verify(token).status();
  }

  static MigratedDatabase* migrated_;
  base::FakeClock clock_;
  crypto::KeyRing ring_ = MakeRing({1, 2});
  auth::InMemoryRevocationChecker revocation_;
};
MigratedDatabase* SigningKeysTest::migrated_ = nullptr;

TEST_F(SigningKeysTest, CreateRejectsBadOptionsNamingThem) {
  struct Case {
    const char* name;
    SigningKeyOptions options;
  };
  const std::vector<Case> cases = {
      {"rotate_after", {.rotate_after = absl::ZeroDuration()}},
      {"rotate_after", {.rotate_after = -absl::Hours(1)}},
      {"rotate_after", {.rotate_after = absl::InfiniteDuration()}},
      {"publish_ahead", {.publish_ahead = absl::ZeroDuration()}},
      {"publish_ahead", {.publish_ahead = -absl::Minutes(1)}},
      {"publish_ahead", {.rotate_after = absl::Minutes(10), .publish_ahead = absl::Minutes(10)}},
      {"retired_kept", {.retired_kept = absl::ZeroDuration()}},
      {"retired_kept", {.retired_kept = absl::InfiniteDuration()}},
      {"retired_kept", {.retired_kept = absl::Minutes(15) + absl::Seconds(29)}},
  };
  for (const Case& c : cases) {
    EXPECT_THAT(SigningKeys::Create(pool(), ring_, clock_, c.options),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(c.name)))
        << c.name;
  }
  EXPECT_THAT(SigningKeys::Create(pool(), ring_, clock_,
                                  {.rotate_after = absl::Minutes(11),
                                   .publish_ahead = absl::Minutes(10),
                                   .retired_kept = absl::Minutes(15) + absl::Seconds(30)}),
              IsOk());
  EXPECT_EQ(CountRows(), 0) << "Create must not touch the database";
}

TEST_F(SigningKeysTest, CurrentSignerFailsBeforeFirstRefresh) {
  auto keys = NewKeys();
  EXPECT_THAT(keys->CurrentSigner(), StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_THAT(keys->Published(), SizeIs(0));
  EXPECT_THAT(keys->key_set().Get()->keys, SizeIs(0));
}

TEST_F(SigningKeysTest, FirstRefreshCreatesOneActiveKeyThatSigns) {
  auto keys = NewKeys();
  ASSERT_THAT(keys->Refresh(), IsOk());
  EXPECT_EQ(CountRows(), 1);
  EXPECT_EQ(CountRows(absl::StrCat("kek_version = ", ring_.active_version(),
                                   " AND retired_at IS NULL AND activated_at = created_at")),
            1);

  const std::vector<PublishedKey> published = keys->Published();
  ASSERT_THAT(published, SizeIs(1));
  const PublishedKey& key = published[0];
  EXPECT_EQ(key.activated_at, clock_.Now());
  EXPECT_EQ(key.created_at, clock_.Now());
  EXPECT_FALSE(key.retired_at.has_value());
  EXPECT_THAT(key.public_key, SizeIs(32));
  auto kid_bytes = auth::Base64UrlDecode(key.kid);
  ASSERT_TRUE(kid_bytes.has_value());
  EXPECT_THAT(*kid_bytes, SizeIs(16));
  EXPECT_EQ(CurrentKid(*keys), key.kid);
  EXPECT_EQ(keys->CurrentSigner().value()->public_key().Raw(), key.public_key);

  const std::string token = Sign(*keys);
  EXPECT_THAT(Verify(*keys, token), IsOk());
  // The verifier really checks the signature against the published key.
  std::string forged = token;
  forged.back() = forged.back() == 'A' ? 'B' : 'A';
  EXPECT_THAT(Verify(*keys, forged), StatusIs(absl::StatusCode::kUnauthenticated));

  // A second Refresh adds nothing.
  clock_.Advance(absl::Hours(1));
  ASSERT_THAT(keys->Refresh(), IsOk());
  EXPECT_EQ(CountRows(), 1);
  EXPECT_EQ(CurrentKid(*keys), key.kid);
}

TEST_F(SigningKeysTest, ReplicasRefreshingConcurrentlyCreateExactlyOneKeyAndOneSuccessor) {
  std::unique_ptr<pg::Pool> other_pool = OtherPool();
  ASSERT_NE(other_pool, nullptr);
  for (int round = 0; round < 20; ++round) {
    SCOPED_TRACE(round);
    ASSERT_THAT(Exec("TRUNCATE signing_keys"), IsOk());
    auto a = NewKeys(ring_, pool());
    auto b = NewKeys(ring_, *other_pool);
    auto race = [&] {
      std::atomic<int> ready{0};
      absl::Status sa, sb;
      auto run = [&](SigningKeys& keys, absl::Status& out) {
        ready.fetch_add(1);
        while (ready.load() < 2) {
        }
        out = keys.Refresh();
      };
      std::thread ta(run, std::ref(*a), std::ref(sa));
      std::thread tb(run, std::ref(*b), std::ref(sb));
      ta.join();
      tb.join();
      EXPECT_THAT(sa, IsOk());
      EXPECT_THAT(sb, IsOk());
    };

    race();
    EXPECT_EQ(CountRows(), 1);
    EXPECT_EQ(CurrentKid(*a), CurrentKid(*b));

    clock_.Advance(kDefaults.rotate_after);
    race();
    EXPECT_EQ(CountRows(), 2);
    EXPECT_EQ(Kids(a->Published()), Kids(b->Published()));
  }
}

TEST_F(SigningKeysTest, RotationPublishesSuccessorAheadThenRetiresAndDropsOldKey) {
  auto keys = NewKeys();
  const absl::Time t0 = clock_.Now();
  ASSERT_THAT(keys->Refresh(), IsOk());
  const std::string old_kid = CurrentKid(*keys);

  // Not yet due.
  clock_.Set(t0 + kDefaults.rotate_after - absl::Microseconds(1));
  ASSERT_THAT(keys->Refresh(), IsOk());
  EXPECT_EQ(CountRows(), 1);

  // Due: the successor is published, but the old key still signs.
  const absl::Time t_rotate = t0 + kDefaults.rotate_after;
  clock_.Set(t_rotate);
  ASSERT_THAT(keys->Refresh(), IsOk());
  std::vector<PublishedKey> published = keys->Published();
  ASSERT_THAT(published, SizeIs(2));
  const std::string new_kid = published[0].kid;
  EXPECT_NE(new_kid, old_kid);
  EXPECT_EQ(published[0].activated_at, t_rotate + kDefaults.publish_ahead);
  EXPECT_EQ(published[0].created_at, t_rotate);
  EXPECT_EQ(published[1].kid, old_kid);
  EXPECT_FALSE(published[1].retired_at.has_value());
  EXPECT_TRUE(keys->key_set().Get()->keys.contains(new_kid));
  EXPECT_EQ(CurrentKid(*keys), old_kid);

  // A pending successor stops further rotation.
  clock_.Advance(kDefaults.publish_ahead / 2);
  ASSERT_THAT(keys->Refresh(), IsOk());
  EXPECT_EQ(CountRows(), 2);

  // The old key signs up to the successor's activation. (Tokens carry whole
  // seconds, so the last token is signed on a second boundary.)
  const absl::Time t_switch = t_rotate + kDefaults.publish_ahead;
  clock_.Set(t_switch - absl::Seconds(1));
  EXPECT_EQ(CurrentKid(*keys), old_kid);
  const std::string last_old_token = Sign(*keys);
  auto old_signer = keys->CurrentSigner();
  ASSERT_THAT(old_signer, IsOk());
  auto long_token = (*old_signer)->Sign(Claims(clock_.Now(), absl::Hours(24)));
  ASSERT_THAT(long_token, IsOk());
  clock_.Set(t_switch - absl::Microseconds(1));
  EXPECT_EQ(CurrentKid(*keys), old_kid);

  // Then the successor takes over on time, without a Refresh, and its tokens
  // verify with the key set published before.
  clock_.Set(t_switch);
  EXPECT_EQ(CurrentKid(*keys), new_kid);
  const std::string new_token = Sign(*keys);
  EXPECT_THAT(Verify(*keys, new_token), IsOk());

  // The next Refresh retires the old key; it stays published.
  ASSERT_THAT(keys->Refresh(), IsOk());
  published = keys->Published();
  ASSERT_THAT(published, SizeIs(2));
  EXPECT_EQ(published[1].kid, old_kid);
  EXPECT_EQ(published[1].retired_at, t_switch);
  EXPECT_EQ(CountRows("retired_at IS NOT NULL"), 1);
  EXPECT_EQ(CurrentKid(*keys), new_kid);

  // Its last token verifies to the end of its life plus leeway (exp is
  // t_switch - 1 s + 15 min; the verifier allows 30 s)...
  clock_.Set(t_switch + absl::Minutes(15) + absl::Seconds(29) - absl::Microseconds(1));
  ASSERT_THAT(keys->Refresh(), IsOk());
  EXPECT_THAT(Verify(*keys, last_old_token), IsOk());
  // ...and the key stays published until retired_kept has passed.
  clock_.Set(t_switch + kDefaults.retired_kept - absl::Microseconds(1));
  ASSERT_THAT(keys->Refresh(), IsOk());
  EXPECT_THAT(Kids(keys->Published()), ElementsAre(new_kid, old_kid));
  EXPECT_THAT(Verify(*keys, *long_token), IsOk());

  // Then it leaves the published set; the row stays.
  clock_.Set(t_switch + kDefaults.retired_kept);
  ASSERT_THAT(keys->Refresh(), IsOk());
  EXPECT_THAT(Kids(keys->Published()), ElementsAre(new_kid));
  EXPECT_FALSE(keys->key_set().Get()->keys.contains(old_kid));
  EXPECT_THAT(Verify(*keys, *long_token), StatusIs(absl::StatusCode::kUnauthenticated));
  EXPECT_THAT(Verify(*keys, Sign(*keys)), IsOk());
  EXPECT_EQ(CountRows(), 2);
}

TEST_F(SigningKeysTest, RotateNowInsertsSuccessorPublishedAhead) {
  auto keys = NewKeys();
  // On an empty table RotateNow makes the first key, active at once.
  ASSERT_THAT(keys->RotateNow(), IsOk());
  EXPECT_EQ(CountRows(), 1);
  const std::string old_kid = CurrentKid(*keys);

  clock_.Advance(absl::Hours(1));
  const absl::Time t_rotate = clock_.Now();
  ASSERT_THAT(keys->RotateNow(), IsOk());
  std::vector<PublishedKey> published = keys->Published();
  ASSERT_THAT(published, SizeIs(2));
  const std::string new_kid = published[0].kid;
  EXPECT_NE(new_kid, old_kid);
  EXPECT_EQ(published[0].activated_at, t_rotate + kDefaults.publish_ahead);
  EXPECT_EQ(CurrentKid(*keys), old_kid);

  clock_.Advance(kDefaults.publish_ahead);
  EXPECT_EQ(CurrentKid(*keys), new_kid);
  ASSERT_THAT(keys->Refresh(), IsOk());
  published = keys->Published();
  ASSERT_THAT(published, SizeIs(2));
  EXPECT_EQ(published[1].kid, old_kid);
  EXPECT_EQ(published[1].retired_at, clock_.Now());
}

TEST_F(SigningKeysTest, SecondProcessLoadsTheSameKeysAndSignsWithTheSameKid) {
  auto first = NewKeys();
  ASSERT_THAT(first->Refresh(), IsOk());
  std::unique_ptr<pg::Pool> other_pool = OtherPool();
  ASSERT_NE(other_pool, nullptr);
  const crypto::KeyRing other_ring = MakeRing({1, 2});
  auto second = NewKeys(other_ring, *other_pool);
  ASSERT_THAT(second->Refresh(), IsOk());

  EXPECT_EQ(CountRows(), 1);
  EXPECT_EQ(CurrentKid(*second), CurrentKid(*first));
  EXPECT_THAT(Verify(*first, Sign(*second)), IsOk());
  EXPECT_THAT(Verify(*second, Sign(*first)), IsOk());

  // A rotation by one replica is picked up by the other's Refresh.
  ASSERT_THAT(first->RotateNow(), IsOk());
  ASSERT_THAT(second->Refresh(), IsOk());
  EXPECT_EQ(Kids(second->Published()), Kids(first->Published()));
  clock_.Advance(kDefaults.publish_ahead);
  EXPECT_EQ(CurrentKid(*second), CurrentKid(*first));
  EXPECT_EQ(CurrentKid(*second), first->Published()[0].kid);
}

TEST_F(SigningKeysTest, KeysWrappedUnderAnOlderKekVersionStillLoad) {
  const crypto::KeyRing old_ring = MakeRing({1});
  auto old_keys = NewKeys(old_ring, pool());
  ASSERT_THAT(old_keys->Refresh(), IsOk());
  EXPECT_EQ(CountRows("kek_version = 1"), 1);

  auto keys = NewKeys();  // ring {1, 2}
  ASSERT_THAT(keys->Refresh(), IsOk());
  EXPECT_EQ(CurrentKid(*keys), CurrentKid(*old_keys));
  ASSERT_THAT(keys->RotateNow(), IsOk());
  EXPECT_EQ(CountRows("kek_version = 2"), 1);
}

TEST_F(SigningKeysTest, MissingKekVersionFailsWithFailedPreconditionNamingIt) {
  auto keys = NewKeys();  // wraps under version 2
  ASSERT_THAT(keys->Refresh(), IsOk());
  const std::string kid = CurrentKid(*keys);

  const crypto::KeyRing old_ring = MakeRing({1});
  auto stale = NewKeys(old_ring, pool());
  EXPECT_THAT(stale->Refresh(), StatusIs(absl::StatusCode::kFailedPrecondition,
                                         AllOf(HasSubstr(kid), HasSubstr("version 2"))));
  EXPECT_THAT(stale->CurrentSigner(), StatusIs(absl::StatusCode::kFailedPrecondition));
  // It changed nothing, not even by adding a key of its own.
  EXPECT_EQ(CountRows(), 1);
  ASSERT_THAT(keys->Refresh(), IsOk());
  EXPECT_EQ(CurrentKid(*keys), kid);
}

TEST_F(SigningKeysTest, TamperedWrappedKeyFailsWithDataLossAndKeepsOldSnapshot) {
  auto keys = NewKeys();
  ASSERT_THAT(keys->Refresh(), IsOk());
  const std::string kid = CurrentKid(*keys);
  const std::string wrapped = Wrapped(kid);
  ASSERT_FALSE(wrapped.empty());
  std::string tampered = wrapped;
  tampered[tampered.size() / 2] ^= 0x01;
  SetBytes(kid, "private_key_wrapped", tampered);

  const std::string wrapped_hex = absl::BytesToHexString(wrapped);
  EXPECT_THAT(keys->Refresh(), StatusIs(absl::StatusCode::kDataLoss,
                                        AllOf(HasSubstr(kid), Not(HasSubstr(wrapped_hex)))));
  // The failed Refresh left the previous snapshot in place.
  EXPECT_EQ(CurrentKid(*keys), kid);
  EXPECT_THAT(Verify(*keys, Sign(*keys)), IsOk());
  // A fresh process cannot start signing.
  auto fresh = NewKeys();
  EXPECT_THAT(fresh->Refresh(), StatusIs(absl::StatusCode::kDataLoss, HasSubstr(kid)));
  EXPECT_THAT(fresh->CurrentSigner(), StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_EQ(CountRows(), 1);
}

TEST_F(SigningKeysTest, WrappedKeyMovedToAnotherRowFailsWithDataLoss) {
  auto keys = NewKeys();
  ASSERT_THAT(keys->Refresh(), IsOk());
  ASSERT_THAT(keys->RotateNow(), IsOk());
  const std::vector<PublishedKey> published = keys->Published();
  ASSERT_THAT(published, SizeIs(2));
  const std::string wrapped0 = Wrapped(published[0].kid);
  const std::string wrapped1 = Wrapped(published[1].kid);
  SetBytes(published[0].kid, "private_key_wrapped", wrapped1);
  SetBytes(published[1].kid, "private_key_wrapped", wrapped0);
  EXPECT_THAT(keys->Refresh(), StatusIs(absl::StatusCode::kDataLoss));
}

TEST_F(SigningKeysTest, PublicKeyNotMatchingPrivateKeyFailsWithDataLoss) {
  auto keys = NewKeys();
  ASSERT_THAT(keys->Refresh(), IsOk());
  ASSERT_THAT(keys->RotateNow(), IsOk());
  const std::vector<PublishedKey> published = keys->Published();
  ASSERT_THAT(published, SizeIs(2));
  SetBytes(published[1].kid, "public_key", published[0].public_key);
  EXPECT_THAT(keys->Refresh(), StatusIs(absl::StatusCode::kDataLoss, HasSubstr(published[1].kid)));
}

}  // namespace
}  // namespace crm::identity
