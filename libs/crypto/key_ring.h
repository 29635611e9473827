// KeyRing: the versioned key-encryption keys (KEKs) of one service, loaded
// from a file or a mounted Kubernetes Secret. Services use it to wrap and
// unwrap their per-subject data keys (see data_key.h); operators rotate by
// appending a line with a higher version and restarting (or reloading), then
// re-wrapping stored data keys with Rewrap.
//
// File format: the key lines of key_file.h, each key 32 random bytes, e.g.
//   # contacts KEKs; the highest version wraps new keys
//   1 <base64 of 32 random bytes>
//   2 <base64 of 32 random bytes>
// Make one with: `printf '1 %s\n' "$(openssl rand -base64 32)" > kek.keys; chmod 0600 kek.keys`.
//
// Wrapped format (all lengths in bytes):
//   | 0x01 (format) | KEK version (4, big-endian) | nonce (12) | ciphertext | tag (16) |
// AES-256-GCM under the KEK of that version; the GCM associated data is the
// first 5 bytes followed by the caller's AAD, so neither the version nor the
// binding can be altered.
//
// Immutable after construction, hence thread-safe. To reload at runtime, build
// a new KeyRing and swap a std::shared_ptr<const KeyRing>.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "libs/crypto/key_file.h"
#include "libs/crypto/secret_bytes.h"

namespace crm::crypto {

inline constexpr uint8_t kWrappedFormatV1 = 0x01;
inline constexpr size_t kWrapHeaderSize = 5;

class KeyRing {
 public:
  // Reads and parses the key file at `path`. Errors of ReadKeyFile (missing
  // file, mode too open) and of Parse (prefixed with the path).
  static absl::StatusOr<KeyRing> LoadFromFile(const std::string& path,
                                              const KeyFileOptions& options = {});
  // Parses key-file text. INVALID_ARGUMENT naming the line for malformed
  // lines, non-base64 keys, keys that are not 32 bytes or duplicate versions;
  // INVALID_ARGUMENT if there is no key, or every key is pending.
  static absl::StatusOr<KeyRing> Parse(absl::string_view text);
  // From keys in memory (tests, or keys from another source). Same checks as Parse.
  static absl::StatusOr<KeyRing> FromKeys(std::vector<VersionedKey> keys);

  KeyRing(KeyRing&&) = default;
  KeyRing& operator=(KeyRing&&) = default;

  // The highest version not marked pending: the one Wrap uses.
  uint32_t active_version() const { return active_; }
  // All versions held (pending ones too), ascending.
  std::vector<uint32_t> versions() const;

  // Encrypts `plaintext` under the active KEK, binding `aad`.
  // INTERNAL if OpenSSL fails.
  absl::StatusOr<std::string> Wrap(absl::string_view plaintext, absl::string_view aad) const;

  // Decrypts a Wrap result with the KEK of the version it records.
  // DATA_LOSS if it is truncated, of an unknown format, or fails
  // authentication (modified, wrong AAD); FAILED_PRECONDITION if its KEK
  // version is not in this ring (the message gives the version number).
  absl::StatusOr<std::string> Unwrap(absl::string_view wrapped, absl::string_view aad) const;
  // As Unwrap, into a buffer wiped on destruction.
  absl::StatusOr<SecretBytes> UnwrapSecret(absl::string_view wrapped, absl::string_view aad) const;

  // Re-encrypts `wrapped` under the active KEK (same AAD). If it already is
  // under the active version it is checked and returned unchanged, so callers
  // can skip the write when the result equals the input. Errors as Unwrap.
  absl::StatusOr<std::string> Rewrap(absl::string_view wrapped, absl::string_view aad) const;

  // The KEK version recorded in `wrapped`, without decrypting.
  // DATA_LOSS if it is too short or of an unknown format.
  static absl::StatusOr<uint32_t> WrappedVersion(absl::string_view wrapped);

 private:
  KeyRing(std::map<uint32_t, SecretBytes> keys, uint32_t active)
      : keys_(std::move(keys)), active_(active) {}
  absl::Status UnwrapTo(absl::string_view wrapped, absl::string_view aad, uint8_t* out) const;

  std::map<uint32_t, SecretBytes> keys_;  // never empty
  uint32_t active_;                       // a key of keys_
};

}  // namespace crm::crypto
