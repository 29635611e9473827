#include "services/contacts/tax_id.h"

#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "libs/testing/status_matchers.h"

namespace crm::contacts {
namespace {

using ::crm::testing::IsOk;
using ::crm::testing::IsOkAndHolds;
using ::crm::testing::StatusIs;
using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr absl::string_view kField = "company.tax_ids[0].value";

// Rejected with INVALID_ARGUMENT, the message naming the field and the
// broken rule, and never echoing the input (which may be personal data).
::testing::Matcher<absl::StatusOr<std::string>> RejectedWithout(const std::string& input,
                                                                absl::string_view rule = "") {
  return StatusIs(
      absl::StatusCode::kInvalidArgument,
      AllOf(HasSubstr(std::string(kField)), HasSubstr(std::string(rule)), Not(HasSubstr(input))));
}

std::string KindName(TaxIdKind kind) {
  switch (kind) {
    case TaxIdKind::kNip:
      return "NIP";
    case TaxIdKind::kRegon:
      return "REGON";
    case TaxIdKind::kKrs:
      return "KRS";
    case TaxIdKind::kEuVat:
      return "EU VAT";
  }
  return "?";
}

// A published, valid identifier, its canonical form, and the index in the
// canonical form of a check character. (KRS has no check digit: see
// KrsPaddingAndFormat.)
struct Published {
  TaxIdKind kind;
  const char* input;
  const char* canonical;
  int check_at;
};

void PrintTo(const Published& p, std::ostream* os) { *os << KindName(p.kind) << " " << p.input; }

// Sources: python-stdnum's documentation and its lists of numbers found
// online (tests/test_eu_vat.doctest, tests/test_pl_regon.doctest), the
// Belastingdienst's btw-id example, the VIES construction-rules samples.
// Numbers of natural persons were left out where a company number exists.
const Published kPublished[] = {
    // NIP.
    {TaxIdKind::kNip, "584-030-44-72", "5840304472", 9},
    {TaxIdKind::kNip, "777 26 68 285", "7772668285", 9},
    {TaxIdKind::kNip, "PL 8567346215", "8567346215", 9},
    {TaxIdKind::kNip, "pl5261025421", "5261025421", 9},
    // REGON: 9 digits (001130740 and 192976380 have the remainder 10 -> 0),
    // and 14 digits.
    {TaxIdKind::kRegon, "192598184", "192598184", 8},
    {TaxIdKind::kRegon, "123456785", "123456785", 8},
    {TaxIdKind::kRegon, "001130740", "001130740", 8},
    {TaxIdKind::kRegon, "192 976 380", "192976380", 8},
    {TaxIdKind::kRegon, "12345678512347", "12345678512347", 13},
    {TaxIdKind::kRegon, "123456785-12347", "12345678512347", 8},
    // EU VAT, by country.
    {TaxIdKind::kEuVat, "ATU13585627", "ATU13585627", 10},
    {TaxIdKind::kEuVat, "ATU 142 43 102", "ATU14243102", 10},
    {TaxIdKind::kEuVat, "BE 0402 918 402", "BE0402918402", 11},
    {TaxIdKind::kEuVat, "BE0428759497", "BE0428759497", 11},
    {TaxIdKind::kEuVat, "BG 124 551 319", "BG124551319", 10},
    {TaxIdKind::kEuVat, "BG175074752", "BG175074752", 10},
    {TaxIdKind::kEuVat, "CY-10259033P", "CY10259033P", 10},
    {TaxIdKind::kEuVat, "CY00632993 F", "CY00632993F", 10},
    {TaxIdKind::kEuVat, "CZ 25123891", "CZ25123891", 9},
    {TaxIdKind::kEuVat, "CZ 640903926", "CZ640903926", 10},
    {TaxIdKind::kEuVat, "DE 136695976", "DE136695976", 10},
    {TaxIdKind::kEuVat, "DE 221.304.969", "DE221304969", 10},
    {TaxIdKind::kEuVat, "DE - 113866163", "DE113866163", 10},
    {TaxIdKind::kEuVat, "DK 13 31 04 59", "DK13310459", 9},
    {TaxIdKind::kEuVat, "DK-27630308", "DK27630308", 9},
    {TaxIdKind::kEuVat, "EE 100 931 558", "EE100931558", 10},
    {TaxIdKind::kEuVat, "EE101256753", "EE101256753", 10},
    {TaxIdKind::kEuVat, "EL 094012834", "EL094012834", 10},
    {TaxIdKind::kEuVat, "el 800 179 925", "EL800179925", 10},
    {TaxIdKind::kEuVat, "ES A-28184661", "ESA28184661", 10},
    {TaxIdKind::kEuVat, "ES B64240914", "ESB64240914", 10},
    {TaxIdKind::kEuVat, "ES Q-2818015-F", "ESQ2818015F", 10},
    {TaxIdKind::kEuVat, "ES 12345678Z", "ES12345678Z", 10},
    {TaxIdKind::kEuVat, "ES X5277343Q", "ESX5277343Q", 10},
    {TaxIdKind::kEuVat, "ES Y5277343F", "ESY5277343F", 10},
    {TaxIdKind::kEuVat, "ES Z5277343K", "ESZ5277343K", 10},
    {TaxIdKind::kEuVat, "FI 0982651-1", "FI09826511", 9},
    {TaxIdKind::kEuVat, "FI 20774740", "FI20774740", 9},
    {TaxIdKind::kEuVat, "FR 40 303 265 045", "FR40303265045", 12},
    {TaxIdKind::kEuVat, "fr 71383076817", "FR71383076817", 12},
    {TaxIdKind::kEuVat, "FR K 7399859412", "FRK7399859412", 12},
    {TaxIdKind::kEuVat, "FR16000063601", "FR16000063601", 2},  // Monaco.
    {TaxIdKind::kEuVat, "HR33392005961", "HR33392005961", 12},
    {TaxIdKind::kEuVat, "HU 12723650", "HU12723650", 9},
    {TaxIdKind::kEuVat, "HU-14528114", "HU14528114", 9},
    {TaxIdKind::kEuVat, "IE 6433435F", "IE6433435F", 9},
    {TaxIdKind::kEuVat, "IE6433435OA", "IE6433435OA", 9},
    {TaxIdKind::kEuVat, "IE8D79739I", "IE8D79739I", 9},
    {TaxIdKind::kEuVat, "IT 00743110157", "IT00743110157", 12},
    {TaxIdKind::kEuVat, "IT - 01404480202", "IT01404480202", 12},
    {TaxIdKind::kEuVat, "LT 119511515", "LT119511515", 10},
    {TaxIdKind::kEuVat, "LT 100001919017", "LT100001919017", 13},
    {TaxIdKind::kEuVat, "LU 150 274 42", "LU15027442", 9},
    {TaxIdKind::kEuVat, "LU.248.70.640", "LU24870640", 9},
    {TaxIdKind::kEuVat, "LV 40003189718", "LV40003189718", 12},
    {TaxIdKind::kEuVat, "LV-40003241337", "LV40003241337", 12},
    {TaxIdKind::kEuVat, "MT 1167-9112", "MT11679112", 9},
    {TaxIdKind::kEuVat, "MT 17025737", "MT17025737", 9},
    {TaxIdKind::kEuVat, "NL 806753742B01", "NL806753742B01", 10},
    {TaxIdKind::kEuVat, "NL.8143.26.584.B.01", "NL814326584B01", 10},
    {TaxIdKind::kEuVat, "NL000099998B57", "NL000099998B57", 13},  // 2020+ btw-id.
    {TaxIdKind::kEuVat, "PL 584-030-44-72", "PL5840304472", 11},
    {TaxIdKind::kEuVat, "PL5261025421", "PL5261025421", 11},
    {TaxIdKind::kEuVat, "PT 501 964 843", "PT501964843", 10},
    {TaxIdKind::kEuVat, "PT502757191", "PT502757191", 10},
    {TaxIdKind::kEuVat, "RO 185 472 90", "RO18547290", 9},
    {TaxIdKind::kEuVat, "RO 573768", "RO573768", 7},
    {TaxIdKind::kEuVat, "SE 556058115801", "SE556058115801", 11},
    {TaxIdKind::kEuVat, "SE-556666-4438-01", "SE556666443801", 11},
    {TaxIdKind::kEuVat, "SI 50223054", "SI50223054", 9},
    {TaxIdKind::kEuVat, "SI-83815201", "SI83815201", 9},
    {TaxIdKind::kEuVat, "SK 2022193459", "SK2022193459", 11},
    {TaxIdKind::kEuVat, "SK 202 274 96 19", "SK2022749619", 11},
};

class PublishedTest : public ::testing::TestWithParam<Published> {};

TEST_P(PublishedTest, AcceptedAndNormalised) {
  const Published& p = GetParam();
  EXPECT_THAT(NormalizeTaxId(kField, p.kind, p.input), IsOkAndHolds(p.canonical));
}

TEST_P(PublishedTest, CanonicalFormIsStable) {
  const Published& p = GetParam();
  EXPECT_THAT(NormalizeTaxId(kField, p.kind, p.canonical), IsOkAndHolds(p.canonical));
}

TEST_P(PublishedTest, EveryOtherCheckCharacterRejected) {
  const Published& p = GetParam();
  ASSERT_GE(p.check_at, 0);
  ASSERT_LT(p.check_at, static_cast<int>(std::string(p.canonical).size()));
  const std::string canonical = p.canonical;
  const char original = canonical[p.check_at];
  const bool digit = original >= '0' && original <= '9';
  const std::string alphabet = digit ? "0123456789" : "ABCDEFGHIJKLMNOPQRSTUVWXYZ";
  int tried = 0;
  for (char c : alphabet) {
    if (c == original) continue;
    std::string wrong = canonical;
    wrong[p.check_at] = c;
    EXPECT_THAT(NormalizeTaxId(kField, p.kind, wrong), RejectedWithout(wrong, "not match"))
        << "with " << c << " at " << p.check_at;
    ++tried;
  }
  EXPECT_EQ(tried, static_cast<int>(alphabet.size()) - 1);
}

INSTANTIATE_TEST_SUITE_P(TaxId, PublishedTest, ::testing::ValuesIn(kPublished));

// Published numbers with one digit changed (python-stdnum's list of mangled
// numbers, minus those whose damage is in a part this module does not check).
TEST(TaxIdTest, MangledPublishedVatNumbersRejected) {
  for (const char* mangled : {
           "ATU 143 43 102",    "ATU15169209",      "ATU46080904",     "BE 0406.139.583",
           "BE 0793 013 186",   "BE697449982",      "BG 131 172 009",  "BG 147147471",
           "BG 200940556",      "CY 10246672F",     "CY-10009489 A",   "CY-10257074Y",
           "CY00632893 F",      "CZ 25557481",      "CZ 48207726",     "CZ 640913926",
           "CZ 8058018314",     "DE 125014855",     "DE 246 495 415",  "DE 813 91 38 75",
           "DE - 266297673",    "DK 11 96 56 58",   "DK 2565 2202",    "DK-27996592",
           "DK10159817",        "EE 100 941 558",   "EE 100525487",    "EE 101586639",
           "EE101256754",       "ES 54362415K",     "ES-x-2322300w",   "Es-a48951310",
           "EL 094013834",      "EL 094068733",     "EL094501140",     "FR 04409414264",
           "FR 21 326 565 603", "FR K 7399859312",  "IE 4731823H",     "IE 632 3421 C",
           "IE 5339273F",       "IE8D79729I",       "LV 40003189715",  "LV-42103048181",
           "SK 1078449164",     "SK 302 274 96 19", "SK 2030 237 945", "SK 2020457679",
       }) {
    EXPECT_THAT(NormalizeTaxId(kField, TaxIdKind::kEuVat, mangled), RejectedWithout(mangled))
        << mangled;
  }
}

TEST(TaxIdTest, NipRemainderTenIsNeverValid) {
  // The first nine digits weigh 3 * 7 = 21, remainder 10: no tenth digit may
  // complete them, in particular not 0.
  for (char last = '0'; last <= '9'; ++last) {
    std::string nip = absl::StrCat("000000003", std::string(1, last));
    EXPECT_THAT(NormalizeTaxId(kField, TaxIdKind::kNip, nip),
                RejectedWithout(nip, "NIP check digit does not match"));
  }
}

TEST(TaxIdTest, NipMessageNamesFieldAndRule) {
  EXPECT_THAT(NormalizeTaxId(kField, TaxIdKind::kNip, "5840304473"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "company.tax_ids[0].value: NIP check digit does not match"));
}

TEST(TaxIdTest, NipFormat) {
  EXPECT_THAT(NormalizeTaxId(kField, TaxIdKind::kNip, "584.030.44.72"), IsOkAndHolds("5840304472"));
  for (const char* bad : {"584030447", "58403044720", "58403O4472", "DE5840304472", "PL",
                          "PLPL5840304472", "5840304472PL"}) {
    EXPECT_THAT(NormalizeTaxId(kField, TaxIdKind::kNip, bad),
                RejectedWithout(bad, "NIP must be 10 digits"))
        << bad;
  }
}

TEST(TaxIdTest, RegonFormatAndBothCheckDigits) {
  EXPECT_THAT(NormalizeTaxId(kField, TaxIdKind::kRegon, "12345678612342"),
              RejectedWithout("12345678612342", "REGON check digit does not match"));
  EXPECT_THAT(NormalizeTaxId(kField, TaxIdKind::kRegon, "12345678512348"),
              RejectedWithout("12345678512348", "REGON local unit check digit does not match"));
  for (const char* bad :
       {"12345678", "1234567851", "1234567851234", "123456785123478", "12345678A", "PL123456785"}) {
    EXPECT_THAT(NormalizeTaxId(kField, TaxIdKind::kRegon, bad),
                RejectedWithout(bad, "REGON must be 9 or 14 digits"))
        << bad;
  }
}

TEST(TaxIdTest, KrsPaddingAndFormat) {
  EXPECT_THAT(NormalizeTaxId(kField, TaxIdKind::kKrs, "0000019193"), IsOkAndHolds("0000019193"));
  EXPECT_THAT(NormalizeTaxId(kField, TaxIdKind::kKrs, "19193"), IsOkAndHolds("0000019193"));
  EXPECT_THAT(NormalizeTaxId(kField, TaxIdKind::kKrs, "1"), IsOkAndHolds("0000000001"));
  EXPECT_THAT(NormalizeTaxId(kField, TaxIdKind::kKrs, "9999999999"), IsOkAndHolds("9999999999"));
  EXPECT_THAT(NormalizeTaxId(kField, TaxIdKind::kKrs, "0000-019-193"), IsOkAndHolds("0000019193"));
  for (const char* zeros : {"0", "0000000000", "00 00"}) {
    EXPECT_THAT(NormalizeTaxId(kField, TaxIdKind::kKrs, zeros),
                StatusIs(absl::StatusCode::kInvalidArgument,
                         AllOf(HasSubstr(std::string(kField)), HasSubstr("all zeros"))))
        << zeros;
  }
  for (const char* bad : {"12345678901", "00000191930", "KRS0000019193", "00000I9193"}) {
    EXPECT_THAT(NormalizeTaxId(kField, TaxIdKind::kKrs, bad),
                RejectedWithout(bad, "KRS must be 1 to 10 digits"))
        << bad;
  }
}

TEST(TaxIdTest, VatPrefixIsCaseInsensitiveAndUpperCased) {
  EXPECT_THAT(NormalizeTaxId(kField, TaxIdKind::kEuVat, "de136695976"),
              IsOkAndHolds("DE136695976"));
  EXPECT_THAT(NormalizeTaxId(kField, TaxIdKind::kEuVat, "nl 806753742b01"),
              IsOkAndHolds("NL806753742B01"));
}

TEST(TaxIdTest, VatUnknownPrefixes) {
  // GR: Greece's VAT prefix is EL. XI (Northern Ireland) and GB are not
  // handled. QQ is no country.
  for (const char* bad : {"GR094012834", "XI123456782", "GB980780684", "QQ124567", "EU826010755"}) {
    EXPECT_THAT(NormalizeTaxId(kField, TaxIdKind::kEuVat, bad),
                RejectedWithout(bad, "unknown EU VAT country prefix"))
        << bad;
  }
}

TEST(TaxIdTest, VatPrefixAlone) {
  EXPECT_THAT(NormalizeTaxId(kField, TaxIdKind::kEuVat, "DE"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "company.tax_ids[0].value: EU VAT number (DE) must be 9 digits, the first "
                       "not 0"));
}

TEST(TaxIdTest, VatNeedsALetterPrefix) {
  for (const char* bad : {"136695976", "D136695976", "1E136695976", "D"}) {
    EXPECT_THAT(NormalizeTaxId(kField, TaxIdKind::kEuVat, bad),
                RejectedWithout(bad, "two-letter country prefix"))
        << bad;
  }
}

TEST(TaxIdTest, VatWrongLengthsAndCharacters) {
  for (const char* bad : {
           "DE13669597",     "DE1366959760",   "DE13669597A",    "DE036695976",
           "ATU1358562",     "AT135856270",    "BE2402918402",   "BE040291840",
           "FR4030326504",   "FRI0303265045",  "IT0074311015",   "IT0074311015A",
           "NL806753742C01", "NL806753742B00", "NL806753742B1",  "PL584030447",
           "ESA2818466",     "SE55605811580",  "SE556058115800", "SI05022305",
           "SK2012193459",   "LT119511525",    "RO0573768",      "RO5",
           "LU1502744",      "MT01679112",     "CY1025903P3",    "IE643343F",
       }) {
    EXPECT_THAT(NormalizeTaxId(kField, TaxIdKind::kEuVat, bad),
                StatusIs(absl::StatusCode::kInvalidArgument,
                         AllOf(HasSubstr(std::string(kField)), HasSubstr("EU VAT number ("),
                               Not(HasSubstr(std::string(bad).substr(2))))))
        << bad;
  }
}

TEST(TaxIdTest, FrKeyMustMatchTheSiren) {
  // Same SIREN as the published FR 40 303 265 045, another numeric key.
  EXPECT_THAT(NormalizeTaxId(kField, TaxIdKind::kEuVat, "FR41303265045"),
              RejectedWithout("FR41303265045", "key does not match"));
}

TEST(TaxIdTest, ItalianOfficeCodeChecked) {
  // Published in python-stdnum as valid but for its office code 998.
  EXPECT_THAT(NormalizeTaxId(kField, TaxIdKind::kEuVat, "IT 00687129980"),
              RejectedWithout("00687129980", "unknown office code"));
}

// Input hygiene, the same for every kind.

const TaxIdKind kAllKinds[] = {TaxIdKind::kNip, TaxIdKind::kRegon, TaxIdKind::kKrs,
                               TaxIdKind::kEuVat};

TEST(TaxIdTest, EmptyRejected) {
  for (TaxIdKind kind : kAllKinds) {
    for (const char* empty : {"", " ", " - . "}) {
      EXPECT_THAT(NormalizeTaxId(kField, kind, empty),
                  StatusIs(absl::StatusCode::kInvalidArgument,
                           AllOf(HasSubstr(std::string(kField)), HasSubstr("is empty"))))
          << KindName(kind);
    }
  }
}

TEST(TaxIdTest, LongInputRejectedButSixtyFourBytesAccepted) {
  // 64 bytes of a valid NIP padded with spaces passes; one more byte fails.
  std::string at_limit = absl::StrCat(std::string(27, ' '), "5840304472", std::string(27, ' '));
  ASSERT_EQ(at_limit.size(), 64u);
  EXPECT_THAT(NormalizeTaxId(kField, TaxIdKind::kNip, at_limit), IsOkAndHolds("5840304472"));
  std::string over = at_limit + " ";
  EXPECT_THAT(NormalizeTaxId(kField, TaxIdKind::kNip, over),
              RejectedWithout(over, "longer than 64"));
  for (TaxIdKind kind : kAllKinds) {
    for (size_t size : {65u, 1000u, 1u << 20}) {
      std::string digits(size, '7');
      EXPECT_THAT(NormalizeTaxId(kField, kind, digits), RejectedWithout(digits, "longer than 64"))
          << KindName(kind) << " " << size;
    }
  }
}

TEST(TaxIdTest, HostileInputRejectedWithoutEchoingIt) {
  const std::vector<std::string> hostile = {
      "\xff",
      "584030\xff"
      "4472",
      std::string("584030\0"
                  "4472",
                  11),
      std::string("5840304472\0", 11),
      "1'; DROP TABLE x;--",
      "5840304472'; DROP TABLE x;--",
      "PL5840304472 OR 1=1",
      "<script>alert(1)</script>",
      "\xef\xbc\x95\xef\xbc\x98\xef\xbc\x94",  // Full-width digits.
      "\xc0\xaf",                              // Overlong UTF-8.
      "58403044\xc3\xa9",                      // Valid UTF-8, not ASCII.
      "5840304472\n",
      "5840304472\t",
      "584_030_44_72",
      "584/030/44/72",
      "%35840304472",
  };
  for (TaxIdKind kind : kAllKinds) {
    for (const std::string& input : hostile) {
      EXPECT_THAT(NormalizeTaxId(kField, kind, input),
                  RejectedWithout(input, "may contain only letters, digits"))
          << KindName(kind) << " " << absl::CEscape(input);
    }
  }
}

TEST(TaxIdTest, FieldNameIsWhateverTheCallerPasses) {
  EXPECT_THAT(
      NormalizeTaxId("x.y[3]", TaxIdKind::kEuVat, "QQ1"),
      StatusIs(absl::StatusCode::kInvalidArgument, "x.y[3]: unknown EU VAT country prefix"));
  EXPECT_THAT(NormalizeTaxId("x.y[3]", TaxIdKind::kRegon, "192598184"), IsOk());
}

}  // namespace
}  // namespace crm::contacts
