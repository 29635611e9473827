#include "libs/auth/token_signer.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "libs/auth/base64url.h"
#include "libs/base/status_macros.h"
#include "libs/json/json.h"

namespace crm::auth {
namespace {

void AppendStringArray(std::string* out, const std::vector<std::string>& items) {
  out->push_back('[');
  for (size_t i = 0; i < items.size(); ++i) {
    if (i > 0) out->push_back(',');
    json::AppendString(out, items[i]);
  }
  out->push_back(']');
}

}  // namespace

absl::StatusOr<std::string> SignCompactJws(const crypto::Ed25519PrivateKey& key,
                                           absl::string_view header_json,
                                           absl::string_view payload_json) {
  std::string out = absl::StrCat(Base64UrlEncode(header_json), ".", Base64UrlEncode(payload_json));
  CRM_ASSIGN_OR_RETURN(std::string sig, key.Sign(out));
  absl::StrAppend(&out, ".", Base64UrlEncode(sig));
  return out;
}

TokenSigner::TokenSigner(crypto::Ed25519PrivateKey key, std::string kid)
    : key_(std::move(key)), kid_(std::move(kid)) {}

absl::StatusOr<std::string> TokenSigner::Sign(const AccessTokenClaims& c) const {
  if (c.issuer.empty()) return absl::InvalidArgumentError("issuer must not be empty");
  if (c.audience.empty()) return absl::InvalidArgumentError("audience must not be empty");
  if (c.subject.empty()) return absl::InvalidArgumentError("subject must not be empty");
  if (c.session_id.empty()) return absl::InvalidArgumentError("session_id must not be empty");
  if (c.expires_at <= c.issued_at) {
    return absl::InvalidArgumentError("expires_at must be after issued_at");
  }
  std::string header = "{\"alg\":\"EdDSA\",\"typ\":\"JWT\",\"kid\":";
  json::AppendString(&header, kid_);
  header.push_back('}');

  std::string p = "{\"iss\":";
  json::AppendString(&p, c.issuer);
  p.append(",\"aud\":");
  AppendStringArray(&p, c.audience);
  p.append(",\"sub\":");
  json::AppendString(&p, c.subject);
  p.append(",\"sid\":");
  json::AppendString(&p, c.session_id);
  absl::StrAppend(&p, ",\"iat\":", absl::ToUnixSeconds(c.issued_at));
  if (c.not_before.has_value())
    absl::StrAppend(&p, ",\"nbf\":", absl::ToUnixSeconds(*c.not_before));
  absl::StrAppend(&p, ",\"exp\":", absl::ToUnixSeconds(c.expires_at));
  if (!c.token_id.empty()) {
    p.append(",\"jti\":");
    json::AppendString(&p, c.token_id);
  }
  p.append(",\"permissions\":");
  AppendStringArray(&p, c.permissions);
  if (!c.teams.empty()) {
    p.append(",\"teams\":");
    AppendStringArray(&p, c.teams);
  }
  if (!c.cert_thumbprint.empty()) {
    p.append(",\"cnf\":{\"x5t#S256\":");
    json::AppendString(&p, c.cert_thumbprint);
    p.push_back('}');
  }
  p.push_back('}');
  return SignCompactJws(key_, header, p);
}

}  // namespace crm::auth
