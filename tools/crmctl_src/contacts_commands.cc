#include "tools/crmctl_src/contacts_commands.h"

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "tools/crmctl_src/person_import.h"

namespace crm::crmctl {
namespace {

constexpr char kStatuses[] = "lead|prospect|customer|former-customer|partner|supplier-contact";
constexpr char kPersonColumns[] =
    "subject_id status given_name+family_name:NAME emails.address:EMAIL phones.number:PHONE "
    "restricted version";

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
