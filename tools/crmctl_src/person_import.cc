#include "tools/crmctl_src/person_import.h"

#include <grpcpp/impl/rpc_method.h>
#include <grpcpp/support/byte_buffer.h>
#include <grpcpp/support/sync_stream.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <map>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "tools/crmctl_src/client.h"
#include "tools/crmctl_src/crmctl.h"
#include "tools/crmctl_src/csv.h"

namespace crm::crmctl {
namespace {

using google::protobuf::EnumValueDescriptor;
using google::protobuf::FieldDescriptor;
using google::protobuf::Message;

// The supported columns and the Person field each sets.
constexpr const char* kColumns[] = {"given_name", "family_name", "email",      "phone",
                                    "status",     "job_title",   "company_id", "notes"};
constexpr char kStatusValues[] =
    "lead, prospect, customer, former_customer, partner, supplier_contact";

struct RowError {
  int64_t row;
  std::string field;
  std::string reason;
  std::string existing_subject_id;
};

// The Person of one row into `person` (cleared); the first problem, if any.
std::optional<RowError> FillPerson(const std::vector<std::string>& header,
                                   const std::vector<std::string>& fields, int64_t row,
                                   Message* person) {
  person->Clear();
  const google::protobuf::Descriptor* d = person->GetDescriptor();
  const google::protobuf::Reflection* r = person->GetReflection();
  for (size_t i = 0; i < header.size(); ++i) {
    const std::string& column = header[i];
    const std::string value(absl::StripAsciiWhitespace(fields[i]));
    if (!IsValidUtf8(value)) return RowError{row, column, "not valid UTF-8"};
    if (value.empty()) continue;
    if (column == "email" || column == "phone") {
      const FieldDescriptor* list = d->FindFieldByName(column == "email" ? "emails" : "phones");
      for (absl::string_view part : absl::StrSplit(value, ';')) {
        part = absl::StripAsciiWhitespace(part);
        if (part.empty()) continue;
        Message* element = r->AddMessage(person, list);
        SetString(element, column == "email" ? "address" : "number", std::string(part));
      }
    } else if (column == "status") {
      std::string name = absl::AsciiStrToUpper(value);
      std::replace(name.begin(), name.end(), '-', '_');
      const FieldDescriptor* f = d->FindFieldByName("status");
      const EnumValueDescriptor* v =
          f->enum_type()->FindValueByName(absl::StrCat("PERSON_STATUS_", name));
      if (v == nullptr || v->number() == 0) {
        return RowError{row, column,
                        absl::StrCat("\"", value, "\": expected one of ", kStatusValues)};
      }
      r->SetEnum(person, f, v);
    } else {
      SetString(person, column.c_str(), value);
    }
  }
  return std::nullopt;
}

void PrintErrors(std::ostream& out, const std::vector<RowError>& errors) {
  for (const RowError& e : errors) {
    out << "row " << e.row << ": ";
    if (!e.field.empty()) out << e.field << ": ";
    out << e.reason;
    if (!e.existing_subject_id.empty())
      out << " (existing subject " << e.existing_subject_id << ")";
    out << "\n";
  }
}

}  // namespace

int RunPersonImport(Invocation& inv) {
  const std::string topic = inv.Topic();
  // options.args: "import" FILE (ApplyArgs checked there is exactly one).
  const std::string path = inv.options.args.at(1);
  const bool dry_run = inv.flags.count("dry-run") > 0;
  std::ifstream file;
  std::istream* in = &inv.in;
  if (path != "-") {
    file.open(path, std::ios::binary);
    if (!file.is_open()) {
      return TableUsageError(inv.err, absl::StrCat("cannot read ", path, ": ", strerror(errno)),
                             topic);
    }
    in = &file;
  }
  const std::string name = path == "-" ? "stdin" : path;

  // The header.
  CsvReader reader(*in);
  std::vector<std::string> header;
  absl::StatusOr<bool> got = reader.Next(&header);
  if (!got.ok())
    return TableUsageError(inv.err, absl::StrCat(name, ": ", got.status().message()), topic);
  if (!*got) return TableUsageError(inv.err, absl::StrCat(name, ": no header row"), topic);
  if (!header.empty() && absl::StartsWith(header[0], "\xEF\xBB\xBF")) {
    header[0].erase(0, 3);  // A UTF-8 byte order mark.
  }
  for (size_t i = 0; i < header.size(); ++i) {
    std::string column = absl::AsciiStrToLower(absl::StripAsciiWhitespace(header[i]));
    if (std::find(std::begin(kColumns), std::end(kColumns), column) == std::end(kColumns)) {
      return TableUsageError(inv.err,
                             absl::StrCat(name, ": unknown column \"", header[i],
                                          "\"; columns: ", absl::StrJoin(kColumns, ", ")),
                             topic);
    }
    if (std::find(header.begin(), header.begin() + i, column) != header.begin() + i) {
      return TableUsageError(inv.err, absl::StrCat(name, ": duplicate column \"", header[i], "\""),
                             topic);
    }
    header[i] = column;
  }

  std::unique_ptr<Message> request = inv.registry.NewMessage(inv.method->input_type());
  const FieldDescriptor* person_field = request->GetDescriptor()->FindFieldByName("person");
  if (auto it = inv.flags.find("channel"); it != inv.flags.end()) {
    SetString(request.get(), "channel", it->second[0]);
  }
  if (auto it = inv.flags.find("source"); it != inv.flags.end()) {
    SetString(request.get(), "source", it->second[0]);
  }

  // The call, opened once the header is known to be good.
  grpc::ClientContext context;
  grpc::ByteBuffer reply;
  std::unique_ptr<grpc::ClientWriter<grpc::ByteBuffer>> writer;
  const std::string method_name = FullName(inv.method);
  if (!dry_run) {
    std::vector<std::pair<std::string, std::string>> headers;
    if (grpc::Status s = inv.caller->StreamHeaders(&headers); !s.ok()) {
      return TableRpcError(inv, s);
    }
    context.set_deadline(absl::ToChronoTime(absl::Now() + inv.options.timeout));
    for (const auto& [key, value] : headers) context.AddMetadata(key, value);
    grpc::internal::RpcMethod method(method_name.c_str(),
                                     grpc::internal::RpcMethod::CLIENT_STREAMING, inv.channel);
    writer.reset(grpc::internal::ClientWriterFactory<grpc::ByteBuffer>::Create(
        inv.channel.get(), method, &context, &reply));
  }

  std::vector<RowError> errors;    // Local ones, then the server's.
  std::vector<int64_t> sent_rows;  // Stream position - 1 -> CSV data row.
  int64_t rows = 0;
  bool stream_broken = false;
  std::vector<std::string> fields;
  for (;;) {
    got = reader.Next(&fields);
    if (!got.ok()) {
      // The rest of the file cannot be split into rows reliably: stop here.
      errors.push_back(
          {rows + 1, "", absl::StrCat(got.status().message(), "; rows after it not read")});
      ++rows;
      break;
    }
    if (!*got) break;
    if (fields.size() == 1 && fields[0].empty()) continue;  // A blank line.
    const int64_t row = ++rows;
    if (fields.size() != header.size()) {
      errors.push_back(
          {row, "", absl::StrCat(fields.size(), " fields, the header has ", header.size())});
      continue;
    }
    Message* person = request->GetReflection()->MutableMessage(request.get(), person_field);
    if (std::optional<RowError> e = FillPerson(header, fields, row, person); e.has_value()) {
      errors.push_back(*std::move(e));
      continue;
    }
    if (dry_run) continue;
    const std::string bytes = request->SerializeAsString();
    grpc::Slice slice(bytes);
    grpc::ByteBuffer buffer(&slice, 1);
    if (!writer->Write(buffer)) {
      stream_broken = true;  // The server ended the call: Finish says why.
      break;
    }
    sent_rows.push_back(row);
  }

  std::unique_ptr<Message> response = inv.registry.NewMessage(inv.method->output_type());
  if (!dry_run) {
    if (!stream_broken) writer->WritesDone();
    grpc::Status status = writer->Finish();
    if (!status.ok()) return TableRpcError(inv, status);
    std::vector<grpc::Slice> slices;
    std::string bytes;
    if (reply.Dump(&slices).ok()) {
      for (const grpc::Slice& s : slices) {
        bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
      }
    }
    if (!response->ParseFromString(bytes)) {
      inv.err << "ERROR INTERNAL: the response is not a " << inv.method->output_type()->full_name()
              << "\n";
      return kExitFailure;
    }
  }

  // The server's errors by CSV row, merged with the local ones.
  const google::protobuf::Reflection* r = response->GetReflection();
  const google::protobuf::Descriptor* d = response->GetDescriptor();
  const FieldDescriptor* errors_field = d->FindFieldByName("errors");
  const int64_t local_errors = static_cast<int64_t>(errors.size());
  for (int i = 0; i < r->FieldSize(*response, errors_field); ++i) {
    const Message& e = r->GetRepeatedMessage(*response, errors_field, i);
    int64_t row = e.GetReflection()->GetInt64(e, e.GetDescriptor()->FindFieldByName("row"));
    if (row >= 1 && row <= static_cast<int64_t>(sent_rows.size())) row = sent_rows[row - 1];
    errors.push_back(
        {row, GetString(e, "field"), GetString(e, "reason"), GetString(e, "existing_subject_id")});
  }
  std::stable_sort(errors.begin(), errors.end(),
                   [](const RowError& a, const RowError& b) { return a.row < b.row; });
  const int64_t server_errors_total = r->GetInt64(*response, d->FindFieldByName("errors_total"));
  const int64_t imported = r->GetInt64(*response, d->FindFieldByName("imported"));
  const int64_t errors_total = local_errors + server_errors_total;
  const int exit_code = errors_total == 0 && (dry_run || imported == rows) ? kExitOk : kExitFailure;

  if (inv.options.json) {
    r->SetInt64(response.get(), d->FindFieldByName("received"), rows);
    r->SetInt64(response.get(), d->FindFieldByName("errors_total"), errors_total);
    r->ClearField(response.get(), errors_field);
    for (const RowError& e : errors) {
      Message* m = r->AddMessage(response.get(), errors_field);
      m->GetReflection()->SetInt64(m, m->GetDescriptor()->FindFieldByName("row"), e.row);
      SetString(m, "field", e.field);
      SetString(m, "reason", e.reason);
      SetString(m, "existing_subject_id", e.existing_subject_id);
    }
    absl::StatusOr<std::string> json = ToJson(*response);
    if (!json.ok()) {
      inv.err << "ERROR INTERNAL: " << json.status().message() << "\n";
      return kExitFailure;
    }
    inv.out << *json;
    return exit_code;
  }
  if (dry_run) {
    inv.out << "read " << rows << ", errors " << errors_total << " (dry run: nothing sent)\n";
  } else {
    inv.out << "received " << rows << ", imported " << imported << ", errors " << errors_total
            << "\n";
  }
  PrintErrors(inv.out, errors);
  if (static_cast<int64_t>(errors.size()) < errors_total) {
    inv.out << "(" << errors_total - static_cast<int64_t>(errors.size())
            << " more errors not listed by the server)\n";
  }
  return exit_code;
}

}  // namespace crm::crmctl
