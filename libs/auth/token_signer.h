// Access tokens: their claims and the signer. identity mints every access
// token with a TokenSigner (its current Ed25519 key and that key's id);
// tests mint theirs through TokenMinter (token_minter.h), which wraps it.
//
// Token format: a JWT (RFC 7519) in compact JWS form,
//   base64url(header) "." base64url(payload) "." base64url(Ed25519 signature)
// header  {"alg":"EdDSA","typ":"JWT","kid":"<key id>"}
// payload {"iss":..,"aud":[..],"sub":<user or service-account id>,"sid":<session id>,
//          "iat":..,"nbf":..,"exp":..,"jti":..,"permissions":[..],"teams":[..],
//          "cnf":{"x5t#S256":<certificate thumbprint>}}
// (times in Unix seconds; jti, nbf, teams and cnf only when set). See
// token_verifier.h for what is checked.
//
// TokenSigner is immutable after construction: thread-safe.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "libs/crypto/ed25519.h"

namespace crm::auth {

struct AccessTokenClaims {
  std::string issuer;
  std::vector<std::string> audience;  // at least one
  std::string subject;                // user or service-account id
  std::string session_id;
  std::vector<std::string> permissions;
  std::vector<std::string> teams;
  absl::Time issued_at;
  std::optional<absl::Time> not_before;  // omitted if unset
  absl::Time expires_at;
  std::string token_id;         // `jti`; omitted if empty
  std::string cert_thumbprint;  // `cnf["x5t#S256"]`; omitted if empty
};

class TokenSigner {
 public:
  // `kid` identifies `key` in services' KeySets.
  TokenSigner(crypto::Ed25519PrivateKey key, std::string kid);

  // The compact JWT for `claims`. INVALID_ARGUMENT naming the field if
  // issuer, audience, subject or session_id is empty, or expires_at is not
  // after issued_at; INTERNAL if signing fails.
  absl::StatusOr<std::string> Sign(const AccessTokenClaims& claims) const;

  const std::string& kid() const { return kid_; }
  crypto::Ed25519PublicKey public_key() const { return key_.PublicKey(); }

 private:
  crypto::Ed25519PrivateKey key_;
  std::string kid_;
};

// Signs exactly the given header and payload bytes (base64url-encoded, joined
// and signed as JWS does). The building block of TokenSigner::Sign, exposed
// for tests that need tokens TokenSigner would never make. INTERNAL if
// signing fails.
absl::StatusOr<std::string> SignCompactJws(const crypto::Ed25519PrivateKey& key,
                                           absl::string_view header_json,
                                           absl::string_view payload_json);

}  // namespace crm::auth
