#include "services/identity/recovery_codes.h"

#include <optional>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "libs/base/status_macros.h"
#include "libs/crypto/primitives.h"

namespace crm::identity {
namespace {

// Crockford's base32 alphabet, lower case: 32 symbols, so one random byte's
// low 5 bits pick a symbol without bias.
constexpr absl::string_view kAlphabet = "0123456789abcdefghjkmnpqrstvwxyz";
constexpr size_t kGroupSize = 4;
constexpr absl::string_view kHashDomain = "crm.recovery.v1";

absl::Status ValidateSalt(absl::string_view salt) {
  if (salt.empty()) return absl::InvalidArgumentError("salt: required");
  if (salt.size() > 255) return absl::InvalidArgumentError("salt: must be at most 255 bytes");
  return absl::OkStatus();
}

std::string NewCode() {
  const std::string random = crypto::RandomBytes(kRecoveryCodeLength);
  std::string code;
  code.reserve(kRecoveryCodeLength + kRecoveryCodeLength / kGroupSize);
  for (size_t i = 0; i < random.size(); ++i) {
    if (i > 0 && i % kGroupSize == 0) code.push_back('-');
    code.push_back(kAlphabet[static_cast<uint8_t>(random[i]) & 0x1f]);
  }
  return code;
}

}  // namespace

std::string NewRecoverySalt() { return crypto::RandomBytes(kRecoverySaltSize); }

absl::StatusOr<RecoveryCodeSet> GenerateRecoveryCodes(absl::string_view salt, size_t count) {
  CRM_RETURN_IF_ERROR(ValidateSalt(salt));
  RecoveryCodeSet set;
  std::set<std::string> seen;
  while (set.codes.size() < count) {
    std::string code = NewCode();
    CRM_ASSIGN_OR_RETURN(std::string normalized, NormalizeRecoveryCode(code));
    if (!seen.insert(normalized).second) continue;  // 2^-80 odds, but keep the set distinct
    set.hashes.push_back(HashRecoveryCode(salt, normalized));
    set.codes.push_back(std::move(code));
  }
  return set;
}

absl::StatusOr<std::string> NormalizeRecoveryCode(absl::string_view input) {
  std::string out;
  out.reserve(kRecoveryCodeLength);
  for (char c : input) {
    if (c == '-' || c == ' ' || c == '\t') continue;
    char lower = absl::ascii_tolower(static_cast<unsigned char>(c));
    if (lower == 'i' || lower == 'l') lower = '1';
    if (lower == 'o') lower = '0';
    if (kAlphabet.find(lower) == absl::string_view::npos) {
      return absl::InvalidArgumentError("recovery_code: contains a character not used in codes");
    }
    out.push_back(lower);
    if (out.size() > kRecoveryCodeLength) break;
  }
  if (out.size() != kRecoveryCodeLength) {
    return absl::InvalidArgumentError(
        absl::StrCat("recovery_code: must be ", kRecoveryCodeLength, " characters"));
  }
  return out;
}

std::string HashRecoveryCode(absl::string_view salt, absl::string_view normalized_code) {
  const char salt_len = static_cast<char>(static_cast<uint8_t>(salt.size()));
  return crypto::Sha256(
      absl::StrCat(kHashDomain, absl::string_view(&salt_len, 1), salt, normalized_code));
}

absl::StatusOr<size_t> ConsumeRecoveryCode(absl::string_view code, absl::string_view salt,
                                           absl::Span<const std::string> stored_hashes) {
  CRM_RETURN_IF_ERROR(ValidateSalt(salt));
  CRM_ASSIGN_OR_RETURN(const std::string normalized, NormalizeRecoveryCode(code));
  const std::string hash = HashRecoveryCode(salt, normalized);
  std::optional<size_t> found;
  for (size_t i = 0; i < stored_hashes.size(); ++i) {
    // No early exit: the time taken does not tell which entry matched.
    const bool equal = crypto::ConstantTimeEquals(hash, stored_hashes[i]);
    if (equal && !found.has_value()) found = i;
  }
  if (!found.has_value()) return absl::NotFoundError("recovery_code: no unused code matches");
  return *found;
}

}  // namespace crm::identity
