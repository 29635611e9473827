#include "services/identity/recovery_codes.h"

#include <set>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_replace.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "libs/crypto/primitives.h"
#include "libs/testing/status_matchers.h"

namespace crm::identity {
namespace {

using ::crm::testing::IsOk;
using ::crm::testing::IsOkAndHolds;
using ::crm::testing::StatusIs;
using ::testing::HasSubstr;
using ::testing::MatchesRegex;
using ::testing::Not;

TEST(RecoveryCodesTest, GeneratesTenDistinctGroupedCodesWithTheirHashes) {
  const std::string salt = NewRecoverySalt();
  ASSERT_EQ(salt.size(), kRecoverySaltSize);
  CRM_ASSERT_OK_AND_ASSIGN(RecoveryCodeSet set, GenerateRecoveryCodes(salt));
  ASSERT_EQ(set.codes.size(), 10u);
  ASSERT_EQ(set.hashes.size(), 10u);
  std::set<std::string> distinct;
  for (size_t i = 0; i < set.codes.size(); ++i) {
    EXPECT_THAT(set.codes[i], MatchesRegex("[0-9a-hjkmnp-tv-z]{4}(-[0-9a-hjkmnp-tv-z]{4}){3}"));
    EXPECT_TRUE(distinct.insert(set.codes[i]).second);
    CRM_ASSERT_OK_AND_ASSIGN(std::string normalized, NormalizeRecoveryCode(set.codes[i]));
    EXPECT_EQ(set.hashes[i], HashRecoveryCode(salt, normalized));
    EXPECT_EQ(set.hashes[i].size(), 32u);
    // Only the hash is stored: it does not contain the code.
    EXPECT_THAT(set.hashes[i], Not(HasSubstr(normalized)));
  }
}

TEST(RecoveryCodesTest, CodesUseTheWholeAlphabet) {
  // 10 sets x 160 characters: every one of the 32 symbols shows up unless the
  // generator is broken (chance of a miss here is about 32 * (31/32)^1600).
  std::set<char> seen;
  for (int i = 0; i < 10; ++i) {
    CRM_ASSERT_OK_AND_ASSIGN(RecoveryCodeSet set, GenerateRecoveryCodes(NewRecoverySalt()));
    for (const std::string& code : set.codes) {
      for (char c : code) {
        if (c != '-') seen.insert(c);
      }
    }
  }
  EXPECT_EQ(seen.size(), 32u);
}

TEST(RecoveryCodesTest, HashDependsOnTheSalt) {
  EXPECT_NE(HashRecoveryCode("salt-a", "0123456789abcdef"),
            HashRecoveryCode("salt-b", "0123456789abcdef"));
  EXPECT_NE(HashRecoveryCode("salt-a", "0123456789abcdef"),
            HashRecoveryCode("salt-a", "0123456789abcdeg"));
  // Length-prefixed salt: moving a byte between salt and code changes the hash.
  EXPECT_NE(HashRecoveryCode("salt-a0", "123456789abcdefg"), HashRecoveryCode("salt-a",
                                                                              "0123456789abcdef"
                                                                              "g"));
  EXPECT_EQ(HashRecoveryCode("s", "0123456789abcdef"),
            crypto::Sha256(std::string("crm.recovery.v1\x01s0123456789abcdef")));
}

TEST(NormalizeRecoveryCodeTest, IgnoresCaseDashesAndSpacesAndFoldsLookAlikes) {
  EXPECT_THAT(NormalizeRecoveryCode("7k3m-q9x2-bd4t-0hwe"), IsOkAndHolds("7k3mq9x2bd4t0hwe"));
  EXPECT_THAT(NormalizeRecoveryCode("7K3M Q9X2 BD4T 0HWE"), IsOkAndHolds("7k3mq9x2bd4t0hwe"));
  EXPECT_THAT(NormalizeRecoveryCode(" 7k3mq9x2bd4t0hwe\t"), IsOkAndHolds("7k3mq9x2bd4t0hwe"));
  EXPECT_THAT(NormalizeRecoveryCode("7k3m--q9x2-bd4tOhwe"), IsOkAndHolds("7k3mq9x2bd4t0hwe"));
  EXPECT_THAT(NormalizeRecoveryCode("1111-iiii-llll-IiLl"), IsOkAndHolds("1111111111111111"));
  EXPECT_THAT(NormalizeRecoveryCode("oooo-OOOO-0000-0000"), IsOkAndHolds("0000000000000000"));
}

TEST(NormalizeRecoveryCodeTest, RejectsWrongLengthsAndForeignCharactersNamingTheField) {
  for (const std::string& bad :
       {std::string(""), std::string("----"), std::string("7k3m-q9x2-bd4t-0hw"),
        std::string("7k3m-q9x2-bd4t-0hwee"), std::string("7k3m-q9x2-bd4t-0hwu"),
        std::string("7k3m_q9x2_bd4t_0hwe"), std::string("7k3m-q9x2-bd4t-0hw\xc3\xa9"),
        std::string("7k3m-q9x2-bd4t-0hw\0", 19)}) {
    absl::StatusOr<std::string> r = NormalizeRecoveryCode(bad);
    EXPECT_THAT(r, StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("recovery_code: ")))
        << bad;
    if (!r.ok() && bad.size() > 4) {
      EXPECT_THAT(std::string(r.status().message()), Not(HasSubstr(bad.substr(0, 4))));
    }
  }
}

class ConsumeRecoveryCodeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<RecoveryCodeSet> set = GenerateRecoveryCodes(salt_);
    ASSERT_THAT(set, IsOk());
    set_ = *std::move(set);
  }
  std::string salt_ = NewRecoverySalt();
  RecoveryCodeSet set_;
};

TEST_F(ConsumeRecoveryCodeTest, FindsTheIndexOfEachCodeAsTypedInAnyForm) {
  for (size_t i = 0; i < set_.codes.size(); ++i) {
    EXPECT_THAT(ConsumeRecoveryCode(set_.codes[i], salt_, set_.hashes), IsOkAndHolds(i));
  }
  const std::string shouted =
      absl::AsciiStrToUpper(absl::StrReplaceAll(set_.codes[3], {{"-", " "}}));
  EXPECT_THAT(ConsumeRecoveryCode(shouted, salt_, set_.hashes), IsOkAndHolds(3u));
}

TEST_F(ConsumeRecoveryCodeTest, UsedUpCodeDoesNotMatchAgain) {
  CRM_ASSERT_OK_AND_ASSIGN(size_t index, ConsumeRecoveryCode(set_.codes[5], salt_, set_.hashes));
  set_.hashes[index].clear();  // what the store does with a used code
  EXPECT_THAT(ConsumeRecoveryCode(set_.codes[5], salt_, set_.hashes),
              StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(ConsumeRecoveryCode(set_.codes[6], salt_, set_.hashes), IsOkAndHolds(6u));
}

TEST_F(ConsumeRecoveryCodeTest, UnknownCodeOtherUsersSaltAndEmptyListAreNotFound) {
  EXPECT_THAT(ConsumeRecoveryCode("0000-0000-0000-0000", salt_, set_.hashes),
              StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(ConsumeRecoveryCode(set_.codes[0], NewRecoverySalt(), set_.hashes),
              StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(ConsumeRecoveryCode(set_.codes[0], salt_, {}), StatusIs(absl::StatusCode::kNotFound));
}

TEST_F(ConsumeRecoveryCodeTest, MalformedCodeOrMissingSaltIsInvalidArgument) {
  EXPECT_THAT(ConsumeRecoveryCode("123456", salt_, set_.hashes),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("recovery_code: ")));
  EXPECT_THAT(ConsumeRecoveryCode(set_.codes[0], "", set_.hashes),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("salt: ")));
  EXPECT_THAT(GenerateRecoveryCodes(""),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("salt: ")));
  EXPECT_THAT(GenerateRecoveryCodes(std::string(256, 's')),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("salt: ")));
}

}  // namespace
}  // namespace crm::identity
