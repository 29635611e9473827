#include "services/identity/password_policy.h"

#include <algorithm>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
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
using VC = ViolationCode;

// A password that breaks no rule.
constexpr absl::string_view kGood = "Tr1cky-Walrus-Orbit";

class PasswordPolicyTest : public ::testing::Test {
 protected:
  PasswordPolicyTest()
      : hasher_(*PasswordHasher::Create({.memory_kib = 64, .iterations = 1, .parallelism = 1})),
        policy_(*PasswordPolicy::Create()) {}

  std::vector<ViolationCode> Codes(absl::string_view password, absl::string_view username = "",
                                   absl::string_view email = "",
                                   const std::vector<std::string>& history = {}) {
    absl::StatusOr<std::vector<Violation>> v = policy_.Check(
        password,
        PolicyContext{
            .username = username, .email = email, .previous_hashes = history, .hasher = hasher_});
    EXPECT_THAT(v, IsOk());
    std::vector<ViolationCode> codes;
    if (v.ok()) {
      for (const Violation& x : *v) codes.push_back(x.code);
    }
    return codes;
  }

  std::string HashOf(absl::string_view password) { return *hasher_.Hash(password); }

  PasswordHasher hasher_;
  PasswordPolicy policy_;
};

TEST_F(PasswordPolicyTest, AcceptsAGoodPassword) {
  EXPECT_THAT(Codes(kGood, "alice", "alice@example.com", {HashOf("Another-Good-One-9")}),
              IsEmpty());
}

TEST_F(PasswordPolicyTest, TooShort) {
  EXPECT_THAT(Codes("Xk9#mQ2!vLz"), ElementsAre(VC::kTooShort));  // 11
  EXPECT_THAT(Codes("Xk9#mQ2!vLzW"), IsEmpty());                  // 12
}

TEST_F(PasswordPolicyTest, LengthCountsCodePointsNotBytes) {
  std::string eleven, twelve;
  for (int i = 0; i < 11; ++i) eleven += "\xc3\xa9";  // é: 2 bytes each
  twelve = eleven + "\xc3\xa9";
  EXPECT_THAT(Codes(eleven), ElementsAre(VC::kTooShort));  // 22 bytes, 11 characters
  EXPECT_THAT(Codes(twelve), IsEmpty());
}

TEST_F(PasswordPolicyTest, TooLong) {
  const std::string at_max = "Zq" + std::string(126, 'x');
  EXPECT_THAT(Codes(at_max), IsEmpty());
  EXPECT_THAT(Codes(at_max + "y"), ElementsAre(VC::kTooLong));
}

TEST_F(PasswordPolicyTest, OverTheByteCapIsOnlyTooLong) {
  // 1 MB of something that would also be invalid UTF-8 and contain the
  // username: only the cheap byte cap is applied.
  std::string huge(1 << 20, '\xff');
  EXPECT_THAT(Codes(huge, "alice"), ElementsAre(VC::kTooLong));
  EXPECT_THAT(Codes(std::string(kMaxPasswordBytes + 1, 'a')), ElementsAre(VC::kTooLong));
}

TEST_F(PasswordPolicyTest, ConfiguredLengthsApply) {
  PasswordPolicy policy = *PasswordPolicy::Create({.min_length = 16, .max_length = 20});
  auto codes = [&](absl::string_view pw) {
    absl::StatusOr<std::vector<Violation>> v =
        policy.Check(pw, PolicyContext{.username = "", .email = "", .hasher = hasher_});
    EXPECT_THAT(v, IsOk());
    std::vector<ViolationCode> out;
    if (v.ok()) {
      for (const Violation& x : *v) out.push_back(x.code);
    }
    return out;
  };
  EXPECT_THAT(codes("Tr1cky-Walrus-O"), ElementsAre(VC::kTooShort));  // 15
  EXPECT_THAT(codes("Tr1cky-Walrus-Or"), IsEmpty());                  // 16
  EXPECT_THAT(codes("Tr1cky-Walrus-Orbit-"), IsEmpty());              // 20
  EXPECT_THAT(codes("Tr1cky-Walrus-Orbit-X"), ElementsAre(VC::kTooLong));
}

TEST_F(PasswordPolicyTest, InvalidUtf8IsReportedAlone) {
  EXPECT_THAT(Codes(std::string("short\xff")), ElementsAre(VC::kInvalidUtf8));
  EXPECT_THAT(Codes(std::string("Tr1cky-Walrus\0Orbit", 19)), ElementsAre(VC::kInvalidUtf8));
  EXPECT_THAT(Codes(std::string("Tr1cky-\xed\xa0\x80-Walrus")), ElementsAre(VC::kInvalidUtf8));
}

TEST_F(PasswordPolicyTest, ContainsUsernameCaseInsensitively) {
  EXPECT_THAT(Codes("My-ALICE-Orbit-77", "alice"), ElementsAre(VC::kContainsUsername));
  EXPECT_THAT(Codes("My-alice-Orbit-77", "AlIcE"), ElementsAre(VC::kContainsUsername));
  EXPECT_THAT(Codes("My-alic-Orbit-77", "alice"), IsEmpty());
}

TEST_F(PasswordPolicyTest, VeryShortUsernamesAreNotLookedFor) {
  EXPECT_THAT(Codes("Tr1cky-Walrus-Orbit", "al"), IsEmpty());
  EXPECT_THAT(Codes("Tr1cky-Walrus-Orbit", "tr1"), ElementsAre(VC::kContainsUsername));
}

TEST_F(PasswordPolicyTest, ContainsEmailAddressOrLocalPart) {
  const absl::string_view email = "Bob.Smith+crm@Example.com";
  EXPECT_THAT(Codes("x-bob.smith+crm@example.com-1", "", email),
              ElementsAre(VC::kContainsEmail));                                           // whole
  EXPECT_THAT(Codes("Zz-BOB.SMITH+CRM-99", "", email), ElementsAre(VC::kContainsEmail));  // local
  EXPECT_THAT(Codes("Zz-bob.smith-99-Qq", "", email), ElementsAre(VC::kContainsEmail));  // untagged
  EXPECT_THAT(Codes("Zz-bob-smith-99-Qq", "", email), IsEmpty());
  EXPECT_THAT(Codes("Zz-example.com-99", "", email), IsEmpty());  // the domain alone is fine
}

TEST_F(PasswordPolicyTest, CommonPasswordAndItsPaddedVariants) {
  for (absl::string_view pw : {
           "qwertyuiop123",     // rule 1: on the list as it is
           "QwertyUiop123",     // rule 1, case-insensitive
           "Password123!",      // rule 2: trailing "!" -> "password123"
           "password12345!!!",  // rule 2: trailing run, longer
           "Blink182!!!!",      // rule 2 only: "blink182" is listed, "blink" is not
           "sunshine!2024??",   // rule 2: all padding stripped -> "sunshine"
           "2024!!!iloveyou",   // rule 3: leading run
           "!!!1234password",   // rule 3
           "!!!!1qaz2wsx",      // rule 3 only: the listed entry starts with a digit
           "1234Football!!!!",  // rule 4: both runs -> "football"
           "  baseball 2024  ",
       }) {
    EXPECT_THAT(Codes(pw), ElementsAre(VC::kCommonPassword)) << pw;
    EXPECT_TRUE(IsCommonPassword(pw)) << pw;
  }
}

TEST_F(PasswordPolicyTest, UncommonPasswordsAndInnerPaddingPass) {
  for (absl::string_view pw : {"Tr1cky-Walrus-Orbit", "pass1234word!", "1234pass1234word",
                               "footb4ll-is-fun", "sunshinx123456"}) {
    EXPECT_FALSE(IsCommonPassword(pw)) << pw;
  }
  EXPECT_FALSE(IsCommonPassword(""));
  EXPECT_FALSE(IsCommonPassword("!!!!!!!!!!!!"));
}

TEST_F(PasswordPolicyTest, EmbeddedListIsSortedUniqueLowerCaseAndLargeEnough) {
  const absl::Span<const absl::string_view> list = CommonPasswordList();
  EXPECT_GT(list.size(), 2000u);
  EXPECT_TRUE(std::is_sorted(list.begin(), list.end()));
  EXPECT_EQ(std::adjacent_find(list.begin(), list.end()), list.end());
  for (absl::string_view w : list) {
    EXPECT_GE(w.size(), 8u) << w;
    EXPECT_EQ(absl::AsciiStrToLower(w), w);
  }
  EXPECT_TRUE(std::binary_search(list.begin(), list.end(), "password"));
  EXPECT_TRUE(std::binary_search(list.begin(), list.end(), "iloveyou"));
}

TEST_F(PasswordPolicyTest, ReusedWithinTheLastFive) {
  const std::string pw = "Tr1cky-Walrus-Orbit";
  std::vector<std::string> history;
  for (int i = 0; i < 6; ++i) history.push_back(HashOf("Older-Password-" + std::to_string(i)));

  std::vector<std::string> newest = history;
  newest[0] = HashOf(pw);
  EXPECT_THAT(Codes(pw, "", "", newest), ElementsAre(VC::kReused));

  std::vector<std::string> fifth = history;
  fifth[4] = HashOf(pw);
  EXPECT_THAT(Codes(pw, "", "", fifth), ElementsAre(VC::kReused));

  std::vector<std::string> sixth = history;
  sixth[5] = HashOf(pw);
  EXPECT_THAT(Codes(pw, "", "", sixth), IsEmpty());

  EXPECT_THAT(Codes(pw, "", "", history), IsEmpty());
}

TEST_F(PasswordPolicyTest, HistorySizeZeroDisablesReuse) {
  PasswordPolicy policy = *PasswordPolicy::Create({.history_size = 0});
  const std::vector<std::string> history = {HashOf(kGood)};
  absl::StatusOr<std::vector<Violation>> v =
      policy.Check(kGood, PolicyContext{.previous_hashes = history, .hasher = hasher_});
  ASSERT_THAT(v, IsOk());
  EXPECT_THAT(*v, IsEmpty());
}

TEST_F(PasswordPolicyTest, MalformedStoredHashIsDataLoss) {
  const std::vector<std::string> history = {"$argon2id$v=19$not-a-hash"};
  EXPECT_THAT(policy_.Check(kGood, PolicyContext{.previous_hashes = history, .hasher = hasher_}),
              StatusIs(absl::StatusCode::kDataLoss));
}

TEST_F(PasswordPolicyTest, ReportsEveryViolationAtOnceInTableOrder) {
  // 9 characters, the username, the e-mail's local part, common, and reused.
  EXPECT_THAT(Codes("Sunshine1", "sunshine", "sunshine@example.com", {HashOf("Sunshine1")}),
              ElementsAre(VC::kTooShort, VC::kContainsUsername, VC::kContainsEmail,
                          VC::kCommonPassword, VC::kReused));
  // 129 characters containing the username: both, and no reuse check.
  EXPECT_THAT(Codes("alice" + std::string(124, 'x'), "alice", "", {"garbage hash"}),
              ElementsAre(VC::kTooLong, VC::kContainsUsername));
}

TEST_F(PasswordPolicyTest, MessagesNameNoSecretOrPersonalData) {
  absl::StatusOr<std::vector<Violation>> v =
      policy_.Check("Sunshine1", PolicyContext{.username = "sunshine",
                                               .email = "sunshine@example.com",
                                               .previous_hashes = {},
                                               .hasher = hasher_});
  ASSERT_THAT(v, IsOk());
  ASSERT_EQ(v->size(), 4u);
  for (const Violation& x : *v) {
    EXPECT_FALSE(x.message.empty());
    EXPECT_THAT(absl::AsciiStrToLower(x.message),
                AllOf(Not(HasSubstr("sunshine")), Not(HasSubstr("example"))));
  }
}

TEST_F(PasswordPolicyTest, ToStatusListsEveryReason) {
  EXPECT_THAT(ToStatus({}), IsOk());
  absl::StatusOr<std::vector<Violation>> v = policy_.Check(
      "Sunshine1", PolicyContext{.username = "sunshine", .email = "", .hasher = hasher_});
  ASSERT_THAT(v, IsOk());
  const absl::Status s = ToStatus(*v);
  EXPECT_THAT(s,
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("password: "), HasSubstr("too_short: "),
                             HasSubstr("at least 12 characters"), HasSubstr("contains_username: "),
                             HasSubstr("common_password: "), Not(HasSubstr("Sunshine1")))));
  ASSERT_TRUE(s.GetPayload(kPasswordViolationsPayload).has_value());
  EXPECT_EQ(std::string(*s.GetPayload(kPasswordViolationsPayload)),
            "too_short,contains_username,common_password");
}

TEST_F(PasswordPolicyTest, CodeNamesAreStable) {
  EXPECT_EQ(ViolationCodeName(VC::kInvalidUtf8), "invalid_utf8");
  EXPECT_EQ(ViolationCodeName(VC::kTooShort), "too_short");
  EXPECT_EQ(ViolationCodeName(VC::kTooLong), "too_long");
  EXPECT_EQ(ViolationCodeName(VC::kContainsUsername), "contains_username");
  EXPECT_EQ(ViolationCodeName(VC::kContainsEmail), "contains_email");
  EXPECT_EQ(ViolationCodeName(VC::kCommonPassword), "common_password");
  EXPECT_EQ(ViolationCodeName(VC::kReused), "reused");
}

TEST_F(PasswordPolicyTest, CreateRejectsBadParams) {
  EXPECT_THAT(PasswordPolicy::Create({.min_length = 0}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("min_length")));
  EXPECT_THAT(PasswordPolicy::Create({.min_length = 20, .max_length = 19}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("min_length")));
  EXPECT_THAT(PasswordPolicy::Create({.max_length = kMaxPasswordCodePoints + 1}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("max_length")));
  EXPECT_THAT(PasswordPolicy::Create({.min_identifier_length = 0}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("min_identifier_length")));
}

}  // namespace
}  // namespace crm::identity
