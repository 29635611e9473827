// Input validators shared by every service's handlers. Each returns OK or
// INVALID_ARGUMENT whose message names the field and the rule broken, never the
// offending value (it may be personal data). Pure functions, thread-safe.
#pragma once

#include <cstddef>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace crm::base {

// Valid UTF-8: no overlong forms, no surrogates, nothing above U+10FFFF, and no
// NUL or other C0 control characters except tab, CR and LF.
bool IsValidUtf8Text(absl::string_view s);
absl::Status ValidateUtf8(absl::string_view field, absl::string_view value);

// Number of Unicode code points; `s` must be valid UTF-8.
size_t Utf8Length(absl::string_view s);

// At most `max` bytes of `s` with every byte outside printable ASCII
// (0x20..0x7E) replaced by '?': for values seen on the wire (an HTTP
// User-Agent) that go into proto strings, which must be valid UTF-8.
std::string PrintableAscii(absl::string_view s, size_t max);

// Valid UTF-8 text of min..max code points. min > 0 means the field is required.
absl::Status ValidateText(absl::string_view field, absl::string_view value, size_t min, size_t max);

// A mailbox address: local@domain, at most 254 bytes, local part at most 64,
// dot-atom local part (RFC 5322 without quoted strings or comments), a domain
// of LDH labels with at least one dot; internationalised domains must be given
// in their A-label (punycode) form.
// A machine name: 1..`max` of a-z 0-9 . _ - (channels, sources, purpose
// ids). INVALID_ARGUMENT "<field>: must be 1..<max> of a-z 0-9 . _ -".
absl::Status ValidateName(absl::string_view field, absl::string_view value, size_t max);

absl::Status ValidateEmail(absl::string_view field, absl::string_view value);

// An E.164 number: '+', a non-zero country digit, 8 to 15 digits in all.
absl::Status ValidatePhoneE164(absl::string_view field, absl::string_view value);

// The normalised forms used for blind indexes: e-mail trimmed and lower-cased;
// phone with spaces, dashes, dots and parentheses removed.
std::string NormalizeEmail(absl::string_view value);
std::string NormalizePhone(absl::string_view value);

}  // namespace crm::base
