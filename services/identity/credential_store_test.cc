// CredentialStore on a real PostgreSQL migrated with services/identity/migrations;
// users are made with PgUserStore.
#include "services/identity/credential_store.h"

#include <atomic>
#include <memory>
#include <pqxx/result>
#include <pqxx/transaction>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "libs/base/clock.h"
#include "libs/base/uuid.h"
#include "libs/pg/pool.h"
#include "libs/testing/pg_test_database.h"
#include "libs/testing/status_matchers.h"
#include "services/identity/pg_user_store.h"
#include "services/identity/user_store.h"

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
constexpr char kInitialHash[] = "$argon2id$v=19$m=19456,t=2,p=1$initial";

// A blind index / ciphertext stand-in with a NUL and high bytes.
std::string Bytes(absl::string_view label, size_t size = 32) {
  std::string out = absl::StrCat(std::string("\x00\xff", 2), label);
  out.resize(size, '\x7f');
  return out;
}

std::string Hash(int n) { return absl::StrCat("$argon2id$v=19$m=19456,t=2,p=1$h", n); }

class CredentialStoreTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto migrated = CreateMigratedDatabase("identity", "identity_creds", 8);
    ASSERT_THAT(migrated, IsOk());
    migrated_ = new MigratedDatabase(std::move(*migrated));
  }
  static void TearDownTestSuite() {
    delete migrated_;
    migrated_ = nullptr;
  }

  void SetUp() override {
    ASSERT_NE(migrated_, nullptr);
    ASSERT_THAT(pool().Transact([](pqxx::work& tx) {
      tx.exec("TRUNCATE users, password_history, pending_notices CASCADE");
      return absl::OkStatus();
    }),
                IsOk());
    clock_.Set(kT0);
    users_ = std::make_unique<PgUserStore>(pool(), clock_);
    store_ = std::make_unique<CredentialStore>(pool());
  }

  static pg::Pool& pool() { return *migrated_->pool; }
  CredentialStore& store() { return *store_; }

  // A person created at the clock's time with kInitialHash.
  std::string NewPerson(absl::string_view name) {
    NewUser u;
    u.username_index = Bytes(absl::StrCat("u:", name));
    u.username_ciphertext = Bytes("uc");
    u.display_name_ciphertext = Bytes("dn");
    u.email_index = Bytes(absl::StrCat("e:", name));
    u.email_ciphertext = Bytes("ec");
    u.password_hash = kInitialHash;
    return Create(u);
  }

  std::string NewServiceAccount(absl::string_view name) {
    NewUser u;
    u.kind = UserKind::kServiceAccount;
    u.username_index = Bytes(absl::StrCat("u:", name));
    u.username_ciphertext = Bytes("uc");
    u.display_name_ciphertext = Bytes("dn");
    return Create(u);
  }

  std::string Create(const NewUser& u) {
    auto rec = users_->CreateUser(u);
    EXPECT_THAT(rec, IsOk());
    return rec.ok() ? rec->id : "";
  }

  Credentials MustGet(const std::string& id) {
    auto c = store().Get(id);
    EXPECT_THAT(c, IsOk());
    return c.ok() ? *c : Credentials{};
  }

  // A user with confirmed TOTP at step 100 and three recovery codes.
  std::string NewTotpUser(absl::string_view name) {
    const std::string id = NewPerson(name);
    EXPECT_THAT(store().BeginTotpEnrollment(id, Bytes("secret")), IsOk());
    EXPECT_THAT(store().ConfirmTotp(id, 100, Bytes("salt", 16), Codes(), kT0), IsOk());
    return id;
  }
  static std::vector<std::string> Codes() { return {Bytes("c0"), Bytes("c1"), Bytes("c2")}; }

  NewNotice Notice(const std::string& user_id, absl::string_view dedup_key, absl::Time now,
                   NoticeKind kind = NoticeKind::kPasswordExpiryReminder) {
    NewNotice n;
    n.user_id = user_id;
    n.kind = kind;
    n.params_json = R"({"days_left":7})";
    n.dedup_key = std::string(dedup_key);
    n.now = now;
    return n;
  }

  std::vector<std::string> NoticeKeys(const std::vector<NoticeRecord>& notices) {
    std::vector<std::string> keys;
    for (const NoticeRecord& n : notices) keys.push_back(n.dedup_key);
    return keys;
  }

  base::FakeClock clock_;
  std::unique_ptr<PgUserStore> users_;
  std::unique_ptr<CredentialStore> store_;

 private:
  static MigratedDatabase* migrated_;
};
MigratedDatabase* CredentialStoreTest::migrated_ = nullptr;

// ---- Get and the user id -----------------------------------------------------

TEST_F(CredentialStoreTest, GetOfANewPersonHasThePasswordAndNothingElse) {
  const std::string id = NewPerson("ann");
  const Credentials c = MustGet(id);
  EXPECT_EQ(c.user_id, id);
  EXPECT_EQ(c.password_hash, kInitialHash);
  EXPECT_EQ(c.password_changed_at, kT0);
  EXPECT_FALSE(c.must_change_password);
  EXPECT_EQ(c.lockout, LockoutState{});
  EXPECT_EQ(c.last_login_at, std::nullopt);
  EXPECT_EQ(c.totp_secret_ciphertext, std::nullopt);
  EXPECT_EQ(c.totp_confirmed_at, std::nullopt);
  EXPECT_EQ(c.totp_last_step, std::nullopt);
  EXPECT_FALSE(c.totp_enabled());
  EXPECT_THAT(c.recovery_salt, IsEmpty());
  EXPECT_THAT(c.recovery_code_hashes, IsEmpty());
}

TEST_F(CredentialStoreTest, GetOfAServiceAccountHasNoPassword) {
  const Credentials c = MustGet(NewServiceAccount("svc"));
  EXPECT_EQ(c.password_hash, std::nullopt);
  EXPECT_EQ(c.password_changed_at, std::nullopt);
}

TEST_F(CredentialStoreTest, UnknownUserIsNotFoundEverywhere) {
  const std::string id = base::NewUuid();
  const auto keep = [](const LockoutState& s) { return s; };
  EXPECT_THAT(store().Get(id), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(store().PasswordHistory(id), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(store().SetPassword(id, Hash(1), false, kT0), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(store().ReplaceHash(id, Hash(1), Hash(2)), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(store().SetMustChangePassword(id, true), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(store().UpdateLockout(id, keep), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(store().RecordLogin(id, kT0), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(store().BeginTotpEnrollment(id, "s"), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(store().ConfirmTotp(id, 1, "salt", {}, kT0), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(store().UseTotpStep(id, 1), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(store().UseRecoveryCode(id, 0, "h"), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(store().DisableTotp(id), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(store().EnqueueNotice(Notice(id, "k", kT0)), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(store().NoticesOfUser(id), StatusIs(absl::StatusCode::kNotFound));
}

TEST_F(CredentialStoreTest, MalformedUserIdIsInvalidArgumentEverywhere) {
  const std::string id = "not-a-uuid";
  const auto bad = StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("user_id"));
  const auto keep = [](const LockoutState& s) { return s; };
  EXPECT_THAT(store().Get(id), bad);
  EXPECT_THAT(store().PasswordHistory(id), bad);
  EXPECT_THAT(store().SetPassword(id, Hash(1), false, kT0), bad);
  EXPECT_THAT(store().ReplaceHash(id, Hash(1), Hash(2)), bad);
  EXPECT_THAT(store().SetMustChangePassword(id, true), bad);
  EXPECT_THAT(store().UpdateLockout(id, keep), bad);
  EXPECT_THAT(store().RecordLogin(id, kT0), bad);
  EXPECT_THAT(store().BeginTotpEnrollment(id, "s"), bad);
  EXPECT_THAT(store().ConfirmTotp(id, 1, "salt", {}, kT0), bad);
  EXPECT_THAT(store().UseTotpStep(id, 1), bad);
  EXPECT_THAT(store().UseRecoveryCode(id, 0, "h"), bad);
  EXPECT_THAT(store().DisableTotp(id), bad);
  EXPECT_THAT(store().EnqueueNotice(Notice(id, "k", kT0)), bad);
  EXPECT_THAT(store().NoticesOfUser(id), bad);
}

// ---- Passwords ------------------------------------------------------------------

TEST_F(CredentialStoreTest, SevenChangesKeepTheNewestFiveNewestFirst) {
  const std::string id = NewPerson("ann");
  for (int i = 1; i <= 7; ++i) {
    ASSERT_THAT(store().SetPassword(id, Hash(i), i == 7, kT0 + absl::Minutes(i)), IsOk());
  }
  EXPECT_THAT(store().PasswordHistory(id),
              IsOkAndHolds(ElementsAre(Hash(7), Hash(6), Hash(5), Hash(4), Hash(3))));
  int rows = 0;
  ASSERT_THAT(pool().Transact([&](pqxx::work& tx) {
    rows = tx.exec_params("SELECT count(*) FROM password_history WHERE user_id = $1", id)[0][0]
               .as<int>();
    return absl::OkStatus();
  }),
              IsOk());
  EXPECT_EQ(rows, kPasswordHistoryDepth);
  const Credentials c = MustGet(id);
  EXPECT_EQ(c.password_hash, Hash(7));
  EXPECT_EQ(c.password_changed_at, kT0 + absl::Minutes(7));
  EXPECT_TRUE(c.must_change_password);
}

TEST_F(CredentialStoreTest, FirstChangeKeepsThePasswordTheUserWasCreatedWith) {
  const std::string id = NewPerson("ann");
  EXPECT_THAT(store().PasswordHistory(id), IsOkAndHolds(ElementsAre(kInitialHash)));
  ASSERT_THAT(store().SetPassword(id, Hash(1), false, kT0 + absl::Hours(1)), IsOk());
  EXPECT_THAT(store().PasswordHistory(id), IsOkAndHolds(ElementsAre(Hash(1), kInitialHash)));
}

TEST_F(CredentialStoreTest, ServiceAccountWithoutPasswordHasNoHistory) {
  EXPECT_THAT(store().PasswordHistory(NewServiceAccount("svc")), IsOkAndHolds(IsEmpty()));
}

TEST_F(CredentialStoreTest, TwoChangesInOneMicrosecondBothEnterTheHistory) {
  const std::string id = NewPerson("ann");
  const absl::Time now = kT0 + absl::Hours(1) + absl::Nanoseconds(700);
  ASSERT_THAT(store().SetPassword(id, Hash(1), false, now), IsOk());
  ASSERT_THAT(store().SetPassword(id, Hash(2), false, now), IsOk());
  // Even a clock that went back stays behind the newest entry.
  ASSERT_THAT(store().SetPassword(id, Hash(3), false, now - absl::Hours(2)), IsOk());
  EXPECT_THAT(store().PasswordHistory(id),
              IsOkAndHolds(ElementsAre(Hash(3), Hash(2), Hash(1), kInitialHash)));
  EXPECT_EQ(MustGet(id).password_changed_at, TruncateToMicros(now - absl::Hours(2)));
}

TEST_F(CredentialStoreTest, SetPasswordRejectsAnEmptyHash) {
  const std::string id = NewPerson("ann");
  EXPECT_THAT(store().SetPassword(id, "", false, kT0),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("password_hash")));
  EXPECT_EQ(MustGet(id).password_hash, kInitialHash);
}

TEST_F(CredentialStoreTest, ReplaceHashIsCompareAndSet) {
  const std::string id = NewPerson("ann");
  ASSERT_THAT(store().SetPassword(id, Hash(1), false, kT0 + absl::Hours(1)), IsOk());
  EXPECT_THAT(store().ReplaceHash(id, Hash(9), Hash(2)), IsOkAndHolds(false));
  EXPECT_EQ(MustGet(id).password_hash, Hash(1));
  EXPECT_THAT(store().ReplaceHash(id, Hash(1), Hash(2)), IsOkAndHolds(true));
  const Credentials c = MustGet(id);
  EXPECT_EQ(c.password_hash, Hash(2));
  EXPECT_EQ(c.password_changed_at, kT0 + absl::Hours(1));
  EXPECT_THAT(store().PasswordHistory(id), IsOkAndHolds(ElementsAre(Hash(1), kInitialHash)));
  // The old hash is gone now: a second rehash from it loses.
  EXPECT_THAT(store().ReplaceHash(id, Hash(1), Hash(3)), IsOkAndHolds(false));
  EXPECT_THAT(store().ReplaceHash(id, Hash(2), ""),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("new_hash")));
}

TEST_F(CredentialStoreTest, SetMustChangePasswordSetsAndClears) {
  const std::string id = NewPerson("ann");
  ASSERT_THAT(store().SetMustChangePassword(id, true), IsOk());
  EXPECT_TRUE(MustGet(id).must_change_password);
  ASSERT_THAT(store().SetMustChangePassword(id, false), IsOk());
  EXPECT_FALSE(MustGet(id).must_change_password);
}

// ---- Lockout --------------------------------------------------------------------

TEST_F(CredentialStoreTest, UpdateLockoutWritesWhatUpdateReturnsTruncatedToMicros) {
  const std::string id = NewPerson("ann");
  LockoutState seen;
  LockoutState next;
  next.consecutive_failures = 0;
  next.lockouts = 2;
  next.locked_until = kT0 + absl::Minutes(30) + absl::Nanoseconds(999);
  next.last_failure = kT0 + absl::Nanoseconds(1);
  auto written = store().UpdateLockout(id, [&](const LockoutState& s) {
    seen = s;
    return next;
  });
  ASSERT_THAT(written, IsOk());
  EXPECT_EQ(seen, LockoutState{});
  LockoutState expected = next;
  expected.locked_until = kT0 + absl::Minutes(30);
  expected.last_failure = kT0;
  EXPECT_EQ(*written, expected);
  EXPECT_EQ(MustGet(id).lockout, expected);
  // The next update starts from what was written.
  ASSERT_THAT(store().UpdateLockout(id,
                                    [&](const LockoutState& s) {
                                      seen = s;
                                      return s;
                                    }),
              IsOk());
  EXPECT_EQ(seen, expected);
}

TEST_F(CredentialStoreTest, AdminLockRoundTripsAsInfinity) {
  const std::string id = NewPerson("ann");
  LockoutState admin;
  admin.lockouts = 3;
  admin.locked_until = absl::InfiniteFuture();
  admin.admin_unlock_required = true;
  admin.last_failure = kT0;
  EXPECT_THAT(store().UpdateLockout(id, [&](const LockoutState&) { return admin; }),
              IsOkAndHolds(admin));
  EXPECT_EQ(MustGet(id).lockout, admin);
  bool infinity = false;
  ASSERT_THAT(pool().Transact([&](pqxx::work& tx) {
    infinity = tx.exec_params("SELECT locked_until = 'infinity' FROM users WHERE id = $1", id)[0][0]
                   .as<bool>();
    return absl::OkStatus();
  }),
              IsOk());
  EXPECT_TRUE(infinity);
  // AdminUnlock's fresh state goes back to NULLs.
  EXPECT_THAT(store().UpdateLockout(id, [](const LockoutState&) { return LockoutState{}; }),
              IsOkAndHolds(LockoutState{}));
  EXPECT_EQ(MustGet(id).lockout, LockoutState{});
}

TEST_F(CredentialStoreTest, ConcurrentLockoutIncrementsAreNeverLost) {
  const std::string id = NewPerson("ann");
  constexpr int kThreads = 4;
  constexpr int kIncrements = 20;
  std::atomic<bool> go{false};
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      while (!go.load()) std::this_thread::yield();
      for (int i = 0; i < kIncrements; ++i) {
        auto s = store().UpdateLockout(id, [](const LockoutState& s) {
          LockoutState next = s;
          ++next.consecutive_failures;
          return next;
        });
        if (!s.ok()) ++failures;
      }
    });
  }
  go = true;
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(MustGet(id).lockout.consecutive_failures, kThreads * kIncrements);
}

TEST_F(CredentialStoreTest, RecordLoginClearsFailuresButKeepsLockouts) {
  const std::string id = NewPerson("ann");
  LockoutState s;
  s.consecutive_failures = 3;
  s.lockouts = 2;
  s.last_failure = kT0;
  ASSERT_THAT(store().UpdateLockout(id, [&](const LockoutState&) { return s; }), IsOk());
  const absl::Time now = kT0 + absl::Minutes(5) + absl::Nanoseconds(5);
  ASSERT_THAT(store().RecordLogin(id, now), IsOk());
  const Credentials c = MustGet(id);
  EXPECT_EQ(c.last_login_at, TruncateToMicros(now));
  EXPECT_EQ(c.lockout.consecutive_failures, 0);
  EXPECT_EQ(c.lockout.lockouts, 2);
  EXPECT_EQ(c.lockout.last_failure, absl::InfinitePast());
}

// ---- TOTP -----------------------------------------------------------------------

TEST_F(CredentialStoreTest, TotpEnrolmentRestartsUntilConfirmed) {
  const std::string id = NewPerson("ann");
  ASSERT_THAT(store().BeginTotpEnrollment(id, Bytes("first")), IsOk());
  Credentials c = MustGet(id);
  EXPECT_EQ(c.totp_secret_ciphertext, Bytes("first"));
  EXPECT_FALSE(c.totp_enabled());

  ASSERT_THAT(store().BeginTotpEnrollment(id, Bytes("second")), IsOk());
  EXPECT_EQ(MustGet(id).totp_secret_ciphertext, Bytes("second"));

  const absl::Time now = kT0 + absl::Nanoseconds(42);
  ASSERT_THAT(store().ConfirmTotp(id, 100, Bytes("salt", 16), Codes(), now), IsOk());
  c = MustGet(id);
  EXPECT_TRUE(c.totp_enabled());
  EXPECT_EQ(c.totp_secret_ciphertext, Bytes("second"));
  EXPECT_EQ(c.totp_confirmed_at, TruncateToMicros(now));
  EXPECT_EQ(c.totp_last_step, 100);
  EXPECT_EQ(c.recovery_salt, Bytes("salt", 16));
  EXPECT_EQ(c.recovery_code_hashes, Codes());

  EXPECT_THAT(store().BeginTotpEnrollment(id, Bytes("third")),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("already enabled")));
  EXPECT_THAT(store().ConfirmTotp(id, 101, Bytes("salt2", 16), Codes(), now),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("no pending")));
  EXPECT_EQ(MustGet(id).totp_secret_ciphertext, Bytes("second"));
}

TEST_F(CredentialStoreTest, ConfirmWithoutEnrolmentFails) {
  const std::string id = NewPerson("ann");
  EXPECT_THAT(store().ConfirmTotp(id, 100, Bytes("salt", 16), Codes(), kT0),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("no pending")));
  EXPECT_FALSE(MustGet(id).totp_enabled());
}

TEST_F(CredentialStoreTest, TotpInputsAreValidated) {
  const std::string id = NewPerson("ann");
  EXPECT_THAT(store().BeginTotpEnrollment(id, ""),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("secret_ciphertext")));
  ASSERT_THAT(store().BeginTotpEnrollment(id, Bytes("s")), IsOk());
  EXPECT_THAT(store().ConfirmTotp(id, 100, "", Codes(), kT0),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("recovery_salt")));
  EXPECT_THAT(store().ConfirmTotp(id, 100, Bytes("salt", 16), {Bytes("c0"), ""}, kT0),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("recovery_code_hashes")));
  EXPECT_FALSE(MustGet(id).totp_enabled());
}

TEST_F(CredentialStoreTest, UseTotpStepOnlyMovesForward) {
  const std::string id = NewTotpUser("ann");
  EXPECT_THAT(store().UseTotpStep(id, 100), IsOkAndHolds(false));  // used to confirm
  EXPECT_THAT(store().UseTotpStep(id, 99), IsOkAndHolds(false));
  EXPECT_THAT(store().UseTotpStep(id, 101), IsOkAndHolds(true));
  EXPECT_THAT(store().UseTotpStep(id, 101), IsOkAndHolds(false));
  EXPECT_THAT(store().UseTotpStep(id, 105), IsOkAndHolds(true));
  EXPECT_THAT(store().UseTotpStep(id, 103), IsOkAndHolds(false));
  EXPECT_EQ(MustGet(id).totp_last_step, 105);
}

TEST_F(CredentialStoreTest, UseTotpStepNeedsConfirmedTotp) {
  const std::string id = NewPerson("ann");
  EXPECT_THAT(store().UseTotpStep(id, 1), StatusIs(absl::StatusCode::kFailedPrecondition));
  ASSERT_THAT(store().BeginTotpEnrollment(id, Bytes("s")), IsOk());
  EXPECT_THAT(store().UseTotpStep(id, 1), StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_EQ(MustGet(id).totp_last_step, std::nullopt);
}

TEST_F(CredentialStoreTest, ConcurrentUseOfOneStepExactlyOneWins) {
  const std::string id = NewTotpUser("ann");
  constexpr int kThreads = 8;
  for (int64_t step = 101; step <= 105; ++step) {
    std::atomic<bool> go{false};
    std::atomic<int> wins{0};
    std::atomic<int> errors{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&] {
        while (!go.load()) std::this_thread::yield();
        auto used = store().UseTotpStep(id, step);
        if (!used.ok()) {
          ++errors;
        } else if (*used) {
          ++wins;
        }
      });
    }
    go = true;
    for (std::thread& t : threads) t.join();
    EXPECT_EQ(errors.load(), 0);
    EXPECT_EQ(wins.load(), 1) << "step " << step;
  }
}

TEST_F(CredentialStoreTest, RecoveryCodeIsUsedOnceAndItsSlotKept) {
  const std::string id = NewTotpUser("ann");
  EXPECT_THAT(store().UseRecoveryCode(id, 1, Bytes("c0")), IsOkAndHolds(false));  // wrong slot
  EXPECT_THAT(store().UseRecoveryCode(id, 1, Bytes("c1")), IsOkAndHolds(true));
  EXPECT_THAT(store().UseRecoveryCode(id, 1, Bytes("c1")), IsOkAndHolds(false));
  EXPECT_THAT(MustGet(id).recovery_code_hashes, ElementsAre(Bytes("c0"), "", Bytes("c2")));
  EXPECT_THAT(store().UseRecoveryCode(id, 2, Bytes("c2")), IsOkAndHolds(true));
  EXPECT_THAT(MustGet(id).recovery_code_hashes, ElementsAre(Bytes("c0"), "", ""));
}

TEST_F(CredentialStoreTest, RecoveryCodeInputsAreValidated) {
  const std::string id = NewTotpUser("ann");
  EXPECT_THAT(store().UseRecoveryCode(id, 3, Bytes("c0")),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("index")));
  EXPECT_THAT(store().UseRecoveryCode(id, size_t{1} << 40, Bytes("c0")),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("index")));
  ASSERT_THAT(store().UseRecoveryCode(id, 0, Bytes("c0")), IsOkAndHolds(true));
  // The emptied entry must not match an empty hash.
  EXPECT_THAT(store().UseRecoveryCode(id, 0, ""),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("expected_hash")));
  EXPECT_THAT(store().UseRecoveryCode(NewPerson("bob"), 0, Bytes("c0")),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("index")));
}

TEST_F(CredentialStoreTest, ConcurrentUseOfOneRecoveryCodeExactlyOneWins) {
  const std::string id = NewTotpUser("ann");
  constexpr int kThreads = 8;
  for (size_t index = 0; index < Codes().size(); ++index) {
    std::atomic<bool> go{false};
    std::atomic<int> wins{0};
    std::atomic<int> errors{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&] {
        while (!go.load()) std::this_thread::yield();
        auto used = store().UseRecoveryCode(id, index, Codes()[index]);
        if (!used.ok()) {
          ++errors;
        } else if (*used) {
          ++wins;
        }
      });
    }
    go = true;
    for (std::thread& t : threads) t.join();
    EXPECT_EQ(errors.load(), 0);
    EXPECT_EQ(wins.load(), 1) << "index " << index;
  }
}

TEST_F(CredentialStoreTest, DisableTotpClearsEverythingAndIsIdempotent) {
  const std::string id = NewTotpUser("ann");
  ASSERT_THAT(store().UseTotpStep(id, 200), IsOkAndHolds(true));
  ASSERT_THAT(store().DisableTotp(id), IsOk());
  const Credentials c = MustGet(id);
  EXPECT_EQ(c.totp_secret_ciphertext, std::nullopt);
  EXPECT_EQ(c.totp_confirmed_at, std::nullopt);
  EXPECT_EQ(c.totp_last_step, std::nullopt);
  EXPECT_THAT(c.recovery_salt, IsEmpty());
  EXPECT_THAT(c.recovery_code_hashes, IsEmpty());
  ASSERT_THAT(store().DisableTotp(id), IsOk());
  EXPECT_THAT(store().UseRecoveryCode(id, 0, Bytes("c0")),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("index")));
  // And enrolment can start again, with steps counting from the new confirmation.
  ASSERT_THAT(store().BeginTotpEnrollment(id, Bytes("again")), IsOk());
  ASSERT_THAT(store().ConfirmTotp(id, 50, Bytes("salt2", 16), {Bytes("d0")}, kT0), IsOk());
  EXPECT_THAT(store().UseTotpStep(id, 51), IsOkAndHolds(true));
}

// ---- Password age -----------------------------------------------------------------

TEST_F(CredentialStoreTest, PasswordsChangedBeforeListsActivePersonsOldestFirst) {
  const std::string a = NewPerson("a");
  const std::string b = NewPerson("b");
  const std::string c = NewPerson("c");
  const std::string recent = NewPerson("recent");
  const std::string disabled = NewPerson("disabled");
  const std::string svc = NewServiceAccount("svc");
  const absl::Time old = kT0 - absl::Hours(24 * 100);
  ASSERT_THAT(store().SetPassword(a, Hash(1), false, old + absl::Hours(2)), IsOk());
  ASSERT_THAT(store().SetPassword(b, Hash(1), false, old), IsOk());
  ASSERT_THAT(store().SetPassword(c, Hash(1), false, old), IsOk());
  ASSERT_THAT(store().SetPassword(recent, Hash(1), false, kT0), IsOk());
  ASSERT_THAT(store().SetPassword(disabled, Hash(1), false, old), IsOk());
  ASSERT_THAT(store().SetPassword(svc, Hash(1), false, old), IsOk());
  ASSERT_THAT(users_->UpdateUserStatus(disabled, UserStatus::kDisabled), IsOk());

  const absl::Time cutoff = kT0 - absl::Hours(24 * 90);
  auto all = store().PasswordsChangedBefore(cutoff, 10);
  ASSERT_THAT(all, IsOk());
  std::vector<std::string> ids;
  for (const auto& age : *all) ids.push_back(age.user_id);
  const auto [first, second] = b < c ? std::pair(b, c) : std::pair(c, b);
  EXPECT_THAT(ids, ElementsAre(first, second, a));
  EXPECT_EQ((*all)[0].password_changed_at, old);
  EXPECT_EQ((*all)[2].password_changed_at, old + absl::Hours(2));

  auto limited = store().PasswordsChangedBefore(cutoff, 2);
  ASSERT_THAT(limited, IsOk());
  EXPECT_THAT(*limited, SizeIs(2));
  // "At or before": the cutoff itself counts.
  EXPECT_THAT(store().PasswordsChangedBefore(old, 10), IsOkAndHolds(SizeIs(2)));
  // "After" is exclusive: paging on from the last time seen skips b and c.
  auto after_old = store().PasswordsChangedBefore(cutoff, 10, old);
  ASSERT_THAT(after_old, IsOk());
  ASSERT_THAT(*after_old, SizeIs(1));
  EXPECT_EQ((*after_old)[0].user_id, a);
  EXPECT_THAT(store().PasswordsChangedBefore(cutoff, 0),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("limit")));
}

// ---- Notices ----------------------------------------------------------------------

TEST_F(CredentialStoreTest, NoticeKindNamesMatchTheSchema) {
  EXPECT_EQ(NoticeKindName(NoticeKind::kPasswordChangeRequired), "password_change_required");
  EXPECT_EQ(NoticeKindName(NoticeKind::kPasswordExpiryReminder), "password_expiry_reminder");
  EXPECT_EQ(NoticeKindName(NoticeKind::kGrantExpiry), "grant_expiry");
}

TEST_F(CredentialStoreTest, EnqueueNoticeIsIdempotentByDedupKey) {
  const std::string id = NewPerson("ann");
  EXPECT_THAT(store().EnqueueNotice(Notice(id, "pw:ann:7d", kT0)), IsOkAndHolds(true));
  NewNotice again = Notice(id, "pw:ann:7d", kT0 + absl::Hours(1));
  again.params_json = R"({"days_left":1})";
  EXPECT_THAT(store().EnqueueNotice(again), IsOkAndHolds(false));
  auto notices = store().NoticesOfUser(id);
  ASSERT_THAT(notices, IsOk());
  ASSERT_THAT(*notices, SizeIs(1));
  const NoticeRecord& n = (*notices)[0];
  EXPECT_TRUE(base::IsUuid(n.id));
  EXPECT_EQ(n.user_id, id);
  EXPECT_EQ(n.kind, NoticeKind::kPasswordExpiryReminder);
  EXPECT_EQ(n.params_json, R"({"days_left": 7})");  // jsonb's normal form
  EXPECT_EQ(n.dedup_key, "pw:ann:7d");
  EXPECT_EQ(n.created_at, kT0);
  EXPECT_EQ(n.attempts, 0);
  EXPECT_EQ(n.next_attempt_at, kT0);
  EXPECT_EQ(n.sent_at, std::nullopt);
}

TEST_F(CredentialStoreTest, ConcurrentEnqueueOfOneKeyQueuesOnce) {
  const std::string id = NewPerson("ann");
  constexpr int kThreads = 8;
  std::atomic<bool> go{false};
  std::atomic<int> queued{0};
  std::atomic<int> errors{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      while (!go.load()) std::this_thread::yield();
      auto q = store().EnqueueNotice(Notice(id, "grant:x:7d", kT0));
      if (!q.ok()) {
        ++errors;
      } else if (*q) {
        ++queued;
      }
    });
  }
  go = true;
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(errors.load(), 0);
  EXPECT_EQ(queued.load(), 1);
  EXPECT_THAT(store().NoticesOfUser(id), IsOkAndHolds(SizeIs(1)));
}

TEST_F(CredentialStoreTest, EnqueueNoticeRejectsBadInputNamingTheField) {
  const std::string id = NewPerson("ann");
  const auto names = [](absl::string_view field) {
    return StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(field));
  };
  EXPECT_THAT(store().EnqueueNotice(Notice(id, "", kT0)), names("dedup_key"));
  EXPECT_THAT(store().EnqueueNotice(Notice(id, std::string(201, 'k'), kT0)), names("dedup_key"));
  EXPECT_THAT(store().EnqueueNotice(Notice(id, "bad\xff", kT0)), names("dedup_key"));
  EXPECT_THAT(store().EnqueueNotice(Notice(id, std::string(200, 'k'), kT0)), IsOkAndHolds(true));
  int i = 0;
  for (const char* params : {"", "{", "not json", "[1,2]", "\"text\"", "42", "null",
                             R"({"a":"\u0000"})", "{\"a\":1}\x01"}) {
    NewNotice n = Notice(id, absl::StrCat("params:", ++i), kT0);
    n.params_json = params;
    EXPECT_THAT(store().EnqueueNotice(n), names("params_json")) << params;
  }
  NewNotice empty_object = Notice(id, "empty", kT0);
  empty_object.params_json = "{}";
  EXPECT_THAT(store().EnqueueNotice(empty_object), IsOkAndHolds(true));
  EXPECT_THAT(store().NoticesOfUser(id), IsOkAndHolds(SizeIs(2)));
}

TEST_F(CredentialStoreTest, DueNoticesAreUnsentAndDueOldestFirstLimited) {
  const std::string ann = NewPerson("ann");
  const std::string bob = NewPerson("bob");
  ASSERT_THAT(store().EnqueueNotice(Notice(ann, "second", kT0 + absl::Minutes(2))), IsOk());
  ASSERT_THAT(store().EnqueueNotice(Notice(bob, "first", kT0 + absl::Minutes(1))), IsOk());
  ASSERT_THAT(store().EnqueueNotice(Notice(ann, "third", kT0 + absl::Minutes(3))), IsOk());
  ASSERT_THAT(store().EnqueueNotice(Notice(bob, "sent", kT0)), IsOk());
  ASSERT_THAT(store().EnqueueNotice(Notice(bob, "future", kT0 + absl::Hours(1))), IsOk());
  auto bobs = store().NoticesOfUser(bob);
  ASSERT_THAT(bobs, IsOk());
  for (const NoticeRecord& n : *bobs) {
    if (n.dedup_key == "sent") {
      ASSERT_THAT(store().MarkNoticeSent(n.id, kT0), IsOk());
    }
  }

  const absl::Time now = kT0 + absl::Minutes(10);
  auto due = store().DueNotices(now, 10);
  ASSERT_THAT(due, IsOk());
  EXPECT_THAT(NoticeKeys(*due), ElementsAre("first", "second", "third"));
  due = store().DueNotices(now, 2);
  ASSERT_THAT(due, IsOk());
  EXPECT_THAT(NoticeKeys(*due), ElementsAre("first", "second"));
  // Due exactly at next_attempt_at.
  due = store().DueNotices(kT0 + absl::Minutes(2), 10);
  ASSERT_THAT(due, IsOk());
  EXPECT_THAT(NoticeKeys(*due), ElementsAre("first", "second"));
  EXPECT_THAT(store().DueNotices(now, 0),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("limit")));
}

TEST_F(CredentialStoreTest, MarkNoticeSentTakesItOffTheQueue) {
  const std::string id = NewPerson("ann");
  ASSERT_THAT(store().EnqueueNotice(Notice(id, "k", kT0)), IsOk());
  auto notices = store().NoticesOfUser(id);
  ASSERT_THAT(notices, IsOk());
  const std::string notice_id = (*notices)[0].id;
  const absl::Time sent = kT0 + absl::Minutes(1) + absl::Nanoseconds(3);
  ASSERT_THAT(store().MarkNoticeSent(notice_id, sent), IsOk());
  EXPECT_THAT(store().DueNotices(kT0 + absl::Hours(1), 10), IsOkAndHolds(IsEmpty()));
  ASSERT_THAT(store().MarkNoticeSent(notice_id, sent + absl::Minutes(1)), IsOk());
  notices = store().NoticesOfUser(id);
  ASSERT_THAT(notices, IsOk());
  EXPECT_EQ((*notices)[0].sent_at, TruncateToMicros(sent));

  EXPECT_THAT(store().MarkNoticeSent(base::NewUuid(), kT0), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(store().MarkNoticeSent("nope", kT0),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("notice_id")));
}

TEST_F(CredentialStoreTest, DeferNoticeCountsTheAttemptAndWaits) {
  const std::string id = NewPerson("ann");
  ASSERT_THAT(store().EnqueueNotice(Notice(id, "k", kT0)), IsOk());
  auto due = store().DueNotices(kT0, 10);
  ASSERT_THAT(due, IsOk());
  ASSERT_THAT(*due, SizeIs(1));
  const std::string notice_id = (*due)[0].id;
  ASSERT_THAT(store().DeferNotice(notice_id, kT0 + absl::Minutes(5)), IsOk());
  ASSERT_THAT(store().DeferNotice(notice_id, kT0 + absl::Minutes(15)), IsOk());
  EXPECT_THAT(store().DueNotices(kT0 + absl::Minutes(14), 10), IsOkAndHolds(IsEmpty()));
  due = store().DueNotices(kT0 + absl::Minutes(15), 10);
  ASSERT_THAT(due, IsOk());
  ASSERT_THAT(*due, SizeIs(1));
  EXPECT_EQ((*due)[0].attempts, 2);
  EXPECT_EQ((*due)[0].next_attempt_at, kT0 + absl::Minutes(15));
  EXPECT_EQ((*due)[0].created_at, kT0);

  EXPECT_THAT(store().DeferNotice(base::NewUuid(), kT0), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(store().DeferNotice("nope", kT0),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("notice_id")));
}

TEST_F(CredentialStoreTest, NoticesOfUserAreNewestFirstAndOnlyTheirs) {
  const std::string ann = NewPerson("ann");
  const std::string bob = NewPerson("bob");
  ASSERT_THAT(store().EnqueueNotice(Notice(ann, "old", kT0, NoticeKind::kPasswordChangeRequired)),
              IsOk());
  ASSERT_THAT(
      store().EnqueueNotice(Notice(ann, "new", kT0 + absl::Hours(1), NoticeKind::kGrantExpiry)),
      IsOk());
  ASSERT_THAT(store().EnqueueNotice(Notice(bob, "bob", kT0 + absl::Hours(2))), IsOk());
  auto notices = store().NoticesOfUser(ann);
  ASSERT_THAT(notices, IsOk());
  EXPECT_THAT(NoticeKeys(*notices), ElementsAre("new", "old"));
  EXPECT_EQ((*notices)[0].kind, NoticeKind::kGrantExpiry);
  EXPECT_EQ((*notices)[1].kind, NoticeKind::kPasswordChangeRequired);
  EXPECT_THAT(store().NoticesOfUser(NewPerson("cat")), IsOkAndHolds(IsEmpty()));
}

}  // namespace
}  // namespace crm::identity
