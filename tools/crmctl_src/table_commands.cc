#include "tools/crmctl_src/table_commands.h"

#include <grpcpp/client_context.h>
#include <grpcpp/impl/rpc_method.h>
#include <grpcpp/support/byte_buffer.h>
#include <grpcpp/support/proto_buffer_reader.h>
#include <grpcpp/support/sync_stream.h>

#include <algorithm>
#include <functional>
#include <istream>
#include <ostream>
#include <set>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "libs/rpc/tls_files.h"
#include "tools/crmctl_src/client.h"
#include "tools/crmctl_src/consent_commands.h"
#include "tools/crmctl_src/contacts_commands.h"
#include "tools/crmctl_src/crmctl.h"
#include "tools/crmctl_src/erasure_commands.h"
#include "tools/crmctl_src/identity_commands.h"
#include "tools/crmctl_src/mailing_commands.h"
#include "tools/crmctl_src/terminal.h"

namespace crm::crmctl {

using google::protobuf::Descriptor;
using google::protobuf::EnumDescriptor;
using google::protobuf::EnumValueDescriptor;
using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using google::protobuf::MethodDescriptor;
using google::protobuf::Reflection;

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
Arg Repeated(const char* name, const char* field, const char* meta, bool required) {
  return {Arg::kRepeatedFlag, name, field, meta, required};
}
Arg Switch(const char* name, const char* field) { return {Arg::kSwitch, name, field}; }
Arg Const(const char* field, const char* value) {
  return {Arg::kConst, "", field, "", false, value};
}

// ---- Errors ------------------------------------------------------------------

int TableUsageError(std::ostream& err, absl::string_view message, absl::string_view topic) {
  err << "crmctl: " << message << "\nRun 'crmctl help " << topic << "' for usage.\n";
  return kExitUsage;
}

int TableRpcError(Invocation& inv, const grpc::Status& status) {
  inv.err << "ERROR " << CodeName(status.error_code()) << ": " << status.error_message() << "\n";
  if (inv.caller != nullptr) {
    if (std::string hint = inv.caller->Hint(status); !hint.empty()) {
      inv.err << "crmctl: " << hint << "\n";
    }
  }
  return kExitFailure;
}

namespace {

constexpr int kMaxPages = 1000;  // Of a list, at the server's page size.

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

// The message holding the last part of `path` ("range.start": the range,
// created if unset; "person.emails.address": a new element of emails); the
// field itself in `*field`. `*through_repeated`: whether a part before the
// last is a repeated message.
absl::StatusOr<Message*> Walk(Message* m, absl::string_view path, const FieldDescriptor** field,
                              bool* through_repeated = nullptr) {
  std::vector<std::string> parts = absl::StrSplit(path, '.');
  if (through_repeated != nullptr) *through_repeated = false;
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
    if (f->cpp_type() != FieldDescriptor::CPPTYPE_MESSAGE) {
      return absl::InternalError(absl::StrCat(f->full_name(), " is not a message"));
    }
    if (f->is_repeated()) {
      if (through_repeated != nullptr) *through_repeated = true;
      m = m->GetReflection()->AddMessage(m, f);
    } else {
      m = m->GetReflection()->MutableMessage(m, f);
    }
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
    case FieldDescriptor::CPPTYPE_INT64: {
      int64_t value = 0;
      if (!absl::SimpleAtoi(text, &value)) {
        return absl::InvalidArgumentError(absl::StrCat("expected a number, got \"", text, "\""));
      }
      repeated ? r->AddInt64(m, f, value) : r->SetInt64(m, f, value);
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
      if (f->is_map()) {  // "key=value".
        const Descriptor* entry = sub.GetDescriptor();
        return absl::StrCat(FormatValue(sub, entry->map_key(), -1), "=",
                            FormatValue(sub, entry->map_value(), -1));
      }
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
  // A map's order is not defined: by key.
  if (f->is_map()) std::sort(values.begin(), values.end());
  return absl::StrJoin(values, ",");
}

bool IsPlainMessage(const FieldDescriptor* f) {
  return f->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE && !IsTimestamp(f) && !IsDuration(f);
}

// "field value" rows of every field of `m`, nested messages flattened
// ("user.username"), elements of repeated messages by index
// ("emails[0].address").
void Flatten(const Message& m, const std::string& prefix,
             std::vector<std::vector<std::string>>* rows) {
  const Descriptor* d = m.GetDescriptor();
  const Reflection* r = m.GetReflection();
  for (int i = 0; i < d->field_count(); ++i) {
    const FieldDescriptor* f = d->field(i);
    if (IsPlainMessage(f) && !f->is_repeated()) {
      Flatten(r->GetMessage(m, f), absl::StrCat(prefix, f->name(), "."), rows);
    } else if (IsPlainMessage(f) && r->FieldSize(m, f) > 0) {
      for (int j = 0; j < r->FieldSize(m, f); ++j) {
        Flatten(r->GetRepeatedMessage(m, f, j), absl::StrCat(prefix, f->name(), "[", j, "]."),
                rows);
      }
    } else {
      rows->push_back({absl::StrCat(prefix, f->name()), FormatField(m, f)});
    }
  }
}

}  // namespace

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

namespace {

std::vector<std::pair<std::string, std::string>> ParseColumns(const char* columns) {
  std::vector<std::pair<std::string, std::string>> out;
  for (absl::string_view spec : absl::StrSplit(columns, ' ', absl::SkipEmpty())) {
    std::pair<std::string, std::string> c = absl::StrSplit(spec, absl::MaxSplits(':', 1));
    if (c.second.empty()) c.second = absl::AsciiStrToUpper(c.first);
    out.push_back(std::move(c));
  }
  return out;
}

// The field at dotted `path` from `d`, checking the path; through a
// repeated message only if the path goes on. Null with `*error` set if it
// does not exist.
const FieldDescriptor* ColumnField(const Descriptor* d, absl::string_view path,
                                   std::string* error) {
  std::vector<std::string> parts = absl::StrSplit(path, '.');
  for (size_t i = 0; i < parts.size(); ++i) {
    const FieldDescriptor* f = d->FindFieldByName(parts[i]);
    if (f == nullptr) {
      *error = absl::StrCat(d->full_name(), " has no ", parts[i]);
      return nullptr;
    }
    if (i + 1 == parts.size()) return f;
    if (!IsPlainMessage(f)) {
      *error = absl::StrCat(f->full_name(), " is not a message");
      return nullptr;
    }
    d = f->message_type();
  }
  *error = "empty column";
  return nullptr;
}

// The text of one path of a column: "-" when unset. Through a repeated
// message: its element with `primary` set, else the first.
std::string ColumnPathValue(const Message& item, absl::string_view path) {
  const Message* m = &item;
  std::vector<std::string> parts = absl::StrSplit(path, '.');
  for (size_t i = 0; i < parts.size(); ++i) {
    const FieldDescriptor* f = m->GetDescriptor()->FindFieldByName(parts[i]);
    if (f == nullptr) return "?";
    if (i + 1 == parts.size()) return FormatField(*m, f);
    const Reflection* r = m->GetReflection();
    if (!f->is_repeated()) {
      m = &r->GetMessage(*m, f);
      continue;
    }
    const int n = r->FieldSize(*m, f);
    if (n == 0) return "-";
    int chosen = 0;
    for (int j = 0; j < n; ++j) {
      const Message& element = r->GetRepeatedMessage(*m, f, j);
      if (GetBool(element, "primary")) {
        chosen = j;
        break;
      }
    }
    m = &r->GetRepeatedMessage(*m, f, chosen);
  }
  return "?";
}

// A column: paths joined by '+', their values by a space ("-" if all unset).
std::string ColumnValue(const Message& item, absl::string_view spec) {
  std::vector<std::string> values;
  for (absl::string_view path : absl::StrSplit(spec, '+')) {
    std::string value = ColumnPathValue(item, path);
    if (value != "-") values.push_back(std::move(value));
  }
  return values.empty() ? "-" : absl::StrJoin(values, " ");
}

// The values of the repeated string field `name` of `m`, without repeats
// (pages of a list each carry theirs), in order.
std::vector<std::string> DistinctStrings(const Message& m, const char* name) {
  std::vector<std::string> out;
  const FieldDescriptor* f = m.GetDescriptor()->FindFieldByName(name);
  if (f == nullptr || !f->is_repeated() || f->cpp_type() != FieldDescriptor::CPPTYPE_STRING) {
    return out;
  }
  std::set<std::string> seen;
  for (int i = 0; i < m.GetReflection()->FieldSize(m, f); ++i) {
    std::string value = m.GetReflection()->GetRepeatedString(m, f, i);
    if (seen.insert(value).second) out.push_back(std::move(value));
  }
  return out;
}

}  // namespace

std::vector<std::vector<std::string>> FieldRows(const Message& m) {
  std::vector<std::vector<std::string>> rows;
  Flatten(m, "", &rows);
  return rows;
}

std::string FieldText(const Message& m, const char* field) {
  const FieldDescriptor* f = m.GetDescriptor()->FindFieldByName(field);
  return f == nullptr ? "?" : FormatField(m, f);
}

int FieldSize(const Message& m, const char* field) {
  const FieldDescriptor* f = m.GetDescriptor()->FindFieldByName(field);
  return f == nullptr || !f->is_repeated() ? 0 : m.GetReflection()->FieldSize(m, f);
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
  const std::vector<std::string> extra =
      c.extra == nullptr ? std::vector<std::string>{} : DistinctStrings(response, c.extra);
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
        for (const auto& column : columns) row.push_back(ColumnValue(item, column.first));
      }
      PrintColumns(inv.out, rows);
    }
    if (!extra.empty()) inv.err << c.extra << ": " << absl::StrJoin(extra, ",") << "\n";
  } else {
    std::vector<std::vector<std::string>> rows;
    Flatten(field == nullptr ? response : r->GetMessage(response, field), "", &rows);
    if (field != nullptr && !extra.empty()) rows.push_back({c.extra, absl::StrJoin(extra, ",")});
    if (rows.empty()) {
      inv.out << (c.done != nullptr ? c.done : "OK") << "\n";
    } else {
      PrintColumns(inv.out, rows);
    }
  }
  if (c.note != nullptr) inv.err << c.note << "\n";
  return kExitOk;
}

int RunOwnPagedList(Invocation& inv, int max_pages, absl::string_view page_size,
                    absl::string_view what) {
  std::unique_ptr<Message> all = inv.registry.NewMessage(inv.method->output_type());
  std::unique_ptr<Message> page = inv.registry.NewMessage(inv.method->output_type());
  std::string next;
  for (int pages = 0; pages < max_pages; ++pages) {
    if (grpc::Status s = inv.Call(inv.method, *inv.request, page.get()); !s.ok()) {
      return TableRpcError(inv, s);
    }
    next = GetString(*page, "next_page_token");
    all->MergeFrom(*page);
    if (next.empty()) break;
    SetString(inv.request.get(), "page_token", next);
  }
  SetString(all.get(), "next_page_token", "");
  const int rc = PrintResponse(inv, *all);
  if (!next.empty()) {
    inv.err << "crmctl: stopped after " << max_pages << " pages of " << page_size
            << "; the list has more " << what << "\n";
  }
  return rc;
}

namespace {

// ---- Calls -------------------------------------------------------------------

const FieldDescriptor* PageField(const Descriptor* d, absl::string_view type) {
  const FieldDescriptor* f = d->FindFieldByName("page");
  return f != nullptr && IsType(f, type) ? f : nullptr;
}

const MethodDescriptor* TableMethod(const ProtoRegistry& registry, const CommandTable& table,
                                    const char* rpc) {
  absl::StatusOr<const MethodDescriptor*> m =
      registry.FindMethod(absl::StrCat(table.service, "/", rpc), "");
  if (m.ok()) return *m;
  // FindMethod refuses streaming methods; a client or a server stream is
  // allowed for a row with its own Runner (person import, erasure export;
  // CheckCommandTable checks that), a bidirectional one is not.
  for (const google::protobuf::ServiceDescriptor* service : registry.Services()) {
    if (service->full_name() != table.service) continue;
    const MethodDescriptor* method = service->FindMethodByName(rpc);
    if (method != nullptr && method->client_streaming() != method->server_streaming()) {
      return method;
    }
  }
  return nullptr;
}

// ---- Arguments ---------------------------------------------------------------

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
      case Arg::kConst:
        break;
    }
  }
  return s;
}

bool IsFlag(const Arg& a) { return a.kind >= Arg::kFlag && a.kind <= Arg::kSwitch; }

// Whether the words of `c` begin with `group` and go on after it.
bool IsUnder(const Command& c, const std::vector<std::string>& group) {
  return c.words.size() > group.size() && std::equal(group.begin(), group.end(), c.words.begin());
}

// The longest start of `line` that commands of `table` go on after: the
// group whose command is missing or unknown ("mailing list" of "mailing
// list frob"; at least the first word).
std::vector<std::string> GroupOf(const CommandTable& table, const std::vector<std::string>& line) {
  std::vector<std::string> group = {line[0]};
  while (group.size() < line.size()) {
    std::vector<std::string> longer = group;
    longer.push_back(line[group.size()]);
    if (std::none_of(table.commands->begin(), table.commands->end(),
                     [&](const Command& c) { return IsUnder(c, longer); })) {
      break;
    }
    group = std::move(longer);
  }
  return group;
}

// The words after `group` of its commands, each once, in order.
std::vector<std::string> SubcommandsOf(const CommandTable& table,
                                       const std::vector<std::string>& group) {
  std::vector<std::string> words;
  for (const Command& c : *table.commands) {
    if (!IsUnder(c, group)) continue;
    const std::string& word = c.words[group.size()];
    if (std::find(words.begin(), words.end(), word) == words.end()) words.push_back(word);
  }
  return words;
}

// The command of `table` whose words begin `line` (the command word and
// the positional arguments); null if none.
const Command* FindCommand(const CommandTable& table, const std::vector<std::string>& line) {
  const Command* command = nullptr;
  for (const Command& c : *table.commands) {
    if (c.words.size() <= line.size() && std::equal(c.words.begin(), c.words.end(), line.begin())) {
      command = &c;
    }
  }
  return command;
}

// The update mask of the command from the flags given; kContinue or the
// exit code of a usage error.
int FillUpdateMask(Invocation& inv) {
  const Command& c = inv.command;
  std::pair<std::string, std::string> spec = absl::StrSplit(c.update_mask, ' ');
  const std::string prefix = spec.second + ".";
  std::vector<std::string> paths;
  std::vector<std::string> candidates;
  for (const Arg& a : c.args) {
    if (!IsFlag(a) || a.field == nullptr || !absl::StartsWith(a.field, prefix)) continue;
    candidates.push_back(absl::StrCat("--", a.name));
    if (inv.flags.count(a.name) == 0) continue;
    std::string path(absl::string_view(a.field).substr(prefix.size()));
    path = path.substr(0, path.find('.'));
    if (std::find(paths.begin(), paths.end(), path) == paths.end()) paths.push_back(path);
  }
  if (paths.empty()) {
    return TableUsageError(
        inv.err,
        absl::StrCat("nothing to change: give at least one of ", absl::StrJoin(candidates, ", ")),
        inv.Topic());
  }
  for (const std::string& path : paths) {
    if (absl::Status s = SetField(inv.request.get(), absl::StrCat(spec.first, ".paths"), path);
        !s.ok()) {
      inv.err << "crmctl: " << s.message() << "\n";
      return kExitFailure;
    }
  }
  return kContinue;
}

// Fills the request from the positionals and command flags; kContinue or
// the exit code of a usage error.
int ApplyArgs(Invocation& inv, const std::vector<std::string>& positionals) {
  const Command& c = inv.command;
  const std::string topic = inv.Topic();
  for (const auto& [name, value] : inv.options.command_flags) {
    auto arg = std::find_if(c.args.begin(), c.args.end(),
                            [&](const Arg& a) { return IsFlag(a) && name == a.name; });
    if (arg == c.args.end()) {
      return TableUsageError(
          inv.err,
          absl::StrCat("--", name, ": not a flag of 'crmctl ", absl::StrJoin(c.words, " "), "'"),
          topic);
    }
    std::vector<std::string>& values = inv.flags[name];
    if (!values.empty() && arg->kind != Arg::kRepeatedFlag) {
      return TableUsageError(inv.err, absl::StrCat("--", name, ": given twice"), topic);
    }
    values.push_back(value);
  }
  size_t next = 0;
  for (const Arg& a : c.args) {
    std::vector<std::string> values;
    std::string label = absl::StrCat("--", a.name);
    if (a.kind == Arg::kConst) {
      values.push_back(a.default_value);
    } else if (a.kind == Arg::kPositional || a.kind == Arg::kOptionalPositional) {
      label = a.name;
      if (next < positionals.size()) {
        values.push_back(positionals[next++]);
      } else if (a.kind == Arg::kPositional) {
        return TableUsageError(inv.err, absl::StrCat("missing ", a.name), topic);
      }
    } else if (auto it = inv.flags.find(a.name); it != inv.flags.end()) {
      values = it->second;
    } else if (a.required) {
      return TableUsageError(inv.err, absl::StrCat(label, ": required"), topic);
    } else if (a.default_value != nullptr) {
      values.push_back(a.default_value);
    }
    if (a.field == nullptr) continue;
    for (const std::string& value : values) {
      absl::Status s = a.kind == Arg::kSwitch ? SetField(inv.request.get(), a.field, "on")
                                              : SetField(inv.request.get(), a.field, value);
      if (!s.ok()) {
        return TableUsageError(inv.err, absl::StrCat(label, ": ", s.message()), topic);
      }
    }
  }
  if (next < positionals.size()) {
    return TableUsageError(inv.err, absl::StrCat("unexpected argument \"", positionals[next], "\""),
                           topic);
  }
  if (c.update_mask != nullptr) return FillUpdateMask(inv);
  return kContinue;
}

// Where the commands of `table` are called.
rpc::ChannelConfig ServiceChannelConfig(const Options& options, const CommandTable& table) {
  if (absl::string_view(table.service_name) == "identity") {
    return IdentityChannelConfig(options, /*use_addr=*/true);
  }
  rpc::ChannelConfig config;
  config.tls.cert_file = options.cert_file;
  config.tls.key_file = options.key_file;
  config.tls.ca_file = options.ca_file;
  config.target = options.addr.empty() ? options.addresses.at(table.service_name) : options.addr;
  config.expected_server =
      options.server_identity.empty() ? table.service_name : options.server_identity;
  return config;
}

}  // namespace

// ---- For the hooks -------------------------------------------------------------

absl::Status ParseDurationArg(absl::string_view text, absl::Duration* d) {
  if (ParseLongDuration(text, d)) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat("expected a positive duration like 8h, 90m or 7d, got \"", text, "\""));
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
  return f != nullptr && f->cpp_type() == FieldDescriptor::CPPTYPE_BOOL && !f->is_repeated() &&
         m.GetReflection()->GetBool(m, f);
}
int32_t GetInt32(const Message& m, const char* field) {
  const FieldDescriptor* f = m.GetDescriptor()->FindFieldByName(field);
  return f == nullptr ? 0 : m.GetReflection()->GetInt32(m, f);
}

std::string FullName(const MethodDescriptor* m) {
  return absl::StrCat("/", m->service()->full_name(), "/", m->name());
}

// ---- Invocation ----------------------------------------------------------------

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

grpc::Status Invocation::ReadStream(const MethodDescriptor* m, const Message& req,
                                    const std::function<absl::Status(const Message&)>& each,
                                    absl::Status* stopped) {
  *stopped = absl::OkStatus();
  std::vector<std::pair<std::string, std::string>> headers;
  if (grpc::Status s = caller->StreamHeaders(&headers); !s.ok()) return s;
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + options.timeout));
  for (const auto& [key, value] : headers) context.AddMetadata(key, value);
  const std::string name = FullName(m);
  const grpc::internal::RpcMethod method(name.c_str(), grpc::internal::RpcMethod::SERVER_STREAMING,
                                         channel);
  const std::string bytes = req.SerializeAsString();
  grpc::Slice slice(bytes);
  const grpc::ByteBuffer request(&slice, 1);
  std::unique_ptr<grpc::ClientReader<grpc::ByteBuffer>> reader(
      grpc::internal::ClientReaderFactory<grpc::ByteBuffer>::Create(channel.get(), method, &context,
                                                                    request));
  std::unique_ptr<Message> message = registry.NewMessage(m->output_type());
  grpc::ByteBuffer buffer;
  while (reader->Read(&buffer)) {
    message->Clear();
    grpc::ProtoBufferReader in(&buffer);
    if (!message->ParseFromZeroCopyStream(&in)) {
      *stopped = absl::InternalError(
          absl::StrCat("a message of the stream is not a ", m->output_type()->full_name()));
    } else {
      *stopped = each(*message);
    }
    if (!stopped->ok()) {
      context.TryCancel();
      while (reader->Read(&buffer)) {
      }
      break;
    }
  }
  return reader->Finish();
}

const MethodDescriptor* Invocation::Method(const char* rpc) const {
  return TableMethod(registry, table, rpc);
}

std::string Invocation::Topic() const { return command.words[0]; }

// ---- The tables ----------------------------------------------------------------

const std::vector<const CommandTable*>& CommandTables() {
  static const auto* tables = new std::vector<const CommandTable*>{
      &IdentityCommandTable(), &ContactsCommandTable(), &ConsentCommandTable(),
      &MailingCommandTable(), &ErasureCommandTable()};
  return *tables;
}

const CommandTable* FindCommandTable(absl::string_view command) {
  for (const CommandTable* table : CommandTables()) {
    for (const Command& c : *table->commands) {
      if (c.words[0] == command) return table;
    }
  }
  return nullptr;
}

std::optional<bool> CommandFlagTakesValue(absl::string_view flag) {
  for (const CommandTable* table : CommandTables()) {
    for (const Command& c : *table->commands) {
      for (const Arg& a : c.args) {
        if (IsFlag(a) && flag == a.name) return a.kind != Arg::kSwitch;
      }
    }
  }
  return std::nullopt;
}

bool CommandHasFlag(const std::vector<std::string>& line, absl::string_view flag) {
  if (line.empty()) return false;
  const CommandTable* table = FindCommandTable(line[0]);
  if (table == nullptr) return false;
  const Command* command = FindCommand(*table, line);
  return command != nullptr &&
         std::any_of(command->args.begin(), command->args.end(),
                     [&](const Arg& a) { return IsFlag(a) && flag == a.name; });
}

std::string CommandGroupUsage(absl::string_view command) {
  const CommandTable* table = FindCommandTable(command);
  if (table == nullptr) return "";
  std::string text;
  for (const Command& c : *table->commands) {
    if (c.words[0] != command) continue;
    absl::StrAppend(&text, "  ", Synopsis(c), "\n      ", c.summary, "\n");
  }
  return absl::StrCat(table->usage_title, " (", table->service, "; see docs/crmctl.md):\n\n", text,
                      "\n", table->usage_footer);
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

int RunTableCommand(const Options& options, const std::map<std::string, std::string>& env,
                    std::istream& in, std::ostream& out, std::ostream& err) {
  const CommandTable* table = FindCommandTable(options.command);
  if (table == nullptr) {
    return TableUsageError(err, absl::StrCat("unknown command \"", options.command, "\""), "");
  }
  std::vector<std::string> line = {options.command};
  line.insert(line.end(), options.args.begin(), options.args.end());
  const Command* command = FindCommand(*table, line);
  if (command == nullptr) {
    const std::vector<std::string> group = GroupOf(*table, line);
    const std::string name = absl::StrJoin(group, " ");
    const std::string subcommands = absl::StrJoin(SubcommandsOf(*table, group), ", ");
    return TableUsageError(err,
                           line.size() == group.size()
                               ? absl::StrCat(name, " needs a command: ", subcommands)
                               : absl::StrCat("unknown command \"", name, " ", line[group.size()],
                                              "\"; ", name, " commands: ", subcommands),
                           options.command);
  }
  absl::StatusOr<std::unique_ptr<ProtoRegistry>> registry = ProtoRegistry::Embedded();
  if (!registry.ok()) {
    err << "crmctl: " << registry.status().message() << "\n";
    return kExitFailure;
  }
  Invocation inv{.table = *table,
                 .command = *command,
                 .options = options,
                 .in = in,
                 .out = out,
                 .err = err,
                 .registry = **registry,
                 .method = TableMethod(**registry, *table, command->rpc)};
  if (inv.method == nullptr) {
    err << "crmctl: this build does not know " << table->service << "/" << command->rpc << "\n";
    return kExitFailure;
  }
  inv.request = inv.registry.NewMessage(inv.method->input_type());
  if (int rc = ApplyArgs(
          inv, std::vector<std::string>(line.begin() + command->words.size(), line.end()));
      rc != kContinue) {
    return rc;
  }
  if (command->offline != nullptr) {
    if (int rc = command->offline(inv); rc != kContinue) return rc;
  }

  const rpc::ChannelConfig config = ServiceChannelConfig(options, *table);
  if (absl::Status s = rpc::CheckTlsFiles(config.tls, "--"); !s.ok()) {
    err << "crmctl: " << s.message() << "\n"
        << "The operator certificate comes from --cert/--key/--ca, else $CRM_PKI_DIR, else\n"
        << "<repo>/.run/pki (made by tools/dev up).\n";
    return kExitUsage;
  }
  absl::StatusOr<std::shared_ptr<grpc::Channel>> channel = rpc::MakeChannel(config);
  if (!channel.ok()) return TableUsageError(err, channel.status().message(), inv.Topic());
  inv.channel = *channel;
  // Sessions are renewed at the identity service: this one when the table
  // is identity's (also at --addr), else the address of "identity".
  const rpc::ChannelConfig identity = absl::string_view(table->service_name) == "identity"
                                          ? config
                                          : IdentityChannelConfig(options, /*use_addr=*/false);
  absl::StatusOr<std::unique_ptr<SessionCaller>> caller =
      NewSessionCaller(options, env, identity, inv.registry, /*load=*/!command->fresh_session);
  if (!caller.ok()) return TableUsageError(err, caller.status().message(), inv.Topic());
  inv.caller = *std::move(caller);
  inv.terminal = !options.password_stdin && IsTerminal(in);

  if (command->prepare != nullptr) {
    if (int rc = command->prepare(inv); rc != kContinue) return rc;
  }
  if (command->run != nullptr) return command->run(inv);
  std::unique_ptr<Message> response = inv.registry.NewMessage(inv.method->output_type());
  if (grpc::Status s = inv.Call(inv.method, *inv.request, response.get()); !s.ok()) {
    return TableRpcError(inv, s);
  }
  return PrintResponse(inv, *response);
}

absl::Status CheckCommandTable(const ProtoRegistry& registry, const CommandTable& table) {
  for (const Command& c : *table.commands) {
    const std::string name = absl::StrJoin(c.words, " ");
    const MethodDescriptor* method = TableMethod(registry, table, c.rpc);
    if (method == nullptr) return absl::InternalError(absl::StrCat(name, ": no method ", c.rpc));
    if (method->client_streaming() && c.run == nullptr) {
      return absl::InternalError(
          absl::StrCat(name, ": ", c.rpc, " is a client stream: the row needs its own Runner"));
    }
    if (method->server_streaming() && c.run == nullptr) {
      return absl::InternalError(
          absl::StrCat(name, ": ", c.rpc, " is a server stream: the row needs its own Runner"));
    }
    for (const Command& other : *table.commands) {
      if (&other != &c && other.words.size() >= c.words.size() &&
          std::equal(c.words.begin(), c.words.end(), other.words.begin())) {
        return absl::InternalError(
            absl::StrCat(name, ": begins \"", absl::StrJoin(other.words, " "), "\""));
      }
    }
    if (FindCommandTable(c.words[0]) != &table) {
      return absl::InternalError(absl::StrCat(name, ": ", c.words[0], " is another table's"));
    }
    std::unique_ptr<Message> request = registry.NewMessage(method->input_type());
    for (const Arg& a : c.args) {
      if (IsFlag(a) && CommandFlagTakesValue(a.name) != (a.kind != Arg::kSwitch)) {
        return absl::InternalError(
            absl::StrCat(name, ": --", a.name, " is a switch in one command, not in another"));
      }
      if (a.field == nullptr) continue;
      const FieldDescriptor* f = nullptr;
      bool through_repeated = false;
      absl::StatusOr<Message*> walked = Walk(request.get(), a.field, &f, &through_repeated);
      if (!walked.ok()) {
        return absl::InternalError(absl::StrCat(name, ": ", walked.status().message()));
      }
      if ((f->is_repeated() || through_repeated) != (a.kind == Arg::kRepeatedFlag) ||
          (a.kind == Arg::kSwitch && f->cpp_type() != FieldDescriptor::CPPTYPE_BOOL) ||
          (a.kind == Arg::kConst && a.default_value == nullptr)) {
        return absl::InternalError(
            absl::StrCat(name, ": ", a.name, " does not fit ", f->full_name()));
      }
    }
    if (c.update_mask != nullptr) {
      std::pair<std::string, std::string> spec = absl::StrSplit(c.update_mask, ' ');
      const FieldDescriptor* mask = method->input_type()->FindFieldByName(spec.first);
      const FieldDescriptor* target = method->input_type()->FindFieldByName(spec.second);
      if (mask == nullptr || !IsType(mask, "google.protobuf.FieldMask") || target == nullptr ||
          !IsPlainMessage(target) || target->is_repeated()) {
        return absl::InternalError(absl::StrCat(name, ": bad update_mask \"", c.update_mask, "\""));
      }
    }
    const Descriptor* response = method->output_type();
    const FieldDescriptor* shown = c.show == nullptr ? nullptr : response->FindFieldByName(c.show);
    if (c.show != nullptr && shown == nullptr) {
      return absl::InternalError(
          absl::StrCat(name, ": ", response->full_name(), " has no ", c.show));
    }
    if (c.extra != nullptr) {
      const FieldDescriptor* extra = response->FindFieldByName(c.extra);
      if (extra == nullptr || !extra->is_repeated() ||
          extra->cpp_type() != FieldDescriptor::CPPTYPE_STRING) {
        return absl::InternalError(
            absl::StrCat(name, ": ", response->full_name(), " has no repeated string ", c.extra));
      }
    }
    if (c.columns != nullptr) {
      if (shown == nullptr || !shown->is_repeated() || shown->message_type() == nullptr) {
        return absl::InternalError(absl::StrCat(name, ": columns need a repeated message"));
      }
      for (const auto& column : ParseColumns(c.columns)) {
        for (absl::string_view path : absl::StrSplit(column.first, '+')) {
          std::string error;
          if (ColumnField(shown->message_type(), path, &error) == nullptr) {
            return absl::InternalError(absl::StrCat(name, ": ", error));
          }
        }
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace crm::crmctl
