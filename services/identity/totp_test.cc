#include "services/identity/totp.h"

#include <string>

#include "absl/strings/match.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "libs/base/clock.h"
#include "libs/testing/status_matchers.h"

namespace crm::identity {
namespace {

using ::crm::testing::IsOk;
using ::crm::testing::IsOkAndHolds;
using ::crm::testing::StatusIs;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

crypto::SecretBytes RfcSecret() { return crypto::SecretBytes::CopyFrom("12345678901234567890"); }

absl::Time At(int64_t unix_seconds) { return absl::FromUnixSeconds(unix_seconds); }

TEST(Base32Test, MatchesRfc4648VectorsWithoutPadding) {
  EXPECT_EQ(Base32Encode(""), "");
  EXPECT_EQ(Base32Encode("f"), "MY");
  EXPECT_EQ(Base32Encode("fo"), "MZXQ");
  EXPECT_EQ(Base32Encode("foo"), "MZXW6");
  EXPECT_EQ(Base32Encode("foob"), "MZXW6YQ");
  EXPECT_EQ(Base32Encode("fooba"), "MZXW6YTB");
  EXPECT_EQ(Base32Encode("foobar"), "MZXW6YTBOI");
  EXPECT_EQ(Base32Encode("12345678901234567890"), "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
}

TEST(Base32Test, DecodesWhatItEncodesAndRejectsGarbageWithoutEchoingIt) {
  const crypto::SecretBytes secret = NewTotpSecret();
  ASSERT_EQ(secret.size(), kTotpSecretSize);
  CRM_ASSERT_OK_AND_ASSIGN(crypto::SecretBytes back,
                           Base32Decode("secret", Base32Encode(secret.view())));
  EXPECT_EQ(back.view(), secret.view());
  CRM_ASSERT_OK_AND_ASSIGN(back, Base32Decode("secret", "mzxw6ytboi"));
  EXPECT_EQ(back.view(), "foobar");

  EXPECT_THAT(Base32Decode("secret", "MZXW6YT1"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("secret: ")));
  EXPECT_THAT(Base32Decode("secret", "MZX"), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(Base32Decode("secret", "MZ======"), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(Base32Decode("secret", "MY"), IsOk());
  EXPECT_THAT(Base32Decode("secret", "MZ"), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(Base32Decode("secret", "MB"),  // leftover bits set: not canonical
              StatusIs(absl::StatusCode::kInvalidArgument));
  absl::StatusOr<crypto::SecretBytes> bad = Base32Decode("secret", "SECRETVALUE!");
  ASSERT_THAT(bad, Not(IsOk()));
  EXPECT_THAT(std::string(bad.status().message()), Not(HasSubstr("SECRETVALUE")));
}

TEST(NewTotpSecretTest, IsTwentyFreshRandomBytes) {
  const crypto::SecretBytes a = NewTotpSecret();
  const crypto::SecretBytes b = NewTotpSecret();
  EXPECT_EQ(a.size(), 20u);
  EXPECT_NE(a.view(), b.view());
}

TEST(ProvisioningUriTest, HasTheKeyUriFormatWithTheBase32Secret) {
  EXPECT_THAT(ProvisioningUri("3f1c9a2e-7d41-4b8e-9a0c-5e6f7a8b9c0d", RfcSecret()),
              IsOkAndHolds("otpauth://totp/CRM:3f1c9a2e-7d41-4b8e-9a0c-5e6f7a8b9c0d"
                           "?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=CRM&algorithm=SHA1"
                           "&digits=6&period=30"));
}

TEST(ProvisioningUriTest, RefusesLabelsThatNeedEscapingOrLookLikeMailAddresses) {
  for (const std::string& bad :
       {std::string(""), std::string("jane.doe@example.com"), std::string("Jane Doe"),
        std::string("a:b"), std::string("a?secret=x"), std::string(65, 'a'),
        std::string("j\xc3\xa9r\xc3\xb4me")}) {
    absl::StatusOr<std::string> uri = ProvisioningUri(bad, RfcSecret());
    EXPECT_THAT(uri, StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("account_id: ")))
        << bad;
    if (!bad.empty() && !uri.ok()) {
      EXPECT_THAT(std::string(uri.status().message()), Not(HasSubstr(bad)));
    }
  }
  EXPECT_THAT(ProvisioningUri("user-1", crypto::SecretBytes()),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("secret: ")));
}

TEST(HotpTest, MatchesRfc4226AppendixD) {
  const char* const kExpected[] = {"755224", "287082", "359152", "969429", "338314",
                                   "254676", "287922", "162583", "399871", "520489"};
  for (uint64_t counter = 0; counter < 10; ++counter) {
    EXPECT_THAT(HotpCode(RfcSecret(), counter), IsOkAndHolds(kExpected[counter])) << counter;
  }
}

TEST(HotpTest, RefusesEmptySecretsAndUnsupportedDigitCounts) {
  EXPECT_THAT(HotpCode(crypto::SecretBytes(), 0), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(HotpCode(RfcSecret(), 0, 5), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(HotpCode(RfcSecret(), 0, 9), StatusIs(absl::StatusCode::kInvalidArgument));
}

struct Rfc6238Vector {
  int64_t unix_seconds;
  const char* code8;
};

// RFC 6238, Appendix B, SHA-1 rows.
constexpr Rfc6238Vector kRfc6238Sha1[] = {
    {59, "94287082"},         {1111111109, "07081804"}, {1111111111, "14050471"},
    {1234567890, "89005924"}, {2000000000, "69279037"}, {20000000000, "65353130"},
};

TEST(TotpTest, MatchesRfc6238AppendixBWithEightDigits) {
  for (const Rfc6238Vector& v : kRfc6238Sha1) {
    EXPECT_THAT(TotpCode(RfcSecret(), At(v.unix_seconds), 8), IsOkAndHolds(v.code8))
        << v.unix_seconds;
  }
}

TEST(TotpTest, SixDigitCodeIsTheLastSixDigitsOfTheRfcVector) {
  for (const Rfc6238Vector& v : kRfc6238Sha1) {
    EXPECT_THAT(TotpCode(RfcSecret(), At(v.unix_seconds)), IsOkAndHolds(std::string(v.code8 + 2)))
        << v.unix_seconds;
  }
}

TEST(TotpTest, StepsAreThirtySecondsFromTheEpoch) {
  EXPECT_THAT(TotpStep(At(0)), IsOkAndHolds(0));
  EXPECT_THAT(TotpStep(At(29)), IsOkAndHolds(0));
  EXPECT_THAT(TotpStep(At(30)), IsOkAndHolds(1));
  EXPECT_THAT(TotpStep(At(59) + absl::Milliseconds(999)), IsOkAndHolds(1));
  EXPECT_THAT(TotpStep(At(20000000000)), IsOkAndHolds(666666666));
  EXPECT_THAT(TotpStep(At(-1)), StatusIs(absl::StatusCode::kInvalidArgument));
}

class VerifyTotpTest : public ::testing::Test {
 protected:
  std::string CodeAt(absl::Time t) {
    absl::StatusOr<std::string> code = TotpCode(secret_, t);
    EXPECT_THAT(code, IsOk());
    return code.ok() ? *code : "";
  }
  int64_t StepAt(absl::Time t) { return *TotpStep(t); }

  crypto::SecretBytes secret_ = RfcSecret();
  // 1111111111 is 1 s into its step, so 29 s remain in it.
  base::FakeClock clock_{At(1111111111)};
};

TEST_F(VerifyTotpTest, AcceptsTheCurrentCodeAndReturnsItsStep) {
  EXPECT_THAT(VerifyTotp(secret_, "050471", clock_.Now(), std::nullopt),
              IsOkAndHolds(StepAt(clock_.Now())));
}

TEST_F(VerifyTotpTest, AcceptsThePreviousAndNextStepButNotTwoAway) {
  const absl::Time now = clock_.Now();
  const int64_t step = StepAt(now);
  EXPECT_THAT(VerifyTotp(secret_, CodeAt(now - absl::Seconds(30)), now, std::nullopt),
              IsOkAndHolds(step - 1));
  EXPECT_THAT(VerifyTotp(secret_, CodeAt(now + absl::Seconds(30)), now, std::nullopt),
              IsOkAndHolds(step + 1));
  EXPECT_THAT(VerifyTotp(secret_, CodeAt(now - absl::Seconds(60)), now, std::nullopt),
              StatusIs(absl::StatusCode::kUnauthenticated, HasSubstr("does not match")));
  EXPECT_THAT(VerifyTotp(secret_, CodeAt(now + absl::Seconds(60)), now, std::nullopt),
              StatusIs(absl::StatusCode::kUnauthenticated, HasSubstr("does not match")));
}

TEST_F(VerifyTotpTest, CodeStaysValidUntilTheEndOfTheNextStep) {
  const std::string code = CodeAt(clock_.Now());
  const int64_t step = StepAt(clock_.Now());
  clock_.Advance(absl::Seconds(29 + 30 - 1));  // last second of step + 1
  EXPECT_THAT(VerifyTotp(secret_, code, clock_.Now(), std::nullopt), IsOkAndHolds(step));
  clock_.Advance(absl::Seconds(1));  // first second of step + 2
  EXPECT_THAT(VerifyTotp(secret_, code, clock_.Now(), std::nullopt),
              StatusIs(absl::StatusCode::kUnauthenticated));
}

TEST_F(VerifyTotpTest, ACodeCannotBeUsedTwice) {
  const std::string code = CodeAt(clock_.Now());
  CRM_ASSERT_OK_AND_ASSIGN(const int64_t used,
                           VerifyTotp(secret_, code, clock_.Now(), std::nullopt));
  EXPECT_THAT(VerifyTotp(secret_, code, clock_.Now(), used),
              StatusIs(absl::StatusCode::kUnauthenticated, HasSubstr("already used")));
  clock_.Advance(absl::Seconds(30));  // still inside the window, still refused
  EXPECT_THAT(VerifyTotp(secret_, code, clock_.Now(), used),
              StatusIs(absl::StatusCode::kUnauthenticated, HasSubstr("already used")));
  // The next step's code is fine.
  EXPECT_THAT(VerifyTotp(secret_, CodeAt(clock_.Now()), clock_.Now(), used),
              IsOkAndHolds(used + 1));
}

TEST_F(VerifyTotpTest, AnOlderCodeIsRefusedAfterANewerOneWasUsed) {
  const absl::Time now = clock_.Now();
  const std::string previous = CodeAt(now - absl::Seconds(30));
  CRM_ASSERT_OK_AND_ASSIGN(const int64_t used,
                           VerifyTotp(secret_, CodeAt(now + absl::Seconds(30)), now, std::nullopt));
  EXPECT_THAT(VerifyTotp(secret_, previous, now, used),
              StatusIs(absl::StatusCode::kUnauthenticated, HasSubstr("already used")));
  EXPECT_THAT(VerifyTotp(secret_, CodeAt(now), now, used),
              StatusIs(absl::StatusCode::kUnauthenticated, HasSubstr("already used")));
}

TEST_F(VerifyTotpTest, CodeMatchingTwoStepsOfTheWindowIsRecordedAtTheLaterOne) {
  // Found by search: with the RFC secret, steps 61331809 and 61331811 share
  // the 6-digit code 768734 (61331810 does not). At step 61331810 both lie in
  // the window; recording the earlier would let the code pass a second time.
  const absl::Time now = At(61331810LL * 30);
  ASSERT_EQ(CodeAt(now - absl::Seconds(30)), "768734");
  ASSERT_EQ(CodeAt(now + absl::Seconds(30)), "768734");
  ASSERT_NE(CodeAt(now), "768734");
  CRM_ASSERT_OK_AND_ASSIGN(const int64_t used, VerifyTotp(secret_, "768734", now, std::nullopt));
  EXPECT_EQ(used, 61331811);
  EXPECT_THAT(VerifyTotp(secret_, "768734", now, used),
              StatusIs(absl::StatusCode::kUnauthenticated, HasSubstr("already used")));
  // With the earlier step already used, the later one still counts once.
  EXPECT_THAT(VerifyTotp(secret_, "768734", now, 61331809), IsOkAndHolds(61331811));
}

TEST_F(VerifyTotpTest, WrongCodeIsUnauthenticatedAndOtherSecretsCodesDoNotPass) {
  const crypto::SecretBytes other = NewTotpSecret();
  CRM_ASSERT_OK_AND_ASSIGN(const std::string other_code, TotpCode(other, clock_.Now()));
  if (other_code != CodeAt(clock_.Now()) &&
      other_code != CodeAt(clock_.Now() - absl::Seconds(30)) &&
      other_code != CodeAt(clock_.Now() + absl::Seconds(30))) {
    EXPECT_THAT(VerifyTotp(secret_, other_code, clock_.Now(), std::nullopt),
                StatusIs(absl::StatusCode::kUnauthenticated));
  }
  EXPECT_THAT(VerifyTotp(secret_, "000000", clock_.Now(), std::nullopt),
              StatusIs(absl::StatusCode::kUnauthenticated, HasSubstr("totp_code")));
}

TEST_F(VerifyTotpTest, MalformedCodesAreInvalidArgumentNamingTheField) {
  const std::string good = CodeAt(clock_.Now());
  for (const std::string& bad :
       {std::string(""), std::string("12345"), std::string("1234567"),
        good.substr(0, 3) + " " + good.substr(3), std::string("12a456"), std::string("+12345"),
        std::string("-12345"), std::string(" ") + good.substr(1),
        good.substr(0, 5) + std::string(1, '\0'),
        std::string("\xd9\xa1\xd9\xa2\xd9\xa3"),  // Arabic-Indic digits are not ASCII
        "0" + good}) {
    EXPECT_THAT(VerifyTotp(secret_, bad, clock_.Now(), std::nullopt),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("totp_code: ")))
        << bad;
  }
}

TEST_F(VerifyTotpTest, WorksAtTheStartOfTheEpochWhereThereIsNoPreviousStep) {
  EXPECT_THAT(VerifyTotp(secret_, "755224", At(0), std::nullopt), IsOkAndHolds(0));
  EXPECT_THAT(VerifyTotp(secret_, "287082", At(0), std::nullopt), IsOkAndHolds(1));
}

}  // namespace
}  // namespace crm::identity
