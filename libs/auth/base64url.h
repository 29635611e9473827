// Base64url without padding (RFC 4648 section 5, as JWT uses it, RFC 7515
// section 2), with a strict decoder for untrusted input. Used by the token
// signer and verifier and for certificate thumbprints. Pure functions,
// thread-safe.
#pragma once

#include <optional>
#include <string>

#include "absl/strings/string_view.h"

namespace crm::auth {

// Encodes without '=' padding (absl::WebSafeBase64Escape).
std::string Base64UrlEncode(absl::string_view bytes);

// Decodes canonical unpadded base64url: only [A-Za-z0-9_-], no padding, no
// whitespace, and unused trailing bits zero (so each byte string has exactly
// one accepted encoding). nullopt otherwise.
std::optional<std::string> Base64UrlDecode(absl::string_view text);

}  // namespace crm::auth
