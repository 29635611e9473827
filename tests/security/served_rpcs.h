// What the suite's processes serve and who may call it, for the security
// tests on the whole suite (access_matrix_test.cc, hostile_input_test.cc):
// every gRPC service of each process and every method of them, from the
// generated descriptors, so that a new RPC is covered without being listed;
// and the access policy declared by hand (methods only named services may
// call by certificate, methods that need no access token), so that a
// service that opens a method by mistake fails a test instead of agreeing
// with itself. A method not declared needs a token.
//
// Thread-safe: the tables are built once and never change.
#pragma once

#include <google/protobuf/descriptor.h>
#include <grpcpp/support/status.h>

#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

namespace crm::security_test {

// Methods only the named services may call (by certificate); no token.
const std::map<std::string, std::set<std::string>>& CallerOnly();

// API methods any peer of our CA may call without an access token: logging
// in, public keys and proofs, and service tokens (the certificate is the
// credential).
const std::set<std::string>& NoToken();

enum class Access { kCallerOnly, kNoToken, kToken };

// How `method` ("/pkg.Service/Method") is reached.
Access AccessOf(const std::string& method);

struct Rpc {
  std::string process;  // "contacts"
  std::string method;   // "/crm.contacts.v1.Contacts/GetPerson"
};

// Every gRPC service each process serves (besides health), by process name.
// A service the generated code no longer declares is a null entry (a test
// reports it).
std::vector<std::pair<std::string, std::vector<const google::protobuf::ServiceDescriptor*>>>
Served();

// Every method of Served(), by process.
std::vector<Rpc> AllRpcs();

// "INVALID_ARGUMENT" for grpc::StatusCode::INVALID_ARGUMENT; the number for
// a code gRPC does not define.
std::string CodeName(grpc::StatusCode code);

}  // namespace crm::security_test
