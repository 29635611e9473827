#include "services/mailing/tokens.h"

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "libs/auth/base64url.h"
#include "libs/base/uuid.h"
#include "libs/base/validate.h"
#include "libs/crypto/primitives.h"

namespace crm::mailing {
namespace {

constexpr size_t kTagBytes = 16;
constexpr size_t kIdBytes = 16;
constexpr size_t kTimeBytes = 8;

absl::string_view KindTag(TokenKind kind) { return kind == TokenKind::kConfirm ? "c" : "u"; }

std::string IdText(absl::string_view bytes) {
  const std::string hex = absl::BytesToHexString(bytes);
  return absl::StrCat(hex.substr(0, 8), "-", hex.substr(8, 4), "-", hex.substr(12, 4), "-",
                      hex.substr(16, 4), "-", hex.substr(20));
}

absl::Status Malformed() { return absl::InvalidArgumentError("token: malformed"); }

}  // namespace

absl::StatusOr<LinkTokens> LinkTokens::Create(crypto::SecretBytes key) {
  if (key.size() < 32) return absl::InvalidArgumentError("token key: at least 32 bytes");
  return LinkTokens(std::move(key));
}

std::string LinkTokens::Tag(absl::string_view signed_part) const {
  return crypto::HmacSha256(key_.view(), signed_part).substr(0, kTagBytes);
}

std::string LinkTokens::Issue(TokenKind kind, absl::string_view subject_id,
                              absl::string_view list_id, absl::Time now) const {
  std::string payload = absl::HexStringToBytes(absl::StrReplaceAll(subject_id, {{"-", ""}}));
  const uint64_t t = static_cast<uint64_t>(absl::ToUnixSeconds(now));
  for (int shift = 56; shift >= 0; shift -= 8) payload.push_back(static_cast<char>(t >> shift));
  absl::StrAppend(&payload, list_id);
  const std::string signed_part = absl::StrCat(KindTag(kind), ".", auth::Base64UrlEncode(payload));
  return absl::StrCat(signed_part, ".", auth::Base64UrlEncode(Tag(signed_part)));
}

absl::StatusOr<LinkClaims> LinkTokens::Verify(TokenKind kind, absl::string_view token,
                                              absl::Time now, absl::Duration max_age) const {
  if (token.empty() || token.size() > 512) return Malformed();
  const std::vector<absl::string_view> parts = absl::StrSplit(token, '.');
  if (parts.size() != 3) return Malformed();
  std::optional<std::string> payload = auth::Base64UrlDecode(parts[1]);
  std::optional<std::string> tag = auth::Base64UrlDecode(parts[2]);
  if (!payload.has_value() || !tag.has_value() || tag->size() != kTagBytes ||
      payload->size() <= kIdBytes + kTimeBytes) {
    return Malformed();
  }
  const std::string signed_part = absl::StrCat(parts[0], ".", parts[1]);
  // The tag first, in constant time, and the kind after: a token of the
  // other kind is as invalid as a forged one.
  if (!crypto::ConstantTimeEquals(Tag(signed_part), *tag) || parts[0] != KindTag(kind)) {
    return absl::InvalidArgumentError("token: not valid");
  }
  LinkClaims c;
  c.kind = kind;
  c.subject_id = IdText(absl::string_view(*payload).substr(0, kIdBytes));
  uint64_t t = 0;
  for (size_t i = 0; i < kTimeBytes; ++i) {
    t = (t << 8) | static_cast<unsigned char>((*payload)[kIdBytes + i]);
  }
  c.issued_at = absl::FromUnixSeconds(static_cast<int64_t>(t));
  c.list_id = payload->substr(kIdBytes + kTimeBytes);
  if (!base::ValidateName("list_id", c.list_id, 64).ok()) return Malformed();
  if (max_age != absl::InfiniteDuration() && now - c.issued_at > max_age) {
    return absl::InvalidArgumentError("token: expired");
  }
  return c;
}

}  // namespace crm::mailing
