#include "services/consent/rules.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "libs/testing/status_matchers.h"
#include "services/consent/ledger_chain.h"

namespace crm::consent {
namespace {

using ::crm::testing::IsOk;
using ::crm::testing::StatusIs;
using ::testing::HasSubstr;

const absl::Time kNow = absl::FromUnixSeconds(1'796'083'200);  // 2026-12-01
const std::string kNoticeV1(64, 'a');
const std::string kNoticeV2(64, 'b');
constexpr char kSubject[] = "0b6f1c3e-8d2a-4f5b-9c1d-2e3f4a5b6c7d";

v1::Purpose Newsletter() {
  v1::Purpose p;
  p.set_purpose_id("newsletter");
  p.set_basis(v1::LAWFUL_BASIS_CONSENT);
  p.set_direct_marketing(true);
  p.set_validity_days(365);
  return p;
}

v1::Purpose Analytics() {  // legitimate interest
  v1::Purpose p;
  p.set_purpose_id("analytics");
  p.set_basis(v1::LAWFUL_BASIS_LEGITIMATE_INTEREST);
  return p;
}

v1::Purpose Billing() {  // contract
  v1::Purpose p;
  p.set_purpose_id("billing");
  p.set_basis(v1::LAWFUL_BASIS_CONTRACT);
  return p;
}

void SetTime(absl::Time t, google::protobuf::Timestamp* out) {
  out->set_seconds(absl::ToUnixSeconds(t));
  out->set_nanos(0);
}

v1::LedgerEntry Entry(const std::string& purpose, v1::Action action, absl::Time at,
                      const std::string& notice = "",
                      absl::Duration validity = absl::ZeroDuration()) {
  v1::LedgerEntry e;
  e.set_subject_id(kSubject);
  e.set_purpose_id(purpose);
  e.set_action(action);
  e.set_notice_version(notice);
  SetTime(at, e.mutable_given_at());
  if (validity > absl::ZeroDuration()) SetTime(at + validity, e.mutable_expires_at());
  return e;
}

v1::Statement Statement(const std::string& purpose, const std::string& notice = "") {
  v1::Statement s;
  s.set_subject_id(kSubject);
  s.set_purpose_id(purpose);
  s.set_notice_version(notice);
  s.set_method(v1::METHOD_WEB_FORM);
  s.set_source("shop");
  return s;
}

v1::Reason ReasonOf(const v1::Purpose& p, const std::vector<v1::LedgerEntry>& entries,
                    bool restricted = false, absl::Time now = kNow) {
  v1::Decision d = Decide(p, Fold(entries, p.purpose_id()), restricted, now);
  const bool allowed =
      d.reason() == v1::REASON_GRANTED || d.reason() == v1::REASON_BASIS_NOT_CONSENT;
  EXPECT_EQ(d.allowed(), allowed) << v1::Reason_Name(d.reason());
  return d.reason();
}

TEST(DecideTest, ConsentPurposeFollowsTheLatestStatement) {
  const v1::Purpose p = Newsletter();
  const absl::Time t = kNow - absl::Hours(48);
  EXPECT_EQ(ReasonOf(p, {}), v1::REASON_NO_RECORD);
  EXPECT_EQ(ReasonOf(p, {Entry("newsletter", v1::ACTION_GRANT, t, kNoticeV1)}), v1::REASON_GRANTED);
  EXPECT_EQ(ReasonOf(p, {Entry("newsletter", v1::ACTION_GRANT, t, kNoticeV1),
                         Entry("newsletter", v1::ACTION_WITHDRAW, t + absl::Hours(1))}),
            v1::REASON_WITHDRAWN);
  EXPECT_EQ(ReasonOf(p, {Entry("newsletter", v1::ACTION_GRANT, t, kNoticeV1),
                         Entry("newsletter", v1::ACTION_WITHDRAW, t + absl::Hours(1)),
                         Entry("newsletter", v1::ACTION_GRANT, t + absl::Hours(2), kNoticeV1)}),
            v1::REASON_GRANTED);
  // Another purpose's entries do not count.
  EXPECT_EQ(ReasonOf(p, {Entry("profiling", v1::ACTION_GRANT, t, kNoticeV1)}),
            v1::REASON_NO_RECORD);
}

TEST(DecideTest, AGrantLapsesAtTheEndOfItsValidity) {
  const v1::Purpose p = Newsletter();
  const std::vector<v1::LedgerEntry> entries = {
      Entry("newsletter", v1::ACTION_GRANT, kNow - absl::Hours(10), kNoticeV1, absl::Hours(10))};
  EXPECT_EQ(ReasonOf(p, entries, false, kNow - absl::Seconds(1)), v1::REASON_GRANTED);
  EXPECT_EQ(ReasonOf(p, entries, false, kNow), v1::REASON_EXPIRED);
}

TEST(DecideTest, ObjectionHoldsUntilTheSubjectGrantsAgain) {
  const v1::Purpose p = Newsletter();
  const absl::Time t = kNow - absl::Hours(48);
  std::vector<v1::LedgerEntry> entries = {
      Entry("newsletter", v1::ACTION_GRANT, t, kNoticeV1),
      Entry("newsletter", v1::ACTION_OBJECT, t + absl::Hours(1)),
  };
  EXPECT_EQ(ReasonOf(p, entries), v1::REASON_OBJECTED);
  entries.push_back(Entry("newsletter", v1::ACTION_WITHDRAW, t + absl::Hours(2)));
  EXPECT_EQ(ReasonOf(p, entries), v1::REASON_OBJECTED);  // a withdrawal does not lift it
  entries.push_back(Entry("newsletter", v1::ACTION_GRANT, t + absl::Hours(3), kNoticeV1));
  EXPECT_EQ(ReasonOf(p, entries), v1::REASON_GRANTED);
}

TEST(DecideTest, OtherBasesAllowUnlessObjected) {
  EXPECT_EQ(ReasonOf(Billing(), {}), v1::REASON_BASIS_NOT_CONSENT);
  EXPECT_EQ(ReasonOf(Analytics(), {}), v1::REASON_BASIS_NOT_CONSENT);
  EXPECT_EQ(ReasonOf(Analytics(), {Entry("analytics", v1::ACTION_OBJECT, kNow - absl::Hours(1))}),
            v1::REASON_OBJECTED);
}

TEST(DecideTest, RestrictionDeniesEveryPurpose) {
  EXPECT_EQ(ReasonOf(Billing(), {}, /*restricted=*/true), v1::REASON_RESTRICTED);
  EXPECT_EQ(ReasonOf(Newsletter(),
                     {Entry("newsletter", v1::ACTION_GRANT, kNow - absl::Hours(1), kNoticeV1)},
                     /*restricted=*/true),
            v1::REASON_RESTRICTED);
}

absl::StatusOr<Plan> PlanFor(const v1::Purpose& p, const std::vector<v1::LedgerEntry>& entries,
                             v1::Action action, const v1::Statement& s, absl::Time at = kNow,
                             const std::string& current = kNoticeV2, bool known = true) {
  return PlanStatement(p, Fold(entries, p.purpose_id()), action, s, at, current, known);
}

TEST(PlanTest, GrantNeedsTheCurrentNoticeOfAConsentPurpose) {
  const v1::Purpose p = Newsletter();
  CRM_ASSERT_OK_AND_ASSIGN(Plan plan,
                           PlanFor(p, {}, v1::ACTION_GRANT, Statement("newsletter", kNoticeV2)));
  EXPECT_TRUE(plan.record);
  EXPECT_EQ(plan.expires_at, kNow + absl::Hours(24 * 365));
  EXPECT_THAT(PlanFor(p, {}, v1::ACTION_GRANT, Statement("newsletter")),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("notice_version: required")));
  EXPECT_THAT(PlanFor(p, {}, v1::ACTION_GRANT, Statement("newsletter", kNoticeV1)),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr(kNoticeV2)));
  EXPECT_THAT(PlanFor(p, {}, v1::ACTION_GRANT, Statement("newsletter", kNoticeV1), kNow, kNoticeV2,
                      /*known=*/false),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("not a notice")));
  EXPECT_THAT(PlanFor(Billing(), {}, v1::ACTION_GRANT, Statement("billing", kNoticeV2)),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("not consent")));
}

TEST(PlanTest, RepeatedStatementsChangeNothing) {
  const v1::Purpose p = Newsletter();
  const absl::Time t = kNow - absl::Hours(1);
  const std::vector<v1::LedgerEntry> granted = {
      Entry("newsletter", v1::ACTION_GRANT, t, kNoticeV2, absl::Hours(24 * 365))};
  CRM_ASSERT_OK_AND_ASSIGN(
      Plan again, PlanFor(p, granted, v1::ACTION_GRANT, Statement("newsletter", kNoticeV2)));
  EXPECT_FALSE(again.record);
  // Withdrawing with nothing in force records nothing.
  CRM_ASSERT_OK_AND_ASSIGN(Plan none, PlanFor(p, {}, v1::ACTION_WITHDRAW, Statement("newsletter")));
  EXPECT_FALSE(none.record);
  CRM_ASSERT_OK_AND_ASSIGN(Plan withdraw,
                           PlanFor(p, granted, v1::ACTION_WITHDRAW, Statement("newsletter")));
  EXPECT_TRUE(withdraw.record);
  // An expired grant is renewed by the same notice.
  const std::vector<v1::LedgerEntry> lapsed = {
      Entry("newsletter", v1::ACTION_GRANT, t, kNoticeV2, absl::Minutes(30))};
  CRM_ASSERT_OK_AND_ASSIGN(
      Plan renew, PlanFor(p, lapsed, v1::ACTION_GRANT, Statement("newsletter", kNoticeV2)));
  EXPECT_TRUE(renew.record);
  // An objection in force is not recorded twice.
  const std::vector<v1::LedgerEntry> objected = {Entry("newsletter", v1::ACTION_OBJECT, t)};
  CRM_ASSERT_OK_AND_ASSIGN(Plan twice,
                           PlanFor(p, objected, v1::ACTION_OBJECT, Statement("newsletter")));
  EXPECT_FALSE(twice.record);
}

TEST(PlanTest, ObjectionOnlyWhereArticle21Applies) {
  CRM_ASSERT_OK_AND_ASSIGN(Plan li,
                           PlanFor(Analytics(), {}, v1::ACTION_OBJECT, Statement("analytics")));
  EXPECT_TRUE(li.record);
  CRM_ASSERT_OK_AND_ASSIGN(Plan dm,
                           PlanFor(Newsletter(), {}, v1::ACTION_OBJECT, Statement("newsletter")));
  EXPECT_TRUE(dm.record);
  EXPECT_THAT(PlanFor(Billing(), {}, v1::ACTION_OBJECT, Statement("billing")),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("Art. 21")));
}

TEST(PlanTest, AStatementMayNotPrecedeTheLatestEntry) {
  const std::vector<v1::LedgerEntry> granted = {
      Entry("newsletter", v1::ACTION_GRANT, kNow - absl::Hours(1), kNoticeV2)};
  EXPECT_THAT(PlanFor(Newsletter(), granted, v1::ACTION_WITHDRAW, Statement("newsletter"),
                      kNow - absl::Hours(2)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("statement.given_at")));
}

TEST(ValidateStatementTest, RefusesEachBadFieldByName) {
  EXPECT_THAT(ValidateStatement(Statement("newsletter"), kNow), IsOk());
  struct Case {
    const char* field;
    void (*mutate)(v1::Statement&);
  };
  const Case cases[] = {
      {"statement.subject_id", [](v1::Statement& s) { s.set_subject_id("42"); }},
      {"statement.subject_id", [](v1::Statement& s) { s.set_subject_id("' OR 1=1 --"); }},
      {"statement.purpose_id", [](v1::Statement& s) { s.set_purpose_id(""); }},
      {"statement.purpose_id", [](v1::Statement& s) { s.set_purpose_id("News Letter"); }},
      {"statement.purpose_id", [](v1::Statement& s) { s.set_purpose_id(std::string(65, 'a')); }},
      {"statement.source", [](v1::Statement& s) { s.set_source(""); }},
      {"statement.method", [](v1::Statement& s) { s.set_method(v1::METHOD_UNSPECIFIED); }},
      {"statement.method", [](v1::Statement& s) { s.set_method(static_cast<v1::Method>(99)); }},
      {"statement.language", [](v1::Statement& s) { s.set_language("EN"); }},
      {"statement.language", [](v1::Statement& s) { s.set_language("english"); }},
      {"statement.notice_version", [](v1::Statement& s) { s.set_notice_version("abc"); }},
      {"statement.notice_version",
       [](v1::Statement& s) { s.set_notice_version(std::string(64, 'G')); }},
      {"statement.given_at",
       [](v1::Statement& s) { SetTime(kNow + absl::Minutes(6), s.mutable_given_at()); }},
      {"statement.given_at", [](v1::Statement& s) { s.mutable_given_at()->set_nanos(-1); }},
      {"statement.source_address",
       [](v1::Statement& s) { s.set_source_address(std::string(65, '1')); }},
      {"statement.user_agent", [](v1::Statement& s) { s.set_user_agent("bad\xff"); }},
  };
  for (const Case& c : cases) {
    v1::Statement s = Statement("newsletter");
    c.mutate(s);
    EXPECT_THAT(ValidateStatement(s, kNow),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(c.field)))
        << c.field;
  }
  // Within the allowed clock skew is fine.
  v1::Statement skewed = Statement("newsletter");
  SetTime(kNow + absl::Minutes(4), skewed.mutable_given_at());
  EXPECT_THAT(ValidateStatement(skewed, kNow), IsOk());
}

// ---- The chain ------------------------------------------------------------------------

std::vector<v1::LedgerEntry> Chain(int n) {
  std::vector<v1::LedgerEntry> out;
  for (int i = 0; i < n; ++i) {
    v1::LedgerEntry e = Entry("newsletter", i % 2 == 0 ? v1::ACTION_GRANT : v1::ACTION_WITHDRAW,
                              kNow + absl::Minutes(i), i % 2 == 0 ? kNoticeV1 : "");
    e.set_method(v1::METHOD_WEB_FORM);
    e.set_source("shop");
    e.set_actor("subject");
    SetTime(kNow + absl::Minutes(i), e.mutable_recorded_at());
    Link(e, out.empty() ? nullptr : &out.back());
    out.push_back(e);
  }
  return out;
}

TEST(LedgerChainTest, AnIntactChainVerifies) {
  const std::vector<v1::LedgerEntry> chain = Chain(5);
  EXPECT_EQ(chain[0].sequence(), 1);
  EXPECT_EQ(chain[0].previous_hash(), "");
  EXPECT_EQ(chain[4].previous_hash(), chain[3].entry_hash());
  EXPECT_EQ(chain[4].entry_hash().size(), 64u);
  EXPECT_EQ(FirstBroken(chain), 0);
  EXPECT_EQ(FirstBroken({}), 0);
}

TEST(LedgerChainTest, EditsGapsInsertionsAndReorderingAreFound) {
  {
    std::vector<v1::LedgerEntry> c = Chain(5);
    ASSERT_EQ(c[1].action(), v1::ACTION_WITHDRAW);
    c[1].set_action(v1::ACTION_GRANT);  // a withdrawal rewritten as a grant
    EXPECT_EQ(FirstBroken(c), 2);
  }
  {
    std::vector<v1::LedgerEntry> c = Chain(5);
    c[3].mutable_given_at()->set_seconds(c[3].given_at().seconds() - 1);  // back-dated
    EXPECT_EQ(FirstBroken(c), 4);
  }
  {
    std::vector<v1::LedgerEntry> c = Chain(5);
    c.erase(c.begin() + 1);  // a gap
    EXPECT_EQ(FirstBroken(c), 2);
  }
  {
    std::vector<v1::LedgerEntry> c = Chain(5);
    std::swap(c[1], c[2]);
    EXPECT_EQ(FirstBroken(c), 2);
  }
  {
    // An edit with the hash recomputed still breaks the next link.
    std::vector<v1::LedgerEntry> c = Chain(5);
    c[1].set_source("forged");
    c[1].set_entry_hash(EntryHash(c[1]));
    EXPECT_EQ(FirstBroken(c), 3);
  }
  {
    std::vector<v1::LedgerEntry> c = Chain(5);
    c.pop_back();  // truncation at the end is not detectable from the chain alone
    EXPECT_EQ(FirstBroken(c), 0);
  }
}

TEST(LedgerChainTest, FieldsAreLengthPrefixedSoBoundariesCannotShift) {
  v1::LedgerEntry a = Chain(1)[0];
  v1::LedgerEntry b = a;
  a.set_source("ab");
  a.set_actor("c");
  b.set_source("a");
  b.set_actor("bc");
  EXPECT_NE(CanonicalEntry(a), CanonicalEntry(b));
  EXPECT_NE(EntryHash(a), EntryHash(b));
}

}  // namespace
}  // namespace crm::consent
