#include "services/identity/totp.h"

#include <openssl/evp.h>

#include <array>
#include <cstdlib>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "libs/base/status_macros.h"
#include "libs/crypto/primitives.h"

namespace crm::identity {
namespace {

constexpr absl::string_view kBase32Alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
constexpr size_t kSha1Size = 20;
constexpr uint32_t kPowersOfTen[] = {1, 10, 100, 1000, 10000, 100000, 1000000, 10000000, 100000000};

absl::Status Invalid(absl::string_view field, absl::string_view rule) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", rule));
}

// Value of a base32 character, or -1.
int Base32Value(char c) {
  const char u = absl::ascii_toupper(static_cast<unsigned char>(c));
  if (u >= 'A' && u <= 'Z') return u - 'A';
  if (u >= '2' && u <= '7') return u - '2' + 26;
  return -1;
}

bool IsUriSafeLabelChar(char c) {
  return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.' || c == '_';
}

}  // namespace

crypto::SecretBytes NewTotpSecret() { return crypto::RandomSecret(kTotpSecretSize); }

std::string Base32Encode(absl::string_view bytes) {
  std::string out;
  out.reserve((bytes.size() * 8 + 4) / 5);
  uint32_t buffer = 0;
  int bits = 0;
  for (char c : bytes) {
    buffer = (buffer << 8) | static_cast<uint8_t>(c);
    bits += 8;
    while (bits >= 5) {
      out.push_back(kBase32Alphabet[(buffer >> (bits - 5)) & 0x1f]);
      bits -= 5;
    }
  }
  if (bits > 0) out.push_back(kBase32Alphabet[(buffer << (5 - bits)) & 0x1f]);
  return out;
}

absl::StatusOr<crypto::SecretBytes> Base32Decode(absl::string_view field,
                                                 absl::string_view encoded) {
  // Unpadded lengths mod 8 that RFC 4648 can produce: 0, 2, 4, 5, 7.
  const size_t rest = encoded.size() % 8;
  if (rest == 1 || rest == 3 || rest == 6) return Invalid(field, "not a valid base32 length");
  crypto::SecretBytes out(encoded.size() * 5 / 8);
  size_t n = 0;
  uint32_t buffer = 0;
  int bits = 0;
  for (char c : encoded) {
    const int v = Base32Value(c);
    if (v < 0) return Invalid(field, "must be base32 (A-Z, 2-7)");
    buffer = (buffer << 5) | static_cast<uint32_t>(v);
    bits += 5;
    if (bits >= 8) {
      out.data()[n++] = static_cast<uint8_t>(buffer >> (bits - 8));
      bits -= 8;
    }
  }
  // Leftover bits must be zero, or two encodings would decode alike.
  if ((buffer & ((1u << bits) - 1)) != 0) return Invalid(field, "non-canonical base32");
  return out;
}

absl::StatusOr<std::string> ProvisioningUri(absl::string_view account_id,
                                            const crypto::SecretBytes& secret) {
  if (account_id.empty()) return Invalid("account_id", "required");
  if (account_id.size() > 64) return Invalid("account_id", "must be at most 64 bytes");
  for (char c : account_id) {
    if (!IsUriSafeLabelChar(c)) {
      return Invalid("account_id", "may contain only A-Z, a-z, 0-9, '-', '.' and '_'");
    }
  }
  if (secret.empty()) return Invalid("secret", "required");
  return absl::StrCat("otpauth://totp/CRM:", account_id, "?secret=", Base32Encode(secret.view()),
                      "&issuer=CRM&algorithm=SHA1&digits=", kTotpDigits,
                      "&period=", absl::ToInt64Seconds(kTotpPeriod));
}

absl::StatusOr<std::string> HotpCode(const crypto::SecretBytes& secret, uint64_t counter,
                                     int digits) {
  if (secret.empty()) return Invalid("secret", "required");
  if (digits < 6 || digits > 8) return Invalid("digits", "must be 6 to 8");
  std::array<uint8_t, 8> message;
  for (int i = 7; i >= 0; --i) {
    message[i] = static_cast<uint8_t>(counter & 0xff);
    counter >>= 8;
  }
  std::array<uint8_t, kSha1Size> mac;
  size_t mac_len = 0;
  char digest[] = "SHA1";
  if (EVP_Q_mac(nullptr, "HMAC", nullptr, digest, nullptr, secret.data(), secret.size(),
                message.data(), message.size(), mac.data(), mac.size(), &mac_len) == nullptr ||
      mac_len != kSha1Size) {
    std::abort();  // OpenSSL failure (allocation), as in libs/crypto/primitives
  }
  // Dynamic truncation (RFC 4226, section 5.3).
  const int offset = mac[kSha1Size - 1] & 0x0f;
  const uint32_t binary = (static_cast<uint32_t>(mac[offset] & 0x7f) << 24) |
                          (static_cast<uint32_t>(mac[offset + 1]) << 16) |
                          (static_cast<uint32_t>(mac[offset + 2]) << 8) |
                          static_cast<uint32_t>(mac[offset + 3]);
  uint32_t value = binary % kPowersOfTen[digits];
  std::string code(static_cast<size_t>(digits), '0');
  for (int i = digits - 1; i >= 0; --i) {
    code[static_cast<size_t>(i)] = static_cast<char>('0' + value % 10);
    value /= 10;
  }
  return code;
}

absl::StatusOr<int64_t> TotpStep(absl::Time t) {
  if (t < absl::UnixEpoch()) return Invalid("time", "must not be before 1970");
  return absl::ToInt64Seconds(t - absl::UnixEpoch()) / absl::ToInt64Seconds(kTotpPeriod);
}

absl::StatusOr<std::string> TotpCode(const crypto::SecretBytes& secret, absl::Time t, int digits) {
  CRM_ASSIGN_OR_RETURN(const int64_t step, TotpStep(t));
  return HotpCode(secret, static_cast<uint64_t>(step), digits);
}

absl::StatusOr<int64_t> VerifyTotp(const crypto::SecretBytes& secret, absl::string_view code,
                                   absl::Time now, std::optional<int64_t> last_used_step) {
  if (code.size() != static_cast<size_t>(kTotpDigits)) {
    return Invalid("totp_code", "must be exactly 6 digits");
  }
  for (char c : code) {
    if (c < '0' || c > '9') return Invalid("totp_code", "must be exactly 6 digits");
  }
  CRM_ASSIGN_OR_RETURN(const int64_t current, TotpStep(now));
  std::optional<int64_t> matched;  // the latest step in the window with this code
  bool matched_used_step = false;
  for (int64_t step = current - kTotpWindowSteps; step <= current + kTotpWindowSteps; ++step) {
    if (step < 0) continue;
    CRM_ASSIGN_OR_RETURN(const std::string expected,
                         HotpCode(secret, static_cast<uint64_t>(step), kTotpDigits));
    if (!crypto::ConstantTimeEquals(expected, code)) continue;
    if (last_used_step.has_value() && step <= *last_used_step) {
      matched_used_step = true;
    } else {
      matched = step;
    }
  }
  if (matched.has_value()) return *matched;
  if (matched_used_step) {
    return absl::UnauthenticatedError("totp_code: already used; wait for the next code");
  }
  return absl::UnauthenticatedError("totp_code: does not match");
}

}  // namespace crm::identity
