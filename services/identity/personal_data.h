// PersonalData: how identity's service layer turns personal data into what
// the stores keep: blind indexes (HMAC-SHA256 under the blind-index key, with
// the field name as domain separator, so a username and an e-mail with the
// same text index differently) for look-ups, and AES-256-GCM ciphertext under
// the KEK ring with the field name as associated data (a ciphertext moved to
// another column does not open) for display.
//
// Immutable after construction: thread-safe.
#pragma once

#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "libs/crypto/blind_index.h"
#include "libs/crypto/key_ring.h"

namespace crm::identity {

enum class PersonalField {
  kUsername,
  kEmail,
  kDisplayName,
  kSourceAddress,
  kUserAgent,
  kJustification,
  kTotpSecret,
};

class PersonalData {
 public:
  // Both must outlive this object.
  PersonalData(const crypto::BlindIndexer& indexer, const crypto::KeyRing& ring)
      : indexer_(indexer), ring_(ring) {}

  // The blind index of an already normalised value.
  std::string Index(PersonalField field, absl::string_view normalized) const;

  // Sealed `plaintext`; INTERNAL if OpenSSL fails.
  absl::StatusOr<std::string> Seal(PersonalField field, absl::string_view plaintext) const;
  // Sealed, or nullopt for an empty value (optional columns).
  absl::StatusOr<std::optional<std::string>> SealOptional(PersonalField field,
                                                          absl::string_view plaintext) const;

  // The plaintext of a Seal result; DATA_LOSS if it does not open (with
  // the field's name, never the value).
  absl::StatusOr<std::string> Open(PersonalField field, absl::string_view sealed) const;
  // Open, or "" for nullopt.
  absl::StatusOr<std::string> OpenOptional(PersonalField field,
                                           const std::optional<std::string>& sealed) const;

 private:
  const crypto::BlindIndexer& indexer_;
  const crypto::KeyRing& ring_;
};

}  // namespace crm::identity
