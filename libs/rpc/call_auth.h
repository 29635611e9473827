// Authenticating the caller of an API method: every service's handlers call
// AuthenticateCall first, which reads the access token from the call's
// metadata ("authorization: Bearer <jwt>"), verifies it (libs/auth
// TokenVerifier: signature, claims, revocation) and, for a token bound to a
// client certificate (RFC 8705 cnf x5t#S256), checks that the mutual-TLS
// peer presented that very certificate. Handlers then authorize with the
// returned Principal (Has("contacts.read"), ...).
//
// The certificate check is what makes a stolen service-account token useless
// to anyone without the system's private key.
//
// Thread-safe (the verifier is).
#pragma once

#include <grpcpp/server_context.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "libs/auth/principal.h"
#include "libs/auth/token_verifier.h"

namespace crm::rpc {

// The caller's Principal. UNAUTHENTICATED "missing access token" without
// (or with more than one) authorization header, "malformed authorization
// header" unless it is "Bearer <token>" (scheme case-insensitive), the
// verifier's refusals, and "access token bound to another certificate";
// UNAVAILABLE when revocation cannot be checked. Messages never echo the
// token.
absl::StatusOr<std::shared_ptr<const auth::Principal>> AuthenticateCall(
    const grpc::ServerContextBase& context, auth::TokenVerifier& verifier);

// AuthenticateCall, then PERMISSION_DENIED "needs permission <permission>"
// unless the principal holds it.
absl::StatusOr<std::shared_ptr<const auth::Principal>> AuthorizeCall(
    const grpc::ServerContextBase& context, auth::TokenVerifier& verifier,
    absl::string_view permission);

// The DER encoding of the peer's certificate on this call, or empty if it
// presented none (or it cannot be decoded).
std::string PeerCertificateDer(const grpc::ServerContextBase& context);

// The bearer token of the call, or empty. For handlers that take a token
// without verifying it as an access token (none yet); AuthenticateCall
// covers the rest.
absl::StatusOr<std::string> BearerToken(const grpc::ServerContextBase& context);

}  // namespace crm::rpc
