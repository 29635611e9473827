#include "libs/auth/token_minter.h"

#include <cstdlib>
#include <utility>

namespace crm::auth::testing {

crypto::Ed25519PrivateKey TokenMinter::NewKey() {
  absl::StatusOr<crypto::Ed25519PrivateKey> key = crypto::Ed25519PrivateKey::Generate();
  if (!key.ok()) std::abort();
  return *std::move(key);
}

TokenMinter::TokenMinter(std::string kid) : key_(NewKey()), signer_(key_, std::move(kid)) {}

KeySet::KeyMap TokenMinter::KeyMap() const {
  KeySet::KeyMap map;
  map.emplace(kid(), public_key());
  return map;
}

AccessTokenClaims TokenMinter::DefaultClaims(absl::Time now) const {
  AccessTokenClaims c;
  c.issuer = kTestIssuer;
  c.audience = {kTestAudience};
  c.subject = "user-1";
  c.session_id = "session-1";
  c.issued_at = now;
  c.expires_at = now + absl::Minutes(15);
  return c;
}

std::string TokenMinter::Mint(const AccessTokenClaims& claims) const {
  absl::StatusOr<std::string> token = signer_.Sign(claims);
  if (!token.ok()) std::abort();
  return *std::move(token);
}

std::string TokenMinter::MintRaw(absl::string_view header_json,
                                 absl::string_view payload_json) const {
  absl::StatusOr<std::string> token = SignCompactJws(key_, header_json, payload_json);
  if (!token.ok()) std::abort();
  return *std::move(token);
}

}  // namespace crm::auth::testing
