#include "tools/crmctl_src/consent_commands.h"

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "tools/crmctl_src/crmctl.h"

namespace crm::crmctl {
namespace {

using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using google::protobuf::Reflection;

constexpr char kBases[] =
    "consent|contract|legal-obligation|vital-interest|public-task|legitimate-interest";
constexpr char kMethods[] = "web-form|email-link|phone|paper|api";
constexpr char kPurposeColumns[] =
    "purpose_id:PURPOSE basis direct_marketing:DIRECT_MARKETING validity_days:VALIDITY_DAYS "
    "current_notice_versions:NOTICES";
constexpr char kHistoryColumns[] =
    "sequence:SEQ purpose_id:PURPOSE action notice_version:NOTICE method source given_at";

// PublishNoticeRequest.text: at most this many bytes.
constexpr size_t kMaxNoticeBytes = 100000;
// Notice versions (64 hex digits) in tables: their first digits.
constexpr size_t kShortVersion = 12;

// The arguments of grant, withdraw and object: the statement.
std::vector<Arg> StatementArgs(bool notice_required) {
  return {Positional("SUBJECT_ID", "statement.subject_id"),
          Positional("PURPOSE_ID", "statement.purpose_id"),
          notice_required ? RequiredFlag("notice", "statement.notice_version", "VERSION")
                          : Flag("notice", "statement.notice_version", "VERSION"),
          RequiredFlag("method", "statement.method", kMethods),
          RequiredFlag("source", "statement.source", "SOURCE"),
          Flag("language", "statement.language", "LANG"),
          Flag("given-at", "statement.given_at", "TIME")};
}

int64_t GetInt64(const Message& m, const char* field) {
  const FieldDescriptor* f = m.GetDescriptor()->FindFieldByName(field);
  return f == nullptr ? 0 : m.GetReflection()->GetInt64(m, f);
}

// Cuts string field `field` of `m` to its first kShortVersion characters.
void Shorten(Message* m, const char* field) {
  const std::string value = GetString(*m, field);
  if (value.size() > kShortVersion) SetString(m, field, value.substr(0, kShortVersion));
}

// Calls `f` with every element of repeated message field `field` of `m`.
template <typename F>
void ForEachElement(Message* m, const char* field, F f) {
  const FieldDescriptor* d = m->GetDescriptor()->FindFieldByName(field);
  if (d == nullptr || !d->is_repeated() || d->cpp_type() != FieldDescriptor::CPPTYPE_MESSAGE) {
    return;
  }
  const Reflection* r = m->GetReflection();
  for (int i = 0; i < r->FieldSize(*m, d); ++i) f(r->MutableRepeatedMessage(m, d, i));
}

// notice publish: exactly one of --file and --text; the file's bytes (stdin
// for "-"), unchanged (the version is the SHA-256 of exactly them), as the
// text.
int ReadNotice(Invocation& inv) {
  const bool file = inv.flags.count("file") > 0;
  if (file == (inv.flags.count("text") > 0)) {
    return TableUsageError(inv.err, "--file or --text: give one of them", inv.Topic());
  }
  if (!file) return kContinue;
  const std::string path = inv.flags.at("file")[0];
  const std::string name = path == "-" ? "stdin" : path;
  std::ifstream opened;
  std::istream* in = &inv.in;
  if (path != "-") {
    opened.open(path, std::ios::binary);
    if (!opened) {
      return TableUsageError(
          inv.err, absl::StrCat("--file: cannot read ", path, ": ", strerror(errno)), inv.Topic());
    }
    in = &opened;
  }
  std::string text(kMaxNoticeBytes + 1, '\0');
  in->read(text.data(), static_cast<std::streamsize>(text.size()));
  if (in->bad()) {
    return TableUsageError(inv.err, absl::StrCat("--file: cannot read ", name), inv.Topic());
  }
  text.resize(static_cast<size_t>(in->gcount()));
  if (text.empty()) {
    return TableUsageError(inv.err, absl::StrCat("--file: ", name, " is empty"), inv.Topic());
  }
  if (text.size() > kMaxNoticeBytes) {
    return TableUsageError(
        inv.err,
        absl::StrCat("--file: ", name, " has more than 100,000 bytes (the limit of a notice)"),
        inv.Topic());
  }
  SetString(inv.request.get(), "text", text);
  return kContinue;
}

// grant, withdraw, object: the response's lines; when it holds nothing but
// `changed` (no entry: nothing recorded) just that line, rather than an
// entry of default values.
int RunStatement(Invocation& inv) {
  std::unique_ptr<Message> response = inv.registry.NewMessage(inv.method->output_type());
  if (grpc::Status s = inv.Call(inv.method, *inv.request, response.get()); !s.ok()) {
    return TableRpcError(inv, s);
  }
  std::vector<const FieldDescriptor*> set;
  response->GetReflection()->ListFields(*response, &set);
  if (inv.options.json || set.size() > 1 || (set.size() == 1 && set[0]->name() != "changed")) {
    return PrintResponse(inv, *response);
  }
  inv.out << "changed  " << (GetBool(*response, "changed") ? "yes" : "no") << "\n";
  return kExitOk;
}

// purpose list: the table with the current notice versions shortened.
int RunPurposeList(Invocation& inv) {
  std::unique_ptr<Message> response = inv.registry.NewMessage(inv.method->output_type());
  if (grpc::Status s = inv.Call(inv.method, *inv.request, response.get()); !s.ok()) {
    return TableRpcError(inv, s);
  }
  if (!inv.options.json) {
    ForEachElement(response.get(), "purposes", [](Message* purpose) {
      ForEachElement(purpose, "current_notice_versions",
                     [](Message* entry) { Shorten(entry, "value"); });
    });
  }
  return PrintResponse(inv, *response);
}

// consent history: the table with notice versions shortened, then the state
// of the hash chain on stderr; exit 1 when it is broken.
int RunHistory(Invocation& inv) {
  std::unique_ptr<Message> response = inv.registry.NewMessage(inv.method->output_type());
  if (grpc::Status s = inv.Call(inv.method, *inv.request, response.get()); !s.ok()) {
    return TableRpcError(inv, s);
  }
  const bool intact = GetBool(*response, "chain_intact");
  if (!inv.options.json) {
    ForEachElement(response.get(), "entries",
                   [](Message* entry) { Shorten(entry, "notice_version"); });
  }
  if (int rc = PrintResponse(inv, *response); rc != kExitOk) return rc;
  if (intact) {
    if (!inv.options.json) inv.err << "chain_intact: yes\n";
    return kExitOk;
  }
  inv.err << "chain_intact: no, broken at sequence " << GetInt64(*response, "first_broken_sequence")
          << ": an entry from there on was edited, inserted, removed or reordered\n";
  return kExitFailure;
}

const std::vector<Command>& Commands() {
  static const auto* commands = new std::vector<Command>{
      {.words = {"purpose", "list"},
       .rpc = "ListPurposes",
       .summary = "the purposes: lawful basis, direct marketing, validity (days, 0: none) and "
                  "current notice version by language (first 12 digits; --json: all)",
       .show = "purposes",
       .columns = kPurposeColumns,
       .run = RunPurposeList},
      {.words = {"purpose", "define"},
       .rpc = "DefinePurpose",
       .args = {Positional("PURPOSE_ID", "purpose.purpose_id"),
                RequiredFlag("basis", "purpose.basis", kBases),
                RequiredFlag("description", "purpose.description", "TEXT"),
                Repeated("category", "purpose.data_categories", "CATEGORY"),
                Switch("direct-marketing", "purpose.direct_marketing"),
                Flag("validity-days", "purpose.validity_days", "N")},
       .summary = "define a purpose, or replace the description, categories and validity of an "
                  "existing one (give them all again); its basis and --direct-marketing never "
                  "change (FAILED_PRECONDITION); needs consent.admin"},
      {.words = {"notice", "publish"},
       .rpc = "PublishNotice",
       .args = {Positional("PURPOSE_ID", "purpose_id"),
                RequiredFlag("language", "language", "LANG"), Flag("file", nullptr, "FILE"),
                Flag("text", "text", "TEXT")},
       .summary = "publish a notice text for a purpose and language, from --file (\"-\": stdin; "
                  "its bytes unchanged) or --text; prints its version (SHA-256 of the text), "
                  "which grants must cite from now on; needs consent.admin",
       .prepare = ReadNotice},
      {.words = {"consent", "grant"},
       .rpc = "Grant",
       .args = StatementArgs(/*notice_required=*/true),
       .summary = "record that the subject consented, citing the current notice version of "
                  "the language (default en); --given-at: RFC 3339, when the subject acted if "
                  "not now; needs consent.write",
       .run = RunStatement},
      {.words = {"consent", "withdraw"},
       .rpc = "Withdraw",
       .args = StatementArgs(/*notice_required=*/false),
       .summary = "record that the subject withdrew consent (changed no: no grant was in "
                  "force, nothing recorded); needs consent.write",
       .run = RunStatement},
      {.words = {"consent", "object"},
       .rpc = "Object",
       .args = StatementArgs(/*notice_required=*/false),
       .summary = "record an objection (Art. 21), for legitimate-interest, public-task and "
                  "direct-marketing purposes; in force until the subject grants again; needs "
                  "consent.write",
       .run = RunStatement},
      {.words = {"consent", "check"},
       .rpc = "Check",
       .args = {Positional("SUBJECT_ID", "subject_id"), Positional("PURPOSE_ID", "purpose_id")},
       .summary = "may the subject's data be processed for the purpose now: allowed yes|no and "
                  "the reason; needs consent.check",
       .show = "decision"},
      {.words = {"consent", "history"},
       .rpc = "GetHistory",
       .args = {Positional("SUBJECT_ID", "subject_id")},
       .summary = "the subject's ledger, oldest first (notice versions: first 12 digits; --json: "
                  "every field), and whether its hash chain is intact (exit 1 if not); needs "
                  "consent.read",
       .show = "entries",
       .columns = kHistoryColumns,
       .run = RunHistory},
      {.words = {"consent", "restrict"},
       .rpc = "SetRestriction",
       .args = {Positional("SUBJECT_ID", "subject_id"), Const("restricted", "on")},
       .summary = "restrict processing (Art. 18): every check of the subject denies with "
                  "restricted; needs consent.write"},
      {.words = {"consent", "unrestrict"},
       .rpc = "SetRestriction",
       .args = {Positional("SUBJECT_ID", "subject_id"), Const("restricted", "off")},
       .summary = "lift the restriction; needs consent.write"},
  };
  return *commands;
}

}  // namespace

const CommandTable& ConsentCommandTable() {
  static const auto* table = new CommandTable{
      .service = "crm.consent.v1.Consent",
      .service_name = "consent",
      .commands = &Commands(),
      .usage_title = "Consent",
      .usage_footer =
          "Calls carry the session of 'crmctl login' (renewed at the identity service when it\n"
          "expires), unless --header authorization=... is given. Output: a table or \"field\n"
          "value\" lines; --json prints the response as JSON. Enum values are given and shown\n"
          "without their prefix and with '-' for '_' (legitimate-interest, web-form).\n"
          "Other flags: --consent H:P (or --addr/--server-identity), --identity H:P, --timeout,\n"
          "--cert --key --ca (see crmctl --help).\n"};
  return *table;
}

absl::Status CheckConsentCommands(const ProtoRegistry& registry) {
  return CheckCommandTable(registry, ConsentCommandTable());
}

}  // namespace crm::crmctl
