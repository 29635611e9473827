// Link tokens: what an unsubscribe link or a double opt-in confirmation link
// carries, so that following it needs no cookie and no login, and nobody can
// forge one for another subject or list.
//
//   <kind>.<payload, base64url>.<tag, base64url>
//   kind     "u" (unsubscribe) or "c" (confirm)
//   payload  the subject id's 16 bytes, the issue time (8 bytes, unix s, big
//            endian) and the list id
//   tag      HMAC-SHA256(key, kind "." payload), first 16 bytes
//
// The key is mailing's own (setting token_key_file), never a KEK. Unsubscribe
// tokens do not expire (a link in an old mail must keep working, RFC 8058);
// confirmation tokens expire after `max_age`. A token names the subject by
// its pseudonymous id only.
//
// Immutable after construction: thread-safe.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "libs/crypto/secret_bytes.h"

namespace crm::mailing {

enum class TokenKind { kUnsubscribe, kConfirm };

struct LinkClaims {
  TokenKind kind = TokenKind::kUnsubscribe;
  std::string subject_id;  // canonical UUID
  std::string list_id;
  absl::Time issued_at;
};

class LinkTokens {
 public:
  // INVALID_ARGUMENT if `key` is shorter than 32 bytes.
  static absl::StatusOr<LinkTokens> Create(crypto::SecretBytes key);

  // `subject_id` must be a canonical UUID, `list_id` a list id.
  std::string Issue(TokenKind kind, absl::string_view subject_id, absl::string_view list_id,
                    absl::Time now) const;
  // The claims of a token of `kind`: INVALID_ARGUMENT "token: malformed",
  // "token: not valid" (forged, altered, or of another kind) or, for a
  // confirmation older than `max_age`, "token: expired".
  absl::StatusOr<LinkClaims> Verify(TokenKind kind, absl::string_view token, absl::Time now,
                                    absl::Duration max_age = absl::InfiniteDuration()) const;

 private:
  explicit LinkTokens(crypto::SecretBytes key) : key_(std::move(key)) {}
  std::string Tag(absl::string_view signed_part) const;
  crypto::SecretBytes key_;
};

}  // namespace crm::mailing
