// Blind indexes: HMAC-SHA256 of a normalised value (e-mail, phone, tax id)
// under a dedicated key, so that services can look records up by such values
// without storing them in clear (contacts, mailing, consent). Normalise first
// (crm::base::NormalizeEmail / NormalizePhone): the index matches only
// byte-identical input.
//
// The key is not a KEK and must not be one: a separate 32-byte (or longer)
// secret, in a file of key lines (key_file.h) holding exactly one key, e.g.
//   # blind-index key: never rotate without re-indexing every row
//   1 <base64 of 32 random bytes>
// Rotating it means recomputing every stored index, so there is one version.
//
// Immutable after construction: thread-safe.
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "libs/crypto/key_file.h"
#include "libs/crypto/secret_bytes.h"

typedef struct evp_mac_ctx_st EVP_MAC_CTX;

namespace crm::crypto {

class BlindIndexer {
 public:
  // INVALID_ARGUMENT if `key` is shorter than 32 bytes.
  static absl::StatusOr<BlindIndexer> Create(SecretBytes key);
  // Reads a key file holding exactly one 32-byte key. Errors of ReadKeyFile
  // and ParseKeyLines (naming the line); INVALID_ARGUMENT if it holds more
  // than one key.
  static absl::StatusOr<BlindIndexer> LoadFromFile(const std::string& path,
                                                   const KeyFileOptions& options = {});

  BlindIndexer(BlindIndexer&&) = default;
  BlindIndexer& operator=(BlindIndexer&&) = default;

  // HMAC-SHA256(key, normalized_value): 32 raw bytes (for BYTEA columns).
  // Aborts only if OpenSSL fails (allocation), like the primitives.
  std::string Raw(absl::string_view normalized_value) const;
  // The same as 64 lower-case hex characters (for text keys, e.g. Redis).
  std::string Hex(absl::string_view normalized_value) const;

 private:
  explicit BlindIndexer(std::shared_ptr<EVP_MAC_CTX> keyed) : keyed_(std::move(keyed)) {}
  // An HMAC-SHA256 context initialised with the key and never updated; each
  // Raw() works on a duplicate (a read-only use of this one), which saves the
  // digest fetch and key set-up per call. OpenSSL keeps the key in cleansed memory.
  std::shared_ptr<EVP_MAC_CTX> keyed_;
};

}  // namespace crm::crypto
