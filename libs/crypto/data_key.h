// Per-subject data keys for envelope encryption (crypto-shredding). Each
// service gives every subject its own random AES-256 data key, stores it only
// wrapped by its KeyRing, and encrypts that subject's personal data with
// Seal/Open (aead.h) under the unwrapped key. Erasure deletes the wrapped key
// row; once no copy of the wrapped key remains, every ciphertext under it (in
// the database, logs or backups) is unreadable.
//
// The wrap binds the key to its owner: the AAD is
//   "crm.datakey.v1" | len(purpose) (4 bytes, big-endian) | purpose | len(subject_id) | subject_id
// so a wrapped key copied to another subject's row, or from one service's
// purpose to another's, fails to unwrap. `purpose` names the service and use,
// e.g. "contacts" or "audit.events".
//
// Destroying a key: delete the wrapped row (the caller's store), and let the
// SecretBytes holding the unwrapped key go out of scope (or Clear() it); it
// wipes itself. Do not cache unwrapped keys beyond a request unless the cache
// is dropped on erasure.
//
// Pure functions over an immutable KeyRing: thread-safe.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "libs/crypto/key_ring.h"
#include "libs/crypto/secret_bytes.h"

namespace crm::crypto {

inline constexpr size_t kDataKeySize = 32;

// A fresh random 32-byte data key.
SecretBytes NewDataKey();

// The associated data binding a wrapped data key to (purpose, subject_id).
std::string DataKeyAad(absl::string_view purpose, absl::string_view subject_id);

// Wraps `data_key` under the ring's newest KEK, bound to (purpose, subject_id).
// INVALID_ARGUMENT if the key is not 32 bytes or purpose/subject_id is empty;
// INTERNAL if OpenSSL fails.
absl::StatusOr<std::string> WrapDataKey(const KeyRing& ring, const SecretBytes& data_key,
                                        absl::string_view purpose, absl::string_view subject_id);

// Unwraps a WrapDataKey result. DATA_LOSS if it was modified, belongs to
// another subject or purpose, or does not hold a 32-byte key;
// FAILED_PRECONDITION if its KEK version is not in the ring;
// INVALID_ARGUMENT if purpose/subject_id is empty.
absl::StatusOr<SecretBytes> UnwrapDataKey(const KeyRing& ring, absl::string_view wrapped,
                                          absl::string_view purpose, absl::string_view subject_id);

// Re-wraps under the newest KEK (unchanged if already there). Errors as UnwrapDataKey.
absl::StatusOr<std::string> RewrapDataKey(const KeyRing& ring, absl::string_view wrapped,
                                          absl::string_view purpose, absl::string_view subject_id);

}  // namespace crm::crypto
