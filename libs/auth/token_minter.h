// Test helper (target crm_auth_testing): mints access tokens for tests of
// any service, with a freshly generated Ed25519 key, through the production
// TokenSigner. Also signs arbitrary header/payload JSON, to build the hostile
// tokens verifier tests need (alg "none", missing claims, ...).
//
//   TokenMinter minter;                       // key id "test-key-1"
//   KeySet keys(minter.KeyMap());
//   AccessTokenClaims c = minter.DefaultClaims(clock.Now());
//   c.permissions = {"contacts.read"};
//   std::string token = minter.Mint(c);
//
// Not for production code. Thread-safe (immutable after construction).
// Failures abort: they mean a broken test set-up, not a test result.
#pragma once

#include <string>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "libs/auth/key_set.h"
#include "libs/auth/token_signer.h"

namespace crm::auth::testing {

inline constexpr char kTestIssuer[] = "crm-identity";
inline constexpr char kTestAudience[] = "crm-test";

class TokenMinter {
 public:
  explicit TokenMinter(std::string kid = "test-key-1");

  const std::string& kid() const { return signer_.kid(); }
  crypto::Ed25519PublicKey public_key() const { return signer_.public_key(); }
  // {kid -> public key}, ready for KeySet.
  KeySet::KeyMap KeyMap() const;

  // Claims valid from `now` for 15 minutes: issuer kTestIssuer, audience
  // {kTestAudience}, subject "user-1", session "session-1", no permissions.
  AccessTokenClaims DefaultClaims(absl::Time now) const;

  std::string Mint(const AccessTokenClaims& claims) const;
  // header_json and payload_json signed exactly as given.
  std::string MintRaw(absl::string_view header_json, absl::string_view payload_json) const;

 private:
  static crypto::Ed25519PrivateKey NewKey();
  crypto::Ed25519PrivateKey key_;
  TokenSigner signer_;
};

}  // namespace crm::auth::testing
