#include "libs/rpc/peer.h"

#include "absl/strings/match.h"
#include "libs/pki/pki.h"

namespace crm::rpc {

std::string PeerIdentity(const grpc::AuthContext& auth_context) {
  for (const grpc::string_ref& v : auth_context.FindPropertyValues("peer_spiffe_id")) {
    return std::string(v.data(), v.size());
  }
  for (const grpc::string_ref& v :
       auth_context.FindPropertyValues("x509_subject_alternative_name")) {
    absl::string_view s(v.data(), v.size());
    if (absl::StartsWith(s, "spiffe://")) return std::string(s);
  }
  return "";
}

std::string PeerIdentity(const grpc::ServerContextBase& context) {
  std::shared_ptr<const grpc::AuthContext> auth = context.auth_context();
  return auth == nullptr ? "" : PeerIdentity(*auth);
}

std::string PeerName(const grpc::ServerContextBase& context) {
  return pki::NameFromSpiffeId(PeerIdentity(context));
}

}  // namespace crm::rpc
