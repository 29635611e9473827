// TokenVerifier: turns the access token a call carries into a Principal, or
// refuses it. Every service's gRPC layer (libs/rpc) calls Verify once per
// call with the bearer token; handlers then authorize with the Principal.
//
// A token is accepted only if all of these hold:
//  - at most max_token_size bytes, three non-empty base64url segments
//    (canonical, unpadded) and JSON objects within the strict parser's limits;
//  - header `alg` is exactly "EdDSA" ("none", "HS256", "ES256"... are refused,
//    so no algorithm confusion), `kid` names a key in the KeySet, `typ` if
//    present is "JWT" or "at+jwt", and there is no `crit`;
//  - the Ed25519 signature over `header.payload` verifies under that key;
//  - `iss` equals the expected issuer; `aud` (string or array) contains the
//    expected audience; `exp` is an integer and now < exp + leeway; `nbf`, if
//    present, is an integer and nbf - leeway <= now; `sub` and `sid` are
//    non-empty strings; `permissions` and `teams`, if present, are arrays of
//    strings; `cnf`, if present, is an object holding a 43-character
//    `x5t#S256`;
//  - the session is not revoked (RevocationChecker, asked on every call).
// Verified tokens are cached (VerifiedTokenCache) until exp + leeway, so the
// signature and parsing cost is paid once per token; revocation is asked
// afresh each time (the checker itself bounds any caching to a second).
//
// Every refusal is UNAUTHENTICATED with a short generic reason ("access token
// expired", "access token signature invalid", ...) that never echoes any part
// of the token. If the revocation store fails, Verify fails closed with
// UNAVAILABLE (the caller may retry).
//
// Thread-safe. The KeySet, RevocationChecker and Clock must outlive the verifier.
#pragma once

#include <cstddef>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "libs/auth/key_set.h"
#include "libs/auth/principal.h"
#include "libs/auth/revocation.h"
#include "libs/auth/token_cache.h"
#include "libs/base/clock.h"

namespace crm::auth {

struct TokenVerifierOptions {
  // Expected `iss`. Required.
  std::string issuer;
  // This service's audience, which `aud` must contain. Required.
  std::string audience;
  // Tolerated clock skew for exp and nbf. Default 30 s.
  absl::Duration leeway = absl::Seconds(30);
  // Longest token accepted, in bytes. Default 8 KiB.
  size_t max_token_size = 8 << 10;
  // Verified tokens remembered; 0 disables the cache. Default 10,000.
  size_t cache_capacity = 10'000;
};

class TokenVerifier {
 public:
  TokenVerifier(TokenVerifierOptions options, const KeySet& keys, RevocationChecker& revocation,
                const base::Clock& clock);

  // The caller's Principal (the same object for repeated calls with a cached
  // token). UNAUTHENTICATED if the token is refused (see above) or its
  // session is revoked; UNAVAILABLE if revocation cannot be checked.
  absl::StatusOr<std::shared_ptr<const Principal>> Verify(absl::string_view token);

  const VerifiedTokenCache& cache() const { return cache_; }

 private:
  // Signature and claim checks; no cache, no revocation.
  absl::StatusOr<std::shared_ptr<const Principal>> VerifyUncached(absl::string_view token,
                                                                  const KeySet::Snapshot& keys,
                                                                  absl::Time now) const;
  absl::Status CheckRevocation(const Principal& principal);

  const TokenVerifierOptions options_;
  const KeySet& keys_;
  RevocationChecker& revocation_;
  const base::Clock& clock_;
  VerifiedTokenCache cache_;
};

}  // namespace crm::auth
