#include "services/contacts/person_rules.h"

#include <algorithm>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <utility>

#include "absl/algorithm/container.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"
#include "libs/base/uuid.h"
#include "libs/base/validate.h"
#include "services/contacts/catalogue.h"

namespace crm::contacts {
namespace {

using crm::contacts::v1::EmailAddress;
using crm::contacts::v1::Person;
using crm::contacts::v1::PersonStatus;
using crm::contacts::v1::PhoneNumber;
using crm::contacts::v1::PostalAddress;

// List sizes (the contract's comments; the catalogue has no element counts).
constexpr int kMaxEmails = 10;
constexpr int kMaxPhones = 10;
constexpr int kMaxAddresses = 5;
constexpr int kMaxStreetLines = 3;

// The longest UTF-8 encoding of one code point: a value longer than this many
// bytes per allowed code point is too long without counting.
constexpr size_t kMaxBytesPerCodePoint = 4;

// The catalogue's limits this module uses, looked up once.
struct Limits {
  size_t given_name, family_name, job_title, notes;
  size_t email_address, email_label;
  size_t phone_number, phone_label;
  size_t address_label, street_line, postal_code, city, region;
  size_t personal_id_number;
};

size_t MaxLength(absl::string_view path) {
  const FieldSpec* spec = Catalogue::Get().Find(path);
  if (spec == nullptr || spec->max_length <= 0) {
    // The catalogue and this module disagree about the contract: a build that
    // would accept or refuse everything must not start.
    std::fprintf(stderr, "person_rules: catalogue has no length limit for %.*s\n",
                 static_cast<int>(path.size()), path.data());
    std::abort();
  }
  return static_cast<size_t>(spec->max_length);
}

const Limits& GetLimits() {
  static const Limits* const kLimits = new Limits{
      .given_name = MaxLength("person.given_name"),
      .family_name = MaxLength("person.family_name"),
      .job_title = MaxLength("person.job_title"),
      .notes = MaxLength("person.notes"),
      .email_address = MaxLength("person.emails.address"),
      .email_label = MaxLength("person.emails.label"),
      .phone_number = MaxLength("person.phones.number"),
      .phone_label = MaxLength("person.phones.label"),
      .address_label = MaxLength("person.addresses.label"),
      .street_line = MaxLength("person.addresses.street_lines"),
      .postal_code = MaxLength("person.addresses.postal_code"),
      .city = MaxLength("person.addresses.city"),
      .region = MaxLength("person.addresses.region"),
      .personal_id_number = MaxLength("person.personal_id_number"),
  };
  return *kLimits;
}

absl::Status Invalid(absl::string_view field, absl::string_view rule) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", rule));
}

absl::Status TooLong(absl::string_view field, size_t max) {
  return Invalid(field, absl::StrCat("must be at most ", max, " characters"));
}

bool Named(const std::vector<std::string>& fields, absl::string_view name) {
  return absl::c_find(fields, name) != fields.end();
}

// Trims `value` and checks it is text of at most `max` code points; a single
// line unless `multiline`. Stores the trimmed text.
absl::Status NormalizeText(absl::string_view field, std::string& value, size_t max,
                           bool multiline = false) {
  const absl::string_view trimmed = absl::StripAsciiWhitespace(value);
  if (trimmed.size() > max * kMaxBytesPerCodePoint) return TooLong(field, max);
  if (absl::Status s = base::ValidateText(field, trimmed, 0, max); !s.ok()) return s;
  if (!multiline && trimmed.find_first_of("\t\r\n") != absl::string_view::npos) {
    return Invalid(field, "must be a single line (no tabs or line breaks)");
  }
  if (trimmed.size() != value.size()) value = std::string(trimmed);
  return absl::OkStatus();
}

bool IsLabelChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
}

// A label: empty, or trimmed and lower-cased to 1..max of [a-z0-9_-]. Only
// ASCII is lower-cased, so a lookalike ("wоrk" with a Cyrillic o) stays
// non-ASCII and is refused: labels are matched by code, not read by people.
absl::Status NormalizeLabel(absl::string_view field, std::string& label, size_t max) {
  const absl::string_view trimmed = absl::StripAsciiWhitespace(label);
  if (trimmed.size() > max) return TooLong(field, max);  // ASCII only: bytes = characters
  std::string lower = absl::AsciiStrToLower(trimmed);
  if (!absl::c_all_of(lower, IsLabelChar)) {
    return Invalid(field, "must contain only a-z, 0-9, '_' and '-'");
  }
  label = std::move(lower);
  return absl::OkStatus();
}

absl::Status NormalizeStatus(Person& person, bool creating) {
  constexpr absl::string_view kField = "person.status";
  if (!crm::contacts::v1::PersonStatus_IsValid(person.status())) {
    return Invalid(kField, "not a defined status");
  }
  if (person.status() == crm::contacts::v1::PERSON_STATUS_UNSPECIFIED) {
    if (!creating) return Invalid(kField, "required");
    person.set_status(crm::contacts::v1::PERSON_STATUS_LEAD);
  }
  return absl::OkStatus();
}

// The rules e-mails and phones share: no value twice, at most one primary,
// and the first is primary if none is. `leaf` names the element's value field
// ("address", "number") and `value` reads it.
template <typename Entry, typename ValueFn>
absl::Status CheckDuplicatesAndPrimary(absl::string_view list,
                                       google::protobuf::RepeatedPtrField<Entry>& entries,
                                       absl::string_view leaf, ValueFn value) {
  int primary = -1;
  for (int i = 0; i < entries.size(); ++i) {
    for (int j = 0; j < i; ++j) {
      if (value(entries[j]) == value(entries[i])) {
        return Invalid(absl::StrCat("person.", list, "[", i, "].", leaf),
                       absl::StrCat("repeats ", list, "[", j, "]"));
      }
    }
    if (entries[i].primary()) {
      if (primary >= 0) {
        return Invalid(absl::StrCat("person.", list, "[", i, "].primary"),
                       absl::StrCat("only one may be primary (", list, "[", primary, "] is)"));
      }
      primary = i;
    }
  }
  if (primary < 0 && !entries.empty()) entries[0].set_primary(true);
  return absl::OkStatus();
}

absl::Status NormalizeEmails(Person& person) {
  const Limits& limits = GetLimits();
  auto& emails = *person.mutable_emails();
  if (emails.size() > kMaxEmails) {
    return Invalid("person.emails", absl::StrCat("at most ", kMaxEmails, " e-mail addresses"));
  }
  for (int i = 0; i < emails.size(); ++i) {
    EmailAddress& e = emails[i];
    const std::string field = absl::StrCat("person.emails[", i, "].address");
    // An address is ASCII (ValidateEmail), so bytes are characters.
    if (absl::StripAsciiWhitespace(e.address()).size() > limits.email_address) {
      return TooLong(field, limits.email_address);
    }
    std::string address = base::NormalizeEmail(e.address());
    if (absl::Status s = base::ValidateEmail(field, address); !s.ok()) return s;
    e.set_address(std::move(address));
    if (absl::Status s = NormalizeLabel(absl::StrCat("person.emails[", i, "].label"),
                                        *e.mutable_label(), limits.email_label);
        !s.ok()) {
      return s;
    }
  }
  return CheckDuplicatesAndPrimary(
      "emails", emails, "address",
      [](const EmailAddress& e) -> const std::string& { return e.address(); });
}

absl::Status NormalizePhones(Person& person) {
  const Limits& limits = GetLimits();
  auto& phones = *person.mutable_phones();
  if (phones.size() > kMaxPhones) {
    return Invalid("person.phones", absl::StrCat("at most ", kMaxPhones, " phone numbers"));
  }
  for (int i = 0; i < phones.size(); ++i) {
    PhoneNumber& p = phones[i];
    const std::string field = absl::StrCat("person.phones[", i, "].number");
    // The limit is for the normalised number; the separators NormalizePhone
    // drops may lengthen what was typed, within reason.
    if (p.number().size() > limits.phone_number * kMaxBytesPerCodePoint) {
      return TooLong(field, limits.phone_number);
    }
    std::string number = base::NormalizePhone(p.number());
    if (absl::Status s = base::ValidatePhoneE164(field, number); !s.ok()) return s;
    if (number.size() > limits.phone_number) return TooLong(field, limits.phone_number);
    p.set_number(std::move(number));
    if (absl::Status s = NormalizeLabel(absl::StrCat("person.phones[", i, "].label"),
                                        *p.mutable_label(), limits.phone_label);
        !s.ok()) {
      return s;
    }
  }
  return CheckDuplicatesAndPrimary(
      "phones", phones, "number",
      [](const PhoneNumber& p) -> const std::string& { return p.number(); });
}

bool IsPostalCodeChar(char c) {
  return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == ' ' || c == '-';
}

absl::Status NormalizeAddress(absl::string_view prefix, PostalAddress& a) {
  const Limits& limits = GetLimits();
  if (absl::Status s =
          NormalizeLabel(absl::StrCat(prefix, ".label"), *a.mutable_label(), limits.address_label);
      !s.ok()) {
    return s;
  }

  auto& lines = *a.mutable_street_lines();
  if (lines.size() > kMaxStreetLines) {
    return Invalid(absl::StrCat(prefix, ".street_lines"),
                   absl::StrCat("at most ", kMaxStreetLines, " lines"));
  }
  for (int i = 0; i < lines.size(); ++i) {
    if (absl::Status s = NormalizeText(absl::StrCat(prefix, ".street_lines[", i, "]"), lines[i],
                                       limits.street_line);
        !s.ok()) {
      return s;
    }
  }
  lines.erase(std::remove_if(lines.begin(), lines.end(),
                             [](const std::string& line) { return line.empty(); }),
              lines.end());

  {
    const std::string field = absl::StrCat(prefix, ".postal_code");
    const absl::string_view code = absl::StripAsciiWhitespace(a.postal_code());
    if (code.size() > limits.postal_code) return TooLong(field, limits.postal_code);
    if (!absl::c_all_of(code, IsPostalCodeChar)) {
      return Invalid(field, "must contain only letters, digits, spaces and '-'");
    }
    a.set_postal_code(std::string(code));
  }

  if (absl::Status s = NormalizeText(absl::StrCat(prefix, ".city"), *a.mutable_city(), limits.city);
      !s.ok()) {
    return s;
  }
  if (absl::Status s =
          NormalizeText(absl::StrCat(prefix, ".region"), *a.mutable_region(), limits.region);
      !s.ok()) {
    return s;
  }

  {
    const absl::string_view country = absl::StripAsciiWhitespace(a.country_code());
    if (!country.empty() && (country.size() != 2 || !absl::c_all_of(country, [](char c) {
                               return absl::ascii_isalpha(static_cast<unsigned char>(c));
                             }))) {
      return Invalid(absl::StrCat(prefix, ".country_code"),
                     "must be an ISO 3166-1 alpha-2 code (two letters)");
    }
    a.set_country_code(absl::AsciiStrToUpper(country));
  }

  // The label says what kind of address it is; alone it is no address.
  if (a.street_lines().empty() && a.postal_code().empty() && a.city().empty() &&
      a.region().empty() && a.country_code().empty()) {
    return Invalid(prefix, "empty");
  }
  return absl::OkStatus();
}

absl::Status NormalizeAddresses(Person& person) {
  auto& addresses = *person.mutable_addresses();
  if (addresses.size() > kMaxAddresses) {
    return Invalid("person.addresses",
                   absl::StrCat("at most ", kMaxAddresses, " postal addresses"));
  }
  for (int i = 0; i < addresses.size(); ++i) {
    if (absl::Status s = NormalizeAddress(absl::StrCat("person.addresses[", i, "]"), addresses[i]);
        !s.ok()) {
      return s;
    }
  }
  return absl::OkStatus();
}

absl::Status NormalizeCompanyId(Person& person) {
  if (person.company_id().empty()) return absl::OkStatus();
  absl::StatusOr<std::string> id = base::CanonicalUuid("person.company_id", person.company_id());
  if (!id.ok()) return id.status();
  person.set_company_id(*std::move(id));
  return absl::OkStatus();
}

absl::Status NormalizePersonalIdNumber(Person& person) {
  constexpr absl::string_view kField = "person.personal_id_number";
  const size_t max = GetLimits().personal_id_number;
  const absl::string_view id = absl::StripAsciiWhitespace(person.personal_id_number());
  if (id.size() > max) return TooLong(kField, max);
  if (!absl::c_all_of(id,
                      [](char c) { return absl::ascii_isalnum(static_cast<unsigned char>(c)); })) {
    return Invalid(kField, "must contain only letters and digits");
  }
  person.set_personal_id_number(absl::AsciiStrToUpper(id));
  return absl::OkStatus();
}

// One writable top-level field: its name and how to normalise it.
struct FieldRule {
  absl::string_view name;
  absl::Status (*normalize)(Person& person, bool creating);
};

// In proto field order, which is the order errors are found in.
constexpr FieldRule kFieldRules[] = {
    {"status", [](Person& p, bool creating) { return NormalizeStatus(p, creating); }},
    {"given_name",
     [](Person& p, bool) {
       return NormalizeText("person.given_name", *p.mutable_given_name(), GetLimits().given_name);
     }},
    {"family_name",
     [](Person& p, bool) {
       return NormalizeText("person.family_name", *p.mutable_family_name(),
                            GetLimits().family_name);
     }},
    {"emails", [](Person& p, bool) { return NormalizeEmails(p); }},
    {"phones", [](Person& p, bool) { return NormalizePhones(p); }},
    {"addresses", [](Person& p, bool) { return NormalizeAddresses(p); }},
    {"job_title",
     [](Person& p, bool) {
       return NormalizeText("person.job_title", *p.mutable_job_title(), GetLimits().job_title);
     }},
    {"company_id", [](Person& p, bool) { return NormalizeCompanyId(p); }},
    {"personal_id_number", [](Person& p, bool) { return NormalizePersonalIdNumber(p); }},
    {"notes",
     [](Person& p, bool) {
       return NormalizeText("person.notes", *p.mutable_notes(), GetLimits().notes,
                            /*multiline=*/true);
     }},
    {"notes_sensitive", [](Person&, bool) { return absl::OkStatus(); }},
};

// ---- Diff ------------------------------------------------------------------

absl::string_view BoolText(bool b) { return b ? "true" : "false"; }

std::string StatusText(int status) {
  if (crm::contacts::v1::PersonStatus_IsValid(status)) {
    return crm::contacts::v1::PersonStatus_Name(static_cast<PersonStatus>(status));
  }
  return absl::StrCat(status);  // an undefined value read back from storage
}

void AddIfChanged(std::vector<PersonChange>& out, std::string path, absl::string_view before,
                  absl::string_view after) {
  if (before == after) return;
  out.push_back({std::move(path), std::string(before), std::string(after)});
}

// Diffs element `i` of two repeated fields, `leaves` giving each leaf's name
// and display text; an element missing on one side shows "" for every leaf.
template <typename Entry, size_t N>
void DiffElements(std::vector<PersonChange>& out, absl::string_view list,
                  const google::protobuf::RepeatedPtrField<Entry>& before,
                  const google::protobuf::RepeatedPtrField<Entry>& after,
                  const std::pair<absl::string_view, std::string (*)(const Entry&)> (&leaves)[N]) {
  const int n = std::max(before.size(), after.size());
  for (int i = 0; i < n; ++i) {
    for (const auto& [leaf, text] : leaves) {
      AddIfChanged(out, absl::StrCat(list, "[", i, "].", leaf),
                   i < before.size() ? text(before[i]) : std::string(),
                   i < after.size() ? text(after[i]) : std::string());
    }
  }
}

using EmailLeaf = std::pair<absl::string_view, std::string (*)(const EmailAddress&)>;
constexpr EmailLeaf kEmailLeaves[] = {
    {"address", [](const EmailAddress& e) { return e.address(); }},
    {"label", [](const EmailAddress& e) { return e.label(); }},
    {"primary", [](const EmailAddress& e) { return std::string(BoolText(e.primary())); }},
};

using PhoneLeaf = std::pair<absl::string_view, std::string (*)(const PhoneNumber&)>;
constexpr PhoneLeaf kPhoneLeaves[] = {
    {"number", [](const PhoneNumber& p) { return p.number(); }},
    {"label", [](const PhoneNumber& p) { return p.label(); }},
    {"primary", [](const PhoneNumber& p) { return std::string(BoolText(p.primary())); }},
};

using AddressLeaf = std::pair<absl::string_view, std::string (*)(const PostalAddress&)>;
constexpr AddressLeaf kAddressLeaves[] = {
    {"label", [](const PostalAddress& a) { return a.label(); }},
    {"street_lines", [](const PostalAddress& a) { return absl::StrJoin(a.street_lines(), "\n"); }},
    {"postal_code", [](const PostalAddress& a) { return a.postal_code(); }},
    {"city", [](const PostalAddress& a) { return a.city(); }},
    {"region", [](const PostalAddress& a) { return a.region(); }},
    {"country_code", [](const PostalAddress& a) { return a.country_code(); }},
};

}  // namespace

absl::Status NormalizePostalAddress(absl::string_view field,
                                    crm::contacts::v1::PostalAddress& address) {
  return NormalizeAddress(field, address);
}

absl::Status NormalizeSingleLineText(absl::string_view field, std::string& value, size_t max) {
  return NormalizeText(field, value, max);
}

const std::vector<std::string>& WritablePersonFields() {
  static const std::vector<std::string>* const kFields = [] {
    auto* fields = new std::vector<std::string>;
    for (const FieldRule& rule : kFieldRules) {
      const FieldSpec* spec = Catalogue::Get().Find(absl::StrCat("person.", rule.name));
      if (spec != nullptr && !spec->read_only) fields->emplace_back(rule.name);
    }
    return fields;
  }();
  return *kFields;
}

absl::Status NormalizePerson(Person& person, const std::vector<std::string>& fields,
                             bool creating) {
  for (const std::string& name : fields) {
    if (!Named(WritablePersonFields(), name)) {
      // Echo the name only if the catalogue knows it: a mask path is not
      // personal data, but an arbitrary string might be.
      if (Catalogue::Get().Find(absl::StrCat("person.", name)) != nullptr) {
        return Invalid(absl::StrCat("person.", name), "not writable here");
      }
      return Invalid("person", "names a field that does not exist");
    }
  }
  for (const FieldRule& rule : kFieldRules) {
    if (!Named(fields, rule.name)) continue;
    if (absl::Status s = rule.normalize(person, creating); !s.ok()) return s;
  }
  if (creating) {
    if (person.status() == crm::contacts::v1::PERSON_STATUS_UNSPECIFIED) {
      person.set_status(crm::contacts::v1::PERSON_STATUS_LEAD);
    }
    if (person.family_name().empty() && person.given_name().empty() && person.emails().empty() &&
        person.phones().empty()) {
      return Invalid("person", "needs a name, an e-mail address or a phone number");
    }
  }
  return absl::OkStatus();
}

std::vector<PersonChange> DiffPerson(const Person& before, const Person& after,
                                     const std::vector<std::string>& fields) {
  std::vector<PersonChange> out;
  for (const FieldRule& rule : kFieldRules) {
    if (!Named(fields, rule.name)) continue;
    const absl::string_view name = rule.name;
    const std::string path(name);
    if (name == "status") {
      AddIfChanged(out, path, StatusText(before.status()), StatusText(after.status()));
    } else if (name == "given_name") {
      AddIfChanged(out, path, before.given_name(), after.given_name());
    } else if (name == "family_name") {
      AddIfChanged(out, path, before.family_name(), after.family_name());
    } else if (name == "emails") {
      DiffElements(out, name, before.emails(), after.emails(), kEmailLeaves);
    } else if (name == "phones") {
      DiffElements(out, name, before.phones(), after.phones(), kPhoneLeaves);
    } else if (name == "addresses") {
      DiffElements(out, name, before.addresses(), after.addresses(), kAddressLeaves);
    } else if (name == "job_title") {
      AddIfChanged(out, path, before.job_title(), after.job_title());
    } else if (name == "company_id") {
      AddIfChanged(out, path, before.company_id(), after.company_id());
    } else if (name == "personal_id_number") {
      AddIfChanged(out, path, before.personal_id_number(), after.personal_id_number());
    } else if (name == "notes") {
      AddIfChanged(out, path, before.notes(), after.notes());
    } else if (name == "notes_sensitive") {
      AddIfChanged(out, path, BoolText(before.notes_sensitive()),
                   BoolText(after.notes_sensitive()));
    }
  }
  return out;
}

std::vector<std::string> MaskSensitive(Person& person) {
  std::vector<std::string> masked;
  if (!person.personal_id_number().empty()) {
    person.clear_personal_id_number();
    masked.emplace_back("person.personal_id_number");
  }
  if (person.notes_sensitive() && !person.notes().empty()) {
    person.clear_notes();
    masked.emplace_back("person.notes");
  }
  return masked;
}

}  // namespace crm::contacts
