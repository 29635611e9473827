#include "services/contacts/company_rules.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "libs/testing/status_matchers.h"

namespace crm::contacts {
namespace {

using ::crm::testing::IsOk;
using ::crm::testing::StatusIs;
using ::testing::HasSubstr;
using ::testing::Not;

TEST(IbanTest, PublishedExamplesAreAcceptedAndCompacted) {
  for (auto [given, canonical] :
       {std::pair{"DE89 3704 0044 0532 0130 00", "DE89370400440532013000"},
        std::pair{"pl61 1090 1014 0000 0712 1981 2874", "PL61109010140000071219812874"},
        std::pair{"GB29NWBK60161331926819", "GB29NWBK60161331926819"}}) {
    std::string iban = given;
    ASSERT_THAT(NormalizeIban("iban", iban), IsOk()) << given;
    EXPECT_EQ(iban, canonical);
  }
}

TEST(IbanTest, WrongCheckDigitsAndMalformedOnesAreRefusedWithoutTheValue) {
  for (const char* bad :
       {"DE89370400440532013001", "DE88370400440532013000", "DE8937040044",
        "1289370400440532013000", "DE89-3704-0044-0532-0130-00", "",
        "DE89370400440532013000DE89370400440532013000", "DE89 3704 0044 0532 ß"}) {
    std::string iban = bad;
    const absl::Status s = NormalizeIban("billing.bank_account", iban);
    EXPECT_THAT(s, StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("billing.bank_account")))
        << bad;
    EXPECT_THAT(std::string(s.message()), Not(HasSubstr("0532"))) << bad;
    EXPECT_EQ(iban, bad);  // untouched on error
  }
}

TEST(CompanyRulesTest, OnlyTheNamedFieldsAreCheckedAndBankAccountsMasked) {
  crm::contacts::v1::Company c;
  c.set_name("  Engines Ltd  ");
  c.mutable_billing()->set_bank_account("not an iban");  // not named: left alone
  ASSERT_THAT(NormalizeCompany(c, {"name"}), IsOk());
  EXPECT_EQ(c.name(), "Engines Ltd");
  EXPECT_THAT(NormalizeCompany(c, {"billing"}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("bank_account")));
  c.mutable_billing()->set_bank_account("GB29NWBK60161331926819");
  ASSERT_THAT(NormalizeCompany(c, {"billing"}), IsOk());
  EXPECT_THAT(MaskCompany(c), ::testing::ElementsAre("company.billing.bank_account"));
  EXPECT_EQ(c.billing().bank_account(), "");
  EXPECT_THAT(MaskCompany(c), ::testing::IsEmpty());  // nothing left to withhold
  EXPECT_THAT(WritableCompanyFields(),
              ::testing::ElementsAre("name", "tax_ids", "addresses", "billing"));
}

TEST(CompanyRulesTest, TaxIdsOnePerKindAndAtMostFour) {
  crm::contacts::v1::Company c;
  for (int i = 0; i < 2; ++i) {
    auto* t = c.add_tax_ids();
    t->set_kind(crm::contacts::v1::TAX_ID_KIND_NIP);
    t->set_value("5261040828");
  }
  EXPECT_THAT(NormalizeCompany(c, {"tax_ids"}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("tax_ids[1].kind: repeats")));
  for (int i = 0; i < 3; ++i) c.add_tax_ids()->set_kind(crm::contacts::v1::TAX_ID_KIND_KRS);
  EXPECT_THAT(NormalizeCompany(c, {"tax_ids"}), StatusIs(absl::StatusCode::kInvalidArgument,
                                                         HasSubstr("company.tax_ids: at most 4")));
}

}  // namespace
}  // namespace crm::contacts
