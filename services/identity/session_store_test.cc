// The SessionStore contract: one typed suite run against InMemorySessionStore
// and PgSessionStore (on a database migrated with services/identity/migrations),
// so the fake cannot drift from PostgreSQL. A PostgreSQL-only plan check
// follows at the end.
#include "services/identity/session_store.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <memory>
#include <optional>
#include <pqxx/binarystring>
#include <pqxx/result>
#include <pqxx/transaction>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "libs/base/clock.h"
#include "libs/base/uuid.h"
#include "libs/pg/migrate.h"
#include "libs/pg/pool.h"
#include "libs/testing/pg_test_database.h"
#include "libs/testing/status_matchers.h"
#include "services/identity/in_memory_session_store.h"
#include "services/identity/pg_session_store.h"
#include "services/identity/pg_user_store.h"

namespace crm::identity {
namespace {

using ::crm::testing::CreateMigratedDatabase;
using ::crm::testing::IsOk;
using ::crm::testing::IsOkAndHolds;
using ::crm::testing::MigratedDatabase;
using ::crm::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::SizeIs;

const absl::Time kT0 = absl::FromUnixMicros(1'800'000'000'123'456);

// A token hash / ciphertext stand-in with a NUL and high bytes.
std::string Bytes(absl::string_view label, size_t size = 32) {
  std::string out = absl::StrCat(std::string("\x00\xff", 2), label);
  out.resize(size, '\x7f');
  return out;
}

// ---- The two implementations behind one face ---------------------------------

class InMemoryEnv {
 public:
  static void SetUpSuite() {}
  static void TearDownSuite() {}
  absl::Status Init() {
    store_ = std::make_unique<InMemorySessionStore>();
    return absl::OkStatus();
  }
  SessionStore& store() { return *store_; }
  // The fake does not check users: any id will do.
  std::string NewUser(absl::string_view) { return base::NewUuid(); }

 private:
  std::unique_ptr<InMemorySessionStore> store_;
};

class PgEnv {
 public:
  static void SetUpSuite() {
    auto migrated = CreateMigratedDatabase("identity", "identity_sessions", 8);
    ASSERT_THAT(migrated, IsOk());
    migrated_ = new MigratedDatabase(std::move(*migrated));
    pool_ = migrated_->pool.get();
  }
  static void TearDownSuite() {
    pool_ = nullptr;
    delete migrated_;
    migrated_ = nullptr;
  }
  absl::Status Init() {
    if (pool_ == nullptr) return absl::FailedPreconditionError("suite set-up failed");
    absl::Status s = pool_->Transact([](pqxx::work& tx) {
      tx.exec("TRUNCATE users, sessions, login_history, revoked_sessions CASCADE");
      return absl::OkStatus();
    });
    if (!s.ok()) return s;
    store_ = std::make_unique<PgSessionStore>(*pool_);
    users_ = std::make_unique<PgUserStore>(*pool_, clock_);
    return absl::OkStatus();
  }
  SessionStore& store() { return *store_; }
  // A users row, for the foreign keys.
  std::string NewUser(absl::string_view name) {
    identity::NewUser u;
    u.username_index = Bytes(absl::StrCat("u:", name));
    u.username_ciphertext = Bytes("uc");
    u.display_name_ciphertext = Bytes("dn");
    u.email_index = Bytes(absl::StrCat("e:", name));
    u.email_ciphertext = Bytes("ec");
    u.password_hash = "$argon2id$v=19$m=19456,t=2,p=1$x";
    auto rec = users_->CreateUser(u);
    EXPECT_THAT(rec, IsOk());
    return rec.ok() ? rec->id : "";
  }
  static pg::Pool& pool() { return *pool_; }

 private:
  static MigratedDatabase* migrated_;
  static pg::Pool* pool_;
  base::FakeClock clock_;
  std::unique_ptr<PgSessionStore> store_;
  std::unique_ptr<PgUserStore> users_;
};
MigratedDatabase* PgEnv::migrated_ = nullptr;
pg::Pool* PgEnv::pool_ = nullptr;

template <typename Env>
class SessionStoreContractTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { Env::SetUpSuite(); }
  static void TearDownTestSuite() { Env::TearDownSuite(); }
  void SetUp() override { ASSERT_THAT(env_.Init(), IsOk()); }

  SessionStore& store() { return env_.store(); }

  NewSession Session(const std::string& user_id, absl::string_view token,
                     absl::Time created = kT0) {
    NewSession s;
    s.id = base::NewUuid();
    s.family_id = s.id;
    s.user_id = user_id;
    s.refresh_token_hash = Bytes(token);
    s.source_address_ciphertext = Bytes(absl::StrCat("ip:", token), 40);
    s.user_agent_ciphertext = Bytes(absl::StrCat("ua:", token), 50);
    s.created_at = created;
    s.expires_at = created + absl::Hours(24 * 30);
    return s;
  }

  SessionRecord MustCreate(const NewSession& s) {
    auto rec = store().Create(s);
    EXPECT_THAT(rec, IsOk());
    return rec.ok() ? *rec : SessionRecord{};
  }

  std::vector<std::string> ListedIds(const std::string& user_id, absl::Time now) {
    std::vector<std::string> ids;
    auto list = store().ListSessions(user_id, now);
    EXPECT_THAT(list, IsOk());
    if (list.ok()) {
      for (const SessionRecord& s : *list) ids.push_back(s.id);
    }
    return ids;
  }

  Env env_;
};

using Implementations = ::testing::Types<InMemoryEnv, PgEnv>;
class ImplName {
 public:
  template <typename T>
  static std::string GetName(int) {
    return std::is_same_v<T, PgEnv> ? "Pg" : "InMemory";
  }
};
TYPED_TEST_SUITE(SessionStoreContractTest, Implementations, ImplName);

// ---- Sessions ----------------------------------------------------------------

TYPED_TEST(SessionStoreContractTest, CreatedSessionReadsBackAndIsListed) {
  const std::string user = this->env_.NewUser("alice");
  NewSession in = this->Session(user, "t1", kT0 + absl::Nanoseconds(789));
  in.password_change_only = true;
  CRM_ASSERT_OK_AND_ASSIGN(SessionRecord created, this->store().Create(in));
  EXPECT_EQ(created.id, in.id);
  EXPECT_EQ(created.family_id, in.family_id);
  EXPECT_EQ(created.user_id, user);
  EXPECT_EQ(created.refresh_token_hash, in.refresh_token_hash);
  EXPECT_EQ(created.rotated_from, std::nullopt);
  EXPECT_TRUE(created.password_change_only);
  EXPECT_EQ(created.source_address_ciphertext, in.source_address_ciphertext);
  EXPECT_EQ(created.user_agent_ciphertext, in.user_agent_ciphertext);
  EXPECT_EQ(created.created_at, kT0) << "truncated to microseconds";
  EXPECT_EQ(created.expires_at, kT0 + absl::Hours(24 * 30));
  EXPECT_THAT(this->store().ListSessions(user, kT0), IsOkAndHolds(ElementsAre(created)));

  NewSession bare = this->Session(user, "t2");
  bare.source_address_ciphertext.reset();
  bare.user_agent_ciphertext.reset();
  CRM_ASSERT_OK_AND_ASSIGN(SessionRecord no_source, this->store().Create(bare));
  EXPECT_EQ(no_source.source_address_ciphertext, std::nullopt);
  EXPECT_EQ(no_source.user_agent_ciphertext, std::nullopt);
}

TYPED_TEST(SessionStoreContractTest, MalformedOrDuplicateSessionIsRejected) {
  const std::string user = this->env_.NewUser("bob");
  auto invalid = [](absl::string_view field) {
    return StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(field));
  };
  NewSession s = this->Session(user, "x");
  s.id = "nope";
  EXPECT_THAT(this->store().Create(s), invalid("id"));
  s = this->Session(user, "x");
  s.family_id = "nope";
  EXPECT_THAT(this->store().Create(s), invalid("family_id"));
  s = this->Session(user, "x");
  s.user_id = "nope";
  EXPECT_THAT(this->store().Create(s), invalid("user_id"));
  s = this->Session(user, "x");
  s.refresh_token_hash = "short";
  EXPECT_THAT(this->store().Create(s), invalid("refresh_token_hash"));
  s = this->Session(user, "x");
  s.expires_at = s.created_at;
  EXPECT_THAT(this->store().Create(s), invalid("expires_at"));

  const SessionRecord first = this->MustCreate(this->Session(user, "dup"));
  NewSession same_hash = this->Session(user, "dup");
  EXPECT_THAT(this->store().Create(same_hash), StatusIs(absl::StatusCode::kAlreadyExists));
  NewSession same_id = this->Session(user, "other");
  same_id.id = first.id;
  EXPECT_THAT(this->store().Create(same_id), StatusIs(absl::StatusCode::kAlreadyExists));
  EXPECT_THAT(this->ListedIds(user, kT0), ElementsAre(first.id));
}

TYPED_TEST(SessionStoreContractTest, ListShowsLiveSessionsOfTheUserNewestFirst) {
  const std::string user = this->env_.NewUser("carol");
  const std::string other = this->env_.NewUser("dave");
  const SessionRecord a = this->MustCreate(this->Session(user, "a", kT0));
  const SessionRecord b = this->MustCreate(this->Session(user, "b", kT0 + absl::Minutes(2)));
  const SessionRecord c = this->MustCreate(this->Session(user, "c", kT0 + absl::Minutes(1)));
  NewSession short_lived = this->Session(user, "d", kT0 - absl::Minutes(1));
  short_lived.expires_at = kT0 + absl::Hours(1);
  const SessionRecord d = this->MustCreate(short_lived);
  this->MustCreate(this->Session(other, "o", kT0));
  ASSERT_THAT(this->store().Revoke(c.family_id, kT0 + absl::Minutes(3)), IsOk());

  EXPECT_THAT(this->ListedIds(user, kT0 + absl::Minutes(5)), ElementsAre(b.id, a.id, d.id));
  EXPECT_THAT(this->ListedIds(user, kT0 + absl::Hours(1)), ElementsAre(b.id, a.id))
      << "a session is over at expires_at";
  EXPECT_THAT(this->ListedIds(base::NewUuid(), kT0), IsEmpty());
  EXPECT_THAT(this->store().ListSessions("bad", kT0),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("user_id")));
}

TYPED_TEST(SessionStoreContractTest, RotateReplacesTheCurrentToken) {
  const std::string user = this->env_.NewUser("erin");
  NewSession in = this->Session(user, "r0");
  in.password_change_only = true;
  const SessionRecord first = this->MustCreate(in);
  const absl::Time t1 = kT0 + absl::Minutes(10);
  CRM_ASSERT_OK_AND_ASSIGN(SessionRecord second,
                           this->store().Rotate(Bytes("r0"), Bytes("r1"), t1));
  EXPECT_NE(second.id, first.id);
  EXPECT_TRUE(base::IsUuid(second.id));
  EXPECT_EQ(second.family_id, first.family_id);
  EXPECT_EQ(second.user_id, user);
  EXPECT_EQ(second.refresh_token_hash, Bytes("r1"));
  EXPECT_EQ(second.rotated_from, first.id);
  EXPECT_TRUE(second.password_change_only);
  EXPECT_EQ(second.source_address_ciphertext, first.source_address_ciphertext);
  EXPECT_EQ(second.user_agent_ciphertext, first.user_agent_ciphertext);
  EXPECT_EQ(second.created_at, t1);
  EXPECT_EQ(second.expires_at, first.expires_at) << "rotation does not extend the session";
  EXPECT_THAT(this->store().ListSessions(user, t1), IsOkAndHolds(ElementsAre(second)));

  CRM_ASSERT_OK_AND_ASSIGN(SessionRecord third,
                           this->store().Rotate(Bytes("r1"), Bytes("r2"), t1 + absl::Minutes(1)));
  EXPECT_EQ(third.rotated_from, second.id);
  EXPECT_THAT(this->ListedIds(user, t1), ElementsAre(third.id));
}

TYPED_TEST(SessionStoreContractTest, ReusedTokenRevokesTheWholeFamilyOnly) {
  const std::string user = this->env_.NewUser("frank");
  this->MustCreate(this->Session(user, "f0"));
  const SessionRecord bystander = this->MustCreate(this->Session(user, "g0"));
  ASSERT_THAT(this->store().Rotate(Bytes("f0"), Bytes("f1"), kT0 + absl::Minutes(1)), IsOk());
  ASSERT_THAT(this->store().Rotate(Bytes("f1"), Bytes("f2"), kT0 + absl::Minutes(2)), IsOk());

  EXPECT_THAT(this->store().Rotate(Bytes("f0"), Bytes("f3"), kT0 + absl::Minutes(3)),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("refresh token reused; session revoked")));
  // The current token of the family is dead too, and the replay was committed.
  EXPECT_THAT(this->store().Rotate(Bytes("f2"), Bytes("f4"), kT0 + absl::Minutes(4)),
              StatusIs(absl::StatusCode::kUnauthenticated, HasSubstr("revoked")));
  EXPECT_THAT(this->store().Rotate(Bytes("f3"), Bytes("f5"), kT0 + absl::Minutes(4)),
              StatusIs(absl::StatusCode::kUnauthenticated, HasSubstr("not recognised")));
  EXPECT_THAT(this->ListedIds(user, kT0 + absl::Minutes(5)), ElementsAre(bystander.id));
}

TYPED_TEST(SessionStoreContractTest, ConcurrentRotationsOfOneTokenLetExactlyOneWin) {
  const std::string user = this->env_.NewUser("gina");
  constexpr int kThreads = 6;
  constexpr int kRounds = 10;
  for (int round = 0; round < kRounds; ++round) {
    SCOPED_TRACE(absl::StrCat("round ", round));
    const std::string token = absl::StrCat("c0-", round);
    this->MustCreate(this->Session(user, token));
    std::vector<absl::Status> results(kThreads);
    std::atomic<bool> go{false};
    std::vector<std::thread> threads;
    for (int i = 0; i < kThreads; ++i) {
      threads.emplace_back([this, i, round, &token, &results, &go] {
        while (!go.load()) std::this_thread::yield();
        results[i] = this->store()
                         .Rotate(Bytes(token), Bytes(absl::StrCat("c1-", round, "-", i)),
                                 kT0 + absl::Minutes(1))
                         .status();
      });
    }
    go.store(true);
    for (std::thread& t : threads) t.join();
    // The first loser to get the token sees it rotated (a replay) and revokes
    // the family; later losers find the session revoked.
    int winner = -1;
    int replays = 0;
    for (int i = 0; i < kThreads; ++i) {
      if (results[i].ok()) {
        EXPECT_EQ(winner, -1) << "two rotations of one token succeeded";
        winner = i;
      } else if (results[i].code() == absl::StatusCode::kFailedPrecondition) {
        ++replays;
      } else {
        EXPECT_THAT(results[i], StatusIs(absl::StatusCode::kUnauthenticated, HasSubstr("revoked")));
      }
    }
    EXPECT_EQ(replays, 1);
    ASSERT_NE(winner, -1);
    // Only the winner's token was stored; the losers' replay revoked it.
    for (int i = 0; i < kThreads; ++i) {
      EXPECT_THAT(
          this->store().Rotate(Bytes(absl::StrCat("c1-", round, "-", i)),
                               Bytes(absl::StrCat("c2-", round, "-", i)), kT0 + absl::Minutes(2)),
          StatusIs(absl::StatusCode::kUnauthenticated,
                   HasSubstr(i == winner ? "revoked" : "not recognised")));
    }
  }
  EXPECT_THAT(this->ListedIds(user, kT0 + absl::Minutes(2)), IsEmpty());
}

TYPED_TEST(SessionStoreContractTest, ExpiredOrUnknownTokenIsUnauthenticated) {
  const std::string user = this->env_.NewUser("hank");
  NewSession s = this->Session(user, "e0");
  s.expires_at = kT0 + absl::Hours(1);
  this->MustCreate(s);
  EXPECT_THAT(this->store().Rotate(Bytes("e0"), Bytes("e1"), kT0 + absl::Hours(1)),
              StatusIs(absl::StatusCode::kUnauthenticated, HasSubstr("expired")));
  EXPECT_THAT(
      this->store().Rotate(Bytes("e0"), Bytes("e1"), kT0 + absl::Hours(1) - absl::Microseconds(1)),
      IsOk());
  EXPECT_THAT(this->store().Rotate(Bytes("nothing"), Bytes("e2"), kT0),
              StatusIs(absl::StatusCode::kUnauthenticated, HasSubstr("not recognised")));
  EXPECT_THAT(this->store().Rotate("", Bytes("e2"), kT0),
              StatusIs(absl::StatusCode::kUnauthenticated));
}

TYPED_TEST(SessionStoreContractTest, RotateRejectsABadOrTakenNewHashWithoutChange) {
  const std::string user = this->env_.NewUser("ivan");
  const SessionRecord a = this->MustCreate(this->Session(user, "n0"));
  this->MustCreate(this->Session(user, "taken"));
  EXPECT_THAT(this->store().Rotate(Bytes("n0"), "short", kT0),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("new_token_hash")));
  EXPECT_THAT(this->store().Rotate(Bytes("n0"), Bytes("taken"), kT0),
              StatusIs(absl::StatusCode::kAlreadyExists));
  // n0 is still the current token.
  EXPECT_THAT(this->store().Rotate(Bytes("n0"), Bytes("n1"), kT0), IsOk());
  EXPECT_THAT(this->ListedIds(user, kT0), SizeIs(2));
  EXPECT_THAT(this->ListedIds(user, kT0), ::testing::Not(::testing::Contains(a.id)));
}

TYPED_TEST(SessionStoreContractTest, RevokeEndsEveryTokenOfTheSession) {
  const std::string user = this->env_.NewUser("judy");
  const SessionRecord a = this->MustCreate(this->Session(user, "v0"));
  const SessionRecord keep = this->MustCreate(this->Session(user, "k0"));
  ASSERT_THAT(this->store().Rotate(Bytes("v0"), Bytes("v1"), kT0), IsOk());
  EXPECT_THAT(this->store().Revoke(a.family_id, kT0 + absl::Minutes(1)), IsOk());
  EXPECT_THAT(this->store().Revoke(a.family_id, kT0 + absl::Minutes(2)), IsOk()) << "idempotent";
  EXPECT_THAT(this->store().Rotate(Bytes("v1"), Bytes("v2"), kT0 + absl::Minutes(3)),
              StatusIs(absl::StatusCode::kUnauthenticated, HasSubstr("revoked")));
  EXPECT_THAT(this->store().Rotate(Bytes("v0"), Bytes("v2"), kT0 + absl::Minutes(3)),
              StatusIs(absl::StatusCode::kUnauthenticated, HasSubstr("revoked")));
  EXPECT_THAT(this->ListedIds(user, kT0 + absl::Minutes(3)), ElementsAre(keep.id));
  EXPECT_THAT(this->store().Revoke(base::NewUuid(), kT0), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(this->store().Revoke("x", kT0),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("session_id")));
}

TYPED_TEST(SessionStoreContractTest, RevocationsInForceAreTheRecordedAndTheRecentlyRevoked) {
  const std::string user = this->env_.NewUser("rosa");
  const SessionRecord early = this->MustCreate(this->Session(user, "e0"));
  const SessionRecord late = this->MustCreate(this->Session(user, "l0"));
  const SessionRecord live = this->MustCreate(this->Session(user, "n0"));
  ASSERT_THAT(this->store().Rotate(Bytes("l0"), Bytes("l1"), kT0), IsOk());  // two rows, one family
  ASSERT_THAT(this->store().Revoke(early.family_id, kT0 + absl::Minutes(1)), IsOk());
  ASSERT_THAT(this->store().Revoke(late.family_id, kT0 + absl::Minutes(5)), IsOk());
  // A token session no row of the store knows (a service account's, a
  // subject's), recorded until 10 minutes past kT0.
  const std::string token_session = base::NewUuid();
  ASSERT_THAT(this->store().RecordRevocations({token_session}, kT0 + absl::Minutes(10)), IsOk());
  auto sorted = [](std::vector<std::string> ids) {
    std::sort(ids.begin(), ids.end());
    return ids;
  };
  auto in_force = [&](absl::Time now, absl::Time since) {
    return this->store().RevocationsInForce(now, since);
  };
  EXPECT_THAT(in_force(kT0, kT0),
              IsOkAndHolds(sorted({early.family_id, late.family_id, token_session})));
  EXPECT_THAT(in_force(kT0, kT0 + absl::Minutes(2)),
              IsOkAndHolds(sorted({late.family_id, token_session})));
  EXPECT_THAT(in_force(kT0 + absl::Minutes(10), kT0 + absl::Minutes(6)), IsOkAndHolds(IsEmpty()));

  EXPECT_THAT(this->store().IsRevoked(token_session, kT0), IsOkAndHolds(true));
  EXPECT_THAT(this->store().IsRevoked(token_session, kT0 + absl::Minutes(10)), IsOkAndHolds(false));
  // A revoked family is revoked, recorded or not; upper case names it too.
  EXPECT_THAT(this->store().IsRevoked(late.family_id, kT0 + absl::Hours(1)), IsOkAndHolds(true));
  EXPECT_THAT(this->store().IsRevoked(absl::AsciiStrToUpper(early.family_id), kT0),
              IsOkAndHolds(true));
  EXPECT_THAT(this->store().IsRevoked(live.family_id, kT0), IsOkAndHolds(false));
  EXPECT_THAT(this->store().IsRevoked(base::NewUuid(), kT0), IsOkAndHolds(false));
}

TYPED_TEST(SessionStoreContractTest, RecordingAgainKeepsTheLaterTimeAndPruneForgets) {
  const std::string a = base::NewUuid();
  const std::string b = base::NewUuid();
  ASSERT_THAT(this->store().RecordRevocations({a, b, a}, kT0 + absl::Minutes(10)), IsOk());
  ASSERT_THAT(this->store().RecordRevocations({a}, kT0 + absl::Minutes(5)), IsOk());
  ASSERT_THAT(this->store().RecordRevocations({b}, kT0 + absl::Minutes(20)), IsOk());
  EXPECT_THAT(this->store().IsRevoked(a, kT0 + absl::Minutes(9)), IsOkAndHolds(true));
  EXPECT_THAT(this->store().IsRevoked(b, kT0 + absl::Minutes(19)), IsOkAndHolds(true));
  EXPECT_THAT(this->store().PruneRevocations(kT0 + absl::Minutes(15)), IsOkAndHolds(1));
  EXPECT_THAT(this->store().RevocationsInForce(kT0, kT0), IsOkAndHolds(ElementsAre(b)));
  EXPECT_THAT(this->store().RecordRevocations({}, kT0), IsOk());
}

TYPED_TEST(SessionStoreContractTest, MalformedRevocationIdsAreRefusedAndNothingIsRecorded) {
  const std::string good = base::NewUuid();
  EXPECT_THAT(this->store().RecordRevocations({good, "x'; DROP TABLE sessions; --"},
                                              kT0 + absl::Minutes(10)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("session_ids[1]")));
  EXPECT_THAT(this->store().IsRevoked(good, kT0), IsOkAndHolds(false));
  EXPECT_THAT(this->store().IsRevoked("", kT0),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("session_id")));
  EXPECT_THAT(this->store().IsRevoked("not-a-uuid", kT0),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("session_id")));
}

TYPED_TEST(SessionStoreContractTest, RevokeAllForUserSparesTheExceptedSessionAndOtherUsers) {
  const std::string user = this->env_.NewUser("kim");
  const std::string other = this->env_.NewUser("lee");
  const SessionRecord a = this->MustCreate(this->Session(user, "a0"));
  const SessionRecord b = this->MustCreate(this->Session(user, "b0"));
  const SessionRecord mine = this->MustCreate(this->Session(user, "m0"));
  const SessionRecord theirs = this->MustCreate(this->Session(other, "o0"));
  ASSERT_THAT(this->store().Rotate(Bytes("a0"), Bytes("a1"), kT0), IsOk());

  std::vector<std::string> expected = {a.family_id, b.family_id};
  std::sort(expected.begin(), expected.end());
  EXPECT_THAT(this->store().RevokeAllForUser(user, mine.family_id, kT0 + absl::Minutes(1)),
              IsOkAndHolds(expected));
  EXPECT_THAT(this->ListedIds(user, kT0 + absl::Minutes(1)), ElementsAre(mine.id));
  EXPECT_THAT(this->ListedIds(other, kT0 + absl::Minutes(1)), ElementsAre(theirs.id));
  EXPECT_THAT(this->store().Rotate(Bytes("a1"), Bytes("a2"), kT0 + absl::Minutes(2)),
              StatusIs(absl::StatusCode::kUnauthenticated, HasSubstr("revoked")));
  // Nothing left to revoke but the excepted one; without it, that one goes.
  EXPECT_THAT(this->store().RevokeAllForUser(user, mine.family_id, kT0 + absl::Minutes(2)),
              IsOkAndHolds(IsEmpty()));
  EXPECT_THAT(this->store().RevokeAllForUser(user, std::nullopt, kT0 + absl::Minutes(2)),
              IsOkAndHolds(ElementsAre(mine.family_id)));
  EXPECT_THAT(this->ListedIds(user, kT0 + absl::Minutes(2)), IsEmpty());
  EXPECT_THAT(this->store().RevokeAllForUser("x", std::nullopt, kT0),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("user_id")));
  EXPECT_THAT(this->store().RevokeAllForUser(user, "x", kT0),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("except_session_id")));
}

// ---- Login history -----------------------------------------------------------

TYPED_TEST(SessionStoreContractTest, HistoryIsAppendedAndListedNewestFirstWithinTheRange) {
  const std::string user = this->env_.NewUser("mia");
  const std::string other = this->env_.NewUser("ned");
  std::vector<LoginHistoryRecord> mine;
  const LoginResult results[] = {LoginResult::kBadPassword, LoginResult::kLocked,
                                 LoginResult::kMfaFailed, LoginResult::kPasswordExpired,
                                 LoginResult::kSuccess};
  for (int i = 0; i < 5; ++i) {
    LoginAttempt a{.user_id = user,
                   .at = kT0 + absl::Minutes(i) + absl::Nanoseconds(5),
                   .result = results[i],
                   .source_address_ciphertext = Bytes(absl::StrCat("ip", i), 40),
                   .user_agent_ciphertext = Bytes(absl::StrCat("ua", i), 50)};
    CRM_ASSERT_OK_AND_ASSIGN(LoginHistoryRecord rec, this->store().AppendLogin(a));
    EXPECT_TRUE(base::IsUuid(rec.id));
    EXPECT_EQ(rec.user_id, user);
    EXPECT_EQ(rec.at, kT0 + absl::Minutes(i));
    EXPECT_EQ(rec.result, results[i]);
    EXPECT_EQ(rec.source_address_ciphertext, a.source_address_ciphertext);
    EXPECT_EQ(rec.user_agent_ciphertext, a.user_agent_ciphertext);
    mine.push_back(rec);
  }
  ASSERT_THAT(this->store().AppendLogin({.user_id = other, .at = kT0 + absl::Minutes(1)}), IsOk());
  CRM_ASSERT_OK_AND_ASSIGN(
      LoginHistoryRecord unknown,
      this->store().AppendLogin({.at = kT0, .result = LoginResult::kUnknownUser}));
  EXPECT_EQ(unknown.user_id, std::nullopt);
  EXPECT_EQ(unknown.source_address_ciphertext, std::nullopt);

  CRM_ASSERT_OK_AND_ASSIGN(LoginHistoryPage all,
                           this->store().ListLogins(user, kT0, kT0 + absl::Hours(1), 0, ""));
  EXPECT_THAT(all.entries, ElementsAre(mine[4], mine[3], mine[2], mine[1], mine[0]));
  EXPECT_TRUE(all.next_page_token.empty());
  // start inclusive, end exclusive.
  CRM_ASSERT_OK_AND_ASSIGN(
      LoginHistoryPage range,
      this->store().ListLogins(user, kT0 + absl::Minutes(1), kT0 + absl::Minutes(3), 0, ""));
  EXPECT_THAT(range.entries, ElementsAre(mine[2], mine[1]));
  EXPECT_THAT(this->store().ListLogins(base::NewUuid(), kT0, kT0 + absl::Hours(1), 0, ""),
              IsOkAndHolds(::testing::Field(&LoginHistoryPage::entries, IsEmpty())));
}

TYPED_TEST(SessionStoreContractTest, HistoryPagesWithoutGapsOrRepeats) {
  const std::string user = this->env_.NewUser("olga");
  std::vector<LoginHistoryRecord> created;
  for (int i = 0; i < 7; ++i) {
    // Entries 2 and 3 (and 5 and 6) share a time: the id breaks the tie.
    const int minute = i - (i >= 3) - (i >= 6);
    CRM_ASSERT_OK_AND_ASSIGN(
        LoginHistoryRecord rec,
        this->store().AppendLogin({.user_id = user, .at = kT0 + absl::Minutes(minute)}));
    created.push_back(rec);
  }
  std::sort(created.begin(), created.end(),
            [](const LoginHistoryRecord& a, const LoginHistoryRecord& b) {
              if (a.at != b.at) return a.at > b.at;
              return a.id < b.id;
            });
  for (int page_size : {1, 3, 7}) {
    std::vector<LoginHistoryRecord> got;
    std::vector<size_t> sizes;
    std::string token;
    for (int guard = 0; guard < 20; ++guard) {
      CRM_ASSERT_OK_AND_ASSIGN(
          LoginHistoryPage page,
          this->store().ListLogins(user, kT0, kT0 + absl::Hours(1), page_size, token));
      sizes.push_back(page.entries.size());
      got.insert(got.end(), page.entries.begin(), page.entries.end());
      token = page.next_page_token;
      if (token.empty()) break;
    }
    EXPECT_EQ(got, created) << "page size " << page_size;
    if (page_size == 3) {
      EXPECT_THAT(sizes, ElementsAre(3, 3, 1));
    }
    if (page_size == 7) {
      EXPECT_THAT(sizes, ElementsAre(7)) << "a full last page has no token";
    }
  }
}

TYPED_TEST(SessionStoreContractTest, BadHistoryQueriesAreInvalidArgumentNamingTheField) {
  const std::string user = this->env_.NewUser("pat");
  for (int i = 0; i < 3; ++i) {
    ASSERT_THAT(this->store().AppendLogin({.user_id = user, .at = kT0 + absl::Minutes(i)}), IsOk());
  }
  const absl::Time end = kT0 + absl::Hours(1);
  CRM_ASSERT_OK_AND_ASSIGN(LoginHistoryPage first, this->store().ListLogins(user, kT0, end, 1, ""));
  ASSERT_FALSE(first.next_page_token.empty());
  const auto bad_token = StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("page_token"));
  EXPECT_THAT(this->store().ListLogins(user, kT0, end, 1, "garbage!"), bad_token);
  EXPECT_THAT(this->store().ListLogins(user, kT0, end, 1, absl::WebSafeBase64Escape("h1|x|y|z")),
              bad_token);
  EXPECT_THAT(this->store().ListLogins(user, kT0, end + absl::Seconds(1), 1, first.next_page_token),
              bad_token)
      << "a token for another range";
  EXPECT_THAT(
      this->store().ListLogins(this->env_.NewUser("quin"), kT0, end, 1, first.next_page_token),
      bad_token)
      << "a token for another user";
  EXPECT_THAT(this->store().ListLogins(user, kT0, end, 1, first.next_page_token), IsOk());
  EXPECT_THAT(this->store().ListLogins(user, end, kT0, 0, ""),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("end_time")));
  EXPECT_THAT(this->store().ListLogins(user, kT0, end, -1, ""),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("page_size")));
  EXPECT_THAT(this->store().ListLogins("x", kT0, end, 0, ""),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("user_id")));
  EXPECT_THAT(this->store().AppendLogin({.user_id = "x", .at = kT0}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("user_id")));
}

// ---- PostgreSQL only -----------------------------------------------------------

class PgSessionStoreTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { PgEnv::SetUpSuite(); }
  static void TearDownTestSuite() { PgEnv::TearDownSuite(); }
  void SetUp() override { ASSERT_THAT(env_.Init(), IsOk()); }
  PgEnv env_;
};

TEST_F(PgSessionStoreTest, TokenHashLookupUsesTheUniqueIndex) {
  const std::string user = env_.NewUser("plan");
  for (int i = 0; i < 20; ++i) {
    NewSession s;
    s.id = base::NewUuid();
    s.family_id = s.id;
    s.user_id = user;
    s.refresh_token_hash = Bytes(absl::StrCat("plan", i));
    s.created_at = kT0;
    s.expires_at = kT0 + absl::Hours(1);
    ASSERT_THAT(env_.store().Create(s), IsOk());
  }
  // Sequential scans disabled, so only a missing index yields a Seq Scan.
  auto plan =
      PgEnv::pool().TransactValue<std::string>([&](pqxx::work& tx) -> absl::StatusOr<std::string> {
        tx.exec("SET LOCAL enable_seqscan = off");
        std::vector<std::string> lines;
        for (const auto& row :
             tx.exec_params(absl::StrCat("EXPLAIN ", PgSessionStore::FindByTokenHashSql()),
                            pqxx::binarystring(Bytes("plan3")))) {
          lines.push_back(row[0].as<std::string>());
        }
        return absl::StrJoin(lines, "\n");
      });
  ASSERT_THAT(plan, IsOk());
  EXPECT_THAT(*plan, HasSubstr("sessions_refresh_token_key"));
  EXPECT_THAT(*plan, ::testing::Not(HasSubstr("Seq Scan")));
}

}  // namespace
}  // namespace crm::identity
