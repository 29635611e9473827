// Small cryptographic building blocks on OpenSSL 3's EVP interfaces: secure
// random bytes, SHA-256, HMAC-SHA256 and constant-time comparison. Used by the
// rest of libs/crypto, by libs/auth (token hashes, certificate thumbprints) and
// by services (random tokens, hashed identifiers).
//
// All functions are pure or draw from OpenSSL's thread-safe CSPRNG, so they
// are thread-safe. The functions here have no input-dependent failure; if
// OpenSSL itself fails (allocation failure, a broken provider) they abort the
// process rather than return weak output, as crm::base::NewUuid does.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"
#include "libs/crypto/secret_bytes.h"

namespace crm::crypto {

inline constexpr size_t kSha256Size = 32;

// `n` bytes from the OpenSSL CSPRNG. Draws of up to 64 bytes are served from
// a per-thread buffer of its output (wiped as served; refilled after fork()).
std::string RandomBytes(size_t n);
// `n` bytes from the OpenSSL CSPRNG, in a buffer wiped on destruction.
SecretBytes RandomSecret(size_t n);

// SHA-256 of `data`: 32 raw bytes.
std::string Sha256(absl::string_view data);

// HMAC-SHA256 of `data` under `key` (any length): 32 raw bytes.
std::string HmacSha256(absl::string_view key, absl::string_view data);

// True if `a` and `b` have the same length and content. The time taken depends
// on the length only, never on where the inputs differ (CRYPTO_memcmp).
bool ConstantTimeEquals(absl::string_view a, absl::string_view b);

}  // namespace crm::crypto
