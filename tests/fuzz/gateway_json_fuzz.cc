// Fuzz target `gateway_json`: what the gateway's HTTPS/JSON API does with a
// request before any service sees it (services/gateway/json_api.h): the JSON
// body mapped onto the request message (ParseBody), the Authorization header
// (IsBearer, CheckAuthorization) and the JSON error bodies (ErrorJson). The
// input is used as each of them: as the body of a CreatePerson (nested
// messages, repeated fields, enums), a Login and a consent Grant request, as
// the Authorization header, and as an error message.
//
// Properties beyond "no crash, no sanitizer report":
//  - a body that maps is a message whose strings are valid UTF-8 (it
//    serialises and parses back as protobuf), and printed as JSON it maps
//    again to the same message;
//  - a body that does not map gets 400 with one of the fixed error bodies
//    ("body: ...": not the message in JSON, or arrays nested in arrays) or
//    one naming a field of the request ("person.emails[0].address: wrong
//    JSON type or value ..."), whose path starts with a field of the message
//    and holds only schema characters: it never quotes the body;
//  - only "Bearer " + printable ASCII, at most 8 KiB, passes as a token; any
//    other non-empty Authorization gets the 401 JSON answer;
//  - every error body is JSON our strict parser accepts (valid UTF-8
//    included), holding the message cut to at most 500 bytes and a "field"
//    that is the message's prefix.
#include <google/protobuf/message.h>
#include <google/protobuf/util/json_util.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <optional>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "crm/consent/v1/consent.pb.h"
#include "crm/contacts/v1/contacts.pb.h"
#include "crm/identity/v1/identity.pb.h"
#include "libs/base/validate.h"
#include "libs/json/json.h"
#include "services/gateway/json_api.h"

namespace {

namespace pb = ::google::protobuf;
using ::crm::gateway::HttpAnswer;

[[noreturn]] void Fail(const char* property) {
  std::fprintf(stderr, "PROPERTY VIOLATED (gateway_json): %s\n", property);
  std::abort();
}

// An error body: strict JSON {"error":{"code":..,"message":..[,"field":..]}}.
void CheckErrorBody(absl::string_view body, absl::string_view message) {
  absl::StatusOr<crm::json::Value> v = crm::json::Parse(body);
  if (!v.ok()) Fail("an error body that is not JSON");
  const crm::json::Value* error = v->Find("error");
  if (error == nullptr || !error->is_object()) Fail("an error body without \"error\"");
  const crm::json::Value* m = error->Find("message");
  if (m == nullptr || !m->is_string() || m->string_value().size() > 500 ||
      !absl::StartsWith(message, m->string_value())) {
    Fail("the error message is not the message cut to 500 bytes");
  }
  if (const crm::json::Value* f = error->Find("field"); f != nullptr) {
    if (!f->is_string() || !absl::StartsWith(m->string_value(), f->string_value())) {
      Fail("the error field is not the message's prefix");
    }
  }
}

void CheckBody(absl::string_view body, pb::Message& message) {
  std::optional<HttpAnswer> bad = crm::gateway::ParseBody(body, message);
  if (bad.has_value()) {
    if (bad->status != 400) Fail("an unparsable body that is not 400");
    const std::string not_the_message = crm::gateway::ErrorJson(
        "INVALID_ARGUMENT",
        absl::StrCat("body: not a ", message.GetDescriptor()->full_name(),
                     " in JSON (unknown field, wrong type or malformed; see /openapi.json)"));
    const std::string nested_arrays = crm::gateway::ErrorJson(
        "INVALID_ARGUMENT",
        "body: an array inside an array, which no field of the request takes (see /openapi.json)");
    if (bad->body == not_the_message || bad->body == nested_arrays) return;
    // Naming a field: "<path>: wrong JSON type or value for this field ...".
    constexpr absl::string_view kFieldSuffix =
        ": wrong JSON type or value for this field (see /openapi.json)";
    absl::StatusOr<crm::json::Value> v = crm::json::Parse(bad->body);
    const crm::json::Value* error = v.ok() ? v->Find("error") : nullptr;
    const crm::json::Value* m = error != nullptr ? error->Find("message") : nullptr;
    if (m == nullptr || !m->is_string() || !absl::EndsWith(m->string_value(), kFieldSuffix)) {
      Fail("the 400 body is neither a fixed one nor names a field");
    }
    const std::string path =
        m->string_value().substr(0, m->string_value().size() - kFieldSuffix.size());
    for (char c : path) {
      if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '[' ||
            c == ']')) {
        Fail("the field named in a 400 holds a character no field path has");
      }
    }
    if (message.GetDescriptor()->FindFieldByName(path.substr(0, path.find_first_of(".["))) ==
        nullptr) {
      Fail("the field named in a 400 is not a field of the request");
    }
    CheckErrorBody(bad->body, m->string_value());
    return;
  }
  std::unique_ptr<pb::Message> copy(message.New());
  if (!copy->ParseFromString(message.SerializeAsString())) {
    Fail("a mapped body does not survive protobuf (invalid UTF-8 in a string?)");
  }
  std::string json;
  if (!pb::util::MessageToJsonString(message, &json).ok()) Fail("a mapped body does not print");
  std::unique_ptr<pb::Message> again(message.New());
  if (crm::gateway::ParseBody(json, *again).has_value()) Fail("printed JSON does not map again");
  if (again->SerializeAsString() != message.SerializeAsString()) {
    Fail("JSON -> message -> JSON -> message changed the message");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view input(reinterpret_cast<const char*>(data), size);

  crm::contacts::v1::CreatePersonRequest create;
  CheckBody(input, create);
  crm::identity::v1::LoginRequest login;
  CheckBody(input, login);
  crm::consent::v1::GrantRequest grant;
  CheckBody(input, grant);

  const bool bearer = crm::gateway::IsBearer(input);
  if (bearer) {
    if (!absl::StartsWith(input, "Bearer ") || input.size() > 8192) Fail("a bearer too long");
    for (char c : input) {
      if (c < 0x20 || c > 0x7e) Fail("a bearer with a byte outside printable ASCII");
    }
  }
  const std::optional<HttpAnswer> refused = crm::gateway::CheckAuthorization(input);
  if (refused.has_value() == (input.empty() || bearer)) Fail("CheckAuthorization disagrees");
  if (refused.has_value()) {
    if (refused->status != 401) Fail("a refused Authorization that is not 401");
    CheckErrorBody(refused->body, "Authorization: \"Bearer <access token>\" expected");
  }

  // Status messages from the services are UTF-8 (proto strings).
  if (crm::base::IsValidUtf8Text(input)) {
    CheckErrorBody(crm::gateway::ErrorJson("INVALID_ARGUMENT", input), input);
  }
  return 0;
}
