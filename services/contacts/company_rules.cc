#include "services/contacts/company_rules.h"

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "libs/base/status_macros.h"
#include "libs/base/validate.h"
#include "services/contacts/catalogue.h"
#include "services/contacts/person_rules.h"
#include "services/contacts/tax_id.h"

namespace crm::contacts {

namespace {

using crm::contacts::v1::Company;

constexpr int kMaxTaxIds = 4;
constexpr int kMaxAddresses = 5;

bool Named(const std::vector<std::string>& fields, absl::string_view name) {
  return std::find(fields.begin(), fields.end(), name) != fields.end();
}

size_t Limit(absl::string_view path) {
  const FieldSpec* spec = Catalogue::Get().Find(path);
  return spec == nullptr ? 0 : static_cast<size_t>(spec->max_length);
}

absl::StatusOr<TaxIdKind> KindOf(crm::contacts::v1::TaxIdKind kind) {
  switch (kind) {
    case crm::contacts::v1::TAX_ID_KIND_NIP:
      return TaxIdKind::kNip;
    case crm::contacts::v1::TAX_ID_KIND_REGON:
      return TaxIdKind::kRegon;
    case crm::contacts::v1::TAX_ID_KIND_KRS:
      return TaxIdKind::kKrs;
    case crm::contacts::v1::TAX_ID_KIND_EU_VAT:
      return TaxIdKind::kEuVat;
    default:
      return absl::InvalidArgumentError("unknown");
  }
}

bool AddressIsEmpty(const crm::contacts::v1::PostalAddress& a) {
  return a.label().empty() && a.street_lines().empty() && a.postal_code().empty() &&
         a.city().empty() && a.region().empty() && a.country_code().empty();
}

}  // namespace

const std::vector<std::string>& WritableCompanyFields() {
  static const std::vector<std::string>* const kFields = [] {
    auto* out = new std::vector<std::string>;
    for (const FieldSpec& f : Catalogue::Get().fields()) {
      absl::string_view path = f.path;
      if (!absl::ConsumePrefix(&path, "company.") || path.find('.') != absl::string_view::npos) {
        continue;
      }
      if (!f.read_only) out->emplace_back(path);
    }
    return out;
  }();
  return *kFields;
}

absl::Status NormalizeIban(absl::string_view field, std::string& iban) {
  std::string compact;
  for (char c : iban) {
    if (c == ' ') continue;
    compact.push_back(absl::ascii_toupper(static_cast<unsigned char>(c)));
  }
  const absl::Status bad = absl::InvalidArgumentError(
      absl::StrCat(field, ": not an IBAN (country, check digits, up to 30 letters and digits)"));
  if (compact.size() < 15 || compact.size() > 34 || !absl::ascii_isalpha(compact[0]) ||
      !absl::ascii_isalpha(compact[1]) || !absl::ascii_isdigit(compact[2]) ||
      !absl::ascii_isdigit(compact[3]) || !std::all_of(compact.begin(), compact.end(), [](char c) {
        return absl::ascii_isalnum(static_cast<unsigned char>(c));
      })) {
    return bad;
  }
  // ISO 13616: move the first four characters to the end, letters as 10..35,
  // and the number mod 97 must be 1 (computed digit by digit).
  const std::string rearranged = compact.substr(4) + compact.substr(0, 4);
  int remainder = 0;
  for (char c : rearranged) {
    if (absl::ascii_isdigit(static_cast<unsigned char>(c))) {
      remainder = (remainder * 10 + (c - '0')) % 97;
    } else {
      remainder = (remainder * 100 + (c - 'A' + 10)) % 97;
    }
  }
  if (remainder != 1) {
    return absl::InvalidArgumentError(absl::StrCat(field, ": IBAN check digits do not match"));
  }
  iban = std::move(compact);
  return absl::OkStatus();
}

absl::Status NormalizeCompany(Company& company, const std::vector<std::string>& fields) {
  if (Named(fields, "name")) {
    CRM_RETURN_IF_ERROR(
        NormalizeSingleLineText("company.name", *company.mutable_name(), Limit("company.name")));
    if (company.name().empty()) return absl::InvalidArgumentError("company.name: required");
  }
  if (Named(fields, "tax_ids")) {
    if (company.tax_ids_size() > kMaxTaxIds) {
      return absl::InvalidArgumentError("company.tax_ids: at most 4, one per kind");
    }
    for (int i = 0; i < company.tax_ids_size(); ++i) {
      crm::contacts::v1::TaxId& t = *company.mutable_tax_ids(i);
      const std::string field = absl::StrCat("company.tax_ids[", i, "]");
      absl::StatusOr<TaxIdKind> kind = KindOf(t.kind());
      if (!kind.ok()) {
        return absl::InvalidArgumentError(
            absl::StrCat(field, ".kind: one of NIP, REGON, KRS, EU_VAT is required"));
      }
      for (int j = 0; j < i; ++j) {
        if (company.tax_ids(j).kind() == t.kind()) {
          return absl::InvalidArgumentError(absl::StrCat(field, ".kind: repeats tax_ids[", j, "]"));
        }
      }
      CRM_ASSIGN_OR_RETURN(std::string canonical,
                           NormalizeTaxId(absl::StrCat(field, ".value"), *kind, t.value()));
      t.set_value(std::move(canonical));
    }
  }
  if (Named(fields, "addresses")) {
    if (company.addresses_size() > kMaxAddresses) {
      return absl::InvalidArgumentError("company.addresses: at most 5 postal addresses");
    }
    for (int i = 0; i < company.addresses_size(); ++i) {
      CRM_RETURN_IF_ERROR(NormalizePostalAddress(absl::StrCat("company.addresses[", i, "]"),
                                                 *company.mutable_addresses(i)));
    }
  }
  if (Named(fields, "billing")) {
    crm::contacts::v1::Billing& b = *company.mutable_billing();
    if (AddressIsEmpty(b.billing_address())) {
      b.clear_billing_address();
    } else {
      CRM_RETURN_IF_ERROR(
          NormalizePostalAddress("company.billing.billing_address", *b.mutable_billing_address()));
    }
    if (!b.invoice_email().empty()) {
      const std::string email = base::NormalizeEmail(b.invoice_email());
      CRM_RETURN_IF_ERROR(base::ValidateEmail("company.billing.invoice_email", email));
      b.set_invoice_email(email);
    }
    if (!b.bank_account().empty()) {
      if (b.bank_account().size() > 64) {
        return absl::InvalidArgumentError("company.billing.bank_account: not an IBAN");
      }
      CRM_RETURN_IF_ERROR(NormalizeIban("company.billing.bank_account", *b.mutable_bank_account()));
    }
    if (b.ByteSizeLong() == 0) company.clear_billing();
  }
  return absl::OkStatus();
}

std::vector<std::string> MaskCompany(Company& company) {
  std::vector<std::string> masked;
  if (!company.billing().bank_account().empty()) {
    company.mutable_billing()->clear_bank_account();
    masked.push_back("company.billing.bank_account");
  }
  return masked;
}

}  // namespace crm::contacts
