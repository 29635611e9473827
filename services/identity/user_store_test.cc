// The UserStore contract: one typed suite run against InMemoryUserStore and
// PgUserStore (on a database migrated with services/identity/migrations), so
// the fake cannot drift from PostgreSQL. PostgreSQL-only checks (query plans)
// follow at the end.
#include "services/identity/user_store.h"

#include <cstdlib>
#include <memory>
#include <optional>
#include <pqxx/binarystring>
#include <pqxx/result>
#include <pqxx/transaction>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "libs/base/clock.h"
#include "libs/pg/migrate.h"
#include "libs/pg/pool.h"
#include "libs/testing/pg_test_database.h"
#include "libs/testing/status_matchers.h"
#include "services/identity/in_memory_user_store.h"
#include "services/identity/pg_user_store.h"

namespace crm::identity {
namespace {

using ::crm::testing::CreateMigratedDatabase;
using ::crm::testing::IsOk;
using ::crm::testing::MigratedDatabase;
using ::crm::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::SizeIs;

// A blind index / ciphertext stand-in: distinct bytes per label, including a
// NUL and high bytes so that binary handling is exercised.
std::string Bytes(absl::string_view label, size_t size = 32) {
  std::string out = absl::StrCat(std::string("\x00\xff", 2), label);
  out.resize(size, '\x7f');
  return out;
}

NewUser Person(absl::string_view name) {
  NewUser u;
  u.kind = UserKind::kPerson;
  u.username_index = Bytes(absl::StrCat("u:", name));
  u.username_ciphertext = Bytes(absl::StrCat("uc:", name), 60);
  u.display_name_ciphertext = Bytes(absl::StrCat("dn:", name), 70);
  u.email_index = Bytes(absl::StrCat("e:", name));
  u.email_ciphertext = Bytes(absl::StrCat("ec:", name), 80);
  u.password_hash = absl::StrCat("$argon2id$v=19$m=19456,t=2,p=1$", name);
  u.must_change_password = true;
  return u;
}

NewUser ServiceAccount(absl::string_view name) {
  NewUser u;
  u.kind = UserKind::kServiceAccount;
  u.username_index = Bytes(absl::StrCat("u:", name));
  u.username_ciphertext = Bytes(absl::StrCat("uc:", name), 60);
  u.display_name_ciphertext = Bytes(absl::StrCat("dn:", name), 70);
  return u;
}

// ---- The two implementations behind one face ---------------------------------

class InMemoryEnv {
 public:
  static void SetUpSuite() {}
  static void TearDownSuite() {}
  absl::Status Init(base::Clock& clock) {
    store_ = std::make_unique<InMemoryUserStore>(clock);
    return absl::OkStatus();
  }
  UserStore& store() { return *store_; }

 private:
  std::unique_ptr<InMemoryUserStore> store_;
};

class PgEnv {
 public:
  // One database for the suite, migrated with the real migrations; each test
  // starts from empty tables.
  static void SetUpSuite() {
    auto migrated = CreateMigratedDatabase("identity", "identity_store", 4);
    ASSERT_THAT(migrated, IsOk());
    migrated_ = new MigratedDatabase(std::move(*migrated));
    pool_ = migrated_->pool.get();
  }
  static void TearDownSuite() {
    pool_ = nullptr;
    delete migrated_;
    migrated_ = nullptr;
  }
  absl::Status Init(base::Clock& clock) {
    if (pool_ == nullptr) return absl::FailedPreconditionError("suite set-up failed");
    absl::Status s = pool_->Transact([](pqxx::work& tx) {
      tx.exec("TRUNCATE users, teams, team_members CASCADE");
      return absl::OkStatus();
    });
    if (!s.ok()) return s;
    store_ = std::make_unique<PgUserStore>(*pool_, clock);
    return absl::OkStatus();
  }
  UserStore& store() { return *store_; }
  static pg::Pool& pool() { return *pool_; }

 private:
  static MigratedDatabase* migrated_;
  static pg::Pool* pool_;
  std::unique_ptr<PgUserStore> store_;
};
MigratedDatabase* PgEnv::migrated_ = nullptr;
pg::Pool* PgEnv::pool_ = nullptr;

template <typename Env>
class UserStoreContractTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { Env::SetUpSuite(); }
  static void TearDownTestSuite() { Env::TearDownSuite(); }
  void SetUp() override { ASSERT_THAT(env_.Init(clock_), IsOk()); }

  UserStore& store() { return env_.store(); }

  UserRecord MustCreate(const NewUser& u) {
    auto rec = store().CreateUser(u);
    EXPECT_THAT(rec, IsOk());
    return rec.ok() ? *rec : UserRecord{};
  }

  // Every id of every page, following next_page_token to the end.
  std::vector<std::string> AllPages(const UserFilter& filter, int page_size,
                                    std::vector<size_t>* sizes = nullptr) {
    std::vector<std::string> ids;
    std::string token;
    for (int guard = 0; guard < 100; ++guard) {
      auto page = store().ListUsers(filter, page_size, token);
      EXPECT_THAT(page, IsOk());
      if (!page.ok()) break;
      if (sizes != nullptr) sizes->push_back(page->users.size());
      for (const UserRecord& u : page->users) ids.push_back(u.id);
      token = page->next_page_token;
      if (token.empty()) break;
    }
    return ids;
  }

  // Microsecond precision with a sub-microsecond part, to check truncation.
  base::FakeClock clock_{absl::FromUnixNanos(1'800'000'000'123'456'789)};
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
TYPED_TEST_SUITE(UserStoreContractTest, Implementations, ImplName);

// ---- Users -------------------------------------------------------------------

TYPED_TEST(UserStoreContractTest, CreatedPersonReadsBackByIdAndUsernameIndex) {
  const NewUser in = Person("alice");
  CRM_ASSERT_OK_AND_ASSIGN(UserRecord created, this->store().CreateUser(in));
  EXPECT_TRUE(base::IsUuid(created.id));
  EXPECT_EQ(created.kind, UserKind::kPerson);
  EXPECT_EQ(created.username_index, in.username_index);
  EXPECT_EQ(created.username_ciphertext, in.username_ciphertext);
  EXPECT_EQ(created.display_name_ciphertext, in.display_name_ciphertext);
  EXPECT_EQ(created.email_index, in.email_index);
  EXPECT_EQ(created.email_ciphertext, in.email_ciphertext);
  EXPECT_EQ(created.password_hash, in.password_hash);
  EXPECT_TRUE(created.must_change_password);
  EXPECT_EQ(created.status, UserStatus::kActive);
  const absl::Time now_us = absl::FromUnixMicros(1'800'000'000'123'456);
  EXPECT_EQ(created.created_at, now_us);
  EXPECT_EQ(created.updated_at, now_us);
  EXPECT_EQ(created.password_changed_at, now_us);

  CRM_ASSERT_OK_AND_ASSIGN(UserRecord by_id, this->store().GetUser(created.id));
  EXPECT_EQ(by_id, created);
  CRM_ASSERT_OK_AND_ASSIGN(UserRecord by_index,
                           this->store().FindUserByUsernameIndex(in.username_index));
  EXPECT_EQ(by_index, created);
}

TYPED_TEST(UserStoreContractTest, ServiceAccountHasNoEmailOrPassword) {
  CRM_ASSERT_OK_AND_ASSIGN(UserRecord created, this->store().CreateUser(ServiceAccount("shop")));
  CRM_ASSERT_OK_AND_ASSIGN(UserRecord got, this->store().GetUser(created.id));
  EXPECT_EQ(got.kind, UserKind::kServiceAccount);
  EXPECT_EQ(got.email_index, std::nullopt);
  EXPECT_EQ(got.email_ciphertext, std::nullopt);
  EXPECT_EQ(got.password_hash, std::nullopt);
  EXPECT_EQ(got.password_changed_at, std::nullopt);
}

TYPED_TEST(UserStoreContractTest, UpperCaseIdFindsTheUser) {
  const UserRecord u = this->MustCreate(Person("bob"));
  EXPECT_THAT(this->store().GetUser(absl::AsciiStrToUpper(u.id)), IsOk());
}

TYPED_TEST(UserStoreContractTest, DuplicateUsernameIndexIsAlreadyExists) {
  this->MustCreate(Person("carol"));
  NewUser again = Person("carol2");
  again.username_index = Person("carol").username_index;
  EXPECT_THAT(this->store().CreateUser(again),
              StatusIs(absl::StatusCode::kAlreadyExists, HasSubstr("username")));
  // Also when the other one is a service account.
  NewUser sa = ServiceAccount("x");
  sa.username_index = again.username_index;
  EXPECT_THAT(this->store().CreateUser(sa), StatusIs(absl::StatusCode::kAlreadyExists));
}

TYPED_TEST(UserStoreContractTest, ConcurrentCreatesOfOneUsernameLetExactlyOneWin) {
  constexpr int kThreads = 4;
  std::vector<absl::Status> results(kThreads);
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([this, i, &results] {
      NewUser u = Person(absl::StrCat("race", i));  // distinct e-mails
      u.username_index = Person("race").username_index;
      results[i] = this->store().CreateUser(u).status();
    });
  }
  for (std::thread& t : threads) t.join();
  int ok = 0;
  for (const absl::Status& s : results) {
    if (s.ok()) {
      ++ok;
    } else {
      EXPECT_THAT(s, StatusIs(absl::StatusCode::kAlreadyExists));
    }
  }
  EXPECT_EQ(ok, 1);
}

TYPED_TEST(UserStoreContractTest, DuplicateEmailIndexIsAlreadyExists) {
  this->MustCreate(Person("dave"));
  NewUser again = Person("dave2");
  again.email_index = Person("dave").email_index;
  EXPECT_THAT(this->store().CreateUser(again),
              StatusIs(absl::StatusCode::kAlreadyExists, HasSubstr("email")));
}

TYPED_TEST(UserStoreContractTest, MalformedNewUserIsInvalidArgumentNamingTheField) {
  NewUser short_index = Person("e");
  short_index.username_index = "short";
  EXPECT_THAT(this->store().CreateUser(short_index),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("username_index")));
  NewUser no_email = Person("f");
  no_email.email_index.reset();
  EXPECT_THAT(this->store().CreateUser(no_email),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("email_index")));
  NewUser no_password = Person("g");
  no_password.password_hash.reset();
  EXPECT_THAT(this->store().CreateUser(no_password),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("password_hash")));
  NewUser sa_with_password = ServiceAccount("h");
  sa_with_password.password_hash = "$argon2id$x";
  EXPECT_THAT(this->store().CreateUser(sa_with_password),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("password_hash")));
  NewUser no_name = Person("i");
  no_name.display_name_ciphertext.clear();
  EXPECT_THAT(this->store().CreateUser(no_name),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("display_name")));
  // Nothing was stored.
  CRM_ASSERT_OK_AND_ASSIGN(UserPage page, this->store().ListUsers({}, 0, ""));
  EXPECT_THAT(page.users, IsEmpty());
}

TYPED_TEST(UserStoreContractTest, UnknownUserIsNotFoundAndMalformedIdNamesUserId) {
  EXPECT_THAT(this->store().GetUser("0b6f7c52-5d2b-4a53-9c39-3f2f1d0f6a11"),
              StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(this->store().GetUser("not-a-uuid"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("user_id")));
  EXPECT_THAT(this->store().FindUserByUsernameIndex(Bytes("u:nobody")),
              StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(this->store().FindUserByUsernameIndex(""), StatusIs(absl::StatusCode::kNotFound));
}

TYPED_TEST(UserStoreContractTest, ListPagesInCreationOrderWithoutGapsOrRepeats) {
  std::vector<std::string> expected;
  std::vector<UserRecord> created;
  for (int i = 0; i < 7; ++i) {
    // Users 2 and 3 (and 5 and 6) share a timestamp: the id breaks the tie.
    if (i != 3 && i != 6) this->clock_.Advance(absl::Seconds(1));
    created.push_back(this->MustCreate(Person(absl::StrCat("p", i))));
  }
  std::sort(created.begin(), created.end(), [](const UserRecord& a, const UserRecord& b) {
    return std::tie(a.created_at, a.id) < std::tie(b.created_at, b.id);
  });
  for (const UserRecord& u : created) expected.push_back(u.id);

  std::vector<size_t> sizes;
  EXPECT_EQ(this->AllPages({}, 3, &sizes), expected);
  EXPECT_THAT(sizes, ElementsAre(3, 3, 1));
  sizes.clear();
  EXPECT_EQ(this->AllPages({}, 7, &sizes), expected);
  EXPECT_THAT(sizes, ElementsAre(7)) << "an exactly full last page has no next token";
  EXPECT_EQ(this->AllPages({}, 1), expected);
}

TYPED_TEST(UserStoreContractTest, PageSizeZeroMeansDefaultAndOverMaxIsCapped) {
  for (int i = 0; i < kDefaultUserPageSize + 1; ++i) {
    this->MustCreate(ServiceAccount(absl::StrCat("s", i)));
  }
  CRM_ASSERT_OK_AND_ASSIGN(UserPage page, this->store().ListUsers({}, 0, ""));
  EXPECT_THAT(page.users, SizeIs(kDefaultUserPageSize));
  EXPECT_FALSE(page.next_page_token.empty());
  CRM_ASSERT_OK_AND_ASSIGN(UserPage all, this->store().ListUsers({}, 1'000'000, ""));
  EXPECT_THAT(all.users, SizeIs(kDefaultUserPageSize + 1));
  EXPECT_TRUE(all.next_page_token.empty());
  EXPECT_THAT(this->store().ListUsers({}, -1, ""),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("page_size")));
}

TYPED_TEST(UserStoreContractTest, ListFiltersByStatusKindAndTeam) {
  const UserRecord a = this->MustCreate(Person("a"));
  this->clock_.Advance(absl::Seconds(1));
  const UserRecord b = this->MustCreate(Person("b"));
  this->clock_.Advance(absl::Seconds(1));
  const UserRecord s = this->MustCreate(ServiceAccount("s"));
  ASSERT_THAT(this->store().UpdateUserStatus(b.id, UserStatus::kDisabled), IsOk());
  CRM_ASSERT_OK_AND_ASSIGN(TeamRecord team, this->store().CreateTeam({.name = "Sales"}));
  ASSERT_THAT(this->store().AddTeamMember(team.id, s.id), IsOk());
  ASSERT_THAT(this->store().AddTeamMember(team.id, b.id), IsOk());

  EXPECT_THAT(this->AllPages({.status = UserStatus::kActive}, 1), ElementsAre(a.id, s.id));
  EXPECT_THAT(this->AllPages({.status = UserStatus::kDisabled}, 1), ElementsAre(b.id));
  EXPECT_THAT(this->AllPages({.kind = UserKind::kPerson}, 1), ElementsAre(a.id, b.id));
  EXPECT_THAT(this->AllPages({.kind = UserKind::kServiceAccount}, 1), ElementsAre(s.id));
  EXPECT_THAT(this->AllPages({.team_id = team.id}, 1), ElementsAre(b.id, s.id));
  EXPECT_THAT(this->AllPages({.status = UserStatus::kActive, .team_id = team.id}, 1),
              ElementsAre(s.id));
  EXPECT_THAT(this->store().ListUsers({.team_id = "nope"}, 0, ""),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("team_id")));
}

TYPED_TEST(UserStoreContractTest, BadPageTokenIsInvalidArgumentNamingPageToken) {
  for (int i = 0; i < 3; ++i) this->MustCreate(Person(absl::StrCat("t", i)));
  CRM_ASSERT_OK_AND_ASSIGN(UserPage first, this->store().ListUsers({}, 1, ""));
  ASSERT_FALSE(first.next_page_token.empty());
  const auto invalid = StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("page_token"));
  EXPECT_THAT(this->store().ListUsers({}, 1, "garbage!"), invalid);
  EXPECT_THAT(this->store().ListUsers({}, 1, absl::WebSafeBase64Escape("u1|x|y|//")), invalid);
  EXPECT_THAT(this->store().ListUsers(
                  {}, 1, absl::WebSafeBase64Escape("u1|5|0b6f7c52-5d2b-4a53-9c39-3f2f1d0f6a11")),
              invalid);
  // A token issued for another filter.
  EXPECT_THAT(this->store().ListUsers({.status = UserStatus::kDisabled}, 1, first.next_page_token),
              invalid);
  // The genuine token still works.
  EXPECT_THAT(this->store().ListUsers({}, 1, first.next_page_token), IsOk());
}

TYPED_TEST(UserStoreContractTest, StatusChangeIsStoredAndBumpsUpdatedAt) {
  const UserRecord u = this->MustCreate(Person("dis"));
  this->clock_.Advance(absl::Minutes(5));
  CRM_ASSERT_OK_AND_ASSIGN(UserRecord disabled,
                           this->store().UpdateUserStatus(u.id, UserStatus::kDisabled));
  EXPECT_EQ(disabled.status, UserStatus::kDisabled);
  EXPECT_EQ(disabled.updated_at, u.updated_at + absl::Minutes(5));
  EXPECT_EQ(disabled.created_at, u.created_at);
  CRM_ASSERT_OK_AND_ASSIGN(UserRecord got, this->store().GetUser(u.id));
  EXPECT_EQ(got, disabled);
  CRM_ASSERT_OK_AND_ASSIGN(UserRecord enabled,
                           this->store().UpdateUserStatus(u.id, UserStatus::kActive));
  EXPECT_EQ(enabled.status, UserStatus::kActive);
  EXPECT_THAT(
      this->store().UpdateUserStatus("0b6f7c52-5d2b-4a53-9c39-3f2f1d0f6a11", UserStatus::kActive),
      StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(this->store().UpdateUserStatus("x", UserStatus::kActive),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("user_id")));
}

TYPED_TEST(UserStoreContractTest, DeleteRemovesUserAndMembershipsAndFreesTheUsername) {
  const UserRecord u = this->MustCreate(Person("gone"));
  const UserRecord keep = this->MustCreate(Person("keep"));
  CRM_ASSERT_OK_AND_ASSIGN(TeamRecord team, this->store().CreateTeam({.name = "T"}));
  ASSERT_THAT(this->store().AddTeamMember(team.id, u.id), IsOk());
  ASSERT_THAT(this->store().AddTeamMember(team.id, keep.id), IsOk());

  EXPECT_THAT(this->store().DeleteUser(u.id), IsOk());
  EXPECT_THAT(this->store().GetUser(u.id), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(this->store().FindUserByUsernameIndex(u.username_index),
              StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(this->store().ListTeamMembers(team.id),
              crm::testing::IsOkAndHolds(ElementsAre(keep.id)));
  EXPECT_THAT(this->store().DeleteUser(u.id), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(this->store().CreateUser(Person("gone")), IsOk());
}

// ---- Teams -------------------------------------------------------------------

TYPED_TEST(UserStoreContractTest, TeamsAreCreatedListedByNameAndUniqueIgnoringCase) {
  CRM_ASSERT_OK_AND_ASSIGN(TeamRecord sales,
                           this->store().CreateTeam({.name = "Sales", .description = "north"}));
  CRM_ASSERT_OK_AND_ASSIGN(TeamRecord audit, this->store().CreateTeam({.name = "audit"}));
  EXPECT_EQ(sales.created_at, absl::FromUnixMicros(1'800'000'000'123'456));
  EXPECT_THAT(this->store().GetTeam(sales.id), crm::testing::IsOkAndHolds(sales));
  EXPECT_THAT(this->store().CreateTeam({.name = "SALES"}),
              StatusIs(absl::StatusCode::kAlreadyExists));
  EXPECT_THAT(this->store().CreateTeam({.name = ""}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("name")));
  EXPECT_THAT(this->store().CreateTeam({.name = std::string(101, 'x')}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("name")));
  EXPECT_THAT(this->store().ListTeams(std::nullopt),
              crm::testing::IsOkAndHolds(ElementsAre(audit, sales)));
  EXPECT_THAT(this->store().GetTeam("0b6f7c52-5d2b-4a53-9c39-3f2f1d0f6a11"),
              StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(this->store().GetTeam("bad"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("team_id")));
}

TYPED_TEST(UserStoreContractTest, MembershipIsIdempotentAndListedBothWays) {
  const UserRecord u = this->MustCreate(Person("m"));
  const UserRecord v = this->MustCreate(Person("n"));
  CRM_ASSERT_OK_AND_ASSIGN(TeamRecord t1, this->store().CreateTeam({.name = "one"}));
  CRM_ASSERT_OK_AND_ASSIGN(TeamRecord t2, this->store().CreateTeam({.name = "two"}));
  ASSERT_THAT(this->store().AddTeamMember(t1.id, u.id), IsOk());
  ASSERT_THAT(this->store().AddTeamMember(t1.id, u.id), IsOk());
  ASSERT_THAT(this->store().AddTeamMember(t2.id, u.id), IsOk());
  ASSERT_THAT(this->store().AddTeamMember(t2.id, v.id), IsOk());

  std::vector<std::string> u_teams = {t1.id, t2.id};
  std::sort(u_teams.begin(), u_teams.end());
  EXPECT_THAT(this->store().ListTeamIdsOfUser(u.id), crm::testing::IsOkAndHolds(u_teams));
  std::vector<std::string> t2_members = {u.id, v.id};
  std::sort(t2_members.begin(), t2_members.end());
  EXPECT_THAT(this->store().ListTeamMembers(t2.id), crm::testing::IsOkAndHolds(t2_members));
  EXPECT_THAT(this->store().ListTeams(v.id), crm::testing::IsOkAndHolds(ElementsAre(t2)));

  ASSERT_THAT(this->store().RemoveTeamMember(t2.id, u.id), IsOk());
  ASSERT_THAT(this->store().RemoveTeamMember(t2.id, u.id), IsOk());
  EXPECT_THAT(this->store().ListTeamIdsOfUser(u.id),
              crm::testing::IsOkAndHolds(ElementsAre(t1.id)));
  EXPECT_THAT(this->store().ListTeams(u.id), crm::testing::IsOkAndHolds(ElementsAre(t1)));

  const std::string unknown = "0b6f7c52-5d2b-4a53-9c39-3f2f1d0f6a11";
  EXPECT_THAT(this->store().AddTeamMember(unknown, u.id),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("team")));
  EXPECT_THAT(this->store().AddTeamMember(t1.id, unknown),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("user")));
  EXPECT_THAT(this->store().RemoveTeamMember(unknown, u.id),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("team")));
  EXPECT_THAT(this->store().AddTeamMember(t1.id, "bad"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("user_id")));
  EXPECT_THAT(this->store().ListTeamIdsOfUser(unknown), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(this->store().ListTeamMembers(unknown), StatusIs(absl::StatusCode::kNotFound));
}

TYPED_TEST(UserStoreContractTest, DeletingATeamRemovesItsMemberships) {
  const UserRecord u = this->MustCreate(Person("o"));
  CRM_ASSERT_OK_AND_ASSIGN(TeamRecord t, this->store().CreateTeam({.name = "temp"}));
  ASSERT_THAT(this->store().AddTeamMember(t.id, u.id), IsOk());
  EXPECT_THAT(this->store().DeleteTeam(t.id), IsOk());
  EXPECT_THAT(this->store().GetTeam(t.id), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(this->store().ListTeamIdsOfUser(u.id), crm::testing::IsOkAndHolds(IsEmpty()));
  EXPECT_THAT(this->store().DeleteTeam(t.id), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(this->store().CreateTeam({.name = "temp"}), IsOk());
}

// ---- PostgreSQL only -----------------------------------------------------------

class PgUserStoreTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { PgEnv::SetUpSuite(); }
  static void TearDownTestSuite() { PgEnv::TearDownSuite(); }
  void SetUp() override { ASSERT_THAT(env_.Init(clock_), IsOk()); }

  // The plan of `sql` with $1 bound to `param` (bytea), sequential scans
  // disabled so that only a missing index yields a Seq Scan.
  absl::StatusOr<std::string> Plan(const std::string& sql, const std::string& param) {
    return PgEnv::pool().TransactValue<std::string>(
        [&](pqxx::work& tx) -> absl::StatusOr<std::string> {
          tx.exec("SET LOCAL enable_seqscan = off");
          std::vector<std::string> lines;
          for (const auto& row :
               tx.exec_params(absl::StrCat("EXPLAIN ", sql), pqxx::binarystring(param))) {
            lines.push_back(row[0].as<std::string>());
          }
          return absl::StrJoin(lines, "\n");
        });
  }

  base::FakeClock clock_;
  PgEnv env_;
};

TEST_F(PgUserStoreTest, UsernameLookupUsesTheBlindIndex) {
  for (int i = 0; i < 20; ++i) {
    ASSERT_THAT(env_.store().CreateUser(Person(absl::StrCat("plan", i))), IsOk());
  }
  CRM_ASSERT_OK_AND_ASSIGN(std::string plan, Plan(PgUserStore::FindByUsernameIndexSql(),
                                                  Person("plan3").username_index));
  EXPECT_THAT(plan, HasSubstr("users_username_index_key"));
  EXPECT_THAT(plan, ::testing::Not(HasSubstr("Seq Scan")));
}

}  // namespace
}  // namespace crm::identity
