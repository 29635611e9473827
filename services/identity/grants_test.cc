#include "services/identity/grants.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "libs/base/clock.h"
#include "libs/testing/status_matchers.h"

namespace crm::identity {
namespace {

using ::crm::testing::IsOk;
using ::crm::testing::StatusIs;
using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;

constexpr absl::Duration kDay = absl::Hours(24);

class GrantsTest : public ::testing::Test {
 protected:
  Grant MakeGrant(std::string id, std::string role, std::optional<absl::Time> not_before,
                  std::optional<absl::Time> not_after) {
    Grant g;
    g.id = std::move(id);
    g.user_id = "user-1";
    g.role = std::move(role);
    g.not_before = not_before;
    g.not_after = not_after;
    g.justification = "covering the Q3 campaign";
    g.granted_by = "admin-1";
    return g;
  }

  base::FakeClock clock_;
  const absl::Time t0_ = clock_.Now();
  std::vector<Role> roles_ = BuiltinRoles();
};

TEST_F(GrantsTest, GrantCountsExactlyAtNotBeforeAndNoLongerExactlyAtNotAfter) {
  const Grant g = MakeGrant("g1", "sales", t0_ + absl::Hours(1), t0_ + absl::Hours(2));
  EXPECT_EQ(StateAt(g, t0_ + absl::Hours(1) - absl::Nanoseconds(1)), GrantState::kPending);
  EXPECT_EQ(StateAt(g, t0_ + absl::Hours(1)), GrantState::kActive);
  EXPECT_EQ(StateAt(g, t0_ + absl::Hours(2) - absl::Nanoseconds(1)), GrantState::kActive);
  EXPECT_EQ(StateAt(g, t0_ + absl::Hours(2)), GrantState::kEnded);

  clock_.Set(t0_ + absl::Hours(1) - absl::Nanoseconds(1));
  EXPECT_THAT(EffectivePermissions({g}, roles_, clock_.Now()).permissions, IsEmpty());
  clock_.Set(t0_ + absl::Hours(1));
  EXPECT_TRUE(EffectivePermissions({g}, roles_, clock_.Now()).permissions.contains("mailing.send"));
  clock_.Set(t0_ + absl::Hours(2));
  EXPECT_THAT(EffectivePermissions({g}, roles_, clock_.Now()).permissions, IsEmpty());
}

TEST_F(GrantsTest, OpenEndedGrantCountsForeverUntilRevoked) {
  Grant g = MakeGrant("g1", "support", std::nullopt, std::nullopt);
  clock_.Advance(absl::Hours(24 * 365 * 10));
  EXPECT_TRUE(IsActiveAt(g, clock_.Now()));
  const EffectiveAccess access = EffectivePermissions({g}, roles_, clock_.Now());
  EXPECT_TRUE(access.permissions.contains("consent.write"));
  EXPECT_FALSE(access.earliest_end.has_value());
}

TEST_F(GrantsTest, RevokedGrantIsIgnoredEvenInsideItsWindowAndEvenIfRevokedAtLiesAhead) {
  Grant g = MakeGrant("g1", "dpo", std::nullopt, t0_ + kDay);
  g.revoked_at = t0_ + absl::Hours(1);  // e.g. written by a replica whose clock runs ahead
  EXPECT_EQ(StateAt(g, t0_), GrantState::kRevoked);
  const EffectiveAccess access = EffectivePermissions({g}, roles_, t0_);
  EXPECT_THAT(access.permissions, IsEmpty());
  EXPECT_FALSE(access.earliest_end.has_value());
}

TEST_F(GrantsTest, EffectivePermissionsUnitesActiveGrantsAndTakesTheEarliestEnd) {
  const std::vector<Grant> grants = {
      MakeGrant("g1", "sales", std::nullopt, t0_ + absl::Hours(5)),
      MakeGrant("g2", "marketing", t0_ - kDay, t0_ + absl::Hours(3)),
      MakeGrant("g3", "support", std::nullopt, std::nullopt),
      // Not counting: must contribute neither permissions nor an end.
      MakeGrant("g4", "auditor", t0_ + absl::Minutes(1), t0_ + absl::Minutes(2)),
      MakeGrant("g5", "dpo", std::nullopt, t0_),
  };
  const EffectiveAccess access = EffectivePermissions(grants, roles_, t0_);
  EXPECT_THAT(access.permissions,
              ElementsAre("consent.check", "consent.read", "consent.write", "contacts.read",
                          "contacts.write", "mailing.manage", "mailing.send"));
  EXPECT_THAT(access.roles, ElementsAre("marketing", "sales", "support"));
  ASSERT_TRUE(access.earliest_end.has_value());
  EXPECT_EQ(*access.earliest_end, t0_ + absl::Hours(3));
}

TEST_F(GrantsTest, GrantOfAnUnknownRoleGivesNothing) {
  const Grant g = MakeGrant("g1", "deleted-role", std::nullopt, t0_ + absl::Minutes(1));
  const EffectiveAccess access = EffectivePermissions({g}, roles_, t0_);
  EXPECT_THAT(access.permissions, IsEmpty());
  EXPECT_FALSE(access.earliest_end.has_value());
}

TEST_F(GrantsTest, MfaIsRequiredIfAnyActiveGrantsRoleRequiresIt) {
  roles_[1].require_mfa = true;  // dpo
  ASSERT_EQ(roles_[1].name, "dpo");
  const Grant sales = MakeGrant("g1", "sales", std::nullopt, std::nullopt);
  const Grant dpo = MakeGrant("g2", "dpo", std::nullopt, t0_ + kDay);
  EXPECT_FALSE(EffectivePermissions({sales}, roles_, t0_).mfa_required);
  EXPECT_TRUE(EffectivePermissions({sales, dpo}, roles_, t0_).mfa_required);
  EXPECT_FALSE(EffectivePermissions({sales, dpo}, roles_, t0_ + kDay).mfa_required);
}

TEST_F(GrantsTest, TokenExpiryIsFifteenMinutesUnlessAGrantEndsSooner) {
  EXPECT_EQ(TokenExpiry(t0_, std::nullopt), t0_ + absl::Minutes(15));
  EXPECT_EQ(TokenExpiry(t0_, t0_ + absl::Hours(1)), t0_ + absl::Minutes(15));
  EXPECT_EQ(TokenExpiry(t0_, t0_ + absl::Minutes(4)), t0_ + absl::Minutes(4));
  EXPECT_EQ(TokenExpiry(t0_, t0_ + absl::Minutes(15)), t0_ + absl::Minutes(15));
  EXPECT_EQ(TokenExpiry(t0_, std::nullopt, absl::Minutes(5)), t0_ + absl::Minutes(5));
}

TEST_F(GrantsTest, TokenNeverOutlivesTheEarliestGrantItCarriesAndRefreshDropsTheEndedGrant) {
  const std::vector<Grant> grants = {
      MakeGrant("g1", "sales", std::nullopt, std::nullopt),
      MakeGrant("g2", "dpo", std::nullopt, t0_ + absl::Minutes(7)),
  };
  EffectiveAccess access = EffectivePermissions(grants, roles_, clock_.Now());
  EXPECT_TRUE(access.permissions.contains("contacts.read.sensitive"));
  const absl::Time exp = TokenExpiry(clock_.Now(), access.earliest_end);
  EXPECT_EQ(exp, t0_ + absl::Minutes(7));

  clock_.Set(exp);  // refresh at the moment the token expires
  access = EffectivePermissions(grants, roles_, clock_.Now());
  EXPECT_FALSE(access.permissions.contains("contacts.read.sensitive"));
  EXPECT_TRUE(access.permissions.contains("contacts.write"));
  EXPECT_EQ(TokenExpiry(clock_.Now(), access.earliest_end), exp + absl::Minutes(15));
}

TEST_F(GrantsTest, ExpiringWithinListsUnendedUnrevokedGrantsEndingInTheWindowSoonestFirst) {
  Grant revoked = MakeGrant("g5", "sales", std::nullopt, t0_ + absl::Hours(1));
  revoked.revoked_at = t0_ - absl::Hours(1);
  const std::vector<Grant> grants = {
      MakeGrant("g1", "sales", std::nullopt, t0_ + 3 * kDay),
      MakeGrant("g2", "dpo", std::nullopt, t0_ + kDay),
      MakeGrant("g3", "support", std::nullopt, std::nullopt),      // never ends
      MakeGrant("g4", "auditor", std::nullopt, t0_),               // ended exactly now
      revoked,                                                     // revoked
      MakeGrant("g6", "marketing", t0_ + kDay, t0_ + 2 * kDay),    // pending, ends soon
      MakeGrant("g7", "marketing", std::nullopt, t0_ + 7 * kDay),  // exactly at the edge
      MakeGrant("g8", "marketing", std::nullopt, t0_ + 7 * kDay + absl::Seconds(1)),  // beyond
  };
  std::vector<std::string> ids;
  for (const Grant& g : ExpiringWithin(grants, t0_, 7 * kDay)) ids.push_back(g.id);
  EXPECT_THAT(ids, ElementsAre("g2", "g6", "g1", "g7"));
  EXPECT_THAT(ExpiringWithin(grants, t0_, -kDay), IsEmpty());
}

// Runs a sweeper over [from, until) every `every`, recording what it sends.
std::vector<std::pair<ExpiryNotice, absl::Time>> Sweep(const Grant& grant, base::FakeClock& clock,
                                                       absl::Time until, absl::Duration every,
                                                       std::optional<SentNotice>& last) {
  std::vector<std::pair<ExpiryNotice, absl::Time>> sent;
  for (; clock.Now() < until; clock.Advance(every)) {
    std::optional<ExpiryNotice> due = NoticeDue(grant, clock.Now(), last);
    if (!due.has_value()) continue;
    sent.emplace_back(*due, clock.Now());
    last = SentNotice{*due, *grant.not_after};
  }
  return sent;
}

TEST_F(GrantsTest, HourlySweeperSendsTheSevenDayAndTheOneDayNoticeExactlyOnceEach) {
  const absl::Time end = t0_ + 30 * kDay;
  const Grant g = MakeGrant("g1", "sales", std::nullopt, end);
  std::optional<SentNotice> last;
  const auto sent = Sweep(g, clock_, end + kDay, absl::Hours(1), last);
  ASSERT_EQ(sent.size(), 2u);
  EXPECT_EQ(sent[0].first, ExpiryNotice::kSevenDays);
  EXPECT_EQ(sent[0].second, end - 7 * kDay);  // due exactly at the 7-day mark
  EXPECT_EQ(sent[1].first, ExpiryNotice::kOneDay);
  EXPECT_EQ(sent[1].second, end - kDay);
}

TEST_F(GrantsTest, NoNoticeBeforeTheSevenDayMark) {
  const Grant g = MakeGrant("g1", "sales", std::nullopt, t0_ + 7 * kDay + absl::Seconds(1));
  EXPECT_FALSE(NoticeDue(g, t0_, std::nullopt).has_value());
  EXPECT_EQ(NoticeDue(g, t0_ + absl::Seconds(1), std::nullopt), ExpiryNotice::kSevenDays);
}

TEST_F(GrantsTest, GrantFirstSeenWithUnderADayLeftGetsOnlyTheOneDayNotice) {
  const absl::Time end = t0_ + absl::Hours(12);
  const Grant g = MakeGrant("g1", "sales", std::nullopt, end);
  std::optional<SentNotice> last;
  const auto sent = Sweep(g, clock_, end + kDay, absl::Minutes(10), last);
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(sent[0].first, ExpiryNotice::kOneDay);
}

TEST_F(GrantsTest, NoNoticesForOpenEndedRevokedPendingOrEndedGrants) {
  Grant revoked = MakeGrant("g2", "sales", std::nullopt, t0_ + kDay);
  revoked.revoked_at = t0_;
  EXPECT_FALSE(NoticeDue(MakeGrant("g1", "sales", std::nullopt, std::nullopt), t0_, std::nullopt));
  EXPECT_FALSE(NoticeDue(revoked, t0_, std::nullopt));
  EXPECT_FALSE(
      NoticeDue(MakeGrant("g3", "sales", t0_ + absl::Hours(1), t0_ + kDay), t0_, std::nullopt));
  EXPECT_FALSE(NoticeDue(MakeGrant("g4", "sales", std::nullopt, t0_), t0_, std::nullopt));
}

TEST_F(GrantsTest, ExtendedGrantStartsItsNoticesOver) {
  const absl::Time end = t0_ + 10 * kDay;
  Grant g = MakeGrant("g1", "sales", std::nullopt, end);
  std::optional<SentNotice> last;
  auto sent = Sweep(g, clock_, end - absl::Hours(12), absl::Hours(1), last);
  ASSERT_EQ(sent.size(), 2u);  // both notices for the old end

  CRM_ASSERT_OK_AND_ASSIGN(g, Extend(g, end + 20 * kDay, clock_.Now()));
  EXPECT_FALSE(NoticeDue(g, clock_.Now(), last).has_value());  // 20.5 days left
  sent = Sweep(g, clock_, *g.not_after, absl::Hours(1), last);
  ASSERT_EQ(sent.size(), 2u);
  EXPECT_EQ(sent[0].first, ExpiryNotice::kSevenDays);
  EXPECT_EQ(sent[1].first, ExpiryNotice::kOneDay);
}

// --- who may change grants ---

PermissionSet AdminPermissions() { return AllPermissions(); }

TEST_F(GrantsTest, AdminMayGrantAnyBuiltinRoleToSomeoneElse) {
  for (const Role& role : roles_) {
    EXPECT_THAT(CanGrant(AdminPermissions(), "admin-1", "user-1", role), IsOk()) << role.name;
    EXPECT_THAT(CanExtend(AdminPermissions(), "admin-1", "user-1", role), IsOk()) << role.name;
  }
  EXPECT_THAT(CanRevoke(AdminPermissions(), "admin-1", "user-1"), IsOk());
}

TEST_F(GrantsTest, GrantingWithoutIdentityAdminIsDenied) {
  PermissionSet dpo = FindRole(roles_, "dpo")->permissions;
  EXPECT_THAT(CanGrant(dpo, "dpo-1", "user-1", *FindRole(roles_, "auditor")),
              StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr("identity.admin")));
  EXPECT_THAT(CanRevoke(dpo, "dpo-1", "user-1"),
              StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr("identity.admin")));
}

TEST_F(GrantsTest, GrantingARoleWithAPermissionTheActorLacksIsDenied) {
  // An identity admin without access to sensitive fields (a custom role).
  CRM_ASSERT_OK_AND_ASSIGN(
      Role user_admin, MakeCustomRole("user-admin",
                                      std::vector<std::string>{"identity.admin", "contacts.read",
                                                               "audit.read", "contacts.read.all"},
                                      true));
  const PermissionSet actor = user_admin.permissions;
  EXPECT_THAT(CanGrant(actor, "admin-2", "user-1", *FindRole(roles_, "auditor")), IsOk());
  EXPECT_THAT(CanGrant(actor, "admin-2", "user-1", *FindRole(roles_, "dpo")),
              StatusIs(absl::StatusCode::kPermissionDenied,
                       AllOf(HasSubstr("consent.read"), HasSubstr("contacts.read.sensitive"),
                             HasSubstr("dsr.manage"), Not(HasSubstr("audit.read")))));
  EXPECT_THAT(CanGrant(actor, "admin-2", "user-1", *FindRole(roles_, "admin")),
              StatusIs(absl::StatusCode::kPermissionDenied));
  EXPECT_THAT(CanExtend(actor, "admin-2", "user-1", *FindRole(roles_, "dpo")),
              StatusIs(absl::StatusCode::kPermissionDenied));
  // Revoking takes access away, so holding the role is not needed.
  EXPECT_THAT(CanRevoke(actor, "admin-2", "user-1"), IsOk());
}

TEST_F(GrantsTest, NobodyMayGrantExtendOrRevokeTheirOwnGrants) {
  const Role& sales = *FindRole(roles_, "sales");
  EXPECT_THAT(CanGrant(AdminPermissions(), "admin-1", "admin-1", sales),
              StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr("their own grants")));
  EXPECT_THAT(CanExtend(AdminPermissions(), "admin-1", "admin-1", sales),
              StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr("their own grants")));
  EXPECT_THAT(CanRevoke(AdminPermissions(), "admin-1", "admin-1"),
              StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr("their own grants")));
}

TEST_F(GrantsTest, AdminWhoseAdminGrantEndedCanNoLongerGrant) {
  const Grant admin_grant = MakeGrant("g1", "admin", std::nullopt, t0_ + absl::Hours(1));
  const Role& sales = *FindRole(roles_, "sales");
  EXPECT_THAT(CanGrant(EffectivePermissions({admin_grant}, roles_, clock_.Now()).permissions,
                       "admin-1", "user-1", sales),
              IsOk());
  clock_.Advance(absl::Hours(1));
  EXPECT_THAT(CanGrant(EffectivePermissions({admin_grant}, roles_, clock_.Now()).permissions,
                       "admin-1", "user-1", sales),
              StatusIs(absl::StatusCode::kPermissionDenied));
}

// --- request validation ---

GrantRequest ValidRequest(absl::Time now) {
  GrantRequest r;
  r.user_id = "user-1";
  r.role = "sales";
  r.not_before = now;
  r.not_after = now + absl::Hours(24 * 30);
  r.justification = "Vertretung während Elternzeit";  // any UTF-8 text
  return r;
}

TEST_F(GrantsTest, ValidGrantRequestsPass) {
  EXPECT_THAT(ValidateGrantRequest(ValidRequest(t0_), t0_), IsOk());
  GrantRequest open = ValidRequest(t0_);
  open.not_before.reset();
  open.not_after.reset();
  EXPECT_THAT(ValidateGrantRequest(open, t0_), IsOk());
  GrantRequest longest = ValidRequest(t0_);
  longest.justification = std::string(499, 'x') + "\xc3\xa9";  // 500 code points
  EXPECT_THAT(ValidateGrantRequest(longest, t0_), IsOk());
}

TEST_F(GrantsTest, NotAfterMustBeInTheFutureAndAfterNotBefore) {
  GrantRequest r = ValidRequest(t0_);
  r.not_after = t0_;
  EXPECT_THAT(ValidateGrantRequest(r, t0_),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("not_after: ")));
  r.not_after = t0_ - absl::Seconds(1);
  EXPECT_THAT(ValidateGrantRequest(r, t0_),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("not_after: ")));
  r.not_before = t0_ + absl::Hours(2);
  r.not_after = t0_ + absl::Hours(2);
  EXPECT_THAT(ValidateGrantRequest(r, t0_),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("not_after: must be after")));
  r.not_after = t0_ + absl::Hours(2) + absl::Seconds(1);
  EXPECT_THAT(ValidateGrantRequest(r, t0_), IsOk());
}

TEST_F(GrantsTest, JustificationIsRequiredBoundedAndValidUtf8) {
  GrantRequest r = ValidRequest(t0_);
  for (const std::string& bad : {std::string(""), std::string("   \t"), std::string(501, 'x'),
                                 std::string("bad \xff byte"), std::string("nul\0x", 5)}) {
    r.justification = bad;
    EXPECT_THAT(ValidateGrantRequest(r, t0_),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("justification: ")))
        << bad.size();
  }
}

TEST_F(GrantsTest, UserIdAndRoleAreValidated) {
  GrantRequest r = ValidRequest(t0_);
  r.user_id = "";
  EXPECT_THAT(ValidateGrantRequest(r, t0_),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("user_id: ")));
  r = ValidRequest(t0_);
  r.role = "Sales Team";
  EXPECT_THAT(ValidateGrantRequest(r, t0_),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("role: ")));
}

// --- extend and revoke ---

TEST_F(GrantsTest, ExtendMovesTheEndLaterForActiveAndPendingGrants) {
  const Grant active = MakeGrant("g1", "sales", std::nullopt, t0_ + kDay);
  CRM_ASSERT_OK_AND_ASSIGN(Grant extended, Extend(active, t0_ + 2 * kDay, t0_));
  EXPECT_EQ(extended.not_after, t0_ + 2 * kDay);
  EXPECT_EQ(extended.id, "g1");
  const Grant pending = MakeGrant("g2", "sales", t0_ + kDay, t0_ + 2 * kDay);
  EXPECT_THAT(Extend(pending, t0_ + 3 * kDay, t0_), IsOk());
}

TEST_F(GrantsTest, ExtendRefusesEarlierOrEqualEndsEndedRevokedAndOpenEndedGrants) {
  const Grant active = MakeGrant("g1", "sales", std::nullopt, t0_ + kDay);
  EXPECT_THAT(Extend(active, t0_ + kDay, t0_),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("not_after: ")));
  EXPECT_THAT(Extend(active, t0_ + absl::Hours(1), t0_),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("not_after: ")));
  EXPECT_THAT(Extend(active, t0_ + 2 * kDay, t0_ + kDay),  // ended exactly now
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("ended")));
  Grant revoked = active;
  revoked.revoked_at = t0_;
  EXPECT_THAT(Extend(revoked, t0_ + 2 * kDay, t0_),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("revoked")));
  EXPECT_THAT(Extend(MakeGrant("g3", "sales", std::nullopt, std::nullopt), t0_ + kDay, t0_),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("no end")));
}

TEST_F(GrantsTest, RevokeStopsTheGrantAtOnceAndOnlyOnce) {
  const Grant g = MakeGrant("g1", "dpo", std::nullopt, t0_ + kDay);
  CRM_ASSERT_OK_AND_ASSIGN(Grant revoked, Revoke(g, t0_));
  EXPECT_EQ(revoked.revoked_at, t0_);
  EXPECT_THAT(EffectivePermissions({revoked}, roles_, t0_).permissions, IsEmpty());
  EXPECT_THAT(Revoke(revoked, t0_),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("already revoked")));
  EXPECT_THAT(Revoke(g, t0_ + kDay),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("ended")));
}

}  // namespace
}  // namespace crm::identity
