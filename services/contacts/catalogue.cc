#include "services/contacts/catalogue.h"

#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace crm::contacts {

namespace {

using crm::contacts::v1::Sensitivity;
constexpr Sensitivity kNone = crm::contacts::v1::SENSITIVITY_NONE;
constexpr Sensitivity kPersonal = crm::contacts::v1::SENSITIVITY_PERSONAL;
constexpr Sensitivity kSensitive = crm::contacts::v1::SENSITIVITY_SENSITIVE;

constexpr char kCrm[] = "customer_relationship";
constexpr char kInvoicing[] = "invoicing";
constexpr char kLegal[] = "legal_obligation";

constexpr char kWithSubject[] =
    "kept while the subject is registered; erased with the subject, or when the status's "
    "retention rule expires (default: leads and prospects 24 months without activity, former "
    "customers 36 months)";
constexpr char kAccounting[] =
    "the accounting retention period (default 5 years from the end of the issue year), then purged";
constexpr char kRecord[] = "kept with the record";

struct Builder {
  std::vector<FieldSpec> fields;

  Builder& Add(std::string path, std::string category, Sensitivity sensitivity,
               std::vector<std::string> purposes, std::string retention, int max_length,
               std::string description) {
    FieldSpec f;
    f.path = std::move(path);
    f.data_category = std::move(category);
    f.sensitivity = sensitivity;
    f.purposes = std::move(purposes);
    f.retention = std::move(retention);
    f.max_length = max_length;
    f.description = std::move(description);
    fields.push_back(std::move(f));
    return *this;
  }
  Builder& ReadOnly() {
    fields.back().read_only = true;
    return *this;
  }
  Builder& BlindIndexed() {
    fields.back().blind_indexed = true;
    return *this;
  }
};

// The parts shared by persons and companies, below `prefix`.
void AddAddress(Builder& b, const std::string& prefix, std::vector<std::string> purposes,
                const std::string& retention) {
  b.Add(prefix + ".label", "contact", kNone, purposes, retention, 32, "kind of address");
  b.Add(prefix + ".street_lines", "contact", kPersonal, purposes, retention, 200,
        "street, number, flat; up to 3 lines");
  b.Add(prefix + ".postal_code", "contact", kPersonal, purposes, retention, 16, "postal code");
  b.Add(prefix + ".city", "contact", kPersonal, purposes, retention, 100, "city");
  b.Add(prefix + ".region", "contact", kPersonal, purposes, retention, 100, "region or state");
  b.Add(prefix + ".country_code", "contact", kNone, purposes, retention, 2,
        "ISO 3166-1 alpha-2 country");
}

void AddAssignment(Builder& b, const std::string& prefix) {
  b.Add(prefix + ".owner_user_ids", "record", kNone, {kCrm}, kRecord, 36,
        "operators responsible (identity user ids)");
  b.Add(prefix + ".team_id", "record", kNone, {kCrm}, kRecord, 36, "team responsible");
}

std::vector<FieldSpec> Build() {
  Builder b;
  // Persons.
  b.Add("person.subject_id", "record", kNone, {kCrm}, kRecord, 36, "the subject's id").ReadOnly();
  b.Add("person.status", "record", kNone, {kCrm}, kRecord, 0,
        "lead, prospect, customer, former customer, ...");
  b.Add("person.given_name", "identity", kPersonal, {kCrm, kInvoicing}, kWithSubject, 200,
        "given name(s)");
  b.Add("person.family_name", "identity", kPersonal, {kCrm, kInvoicing}, kWithSubject, 200,
        "family name");
  b.Add("person.emails", "contact", kPersonal, {kCrm}, kWithSubject, 0,
        "e-mail addresses (at most 10)");
  b.Add("person.emails.address", "contact", kPersonal, {kCrm}, kWithSubject, 254,
        "e-mail address; exact look-ups through a blind index")
      .BlindIndexed();
  b.Add("person.emails.label", "contact", kNone, {kCrm}, kWithSubject, 32, "kind of address");
  b.Add("person.emails.primary", "contact", kNone, {kCrm}, kWithSubject, 0, "the preferred one");
  b.Add("person.phones", "contact", kPersonal, {kCrm}, kWithSubject, 0,
        "phone numbers (at most 10)");
  b.Add("person.phones.number", "contact", kPersonal, {kCrm}, kWithSubject, 16,
        "E.164 number; exact look-ups through a blind index")
      .BlindIndexed();
  b.Add("person.phones.label", "contact", kNone, {kCrm}, kWithSubject, 32, "kind of number");
  b.Add("person.phones.primary", "contact", kNone, {kCrm}, kWithSubject, 0, "the preferred one");
  b.Add("person.addresses", "contact", kPersonal, {kCrm, kInvoicing}, kWithSubject, 0,
        "postal addresses (at most 5)");
  AddAddress(b, "person.addresses", {kCrm, kInvoicing}, kWithSubject);
  b.Add("person.job_title", "professional", kPersonal, {kCrm}, kWithSubject, 200, "job title");
  b.Add("person.company_id", "professional", kNone, {kCrm}, kWithSubject, 36,
        "the company the person works for");
  b.Add("person.personal_id_number", "identity", kSensitive, {kInvoicing, kLegal}, kWithSubject, 32,
        "national personal id number (e.g. PESEL), where a contract requires it");
  b.Add("person.notes", "history", kPersonal, {kCrm}, kWithSubject, 10'000,
        "free-text notes; SENSITIVE when notes_sensitive is set");
  b.Add("person.notes_sensitive", "history", kNone, {kCrm}, kWithSubject, 0,
        "marks the notes sensitive");
  b.Add("person.registration", "record", kNone, {kCrm, kLegal}, kRecord, 0,
        "when, how and from which source the record was created")
      .ReadOnly();
  b.Add("person.registration.created_at", "record", kNone, {kCrm, kLegal}, kRecord, 0, "when")
      .ReadOnly();
  b.Add("person.registration.channel", "record", kNone, {kCrm, kLegal}, kRecord, 32, "how")
      .ReadOnly();
  b.Add("person.registration.source", "record", kNone, {kCrm, kLegal}, kRecord, 200,
        "which system or campaign")
      .ReadOnly();
  b.Add("person.registration.created_by", "record", kNone, {kCrm, kLegal}, kRecord, 256,
        "which operator or service")
      .ReadOnly();
  b.Add("person.assignment", "record", kNone, {kCrm}, kRecord, 0, "owners and team (AssignPerson)")
      .ReadOnly();
  AddAssignment(b, "person.assignment");
  b.Add("person.restricted", "record", kNone, {kLegal}, kRecord, 0,
        "processing restricted (Art. 18; SetRestriction)")
      .ReadOnly();
  b.Add("person.updated_at", "record", kNone, {kCrm}, kRecord, 0, "last change").ReadOnly();
  b.Add("person.version", "record", kNone, {kCrm}, kRecord, 0, "change counter").ReadOnly();

  // Companies (sole traders' data is personal data, so it is sealed too).
  b.Add("company.company_id", "record", kNone, {kCrm}, kRecord, 36, "the company's id").ReadOnly();
  b.Add("company.name", "professional", kPersonal, {kCrm, kInvoicing}, kWithSubject, 300,
        "registered name");
  b.Add("company.tax_ids", "financial", kPersonal, {kInvoicing, kLegal}, kWithSubject, 0,
        "NIP, REGON, KRS, EU VAT; exact look-ups through a blind index");
  b.Add("company.tax_ids.kind", "financial", kNone, {kInvoicing, kLegal}, kWithSubject, 0,
        "kind of identifier");
  b.Add("company.tax_ids.value", "financial", kPersonal, {kInvoicing, kLegal}, kWithSubject, 32,
        "the identifier, validated by its check digits")
      .BlindIndexed();
  b.Add("company.addresses", "contact", kPersonal, {kCrm, kInvoicing}, kWithSubject, 0,
        "postal addresses (at most 5)");
  AddAddress(b, "company.addresses", {kCrm, kInvoicing}, kWithSubject);
  b.Add("company.billing", "financial", kPersonal, {kInvoicing}, kWithSubject, 0,
        "billing and invoice data");
  b.Add("company.billing.billing_address", "financial", kPersonal, {kInvoicing}, kWithSubject, 0,
        "where invoices go");
  AddAddress(b, "company.billing.billing_address", {kInvoicing}, kWithSubject);
  b.Add("company.billing.invoice_email", "financial", kPersonal, {kInvoicing}, kWithSubject, 254,
        "where e-invoices go");
  b.Add("company.billing.bank_account", "financial", kSensitive, {kInvoicing}, kWithSubject, 34,
        "IBAN");
  b.Add("company.assignment", "record", kNone, {kCrm}, kRecord, 0, "owners and team").ReadOnly();
  AddAssignment(b, "company.assignment");
  b.Add("company.created_at", "record", kNone, {kCrm}, kRecord, 0, "when registered").ReadOnly();
  b.Add("company.version", "record", kNone, {kCrm}, kRecord, 0, "change counter").ReadOnly();

  // Invoice records (accounting law).
  b.Add("invoice.invoice_id", "record", kNone, {kLegal}, kAccounting, 36, "the record's id")
      .ReadOnly();
  b.Add("invoice.subject_id", "record", kNone, {kLegal}, kAccounting, 36, "the person invoiced");
  b.Add("invoice.company_id", "record", kNone, {kLegal}, kAccounting, 36, "the company invoiced");
  b.Add("invoice.number", "financial", kPersonal, {kInvoicing, kLegal}, kAccounting, 64,
        "invoice number");
  b.Add("invoice.issue_date", "financial", kNone, {kInvoicing, kLegal}, kAccounting, 10,
        "date of issue");
  b.Add("invoice.currency", "financial", kNone, {kInvoicing, kLegal}, kAccounting, 3, "ISO 4217");
  b.Add("invoice.net_minor", "financial", kPersonal, {kInvoicing, kLegal}, kAccounting, 0,
        "net amount, minor units");
  b.Add("invoice.tax_minor", "financial", kPersonal, {kInvoicing, kLegal}, kAccounting, 0,
        "tax amount, minor units");
  b.Add("invoice.gross_minor", "financial", kPersonal, {kInvoicing, kLegal}, kAccounting, 0,
        "gross amount, minor units");
  b.Add("invoice.retain_until", "record", kNone, {kLegal}, kAccounting, 10,
        "end of the legal retention duty")
      .ReadOnly();

  // Contact history.
  b.Add("interaction.interaction_id", "record", kNone, {kCrm}, kWithSubject, 36, "the entry's id")
      .ReadOnly();
  b.Add("interaction.subject_id", "record", kNone, {kCrm}, kWithSubject, 36, "about whom");
  b.Add("interaction.kind", "history", kNone, {kCrm}, kWithSubject, 0,
        "call, meeting, e-mail, note");
  b.Add("interaction.occurred_at", "history", kNone, {kCrm}, kWithSubject, 0, "when");
  b.Add("interaction.operator_user_id", "history", kNone, {kCrm}, kWithSubject, 36,
        "which operator")
      .ReadOnly();
  b.Add("interaction.summary", "history", kPersonal, {kCrm}, kWithSubject, 10'000,
        "what was said or done; SENSITIVE when marked sensitive");
  b.Add("interaction.sensitive", "history", kNone, {kCrm}, kWithSubject, 0,
        "marks the summary sensitive");
  return std::move(b.fields);
}

}  // namespace

const Catalogue& Catalogue::Get() {
  static const Catalogue* const kCatalogue = new Catalogue();
  return *kCatalogue;
}

Catalogue::Catalogue() : fields_(Build()) {}

const FieldSpec* Catalogue::Find(absl::string_view path) const {
  for (const FieldSpec& f : fields_) {
    if (f.path == path) return &f;
  }
  return nullptr;
}

absl::Status Catalogue::ValidateUpdateMask(absl::string_view entity,
                                           const google::protobuf::FieldMask& mask) const {
  if (mask.paths_size() == 0) {
    return absl::InvalidArgumentError("update_mask: names no field (nothing to update)");
  }
  for (int i = 0; i < mask.paths_size(); ++i) {
    const std::string& path = mask.paths(i);
    const std::string name = absl::StrCat("update_mask.paths[", i, "]");
    if (path.empty() || absl::StrContains(path, '.')) {
      return absl::InvalidArgumentError(
          absl::StrCat(name, ": must name a field of the ", entity, " itself (e.g. emails)"));
    }
    const FieldSpec* spec = Find(absl::StrCat(entity, ".", path));
    if (spec == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat(name, ": not a field of the ", entity));
    }
    if (spec->read_only) {
      return absl::InvalidArgumentError(absl::StrCat(name, ": is read-only"));
    }
    for (int j = 0; j < i; ++j) {
      if (mask.paths(j) == path)
        return absl::InvalidArgumentError(absl::StrCat(name, ": repeated"));
    }
  }
  return absl::OkStatus();
}

bool Catalogue::IsSensitive(absl::string_view path) const {
  for (const FieldSpec& f : fields_) {
    if (f.sensitivity != kSensitive) continue;
    if (path == f.path || absl::StartsWith(path, absl::StrCat(f.path, "."))) return true;
  }
  return false;
}

crm::contacts::v1::GetFieldCatalogueResponse Catalogue::ToProto() const {
  crm::contacts::v1::GetFieldCatalogueResponse out;
  out.set_version(version());
  for (const FieldSpec& f : fields_) {
    crm::contacts::v1::FieldDescriptor* d = out.add_fields();
    d->set_path(f.path);
    d->set_data_category(f.data_category);
    d->set_sensitivity(f.sensitivity);
    for (const std::string& p : f.purposes) d->add_purposes(p);
    d->set_retention(f.retention);
    d->set_blind_indexed(f.blind_indexed);
    d->set_max_length(f.max_length);
    d->set_description(f.description);
  }
  return out;
}

}  // namespace crm::contacts
