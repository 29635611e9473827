// The rules for a person's fields in the contacts service, as pure functions
// the handlers (CreatePerson, UpdatePerson, ImportPersons, the read paths)
// share: validation and normalisation of a write, the field-by-field diff
// that rectification (Art. 16) records in the audit trail, and the masking of
// sensitive fields for callers without contacts.read.sensitive.
//
// Every length limit comes from the field catalogue (catalogue.h), so a limit
// is declared in one place and the catalogue served to clients tells the
// truth. Errors are INVALID_ARGUMENT naming the field by its request path and
// the rule broken ("person.emails[1].address: must be an e-mail address
// (...)"), never the value: the values are personal data, and error messages
// end up in logs, import reports and responses.
//
// Normalisation (so that the same value typed two ways is stored, indexed and
// compared as one):
//   text        leading and trailing ASCII whitespace trimmed; every field but
//               notes must be a single line (no tab, CR or LF)
//   labels      trimmed, ASCII lower-cased, then 1..32 of [a-z0-9_-] or empty
//   e-mails     trimmed and lower-cased (base::NormalizeEmail)
//   phones      spaces, dashes, dots and parentheses dropped
//               (base::NormalizePhone), then E.164
//   street      lines trimmed; lines left empty are dropped (forms send blank
//               second and third lines)
//   country     two ASCII letters, upper-cased
//   company_id  canonical lower-case UUID
//   personal id trimmed, upper-cased
// Names are stored as given otherwise: no case folding, no Unicode
// normalisation, and characters such as quotes or semicolons are ordinary
// text (the store binds parameters; nothing here is SQL).
//
// Oversized input is refused before any per-character work: lists by their
// length, strings by their byte length (a code point is at most 4 bytes)
// before code points are counted.
//
// Pure functions without I/O; thread-safe.
#pragma once

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "crm/contacts/v1/contacts.pb.h"

namespace crm::contacts {

// The top-level person fields a client may write, in proto field order
// ("status", "given_name", ..., "notes_sensitive"): what a create touches.
// Taken from the catalogue (declared directly below "person", not read-only).
const std::vector<std::string>& WritablePersonFields();

// Validates and normalises, in place, the top-level fields of `person` named
// in `fields` (names as in WritablePersonFields, e.g. an update mask's paths
// after Catalogue::ValidateUpdateMask). Fields not named are neither checked
// nor changed. The fields are checked in proto field order and the first
// broken rule is returned; on error `person` may be partly normalised and
// should be discarded.
//
// Rules:
//   status              a defined PersonStatus; UNSPECIFIED only on create,
//                       where it becomes LEAD
//   given_name, family_name, job_title, notes
//                       text within the catalogue's max_length; notes may
//                       span lines
//   emails              at most 10; each address a valid e-mail address; no
//                       two the same ("person.emails[2].address: repeats
//                       emails[0]"); at most one primary, and if none is, the
//                       first becomes primary
//   phones              at most 10; each number E.164; duplicates and primary
//                       as for e-mails
//   addresses           at most 5; label as above; at most 3 street lines,
//                       each within max_length; postal_code empty or 1..16 of
//                       [A-Za-z0-9 -]; city and region text within
//                       max_length; country_code empty or two letters; an
//                       address with no street line, postal code, city,
//                       region or country is refused ("person.addresses[0]:
//                       empty")
//   company_id          empty or a UUID
//   personal_id_number  empty or 1..32 of [A-Za-z0-9]
//   notes_sensitive     anything
// On create (`creating`), the person must also have at least one of
// family_name, given_name, emails or phones ("person: needs a name, an e-mail
// address or a phone number"); `fields` should then be WritablePersonFields().
// A name in `fields` that is not a writable person field is INVALID_ARGUMENT
// (the caller should have validated the mask already).
absl::Status NormalizePerson(crm::contacts::v1::Person& person,
                             const std::vector<std::string>& fields, bool creating);

// One field-level change for the audit trail: a leaf path below the person
// ("family_name", "emails[1].address") and its old and new value as display
// text, "" when absent.
struct PersonChange {
  std::string path;
  std::string old_value;
  std::string new_value;

  friend bool operator==(const PersonChange&, const PersonChange&) = default;
};

// The changed leaves of the top-level fields named in `fields`, between two
// normalised persons; fields not named are ignored. Listed in proto field
// order, then element order, then the element's field order. Repeated fields
// are compared element by element by index, an element present on one side
// only showing "" for each of its leaves on the other. Display text: strings
// as stored; booleans "true"/"false"; status by its proto name
// ("PERSON_STATUS_CUSTOMER"); street_lines joined with "\n".
std::vector<PersonChange> DiffPerson(const crm::contacts::v1::Person& before,
                                     const crm::contacts::v1::Person& after,
                                     const std::vector<std::string>& fields);

// One postal address normalised in place by the rules of person addresses
// above (label, street lines, postal code, city, region, country code, not
// empty); errors name `field` ("company.addresses[0]") and the sub-field.
// Shared with companies.
absl::Status NormalizePostalAddress(absl::string_view field,
                                    crm::contacts::v1::PostalAddress& address);

// Trims `value` and checks it is single-line text of at most `max` code
// points; errors name `field`.
absl::Status NormalizeSingleLineText(absl::string_view field, std::string& value, size_t max);

// Masks the SENSITIVE fields for a caller without contacts.read.sensitive:
// clears personal_id_number, and notes when notes_sensitive is set. Returns
// the catalogue paths of the fields it cleared, in that order
// ("person.personal_id_number", "person.notes"), for a response's
// masked_fields; a field that was already empty is not listed (nothing was
// withheld). notes_sensitive itself is kept, so the caller can tell why.
std::vector<std::string> MaskSensitive(crm::contacts::v1::Person& person);

}  // namespace crm::contacts
