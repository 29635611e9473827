// JsonApi: the gateway's HTTPS/JSON API over the services' gRPC methods.
//
//   POST /api/v1/<package.Service>/<Method>     e.g. /api/v1/crm.contacts.v1.Contacts/GetPerson
//
// The body is the request message in protobuf's JSON mapping (field names in
// lowerCamelCase or as in the proto; unknown fields refused); the answer is
// the response message in the same mapping. The caller's `Authorization:
// Bearer <token>` goes through as call metadata: the services authenticate
// and authorize every call themselves, so the gateway holds no rules. It
// calls them over mutual TLS as "gateway".
//
// Exposed: every unary method of the services of the backends configured
// (package crm.<backend>.v1), except service-to-service ones
// (crm.audit.v1.AuditIngest, Mailing/SendTransactional, Identity/CheckSession;
// SubjectData is in no backend's package) and those authorized by the
// caller's certificate alone
// (Identity/IssueServiceToken, Mailing/Unsubscribe and ConfirmSubscription,
// Contacts/GetMailingAddresses):
// through the API that certificate would be the gateway's, for anyone.
// Identity/Login and the data subjects' sign-in (Identity/
// StartSubjectVerification and ConfirmSubjectVerification, which identity
// allows to the gateway's certificate only: they are meant for anyone)
// get the client's address as the gateway saw it (the connection's, or
// X-Forwarded-For's from a trusted proxy: client_address.h) and User-Agent,
// never the body's; so do consent statements (Grant, Withdraw, Object), as
// their evidence.
//
// Errors are JSON: {"error": {"code": "INVALID_ARGUMENT", "message":
// "email: ...", "field": "email"}} with the HTTP status of the gRPC code
// (HttpStatusOf). Messages come from the services, which never put personal
// values in them; a body that does not parse is described without echoing
// it.
//
// Thread-safe.
#pragma once

#include <google/protobuf/descriptor.h>
#include <google/protobuf/message.h>
#include <grpcpp/channel.h>

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace crm::gateway {

struct HttpAnswer {
  int status = 200;
  std::string body;  // JSON
};

// True for "Bearer <token>" of printable ASCII, at most 8 KiB: anything else
// must not reach gRPC metadata (which refuses it).
bool IsBearer(absl::string_view authorization);

// The HTTP status of a gRPC status code: INVALID_ARGUMENT 400,
// UNAUTHENTICATED 401, PERMISSION_DENIED 403, NOT_FOUND 404,
// ALREADY_EXISTS / ABORTED / FAILED_PRECONDITION 409, RESOURCE_EXHAUSTED 429,
// UNIMPLEMENTED 501, UNAVAILABLE 503, DEADLINE_EXCEEDED 504, others 500.
int HttpStatusOf(int grpc_code);

// The JSON error body: code name, message (at most 500 bytes, cut at a UTF-8
// character boundary) and, when the message starts with a field path
// ("email: ..."), that field.
std::string ErrorJson(absl::string_view code, absl::string_view message);

// The answer for a failed call: HttpStatusOf its code and ErrorJson.
HttpAnswer ErrorAnswer(const grpc::Status& s);
// The 401 for an Authorization header that is present but not IsBearer;
// nullopt when it may be forwarded (or is absent).
std::optional<HttpAnswer> CheckAuthorization(absl::string_view authorization);
// Parses `body` ("" is {}) into `message` (protobuf's JSON mapping, unknown
// fields refused, arrays inside arrays refused unless the message can hold a
// google.protobuf.ListValue: protobuf would flatten them). Otherwise the 400
// naming the field whose value has the wrong type or is out of range
// ("person.emails[0].address") where protobuf says which, else "body";
// never echoing the input.
std::optional<HttpAnswer> ParseBody(absl::string_view body, google::protobuf::Message& message);

class JsonApi {
 public:
  // `backends`: a service name ("contacts") and a channel to it.
  JsonApi(std::map<std::string, std::shared_ptr<grpc::Channel>> backends, absl::Duration timeout);

  // The exposed method `service`/`method`, or nullptr.
  const google::protobuf::MethodDescriptor* Find(absl::string_view service,
                                                 absl::string_view method) const;
  // The message of `request` (for method `m`) whose source_address and
  // user_agent the gateway sets from the connection, or null: Login, the
  // subject sign-in, and consent statements (Grant, Withdraw, Object: the
  // evidence of where a choice came from).
  static google::protobuf::Message* ConnectionFilled(const google::protobuf::MethodDescriptor& m,
                                                     google::protobuf::Message& request);

  // What the gateway itself saw of an HTTP request: Identity/Login's
  // `source_address` (GatewayServer's client address) and `user_agent` are
  // these, never what the body claims.
  struct Seen {
    std::string source_address;
    std::string user_agent;
  };
  // Calls `m` with the JSON `body` ("" is {}), forwarding `authorization`
  // (401 unless empty or IsBearer) and `request_id`.
  HttpAnswer Call(const google::protobuf::MethodDescriptor& m, absl::string_view authorization,
                  absl::string_view body, const std::string& request_id, const Seen& seen) const;
  // Every exposed method, by full name.
  const std::vector<const google::protobuf::MethodDescriptor*>& methods() const { return methods_; }
  // The OpenAPI 3 document of every exposed method (and `extra_paths`, a
  // JSON object's members without braces, for the gateway's own routes).
  std::string OpenApi(absl::string_view extra_paths) const;

 private:
  std::map<std::string, std::shared_ptr<grpc::Channel>> backends_;
  absl::Duration timeout_;
  std::vector<const google::protobuf::MethodDescriptor*> methods_;
};

}  // namespace crm::gateway
