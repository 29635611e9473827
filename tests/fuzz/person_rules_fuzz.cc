// Fuzz target `person_rules`: the validation and normalisation of a person's
// fields in the contacts service (services/contacts/person_rules.h) and the
// shared validators behind them (libs/base/validate.h: e-mail, E.164 phone,
// UTF-8 text). The input is one value, put in turn into every writable field
// (names, e-mail, phone, each part of a postal address, company id, personal
// id number, notes), as a create or update would carry it.
//
// Properties beyond "no crash, no sanitizer report":
//  - normalisation is idempotent: an accepted person normalises again,
//    unchanged, and DiffPerson between the two is empty;
//  - what is accepted obeys the rules: single-line text holds no tab, CR or
//    LF and no outer ASCII whitespace; e-mail addresses are lower-case,
//    ASCII, without controls or spaces, and pass ValidateEmail; phone numbers
//    are '+' and 8..15 digits; one entry is primary;
//  - an address and its upper-cased spelling, or a number with a space
//    added, are refused as duplicates (they are one value once normalised);
//  - a refusal is INVALID_ARGUMENT naming a person field ("person...").
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "crm/contacts/v1/contacts.pb.h"
#include "libs/base/validate.h"
#include "services/contacts/person_rules.h"

namespace {

using ::crm::contacts::v1::Person;

[[noreturn]] void Fail(const char* property) {
  std::fprintf(stderr, "PROPERTY VIOLATED (person_rules): %s\n", property);
  std::abort();
}

bool IsSingleLineText(absl::string_view s) {
  if (!crm::base::IsValidUtf8Text(s)) return false;
  if (s.find_first_of("\t\r\n") != absl::string_view::npos) return false;
  return absl::StripAsciiWhitespace(s) == s;
}

bool IsE164(absl::string_view s) {
  if (s.size() < 9 || s.size() > 16 || s[0] != '+' || s[1] == '0') return false;
  for (char c : s.substr(1)) {
    if (!absl::ascii_isdigit(static_cast<unsigned char>(c))) return false;
  }
  return true;
}

bool IsCleanEmail(absl::string_view s) {
  for (char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u >= 0x7f || absl::ascii_isupper(u)) return false;
  }
  return crm::base::ValidateEmail("e", s).ok() && crm::base::NormalizeEmail(s) == s;
}

void CheckAccepted(const Person& p) {
  for (const std::string* text : {&p.given_name(), &p.family_name(), &p.job_title()}) {
    if (!IsSingleLineText(*text)) Fail("accepted text that is not one clean line");
  }
  if (!crm::base::IsValidUtf8Text(p.notes())) Fail("accepted notes that are not UTF-8 text");
  int primary = 0;
  for (const auto& e : p.emails()) {
    if (!IsCleanEmail(e.address())) Fail("accepted an e-mail address not in normal form");
    primary += e.primary() ? 1 : 0;
  }
  if (p.emails_size() > 0 && primary != 1) Fail("e-mail addresses without exactly one primary");
  primary = 0;
  for (const auto& n : p.phones()) {
    if (!IsE164(n.number())) Fail("accepted a phone number that is not E.164");
    primary += n.primary() ? 1 : 0;
  }
  if (p.phones_size() > 0 && primary != 1) Fail("phone numbers without exactly one primary");
  for (const auto& a : p.addresses()) {
    for (const std::string* text : {&a.postal_code(), &a.city(), &a.region(), &a.country_code()}) {
      if (!IsSingleLineText(*text)) Fail("accepted an address part that is not one clean line");
    }
    for (const std::string& line : a.street_lines()) {
      if (line.empty() || !IsSingleLineText(line)) Fail("accepted a bad street line");
    }
    if (!a.country_code().empty() &&
        (a.country_code().size() != 2 || !absl::ascii_isupper(a.country_code()[0]) ||
         !absl::ascii_isupper(a.country_code()[1]))) {
      Fail("accepted a country code that is not two upper-case letters");
    }
  }
}

// Normalises `p` for `fields`; returns whether it was accepted, after
// checking the properties either way.
bool Normalize(Person p, const std::vector<std::string>& fields, bool creating) {
  const absl::Status s = crm::contacts::NormalizePerson(p, fields, creating);
  if (!s.ok()) {
    if (s.code() != absl::StatusCode::kInvalidArgument ||
        !absl::StartsWith(s.message(), "person")) {
      Fail("a refusal that is not INVALID_ARGUMENT naming a person field");
    }
    return false;
  }
  CheckAccepted(p);
  Person again = p;
  if (!crm::contacts::NormalizePerson(again, fields, false).ok()) {
    Fail("a normalised person is refused");
  }
  if (again.SerializeAsString() != p.SerializeAsString()) Fail("normalisation is not idempotent");
  if (!crm::contacts::DiffPerson(p, again, fields).empty()) Fail("a diff between equal persons");
  (void)crm::contacts::DiffPerson(Person(), p, fields);
  Person masked = p;
  (void)crm::contacts::MaskSensitive(masked);
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string v(reinterpret_cast<const char*>(data), size);

  {
    Person p;
    p.set_given_name(v);
    Normalize(p, {"given_name"}, false);
    p.Clear();
    p.set_family_name(v);
    Normalize(p, {"family_name"}, false);
    p.Clear();
    p.set_job_title(v);
    Normalize(p, {"job_title"}, false);
    p.Clear();
    p.set_notes(v);
    Normalize(p, {"notes"}, false);
    p.Clear();
    p.set_company_id(v);
    Normalize(p, {"company_id"}, false);
    p.Clear();
    p.set_personal_id_number(v);
    Normalize(p, {"personal_id_number"}, false);
  }
  {
    Person p;
    p.add_emails()->set_address(v);
    const bool accepted = Normalize(p, {"emails"}, false);
    p.add_emails()->set_address(absl::AsciiStrToUpper(v));
    if (Normalize(p, {"emails"}, false)) Fail("the same address twice accepted");
    p.Clear();
    p.add_emails()->set_label(v);
    p.mutable_emails(0)->set_address("ann@example.com");
    Normalize(p, {"emails"}, false);
    // The shared validator agrees with the person rule.
    if (crm::base::ValidateEmail("e", crm::base::NormalizeEmail(v)).ok() != accepted &&
        absl::StripAsciiWhitespace(v).size() <= 254) {
      Fail("ValidateEmail and the person rule disagree");
    }
  }
  {
    Person p;
    p.add_phones()->set_number(v);
    Normalize(p, {"phones"}, false);
    p.add_phones()->set_number(v.empty() ? " " : absl::StrCat(v.substr(0, 1), " ", v.substr(1)));
    if (Normalize(p, {"phones"}, false)) Fail("the same number twice accepted");
    const std::string number = crm::base::NormalizePhone(v);
    if (crm::base::ValidatePhoneE164("n", number).ok() && !IsE164(number)) {
      Fail("ValidatePhoneE164 accepted a number that is not E.164");
    }
  }
  for (int part = 0; part < 6; ++part) {
    Person p;
    auto* a = p.add_addresses();
    a->set_city("Warszawa");
    switch (part) {
      case 0:
        a->add_street_lines(v);
        break;
      case 1:
        a->set_postal_code(v);
        break;
      case 2:
        a->set_city(v);
        break;
      case 3:
        a->set_region(v);
        break;
      case 4:
        a->set_country_code(v);
        break;
      case 5:
        a->set_label(v);
        break;
    }
    Normalize(p, {"addresses"}, false);
  }
  {
    Person p;
    p.set_given_name(v);
    p.add_emails()->set_address(v);
    p.add_phones()->set_number(v);
    Normalize(p, crm::contacts::WritablePersonFields(), true);
  }
  return 0;
}
