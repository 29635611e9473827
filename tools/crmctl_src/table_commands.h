// The table-driven command groups of crmctl. A command group (identity
// administration: identity_commands.h; contacts: contacts_commands.h;
// consent: consent_commands.h; mailing: mailing_commands.h; erasure:
// erasure_commands.h) is ONE table
// mapping command words, positional arguments and flags to the fields of a
// request of one gRPC service, and every table is run by the one generic implementation here,
// over dynamic messages of the embedded descriptors: build the request, call
// with the operator's session (session.h), follow page tokens, print a
// table, the "field value" lines of one message, or the JSON response
// (--json). A row may add a Prepare hook (derive fields before the call) or
// replace the call and output with its own Runner (login, passwd, logout),
// and may finish without any server in an offline hook (erasure verify
// --key). A streaming RPC needs a row with its own Runner (person import: a
// client stream; erasure export: a server stream, through
// Invocation::ReadStream).
// See docs/crmctl.md.
//
// Thread-safety: like Run (crmctl.h), one call at a time; the tables are
// immutable.
#pragma once

#include <google/protobuf/descriptor.h>
#include <google/protobuf/message.h>
#include <grpcpp/channel.h>
#include <grpcpp/support/status.h>

#include <functional>
#include <iosfwd>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "libs/rpc/channel.h"
#include "tools/crmctl_src/options.h"
#include "tools/crmctl_src/proto_registry.h"
#include "tools/crmctl_src/session.h"

namespace crm::crmctl {

// What a Prepare returns to go on.
inline constexpr int kContinue = -1;

// An argument of a command: a positional or a flag, and the request field
// it sets (dotted for nested fields; nullptr: the command's code reads it).
// The value is converted by the field's type: text, a number, an enum value
// by its name without the enum's prefix ("active" for USER_STATUS_ACTIVE), a
// bool (on/off, true/false, yes/no), a google.protobuf.Timestamp (RFC 3339)
// or Duration (8h, 90m, 7d, 1d12h). A path through a repeated message
// ("person.emails.address") adds one element per value.
struct Arg {
  // kConst: not given by the operator; sets `field` to `default_value`.
  enum Kind { kPositional, kOptionalPositional, kFlag, kRepeatedFlag, kSwitch, kConst };
  Kind kind;
  const char* name;  // "USER_ID" for a positional, "status" for --status.
  const char* field;
  const char* meta = "";  // Its value in the usage: "active|disabled".
  bool required = false;
  const char* default_value = nullptr;
};

Arg Positional(const char* name, const char* field);
Arg OptionalPositional(const char* name, const char* field);
Arg Flag(const char* name, const char* field, const char* meta);
Arg RequiredFlag(const char* name, const char* field, const char* meta);
Arg Repeated(const char* name, const char* field, const char* meta, bool required = false);
Arg Switch(const char* name, const char* field);
Arg Const(const char* field, const char* value);

struct Command;
struct CommandTable;

// One run of a command: its parsed arguments, the request being built and
// the means to call.
struct Invocation {
  const CommandTable& table;
  const Command& command;
  const Options& options;
  std::istream& in;
  std::ostream& out;
  std::ostream& err;
  const ProtoRegistry& registry;
  const google::protobuf::MethodDescriptor* method = nullptr;
  std::unique_ptr<google::protobuf::Message> request;
  // The command flags given, by name: their values in order.
  std::map<std::string, std::vector<std::string>> flags;
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<SessionCaller> caller;
  // Passwords are prompted for on the terminal (else: lines of stdin).
  bool terminal = false;

  // `m` with `req`; follows page tokens, merging the pages into `response`.
  grpc::Status Call(const google::protobuf::MethodDescriptor* m, google::protobuf::Message& req,
                    google::protobuf::Message* response, bool retry_unauthenticated = true);
  // The server stream `m` (a row with its own Runner) with `req`, the
  // session's bearer token (renewed first if it has expired; an
  // UNAUTHENTICATED answer is not retried, messages may have been handed on
  // already) and a deadline of --timeout for the whole stream: hands each
  // message to `each`, in order, and returns the call's status. If `each`
  // fails, the call is cancelled, nothing more is handed on, and its error
  // is in `*stopped` (else OK); a message that does not parse stops it with
  // INTERNAL.
  grpc::Status ReadStream(const google::protobuf::MethodDescriptor* m,
                          const google::protobuf::Message& req,
                          const std::function<absl::Status(const google::protobuf::Message&)>& each,
                          absl::Status* stopped);
  // The method `rpc` of the table's service; null if unknown.
  const google::protobuf::MethodDescriptor* Method(const char* rpc) const;
  std::string Topic() const;
};

// Runs before the call (reads passwords, derives fields); returns kContinue
// or an exit code.
using Prepare = int (*)(Invocation&);
// Replaces the generic call and output.
using Runner = int (*)(Invocation&);

struct Command {
  // "user list"; a group may hold groups ("mailing campaign pause"). No
  // command's words begin another's.
  std::vector<std::string> words;
  const char* rpc;
  std::vector<Arg> args;
  const char* summary;
  // Output: the response field shown (nullptr: the whole response). A
  // repeated message field is a table of `columns` (space-separated
  // "path" or "path:HEADER"; a path may be dotted, go through a repeated
  // message (its element with `primary` set, else the first) and join
  // several with '+' ("given_name+family_name:NAME"); a map field is its
  // key=value pairs by key, comma-separated); a repeated scalar one value a
  // line; a message "field value" lines; `done` stands for an empty message.
  const char* show = nullptr;
  const char* columns = nullptr;
  const char* done = nullptr;
  // Printed on stderr after the output (not with --json).
  const char* note = nullptr;
  Prepare prepare = nullptr;
  Runner run = nullptr;
  // Runs right after the arguments are read, before the operator's
  // certificate, the channel and the session are looked at: kContinue goes
  // on (prepare, the call), anything else is the exit code of a command
  // that needed no server (erasure verify --key).
  Prepare offline = nullptr;
  // A repeated string field of the response also shown when non-empty
  // (after "field value" lines as one more line; after a table on stderr).
  const char* extra = nullptr;
  // "update_mask person": the google.protobuf.FieldMask field of the
  // request, filled with the fields of message field "person" that the
  // given flags set (the first part of the path after "person."). At least
  // one such flag is required.
  const char* update_mask = nullptr;
  // login: the session file is not read (it is replaced).
  bool fresh_session = false;
};

// A command group: its commands, all calling one gRPC service.
struct CommandTable {
  const char* service;       // "crm.identity.v1.Identity".
  const char* service_name;  // "identity": its address and server identity (options.h).
  // Calls go to --addr/--server-identity when given, else to the address of
  // `service_name`; renewals of the session go to the identity service
  // (itself with --addr/--server-identity when this is the identity table).
  const std::vector<Command>* commands;
  const char* usage_title;   // "Identity administration".
  const char* usage_footer;  // After the list of commands in the help.
};

// Every table: identity, contacts, consent, mailing, erasure.
const std::vector<const CommandTable*>& CommandTables();

// The table of the command word `command` ("user", "person"); null if none.
const CommandTable* FindCommandTable(absl::string_view command);

// For a flag of a table command (name without "--"): whether it takes a
// value (true) or is a switch (false); nullopt if no command has it.
std::optional<bool> CommandFlagTakesValue(absl::string_view flag);

// Whether the table command that `line` (the command word and the
// positional arguments after it: "erasure", "verify", FILE) names has the
// flag `flag` (without "--"); false if `line` names no table command. For
// a global flag that a command also has (erasure verify --key).
bool CommandHasFlag(const std::vector<std::string>& line, absl::string_view flag);

// The help of the command group `command` ("user": every user command);
// empty if it is not one.
std::string CommandGroupUsage(absl::string_view command);

// Runs the table command of `options`: exit 0 on success, 1 when the RPC
// fails ("ERROR <CODE>: <message>" on `err`, plus what to do when the
// session is missing or has ended), 2 for bad usage naming the argument.
int RunTableCommand(const Options& options, const std::map<std::string, std::string>& env,
                    std::istream& in, std::ostream& out, std::ostream& err);

// The channel settings of the identity service: --addr/--server-identity
// when `use_addr`, else the address of "identity" and its identity.
rpc::ChannelConfig IdentityChannelConfig(const Options& options, bool use_addr);

// A SessionCaller for `options` (headers, timeout) with the session file of
// `env`, renewing at the identity service of `identity` (over a channel
// without retries: a RefreshSession whose answer was lost must not be sent
// again, its token is spent). `load`: read the session file now (login does
// not: it replaces whatever is there). Errors of MakeChannel and LoadSession.
absl::StatusOr<std::unique_ptr<SessionCaller>> NewSessionCaller(
    const Options& options, const std::map<std::string, std::string>& env,
    rpc::ChannelConfig identity, const ProtoRegistry& registry, bool load = true);

// OK if every command of `table` names an existing method of its service
// (a streaming one only with its own Runner; never a bidirectional one)
// and existing request and response fields of the right shape, no
// command's words begin another's, and a flag name is a switch in every
// table or in none; otherwise INTERNAL naming the command (a proto change
// broke the table). For tests.
absl::Status CheckCommandTable(const ProtoRegistry& registry, const CommandTable& table);

// ---- For the hooks of the tables ---------------------------------------------

// "crmctl: <message>" and where the usage is; returns kExitUsage.
int TableUsageError(std::ostream& err, absl::string_view message, absl::string_view topic);
// "ERROR <CODE>: <message>" (and a hint for an ended session); kExitFailure.
int TableRpcError(Invocation& inv, const grpc::Status& status);
// The generic output of `response` for the command of `inv` (--json, the
// table of `show` and `columns`, or "field value" lines); kExitOk, or
// kExitFailure if it cannot be printed as JSON. For a Runner that calls
// itself and adjusts the response before printing.
int PrintResponse(Invocation& inv, const google::protobuf::Message& response);
// For a list RPC whose request and response carry page_token and
// next_page_token at their top level (which the generic paging of Call does
// not know): calls it page after page, at most `max_pages` times, merges
// the pages into one response and prints it with PrintResponse. Returns
// TableRpcError of the first failed call, else what PrintResponse returns;
// if it stopped at `max_pages`, also says on `inv.err` that the list (of
// pages of `page_size`) has more `what` ("requests").
int RunOwnPagedList(Invocation& inv, int max_pages, absl::string_view page_size,
                    absl::string_view what);
// "field value" rows of every field of `m` as PrintResponse shows one
// message: nested fields dotted ("counts.sent"), repeated messages by index
// ("targets[0].service"), values as FieldText.
std::vector<std::vector<std::string>> FieldRows(const google::protobuf::Message& m);
// Field `field` of `m` as tables show it: "-" for an empty string, an
// unset message or an empty repeated field, times RFC 3339 UTC, enum values by their word
// ("needs-attention"), bools yes/no, bytes in base64, repeated fields comma-separated; "?" if `m`
// has no such field.
std::string FieldText(const google::protobuf::Message& m, const char* field);
// The number of elements of repeated field `field` of `m`; 0 if there is no
// such repeated field.
int FieldSize(const google::protobuf::Message& m, const char* field);
// `rows` in aligned columns, two spaces apart; the last column is not
// padded.
void PrintColumns(std::ostream& out, const std::vector<std::vector<std::string>>& rows);
// "/pkg.Service/Method".
std::string FullName(const google::protobuf::MethodDescriptor* m);
// Durations also take days: 7d, 1d12h. INVALID_ARGUMENT saying what is expected.
absl::Status ParseDurationArg(absl::string_view text, absl::Duration* d);
// A google.protobuf.Timestamp message.
void SetTime(google::protobuf::Message* m, absl::Time t);
absl::Time GetTime(const google::protobuf::Message& m);
// Field access by name for the hand-written commands. A field the proto
// lacks reads as its default.
void SetString(google::protobuf::Message* m, const char* field, const std::string& value);
std::string GetString(const google::protobuf::Message& m, const char* field);
const google::protobuf::Message& GetMessage(const google::protobuf::Message& m, const char* field);
bool GetBool(const google::protobuf::Message& m, const char* field);
int32_t GetInt32(const google::protobuf::Message& m, const char* field);

}  // namespace crm::crmctl
