// Validation, normalisation and masking of companies (crm.contacts.v1.Company):
// the companion of person_rules.h. Pure functions: thread-safe.
#pragma once

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "crm/contacts/v1/contacts.pb.h"

namespace crm::contacts {

// The top-level company fields a client may write ("name", "tax_ids",
// "addresses", "billing"), from the catalogue.
const std::vector<std::string>& WritableCompanyFields();

// Validates and normalises, in place, the top-level fields of `company` named
// in `fields`; errors are INVALID_ARGUMENT naming the field path
// ("company.tax_ids[1].value: NIP check digit does not match"), never a value.
//   name       single-line text within the catalogue's limit; required
//   tax_ids    at most 4, at most one per kind; a known kind; the value
//              valid by its check digits (tax_id.h) and stored canonical
//   addresses  at most 5, each as a person's address (person_rules.h)
//   billing    billing_address as an address (if any part is given);
//              invoice_email an e-mail address (lower-cased); bank_account
//              an IBAN (ISO 13616: country, two check digits, up to 30
//              letters and digits, mod 97 = 1), stored without spaces
absl::Status NormalizeCompany(crm::contacts::v1::Company& company,
                              const std::vector<std::string>& fields);

// An IBAN without spaces, upper-cased, or INVALID_ARGUMENT naming `field`.
absl::Status NormalizeIban(absl::string_view field, std::string& iban);

// Clears billing.bank_account (SENSITIVE) for a caller without
// contacts.read.sensitive; returns the paths cleared.
std::vector<std::string> MaskCompany(crm::contacts::v1::Company& company);

}  // namespace crm::contacts
