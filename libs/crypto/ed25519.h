// Ed25519 signatures (RFC 8032, pure EdDSA) on OpenSSL 3's EVP_PKEY API.
// identity signs JWT access tokens with it and services verify them
// (libs/auth); audit signs Merkle-tree checkpoints; erasure signs
// certificates.
//
// Keys are immutable once made and may be copied cheaply (the OpenSSL key is
// reference-counted); Sign and Verify may be called from many threads at once.
// Private keys are saved as PKCS#8 PEM ("-----BEGIN PRIVATE KEY-----"), the
// format `openssl genpkey -algorithm ed25519` writes; public keys as raw 32
// bytes or SubjectPublicKeyInfo PEM ("-----BEGIN PUBLIC KEY-----").
#pragma once

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "libs/crypto/key_file.h"
#include "libs/crypto/secret_bytes.h"

typedef struct evp_pkey_st EVP_PKEY;

namespace crm::crypto {

inline constexpr size_t kEd25519PublicKeySize = 32;
inline constexpr size_t kEd25519SeedSize = 32;
inline constexpr size_t kEd25519SignatureSize = 64;

class Ed25519PublicKey {
 public:
  // From the 32-byte encoding. INVALID_ARGUMENT if the size is wrong or the
  // bytes are rejected by OpenSSL.
  static absl::StatusOr<Ed25519PublicKey> FromRaw(absl::string_view raw);
  // From SubjectPublicKeyInfo PEM. INVALID_ARGUMENT if it does not parse or is
  // not an Ed25519 key.
  static absl::StatusOr<Ed25519PublicKey> FromPem(absl::string_view pem);

  // The 32-byte encoding.
  std::string Raw() const;
  // SubjectPublicKeyInfo PEM.
  std::string ToPem() const;

  // True if `signature` is a valid Ed25519 signature of `message` by this key.
  // Any malformed signature (wrong length included) gives false.
  [[nodiscard]] bool Verify(absl::string_view message, absl::string_view signature) const;

 private:
  explicit Ed25519PublicKey(std::shared_ptr<EVP_PKEY> key) : key_(std::move(key)) {}
  friend class Ed25519PrivateKey;
  std::shared_ptr<EVP_PKEY> key_;
};

class Ed25519PrivateKey {
 public:
  // A new random key. INTERNAL if OpenSSL fails.
  static absl::StatusOr<Ed25519PrivateKey> Generate();
  // From the 32-byte secret seed of RFC 8032. INVALID_ARGUMENT if not 32 bytes.
  static absl::StatusOr<Ed25519PrivateKey> FromSeed(absl::string_view seed);
  // From PKCS#8 PEM (unencrypted). INVALID_ARGUMENT if it does not parse or is
  // not an Ed25519 key; the message never contains the PEM.
  static absl::StatusOr<Ed25519PrivateKey> FromPem(absl::string_view pem);
  // Reads a PEM file with the checks of ReadKeyFile. Its errors, or FromPem's.
  static absl::StatusOr<Ed25519PrivateKey> LoadPemFile(const std::string& path,
                                                       const KeyFileOptions& options = {});

  // PKCS#8 PEM, in a buffer wiped on destruction. INTERNAL if OpenSSL fails.
  absl::StatusOr<SecretBytes> ToPem() const;
  // Writes ToPem() to `path` with mode 0600 (created or truncated; an existing
  // file's mode is reset to 0600). INTERNAL on any I/O error, naming the path.
  absl::Status SavePemFile(const std::string& path) const;

  // The 64-byte signature of `message`. INTERNAL if OpenSSL fails.
  absl::StatusOr<std::string> Sign(absl::string_view message) const;

  Ed25519PublicKey PublicKey() const;

 private:
  explicit Ed25519PrivateKey(std::shared_ptr<EVP_PKEY> key) : key_(std::move(key)) {}
  std::shared_ptr<EVP_PKEY> key_;
};

}  // namespace crm::crypto
