// Principal: who is calling, as established from a verified access token
// (libs/auth TokenVerifier). Handlers in every service read it to authorize:
// Has("contacts.read.all"), team membership for record-level checks, and the
// certificate binding of service-account tokens.
//
// Immutable once built and shared as std::shared_ptr<const Principal>:
// thread-safe to read.
#pragma once

#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace crm::auth {

// The one permission of a data subject's token (identity's
// ConfirmSubjectVerification): `sub` is their subject id, and services let it
// act on that subject's own data only.
inline constexpr char kSubjectSelf[] = "subject.self";

struct Principal {
  std::string user_id;     // the token's `sub`: operator or service-account id
  std::string session_id;  // `sid`: what revocation is keyed by
  absl::flat_hash_set<std::string> permissions;
  std::vector<std::string> teams;
  absl::Time expires_at;  // the token's `exp`
  // `cnf["x5t#S256"]`: base64url (no padding) SHA-256 of the DER client
  // certificate the token is bound to; empty if the token is not bound.
  std::string cert_thumbprint;

  bool Has(absl::string_view permission) const { return permissions.contains(permission); }
  // Whether this is the data subject `subject_id` acting on their own data.
  bool IsSubject(absl::string_view subject_id) const {
    return Has(kSubjectSelf) && !subject_id.empty() && user_id == subject_id;
  }
  bool InTeam(absl::string_view team) const;
  bool IsCertificateBound() const { return !cert_thumbprint.empty(); }

  // OK if the token is unbound, or bound to the certificate whose DER
  // encoding is `peer_cert_der` (compared in constant time).
  // UNAUTHENTICATED if it is bound to another certificate, or bound and the
  // peer presented none (empty).
  absl::Status CheckCertificateBinding(absl::string_view peer_cert_der) const;
};

// The x5t#S256 thumbprint of a DER certificate (RFC 8705 section 3.1):
// base64url without padding of its SHA-256.
std::string CertificateThumbprint(absl::string_view cert_der);

}  // namespace crm::auth
