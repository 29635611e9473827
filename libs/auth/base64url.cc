#include "libs/auth/base64url.h"

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"

namespace crm::auth {

std::string Base64UrlEncode(absl::string_view bytes) { return absl::WebSafeBase64Escape(bytes); }

std::optional<std::string> Base64UrlDecode(absl::string_view text) {
  if (text.size() % 4 == 1) return std::nullopt;
  for (char c : text) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_') {
      return std::nullopt;
    }
  }
  std::string out;
  if (!absl::WebSafeBase64Unescape(text, &out)) return std::nullopt;
  // Non-zero unused bits decode to the same bytes as another text: refuse.
  if (absl::WebSafeBase64Escape(out) != text) return std::nullopt;
  return out;
}

}  // namespace crm::auth
