// The identity of the peer of a gRPC call over our mutual TLS: the URI SAN
// `spiffe://crm.local/<name>` of its client certificate. Handlers use it for
// audit ("which service called") and the access policy uses it to decide.
// Pure functions of the call's auth context; thread-safe.
#pragma once

#include <grpcpp/security/auth_context.h>
#include <grpcpp/server_context.h>

#include <string>

namespace crm::rpc {

// The SPIFFE id of the caller ("spiffe://crm.local/identity"), from the
// auth-context property "peer_spiffe_id" or, failing that, the first spiffe://
// URI among "x509_subject_alternative_name". Empty if the peer has none (it
// cannot happen on a ServerRunner, which requires a verified certificate, but
// a certificate of our CA without a SPIFFE id would give empty).
std::string PeerIdentity(const grpc::AuthContext& auth_context);
std::string PeerIdentity(const grpc::ServerContextBase& context);

// The short name of the caller ("identity"), or empty if it has no SPIFFE id
// of our trust domain.
std::string PeerName(const grpc::ServerContextBase& context);

}  // namespace crm::rpc
