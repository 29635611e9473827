// One-time recovery codes: the fallback second factor when a user has lost the
// TOTP device. identity generates a set at MFA enrolment (and on request,
// replacing the old set), shows the codes once, and stores only their hashes;
// a login may present one code instead of a TOTP code, which is then used up.
//
// Format: 16 characters of Crockford's base32 alphabet (0-9, a-z without i, l,
// o, u), shown lower case in groups of four: "7k3m-q9x2-bd4t-0hwe". Input is
// normalised before hashing: spaces and dashes are dropped, letters lower-cased,
// and the look-alikes i/l -> 1 and o -> 0 folded (Crockford), so a misread
// character still matches.
//
// Why a fast hash is enough: each code holds 80 random bits from the CSPRNG
// (16 x 5), not a human-chosen secret, and hashes are salted per user, so a
// stolen table must be attacked one user at a time with ~2^80 / 10 SHA-256
// guesses per code set, out of reach for any attacker; a slow password hash
// (Argon2id) would add nothing but login latency. (The 10-character codes
// first considered carry only 50 bits, which a single GPU exhausts in hours
// against SHA-256; hence 16.) Hash = SHA-256("crm.recovery.v1" | len(salt) as
// 1 byte | salt | normalised code).
//
// Pure functions (generation draws from OpenSSL's CSPRNG): thread-safe. The
// caller must use a code up atomically (delete or mark the matched hash with a
// conditional update), so two logins racing with one code cannot both pass.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace crm::identity {

inline constexpr size_t kRecoveryCodeCount = 10;
inline constexpr size_t kRecoveryCodeLength = 16;  // characters without dashes
inline constexpr size_t kRecoverySaltSize = 16;

// A fresh random per-user salt (16 bytes), stored beside the hashes.
std::string NewRecoverySalt();

struct RecoveryCodeSet {
  // The codes in display form, to be shown to the user once and not stored.
  std::vector<std::string> codes;
  // HashRecoveryCode of each code, same order: what the store keeps.
  std::vector<std::string> hashes;
};

// `count` fresh codes (distinct) and their hashes under `salt`.
// INVALID_ARGUMENT naming `salt` if it is empty or longer than 255 bytes.
absl::StatusOr<RecoveryCodeSet> GenerateRecoveryCodes(absl::string_view salt,
                                                      size_t count = kRecoveryCodeCount);

// The canonical form of a code as a user typed it (16 characters, lower case,
// no separators, look-alikes folded). INVALID_ARGUMENT naming `recovery_code`
// if what remains is not 16 characters of the alphabet; the message never
// contains the input.
absl::StatusOr<std::string> NormalizeRecoveryCode(absl::string_view input);

// SHA-256 of salt and normalised code (format above): 32 raw bytes.
std::string HashRecoveryCode(absl::string_view salt, absl::string_view normalized_code);

// The index in `stored_hashes` of the hash matching `code` (as typed; it is
// normalised first). Every stored hash is compared, in constant time, whether
// or not one matched earlier. Used-up entries may be left empty: they never
// match. INVALID_ARGUMENT naming `recovery_code` if the code is malformed
// (NormalizeRecoveryCode); INVALID_ARGUMENT naming `salt` as in
// GenerateRecoveryCodes; NOT_FOUND if no unused code matches.
absl::StatusOr<size_t> ConsumeRecoveryCode(absl::string_view code, absl::string_view salt,
                                           absl::Span<const std::string> stored_hashes);

}  // namespace crm::identity
