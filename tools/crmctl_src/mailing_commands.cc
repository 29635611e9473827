#include "tools/crmctl_src/mailing_commands.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "tools/crmctl_src/crmctl.h"

namespace crm::crmctl {
namespace {

using google::protobuf::Message;

constexpr char kOptIns[] = "single|double";
constexpr char kStates[] = "pending|active|unsubscribed";
constexpr char kListColumns[] =
    "list_id:LIST purpose_id:PURPOSE opt_in:OPT_IN active_subscribers:ACTIVE "
    "pending_subscribers:PENDING created_at:CREATED description";
constexpr char kSubscriptionColumns[] =
    "subject_id:SUBJECT state source created_at:CREATED confirmed_at:CONFIRMED ended_at:ENDED";

// Template bodies: at most this many bytes are read from a file (more than
// a gRPC message carries by default). The service's own limits (text 1 ..
// 100,000 bytes, HTML at most 200,000) are its INVALID_ARGUMENT.
constexpr size_t kMaxBodyBytes = size_t{4} << 20;
// ListSubscriptions: the largest page the service gives, and at most this
// many of them.
constexpr char kSubscriptionsPageSize[] = "1000";
constexpr int kMaxSubscriptionPages = 1000;

// Message field `field` of `m`, set (created if it was not).
Message* Mutable(Message* m, const char* field) {
  return m->GetReflection()->MutableMessage(m, m->GetDescriptor()->FindFieldByName(field));
}

// The file of flag `flag` (stdin for "-"), its bytes unchanged, as string
// field `field` of the request's template; nothing when the flag is not
// given. kContinue, or the exit code of a usage error naming the flag.
int ReadBody(Invocation& inv, const char* flag, const char* field) {
  auto given = inv.flags.find(flag);
  if (given == inv.flags.end()) return kContinue;
  const std::string label = absl::StrCat("--", flag);
  const std::string& path = given->second[0];
  const std::string name = path == "-" ? "stdin" : path;
  std::ifstream opened;
  std::istream* in = &inv.in;
  if (path != "-") {
    opened.open(path, std::ios::binary);
    if (!opened) {
      return TableUsageError(
          inv.err, absl::StrCat(label, ": cannot read ", path, ": ", strerror(errno)), inv.Topic());
    }
    in = &opened;
  }
  std::string body(kMaxBodyBytes + 1, '\0');
  in->read(body.data(), static_cast<std::streamsize>(body.size()));
  if (in->bad()) {
    return TableUsageError(inv.err, absl::StrCat(label, ": cannot read ", name), inv.Topic());
  }
  body.resize(static_cast<size_t>(in->gcount()));
  if (body.empty()) {
    return TableUsageError(inv.err, absl::StrCat(label, ": ", name, " is empty"), inv.Topic());
  }
  if (body.size() > kMaxBodyBytes) {
    return TableUsageError(inv.err, absl::StrCat(label, ": ", name, " has more than 4 MiB"),
                           inv.Topic());
  }
  SetString(Mutable(inv.request.get(), "template"), field, body);
  return kContinue;
}

// template put: --text (required) and --html from their files; stdin can
// be only one of them.
int ReadBodies(Invocation& inv) {
  auto html = inv.flags.find("html");
  if (html != inv.flags.end() && html->second[0] == "-" && inv.flags.at("text")[0] == "-") {
    return TableUsageError(inv.err, "--html: stdin (-) is already read for --text", inv.Topic());
  }
  if (int rc = ReadBody(inv, "text", "text_body"); rc != kContinue) return rc;
  return ReadBody(inv, "html", "html_body");
}

// template put: the stored template as "field value" lines, its bodies as
// their sizes (they are the files just given); --json: all of it.
int RunPutTemplate(Invocation& inv) {
  std::unique_ptr<Message> response = inv.registry.NewMessage(inv.method->output_type());
  if (grpc::Status s = inv.Call(inv.method, *inv.request, response.get()); !s.ok()) {
    return TableRpcError(inv, s);
  }
  if (!inv.options.json) {
    Message* stored = Mutable(response.get(), "template");
    for (const char* field : {"text_body", "html_body"}) {
      const std::string body = GetString(*stored, field);
      if (!body.empty()) SetString(stored, field, absl::StrCat(body.size(), " bytes"));
    }
  }
  return PrintResponse(inv, *response);
}

// campaign schedule: --at as send_at; "now", like no --at, leaves it unset
// (the service's now).
int ParseSendAt(Invocation& inv) {
  auto at = inv.flags.find("at");
  if (at == inv.flags.end() || at->second[0] == "now") return kContinue;
  absl::Time t;
  std::string error;
  if (!absl::ParseTime(absl::RFC3339_full, at->second[0], &t, &error)) {
    return TableUsageError(inv.err,
                           absl::StrCat("--at: expected an RFC 3339 time like "
                                        "2026-11-01T00:00:00Z or now, got \"",
                                        at->second[0], "\""),
                           inv.Topic());
  }
  SetTime(Mutable(inv.request.get(), "send_at"), t);
  return kContinue;
}

// subscriptions: every page (ListSubscriptions has page_token and
// next_page_token of its own) into one table.
int RunSubscriptions(Invocation& inv) {
  return RunOwnPagedList(inv, kMaxSubscriptionPages, kSubscriptionsPageSize, "subscriptions");
}

// A command on one campaign by its id, printing the campaign.
Command CampaignCommand(const char* word, const char* rpc, const char* summary) {
  return {.words = {"mailing", "campaign", word},
          .rpc = rpc,
          .args = {Positional("CAMPAIGN_ID", "campaign_id")},
          .summary = summary,
          .show = "campaign"};
}

const std::vector<Command>& Commands() {
  static const auto* commands = new std::vector<Command>{
      {.words = {"mailing", "list", "create"},
       .rpc = "CreateList",
       .args = {Positional("LIST_ID", "list.list_id"),
                RequiredFlag("purpose", "list.purpose_id", "PURPOSE_ID"),
                RequiredFlag("opt-in", "list.opt_in", kOptIns),
                Flag("description", "list.description", "TEXT")},
       .summary = "create a list serving one consent purpose (which must exist in consent); "
                  "single opt-in: a subscription is active at once, double: only once the "
                  "subject follows the link of a confirmation mail; ALREADY_EXISTS for a taken "
                  "id; needs mailing.manage",
       .show = "list"},
      {.words = {"mailing", "list", "ls"},
       .rpc = "ListLists",
       .summary = "every list: purpose, opt-in, active and pending subscribers; needs "
                  "mailing.manage",
       .show = "lists",
       .columns = kListColumns},
      {.words = {"mailing", "subscribe"},
       .rpc = "Subscribe",
       .args = {Positional("LIST_ID", "list_id"), Positional("SUBJECT_ID", "subject_id"),
                RequiredFlag("notice", "notice_version", "VERSION"),
                RequiredFlag("source", "source", "SOURCE"), Flag("language", "language", "LANG")},
       .summary = "subscribe a subject, citing the consent notice it was shown (--notice: the "
                  "whole version, for --language, default en); single opt-in: active, the "
                  "consent grant recorded now; double opt-in: pending, a confirmation mail "
                  "sent, the grant recorded when its link is followed; an active or pending "
                  "subscriber: changed no; needs mailing.send"},
      {.words = {"mailing", "subscriptions"},
       .rpc = "ListSubscriptions",
       .args = {Positional("LIST_ID", "list_id"), Flag("state", "state", kStates),
                Const("page_size", kSubscriptionsPageSize)},
       .summary = "a list's subscriptions (all pages; --state: only those in it) with their "
                  "source and times; needs mailing.manage",
       .show = "subscriptions",
       .columns = kSubscriptionColumns,
       .run = RunSubscriptions},
      {.words = {"mailing", "template", "put"},
       .rpc = "PutTemplate",
       .args = {Positional("TEMPLATE_ID", "template.template_id"),
                RequiredFlag("subject", "template.subject", "TEXT"),
                RequiredFlag("text", nullptr, "FILE"), Flag("html", nullptr, "FILE")},
       .summary = "store a new version of a template: the subject line, the plain text body "
                  "from --text FILE and the HTML body from --html FILE (\"-\": stdin; bytes "
                  "unchanged); a campaign's may use {{first_name}} and {{unsubscribe_url}} "
                  "(docs/mailing.md); prints the version (the bodies as their sizes; --json: "
                  "whole); needs mailing.manage",
       .show = "template",
       .prepare = ReadBodies,
       .run = RunPutTemplate},
      {.words = {"mailing", "template", "get"},
       .rpc = "GetTemplate",
       .args = {Positional("TEMPLATE_ID", "template_id"), Flag("version", "version", "N")},
       .summary = "a template version with its bodies (default: the newest); needs "
                  "mailing.manage",
       .show = "template"},
      {.words = {"mailing", "campaign", "create"},
       .rpc = "CreateCampaign",
       .args = {RequiredFlag("name", "campaign.name", "NAME"),
                RequiredFlag("list", "campaign.list_id", "LIST_ID"),
                RequiredFlag("template", "campaign.template_id", "TEMPLATE_ID"),
                Flag("template-version", "campaign.template_version", "N")},
       .summary = "create a draft campaign of a list and a template version, pinned now "
                  "(default: the newest); prints its campaign_id, which the other campaign "
                  "commands take; needs mailing.manage",
       .show = "campaign"},
      {.words = {"mailing", "campaign", "schedule"},
       .rpc = "ScheduleCampaign",
       .args = {Positional("CAMPAIGN_ID", "campaign_id"), Flag("at", nullptr, "TIME|now")},
       .summary = "schedule a draft for --at (RFC 3339, at most a year ahead; default now): "
                  "then the list's active subscribers are queued, each once, and sent as far "
                  "as consent allows right before each send; needs mailing.manage",
       .show = "campaign",
       .prepare = ParseSendAt},
      CampaignCommand("pause", "PauseCampaign",
                      "stop a scheduled or sending campaign after the messages in flight; "
                      "needs mailing.manage"),
      CampaignCommand("resume", "ResumeCampaign",
                      "resume a paused campaign (nobody gets a message twice); needs "
                      "mailing.manage"),
      CampaignCommand("cancel", "CancelCampaign",
                      "cancel a campaign that is not done: what is not sent yet is dropped; "
                      "needs mailing.manage"),
      CampaignCommand("show", "GetCampaign",
                      "a campaign: its state and counts (queued, sent, skipped for consent or "
                      "for no address, failed, unsubscribed); needs mailing.manage"),
  };
  return *commands;
}

}  // namespace

const CommandTable& MailingCommandTable() {
  static const auto* table = new CommandTable{
      .service = "crm.mailing.v1.Mailing",
      .service_name = "mailing",
      .commands = &Commands(),
      .usage_title = "Mailing",
      .usage_footer =
          "Calls carry the session of 'crmctl login' (renewed at the identity service when it\n"
          "expires), unless --header authorization=... is given. Output: a table or \"field\n"
          "value\" lines; --json prints the response as JSON. Enum values are given and shown\n"
          "without their prefix (single, double; pending, active, unsubscribed; draft,\n"
          "scheduled, sending, paused, cancelled, done). Pause, resume, cancel and schedule\n"
          "from a state they do not apply to are FAILED_PRECONDITION.\n"
          "Other flags: --mailing H:P (or --addr/--server-identity), --identity H:P, --timeout,\n"
          "--cert --key --ca (see crmctl --help).\n"};
  return *table;
}

absl::Status CheckMailingCommands(const ProtoRegistry& registry) {
  return CheckCommandTable(registry, MailingCommandTable());
}

}  // namespace crm::crmctl
