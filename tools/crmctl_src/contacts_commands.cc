#include "tools/crmctl_src/contacts_commands.h"

#include <algorithm>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "tools/crmctl_src/crmctl.h"
#include "tools/crmctl_src/person_import.h"

namespace crm::crmctl {
namespace {

using google::protobuf::EnumValueDescriptor;
using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using google::protobuf::MethodDescriptor;

constexpr char kStatuses[] = "lead|prospect|customer|former-customer|partner|supplier-contact";
constexpr char kPersonColumns[] =
    "subject_id status given_name+family_name:NAME emails.address:EMAIL phones.number:PHONE "
    "restricted version";
constexpr char kCompanyColumns[] =
    "company_id name tax_ids.kind+tax_ids.value:TAX_ID billing.invoice_email:INVOICE_EMAIL "
    "assignment.team_id:TEAM version";
constexpr char kInteractionColumns[] =
    "occurred_at:WHEN kind operator_user_id:OPERATOR sensitive summary";
constexpr char kInvoiceColumns[] =
    "invoice_id number issue_date:ISSUED currency net_minor:NET tax_minor:TAX gross_minor:GROSS "
    "retain_until";

// Exactly one (`at_most_one`) or at least one of `names` (flags) given.
int RequireFlags(Invocation& inv, const std::vector<const char*>& names, bool at_most_one) {
  std::vector<std::string> given;
  std::vector<std::string> all;
  for (const char* name : names) {
    all.push_back(absl::StrCat("--", name));
    if (inv.flags.count(name) > 0) given.push_back(all.back());
  }
  if (given.empty() || (at_most_one && given.size() > 1)) {
    return TableUsageError(inv.err,
                           absl::StrCat(absl::StrJoin(all, " or "), ": give ",
                                        at_most_one ? "one" : "at least one", " of them"),
                           inv.Topic());
  }
  return kContinue;
}

// person lookup: one key.
int OneLookupKey(Invocation& inv) {
  return RequireFlags(inv, {"email", "phone", "tax-id"}, /*at_most_one=*/true);
}

// person assign replaces owners and team: an empty assignment is refused
// here rather than clearing them by accident.
int SomeAssignee(Invocation& inv) {
  return RequireFlags(inv, {"owner", "team"}, /*at_most_one=*/false);
}

// `before`, the writable person fields of create and update, `after`.
std::vector<Arg> PersonFields(std::vector<Arg> before, const std::vector<Arg>& after) {
  std::vector<Arg> fields = {
      Flag("family-name", "person.family_name", "NAME"),
      Flag("given-name", "person.given_name", "NAME"),
      Repeated("email", "person.emails.address", "ADDRESS"),
      Repeated("phone", "person.phones.number", "NUMBER"),
      Flag("status", "person.status", kStatuses),
      Flag("job-title", "person.job_title", "TITLE"),
      Flag("company", "person.company_id", "COMPANY_ID"),
  };
  before.insert(before.end(), fields.begin(), fields.end());
  before.insert(before.end(), after.begin(), after.end());
  return before;
}

// `before`, the writable company fields of create and update, `after`.
// --tax-id KIND:VALUE fills company.tax_ids.value with the whole text;
// SplitTaxIds splits it before the call.
std::vector<Arg> CompanyFields(std::vector<Arg> before, const std::vector<Arg>& after) {
  std::vector<Arg> fields = {
      Repeated("tax-id", "company.tax_ids.value", "KIND:VALUE"),
      Flag("invoice-email", "company.billing.invoice_email", "ADDRESS"),
      Flag("iban", "company.billing.bank_account", "IBAN"),
  };
  before.insert(before.end(), fields.begin(), fields.end());
  before.insert(before.end(), after.begin(), after.end());
  return before;
}

Message* MutableField(Message* m, const char* field) {
  return m->GetReflection()->MutableMessage(m, m->GetDescriptor()->FindFieldByName(field));
}
int64_t GetInt64(const Message& m, const char* field) {
  const FieldDescriptor* f = m.GetDescriptor()->FindFieldByName(field);
  return f == nullptr ? 0 : m.GetReflection()->GetInt64(m, f);
}
void SetInt64(Message* m, const char* field, int64_t value) {
  m->GetReflection()->SetInt64(m, m->GetDescriptor()->FindFieldByName(field), value);
}

// Each element of company.tax_ids holds "KIND:VALUE" (--tax-id) as its
// value: split into the kind (nip, regon, krs, eu-vat) and the value.
int SplitTaxIds(Invocation& inv) {
  Message* company = MutableField(inv.request.get(), "company");
  const FieldDescriptor* tax_ids = company->GetDescriptor()->FindFieldByName("tax_ids");
  const int n = company->GetReflection()->FieldSize(*company, tax_ids);
  for (int i = 0; i < n; ++i) {
    Message* t = company->GetReflection()->MutableRepeatedMessage(company, tax_ids, i);
    const FieldDescriptor* kind = t->GetDescriptor()->FindFieldByName("kind");
    const std::string text = GetString(*t, "value");
    const size_t colon = text.find(':');
    std::string word = absl::AsciiStrToUpper(text.substr(0, colon));
    std::replace(word.begin(), word.end(), '-', '_');
    // "TAX_ID_KIND_" of TAX_ID_KIND_UNSPECIFIED.
    const std::string prefix(absl::StripSuffix(kind->enum_type()->value(0)->name(), "UNSPECIFIED"));
    const EnumValueDescriptor* v = kind->enum_type()->FindValueByName(prefix + word);
    if (colon == std::string::npos || v == nullptr || v->number() == 0 ||
        colon + 1 == text.size()) {
      return TableUsageError(inv.err,
                             "--tax-id: expected KIND:VALUE with KIND nip, regon, krs or eu-vat",
                             inv.Topic());
    }
    t->GetReflection()->SetEnumValue(t, kind, v->number());
    SetString(t, "value", text.substr(colon + 1));
  }
  return kContinue;
}

// company update: the update mask can only name billing as a whole, which
// the server replaces. So with --invoice-email or --iban the current
// billing (GetCompany) is sent with the flags' values on top, and, without
// --version, the version read as expected_version (a change in between is
// ABORTED rather than overwritten). An IBAN masked for the caller cannot be
// kept: --iban is then required.
int PrepareCompanyUpdate(Invocation& inv) {
  if (int rc = SplitTaxIds(inv); rc != kContinue) return rc;
  const bool email = inv.flags.count("invoice-email") > 0;
  const bool iban = inv.flags.count("iban") > 0;
  if (!email && !iban) return kContinue;
  const MethodDescriptor* get = inv.Method("GetCompany");
  if (get == nullptr) {
    inv.err << "crmctl: this build does not know " << inv.table.service << "/GetCompany\n";
    return kExitFailure;
  }
  std::unique_ptr<Message> request = inv.registry.NewMessage(get->input_type());
  SetString(request.get(), "company_id", GetString(*inv.request, "company_id"));
  std::unique_ptr<Message> response = inv.registry.NewMessage(get->output_type());
  if (grpc::Status s = inv.Call(get, *request, response.get()); !s.ok()) {
    return TableRpcError(inv, s);
  }
  const Message& current = GetMessage(*response, "company");
  if (!iban) {
    const FieldDescriptor* masked = response->GetDescriptor()->FindFieldByName("masked_fields");
    for (int i = 0; i < response->GetReflection()->FieldSize(*response, masked); ++i) {
      if (absl::EndsWith(response->GetReflection()->GetRepeatedString(*response, masked, i),
                         "bank_account")) {
        return TableUsageError(inv.err,
                               "--iban: required with --invoice-email here: the billing data is "
                               "replaced as a whole and the current IBAN is masked for you "
                               "(contacts.read.sensitive)",
                               inv.Topic());
      }
    }
  }
  Message* billing = MutableField(MutableField(inv.request.get(), "company"), "billing");
  std::unique_ptr<Message> given(billing->New());
  given->CopyFrom(*billing);
  billing->CopyFrom(GetMessage(current, "billing"));
  if (email) SetString(billing, "invoice_email", GetString(*given, "invoice_email"));
  if (iban) SetString(billing, "bank_account", GetString(*given, "bank_account"));
  if (GetInt64(*inv.request, "expected_version") == 0) {
    SetInt64(inv.request.get(), "expected_version", GetInt64(current, "version"));
  }
  return kContinue;
}

// invoice list: one owner.
int OneInvoiceOwner(Invocation& inv) {
  return RequireFlags(inv, {"subject", "company"}, /*at_most_one=*/true);
}

// invoice record: one owner; without --gross-minor, net + tax.
int PrepareInvoice(Invocation& inv) {
  if (int rc = OneInvoiceOwner(inv); rc != kContinue) return rc;
  if (inv.flags.count("gross-minor") > 0) return kContinue;
  Message* invoice = MutableField(inv.request.get(), "invoice");
  int64_t gross = 0;
  // On overflow the gross stays 0 and the server refuses the amounts.
  if (!__builtin_add_overflow(GetInt64(*invoice, "net_minor"), GetInt64(*invoice, "tax_minor"),
                              &gross)) {
    SetInt64(invoice, "gross_minor", gross);
  }
  return kContinue;
}

const std::vector<Command>& Commands() {
  static const auto* commands = new std::vector<Command>{
      {.words = {"person", "create"},
       .rpc = "CreatePerson",
       .args = PersonFields({}, {Flag("team", "person.assignment.team_id", "TEAM_ID"),
                                 Repeated("owner", "person.assignment.owner_user_ids", "USER_ID"),
                                 Flag("channel", "person.registration.channel", "CHANNEL"),
                                 Flag("source", "person.registration.source", "SOURCE")}),
       .summary = "register a person (a name, e-mail or phone is required; the first e-mail "
                  "and phone are the primary ones; without --owner/--team you are the owner)",
       .show = "person"},
      {.words = {"person", "get"},
       .rpc = "GetPerson",
       .args = {Positional("SUBJECT_ID", "subject_id")},
       .summary = "one person",
       .show = "person",
       .extra = "masked_fields"},
      {.words = {"person", "update"},
       .rpc = "UpdatePerson",
       .args = PersonFields({Positional("SUBJECT_ID", "subject_id")},
                            {Flag("version", "expected_version", "N")}),
       .summary = "rectify the fields given (and only those: the update mask); a repeated "
                  "flag replaces the whole list; --version N refuses if the person changed",
       .show = "person",
       .extra = "masked_fields",
       .update_mask = "update_mask person"},
      {.words = {"person", "list"},
       .rpc = "ListPersons",
       .args = {Flag("status", "status", kStatuses), Flag("owner", "owner_user_id", "USER_ID"),
                Flag("team", "team_id", "TEAM_ID"), Flag("company", "company_id", "COMPANY_ID"),
                Switch("include-restricted", "include_restricted")},
       .summary = "persons you can see, newest first (--include-restricted needs "
                  "contacts.read.all)",
       .show = "persons",
       .columns = kPersonColumns,
       .extra = "masked_fields"},
      {.words = {"person", "lookup"},
       .rpc = "LookupPersons",
       .args = {Flag("email", "email", "ADDRESS"), Flag("phone", "phone", "NUMBER"),
                Flag("tax-id", "company_tax_id", "TAX_ID")},
       .summary = "exact look-up by one of e-mail, phone or a company's tax id",
       .show = "persons",
       .columns = kPersonColumns,
       .prepare = OneLookupKey,
       .extra = "masked_fields"},
      {.words = {"person", "restrict"},
       .rpc = "SetRestriction",
       .args = {Positional("SUBJECT_ID", "subject_id"), RequiredFlag("reason", "reason", "TEXT"),
                Const("restricted", "on")},
       .summary = "restrict processing (Art. 18): the person becomes read-only and leaves lists"},
      {.words = {"person", "unrestrict"},
       .rpc = "SetRestriction",
       .args = {Positional("SUBJECT_ID", "subject_id"), Const("restricted", "off")},
       .summary = "lift the restriction"},
      {.words = {"person", "assign"},
       .rpc = "AssignPerson",
       .args = {Positional("SUBJECT_ID", "subject_id"),
                Repeated("owner", "assignment.owner_user_ids", "USER_ID"),
                Flag("team", "assignment.team_id", "TEAM_ID")},
       .summary = "replace the owners and team of a person",
       .show = "assignment",
       .prepare = SomeAssignee},
      {.words = {"person", "import"},
       .rpc = "ImportPersons",
       .args = {Positional("FILE", nullptr), Flag("source", nullptr, "SOURCE"),
                Flag("channel", nullptr, "CHANNEL"), Switch("dry-run", nullptr)},
       .summary = "register the persons of a CSV file (\"-\": stdin) with a header row of "
                  "columns given_name, family_name, email, phone (several: a;b), status, "
                  "job_title, company_id, notes; prints the errors by CSV data row; "
                  "--dry-run checks the file locally and sends nothing",
       .run = RunPersonImport},
      {.words = {"company", "create"},
       .rpc = "CreateCompany",
       .args = CompanyFields({RequiredFlag("name", "company.name", "NAME")},
                             {Flag("team", "company.assignment.team_id", "TEAM_ID"),
                              Repeated("owner", "company.assignment.owner_user_ids", "USER_ID")}),
       .summary = "register a company (--tax-id KIND:VALUE, KIND nip, regon, krs or eu-vat, "
                  "one per kind); without --owner/--team you are the owner",
       .show = "company",
       .prepare = SplitTaxIds},
      {.words = {"company", "get"},
       .rpc = "GetCompany",
       .args = {Positional("COMPANY_ID", "company_id")},
       .summary = "one company (the IBAN is masked without contacts.read.sensitive)",
       .show = "company",
       .extra = "masked_fields"},
      {.words = {"company", "update"},
       .rpc = "UpdateCompany",
       .args = CompanyFields(
           {Positional("COMPANY_ID", "company_id"), Flag("name", "company.name", "NAME")},
           {Flag("version", "expected_version", "N")}),
       .summary = "change the fields given (the update mask); --tax-id replaces all tax ids; "
                  "--invoice-email/--iban read the company first to keep the rest of its "
                  "billing data; --version N refuses if the company changed",
       .show = "company",
       .prepare = PrepareCompanyUpdate,
       .extra = "masked_fields",
       .update_mask = "update_mask company"},
      {.words = {"company", "list"},
       .rpc = "ListCompanies",
       .summary = "companies you can see, newest first (the first tax id shown)",
       .show = "companies",
       .columns = kCompanyColumns,
       .extra = "masked_fields"},
      {.words = {"history", "add"},
       .rpc = "AddInteraction",
       .args = {Positional("SUBJECT_ID", "interaction.subject_id"),
                RequiredFlag("kind", "interaction.kind", "call|meeting|email|note"),
                RequiredFlag("summary", "interaction.summary", "TEXT"),
                Flag("at", "interaction.occurred_at", "TIME"),
                Switch("sensitive", "interaction.sensitive")},
       .summary = "add a call, meeting, e-mail or note about a person (--at: RFC 3339, default "
                  "now; --sensitive: masked without contacts.read.sensitive)",
       .show = "interaction"},
      {.words = {"history", "list"},
       .rpc = "ListInteractions",
       .args = {Positional("SUBJECT_ID", "subject_id")},
       .summary = "a person's contact history, newest first (sensitive summaries masked without "
                  "contacts.read.sensitive)",
       .show = "interactions",
       .columns = kInteractionColumns,
       .extra = "masked_fields"},
      {.words = {"invoice", "record"},
       .rpc = "RecordInvoice",
       .args = {Flag("subject", "invoice.subject_id", "SUBJECT_ID"),
                Flag("company", "invoice.company_id", "COMPANY_ID"),
                RequiredFlag("number", "invoice.number", "NUMBER"),
                RequiredFlag("issue-date", "invoice.issue_date", "YYYY-MM-DD"),
                RequiredFlag("currency", "invoice.currency", "CODE"),
                RequiredFlag("net-minor", "invoice.net_minor", "AMOUNT"),
                Flag("tax-minor", "invoice.tax_minor", "AMOUNT"),
                Flag("gross-minor", "invoice.gross_minor", "AMOUNT")},
       .summary = "record an invoice issued to a person (--subject) or a company (--company); "
                  "amounts in minor units (12300 = 123.00); gross defaults to net + tax",
       .show = "invoice",
       .prepare = PrepareInvoice},
      {.words = {"invoice", "list"},
       .rpc = "ListInvoices",
       .args = {Flag("subject", "subject_id", "SUBJECT_ID"),
                Flag("company", "company_id", "COMPANY_ID")},
       .summary = "the invoices of a person (--subject) or a company (--company), newest first",
       .show = "invoices",
       .columns = kInvoiceColumns,
       .prepare = OneInvoiceOwner},
      {.words = {"retention", "due"},
       .rpc = "ListRetentionDue",
       .summary = "subjects whose retention rule has expired and the state of their erasure "
                  "(needs contacts.read.all)",
       .show = "due",
       .columns = "subject_id due_since rule state"},
      {.words = {"catalogue"},
       .rpc = "GetFieldCatalogue",
       .summary = "every field contacts stores: category, sensitivity, purposes, retention",
       .show = "fields",
       .columns = "path data_category:CATEGORY sensitivity purposes retention"},
  };
  return *commands;
}

}  // namespace

const CommandTable& ContactsCommandTable() {
  static const auto* table = new CommandTable{
      .service = "crm.contacts.v1.Contacts",
      .service_name = "contacts",
      .commands = &Commands(),
      .usage_title = "Contacts",
      .usage_footer =
          "Calls carry the session of 'crmctl login' (renewed at the identity service when it\n"
          "expires), unless --header authorization=... is given. Output: a table or \"field\n"
          "value\" lines (masked_fields: what your permissions hid); --json prints the response\n"
          "as JSON. Lists are fetched page by page, all pages.\n"
          "Other flags: --contacts H:P (or --addr/--server-identity), --identity H:P, --timeout,\n"
          "--cert --key --ca (see crmctl --help).\n"};
  return *table;
}

absl::Status CheckContactsCommands(const ProtoRegistry& registry) {
  return CheckCommandTable(registry, ContactsCommandTable());
}

}  // namespace crm::crmctl
