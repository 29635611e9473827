// Fuzz target `tax_id`: NormalizeTaxId of the contacts service
// (services/contacts/tax_id.h) for each kind (NIP, REGON, KRS, EU VAT) on the
// same input, as typed into a company's tax_ids.
//
// Properties beyond "no crash, no sanitizer report":
//  - a canonical form is at most 64 bytes of [A-Z0-9] and normalises to
//    itself (a value stored once is found again when typed canonically);
//  - an EU VAT number's canonical form starts with its two-letter country
//    prefix, a NIP's or REGON's is digits only, a KRS number's 10 digits;
//  - a refusal is INVALID_ARGUMENT naming the field first
//    ("company.tax_ids[0].value: ...").
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "services/contacts/tax_id.h"

namespace {

using ::crm::contacts::TaxIdKind;

constexpr char kField[] = "company.tax_ids[0].value";

[[noreturn]] void Fail(const char* property) {
  std::fprintf(stderr, "PROPERTY VIOLATED (tax_id): %s\n", property);
  std::abort();
}

bool AllDigits(absl::string_view s) {
  for (char c : s) {
    if (!absl::ascii_isdigit(static_cast<unsigned char>(c))) return false;
  }
  return true;
}

void Check(TaxIdKind kind, absl::string_view input) {
  absl::StatusOr<std::string> canonical = crm::contacts::NormalizeTaxId(kField, kind, input);
  if (!canonical.ok()) {
    if (canonical.status().code() != absl::StatusCode::kInvalidArgument ||
        !absl::StartsWith(canonical.status().message(), absl::StrCat(kField, ": "))) {
      Fail("a refusal that is not INVALID_ARGUMENT naming the field");
    }
    return;
  }
  const std::string& c = *canonical;
  if (c.empty() || c.size() > 64) Fail("canonical form empty or longer than 64");
  for (char ch : c) {
    if (!absl::ascii_isupper(static_cast<unsigned char>(ch)) &&
        !absl::ascii_isdigit(static_cast<unsigned char>(ch))) {
      Fail("canonical form holds something other than A-Z 0-9");
    }
  }
  switch (kind) {
    case TaxIdKind::kNip:
      if (c.size() != 10 || !AllDigits(c)) Fail("a NIP that is not 10 digits");
      break;
    case TaxIdKind::kRegon:
      if ((c.size() != 9 && c.size() != 14) || !AllDigits(c)) Fail("a REGON of 9 or 14 digits");
      break;
    case TaxIdKind::kKrs:
      if (c.size() != 10 || !AllDigits(c) || c == "0000000000") Fail("a KRS of 10 digits");
      break;
    case TaxIdKind::kEuVat:
      if (c.size() < 3 || !absl::ascii_isupper(static_cast<unsigned char>(c[0])) ||
          !absl::ascii_isupper(static_cast<unsigned char>(c[1]))) {
        Fail("an EU VAT number without its country prefix");
      }
      break;
  }
  absl::StatusOr<std::string> again = crm::contacts::NormalizeTaxId(kField, kind, c);
  if (!again.ok()) Fail("a canonical form is refused");
  if (*again != c) Fail("a canonical form does not normalise to itself");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view input(reinterpret_cast<const char*>(data), size);
  for (TaxIdKind kind : {TaxIdKind::kNip, TaxIdKind::kRegon, TaxIdKind::kKrs, TaxIdKind::kEuVat}) {
    Check(kind, input);
  }
  return 0;
}
