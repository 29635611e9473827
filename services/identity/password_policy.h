// PasswordPolicy: the rules a new password must meet, each broken rule
// reported as its own Violation with a stable code and a message that names
// the rule, never the password, username or e-mail address:
//
//   invalid_utf8       not valid UTF-8 text (control characters other than tab,
//                      CR and LF count as invalid); reported alone
//   too_short          fewer than min_length Unicode code points (default 12)
//   too_long           more than max_length code points (default 128), or more
//                      than kMaxPasswordBytes bytes (then reported alone)
//   contains_username  contains the username
//   contains_email     contains the e-mail address, its local part, or its
//                      local part before a '+' sub-address tag
//   common_password    is on the shipped list of common passwords, also after
//                      stripping leading/trailing digits and symbols (below)
//   reused             matches one of the last history_size stored hashes
//
// Case-insensitive comparisons fold ASCII letters only (no Unicode case
// folding or normalisation). Username and e-mail identifiers shorter than
// min_identifier_length code points (default 3) are not looked for, since
// forbidding every password containing "al" would reject good ones for no gain.
//
// Common passwords (common_passwords.txt, embedded at build time): the
// password, lower-cased (ASCII), is rejected if any of these is on the list:
//   1. the whole password;
//   2. the password with a trailing run of ASCII digits and symbols removed,
//      for every length of that run ("password123!" -> "password123",
//      "password12", "password1", "password");
//   3. the password with a leading run of ASCII digits and symbols removed, for
//      every length of that run ("123password" -> "23password", ...,
//      "password");
//   4. the password with both removed entirely ("!!password123" -> "password").
// "Symbols" are ASCII punctuation and space. Letter substitutions ("p@ssw0rd")
// are caught only when the substituted form is itself on the list.
//
// Cost: everything but `reused` is a few microseconds. `reused` runs one
// Argon2id verification per stored hash (with that hash's parameters, ~20-30
// ms each at the defaults on our machines), so a check against a full history
// of 5 costs about 5 password hashes; it only runs when the password is
// acceptable hasher input.
//
// Used by identity's password-set, password-change and admin-reset paths.
// Thread-safety: a PasswordPolicy is immutable after Create(); Check may be
// called concurrently.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "services/identity/password_hasher.h"

namespace crm::identity {

enum class ViolationCode {
  kInvalidUtf8,
  kTooShort,
  kTooLong,
  kContainsUsername,
  kContainsEmail,
  kCommonPassword,
  kReused,
};

// The stable machine-readable name: "invalid_utf8", "too_short", "too_long",
// "contains_username", "contains_email", "common_password", "reused".
absl::string_view ViolationCodeName(ViolationCode code);

struct Violation {
  ViolationCode code;
  // A human-readable sentence fragment naming the rule, e.g. "must be at least
  // 12 characters". Contains no secret or personal data.
  std::string message;
};

struct PolicyParams {
  // Minimum length in Unicode code points. Default 12. Valid: 1..max_length.
  size_t min_length = 12;
  // Maximum length in Unicode code points. Default 128. Valid:
  // min_length..kMaxPasswordCodePoints (what PasswordHasher accepts).
  size_t max_length = 128;
  // How many previous passwords may not be reused. Default 5. 0 disables.
  size_t history_size = 5;
  // Usernames and e-mail parts shorter than this (code points) are not looked
  // for inside the password. Default 3. Valid: >= 1.
  size_t min_identifier_length = 3;
};

// What Check needs to know besides the password.
struct PolicyContext {
  absl::string_view username;
  absl::string_view email;
  // The account's previous PHC-encoded hashes, newest first (the current
  // password's hash included). Only the first history_size are checked.
  absl::Span<const std::string> previous_hashes;
  // Verifies `password` against `previous_hashes`.
  const PasswordHasher& hasher;
};

class PasswordPolicy {
 public:
  // Fails with INVALID_ARGUMENT naming the setting if `params` is out of range.
  static absl::StatusOr<PasswordPolicy> Create(const PolicyParams& params = PolicyParams());

  const PolicyParams& params() const { return params_; }

  // Every rule `password` breaks, in the order of the table above; empty if it
  // is acceptable. Fails only if a stored hash in `context.previous_hashes`
  // cannot be checked: DATA_LOSS if it is malformed (see
  // PasswordHasher::Verify), INTERNAL if libargon2 fails.
  absl::StatusOr<std::vector<Violation>> Check(absl::string_view password,
                                               const PolicyContext& context) const;

 private:
  explicit PasswordPolicy(const PolicyParams& params) : params_(params) {}

  PolicyParams params_;
};

// OK if `violations` is empty; otherwise INVALID_ARGUMENT
// "password: <code>: <message>; <code>: <message>..." listing every violation,
// with the codes also attached, comma-separated, as the payload
// kPasswordViolationsPayload (for the edge to map into a structured error).
inline constexpr absl::string_view kPasswordViolationsPayload =
    "type.crm.local/crm.identity.PasswordViolations";
absl::Status ToStatus(const std::vector<Violation>& violations);

// True if `password` matches the common-password list under rules 1-4 above.
bool IsCommonPassword(absl::string_view password);

// The embedded list: lower-case, sorted (byte order), without duplicates.
// Defined in the .cc generated from common_passwords.txt at build time.
absl::Span<const absl::string_view> CommonPasswordList();

}  // namespace crm::identity
