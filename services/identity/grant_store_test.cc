// GrantStore on a real PostgreSQL migrated with services/identity/migrations:
// roles and MFA flags, grants (windows, paging, revocation, extension,
// notices, races) and service-account bindings. Users come from PgUserStore.
#include "services/identity/grant_store.h"

#include <algorithm>
#include <atomic>
#include <memory>
#include <optional>
#include <pqxx/result>
#include <pqxx/transaction>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "libs/base/clock.h"
#include "libs/base/uuid.h"
#include "libs/testing/pg_test_database.h"
#include "libs/testing/status_matchers.h"
#include "services/identity/pg_user_store.h"

namespace crm::identity {
namespace {

using ::crm::testing::CreateMigratedDatabase;
using ::crm::testing::IsOk;
using ::crm::testing::IsOkAndHolds;
using ::crm::testing::MigratedDatabase;
using ::crm::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::ElementsAreArray;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using ::testing::SizeIs;

// A time with a sub-microsecond part, to check truncation.
const absl::Time kT0 = absl::FromUnixNanos(1'800'000'000'123'456'789);
const absl::Time kT0Micros = absl::FromUnixMicros(1'800'000'000'123'456);
const char kUnknownId[] = "0b6f7c52-5d2b-4a53-9c39-3f2f1d0f6a11";

std::string Bytes(absl::string_view label, size_t size = 32) {
  std::string out = absl::StrCat(std::string("\x00\xff", 2), label);
  out.resize(size, '\x7f');
  return out;
}

NewUser Person(absl::string_view name) {
  NewUser u;
  u.kind = UserKind::kPerson;
  u.username_index = Bytes(absl::StrCat("u:", name));
  u.username_ciphertext = Bytes(absl::StrCat("uc:", name));
  u.display_name_ciphertext = Bytes(absl::StrCat("dn:", name));
  u.email_index = Bytes(absl::StrCat("e:", name));
  u.email_ciphertext = Bytes(absl::StrCat("ec:", name));
  u.password_hash = "$argon2id$v=19$m=19456,t=2,p=1$x";
  return u;
}

NewUser ServiceAccount(absl::string_view name) {
  NewUser u;
  u.kind = UserKind::kServiceAccount;
  u.username_index = Bytes(absl::StrCat("u:", name));
  u.username_ciphertext = Bytes(absl::StrCat("uc:", name));
  u.display_name_ciphertext = Bytes(absl::StrCat("dn:", name));
  return u;
}

std::vector<std::string> Names(const std::vector<Role>& roles) {
  std::vector<std::string> out;
  for (const Role& r : roles) out.push_back(r.name);
  return out;
}

std::vector<std::string> Ids(const std::vector<GrantRecord>& grants) {
  std::vector<std::string> out;
  for (const GrantRecord& g : grants) out.push_back(g.grant.id);
  return out;
}

class GrantStoreTest : public ::testing::Test {
 protected:
  // One database for the suite; each test starts from empty tables.
  static void SetUpTestSuite() {
    auto migrated = CreateMigratedDatabase("identity", "grant_store", 8);
    ASSERT_THAT(migrated, IsOk());
    migrated_ = new MigratedDatabase(std::move(*migrated));
  }
  static void TearDownTestSuite() {
    delete migrated_;
    migrated_ = nullptr;
  }

  void SetUp() override {
    ASSERT_NE(migrated_, nullptr) << "suite set-up failed";
    ASSERT_THAT(pool().Transact([](pqxx::work& tx) {
      tx.exec("TRUNCATE users, roles, role_mfa_requirements, grants, service_accounts CASCADE");
      return absl::OkStatus();
    }),
                IsOk());
    users_ = std::make_unique<PgUserStore>(pool(), clock_);
    store_ = std::make_unique<GrantStore>(pool());
    admin_ = NewPerson("admin");
  }

  static pg::Pool& pool() { return *migrated_->pool; }
  GrantStore& store() { return *store_; }

  std::string NewPerson(absl::string_view name) {
    auto u = users_->CreateUser(Person(name));
    EXPECT_THAT(u, IsOk());
    return u.ok() ? u->id : std::string(kUnknownId);
  }
  std::string NewServiceAccount(absl::string_view name) {
    auto u = users_->CreateUser(ServiceAccount(name));
    EXPECT_THAT(u, IsOk());
    return u.ok() ? u->id : std::string(kUnknownId);
  }

  Grant MakeGrant(const std::string& user, absl::string_view role = "sales",
                  std::optional<absl::Time> not_before = std::nullopt,
                  std::optional<absl::Time> not_after = std::nullopt) {
    Grant g;
    g.user_id = user;
    g.role = std::string(role);
    g.not_before = not_before;
    g.not_after = not_after;
    g.granted_by = admin_;
    return g;
  }

  GrantRecord MustGrant(const Grant& g, absl::Time created = kT0) {
    auto rec = store().CreateGrant(g, Bytes("why"), created);
    EXPECT_THAT(rec, IsOk());
    return rec.ok() ? *rec : GrantRecord{};
  }

  // Every grant id of every ListGrants page, following the tokens.
  std::vector<std::string> AllGrantPages(absl::string_view user, bool include_inactive,
                                         absl::Time now, int page_size,
                                         std::vector<size_t>* sizes = nullptr) {
    std::vector<std::string> ids;
    std::string token;
    for (int guard = 0; guard < 100; ++guard) {
      auto page = store().ListGrants(user, include_inactive, now, page_size, token);
      EXPECT_THAT(page, IsOk());
      if (!page.ok()) break;
      if (sizes != nullptr) sizes->push_back(page->grants.size());
      for (const std::string& id : Ids(page->grants)) ids.push_back(id);
      token = page->next_page_token;
      if (token.empty()) break;
    }
    return ids;
  }

  static MigratedDatabase* migrated_;
  base::FakeClock clock_{kT0};
  std::unique_ptr<PgUserStore> users_;
  std::unique_ptr<GrantStore> store_;
  std::string admin_;
};
MigratedDatabase* GrantStoreTest::migrated_ = nullptr;

// ---- Roles -----------------------------------------------------------------

TEST_F(GrantStoreTest, ListRolesGivesBuiltinsInOrderThenCustomRolesByName) {
  CRM_ASSERT_OK_AND_ASSIGN(Role zeta, MakeCustomRole("zeta", {"contacts.read"}, false));
  CRM_ASSERT_OK_AND_ASSIGN(Role alpha, MakeCustomRole("alpha", {"audit.read"}, true));
  ASSERT_THAT(store().CreateRole(zeta, admin_, kT0), IsOk());
  ASSERT_THAT(store().CreateRole(alpha, admin_, kT0), IsOk());
  ASSERT_THAT(store().SetRoleRequiresMfa("dpo", true, admin_, kT0), IsOk());

  CRM_ASSERT_OK_AND_ASSIGN(std::vector<Role> roles, store().ListRoles());
  std::vector<std::string> expected = Names(BuiltinRoles());
  expected.push_back("alpha");
  expected.push_back("zeta");
  EXPECT_EQ(Names(roles), expected);
  const std::vector<Role> builtins = BuiltinRoles();
  for (size_t i = 0; i < builtins.size(); ++i) {
    EXPECT_TRUE(roles[i].builtin) << roles[i].name;
    EXPECT_EQ(roles[i].permissions, builtins[i].permissions) << roles[i].name;
    EXPECT_EQ(roles[i].require_mfa, roles[i].name == "dpo") << roles[i].name;
  }
  EXPECT_FALSE(roles[6].builtin);
  EXPECT_TRUE(roles[6].require_mfa);
  EXPECT_FALSE(roles[7].require_mfa);
}

TEST_F(GrantStoreTest, CustomRoleRoundTripsExactly) {
  CRM_ASSERT_OK_AND_ASSIGN(
      Role in,
      MakeCustomRole("dsr-desk_2", {"dsr.manage", "contacts.read.all", "audit.read"}, true));
  ASSERT_THAT(store().CreateRole(in, admin_, kT0), IsOk());
  CRM_ASSERT_OK_AND_ASSIGN(std::vector<Role> roles, store().ListRoles());
  const Role* out = FindRole(roles, "dsr-desk_2");
  ASSERT_NE(out, nullptr);
  EXPECT_EQ(out->name, in.name);
  EXPECT_EQ(out->permissions, in.permissions);
  EXPECT_FALSE(out->builtin);
  EXPECT_TRUE(out->require_mfa);
  // Also with no creator (the system).
  CRM_ASSERT_OK_AND_ASSIGN(Role every, MakeCustomRole("every", {"identity.admin"}, false));
  every.permissions = AllPermissions();
  ASSERT_THAT(store().CreateRole(every, "", kT0), IsOk());
  CRM_ASSERT_OK_AND_ASSIGN(roles, store().ListRoles());
  ASSERT_NE(FindRole(roles, "every"), nullptr);
  EXPECT_EQ(FindRole(roles, "every")->permissions, AllPermissions());
}

TEST_F(GrantStoreTest, CreateRoleRefusesTakenBuiltinAndMalformedNames) {
  CRM_ASSERT_OK_AND_ASSIGN(Role role, MakeCustomRole("helpdesk", {"contacts.read"}, false));
  ASSERT_THAT(store().CreateRole(role, admin_, kT0), IsOk());
  EXPECT_THAT(store().CreateRole(role, admin_, kT0),
              StatusIs(absl::StatusCode::kAlreadyExists, HasSubstr("name")));

  Role builtin = role;
  builtin.name = "admin";
  EXPECT_THAT(store().CreateRole(builtin, admin_, kT0),
              StatusIs(absl::StatusCode::kAlreadyExists, HasSubstr("name")));
  Role malformed = role;
  malformed.name = "Help Desk";
  EXPECT_THAT(store().CreateRole(malformed, admin_, kT0),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("name")));
  Role unknown_permission = role;
  unknown_permission.name = "other";
  unknown_permission.permissions.insert("contacts.read,audit.read");
  EXPECT_THAT(store().CreateRole(unknown_permission, admin_, kT0),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("permissions")));
  Role fine = role;
  fine.name = "fine";
  EXPECT_THAT(store().CreateRole(fine, "nobody", kT0),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("created_by")));
  EXPECT_THAT(store().CreateRole(fine, kUnknownId, kT0),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("created_by")));

  // Only helpdesk was stored: the built-in name never reached the table.
  CRM_ASSERT_OK_AND_ASSIGN(std::vector<Role> roles, store().ListRoles());
  EXPECT_THAT(roles, SizeIs(BuiltinRoles().size() + 1));
  EXPECT_EQ(roles.back().name, "helpdesk");
}

TEST_F(GrantStoreTest, ConcurrentCreatesOfOneRoleLetExactlyOneWin) {
  CRM_ASSERT_OK_AND_ASSIGN(Role role, MakeCustomRole("racer", {"contacts.read"}, false));
  constexpr int kThreads = 6;
  std::vector<absl::Status> results(kThreads);
  std::atomic<bool> go{false};
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&, i] {
      while (!go.load()) std::this_thread::yield();
      results[i] = store().CreateRole(role, admin_, kT0);
    });
  }
  go = true;
  for (std::thread& t : threads) t.join();
  int ok = 0;
  for (const absl::Status& s : results) {
    if (s.ok()) {
      ++ok;
    } else {
      EXPECT_THAT(s, StatusIs(absl::StatusCode::kAlreadyExists, HasSubstr("name")));
    }
  }
  EXPECT_EQ(ok, 1);
}

TEST_F(GrantStoreTest, SetRoleRequiresMfaForBuiltinAndCustomRoles) {
  CRM_ASSERT_OK_AND_ASSIGN(Role custom, MakeCustomRole("helpdesk", {"contacts.read"}, false));
  ASSERT_THAT(store().CreateRole(custom, admin_, kT0), IsOk());
  auto mfa_of = [&](absl::string_view name) {
    auto roles = store().ListRoles();
    EXPECT_THAT(roles, IsOk());
    const Role* r = roles.ok() ? FindRole(*roles, name) : nullptr;
    return r != nullptr && r->require_mfa;
  };

  ASSERT_THAT(store().SetRoleRequiresMfa("auditor", true, admin_, kT0), IsOk());
  ASSERT_THAT(store().SetRoleRequiresMfa("helpdesk", true, admin_, kT0), IsOk());
  EXPECT_TRUE(mfa_of("auditor"));
  EXPECT_TRUE(mfa_of("helpdesk"));
  EXPECT_FALSE(mfa_of("sales"));
  // Setting it twice is fine (the system may set it too).
  ASSERT_THAT(store().SetRoleRequiresMfa("auditor", true, "", kT0 + absl::Seconds(1)), IsOk());
  EXPECT_TRUE(mfa_of("auditor"));

  ASSERT_THAT(store().SetRoleRequiresMfa("auditor", false, admin_, kT0), IsOk());
  ASSERT_THAT(store().SetRoleRequiresMfa("helpdesk", false, admin_, kT0), IsOk());
  EXPECT_FALSE(mfa_of("auditor"));
  EXPECT_FALSE(mfa_of("helpdesk"));

  EXPECT_THAT(store().SetRoleRequiresMfa("nosuchrole", true, admin_, kT0),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("role")));
  EXPECT_THAT(store().SetRoleRequiresMfa("auditor", true, "admin", kT0),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("set_by")));
  EXPECT_THAT(store().SetRoleRequiresMfa("auditor", true, kUnknownId, kT0),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("set_by")));
  EXPECT_FALSE(mfa_of("auditor"));
}

// ---- Grants ----------------------------------------------------------------

TEST_F(GrantStoreTest, CreateGrantMintsAnIdAndRoundTripsAtMicrosecondPrecision) {
  const std::string user = NewPerson("alice");
  Grant in = MakeGrant(absl::AsciiStrToUpper(user), "dpo", kT0 + absl::Microseconds(1),
                       kT0 + absl::Hours(24) + absl::Nanoseconds(200));
  in.id = "ignored";
  in.justification = "ignored";
  const std::string justification = Bytes("sealed justification", 70);
  CRM_ASSERT_OK_AND_ASSIGN(GrantRecord created, store().CreateGrant(in, justification, kT0));
  EXPECT_TRUE(base::IsUuid(created.grant.id));
  EXPECT_EQ(created.grant.user_id, user);
  EXPECT_EQ(created.grant.role, "dpo");
  EXPECT_EQ(created.grant.not_before, kT0Micros + absl::Microseconds(1));
  EXPECT_EQ(created.grant.not_after, kT0Micros + absl::Hours(24));
  EXPECT_EQ(created.grant.granted_by, admin_);
  EXPECT_EQ(created.grant.revoked_at, std::nullopt);
  EXPECT_EQ(created.grant.justification, "");
  EXPECT_EQ(created.justification_ciphertext, justification);
  EXPECT_EQ(created.created_at, kT0Micros);
  EXPECT_EQ(created.revoked_by, "");
  EXPECT_THAT(created.notices_sent, IsEmpty());

  CRM_ASSERT_OK_AND_ASSIGN(GrantRecord got, store().GetGrant(created.grant.id));
  EXPECT_EQ(got.grant.id, created.grant.id);
  EXPECT_EQ(got.grant.user_id, user);
  EXPECT_EQ(got.grant.not_before, created.grant.not_before);
  EXPECT_EQ(got.grant.not_after, created.grant.not_after);
  EXPECT_EQ(got.justification_ciphertext, justification);
  EXPECT_EQ(got.created_at, kT0Micros);

  // Open-ended on both sides, granted by the system.
  Grant open = MakeGrant(user, "sales");
  open.granted_by = "";
  CRM_ASSERT_OK_AND_ASSIGN(GrantRecord o, store().CreateGrant(open, Bytes("j"), kT0));
  CRM_ASSERT_OK_AND_ASSIGN(GrantRecord o2, store().GetGrant(o.grant.id));
  EXPECT_EQ(o2.grant.not_before, std::nullopt);
  EXPECT_EQ(o2.grant.not_after, std::nullopt);
  EXPECT_EQ(o2.grant.granted_by, "");
  EXPECT_NE(o.grant.id, created.grant.id);
}

TEST_F(GrantStoreTest, CreateGrantRefusesUnknownUsersEmptyWindowsAndMalformedIds) {
  const std::string user = NewPerson("bob");
  EXPECT_THAT(store().CreateGrant(MakeGrant(kUnknownId), Bytes("j"), kT0),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("user")));
  Grant unknown_granter = MakeGrant(user);
  unknown_granter.granted_by = kUnknownId;
  EXPECT_THAT(store().CreateGrant(unknown_granter, Bytes("j"), kT0),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("granted_by")));
  // not_after equal to not_before, also once truncated, and before it.
  EXPECT_THAT(store().CreateGrant(MakeGrant(user, "sales", kT0, kT0), Bytes("j"), kT0),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("not_after")));
  EXPECT_THAT(
      store().CreateGrant(MakeGrant(user, "sales", kT0Micros, kT0Micros + absl::Nanoseconds(999)),
                          Bytes("j"), kT0),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("not_after")));
  EXPECT_THAT(
      store().CreateGrant(MakeGrant(user, "sales", kT0, kT0 - absl::Hours(1)), Bytes("j"), kT0),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("not_after")));
  EXPECT_THAT(store().CreateGrant(MakeGrant("bob"), Bytes("j"), kT0),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("user_id")));
  Grant bad_granter = MakeGrant(user);
  bad_granter.granted_by = "admin";
  EXPECT_THAT(store().CreateGrant(bad_granter, Bytes("j"), kT0),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("granted_by")));
  // Nothing was stored; a window of one microsecond is fine.
  EXPECT_THAT(store().GrantsOfUser(user), IsOkAndHolds(IsEmpty()));
  EXPECT_THAT(store().CreateGrant(MakeGrant(user, "sales", kT0, kT0 + absl::Microseconds(1)),
                                  Bytes("j"), kT0),
              IsOk());
}

TEST_F(GrantStoreTest, GetGrantOfUnknownOrMalformedIdFails) {
  EXPECT_THAT(store().GetGrant(kUnknownId), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(store().GetGrant("g1"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("grant_id")));
}

TEST_F(GrantStoreTest, GrantsOfUserListsEveryStateByCreationTimeThenId) {
  const std::string user = NewPerson("carol");
  const std::string other = NewPerson("dave");
  const absl::Time now = kT0 + absl::Hours(10);
  std::vector<GrantRecord> made;
  // Created in reverse time order; two share a created_at (the id decides).
  made.push_back(MustGrant(MakeGrant(user, "sales"), kT0 + absl::Hours(3)));            // active
  made.push_back(MustGrant(MakeGrant(user, "dpo", now + absl::Hours(1), std::nullopt),  // pending
                           kT0 + absl::Hours(2)));
  made.push_back(MustGrant(MakeGrant(user, "auditor", std::nullopt, now - absl::Hours(1)),  // ended
                           kT0 + absl::Hours(2)));
  made.push_back(MustGrant(MakeGrant(user, "support"), kT0 + absl::Hours(1)));
  ASSERT_THAT(store().RevokeGrant(made.back().grant.id, admin_, now), IsOk());  // revoked
  MustGrant(MakeGrant(other, "sales"), kT0);

  std::sort(made.begin(), made.end(), [](const GrantRecord& a, const GrantRecord& b) {
    return std::tie(a.created_at, a.grant.id) < std::tie(b.created_at, b.grant.id);
  });
  CRM_ASSERT_OK_AND_ASSIGN(std::vector<Grant> grants, store().GrantsOfUser(user));
  std::vector<std::string> ids;
  for (const Grant& g : grants) ids.push_back(g.id);
  EXPECT_EQ(ids, Ids(made));
  ASSERT_THAT(grants, SizeIs(4));
  EXPECT_EQ(grants[0].role, "support");
  EXPECT_TRUE(grants[0].revoked_at.has_value());
  EXPECT_EQ(grants[3].role, "sales");

  EXPECT_THAT(store().GrantsOfUser(kUnknownId), IsOkAndHolds(IsEmpty()));
  EXPECT_THAT(store().GrantsOfUser("carol"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("user_id")));
}

TEST_F(GrantStoreTest, ListGrantsPagesNewestFirstAcrossThreePages) {
  const std::string user = NewPerson("erin");
  const std::string other = NewPerson("frank");
  std::vector<GrantRecord> mine;
  std::vector<GrantRecord> all;
  for (int i = 0; i < 7; ++i) {
    // Grants 2 and 3 (and 5 and 6) share a created_at: the id breaks the tie.
    const absl::Time created = kT0 + absl::Seconds(i == 3 || i == 6 ? i - 1 : i);
    mine.push_back(MustGrant(MakeGrant(user), created));
    all.push_back(mine.back());
    all.push_back(MustGrant(MakeGrant(other), created));
  }
  auto newest_first = [](std::vector<GrantRecord> v) {
    std::sort(v.begin(), v.end(), [](const GrantRecord& a, const GrantRecord& b) {
      return std::tie(a.created_at, a.grant.id) > std::tie(b.created_at, b.grant.id);
    });
    return Ids(v);
  };
  const absl::Time now = kT0 + absl::Hours(1);

  std::vector<size_t> sizes;
  EXPECT_EQ(AllGrantPages(user, false, now, 3, &sizes), newest_first(mine));
  EXPECT_THAT(sizes, ElementsAre(3, 3, 1));
  sizes.clear();
  EXPECT_EQ(AllGrantPages(user, true, now, 7, &sizes), newest_first(mine));
  EXPECT_THAT(sizes, ElementsAre(7)) << "an exactly full last page has no next token";
  sizes.clear();
  EXPECT_EQ(AllGrantPages("", false, now, 5, &sizes), newest_first(all));
  EXPECT_THAT(sizes, ElementsAre(5, 5, 4));
}

TEST_F(GrantStoreTest, ListGrantsHidesRevokedAndEndedGrantsUnlessAskedButShowsPending) {
  const std::string user = NewPerson("gina");
  const absl::Time now = kT0Micros + absl::Hours(5);
  const GrantRecord active = MustGrant(MakeGrant(user, "sales", kT0, now + absl::Microseconds(1)));
  const GrantRecord pending = MustGrant(MakeGrant(user, "dpo", now + absl::Hours(1)));
  const GrantRecord open = MustGrant(MakeGrant(user, "support"));
  const GrantRecord ended_now = MustGrant(MakeGrant(user, "auditor", std::nullopt, now));
  const GrantRecord ended =
      MustGrant(MakeGrant(user, "auditor", std::nullopt, now - absl::Hours(1)));
  const GrantRecord revoked = MustGrant(MakeGrant(user, "marketing"));
  // Revoked "in the future" (a clock ahead) still counts as revoked.
  ASSERT_THAT(store().RevokeGrant(revoked.grant.id, admin_, now + absl::Hours(1)), IsOk());

  std::vector<std::string> live = AllGrantPages(user, false, now, 0);
  std::sort(live.begin(), live.end());
  std::vector<std::string> expected = {active.grant.id, pending.grant.id, open.grant.id};
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(live, expected);

  std::vector<std::string> every = AllGrantPages(user, true, now, 0);
  EXPECT_THAT(every, SizeIs(6));
  EXPECT_THAT(every, ::testing::Contains(ended_now.grant.id));
  EXPECT_THAT(every, ::testing::Contains(ended.grant.id));
  EXPECT_THAT(every, ::testing::Contains(revoked.grant.id));
}

TEST_F(GrantStoreTest, ListGrantsPageSizeDefaultsTo50AndIsCappedAt500) {
  const std::string user = NewPerson("hank");
  // 501 grants in one statement (through the store it would take a while).
  ASSERT_THAT(pool().Transact([&](pqxx::work& tx) {
    tx.exec_params(
        "INSERT INTO grants (id, user_id, role_name, justification_ciphertext, created_at) "
        "SELECT gen_random_uuid(), $1::uuid, 'sales', '\\x00'::bytea, "
        "       now() + i * interval '1 second' FROM generate_series(1, 501) i",
        user);
    return absl::OkStatus();
  }),
              IsOk());
  CRM_ASSERT_OK_AND_ASSIGN(GrantPage page, store().ListGrants(user, true, kT0, 0, ""));
  EXPECT_THAT(page.grants, SizeIs(kDefaultGrantPageSize));
  EXPECT_FALSE(page.next_page_token.empty());
  CRM_ASSERT_OK_AND_ASSIGN(page, store().ListGrants(user, true, kT0, 1'000'000, ""));
  EXPECT_THAT(page.grants, SizeIs(kMaxGrantPageSize));
  ASSERT_FALSE(page.next_page_token.empty());
  CRM_ASSERT_OK_AND_ASSIGN(page, store().ListGrants(user, true, kT0, 501, page.next_page_token));
  EXPECT_THAT(page.grants, SizeIs(1));
  EXPECT_TRUE(page.next_page_token.empty());
  EXPECT_THAT(store().ListGrants(user, true, kT0, -1, ""),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("page_size")));
}

TEST_F(GrantStoreTest, ListGrantsRefusesTokensOfAnotherQueryAndGarbage) {
  const std::string user = NewPerson("ivan");
  const std::string other = NewPerson("jane");
  for (int i = 0; i < 3; ++i) {
    MustGrant(MakeGrant(user), kT0 + absl::Seconds(i));
    MustGrant(MakeGrant(other, "sales", std::nullopt, kT0 + absl::Hours(1)),
              kT0 + absl::Seconds(i));
  }
  CRM_ASSERT_OK_AND_ASSIGN(GrantPage first, store().ListGrants(user, false, kT0, 1, ""));
  ASSERT_FALSE(first.next_page_token.empty());
  const std::string token = first.next_page_token;
  const auto bad_token = StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("page_token"));

  EXPECT_THAT(store().ListGrants(user, false, kT0 + absl::Seconds(1), 1, token), IsOk())
      << "the token does not depend on now";
  EXPECT_THAT(store().ListGrants(other, false, kT0, 1, token), bad_token) << "another user";
  EXPECT_THAT(store().ListGrants("", false, kT0, 1, token), bad_token) << "everyone";
  EXPECT_THAT(store().ListGrants(user, true, kT0, 1, token), bad_token) << "include_inactive";
  EXPECT_THAT(store().ListGrants(user, false, kT0, 1, "!!not base64!!"), bad_token);
  EXPECT_THAT(store().ListGrants(user, false, kT0, 1, absl::WebSafeBase64Escape("g1|x|y|z")),
              bad_token);
  CRM_ASSERT_OK_AND_ASSIGN(GrantPage expiring, store().ListExpiring(kT0, absl::Hours(2), 1, ""));
  ASSERT_FALSE(expiring.next_page_token.empty());
  EXPECT_THAT(store().ListGrants(user, false, kT0, 1, expiring.next_page_token), bad_token)
      << "a ListExpiring token";
  EXPECT_THAT(store().ListGrants("ivan", false, kT0, 1, ""),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("user_id")));
}

TEST_F(GrantStoreTest, ListExpiringGivesLiveGrantsEndingWithinTheWindowSoonestFirst) {
  const std::string user = NewPerson("kate");
  const std::string other = NewPerson("liam");
  const absl::Time now = kT0Micros + absl::Hours(1);
  const absl::Duration within = absl::Hours(24);
  auto ending = [&](const std::string& u, absl::Time end,
                    std::optional<absl::Time> not_before = std::nullopt) {
    return MustGrant(MakeGrant(u, "sales", not_before, end));
  };
  std::vector<GrantRecord> in;
  in.push_back(ending(user, now + absl::Microseconds(1)));
  in.push_back(ending(other, now + absl::Hours(2)));
  in.push_back(ending(user, now + absl::Hours(2)));  // same end: the id decides
  in.push_back(ending(user, now + within));          // the window's end is inside
  in.push_back(ending(other, now + absl::Hours(12), now + absl::Hours(6)));  // pending
  ending(user, now);                                                         // ended exactly now
  ending(user, now - absl::Hours(1));                                        // ended
  ending(user, now + within + absl::Microseconds(1));                        // beyond the window
  MustGrant(MakeGrant(user));                                                // never ends
  const GrantRecord revoked = ending(user, now + absl::Hours(3));
  ASSERT_THAT(store().RevokeGrant(revoked.grant.id, admin_, now), IsOk());

  std::sort(in.begin(), in.end(), [](const GrantRecord& a, const GrantRecord& b) {
    return std::tie(*a.grant.not_after, a.grant.id) < std::tie(*b.grant.not_after, b.grant.id);
  });
  std::vector<std::string> ids;
  std::vector<size_t> sizes;
  std::string token;
  for (int guard = 0; guard < 10; ++guard) {
    CRM_ASSERT_OK_AND_ASSIGN(GrantPage page, store().ListExpiring(now, within, 2, token));
    sizes.push_back(page.grants.size());
    for (const std::string& id : Ids(page.grants)) ids.push_back(id);
    token = page.next_page_token;
    if (token.empty()) break;
  }
  EXPECT_EQ(ids, Ids(in));
  EXPECT_THAT(sizes, ElementsAre(2, 2, 1));

  CRM_ASSERT_OK_AND_ASSIGN(GrantPage none, store().ListExpiring(now, -absl::Hours(1), 0, ""));
  EXPECT_THAT(none.grants, IsEmpty());

  CRM_ASSERT_OK_AND_ASSIGN(GrantPage first, store().ListExpiring(now, within, 2, ""));
  const auto bad_token = StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("page_token"));
  EXPECT_THAT(store().ListExpiring(now, absl::Hours(48), 2, first.next_page_token), bad_token)
      << "another window";
  EXPECT_THAT(store().ListExpiring(now, within, 2, "garbage"), bad_token);
  CRM_ASSERT_OK_AND_ASSIGN(GrantPage listed, store().ListGrants(user, true, now, 1, ""));
  EXPECT_THAT(store().ListExpiring(now, within, 2, listed.next_page_token), bad_token)
      << "a ListGrants token";
  EXPECT_THAT(store().ListExpiring(now, within, -5, ""),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("page_size")));
}

TEST_F(GrantStoreTest, RevokeGrantIsIdempotentAndKeepsTheFirstRevocation) {
  const std::string user = NewPerson("mia");
  const std::string second_admin = NewPerson("admin2");
  const GrantRecord g = MustGrant(MakeGrant(user));
  const absl::Time t1 = kT0 + absl::Hours(1);
  CRM_ASSERT_OK_AND_ASSIGN(GrantRecord first, store().RevokeGrant(g.grant.id, admin_, t1));
  EXPECT_EQ(first.grant.revoked_at, absl::FromUnixMicros(absl::ToUnixMicros(t1)));
  EXPECT_EQ(first.revoked_by, admin_);
  CRM_ASSERT_OK_AND_ASSIGN(GrantRecord again,
                           store().RevokeGrant(g.grant.id, second_admin, t1 + absl::Hours(1)));
  EXPECT_EQ(again.grant.revoked_at, first.grant.revoked_at);
  EXPECT_EQ(again.revoked_by, admin_);
  CRM_ASSERT_OK_AND_ASSIGN(GrantRecord stored, store().GetGrant(g.grant.id));
  EXPECT_EQ(stored.grant.revoked_at, first.grant.revoked_at);
  EXPECT_EQ(stored.revoked_by, admin_);

  // Revoked by the system: no revoked_by.
  const GrantRecord h = MustGrant(MakeGrant(user));
  CRM_ASSERT_OK_AND_ASSIGN(GrantRecord by_system, store().RevokeGrant(h.grant.id, "", t1));
  EXPECT_TRUE(by_system.grant.revoked_at.has_value());
  EXPECT_EQ(by_system.revoked_by, "");

  EXPECT_THAT(store().RevokeGrant(kUnknownId, admin_, t1), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(store().RevokeGrant("x", admin_, t1),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("grant_id")));
  const GrantRecord k = MustGrant(MakeGrant(user));
  EXPECT_THAT(store().RevokeGrant(k.grant.id, "x", t1),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("revoked_by")));
  EXPECT_THAT(store().RevokeGrant(k.grant.id, kUnknownId, t1),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("revoked_by")));
  CRM_ASSERT_OK_AND_ASSIGN(GrantRecord untouched, store().GetGrant(k.grant.id));
  EXPECT_EQ(untouched.grant.revoked_at, std::nullopt);
}

TEST_F(GrantStoreTest, ExtendGrantSucceedsOnlyIfTheEndIsStillTheExpectedOne) {
  const std::string user = NewPerson("nina");
  const absl::Time end = kT0Micros + absl::Hours(24);
  const GrantRecord g = MustGrant(MakeGrant(user, "sales", kT0, end));
  CRM_ASSERT_OK_AND_ASSIGN(GrantRecord extended,
                           store().ExtendGrant(g.grant.id, end, end + absl::Hours(24)));
  EXPECT_EQ(extended.grant.not_after, end + absl::Hours(24));
  EXPECT_EQ(extended.grant.not_before, g.grant.not_before);
  CRM_ASSERT_OK_AND_ASSIGN(GrantRecord stored, store().GetGrant(g.grant.id));
  EXPECT_EQ(stored.grant.not_after, end + absl::Hours(24));

  // A second extender that read the old end loses.
  EXPECT_THAT(store().ExtendGrant(g.grant.id, end, end + absl::Hours(48)),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("changed concurrently")));
  EXPECT_THAT(store().ExtendGrant(g.grant.id, std::nullopt, end + absl::Hours(48)),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("changed concurrently")));
  // Revoked meanwhile.
  ASSERT_THAT(store().RevokeGrant(g.grant.id, admin_, kT0), IsOk());
  EXPECT_THAT(store().ExtendGrant(g.grant.id, end + absl::Hours(24), end + absl::Hours(48)),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("changed concurrently")));
  CRM_ASSERT_OK_AND_ASSIGN(stored, store().GetGrant(g.grant.id));
  EXPECT_EQ(stored.grant.not_after, end + absl::Hours(24));

  // An open-ended grant matches an expected nullopt.
  const GrantRecord open = MustGrant(MakeGrant(user));
  CRM_ASSERT_OK_AND_ASSIGN(GrantRecord bounded,
                           store().ExtendGrant(open.grant.id, std::nullopt, end));
  EXPECT_EQ(bounded.grant.not_after, end);

  const GrantRecord h = MustGrant(MakeGrant(user, "sales", end, end + absl::Hours(1)));
  EXPECT_THAT(store().ExtendGrant(h.grant.id, end + absl::Hours(1), end),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("not_after")));
  EXPECT_THAT(store().ExtendGrant(kUnknownId, end, end + absl::Hours(1)),
              StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(store().ExtendGrant("y", end, end + absl::Hours(1)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("grant_id")));
}

TEST_F(GrantStoreTest, MarkNoticeSentAppendsEachNoticeOnce) {
  const std::string user = NewPerson("olga");
  const GrantRecord g = MustGrant(MakeGrant(user, "sales", std::nullopt, kT0 + absl::Hours(100)));
  const std::string seven = "7d@1800360000123456";
  const std::string one = "1d@1800360000123456";
  EXPECT_THAT(store().MarkNoticeSent(g.grant.id, seven), IsOkAndHolds(true));
  EXPECT_THAT(store().MarkNoticeSent(g.grant.id, seven), IsOkAndHolds(false));
  EXPECT_THAT(store().MarkNoticeSent(g.grant.id, one), IsOkAndHolds(true));
  CRM_ASSERT_OK_AND_ASSIGN(GrantRecord stored, store().GetGrant(g.grant.id));
  EXPECT_THAT(stored.notices_sent, ElementsAre(seven, one));

  EXPECT_THAT(store().MarkNoticeSent(kUnknownId, seven), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(store().MarkNoticeSent("z", seven),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("grant_id")));
  EXPECT_THAT(store().MarkNoticeSent(g.grant.id, ""),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("notice")));
}

TEST_F(GrantStoreTest, ConcurrentMarksOfOneNoticeLetExactlyOneWin) {
  const std::string user = NewPerson("pete");
  constexpr int kThreads = 6;
  for (int round = 0; round < 10; ++round) {
    const GrantRecord g = MustGrant(MakeGrant(user, "sales", std::nullopt, kT0 + absl::Hours(100)));
    std::vector<absl::StatusOr<bool>> results(kThreads, absl::UnknownError("not run"));
    std::atomic<bool> go{false};
    std::vector<std::thread> threads;
    for (int i = 0; i < kThreads; ++i) {
      threads.emplace_back([&, i] {
        while (!go.load()) std::this_thread::yield();
        results[i] = store().MarkNoticeSent(g.grant.id, "1d@1800360000123456");
      });
    }
    go = true;
    for (std::thread& t : threads) t.join();
    int added = 0;
    for (const auto& r : results) {
      ASSERT_THAT(r, IsOk());
      if (*r) ++added;
    }
    EXPECT_EQ(added, 1) << "round " << round;
    CRM_ASSERT_OK_AND_ASSIGN(GrantRecord stored, store().GetGrant(g.grant.id));
    EXPECT_THAT(stored.notices_sent, SizeIs(1));
  }
}

TEST_F(GrantStoreTest, UsersWithActiveRoleCountsOnlyGrantsActiveNow) {
  const absl::Time now = kT0Micros + absl::Hours(10);
  std::vector<std::string> expected;
  const std::string twice = NewPerson("twice");
  MustGrant(MakeGrant(twice, "sales"));
  MustGrant(MakeGrant(twice, "sales", std::nullopt, now + absl::Hours(1)));
  expected.push_back(twice);
  const std::string starts_now = NewPerson("startsnow");
  MustGrant(MakeGrant(starts_now, "sales", now, std::nullopt));
  expected.push_back(starts_now);
  const std::string ends_soon = NewPerson("endssoon");
  MustGrant(MakeGrant(ends_soon, "sales", kT0, now + absl::Microseconds(1)));
  expected.push_back(ends_soon);
  MustGrant(MakeGrant(NewPerson("pending"), "sales", now + absl::Microseconds(1), std::nullopt));
  MustGrant(MakeGrant(NewPerson("endsnow"), "sales", std::nullopt, now));
  MustGrant(MakeGrant(NewPerson("otherrole"), "dpo"));
  const GrantRecord revoked = MustGrant(MakeGrant(NewPerson("revoked"), "sales"));
  ASSERT_THAT(store().RevokeGrant(revoked.grant.id, admin_, now + absl::Hours(1)), IsOk());

  std::sort(expected.begin(), expected.end());
  EXPECT_THAT(store().UsersWithActiveRole("sales", now), IsOkAndHolds(ElementsAreArray(expected)));
  EXPECT_THAT(store().UsersWithActiveRole("nosuchrole", now), IsOkAndHolds(IsEmpty()));
}

TEST_F(GrantStoreTest, RevokeAllOfUserRevokesOnlyThatUsersLiveGrants) {
  const std::string user = NewPerson("quinn");
  const std::string other = NewPerson("rita");
  const GrantRecord earlier = MustGrant(MakeGrant(user, "dpo"));
  ASSERT_THAT(store().RevokeGrant(earlier.grant.id, "", kT0), IsOk());
  MustGrant(MakeGrant(user, "sales"));
  MustGrant(MakeGrant(user, "support", kT0 + absl::Hours(5), std::nullopt));
  const GrantRecord kept = MustGrant(MakeGrant(other, "sales"));
  const absl::Time t1 = kT0Micros + absl::Hours(1);

  ASSERT_THAT(store().RevokeAllOfUser(user, admin_, t1), IsOk());
  CRM_ASSERT_OK_AND_ASSIGN(std::vector<Grant> grants, store().GrantsOfUser(user));
  ASSERT_THAT(grants, SizeIs(3));
  for (const Grant& g : grants) {
    ASSERT_TRUE(g.revoked_at.has_value()) << g.role;
    CRM_ASSERT_OK_AND_ASSIGN(GrantRecord rec, store().GetGrant(g.id));
    if (g.id == earlier.grant.id) {
      EXPECT_EQ(*g.revoked_at, kT0Micros) << "the first revocation stays";
      EXPECT_EQ(rec.revoked_by, "");
    } else {
      EXPECT_EQ(*g.revoked_at, t1);
      EXPECT_EQ(rec.revoked_by, admin_);
    }
  }
  CRM_ASSERT_OK_AND_ASSIGN(GrantRecord other_grant, store().GetGrant(kept.grant.id));
  EXPECT_EQ(other_grant.grant.revoked_at, std::nullopt);

  EXPECT_THAT(store().RevokeAllOfUser(kUnknownId, admin_, t1), IsOk());
  EXPECT_THAT(store().RevokeAllOfUser("quinn", admin_, t1),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("user_id")));
  EXPECT_THAT(store().RevokeAllOfUser(other, "admin", t1),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("revoked_by")));
}

// ---- Service accounts ------------------------------------------------------

TEST_F(GrantStoreTest, BoundServiceAccountIsFoundBySpiffeIdAndByUser) {
  const std::string shop = NewServiceAccount("shop");
  const std::string name64(64, 'a');
  CRM_ASSERT_OK_AND_ASSIGN(ServiceAccountBinding bound,
                           store().BindServiceAccount(absl::AsciiStrToUpper(shop),
                                                      "spiffe://crm.local/web-shop_1.eu", kT0));
  EXPECT_EQ(bound.user_id, shop);
  EXPECT_EQ(bound.spiffe_id, "spiffe://crm.local/web-shop_1.eu");
  EXPECT_EQ(bound.created_at, kT0Micros);
  CRM_ASSERT_OK_AND_ASSIGN(
      ServiceAccountBinding by_spiffe,
      store().FindServiceAccountBySpiffeId("spiffe://crm.local/web-shop_1.eu"));
  EXPECT_EQ(by_spiffe.user_id, shop);
  EXPECT_EQ(by_spiffe.created_at, kT0Micros);
  CRM_ASSERT_OK_AND_ASSIGN(ServiceAccountBinding by_user, store().FindServiceAccountByUser(shop));
  EXPECT_EQ(by_user.spiffe_id, "spiffe://crm.local/web-shop_1.eu");
  EXPECT_TRUE(base::IsUuid(bound.token_session_id));
  EXPECT_EQ(by_user.token_session_id, bound.token_session_id);

  // Rotating the token session id (on disable) gives a new one, stored.
  CRM_ASSERT_OK_AND_ASSIGN(ServiceAccountBinding rotated, store().RotateServiceTokenSession(shop));
  EXPECT_NE(rotated.token_session_id, bound.token_session_id);
  CRM_ASSERT_OK_AND_ASSIGN(by_user, store().FindServiceAccountByUser(shop));
  EXPECT_EQ(by_user.token_session_id, rotated.token_session_id);
  EXPECT_THAT(store().RotateServiceTokenSession(admin_), StatusIs(absl::StatusCode::kNotFound));

  // The longest name is accepted.
  const std::string erp = NewServiceAccount("erp");
  EXPECT_THAT(store().BindServiceAccount(erp, absl::StrCat("spiffe://crm.local/", name64), kT0),
              IsOk());

  EXPECT_THAT(store().FindServiceAccountBySpiffeId("spiffe://crm.local/nobody"),
              StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(store().FindServiceAccountByUser(admin_), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(store().FindServiceAccountByUser("shop"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("user_id")));
}

TEST_F(GrantStoreTest, BindServiceAccountRefusesMalformedSpiffeIds) {
  const std::string shop = NewServiceAccount("shop");
  for (const std::string& bad : {
           std::string("spiffe://other.domain/shop"),                  // another trust domain
           std::string("spiffe://crm.local/shop/eu"),                  // a path
           std::string("spiffe://crm.local/"),                         // empty name
           std::string("spiffe://crm.local/Shop"),                     // upper case
           std::string("spiffe://CRM.LOCAL/shop"),                     // upper-case trust domain
           absl::StrCat("spiffe://crm.local/", std::string(65, 'a')),  // 65 characters
           std::string("https://crm.local/shop"),                      // another scheme
           std::string("spiffe://crm.local/shop?x=1"),                 // a query
           std::string(""),
       }) {
    EXPECT_THAT(store().BindServiceAccount(shop, bad, kT0),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("spiffe_id")))
        << bad;
  }
  EXPECT_THAT(store().FindServiceAccountByUser(shop), StatusIs(absl::StatusCode::kNotFound));
}

TEST_F(GrantStoreTest, BindServiceAccountRefusesTakenIdsPersonsAndUnknownUsers) {
  const std::string shop = NewServiceAccount("shop");
  const std::string erp = NewServiceAccount("erp");
  ASSERT_THAT(store().BindServiceAccount(shop, "spiffe://crm.local/shop", kT0), IsOk());
  EXPECT_THAT(store().BindServiceAccount(erp, "spiffe://crm.local/shop", kT0),
              StatusIs(absl::StatusCode::kAlreadyExists, HasSubstr("spiffe_id")));
  EXPECT_THAT(store().BindServiceAccount(shop, "spiffe://crm.local/shop2", kT0),
              StatusIs(absl::StatusCode::kAlreadyExists, HasSubstr("user_id")));
  EXPECT_THAT(store().BindServiceAccount(admin_, "spiffe://crm.local/admin", kT0),
              StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_THAT(store().BindServiceAccount(kUnknownId, "spiffe://crm.local/ghost", kT0),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("user")));
  EXPECT_THAT(store().BindServiceAccount("erp", "spiffe://crm.local/erp", kT0),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("user_id")));
  EXPECT_THAT(store().FindServiceAccountBySpiffeId("spiffe://crm.local/admin"),
              StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(store().FindServiceAccountByUser(erp), StatusIs(absl::StatusCode::kNotFound));
}

TEST_F(GrantStoreTest, ConcurrentBindsOfOneSpiffeIdLetExactlyOneWin) {
  constexpr int kThreads = 6;
  std::vector<std::string> accounts;
  for (int i = 0; i < kThreads; ++i) accounts.push_back(NewServiceAccount(absl::StrCat("sa", i)));
  std::vector<absl::Status> results(kThreads);
  std::atomic<bool> go{false};
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&, i] {
      while (!go.load()) std::this_thread::yield();
      results[i] = store().BindServiceAccount(accounts[i], "spiffe://crm.local/race", kT0).status();
    });
  }
  go = true;
  for (std::thread& t : threads) t.join();
  int ok = 0;
  for (const absl::Status& s : results) {
    if (s.ok()) {
      ++ok;
    } else {
      EXPECT_THAT(s, StatusIs(absl::StatusCode::kAlreadyExists, HasSubstr("spiffe_id")));
    }
  }
  EXPECT_EQ(ok, 1);
}

// ---- Query plans -------------------------------------------------------------

// EXPLAIN of `sql` with sequential scans disabled, so only a missing index
// yields a Seq Scan.
template <typename... Args>
absl::StatusOr<std::string> Plan(pg::Pool& pool, absl::string_view sql, Args... args) {
  return pool.TransactValue<std::string>([&](pqxx::work& tx) -> absl::StatusOr<std::string> {
    tx.exec("SET LOCAL enable_seqscan = off");
    std::vector<std::string> lines;
    const pqxx::result rows = tx.exec_params(absl::StrCat("EXPLAIN ", sql), args...);
    for (const pqxx::row& row : rows) {
      lines.push_back(row[0].as<std::string>());
    }
    return absl::StrJoin(lines, "\n");
  });
}

TEST_F(GrantStoreTest, GrantsOfUserUsesTheUserIndex) {
  const std::string user = NewPerson("plan");
  for (int i = 0; i < 20; ++i) MustGrant(MakeGrant(user));
  auto plan = Plan(pool(), GrantStore::GrantsOfUserSql(), user);
  ASSERT_THAT(plan, IsOk());
  EXPECT_THAT(*plan, HasSubstr("grants_user_idx"));
  EXPECT_THAT(*plan, Not(HasSubstr("Seq Scan")));
}

TEST_F(GrantStoreTest, ListExpiringUsesThePartialExpiryIndex) {
  const std::string user = NewPerson("plan");
  for (int i = 0; i < 20; ++i) {
    MustGrant(MakeGrant(user, "sales", std::nullopt, kT0 + absl::Hours(i + 1)));
  }
  const int64_t now = absl::ToUnixMicros(kT0);
  auto plan =
      Plan(pool(), GrantStore::ListExpiringSql(), now,
           now + absl::ToInt64Microseconds(absl::Hours(24)), std::string(), std::string(), 51);
  ASSERT_THAT(plan, IsOk());
  EXPECT_THAT(*plan, HasSubstr("grants_expiring_idx"));
  EXPECT_THAT(*plan, Not(HasSubstr("Seq Scan")));
}

}  // namespace
}  // namespace crm::identity
