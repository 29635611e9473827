// AES-256-GCM authenticated encryption with associated data, in a
// self-describing format. Used by the key ring (wrapping data keys), by every
// service encrypting personal data under a subject's data key, and by audit
// for event details.
//
// Sealed format (all lengths in bytes):
//
//   | 0x01 (format version) | nonce (12) | ciphertext (= plaintext length) | tag (16) |
//
// The nonce is 12 random bytes per message, so a key must not seal more than
// about 2^32 messages (NIST SP 800-38D, section 8.3); per-subject data keys are
// nowhere near that. The version byte is authenticated too (it is fed to GCM
// as a prefix of the associated data). The associated data (AAD) is not
// stored: the caller must supply the same bytes to Open, typically the
// identifiers the ciphertext belongs to (table, column, subject id), so that a
// ciphertext moved to another row fails to open.
//
// Thread-safe: no shared mutable state.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "libs/crypto/secret_bytes.h"

struct evp_cipher_ctx_st;  // OpenSSL's EVP_CIPHER_CTX

namespace crm::crypto {

namespace internal {
struct CipherCtxFree {
  void operator()(evp_cipher_ctx_st* c) const;
};
}  // namespace internal

inline constexpr size_t kAes256KeySize = 32;
inline constexpr size_t kGcmNonceSize = 12;
inline constexpr size_t kGcmTagSize = 16;
inline constexpr uint8_t kSealedFormatV1 = 0x01;
// Bytes added to the plaintext by Seal: version + nonce + tag.
inline constexpr size_t kSealOverhead = 1 + kGcmNonceSize + kGcmTagSize;

// Encrypts `plaintext` under the 32-byte `key`, binding `aad`, with a fresh
// random nonce. Returns the sealed bytes (format above).
// INVALID_ARGUMENT if the key is not 32 bytes; INTERNAL if OpenSSL fails.
absl::StatusOr<std::string> Seal(const SecretBytes& key, absl::string_view plaintext,
                                 absl::string_view aad);

// Seal under one key many times in a row (the fields of one person, the
// events of one batch): the key is set up once, not per message, and each
// message is one allocation. Each Seal draws its own random nonce, as Seal
// does. Not thread-safe; movable.
class SealingKey {
 public:
  // INVALID_ARGUMENT if the key is not 32 bytes; INTERNAL if OpenSSL fails.
  static absl::StatusOr<SealingKey> Create(const SecretBytes& key);
  SealingKey(SealingKey&&) noexcept;
  SealingKey& operator=(SealingKey&&) noexcept;
  ~SealingKey();

  // As crypto::Seal under this key.
  absl::StatusOr<std::string> Seal(absl::string_view plaintext, absl::string_view aad);

 private:
  SealingKey() = default;
  std::unique_ptr<evp_cipher_ctx_st, internal::CipherCtxFree> ctx_;
};

// Decrypts what Seal produced under the same key and AAD.
// DATA_LOSS if the input is truncated, has an unknown format version, or fails
// authentication (any modified byte, wrong key or wrong AAD): no plaintext is
// ever returned in that case. INVALID_ARGUMENT if the key is not 32 bytes.
absl::StatusOr<std::string> Open(const SecretBytes& key, absl::string_view sealed,
                                 absl::string_view aad);

// Open into a buffer wiped on destruction, for secrets (e.g. data keys).
// Same errors as Open.
absl::StatusOr<SecretBytes> OpenSecret(const SecretBytes& key, absl::string_view sealed,
                                       absl::string_view aad);

namespace internal {

// Raw AES-256-GCM with an explicit 12-byte nonce: returns ciphertext || tag.
// The GCM associated data is `aad_prefix` followed by `aad`. For known-answer
// tests and for formats built on top (the key ring); a nonce must never be
// reused under one key, so production code calls Seal.
// INVALID_ARGUMENT on a bad key or nonce size; INTERNAL if OpenSSL fails.
absl::StatusOr<std::string> GcmEncrypt(absl::string_view key, absl::string_view nonce,
                                       absl::string_view aad_prefix, absl::string_view aad,
                                       absl::string_view plaintext);

// Inverse of GcmEncrypt, writing the plaintext (ciphertext_and_tag.size() - 16
// bytes) to `out`. DATA_LOSS if authentication fails or the input is shorter
// than a tag; `out` is wiped in that case. INVALID_ARGUMENT on bad sizes.
absl::Status GcmDecrypt(absl::string_view key, absl::string_view nonce,
                        absl::string_view aad_prefix, absl::string_view aad,
                        absl::string_view ciphertext_and_tag, uint8_t* out);

}  // namespace internal
}  // namespace crm::crypto
