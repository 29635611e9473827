// Time-based one-time passwords (TOTP, RFC 6238 over HOTP, RFC 4226) as the
// second factor of identity's logins: HMAC-SHA1, 30-second steps from the Unix
// epoch, 6 digits, the codes of the previous, current and next step accepted,
// and no step accepted twice. identity's MFA enrolment (NewTotpSecret,
// ProvisioningUri), confirmation and login (VerifyTotp) use it; the caller
// stores the secret encrypted and the last used step with it, and updates the
// step atomically with the check (compare-and-set), so two logins racing with
// one code cannot both pass.
//
// Secrets are SecretBytes and never appear in a status message. The
// provisioning URI does contain the secret: show it (as a QR code) once, at
// enrolment, and never log it.
//
// Pure functions (the secret generator draws from OpenSSL's CSPRNG):
// thread-safe.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "libs/crypto/secret_bytes.h"

namespace crm::identity {

inline constexpr size_t kTotpSecretSize = 20;  // 160 bits, as RFC 4226 recommends
inline constexpr int kTotpDigits = 6;
inline constexpr absl::Duration kTotpPeriod = absl::Seconds(30);
// Steps accepted on either side of the current one (clock drift, typing time).
inline constexpr int64_t kTotpWindowSteps = 1;

// A fresh random 20-byte TOTP secret.
crypto::SecretBytes NewTotpSecret();

// RFC 4648 base32 (upper case, A-Z2-7) without '=' padding, as authenticator
// apps expect in otpauth:// URIs.
std::string Base32Encode(absl::string_view bytes);

// Inverse of Base32Encode; accepts upper or lower case, no padding or
// separators. INVALID_ARGUMENT naming `field` for any other character or an
// impossible length; the message never contains the input.
absl::StatusOr<crypto::SecretBytes> Base32Decode(absl::string_view field,
                                                 absl::string_view encoded);

// otpauth://totp/CRM:<account_id>?secret=<base32>&issuer=CRM&algorithm=SHA1&digits=6&period=30
// (Key Uri Format of Google Authenticator). The label is what the user's
// authenticator app shows, on a phone the CRM does not control, so it must
// not be personal data: pass an opaque account id (the user's UUID or a
// login name the user chose), never an e-mail address or a real name.
// INVALID_ARGUMENT naming `account_id` if it is empty, longer than 64 bytes
// or has a character outside A-Z a-z 0-9 '-' '.' '_' (which need no escaping);
// INVALID_ARGUMENT naming `secret` if it is empty.
absl::StatusOr<std::string> ProvisioningUri(absl::string_view account_id,
                                            const crypto::SecretBytes& secret);

// RFC 4226 HOTP of `counter`: HMAC-SHA1, dynamic truncation, `digits` decimal
// digits with leading zeros. INVALID_ARGUMENT if the secret is empty or
// digits is not 6..8.
absl::StatusOr<std::string> HotpCode(const crypto::SecretBytes& secret, uint64_t counter,
                                     int digits = kTotpDigits);

// The time step of `t`: floor(unix seconds / 30). INVALID_ARGUMENT (field
// `time`) for times before the Unix epoch.
absl::StatusOr<int64_t> TotpStep(absl::Time t);

// RFC 6238 TOTP at time `t`: HotpCode(secret, TotpStep(t), digits). Errors of
// TotpStep and HotpCode.
absl::StatusOr<std::string> TotpCode(const crypto::SecretBytes& secret, absl::Time t,
                                     int digits = kTotpDigits);

// Checks a 6-digit code entered at `now` against the steps now-1, now, now+1
// and returns the step it matched, which the caller stores as the new
// last_used_step. All three comparisons run, in constant time.
//   INVALID_ARGUMENT naming `totp_code` unless the code is exactly 6 ASCII
//     digits (no spaces: the handler may strip display grouping first);
//   UNAUTHENTICATED "does not match" if no step in the window has that code;
//   UNAUTHENTICATED "already used" if it matches only steps <= last_used_step
//     (replay, or an older code after a newer one was used);
//   errors of TotpStep / HotpCode (a time before 1970, an empty secret).
// If the code happens to match two steps of the window, the later one is
// returned, so the same code cannot pass again at the other step.
absl::StatusOr<int64_t> VerifyTotp(const crypto::SecretBytes& secret, absl::string_view code,
                                   absl::Time now, std::optional<int64_t> last_used_step);

}  // namespace crm::identity
