#include "tools/crmctl_src/identity_commands.h"

#include <algorithm>
#include <istream>
#include <ostream>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/time.h"
#include "libs/rpc/tls_files.h"
#include "tools/crmctl_src/client.h"
#include "tools/crmctl_src/crmctl.h"
#include "tools/crmctl_src/terminal.h"

namespace crm::crmctl {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::EnumDescriptor;
using google::protobuf::EnumValueDescriptor;
using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using google::protobuf::MethodDescriptor;
using google::protobuf::Reflection;

constexpr char kIdentityService[] = "crm.identity.v1.Identity";
constexpr int kContinue = -1;    // What a Prepare returns to go on.
constexpr int kMaxPages = 1000;  // Of a list, at the server's page size.

// An argument of a command: a positional or a flag, and the request field
// it sets (dotted for nested fields; nullptr: the command's code reads it).
// The value is converted by the field's type: text, an enum value by its
// name without the enum's prefix ("active" for USER_STATUS_ACTIVE), a bool
// (on/off, true/false, yes/no), a google.protobuf.Timestamp (RFC 3339) or
// Duration (8h, 90m, 7d, 1d12h).
struct Arg {
  enum Kind { kPositional, kOptionalPositional, kFlag, kRepeatedFlag, kSwitch };
  Kind kind;
  const char* name;  // "USER_ID" for a positional, "status" for --status.
  const char* field;
  const char* meta = "";  // Its value in the usage: "active|disabled".
  bool required = false;
  const char* default_value = nullptr;
};

Arg Positional(const char* name, const char* field) { return {Arg::kPositional, name, field}; }
Arg OptionalPositional(const char* name, const char* field) {
  return {Arg::kOptionalPositional, name, field};
}
Arg Flag(const char* name, const char* field, const char* meta) {
  return {Arg::kFlag, name, field, meta};
}
Arg RequiredFlag(const char* name, const char* field, const char* meta) {
  return {Arg::kFlag, name, field, meta, true};
}
Arg Repeated(const char* name, const char* field, const char* meta, bool required = false) {
  return {Arg::kRepeatedFlag, name, field, meta, required};
}
Arg Switch(const char* name, const char* field) { return {Arg::kSwitch, name, field}; }

struct Command;

// One run of a command: its parsed arguments, the request being built and
// the means to call.
struct Invocation {
  const Command& command;
  const Options& options;
  std::istream& in;
  std::ostream& out;
  std::ostream& err;
  const ProtoRegistry& registry;
  const MethodDescriptor* method = nullptr;
  std::unique_ptr<Message> request;
  // The command flags given, by name: their values in order.
  std::map<std::string, std::vector<std::string>> flags;
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<SessionCaller> caller;
  // Passwords are prompted for on the terminal (else: lines of stdin).
  bool terminal = false;

  // `method` of Identity with `request`; follows page tokens, merging the
  // pages into `response`.
  grpc::Status Call(const MethodDescriptor* m, Message& req, Message* response,
                    bool retry_unauthenticated = true);
  std::string Topic() const;
};

// Runs before the call (reads passwords, derives fields); returns kContinue
// or an exit code.
using Prepare = int (*)(Invocation&);
// Replaces the generic call and output.
using Runner = int (*)(Invocation&);

struct Command {
  std::vector<std::string> words;
  const char* rpc;
  std::vector<Arg> args;
  const char* summary;
  // Output: the response field shown (nullptr: the whole response). A
  // repeated message field is a table of `columns` ("field" or
  // "field:HEADER", space-separated); a repeated scalar one value a line;
  // a message "field value" lines; `done` stands for an empty message.
  const char* show = nullptr;
  const char* columns = nullptr;
  const char* done = nullptr;
  // Printed on stderr after the output (not with --json).
  const char* note = nullptr;
  Prepare prepare = nullptr;
  Runner run = nullptr;
};

// ---- Errors ------------------------------------------------------------------

int UsageError(std::ostream& err, absl::string_view message, absl::string_view topic) {
  err << "crmctl: " << message << "\nRun 'crmctl help " << topic << "' for usage.\n";
  return kExitUsage;
}

int RpcError(Invocation& inv, const grpc::Status& status) {
  inv.err << "ERROR " << CodeName(status.error_code()) << ": " << status.error_message() << "\n";
  if (inv.caller != nullptr) {
    if (std::string hint = inv.caller->Hint(status); !hint.empty()) {
      inv.err << "crmctl: " << hint << "\n";
    }
  }
  return kExitFailure;
}

// ---- Values ------------------------------------------------------------------

bool IsType(const FieldDescriptor* f, absl::string_view full_name) {
  return f->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE &&
         f->message_type()->full_name() == full_name;
}
bool IsTimestamp(const FieldDescriptor* f) { return IsType(f, "google.protobuf.Timestamp"); }
bool IsDuration(const FieldDescriptor* f) { return IsType(f, "google.protobuf.Duration"); }

// "USER_STATUS_" of enum UserStatus (from its USER_STATUS_UNSPECIFIED).
std::string EnumPrefix(const EnumDescriptor* e) {
  absl::string_view zero = e->value(0)->name();
  return absl::ConsumeSuffix(&zero, "UNSPECIFIED") ? std::string(zero) : "";
}
// "service-account" for USER_KIND_SERVICE_ACCOUNT; "-" for the zero value.
std::string EnumWord(const EnumValueDescriptor* v) {
  if (v->number() == 0) return "-";
  std::string word = absl::AsciiStrToLower(absl::StripPrefix(v->name(), EnumPrefix(v->type())));
  std::replace(word.begin(), word.end(), '_', '-');
  return word;
}

// Durations also take days: 7d, 1d12h.
bool ParseLongDuration(absl::string_view text, absl::Duration* d) {
  absl::Duration days;
  if (size_t pos = text.find('d'); pos != absl::string_view::npos) {
    int64_t n = 0;
    if (!absl::SimpleAtoi(text.substr(0, pos), &n) || n < 0) return false;
    days = absl::Hours(24) * n;
    text.remove_prefix(pos + 1);
  }
  absl::Duration rest;
  if (!text.empty() && !absl::ParseDuration(text, &rest)) return false;
  *d = days + rest;
  return *d > absl::ZeroDuration();
}

absl::Status ParseDurationArg(absl::string_view text, absl::Duration* d) {
  if (ParseLongDuration(text, d)) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat("expected a positive duration like 8h, 90m or 7d, got \"", text, "\""));
}

absl::Status ParseTimeArg(absl::string_view text, absl::Time* t) {
  std::string error;
  if (absl::ParseTime(absl::RFC3339_full, std::string(text), t, &error)) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat("expected an RFC 3339 time like 2026-11-01T00:00:00Z, got \"", text, "\""));
}

void SetSecondsNanos(Message* m, int64_t seconds, int32_t nanos) {
  const Descriptor* d = m->GetDescriptor();
  m->GetReflection()->SetInt64(m, d->FindFieldByName("seconds"), seconds);
  m->GetReflection()->SetInt32(m, d->FindFieldByName("nanos"), nanos);
}
void SetTime(Message* m, absl::Time t) {
  const int64_t seconds = absl::ToUnixSeconds(t);
  SetSecondsNanos(
      m, seconds,
      static_cast<int32_t>(absl::ToInt64Nanoseconds(t - absl::FromUnixSeconds(seconds))));
}
absl::Time GetTime(const Message& m) {
  const Descriptor* d = m.GetDescriptor();
  return absl::FromUnixSeconds(m.GetReflection()->GetInt64(m, d->FindFieldByName("seconds"))) +
         absl::Nanoseconds(m.GetReflection()->GetInt32(m, d->FindFieldByName("nanos")));
}

// The message holding the last part of `path` ("range.start": the range,
// created if unset); the field itself in `*field`.
absl::StatusOr<Message*> Walk(Message* m, absl::string_view path, const FieldDescriptor** field) {
  std::vector<std::string> parts = absl::StrSplit(path, '.');
  for (size_t i = 0; i < parts.size(); ++i) {
    const FieldDescriptor* f = m->GetDescriptor()->FindFieldByName(parts[i]);
    if (f == nullptr) {
      return absl::InternalError(
          absl::StrCat(m->GetDescriptor()->full_name(), " has no field ", parts[i]));
    }
    if (i + 1 == parts.size()) {
      *field = f;
      return m;
    }
    m = m->GetReflection()->MutableMessage(m, f);
  }
  return absl::InternalError("empty field path");
}

// Sets (or, repeated, appends to) field `path` of `m` from `text`.
absl::Status SetField(Message* root, absl::string_view path, absl::string_view text) {
  const FieldDescriptor* f = nullptr;
  absl::StatusOr<Message*> walked = Walk(root, path, &f);
  if (!walked.ok()) return walked.status();
  Message* m = *walked;
  const Reflection* r = m->GetReflection();
  const bool repeated = f->is_repeated();
  switch (f->cpp_type()) {
    case FieldDescriptor::CPPTYPE_STRING:
      repeated ? r->AddString(m, f, std::string(text)) : r->SetString(m, f, std::string(text));
      return absl::OkStatus();
    case FieldDescriptor::CPPTYPE_BOOL: {
      const std::string word = absl::AsciiStrToLower(text);
      bool value = word == "on" || word == "true" || word == "yes";
      if (!value && word != "off" && word != "false" && word != "no") {
        return absl::InvalidArgumentError(absl::StrCat("expected on or off, got \"", text, "\""));
      }
      repeated ? r->AddBool(m, f, value) : r->SetBool(m, f, value);
      return absl::OkStatus();
    }
    case FieldDescriptor::CPPTYPE_INT32: {
      int32_t value = 0;
      if (!absl::SimpleAtoi(text, &value)) {
        return absl::InvalidArgumentError(absl::StrCat("expected a number, got \"", text, "\""));
      }
      repeated ? r->AddInt32(m, f, value) : r->SetInt32(m, f, value);
      return absl::OkStatus();
    }
    case FieldDescriptor::CPPTYPE_ENUM: {
      const EnumDescriptor* e = f->enum_type();
      std::string name = absl::AsciiStrToUpper(text);
      std::replace(name.begin(), name.end(), '-', '_');
      const EnumValueDescriptor* v = e->FindValueByName(EnumPrefix(e) + name);
      if (v == nullptr || v->number() == 0) {
        std::vector<std::string> words;
        for (int i = 1; i < e->value_count(); ++i) words.push_back(EnumWord(e->value(i)));
        return absl::InvalidArgumentError(
            absl::StrCat("expected one of ", absl::StrJoin(words, ", "), ", got \"", text, "\""));
      }
      repeated ? r->AddEnumValue(m, f, v->number()) : r->SetEnumValue(m, f, v->number());
      return absl::OkStatus();
    }
    case FieldDescriptor::CPPTYPE_MESSAGE:
      if (!repeated && IsTimestamp(f)) {
        absl::Time t;
        if (absl::Status s = ParseTimeArg(text, &t); !s.ok()) return s;
        SetTime(r->MutableMessage(m, f), t);
        return absl::OkStatus();
      }
      if (!repeated && IsDuration(f)) {
        absl::Duration d;
        if (absl::Status s = ParseDurationArg(text, &d); !s.ok()) return s;
        const int64_t seconds = absl::ToInt64Seconds(d);
        SetSecondsNanos(r->MutableMessage(m, f), seconds,
                        static_cast<int32_t>(absl::ToInt64Nanoseconds(d - absl::Seconds(seconds))));
        return absl::OkStatus();
      }
      break;
    default:
      break;
  }
  return absl::InternalError(absl::StrCat("crmctl cannot set field ", f->full_name()));
}

std::string FormatUtc(absl::Time t) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", t, absl::UTCTimeZone());
}

// One value of field `f` of `m` (element `index` if repeated) as text.
std::string FormatValue(const Message& m, const FieldDescriptor* f, int index) {
  const Reflection* r = m.GetReflection();
  const bool rep = f->is_repeated();
  switch (f->cpp_type()) {
    case FieldDescriptor::CPPTYPE_STRING: {
      std::string s = rep ? r->GetRepeatedString(m, f, index) : r->GetString(m, f);
      if (f->type() == FieldDescriptor::TYPE_BYTES) return absl::Base64Escape(s);
      return s.empty() ? "-" : s;
    }
    case FieldDescriptor::CPPTYPE_BOOL:
      return (rep ? r->GetRepeatedBool(m, f, index) : r->GetBool(m, f)) ? "yes" : "no";
    case FieldDescriptor::CPPTYPE_ENUM:
      return EnumWord(rep ? r->GetRepeatedEnum(m, f, index) : r->GetEnum(m, f));
    case FieldDescriptor::CPPTYPE_INT32:
      return absl::StrCat(rep ? r->GetRepeatedInt32(m, f, index) : r->GetInt32(m, f));
    case FieldDescriptor::CPPTYPE_INT64:
      return absl::StrCat(rep ? r->GetRepeatedInt64(m, f, index) : r->GetInt64(m, f));
    case FieldDescriptor::CPPTYPE_MESSAGE: {
      if (!rep && !r->HasField(m, f)) return "-";
      const Message& sub = rep ? r->GetRepeatedMessage(m, f, index) : r->GetMessage(m, f);
      if (IsTimestamp(f)) return FormatUtc(GetTime(sub));
      if (IsDuration(f)) return absl::FormatDuration(GetTime(sub) - absl::UnixEpoch());
      absl::StatusOr<std::string> json = ToJson(sub);
      return json.ok() ? std::string(absl::StripTrailingAsciiWhitespace(*json)) : "?";
    }
    default:
      return "?";
  }
}

std::string FormatField(const Message& m, const FieldDescriptor* f) {
  if (!f->is_repeated()) return FormatValue(m, f, -1);
  const int n = m.GetReflection()->FieldSize(m, f);
  if (n == 0) return "-";
  std::vector<std::string> values;
  for (int i = 0; i < n; ++i) values.push_back(FormatValue(m, f, i));
  return absl::StrJoin(values, ",");
}

// "field value" rows of every field of `m`, nested messages flattened
// ("user.username").
void Flatten(const Message& m, const std::string& prefix,
             std::vector<std::vector<std::string>>* rows) {
  const Descriptor* d = m.GetDescriptor();
  for (int i = 0; i < d->field_count(); ++i) {
    const FieldDescriptor* f = d->field(i);
    if (f->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE && !f->is_repeated() && !IsTimestamp(f) &&
        !IsDuration(f)) {
      Flatten(m.GetReflection()->GetMessage(m, f), absl::StrCat(prefix, f->name(), "."), rows);
    } else {
      rows->push_back({absl::StrCat(prefix, f->name()), FormatField(m, f)});
    }
  }
}

// Aligned columns, two spaces apart; the last column is not padded.
void PrintColumns(std::ostream& out, const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> widths;
  for (const auto& row : rows) {
    widths.resize(std::max(widths.size(), row.size()), 0);
    for (size_t i = 0; i < row.size(); ++i) widths[i] = std::max(widths[i], row[i].size());
  }
  for (const auto& row : rows) {
    std::string line;
    for (size_t i = 0; i < row.size(); ++i) {
      if (i > 0) line += "  ";
      line += row[i];
      if (i + 1 < row.size()) line.append(widths[i] - row[i].size(), ' ');
    }
    out << line << "\n";
  }
}

std::vector<std::pair<std::string, std::string>> ParseColumns(const char* columns) {
  std::vector<std::pair<std::string, std::string>> out;
  for (absl::string_view spec : absl::StrSplit(columns, ' ', absl::SkipEmpty())) {
    std::pair<std::string, std::string> c = absl::StrSplit(spec, absl::MaxSplits(':', 1));
    if (c.second.empty()) c.second = absl::AsciiStrToUpper(c.first);
    out.push_back(std::move(c));
  }
  return out;
}

int PrintResponse(Invocation& inv, const Message& response) {
  const Command& c = inv.command;
  if (inv.options.json) {
    absl::StatusOr<std::string> json = ToJson(response);
    if (!json.ok()) {
      inv.err << "ERROR INTERNAL: " << json.status().message() << "\n";
      return kExitFailure;
    }
    inv.out << *json;
    return kExitOk;
  }
  const Reflection* r = response.GetReflection();
  const FieldDescriptor* field =
      c.show == nullptr ? nullptr : response.GetDescriptor()->FindFieldByName(c.show);
  if (field != nullptr && field->is_repeated()) {
    const int n = r->FieldSize(response, field);
    if (field->cpp_type() != FieldDescriptor::CPPTYPE_MESSAGE) {
      for (int i = 0; i < n; ++i) inv.out << FormatValue(response, field, i) << "\n";
    } else {
      std::vector<std::pair<std::string, std::string>> columns = ParseColumns(c.columns);
      std::vector<std::vector<std::string>> rows(1);
      for (const auto& column : columns) rows[0].push_back(column.second);
      for (int i = 0; i < n; ++i) {
        const Message& item = r->GetRepeatedMessage(response, field, i);
        std::vector<std::string>& row = rows.emplace_back();
        for (const auto& column : columns) {
          const FieldDescriptor* f = item.GetDescriptor()->FindFieldByName(column.first);
          row.push_back(f == nullptr ? "?" : FormatField(item, f));
        }
      }
      PrintColumns(inv.out, rows);
    }
  } else {
    std::vector<std::vector<std::string>> rows;
    Flatten(field == nullptr ? response : r->GetMessage(response, field), "", &rows);
    if (rows.empty()) {
      inv.out << (c.done != nullptr ? c.done : "OK") << "\n";
    } else {
      PrintColumns(inv.out, rows);
    }
  }
  if (c.note != nullptr) inv.err << c.note << "\n";
  return kExitOk;
}

// ---- Calls -------------------------------------------------------------------

std::string FullName(const MethodDescriptor* m) {
  return absl::StrCat("/", m->service()->full_name(), "/", m->name());
}

const FieldDescriptor* PageField(const Descriptor* d, absl::string_view type) {
  const FieldDescriptor* f = d->FindFieldByName("page");
  return f != nullptr && IsType(f, type) ? f : nullptr;
}

grpc::Status Invocation::Call(const MethodDescriptor* m, Message& req, Message* response,
                              bool retry_unauthenticated) {
  const FieldDescriptor* page_in = PageField(m->input_type(), "crm.common.v1.PageRequest");
  const FieldDescriptor* page_out = PageField(m->output_type(), "crm.common.v1.PageResponse");
  response->Clear();
  for (int pages = 1;; ++pages) {
    std::string reply;
    grpc::Status status =
        caller->Call(channel, FullName(m), req.SerializeAsString(), &reply, retry_unauthenticated);
    if (!status.ok()) return status;
    std::unique_ptr<Message> page = registry.NewMessage(m->output_type());
    if (!page->ParseFromString(reply)) {
      return grpc::Status(grpc::StatusCode::INTERNAL,
                          absl::StrCat("the response is not a ", m->output_type()->full_name()));
    }
    response->MergeFrom(*page);
    if (page_in == nullptr || page_out == nullptr || pages >= kMaxPages) break;
    const Message& page_response = page->GetReflection()->GetMessage(*page, page_out);
    const std::string next = page_response.GetReflection()->GetString(
        page_response, page_response.GetDescriptor()->FindFieldByName("next_page_token"));
    if (next.empty()) break;
    Message* page_request = req.GetReflection()->MutableMessage(&req, page_in);
    page_request->GetReflection()->SetString(
        page_request, page_request->GetDescriptor()->FindFieldByName("page_token"), next);
  }
  if (page_out != nullptr) response->GetReflection()->ClearField(response, page_out);
  return grpc::Status::OK;
}

std::string Invocation::Topic() const { return command.words[0]; }

const MethodDescriptor* IdentityMethod(const ProtoRegistry& registry, const char* rpc) {
  absl::StatusOr<const MethodDescriptor*> m =
      registry.FindMethod(absl::StrCat(kIdentityService, "/", rpc), "");
  return m.ok() ? *m : nullptr;
}

// ---- Special commands --------------------------------------------------------

int ReadPassword(Invocation& inv, const char* prompt, const char* what, std::string* password) {
  absl::StatusOr<std::string> line = ReadSecret(inv.in, inv.err, inv.terminal, prompt, what);
  if (!line.ok()) return UsageError(inv.err, line.status().message(), inv.Topic());
  *password = *std::move(line);
  return kContinue;
}

// A new password: on a terminal typed twice.
int ReadNewPassword(Invocation& inv, const char* prompt, const char* what, std::string* password) {
  if (int rc = ReadPassword(inv, prompt, what, password); rc != kContinue) return rc;
  if (!inv.terminal) return kContinue;
  std::string again;
  if (int rc = ReadPassword(inv, "Again: ", what, &again); rc != kContinue) return rc;
  if (again != *password) {
    return UsageError(inv.err, absl::StrCat(what, ": the two entries differ"), inv.Topic());
  }
  return kContinue;
}

// Field access by name for the hand-written commands. A field the proto
// lacks (an older identity.proto) reads as its default.
void SetString(Message* m, const char* field, const std::string& value) {
  m->GetReflection()->SetString(m, m->GetDescriptor()->FindFieldByName(field), value);
}
std::string GetString(const Message& m, const char* field) {
  const FieldDescriptor* f = m.GetDescriptor()->FindFieldByName(field);
  return f == nullptr ? "" : m.GetReflection()->GetString(m, f);
}
const Message& GetMessage(const Message& m, const char* field) {
  return m.GetReflection()->GetMessage(m, m.GetDescriptor()->FindFieldByName(field));
}
bool GetBool(const Message& m, const char* field) {
  const FieldDescriptor* f = m.GetDescriptor()->FindFieldByName(field);
  return f != nullptr && m.GetReflection()->GetBool(m, f);
}
int32_t GetInt32(const Message& m, const char* field) {
  const FieldDescriptor* f = m.GetDescriptor()->FindFieldByName(field);
  return f == nullptr ? 0 : m.GetReflection()->GetInt32(m, f);
}

int ReadInitialPassword(Invocation& inv) {
  std::string password;
  if (int rc =
          ReadNewPassword(inv, "Initial password of the new user: ", "initial password", &password);
      rc != kContinue) {
    return rc;
  }
  SetString(inv.request.get(), "initial_password", password);
  return kContinue;
}

// grant add --for D: not_after = (not_before or now) + D.
int GrantWindow(Invocation& inv) {
  auto it = inv.flags.find("for");
  if (it == inv.flags.end()) return kContinue;
  if (inv.flags.count("not-after") > 0) {
    return UsageError(inv.err, "--for: give either --for or --not-after", inv.Topic());
  }
  absl::Duration d;
  if (absl::Status s = ParseDurationArg(it->second[0], &d); !s.ok()) {
    return UsageError(inv.err, absl::StrCat("--for: ", s.message()), inv.Topic());
  }
  Message* request = inv.request.get();
  const Descriptor* desc = request->GetDescriptor();
  const FieldDescriptor* not_before = desc->FindFieldByName("not_before");
  const absl::Time start = request->GetReflection()->HasField(*request, not_before)
                               ? GetTime(request->GetReflection()->GetMessage(*request, not_before))
                               : absl::Now();
  SetTime(request->GetReflection()->MutableMessage(request, desc->FindFieldByName("not_after")),
          start + d);
  return kContinue;
}

// grant extend --by D: new_not_after = the grant's not_after + D.
int ExtendBy(Invocation& inv) {
  const bool until = inv.flags.count("until") > 0;
  auto by = inv.flags.find("by");
  if (until == (by != inv.flags.end())) {
    return UsageError(inv.err, "--until or --by: give one of them", inv.Topic());
  }
  if (until) return kContinue;
  absl::Duration d;
  if (absl::Status s = ParseDurationArg(by->second[0], &d); !s.ok()) {
    return UsageError(inv.err, absl::StrCat("--by: ", s.message()), inv.Topic());
  }
  // No GetGrant: the grant is looked up among all of them.
  const MethodDescriptor* list = IdentityMethod(inv.registry, "ListGrants");
  if (list == nullptr) return UsageError(inv.err, "ListGrants is unknown", inv.Topic());
  std::unique_ptr<Message> request = inv.registry.NewMessage(list->input_type());
  request->GetReflection()->SetBool(
      request.get(), request->GetDescriptor()->FindFieldByName("include_inactive"), true);
  std::unique_ptr<Message> response = inv.registry.NewMessage(list->output_type());
  if (grpc::Status s = inv.Call(list, *request, response.get()); !s.ok()) return RpcError(inv, s);
  const std::string grant_id = GetString(*inv.request, "grant_id");
  const FieldDescriptor* grants = response->GetDescriptor()->FindFieldByName("grants");
  for (int i = 0; i < response->GetReflection()->FieldSize(*response, grants); ++i) {
    const Message& grant = response->GetReflection()->GetRepeatedMessage(*response, grants, i);
    if (GetString(grant, "grant_id") != grant_id) continue;
    const FieldDescriptor* not_after = grant.GetDescriptor()->FindFieldByName("not_after");
    if (!grant.GetReflection()->HasField(grant, not_after)) {
      return RpcError(inv, grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                                        "the grant is open-ended: it has no end to move"));
    }
    Message* request_end = inv.request->GetReflection()->MutableMessage(
        inv.request.get(), inv.request->GetDescriptor()->FindFieldByName("new_not_after"));
    SetTime(request_end, GetTime(grant.GetReflection()->GetMessage(grant, not_after)) + d);
    return kContinue;
  }
  return RpcError(inv, grpc::Status(grpc::StatusCode::NOT_FOUND, "grant not found"));
}

int StoreTokens(Invocation& inv, const Message& tokens, const std::string& user_id) {
  Session session{.access_token = GetString(tokens, "access_token"),
                  .refresh_token = GetString(tokens, "refresh_token"),
                  .user_id = user_id};
  if (session.access_token.empty() || session.refresh_token.empty()) {
    return RpcError(inv, grpc::Status(grpc::StatusCode::INTERNAL, "no tokens in the response"));
  }
  if (absl::Status s = SaveSession(inv.caller->session_path(), session); !s.ok()) {
    inv.err << "crmctl: " << s.message() << "\n";
    return kExitFailure;
  }
  return kContinue;
}

int RunLogin(Invocation& inv) {
  if (inv.caller->session_path().empty()) {
    return UsageError(inv.err, "nowhere to keep the session: set CRMCTL_SESSION_FILE or HOME",
                      inv.Topic());
  }
  std::string password;
  if (int rc = ReadPassword(inv, "Password: ", "password", &password); rc != kContinue) return rc;
  SetString(inv.request.get(), "password", password);
  // Login takes no token: it is how one gets one.
  std::string reply;
  grpc::Status status =
      UnaryCall(inv.channel, FullName(inv.method), inv.request->SerializeAsString(),
                inv.options.headers, inv.options.timeout, &reply);
  if (!status.ok()) {
    RpcError(inv, status);
    if (status.error_code() == grpc::StatusCode::FAILED_PRECONDITION &&
        inv.flags.count("totp") == 0) {
      inv.err << "crmctl: add --totp CODE (a code of your authenticator app, or a recovery code)\n";
    }
    return kExitFailure;
  }
  std::unique_ptr<Message> response = inv.registry.NewMessage(inv.method->output_type());
  if (!response->ParseFromString(reply)) {
    return RpcError(inv, grpc::Status(grpc::StatusCode::INTERNAL, "malformed LoginResponse"));
  }
  const std::string user_id = GetString(*response, "user_id");
  if (int rc = StoreTokens(inv, GetMessage(*response, "tokens"), user_id); rc != kContinue) {
    return rc;
  }
  inv.out << "Logged in (user " << user_id << "); session stored in " << inv.caller->session_path()
          << "\n";
  if (GetBool(*response, "password_change_required")) {
    inv.out << "Your password must be changed first: run 'crmctl passwd'.\n";
  }
  if (GetBool(*response, "mfa_enrollment_required")) {
    inv.out << "A role of yours requires a second factor: run 'crmctl totp enroll', then "
               "'crmctl totp confirm CODE'.\n";
  }
  if (int32_t days = GetInt32(*response, "password_expires_in_days"); days > 0) {
    inv.out << "Your password expires in " << days << " day(s): 'crmctl passwd' changes it.\n";
  }
  return kExitOk;
}

bool ExplicitAuthorization(const Options& options) {
  return std::any_of(options.headers.begin(), options.headers.end(),
                     [](const auto& h) { return h.first == "authorization"; });
}

int RunPasswd(Invocation& inv) {
  if (!inv.caller->uses_session() && !ExplicitAuthorization(inv.options)) {
    inv.err << "crmctl: not logged in: run 'crmctl login <username>' first\n";
    return kExitFailure;
  }
  std::string current;
  std::string next;
  if (int rc = ReadPassword(inv, "Current password: ", "current password", &current);
      rc != kContinue) {
    return rc;
  }
  if (int rc = ReadNewPassword(inv, "New password: ", "new password", &next); rc != kContinue) {
    return rc;
  }
  SetString(inv.request.get(), "current_password", current);
  SetString(inv.request.get(), "new_password", next);
  std::unique_ptr<Message> response = inv.registry.NewMessage(inv.method->output_type());
  // No retry on UNAUTHENTICATED: that is also the answer to a wrong current
  // password, and each attempt counts towards the lockout.
  if (grpc::Status s = inv.Call(inv.method, *inv.request, response.get(), false); !s.ok()) {
    return RpcError(inv, s);
  }
  if (inv.caller->uses_session()) {
    if (int rc = StoreTokens(inv, GetMessage(*response, "tokens"), inv.caller->session()->user_id);
        rc != kContinue) {
      return rc;
    }
  }
  inv.out << "Password changed; your other sessions have ended.\n";
  return kExitOk;
}

int RunLogout(Invocation& inv) {
  if (!inv.caller->uses_session() && !ExplicitAuthorization(inv.options)) {
    inv.out << "Not logged in.\n";
    return kExitOk;
  }
  std::unique_ptr<Message> response = inv.registry.NewMessage(inv.method->output_type());
  grpc::Status status = inv.Call(inv.method, *inv.request, response.get());
  // UNAUTHENTICATED: the session had ended already; the file is useless.
  // Any other error keeps it, so that logout can be tried again.
  if (!status.ok() && status.error_code() != grpc::StatusCode::UNAUTHENTICATED) {
    return RpcError(inv, status);
  }
  if (inv.caller->uses_session()) {
    if (absl::Status s = RemoveSession(inv.caller->session_path()); !s.ok()) {
      inv.err << "crmctl: " << s.message() << "\n";
      return kExitFailure;
    }
  }
  inv.out << (status.ok() ? "Logged out.\n" : "The session had already ended.\n");
  return kExitOk;
}

// ---- The table ---------------------------------------------------------------

constexpr char kGrantColumns[] =
    "grant_id:ID user_id:USER role state not_before:FROM not_after:UNTIL justification";

const std::vector<Command>& Commands() {
  static const auto* commands = new std::vector<Command>{
      {.words = {"login"},
       .rpc = "Login",
       .args = {Positional("USERNAME", "username"), Flag("totp", "totp_code", "CODE")},
       .summary = "log in and keep the session for the next commands; the password is read "
                  "from the terminal (or a line of stdin, --password-stdin)",
       .run = RunLogin},
      {.words = {"logout"},
       .rpc = "Logout",
       .summary = "end the session and delete the session file",
       .run = RunLogout},
      {.words = {"passwd"},
       .rpc = "ChangePassword",
       .summary = "change your password: current, then new (twice on a terminal; "
                  "--password-stdin: two lines)",
       .run = RunPasswd},

      {.words = {"user", "list"},
       .rpc = "ListUsers",
       .args = {Flag("status", "status", "active|disabled"),
                Flag("kind", "kind", "person|service-account"), Flag("role", "role", "ROLE"),
                Flag("team", "team_id", "TEAM_ID")},
       .summary = "users, oldest first",
       .show = "users",
       .columns = "user_id:ID username display_name:NAME email status kind "
                  "locked_until:LOCKED_UNTIL totp_enabled:MFA last_login_at:LAST_LOGIN"},
      {.words = {"user", "get"},
       .rpc = "GetUser",
       .args = {Positional("USER_ID", "user_id")},
       .summary = "one user",
       .show = "user"},
      {.words = {"user", "create"},
       .rpc = "CreateUser",
       .args = {Positional("USERNAME", "username"), RequiredFlag("email", "email", "EMAIL"),
                RequiredFlag("name", "display_name", "\"DISPLAY NAME\""),
                Repeated("team", "team_ids", "TEAM_ID")},
       .summary = "create a person; the initial password is prompted for (twice) or read "
                  "from stdin (--password-stdin) and must be changed at first login",
       .show = "user",
       .prepare = ReadInitialPassword},
      {.words = {"user", "disable"},
       .rpc = "DisableUser",
       .args = {Positional("USER_ID", "user_id"), Flag("reason", "reason", "REASON")},
       .summary = "disable a user or service account and end its sessions",
       .show = "user"},
      {.words = {"user", "enable"},
       .rpc = "EnableUser",
       .args = {Positional("USER_ID", "user_id")},
       .summary = "enable a disabled user again",
       .show = "user"},
      {.words = {"user", "delete"},
       .rpc = "DeleteUser",
       .args = {Positional("USER_ID", "user_id")},
       .summary = "delete a user (its login history stays under the retention policy)",
       .done = "Deleted."},
      {.words = {"user", "unlock"},
       .rpc = "UnlockUser",
       .args = {Positional("USER_ID", "user_id")},
       .summary = "clear a lockout and the failure counters",
       .show = "user"},
      {.words = {"user", "require-password-change"},
       .rpc = "RequirePasswordChange",
       .args = {Positional("USER_ID", "user_id")},
       .summary = "force a password change at the next login",
       .show = "user"},
      {.words = {"user", "sessions"},
       .rpc = "ListSessions",
       .args = {Positional("USER_ID", "user_id"), Switch("include-revoked", "include_revoked")},
       .summary = "a user's sessions, newest first",
       .show = "sessions",
       .columns = "session_id:SESSION created_at:CREATED last_used_at:LAST_USED "
                  "expires_at:EXPIRES revoked_at:REVOKED source_address:SOURCE current"},
      {.words = {"user", "revoke-sessions"},
       .rpc = "RevokeSession",
       .args = {Positional("USER_ID", "user_id"), OptionalPositional("SESSION_ID", "session_id")},
       .summary = "revoke one session of a user, or all of them"},
      {.words = {"user", "login-history"},
       .rpc = "ListLoginHistory",
       .args = {Positional("USER_ID", "user_id"), Flag("since", "range.start", "TIME"),
                Flag("until", "range.end", "TIME")},
       .summary = "login attempts of a user, newest first (TIME: 2026-11-01T00:00:00Z)",
       .show = "attempts",
       .columns = "at result source_address:SOURCE user_agent"},

      {.words = {"role", "list"},
       .rpc = "ListRoles",
       .summary = "built-in and custom roles",
       .show = "roles",
       .columns = "name built_in requires_mfa:MFA permissions description"},
      {.words = {"role", "create"},
       .rpc = "CreateRole",
       .args = {Positional("NAME", "name"),
                Repeated("permission", "permissions", "PERMISSION", /*required=*/true),
                Switch("require-mfa", "requires_mfa"), Flag("description", "description", "TEXT")},
       .summary = "create a custom role bundling permissions",
       .show = "role"},
      {.words = {"role", "require-mfa"},
       .rpc = "SetRoleRequiresMfa",
       .args = {Positional("ROLE", "role"), Positional("on|off", "requires_mfa")},
       .summary = "require a second factor of a role's holders, or stop requiring it",
       .show = "role"},

      {.words = {"grant", "add"},
       .rpc = "GrantRole",
       .args = {Positional("USER_ID", "user_id"), Positional("ROLE", "role"),
                RequiredFlag("justification", "justification", "TEXT"),
                Flag("not-before", "not_before", "TIME"), Flag("not-after", "not_after", "TIME"),
                Flag("for", nullptr, "DURATION")},
       .summary = "grant a role, optionally for a window; --for 8h ends it 8h after its start",
       .show = "grant",
       .prepare = GrantWindow},
      {.words = {"grant", "list"},
       .rpc = "ListGrants",
       .args = {OptionalPositional("USER_ID", "user_id"), Switch("all", "include_inactive")},
       .summary = "grants in force, of everyone or one user; --all: also pending, ended and "
                  "revoked ones",
       .show = "grants",
       .columns = kGrantColumns},
      {.words = {"grant", "revoke"},
       .rpc = "RevokeGrant",
       .args = {Positional("GRANT_ID", "grant_id"), Flag("reason", "reason", "REASON")},
       .summary = "revoke a grant now",
       .show = "grant"},
      {.words = {"grant", "extend"},
       .rpc = "ExtendGrant",
       .args = {Positional("GRANT_ID", "grant_id"),
                RequiredFlag("justification", "justification", "TEXT"),
                Flag("until", "new_not_after", "TIME"), Flag("by", nullptr, "DURATION")},
       .summary = "move the end of a grant to --until TIME, or --by DURATION later",
       .show = "grant",
       .prepare = ExtendBy},
      {.words = {"grant", "expiring"},
       .rpc = "ListExpiringGrants",
       .args = {{Arg::kFlag, "within", "within", "DURATION", false, "7d"}},
       .summary = "grants in force that end within DURATION (default 7d), soonest first",
       .show = "grants",
       .columns = kGrantColumns},

      {.words = {"team", "create"},
       .rpc = "CreateTeam",
       .args = {Positional("NAME", "name"), Flag("description", "description", "TEXT")},
       .summary = "create a team",
       .show = "team"},
      {.words = {"team", "list"},
       .rpc = "ListTeams",
       .args = {Flag("member", "member_id", "USER_ID")},
       .summary = "teams by name (--member: those of a user)",
       .show = "teams",
       .columns = "team_id:ID name member_count:MEMBERS description"},
      {.words = {"team", "add-member"},
       .rpc = "AddTeamMember",
       .args = {Positional("TEAM_ID", "team_id"), Positional("USER_ID", "user_id")},
       .summary = "add a user to a team",
       .done = "Added."},
      {.words = {"team", "remove-member"},
       .rpc = "RemoveTeamMember",
       .args = {Positional("TEAM_ID", "team_id"), Positional("USER_ID", "user_id")},
       .summary = "remove a user from a team",
       .done = "Removed."},

      {.words = {"totp", "enroll"},
       .rpc = "EnrollTotp",
       .summary = "start TOTP enrolment: prints the otpauth URI and the secret",
       .note = "Add it to an authenticator app, then run 'crmctl totp confirm CODE'."},
      {.words = {"totp", "confirm"},
       .rpc = "ConfirmTotp",
       .args = {Positional("CODE", "code")},
       .summary = "activate TOTP with a current code; prints the recovery codes",
       .show = "recovery_codes",
       .note = "These recovery codes are shown only now: store them safely."},
      {.words = {"totp", "disable"},
       .rpc = "DisableTotp",
       .args = {Flag("user", "user_id", "USER_ID"), Flag("code", "code", "CODE")},
       .summary = "turn TOTP off: your own with --code (TOTP or recovery code), or another "
                  "user's with --user",
       .done = "TOTP disabled."},

      {.words = {"service-account", "create"},
       .rpc = "CreateServiceAccount",
       .args = {Positional("NAME", "name"),
                RequiredFlag("spiffe-id", "spiffe_id", "spiffe://crm.local/NAME"),
                Flag("name", "display_name", "\"DISPLAY NAME\"")},
       .summary = "create a service account bound to a certificate identity",
       .show = "account"},
      {.words = {"keys"},
       .rpc = "GetSigningKeys",
       .summary = "the keys access tokens are verified with",
       .show = "keys",
       .columns = "kid algorithm created_at:CREATED retired_at:RETIRED"},
  };
  return *commands;
}

std::string Synopsis(const Command& c) {
  std::string s = absl::StrCat("crmctl ", absl::StrJoin(c.words, " "));
  for (const Arg& a : c.args) {
    switch (a.kind) {
      case Arg::kPositional:
        absl::StrAppend(&s, " ", a.name);
        break;
      case Arg::kOptionalPositional:
        absl::StrAppend(&s, " [", a.name, "]");
        break;
      case Arg::kFlag:
        absl::StrAppend(&s, a.required ? " " : " [", "--", a.name, " ", a.meta,
                        a.required ? "" : "]");
        break;
      case Arg::kRepeatedFlag:
        absl::StrAppend(&s, a.required ? " " : " [", "--", a.name, " ", a.meta,
                        a.required ? "" : "]", "...");
        break;
      case Arg::kSwitch:
        absl::StrAppend(&s, " [--", a.name, "]");
        break;
    }
  }
  return s;
}

std::vector<std::string> SubcommandsOf(absl::string_view group) {
  std::vector<std::string> words;
  for (const Command& c : Commands()) {
    if (c.words[0] == group && c.words.size() > 1) words.push_back(c.words[1]);
  }
  return words;
}

// Fills the request from the positionals and command flags; kContinue or
// the exit code of a usage error.
int ApplyArgs(Invocation& inv, const std::vector<std::string>& positionals) {
  const Command& c = inv.command;
  const std::string topic = inv.Topic();
  for (const auto& [name, value] : inv.options.command_flags) {
    auto arg = std::find_if(c.args.begin(), c.args.end(),
                            [&](const Arg& a) { return a.kind >= Arg::kFlag && name == a.name; });
    if (arg == c.args.end()) {
      return UsageError(
          inv.err,
          absl::StrCat("--", name, ": not a flag of 'crmctl ", absl::StrJoin(c.words, " "), "'"),
          topic);
    }
    std::vector<std::string>& values = inv.flags[name];
    if (!values.empty() && arg->kind != Arg::kRepeatedFlag) {
      return UsageError(inv.err, absl::StrCat("--", name, ": given twice"), topic);
    }
    values.push_back(value);
  }
  size_t next = 0;
  for (const Arg& a : c.args) {
    std::vector<std::string> values;
    std::string label = absl::StrCat("--", a.name);
    if (a.kind == Arg::kPositional || a.kind == Arg::kOptionalPositional) {
      label = a.name;
      if (next < positionals.size()) {
        values.push_back(positionals[next++]);
      } else if (a.kind == Arg::kPositional) {
        return UsageError(inv.err, absl::StrCat("missing ", a.name), topic);
      }
    } else if (auto it = inv.flags.find(a.name); it != inv.flags.end()) {
      values = it->second;
    } else if (a.required) {
      return UsageError(inv.err, absl::StrCat(label, ": required"), topic);
    } else if (a.default_value != nullptr) {
      values.push_back(a.default_value);
    }
    if (a.field == nullptr) continue;
    for (const std::string& value : values) {
      absl::Status s = a.kind == Arg::kSwitch ? SetField(inv.request.get(), a.field, "on")
                                              : SetField(inv.request.get(), a.field, value);
      if (!s.ok()) {
        return UsageError(inv.err, absl::StrCat(label, ": ", s.message()), topic);
      }
    }
  }
  if (next < positionals.size()) {
    return UsageError(inv.err, absl::StrCat("unexpected argument \"", positionals[next], "\""),
                      topic);
  }
  return kContinue;
}

}  // namespace

bool IsIdentityCommand(absl::string_view command) {
  for (const Command& c : Commands()) {
    if (c.words[0] == command) return true;
  }
  return false;
}

std::optional<bool> IdentityFlagTakesValue(absl::string_view flag) {
  for (const Command& c : Commands()) {
    for (const Arg& a : c.args) {
      if (a.kind >= Arg::kFlag && flag == a.name) return a.kind != Arg::kSwitch;
    }
  }
  return std::nullopt;
}

std::string IdentityUsage(absl::string_view command) {
  std::string text;
  for (const Command& c : Commands()) {
    if (c.words[0] != command) continue;
    absl::StrAppend(&text, "  ", Synopsis(c), "\n      ", c.summary, "\n");
  }
  if (text.empty()) return "";
  return absl::StrCat(
      "Identity administration (crm.identity.v1.Identity; see docs/crmctl.md):\n\n", text,
      "\nCalls carry the session of 'crmctl login' (renewed when it expires), unless\n"
      "--header authorization=... is given. Output: a table or \"field value\" lines;\n"
      "--json prints the response as JSON. Lists are fetched page by page, all pages.\n"
      "Other flags: --identity H:P (or --addr/--server-identity), --timeout, --cert --key --ca\n"
      "(see crmctl --help). Session file: $CRMCTL_SESSION_FILE, else\n"
      "$XDG_CONFIG_HOME/crmctl/session, else ~/.config/crmctl/session.\n");
}

rpc::ChannelConfig IdentityChannelConfig(const Options& options, bool use_addr) {
  rpc::ChannelConfig config;
  config.tls.cert_file = options.cert_file;
  config.tls.key_file = options.key_file;
  config.tls.ca_file = options.ca_file;
  if (use_addr && !options.addr.empty()) {
    config.target = options.addr;
    config.expected_server = options.server_identity;
  } else {
    config.target = options.addresses.at("identity");
    config.expected_server = "identity";
  }
  if (use_addr && !options.server_identity.empty()) {
    config.expected_server = options.server_identity;
  }
  return config;
}

absl::StatusOr<std::unique_ptr<SessionCaller>> NewSessionCaller(
    const Options& options, const std::map<std::string, std::string>& env,
    rpc::ChannelConfig identity, const ProtoRegistry& registry, bool load) {
  identity.max_attempts = 1;
  absl::StatusOr<std::shared_ptr<grpc::Channel>> channel = rpc::MakeChannel(identity);
  if (!channel.ok()) return channel.status();
  auto caller = std::make_unique<SessionCaller>(options.headers, SessionFilePath(env), *channel,
                                                registry, options.timeout);
  if (load) {
    if (absl::Status s = caller->Init(); !s.ok()) return s;
  }
  return caller;
}

int RunIdentityCommand(const Options& options, const std::map<std::string, std::string>& env,
                       std::istream& in, std::ostream& out, std::ostream& err) {
  std::vector<std::string> line = {options.command};
  line.insert(line.end(), options.args.begin(), options.args.end());
  const Command* command = nullptr;
  for (const Command& c : Commands()) {
    if (c.words.size() <= line.size() && std::equal(c.words.begin(), c.words.end(), line.begin())) {
      command = &c;
    }
  }
  if (command == nullptr) {
    const std::string subcommands = absl::StrJoin(SubcommandsOf(options.command), ", ");
    return UsageError(err,
                      line.size() < 2
                          ? absl::StrCat(options.command, " needs a command: ", subcommands)
                          : absl::StrCat("unknown command \"", options.command, " ", line[1],
                                         "\"; ", options.command, " commands: ", subcommands),
                      options.command);
  }
  absl::StatusOr<std::unique_ptr<ProtoRegistry>> registry = ProtoRegistry::Embedded();
  if (!registry.ok()) {
    err << "crmctl: " << registry.status().message() << "\n";
    return kExitFailure;
  }
  Invocation inv{.command = *command,
                 .options = options,
                 .in = in,
                 .out = out,
                 .err = err,
                 .registry = **registry,
                 .method = IdentityMethod(**registry, command->rpc)};
  if (inv.method == nullptr) {
    err << "crmctl: this build does not know " << kIdentityService << "/" << command->rpc << "\n";
    return kExitFailure;
  }
  inv.request = inv.registry.NewMessage(inv.method->input_type());
  if (int rc = ApplyArgs(
          inv, std::vector<std::string>(line.begin() + command->words.size(), line.end()));
      rc != kContinue) {
    return rc;
  }

  const rpc::ChannelConfig config = IdentityChannelConfig(options, /*use_addr=*/true);
  if (absl::Status s = rpc::CheckTlsFiles(config.tls, "--"); !s.ok()) {
    err << "crmctl: " << s.message() << "\n"
        << "The operator certificate comes from --cert/--key/--ca, else $CRM_PKI_DIR, else\n"
        << "<repo>/.run/pki (made by tools/dev up).\n";
    return kExitUsage;
  }
  absl::StatusOr<std::shared_ptr<grpc::Channel>> channel = rpc::MakeChannel(config);
  if (!channel.ok()) return UsageError(err, channel.status().message(), inv.Topic());
  inv.channel = *channel;
  absl::StatusOr<std::unique_ptr<SessionCaller>> caller =
      NewSessionCaller(options, env, config, inv.registry, /*load=*/command->run != RunLogin);
  if (!caller.ok()) return UsageError(err, caller.status().message(), inv.Topic());
  inv.caller = *std::move(caller);
  inv.terminal = !options.password_stdin && IsTerminal(in);

  if (command->prepare != nullptr) {
    if (int rc = command->prepare(inv); rc != kContinue) return rc;
  }
  if (command->run != nullptr) return command->run(inv);
  std::unique_ptr<Message> response = inv.registry.NewMessage(inv.method->output_type());
  if (grpc::Status s = inv.Call(inv.method, *inv.request, response.get()); !s.ok()) {
    return RpcError(inv, s);
  }
  return PrintResponse(inv, *response);
}

absl::Status CheckIdentityCommands(const ProtoRegistry& registry) {
  for (const Command& c : Commands()) {
    const std::string name = absl::StrJoin(c.words, " ");
    const MethodDescriptor* method = IdentityMethod(registry, c.rpc);
    if (method == nullptr) return absl::InternalError(absl::StrCat(name, ": no method ", c.rpc));
    std::unique_ptr<Message> request = registry.NewMessage(method->input_type());
    for (const Arg& a : c.args) {
      if (a.field == nullptr) continue;
      const FieldDescriptor* f = nullptr;
      absl::StatusOr<Message*> walked = Walk(request.get(), a.field, &f);
      if (!walked.ok())
        return absl::InternalError(absl::StrCat(name, ": ", walked.status().message()));
      if (f->is_repeated() != (a.kind == Arg::kRepeatedFlag) ||
          (a.kind == Arg::kSwitch && f->cpp_type() != FieldDescriptor::CPPTYPE_BOOL)) {
        return absl::InternalError(
            absl::StrCat(name, ": ", a.name, " does not fit ", f->full_name()));
      }
    }
    const Descriptor* response = method->output_type();
    const FieldDescriptor* shown = c.show == nullptr ? nullptr : response->FindFieldByName(c.show);
    if (c.show != nullptr && shown == nullptr) {
      return absl::InternalError(
          absl::StrCat(name, ": ", response->full_name(), " has no ", c.show));
    }
    if (c.columns != nullptr) {
      if (shown == nullptr || !shown->is_repeated() || shown->message_type() == nullptr) {
        return absl::InternalError(absl::StrCat(name, ": columns need a repeated message"));
      }
      for (const auto& column : ParseColumns(c.columns)) {
        if (shown->message_type()->FindFieldByName(column.first) == nullptr) {
          return absl::InternalError(absl::StrCat(name, ": ", shown->message_type()->full_name(),
                                                  " has no ", column.first));
        }
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace crm::crmctl
