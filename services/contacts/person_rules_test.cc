#include "services/contacts/person_rules.h"

#include <algorithm>
#include <functional>
#include <ostream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "crm/contacts/v1/contacts.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "libs/testing/status_matchers.h"
#include "services/contacts/catalogue.h"

namespace crm::contacts {

void PrintTo(const PersonChange& c, std::ostream* os) {
  *os << "{" << c.path << ": \"" << c.old_value << "\" -> \"" << c.new_value << "\"}";
}

namespace {

using ::crm::contacts::v1::EmailAddress;
using ::crm::contacts::v1::Person;
using ::crm::contacts::v1::PhoneNumber;
using ::crm::contacts::v1::PostalAddress;
using ::crm::testing::IsOk;
using ::crm::testing::StatusIs;
using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;

constexpr char kCompanyId[] = "0f8fad5b-d9cb-469f-a165-70867728950e";

absl::Status Create(Person& p) { return NormalizePerson(p, WritablePersonFields(), true); }
absl::Status Update(Person& p, const std::vector<std::string>& fields) {
  return NormalizePerson(p, fields, false);
}

// INVALID_ARGUMENT naming `path` (as "path: rule") and not echoing `hidden`,
// the offending value or the telling part of it.
::testing::Matcher<absl::Status> Refused(const std::string& path, const std::string& hidden) {
  return StatusIs(absl::StatusCode::kInvalidArgument,
                  AllOf(HasSubstr(path + ": "), Not(HasSubstr(hidden))));
}

size_t CatalogueMax(absl::string_view path) {
  const FieldSpec* spec = Catalogue::Get().Find(path);
  return spec == nullptr ? 0 : static_cast<size_t>(spec->max_length);
}

// `n` code points of a two-byte character, so that a byte count would give
// the wrong answer.
std::string Polish(size_t n) {
  std::string s;
  for (size_t i = 0; i < n; ++i) s += "\xc5\x82";  // ł
  return s;
}

const std::string kMiB(1 << 20, 'a');

EmailAddress* AddEmail(Person& p, absl::string_view address, absl::string_view label = "",
                       bool primary = false) {
  EmailAddress* e = p.add_emails();
  e->set_address(std::string(address));
  e->set_label(std::string(label));
  e->set_primary(primary);
  return e;
}

PhoneNumber* AddPhone(Person& p, absl::string_view number, bool primary = false) {
  PhoneNumber* n = p.add_phones();
  n->set_number(std::string(number));
  n->set_primary(primary);
  return n;
}

PostalAddress* AddAddress(Person& p) {
  PostalAddress* a = p.add_addresses();
  a->add_street_lines("ul. Marszałkowska 1");
  a->set_postal_code("00-950");
  a->set_city("Warszawa");
  a->set_country_code("PL");
  return a;
}

// ---- Fields and create -------------------------------------------------------

TEST(WritablePersonFieldsTest, AreTheCataloguesWritableTopLevelFieldsInProtoOrder) {
  EXPECT_THAT(
      WritablePersonFields(),
      ElementsAre("status", "given_name", "family_name", "emails", "phones", "addresses",
                  "job_title", "company_id", "personal_id_number", "notes", "notes_sensitive"));
}

TEST(NormalizePersonTest, CreateDefaultsStatusToLead) {
  Person p;
  p.set_family_name("Nowak");
  ASSERT_THAT(Create(p), IsOk());
  EXPECT_EQ(p.status(), v1::PERSON_STATUS_LEAD);
}

TEST(NormalizePersonTest, CreateKeepsAGivenStatus) {
  Person p;
  p.set_family_name("Nowak");
  p.set_status(v1::PERSON_STATUS_CUSTOMER);
  ASSERT_THAT(Create(p), IsOk());
  EXPECT_EQ(p.status(), v1::PERSON_STATUS_CUSTOMER);
}

TEST(NormalizePersonTest, UpdateRefusesUnspecifiedStatus) {
  Person p;
  EXPECT_THAT(Update(p, {"status"}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("person.status: ")));
}

TEST(NormalizePersonTest, UndefinedStatusIsRefused) {
  Person p;
  p.set_family_name("Nowak");
  p.set_status(static_cast<v1::PersonStatus>(99));
  EXPECT_THAT(Create(p), Refused("person.status", "99"));
  EXPECT_THAT(Update(p, {"status"}), Refused("person.status", "99"));
}

TEST(NormalizePersonTest, CreateNeedsANameAnEmailOrAPhone) {
  Person nothing;
  nothing.set_job_title("Engineer");
  nothing.set_notes("met at the fair");
  EXPECT_THAT(Create(nothing),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("person: needs a name, an e-mail address or a phone number")));

  // Whitespace only is no name: it is trimmed away first.
  Person blank;
  blank.set_given_name("   ");
  EXPECT_THAT(Create(blank), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("person: ")));

  Person given;
  given.set_given_name("Anna");
  EXPECT_THAT(Create(given), IsOk());
  Person family;
  family.set_family_name("Nowak");
  EXPECT_THAT(Create(family), IsOk());
  Person email;
  AddEmail(email, "anna@example.com");
  EXPECT_THAT(Create(email), IsOk());
  Person phone;
  AddPhone(phone, "+48123456789");
  EXPECT_THAT(Create(phone), IsOk());
}

TEST(NormalizePersonTest, UpdateMayLeaveThePersonWithoutAName) {
  // Only the named fields are known on update; the store checks the whole.
  Person p;
  EXPECT_THAT(Update(p, {"given_name", "family_name"}), IsOk());
}

TEST(NormalizePersonTest, FieldsNotNamedAreNeitherCheckedNorChanged) {
  Person p;
  p.set_family_name("  Nowak  ");
  AddEmail(p, "NOT AN ADDRESS \xff");
  p.set_given_name(kMiB);
  p.set_personal_id_number("ab-12");
  ASSERT_THAT(Update(p, {"family_name"}), IsOk());
  EXPECT_EQ(p.family_name(), "Nowak");
  EXPECT_EQ(p.emails(0).address(), "NOT AN ADDRESS \xff");
  EXPECT_FALSE(p.emails(0).primary());
  EXPECT_EQ(p.given_name(), kMiB);
  EXPECT_EQ(p.personal_id_number(), "ab-12");
  EXPECT_EQ(p.status(), v1::PERSON_STATUS_UNSPECIFIED);
}

TEST(NormalizePersonTest, RefusesFieldsThatAreNotWritable) {
  Person p;
  EXPECT_THAT(Update(p, {"subject_id"}), Refused("person.subject_id", "xyz"));
  EXPECT_THAT(Update(p, {"assignment"}), Refused("person.assignment", "xyz"));
  // An unknown name is not echoed: it could be anything.
  EXPECT_THAT(Update(p, {"given_name", "Anna Nowak"}), Refused("person", "Anna Nowak"));
}

TEST(NormalizePersonTest, ReportsTheFirstBrokenRuleInFieldOrder) {
  Person p;
  AddEmail(p, "not an address");
  p.set_given_name("\xff");
  EXPECT_THAT(Update(p, {"emails", "given_name"}), Refused("person.given_name", "\xff"));
}

// ---- Text fields -------------------------------------------------------------

TEST(NormalizePersonTest, TrimsNames) {
  Person p;
  p.set_given_name(" \t Anna Maria \r\n");
  p.set_family_name("  Nowak-Kowalska");
  p.set_job_title("Head of Sales  ");
  ASSERT_THAT(Create(p), IsOk());
  EXPECT_EQ(p.given_name(), "Anna Maria");
  EXPECT_EQ(p.family_name(), "Nowak-Kowalska");
  EXPECT_EQ(p.job_title(), "Head of Sales");
}

TEST(NormalizePersonTest, SqlInjectionInNamesIsOrdinaryTextStoredAsGiven) {
  const std::string given = "Robert'); DROP TABLE persons;--";
  const std::string family = "O'Brien\" OR 1=1 --";
  const std::string title = "x'; DELETE FROM subjects WHERE '1'='1";
  Person p;
  p.set_given_name(given);
  p.set_family_name(family);
  p.set_job_title(title);
  p.set_notes("1; UPDATE persons SET status = 3; /* */");
  ASSERT_THAT(Create(p), IsOk());
  EXPECT_EQ(p.given_name(), given);
  EXPECT_EQ(p.family_name(), family);
  EXPECT_EQ(p.job_title(), title);
  EXPECT_EQ(p.notes(), "1; UPDATE persons SET status = 3; /* */");
}

TEST(NormalizePersonTest, NamesAreNotCaseFoldedOrTransliterated) {
  Person p;
  p.set_given_name("Zoë");
  p.set_family_name("ŁUKASIEWICZ-Ó'Neill");
  ASSERT_THAT(Create(p), IsOk());
  EXPECT_EQ(p.given_name(), "Zoë");
  EXPECT_EQ(p.family_name(), "ŁUKASIEWICZ-Ó'Neill");
}

struct TextField {
  const char* name;
  std::function<std::string*(Person&)> mutable_value;
};

class TextFieldTest : public ::testing::TestWithParam<TextField> {};

TEST_P(TextFieldTest, AcceptsTheCatalogueMaximumInCodePoints) {
  const TextField& f = GetParam();
  const size_t max = CatalogueMax(absl::StrCat("person.", f.name));
  ASSERT_GT(max, 0u);
  Person p;
  *f.mutable_value(p) = Polish(max);  // 2 * max bytes
  EXPECT_THAT(Update(p, {f.name}), IsOk());
}

TEST_P(TextFieldTest, RefusesOneCodePointMore) {
  const TextField& f = GetParam();
  const size_t max = CatalogueMax(absl::StrCat("person.", f.name));
  Person p;
  *f.mutable_value(p) = Polish(max + 1);
  EXPECT_THAT(Update(p, {f.name}), AllOf(Refused(absl::StrCat("person.", f.name), "\xc5\x82"),
                                         StatusIs(absl::StatusCode::kInvalidArgument,
                                                  HasSubstr(absl::StrCat("at most ", max)))));
}

TEST_P(TextFieldTest, RefusesAMebibyte) {
  const TextField& f = GetParam();
  Person p;
  *f.mutable_value(p) = kMiB;
  EXPECT_THAT(Update(p, {f.name}), Refused(absl::StrCat("person.", f.name), "aaaa"));
}

TEST_P(TextFieldTest, RefusesNonUtf8) {
  const TextField& f = GetParam();
  Person p;
  *f.mutable_value(p) = "Ann\xff";
  EXPECT_THAT(Update(p, {f.name}), Refused(absl::StrCat("person.", f.name), "Ann"));
  *f.mutable_value(p) = "\xc0\xaf";  // overlong '/'
  EXPECT_THAT(Update(p, {f.name}), Refused(absl::StrCat("person.", f.name), "\xc0"));
}

TEST_P(TextFieldTest, RefusesAnEmbeddedNul) {
  const TextField& f = GetParam();
  Person p;
  *f.mutable_value(p) = std::string("Anna\0Nowak", 10);
  EXPECT_THAT(Update(p, {f.name}), Refused(absl::StrCat("person.", f.name), "Anna"));
}

TEST_P(TextFieldTest, RefusesOtherControlCharacters) {
  const TextField& f = GetParam();
  Person p;
  *f.mutable_value(p) = "Anna\x1b[2JNowak";  // an ANSI escape for whoever reads the log
  EXPECT_THAT(Update(p, {f.name}), Refused(absl::StrCat("person.", f.name), "Anna"));
}

INSTANTIATE_TEST_SUITE_P(
    Fields, TextFieldTest,
    ::testing::Values(TextField{"given_name", [](Person& p) { return p.mutable_given_name(); }},
                      TextField{"family_name", [](Person& p) { return p.mutable_family_name(); }},
                      TextField{"job_title", [](Person& p) { return p.mutable_job_title(); }},
                      TextField{"notes", [](Person& p) { return p.mutable_notes(); }}),
    [](const ::testing::TestParamInfo<TextField>& info) { return std::string(info.param.name); });

TEST(NormalizePersonTest, NamesAreSingleLine) {
  for (const char* bad : {"Anna\nNowak", "Anna\rNowak", "Anna\tNowak"}) {
    Person p;
    p.set_given_name(bad);
    p.set_family_name(bad);
    p.set_job_title(bad);
    EXPECT_THAT(Update(p, {"given_name"}), Refused("person.given_name", "Anna")) << bad;
    EXPECT_THAT(Update(p, {"family_name"}), Refused("person.family_name", "Anna")) << bad;
    EXPECT_THAT(Update(p, {"job_title"}), Refused("person.job_title", "Anna")) << bad;
  }
}

TEST(NormalizePersonTest, NotesMaySpanLines) {
  Person p;
  p.set_notes("  Called on Monday.\r\n\tWants a quote.\n  ");
  ASSERT_THAT(Update(p, {"notes"}), IsOk());
  EXPECT_EQ(p.notes(), "Called on Monday.\r\n\tWants a quote.");
}

// ---- E-mail addresses ----------------------------------------------------------

TEST(NormalizePersonTest, NormalisesEmailsAndLabels) {
  Person p;
  AddEmail(p, "  Anna.Nowak@Example.COM ", " Work ");
  AddEmail(p, "anna+crm@example.org", "HOME_2-b");
  ASSERT_THAT(Update(p, {"emails"}), IsOk());
  EXPECT_EQ(p.emails(0).address(), "anna.nowak@example.com");
  EXPECT_EQ(p.emails(0).label(), "work");
  EXPECT_EQ(p.emails(1).address(), "anna+crm@example.org");
  EXPECT_EQ(p.emails(1).label(), "home_2-b");
}

TEST(NormalizePersonTest, FirstEmailBecomesPrimaryWhenNoneIs) {
  Person p;
  AddEmail(p, "a@example.com");
  AddEmail(p, "b@example.com");
  ASSERT_THAT(Update(p, {"emails"}), IsOk());
  EXPECT_TRUE(p.emails(0).primary());
  EXPECT_FALSE(p.emails(1).primary());
}

TEST(NormalizePersonTest, KeepsTheChosenPrimaryEmail) {
  Person p;
  AddEmail(p, "a@example.com");
  AddEmail(p, "b@example.com", "", /*primary=*/true);
  ASSERT_THAT(Update(p, {"emails"}), IsOk());
  EXPECT_FALSE(p.emails(0).primary());
  EXPECT_TRUE(p.emails(1).primary());
}

TEST(NormalizePersonTest, EmptyEmailListIsAccepted) {
  Person p;
  EXPECT_THAT(Update(p, {"emails"}), IsOk());
  EXPECT_TRUE(p.emails().empty());
}

TEST(NormalizePersonTest, RefusesTwoPrimaryEmails) {
  Person p;
  AddEmail(p, "a@example.com", "", true);
  AddEmail(p, "b@example.com");
  AddEmail(p, "c@example.com", "", true);
  EXPECT_THAT(Update(p, {"emails"}), Refused("person.emails[2].primary", "example"));
}

TEST(NormalizePersonTest, RefusesTheSameEmailTwiceAfterNormalisation) {
  Person p;
  AddEmail(p, "anna@example.com");
  AddEmail(p, "other@example.com");
  AddEmail(p, " ANNA@Example.com");
  const absl::Status s = Update(p, {"emails"});
  EXPECT_THAT(s, Refused("person.emails[2].address", "anna"));
  EXPECT_THAT(s, StatusIs(absl::StatusCode::kInvalidArgument,
                          HasSubstr("person.emails[2].address: repeats emails[0]")));
}

TEST(NormalizePersonTest, AcceptsTenEmailsRefusesEleven) {
  Person p;
  for (int i = 0; i < 10; ++i) AddEmail(p, absl::StrCat("user", i, "@example.com"));
  EXPECT_THAT(Update(p, {"emails"}), IsOk());
  AddEmail(p, "user10@example.com");
  EXPECT_THAT(Update(p, {"emails"}), Refused("person.emails", "user10"));
}

TEST(NormalizePersonTest, RefusesTenThousandEmails) {
  Person p;
  for (int i = 0; i < 10'000; ++i) AddEmail(p, absl::StrCat("user", i, "@example.com"));
  EXPECT_THAT(Update(p, {"emails"}), Refused("person.emails", "user"));
}

TEST(NormalizePersonTest, RefusesMalformedEmails) {
  const std::vector<std::string> bad = {
      "",
      "anna",
      "anna@localhost",
      "anna@@example.com",
      "an na@example.com",
      ".anna@example.com",
      "anna@exa_mple.com",
      "\xff@example.com",
      std::string("anna\0@example.com", 17),
      "anna@example.com\r\nBcc: victim@example.org",
      "anna@example.com\nBcc: victim@example.org",
      "anna@example.com>, <victim@example.org",
      "\"anna\"@example.com",
      "ann\xd0\xb0@example.com",  // Cyrillic a
      kMiB + "@example.com",
  };
  for (const std::string& address : bad) {
    Person p;
    AddEmail(p, "first@example.net");
    AddEmail(p, address);
    const absl::Status s = Update(p, {"emails"});
    EXPECT_THAT(s, Refused("person.emails[1].address", "example")) << address.substr(0, 60);
    EXPECT_THAT(s, Not(StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("Bcc"))));
    EXPECT_THAT(s, Not(StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("victim"))));
  }
}

TEST(NormalizePersonTest, RefusesBadLabels) {
  const std::vector<std::string> bad = {
      "w\xd0\xberk",      // Cyrillic o
      "\xef\xbd\x97ork",  // fullwidth w
      "wo rk",
      "work!",
      "wo\nrk",
      "w\xff",
      std::string("wo\0rk", 5),
      std::string(33, 'w'),
      kMiB,
  };
  for (const std::string& label : bad) {
    Person p;
    AddEmail(p, "a@example.com", label);
    EXPECT_THAT(Update(p, {"emails"}), Refused("person.emails[0].label", label)) << label.size();
    Person q;
    AddPhone(q, "+48123456789")->set_label(label);
    EXPECT_THAT(Update(q, {"phones"}), Refused("person.phones[0].label", label)) << label.size();
    Person r;
    AddAddress(r)->set_label(label);
    EXPECT_THAT(Update(r, {"addresses"}), Refused("person.addresses[0].label", label))
        << label.size();
  }
}

TEST(NormalizePersonTest, AcceptsALabelOfTheCatalogueMaximum) {
  const size_t max = CatalogueMax("person.emails.label");
  ASSERT_EQ(max, 32u);
  Person p;
  AddEmail(p, "a@example.com", std::string(max, 'W'));
  ASSERT_THAT(Update(p, {"emails"}), IsOk());
  EXPECT_EQ(p.emails(0).label(), std::string(max, 'w'));
}

// ---- Phone numbers -------------------------------------------------------------

TEST(NormalizePersonTest, NormalisesPhonesToE164) {
  Person p;
  AddPhone(p, " +48 (12) 345-67.89 ")->set_label("Mobile");
  AddPhone(p, "+1 555 010 0199");
  ASSERT_THAT(Update(p, {"phones"}), IsOk());
  EXPECT_EQ(p.phones(0).number(), "+48123456789");
  EXPECT_EQ(p.phones(0).label(), "mobile");
  EXPECT_EQ(p.phones(1).number(), "+15550100199");
  EXPECT_TRUE(p.phones(0).primary());
  EXPECT_FALSE(p.phones(1).primary());
}

TEST(NormalizePersonTest, KeepsTheChosenPrimaryPhoneAndRefusesTwo) {
  Person p;
  AddPhone(p, "+48123456789");
  AddPhone(p, "+48987654321", true);
  ASSERT_THAT(Update(p, {"phones"}), IsOk());
  EXPECT_FALSE(p.phones(0).primary());
  EXPECT_TRUE(p.phones(1).primary());

  p.mutable_phones(0)->set_primary(true);
  EXPECT_THAT(Update(p, {"phones"}), Refused("person.phones[1].primary", "987"));
}

TEST(NormalizePersonTest, RefusesTheSamePhoneTwiceAfterNormalisation) {
  Person p;
  AddPhone(p, "+48 123 456 789");
  AddPhone(p, "+48-123-456-789");
  EXPECT_THAT(Update(p, {"phones"}),
              AllOf(Refused("person.phones[1].number", "456"),
                    StatusIs(absl::StatusCode::kInvalidArgument,
                             HasSubstr("person.phones[1].number: repeats phones[0]"))));
}

TEST(NormalizePersonTest, RefusesMalformedPhones) {
  const std::vector<std::string> bad = {
      "",
      "48123456789",        // no '+'
      "+4812",              // too short
      "+4812345678901234",  // 16 digits
      "+0123456789",        // country code 0
      "+48 123 abc 789",
      "+48\xff"
      "123456789",
      std::string("+48123\0"
                  "456789",
                  13),
      "+48123456789\r\nX-Injected: 1",
      "+\xd9\xa4\xd9\xa8\xd9\xa1\xd9\xa2\xd9\xa3\xd9\xa4\xd9\xa5\xd9\xa6",  // Arabic-Indic digits
      "+48" + kMiB,
  };
  for (const std::string& number : bad) {
    Person p;
    AddPhone(p, "+48111222333");
    AddPhone(p, number);
    const absl::Status s = Update(p, {"phones"});
    EXPECT_THAT(s, Refused("person.phones[1].number", "123")) << number.substr(0, 40);
    EXPECT_THAT(s, Not(StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("Injected"))));
  }
}

TEST(NormalizePersonTest, AcceptsTenPhonesRefusesEleven) {
  Person p;
  for (int i = 0; i < 10; ++i) AddPhone(p, absl::StrCat("+4812345678", i));
  EXPECT_THAT(Update(p, {"phones"}), IsOk());
  AddPhone(p, "+48999999999");
  EXPECT_THAT(Update(p, {"phones"}), Refused("person.phones", "999"));
}

// ---- Postal addresses ----------------------------------------------------------

TEST(NormalizePersonTest, NormalisesAnAddress) {
  Person p;
  PostalAddress* a = p.add_addresses();
  a->set_label(" Billing ");
  a->add_street_lines("  ul. Marszałkowska 1 ");
  a->add_street_lines("   ");
  a->add_street_lines("m. 5");
  a->set_postal_code(" 00-950 ");
  a->set_city(" Warszawa ");
  a->set_region("mazowieckie ");
  a->set_country_code(" pl ");
  ASSERT_THAT(Update(p, {"addresses"}), IsOk());
  EXPECT_EQ(a->label(), "billing");
  EXPECT_THAT(a->street_lines(), ElementsAre("ul. Marszałkowska 1", "m. 5"));
  EXPECT_EQ(a->postal_code(), "00-950");
  EXPECT_EQ(a->city(), "Warszawa");
  EXPECT_EQ(a->region(), "mazowieckie");
  EXPECT_EQ(a->country_code(), "PL");
}

TEST(NormalizePersonTest, AcceptsAddressesWithOnlySomeParts) {
  Person p;
  p.add_addresses()->set_country_code("de");
  p.add_addresses()->set_city("Kraków");
  p.add_addresses()->set_postal_code("SW1A 1AA");
  ASSERT_THAT(Update(p, {"addresses"}), IsOk());
  EXPECT_EQ(p.addresses(0).country_code(), "DE");
  EXPECT_EQ(p.addresses(2).postal_code(), "SW1A 1AA");
}

TEST(NormalizePersonTest, RefusesAnEmptyAddress) {
  Person p;
  AddAddress(p);
  p.add_addresses();
  EXPECT_THAT(Update(p, {"addresses"}), StatusIs(absl::StatusCode::kInvalidArgument,
                                                 HasSubstr("person.addresses[1]: empty")));

  // A label or blank lines are not an address either.
  Person q;
  PostalAddress* a = q.add_addresses();
  a->set_label("home");
  a->add_street_lines("  ");
  a->set_city(" ");
  EXPECT_THAT(Update(q, {"addresses"}), Refused("person.addresses[0]", "home"));
}

TEST(NormalizePersonTest, AcceptsFiveAddressesRefusesSix) {
  Person p;
  for (int i = 0; i < 5; ++i) AddAddress(p);
  EXPECT_THAT(Update(p, {"addresses"}), IsOk());
  AddAddress(p);
  EXPECT_THAT(Update(p, {"addresses"}), Refused("person.addresses", "Warszawa"));
}

TEST(NormalizePersonTest, AcceptsThreeStreetLinesRefusesFour) {
  Person p;
  PostalAddress* a = AddAddress(p);
  a->add_street_lines("line two");
  a->add_street_lines("line three");
  EXPECT_THAT(Update(p, {"addresses"}), IsOk());
  a->add_street_lines("line four");
  EXPECT_THAT(Update(p, {"addresses"}), Refused("person.addresses[0].street_lines", "four"));
}

TEST(NormalizePersonTest, StreetLinesAreTextWithinTheCatalogueMaximum) {
  const size_t max = CatalogueMax("person.addresses.street_lines");
  ASSERT_GT(max, 0u);
  Person p;
  PostalAddress* a = AddAddress(p);
  a->add_street_lines(Polish(max));
  EXPECT_THAT(Update(p, {"addresses"}), IsOk());
  a->set_street_lines(1, Polish(max + 1));
  EXPECT_THAT(Update(p, {"addresses"}), Refused("person.addresses[0].street_lines[1]", "\xc5"));
  for (const std::string& bad :
       {std::string("Main St\n1"), std::string("Main St\xff"), std::string("Main\0St", 7), kMiB}) {
    a->set_street_lines(1, bad);
    EXPECT_THAT(Update(p, {"addresses"}), Refused("person.addresses[0].street_lines[1]", "Main"));
  }
}

TEST(NormalizePersonTest, RefusesBadPostalCodes) {
  for (const std::string& bad : {std::string("00_950"),
                                 std::string("00\xe2\x80\x93"
                                             "950"),
                                 std::string(17, '9'), std::string("00-\n950"),
                                 std::string("00\0"
                                             "950",
                                             6),
                                 "9" + kMiB}) {
    Person p;
    AddAddress(p)->set_postal_code(bad);
    EXPECT_THAT(Update(p, {"addresses"}), Refused("person.addresses[0].postal_code", "950"))
        << bad.substr(0, 20);
  }
  Person p;
  AddAddress(p)->set_postal_code(std::string(16, '9'));
  EXPECT_THAT(Update(p, {"addresses"}), IsOk());
}

TEST(NormalizePersonTest, RefusesBadCountryCodes) {
  for (const std::string& bad : {std::string("POL"), std::string("P"), std::string("P1"),
                                 std::string("\xc3\x85L"), std::string("P L"), std::string("--")}) {
    Person p;
    AddAddress(p)->set_country_code(bad);
    EXPECT_THAT(Update(p, {"addresses"}), Refused("person.addresses[0].country_code", bad)) << bad;
  }
}

TEST(NormalizePersonTest, CityAndRegionAreSingleLineTextWithinTheCatalogueMaximum) {
  const size_t city_max = CatalogueMax("person.addresses.city");
  const size_t region_max = CatalogueMax("person.addresses.region");
  ASSERT_GT(city_max, 0u);
  ASSERT_GT(region_max, 0u);
  Person p;
  PostalAddress* a = AddAddress(p);
  a->set_city(Polish(city_max));
  a->set_region(Polish(region_max));
  EXPECT_THAT(Update(p, {"addresses"}), IsOk());

  for (const std::string& bad :
       {Polish(city_max + 1), std::string("Łódź\nBcc"), std::string("Łódź\xff"), kMiB}) {
    Person q;
    AddAddress(q)->set_city(bad);
    EXPECT_THAT(Update(q, {"addresses"}), Refused("person.addresses[0].city", bad.substr(0, 4)));
  }
  for (const std::string& bad :
       {Polish(region_max + 1), std::string("Maz\rury"), std::string("Maz\0ury", 7), kMiB}) {
    Person q;
    AddAddress(q)->set_region(bad);
    EXPECT_THAT(Update(q, {"addresses"}), Refused("person.addresses[0].region", bad.substr(0, 4)));
  }
}

// ---- Company and personal id -----------------------------------------------------

TEST(NormalizePersonTest, CompanyIdIsEmptyOrACanonicalUuid) {
  Person p;
  EXPECT_THAT(Update(p, {"company_id"}), IsOk());
  p.set_company_id("0F8FAD5B-D9CB-469F-A165-70867728950E");
  ASSERT_THAT(Update(p, {"company_id"}), IsOk());
  EXPECT_EQ(p.company_id(), kCompanyId);

  for (const std::string& bad :
       {std::string("not-a-uuid"), std::string("0f8fad5b-d9cb-469f-a165-70867728950"),
        std::string("0f8fad5bd9cb469fa16570867728950e"),
        std::string("0f8fad5b-d9cb-469f-a165-70867728950e' OR '1'='1"), kMiB}) {
    Person q;
    q.set_company_id(bad);
    EXPECT_THAT(Update(q, {"company_id"}), Refused("person.company_id", bad.substr(0, 8)));
  }
}

TEST(NormalizePersonTest, PersonalIdNumberIsAlphanumericUpperCased) {
  Person p;
  EXPECT_THAT(Update(p, {"personal_id_number"}), IsOk());
  p.set_personal_id_number(" ab123456c ");
  ASSERT_THAT(Update(p, {"personal_id_number"}), IsOk());
  EXPECT_EQ(p.personal_id_number(), "AB123456C");
  p.set_personal_id_number(std::string(32, '9'));
  EXPECT_THAT(Update(p, {"personal_id_number"}), IsOk());

  for (const std::string& bad :
       {std::string("850719-12345"), std::string("85071 912345"), std::string(33, '9'),
        std::string("8507\xc4\x84"
                    "912345"),
        std::string("8507\0"
                    "912345",
                    11),
        std::string("85071912345\xff"), "85" + kMiB}) {
    Person q;
    q.set_personal_id_number(bad);
    EXPECT_THAT(Update(q, {"personal_id_number"}),
                Refused("person.personal_id_number", bad.substr(0, 4)))
        << bad.substr(0, 40);
  }
}

TEST(NormalizePersonTest, NotesSensitiveIsAnything) {
  Person p;
  p.set_notes_sensitive(true);
  ASSERT_THAT(Update(p, {"notes_sensitive"}), IsOk());
  EXPECT_TRUE(p.notes_sensitive());
}

// ---- DiffPerson ------------------------------------------------------------------

Person Sample() {
  Person p;
  p.set_status(v1::PERSON_STATUS_LEAD);
  p.set_given_name("Anna");
  p.set_family_name("Nowak");
  AddEmail(p, "anna@example.com", "work", true);
  AddPhone(p, "+48123456789", true);
  AddAddress(p)->set_label("home");
  p.set_job_title("Buyer");
  p.set_company_id(kCompanyId);
  p.set_personal_id_number("85071912345");
  p.set_notes("likes tea");
  return p;
}

TEST(DiffPersonTest, UnchangedIsEmpty) {
  EXPECT_THAT(DiffPerson(Sample(), Sample(), WritablePersonFields()), IsEmpty());
}

TEST(DiffPersonTest, AChangedName) {
  Person after = Sample();
  after.set_family_name("Kowalska");
  EXPECT_THAT(DiffPerson(Sample(), after, WritablePersonFields()),
              ElementsAre(PersonChange{"family_name", "Nowak", "Kowalska"}));
}

TEST(DiffPersonTest, AnAddedEmail) {
  Person after = Sample();
  AddEmail(after, "anna@home.example", "home");
  EXPECT_THAT(DiffPerson(Sample(), after, {"emails"}),
              ElementsAre(PersonChange{"emails[1].address", "", "anna@home.example"},
                          PersonChange{"emails[1].label", "", "home"},
                          PersonChange{"emails[1].primary", "", "false"}));
}

TEST(DiffPersonTest, ARemovedEmail) {
  Person before = Sample();
  AddEmail(before, "old@example.com");
  EXPECT_THAT(DiffPerson(before, Sample(), {"emails"}),
              ElementsAre(PersonChange{"emails[1].address", "old@example.com", ""},
                          PersonChange{"emails[1].primary", "false", ""}));
}

TEST(DiffPersonTest, EmailsAreComparedByIndex) {
  Person after = Sample();
  after.mutable_emails(0)->set_address("anna@new.example");
  after.mutable_emails(0)->set_primary(false);
  EXPECT_THAT(DiffPerson(Sample(), after, {"emails"}),
              ElementsAre(PersonChange{"emails[0].address", "anna@example.com", "anna@new.example"},
                          PersonChange{"emails[0].primary", "true", "false"}));
}

TEST(DiffPersonTest, StatusByItsProtoName) {
  Person after = Sample();
  after.set_status(v1::PERSON_STATUS_CUSTOMER);
  EXPECT_THAT(DiffPerson(Sample(), after, {"status"}),
              ElementsAre(PersonChange{"status", "PERSON_STATUS_LEAD", "PERSON_STATUS_CUSTOMER"}));
}

TEST(DiffPersonTest, FieldsNotNamedAreIgnored) {
  Person after = Sample();
  after.set_given_name("Maria");
  after.set_status(v1::PERSON_STATUS_PARTNER);
  after.clear_emails();
  after.set_notes_sensitive(true);
  EXPECT_THAT(DiffPerson(Sample(), after, {"family_name", "phones"}), IsEmpty());
  EXPECT_THAT(DiffPerson(Sample(), after, {"given_name"}),
              ElementsAre(PersonChange{"given_name", "Anna", "Maria"}));
}

TEST(DiffPersonTest, AddressLeavesWithStreetLinesJoined) {
  Person after = Sample();
  PostalAddress* a = after.mutable_addresses(0);
  a->add_street_lines("m. 5");
  a->set_country_code("DE");
  EXPECT_THAT(DiffPerson(Sample(), after, {"addresses"}),
              ElementsAre(PersonChange{"addresses[0].street_lines", "ul. Marszałkowska 1",
                                       "ul. Marszałkowska 1\nm. 5"},
                          PersonChange{"addresses[0].country_code", "PL", "DE"}));
}

TEST(DiffPersonTest, ListsInFieldOrderThenElementOrder) {
  Person before = Sample();
  Person after = Sample();
  // Set in reverse order; the `fields` order must not matter either.
  after.set_notes_sensitive(true);
  after.clear_personal_id_number();
  after.clear_company_id();
  AddPhone(after, "+48987654321");
  after.mutable_phones(0)->set_label("mobile");
  after.set_given_name("Maria");
  after.set_status(v1::PERSON_STATUS_PROSPECT);
  std::vector<std::string> fields = WritablePersonFields();
  std::reverse(fields.begin(), fields.end());
  EXPECT_THAT(DiffPerson(before, after, fields),
              ElementsAre(PersonChange{"status", "PERSON_STATUS_LEAD", "PERSON_STATUS_PROSPECT"},
                          PersonChange{"given_name", "Anna", "Maria"},
                          PersonChange{"phones[0].label", "", "mobile"},
                          PersonChange{"phones[1].number", "", "+48987654321"},
                          PersonChange{"phones[1].primary", "", "false"},
                          PersonChange{"company_id", kCompanyId, ""},
                          PersonChange{"personal_id_number", "85071912345", ""},
                          PersonChange{"notes_sensitive", "false", "true"}));
}

// ---- MaskSensitive -----------------------------------------------------------------

TEST(MaskSensitiveTest, ClearsPersonalIdAndSensitiveNotes) {
  Person p = Sample();
  p.set_notes_sensitive(true);
  EXPECT_THAT(MaskSensitive(p), ElementsAre("person.personal_id_number", "person.notes"));
  EXPECT_EQ(p.personal_id_number(), "");
  EXPECT_EQ(p.notes(), "");
  EXPECT_TRUE(p.notes_sensitive());
  EXPECT_EQ(p.family_name(), "Nowak");
}

TEST(MaskSensitiveTest, KeepsNotesThatAreNotSensitive) {
  Person p = Sample();
  EXPECT_THAT(MaskSensitive(p), ElementsAre("person.personal_id_number"));
  EXPECT_EQ(p.personal_id_number(), "");
  EXPECT_EQ(p.notes(), "likes tea");
}

TEST(MaskSensitiveTest, DoesNotReportEmptyFields) {
  Person p = Sample();
  p.clear_personal_id_number();
  p.clear_notes();
  p.set_notes_sensitive(true);
  EXPECT_THAT(MaskSensitive(p), IsEmpty());

  Person q = Sample();
  q.clear_personal_id_number();
  q.set_notes_sensitive(true);
  EXPECT_THAT(MaskSensitive(q), ElementsAre("person.notes"));
  EXPECT_EQ(q.notes(), "");
}

TEST(MaskSensitiveTest, ReportsCataloguePathsOfSensitiveFields) {
  Person p = Sample();
  p.set_notes_sensitive(true);
  for (const std::string& path : MaskSensitive(p)) {
    EXPECT_NE(Catalogue::Get().Find(path), nullptr) << path;
  }
  EXPECT_TRUE(Catalogue::Get().IsSensitive("person.personal_id_number"));
}

}  // namespace
}  // namespace crm::contacts
