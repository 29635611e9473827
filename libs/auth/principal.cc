#include "libs/auth/principal.h"

#include <algorithm>

#include "libs/auth/base64url.h"
#include "libs/crypto/primitives.h"

namespace crm::auth {

bool Principal::InTeam(absl::string_view team) const {
  return std::find(teams.begin(), teams.end(), team) != teams.end();
}

absl::Status Principal::CheckCertificateBinding(absl::string_view peer_cert_der) const {
  if (!IsCertificateBound()) return absl::OkStatus();
  if (peer_cert_der.empty()) {
    return absl::UnauthenticatedError("access token is bound to a client certificate");
  }
  if (!crypto::ConstantTimeEquals(CertificateThumbprint(peer_cert_der), cert_thumbprint)) {
    return absl::UnauthenticatedError("access token is bound to another client certificate");
  }
  return absl::OkStatus();
}

std::string CertificateThumbprint(absl::string_view cert_der) {
  return Base64UrlEncode(crypto::Sha256(cert_der));
}

}  // namespace crm::auth
