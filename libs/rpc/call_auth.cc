#include "libs/rpc/call_auth.h"

#include <openssl/bio.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "libs/base/status_macros.h"

namespace crm::rpc {

absl::StatusOr<std::string> BearerToken(const grpc::ServerContextBase& context) {
  const auto& metadata = context.client_metadata();
  auto [begin, end] = metadata.equal_range("authorization");
  if (begin == end || std::next(begin) != end) {
    return absl::UnauthenticatedError("missing access token");
  }
  absl::string_view value(begin->second.data(), begin->second.size());
  constexpr absl::string_view kScheme = "bearer ";
  if (value.size() <= kScheme.size() ||
      !absl::EqualsIgnoreCase(value.substr(0, kScheme.size()), kScheme)) {
    return absl::UnauthenticatedError("malformed authorization header");
  }
  absl::string_view token = absl::StripAsciiWhitespace(value.substr(kScheme.size()));
  if (token.empty()) return absl::UnauthenticatedError("malformed authorization header");
  return std::string(token);
}

absl::StatusOr<std::shared_ptr<const auth::Principal>> AuthorizeCall(
    const grpc::ServerContextBase& context, auth::TokenVerifier& verifier,
    absl::string_view permission) {
  CRM_ASSIGN_OR_RETURN(std::shared_ptr<const auth::Principal> p,
                       AuthenticateCall(context, verifier));
  if (!p->Has(permission)) {
    return absl::PermissionDeniedError(absl::StrCat("needs permission ", permission));
  }
  return p;
}

std::string PeerCertificateDer(const grpc::ServerContextBase& context) {
  std::shared_ptr<const grpc::AuthContext> auth = context.auth_context();
  if (auth == nullptr) return "";
  for (const grpc::string_ref& pem : auth->FindPropertyValues("x509_pem_cert")) {
    BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
    if (bio == nullptr) return "";
    X509* cert = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr);
    BIO_free(bio);
    if (cert == nullptr) return "";
    unsigned char* der = nullptr;
    int len = i2d_X509(cert, &der);
    X509_free(cert);
    if (len <= 0) return "";
    std::string out(reinterpret_cast<const char*>(der), static_cast<size_t>(len));
    OPENSSL_free(der);
    return out;
  }
  return "";
}

absl::StatusOr<std::shared_ptr<const auth::Principal>> AuthenticateCall(
    const grpc::ServerContextBase& context, auth::TokenVerifier& verifier) {
  CRM_ASSIGN_OR_RETURN(std::string token, BearerToken(context));
  CRM_ASSIGN_OR_RETURN(std::shared_ptr<const auth::Principal> principal, verifier.Verify(token));
  if (principal->IsCertificateBound()) {
    if (absl::Status s = principal->CheckCertificateBinding(PeerCertificateDer(context)); !s.ok()) {
      return absl::UnauthenticatedError("access token bound to another certificate");
    }
  }
  return principal;
}

}  // namespace crm::rpc
