#include "services/gateway/json_api.h"

#include <google/protobuf/util/json_util.h>

#include <algorithm>
#include <set>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "crm/audit/v1/audit.pb.h"
#include "crm/consent/v1/consent.pb.h"
#include "crm/contacts/v1/contacts.pb.h"
#include "crm/erasure/v1/erasure.pb.h"
#include "crm/identity/v1/identity.pb.h"
#include "crm/mailing/v1/mailing.pb.h"
#include "libs/base/validate.h"
#include "libs/json/json.h"
#include "libs/rpc/generic_call.h"
#include "libs/rpc/request_id.h"

namespace crm::gateway {
namespace {

namespace pb = google::protobuf;

// The files of the services the gateway can expose (naming a message of each
// also links its generated code, which registers the descriptors).
std::vector<const pb::FileDescriptor*> ApiFiles() {
  return {crm::identity::v1::LoginRequest::descriptor()->file(),
          crm::contacts::v1::EmailAddress::descriptor()->file(),
          crm::consent::v1::Purpose::descriptor()->file(),
          crm::audit::v1::LogEntry::descriptor()->file(),
          crm::mailing::v1::SendTransactionalRequest::descriptor()->file(),
          crm::erasure::v1::SubmitErasureRequest::descriptor()->file()};
}

// Methods the gateway never offers: service-to-service ones, and those a
// service authorizes by the caller's certificate alone, which through the API
// would be the gateway's own for anyone on the internet (the mail-link pages
// call Unsubscribe and ConfirmSubscription themselves, after their checks).
bool Internal(const pb::MethodDescriptor& m) {
  static const auto* const kInternal = new std::set<std::string>{
      "crm.identity.v1.Identity.IssueServiceToken",    // the caller certificate's account
      "crm.identity.v1.Identity.CheckSession",         // the token-verifying services only
      "crm.mailing.v1.Mailing.Unsubscribe",            // gateway only: /u/ (RFC 8058)
      "crm.mailing.v1.Mailing.ConfirmSubscription",    // gateway only: /c/
      "crm.mailing.v1.Mailing.SendTransactional",      // dedup keys are per calling service
      "crm.contacts.v1.Contacts.GetMailingAddresses",  // mailing's certificate only
  };
  return m.service()->full_name() == "crm.audit.v1.AuditIngest" ||
         kInternal->contains(m.full_name());
}

// "contacts" for package "crm.contacts.v1".
std::string BackendOf(const pb::ServiceDescriptor& s) {
  absl::string_view p = s.file()->package();
  if (!absl::ConsumePrefix(&p, "crm.") || !absl::ConsumeSuffix(&p, ".v1")) return "";
  return std::string(p);
}

bool IsFieldChar(char c) {
  return absl::ascii_islower(c) || absl::ascii_isdigit(c) || c == '_' || c == '.' || c == '[' ||
         c == ']';
}

// The OpenAPI schema of one field's value (not repeated).
std::string ValueSchema(const pb::FieldDescriptor& f, std::set<const pb::Descriptor*>& needed) {
  using T = pb::FieldDescriptor;
  switch (f.type()) {
    case T::TYPE_DOUBLE:
    case T::TYPE_FLOAT:
      return R"({"type":"number"})";
    case T::TYPE_INT32:
    case T::TYPE_SINT32:
    case T::TYPE_SFIXED32:
    case T::TYPE_UINT32:
    case T::TYPE_FIXED32:
      return R"({"type":"integer","format":"int32"})";
    case T::TYPE_INT64:
    case T::TYPE_SINT64:
    case T::TYPE_SFIXED64:
    case T::TYPE_UINT64:
    case T::TYPE_FIXED64:
      return R"({"type":"string","format":"int64"})";  // proto3 JSON: 64-bit as strings
    case T::TYPE_BOOL:
      return R"({"type":"boolean"})";
    case T::TYPE_STRING:
      return R"({"type":"string"})";
    case T::TYPE_BYTES:
      return R"({"type":"string","format":"byte"})";
    case T::TYPE_ENUM: {
      std::string out = R"({"type":"string","enum":[)";
      for (int i = 0; i < f.enum_type()->value_count(); ++i) {
        absl::StrAppend(&out, i > 0 ? "," : "", json::Quote(f.enum_type()->value(i)->name()));
      }
      return out + "]}";
    }
    default:
      break;
  }
  const pb::Descriptor* m = f.message_type();
  const std::string& name = m->full_name();
  if (name == "google.protobuf.Timestamp") return R"({"type":"string","format":"date-time"})";
  if (name == "google.protobuf.Duration") return R"({"type":"string","example":"1.5s"})";
  if (name == "google.protobuf.Struct") return R"({"type":"object"})";
  if (name == "google.protobuf.Value") return "{}";
  if (name == "google.protobuf.FieldMask") return R"({"type":"string"})";
  needed.insert(m);
  return absl::StrCat(R"({"$ref":"#/components/schemas/)", name, "\"}");
}

// The schema of message `m`.
std::string MessageSchema(const pb::Descriptor& m, std::set<const pb::Descriptor*>& needed) {
  std::string out = R"({"type":"object","properties":{)";
  for (int i = 0; i < m.field_count(); ++i) {
    const pb::FieldDescriptor& f = *m.field(i);
    absl::StrAppend(&out, i > 0 ? "," : "", json::Quote(f.json_name()), ":");
    if (f.is_map()) {
      absl::StrAppend(&out, R"({"type":"object","additionalProperties":)",
                      ValueSchema(*f.message_type()->map_value(), needed), "}");
    } else if (f.is_repeated()) {
      absl::StrAppend(&out, R"({"type":"array","items":)", ValueSchema(f, needed), "}");
    } else {
      out += ValueSchema(f, needed);
    }
  }
  return out + "}}";
}

}  // namespace

bool IsBearer(absl::string_view authorization) {
  return authorization.size() > 7 && authorization.size() <= 8192 &&
         absl::StartsWith(authorization, "Bearer ") &&
         std::all_of(authorization.begin(), authorization.end(),
                     [](char c) { return c >= 0x20 && c <= 0x7E; });
}

HttpAnswer ErrorAnswer(const grpc::Status& s) {
  return {HttpStatusOf(s.error_code()),
          ErrorJson(absl::StatusCodeToString(static_cast<absl::StatusCode>(s.error_code())),
                    s.error_message())};
}

std::optional<HttpAnswer> CheckAuthorization(absl::string_view authorization) {
  if (authorization.empty() || IsBearer(authorization)) return std::nullopt;
  return HttpAnswer{
      401, ErrorJson("UNAUTHENTICATED", "Authorization: \"Bearer <access token>\" expected")};
}

namespace {

// Whether `body` has an array directly inside an array ("[[1]]"), outside
// strings. No request field takes one, but protobuf's JSON parser flattens
// them into the outer repeated field instead of refusing them.
bool NestsArrays(absl::string_view body) {
  std::vector<char> open;
  bool in_string = false;
  bool escaped = false;
  for (const char c : body) {
    if (in_string) {
      if (escaped) {
        escaped = false;
      } else if (c == '\\') {
        escaped = true;
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    switch (c) {
      case '"':
        in_string = true;
        break;
      case '[':
        if (!open.empty() && open.back() == '[') return true;
        open.push_back(c);
        break;
      case '{':
        open.push_back(c);
        break;
      case ']':
      case '}':
        if (!open.empty()) open.pop_back();
        break;
      default:
        break;
    }
  }
  return false;
}

// Whether a message of `type` can hold google.protobuf.ListValue or Value,
// whose JSON may nest arrays.
bool TakesListValues(const pb::Descriptor* type, std::set<const pb::Descriptor*>& seen) {
  if (!seen.insert(type).second) return false;
  if (type->full_name() == "google.protobuf.ListValue" ||
      type->full_name() == "google.protobuf.Value") {
    return true;
  }
  for (int i = 0; i < type->field_count(); ++i) {
    const pb::Descriptor* sub = type->field(i)->message_type();
    if (sub != nullptr && TakesListValues(sub, seen)) return true;
  }
  return false;
}

// The field whose value protobuf's JSON parser refused, from its error
// message, or "": the path it puts first ("(person.emails[0].address):
// invalid value ..."), and for an object given to a text or number field
// (": invalid value Starting an object on a scalar field for type given_name"
// after the parent's path) that field's name. Both come from the schema;
// nothing else of the message is kept, as it may quote the input.
std::string FieldPathOf(absl::string_view parse_error) {
  std::string path;
  if (absl::ConsumePrefix(&parse_error, "(")) {
    const size_t end = parse_error.find(')');
    if (end == absl::string_view::npos) return "";
    path = std::string(parse_error.substr(0, end));
    parse_error.remove_prefix(end + 1);
  }
  constexpr absl::string_view kObjectOnScalar = "Starting an object on a scalar field for type ";
  if (const size_t at = parse_error.find(kObjectOnScalar); at != absl::string_view::npos) {
    const absl::string_view name = parse_error.substr(at + kObjectOnScalar.size());
    if (!name.empty() && std::all_of(name.begin(), name.end(), IsFieldChar)) {
      path = path.empty() ? std::string(name) : absl::StrCat(path, ".", name);
    }
  }
  if (path.empty() || path.size() > 100 || !std::all_of(path.begin(), path.end(), IsFieldChar)) {
    return "";
  }
  return path;
}

}  // namespace

std::optional<HttpAnswer> ParseBody(absl::string_view body, pb::Message& message) {
  pb::util::JsonParseOptions parse;
  parse.ignore_unknown_fields = false;
  if (absl::StripAsciiWhitespace(body).empty()) body = "{}";
  if (NestsArrays(body)) {
    std::set<const pb::Descriptor*> seen;
    if (!TakesListValues(message.GetDescriptor(), seen)) {
      return HttpAnswer{400, ErrorJson("INVALID_ARGUMENT",
                                       "body: an array inside an array, which no field of the "
                                       "request takes (see /openapi.json)")};
    }
  }
  const auto s = pb::util::JsonStringToMessage(std::string(body), &message, parse);
  if (s.ok()) return std::nullopt;
  // protobuf's message may quote the input: say what was expected instead.
  if (const std::string path = FieldPathOf(std::string(s.message())); !path.empty()) {
    return HttpAnswer{
        400, ErrorJson("INVALID_ARGUMENT", absl::StrCat(path,
                                                        ": wrong JSON type or value for this field "
                                                        "(see /openapi.json)"))};
  }
  return HttpAnswer{400,
                    ErrorJson("INVALID_ARGUMENT",
                              absl::StrCat("body: not a ", message.GetDescriptor()->full_name(),
                                           " in JSON (unknown field, wrong type or malformed; "
                                           "see /openapi.json)"))};
}

int HttpStatusOf(int grpc_code) {
  switch (static_cast<grpc::StatusCode>(grpc_code)) {
    case grpc::StatusCode::OK:
      return 200;
    case grpc::StatusCode::INVALID_ARGUMENT:
    case grpc::StatusCode::OUT_OF_RANGE:
      return 400;
    case grpc::StatusCode::UNAUTHENTICATED:
      return 401;
    case grpc::StatusCode::PERMISSION_DENIED:
      return 403;
    case grpc::StatusCode::NOT_FOUND:
      return 404;
    case grpc::StatusCode::ALREADY_EXISTS:
    case grpc::StatusCode::ABORTED:
    case grpc::StatusCode::FAILED_PRECONDITION:
      return 409;
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
      return 429;
    case grpc::StatusCode::UNIMPLEMENTED:
      return 501;
    case grpc::StatusCode::UNAVAILABLE:
      return 503;
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return 504;
    default:
      return 500;
  }
}

std::string ErrorJson(absl::string_view code, absl::string_view message) {
  // At most 500 bytes, cut before a character rather than inside one: the
  // body must stay valid UTF-8 (JSON).
  size_t end = std::min<size_t>(message.size(), 500);
  while (end > 0 && end < message.size() &&
         (static_cast<unsigned char>(message[end]) & 0xC0) == 0x80) {
    --end;
  }
  message = message.substr(0, end);
  std::string out = absl::StrCat(R"({"error":{"code":)", json::Quote(code), R"(,"message":)",
                                 json::Quote(message));
  const size_t colon = message.find(": ");
  if (colon != absl::string_view::npos && colon > 0 && colon <= 100 &&
      std::all_of(message.begin(), message.begin() + colon, IsFieldChar)) {
    absl::StrAppend(&out, R"(,"field":)", json::Quote(message.substr(0, colon)));
  }
  return out + "}}";
}

JsonApi::JsonApi(std::map<std::string, std::shared_ptr<grpc::Channel>> backends,
                 absl::Duration timeout)
    : backends_(std::move(backends)), timeout_(timeout) {
  for (const pb::FileDescriptor* file : ApiFiles()) {
    for (int s = 0; s < file->service_count(); ++s) {
      const pb::ServiceDescriptor& service = *file->service(s);
      if (!backends_.contains(BackendOf(service))) continue;
      for (int m = 0; m < service.method_count(); ++m) {
        const pb::MethodDescriptor* method = service.method(m);
        if (!method->client_streaming() && !method->server_streaming() && !Internal(*method)) {
          methods_.push_back(method);
        }
      }
    }
  }
  std::sort(methods_.begin(), methods_.end(),
            [](const auto* a, const auto* b) { return a->full_name() < b->full_name(); });
}

const pb::MethodDescriptor* JsonApi::Find(absl::string_view service,
                                          absl::string_view method) const {
  const std::string full = absl::StrCat(service, ".", method);
  auto it =
      std::lower_bound(methods_.begin(), methods_.end(), full,
                       [](const auto* m, const std::string& n) { return m->full_name() < n; });
  return it != methods_.end() && (*it)->full_name() == full ? *it : nullptr;
}

pb::Message* JsonApi::ConnectionFilled(const pb::MethodDescriptor& m, pb::Message& request) {
  const std::string& method = m.full_name();
  if (method == "crm.identity.v1.Identity.Login" ||
      method == "crm.identity.v1.Identity.StartSubjectVerification" ||
      method == "crm.identity.v1.Identity.ConfirmSubjectVerification") {
    return &request;
  }
  // A consent statement's evidence: where the subject's choice came from.
  if (method == "crm.consent.v1.Consent.Grant" || method == "crm.consent.v1.Consent.Withdraw" ||
      method == "crm.consent.v1.Consent.Object") {
    const pb::FieldDescriptor* f = m.input_type()->FindFieldByName("statement");
    if (f != nullptr && f->type() == pb::FieldDescriptor::TYPE_MESSAGE) {
      return request.GetReflection()->MutableMessage(&request, f);
    }
  }
  return nullptr;
}

HttpAnswer JsonApi::Call(const pb::MethodDescriptor& m, absl::string_view authorization,
                         absl::string_view body, const std::string& request_id,
                         const Seen& seen) const {
  const pb::Message* prototype =
      pb::MessageFactory::generated_factory()->GetPrototype(m.input_type());
  std::unique_ptr<pb::Message> request(prototype->New());
  if (std::optional<HttpAnswer> bad = ParseBody(body, *request)) return *std::move(bad);
  if (std::optional<HttpAnswer> bad = CheckAuthorization(authorization)) return *std::move(bad);
  if (pb::Message* target = ConnectionFilled(m, *request)) {
    // What the gateway saw of the connection, never what the body claims.
    for (const auto& [name, value] : {std::pair{"source_address", &seen.source_address},
                                      std::pair{"user_agent", &seen.user_agent}}) {
      const pb::FieldDescriptor* f = target->GetDescriptor()->FindFieldByName(name);
      if (f != nullptr && f->type() == pb::FieldDescriptor::TYPE_STRING && !f->is_repeated()) {
        target->GetReflection()->SetString(target, f, base::PrintableAscii(*value, 500));
      }
    }
  }
  std::vector<std::pair<std::string, std::string>> headers = {{rpc::kRequestIdHeader, request_id}};
  if (!authorization.empty()) headers.emplace_back("authorization", std::string(authorization));
  std::string reply;
  const grpc::Status s = rpc::UnaryCall(backends_.at(BackendOf(*m.service())),
                                        absl::StrCat("/", m.service()->full_name(), "/", m.name()),
                                        request->SerializeAsString(), headers, timeout_, &reply);
  if (!s.ok()) return ErrorAnswer(s);
  std::unique_ptr<pb::Message> response(
      pb::MessageFactory::generated_factory()->GetPrototype(m.output_type())->New());
  std::string out;
  if (!response->ParseFromString(reply) ||
      !pb::util::MessageToJsonString(*response, &out, pb::util::JsonPrintOptions()).ok()) {
    return {502, ErrorJson("INTERNAL", "the service's answer does not convert to JSON")};
  }
  return {200, std::move(out)};
}

std::string JsonApi::OpenApi(absl::string_view extra_paths) const {
  std::set<const pb::Descriptor*> needed;
  std::string paths;
  for (const pb::MethodDescriptor* m : methods_) {
    needed.insert(m->input_type());
    needed.insert(m->output_type());
    absl::StrAppend(
        &paths, paths.empty() ? "" : ",",
        json::Quote(absl::StrCat("/api/v1/", m->service()->full_name(), "/", m->name())),
        R"(:{"post":{"operationId":)", json::Quote(m->full_name()), R"(,"tags":[)",
        json::Quote(BackendOf(*m->service())),
        R"(],"requestBody":{"required":true,"content":{"application/json":{"schema":{"$ref":"#/components/schemas/)",
        m->input_type()->full_name(),
        R"("}}}},"responses":{"200":{"description":"the response message","content":{"application/json":{"schema":{"$ref":"#/components/schemas/)",
        m->output_type()->full_name(),
        R"("}}}},"default":{"$ref":"#/components/responses/Error"}}}})");
  }
  if (!extra_paths.empty()) absl::StrAppend(&paths, paths.empty() ? "" : ",", extra_paths);
  // Schemas: every message reachable from a request or response.
  std::map<std::string, std::string> schemas;
  std::set<const pb::Descriptor*> done;
  while (!needed.empty()) {
    const pb::Descriptor* d = *needed.begin();
    needed.erase(needed.begin());
    if (!done.insert(d).second) continue;
    schemas[d->full_name()] = MessageSchema(*d, needed);
    for (const pb::Descriptor* seen : done) needed.erase(seen);
  }
  std::string components =
      R"("Error":{"type":"object","properties":{"error":{"type":"object","properties":{"code":{"type":"string"},"message":{"type":"string"},"field":{"type":"string"}}}}})";
  for (const auto& [name, schema] : schemas)
    absl::StrAppend(&components, ",", json::Quote(name), ":", schema);
  return absl::StrCat(
      R"({"openapi":"3.0.3","info":{"title":"CRM gateway API","version":"v1","description":"Every method takes and returns protobuf's JSON mapping of its messages. Authenticate with Authorization: Bearer <access token> from Identity/Login."},)",
      R"("security":[{"bearer":[]}],"paths":{)", paths,
      R"(},"components":{"securitySchemes":{"bearer":{"type":"http","scheme":"bearer","bearerFormat":"JWT"}},)",
      R"("responses":{"Error":{"description":"an error: the HTTP status of the gRPC code, the code, a message naming the field at fault","content":{"application/json":{"schema":{"$ref":"#/components/schemas/Error"}}}}},)",
      R"("schemas":{)", components, "}}}");
}

}  // namespace crm::gateway
