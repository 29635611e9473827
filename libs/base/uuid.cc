#include "libs/base/uuid.h"

#include <algorithm>
#include <array>
#include <cstdint>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "libs/base/random.h"

namespace crm::base {

namespace {

std::array<uint8_t, 16> RandomUuidBytes() {
  std::array<uint8_t, 16> b;
  FillRandom(b.data(), b.size());
  return b;
}

std::string Format(std::array<uint8_t, 16> b, uint8_t version) {
  b[6] = static_cast<uint8_t>((b[6] & 0x0f) | (version << 4));
  b[8] = static_cast<uint8_t>((b[8] & 0x3f) | 0x80);  // RFC 9562 variant
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(36);
  for (size_t i = 0; i < b.size(); ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) out.push_back('-');
    out.push_back(kHex[b[i] >> 4]);
    out.push_back(kHex[b[i] & 0xf]);
  }
  return out;
}

}  // namespace

std::string NewUuid() { return Format(RandomUuidBytes(), 4); }

std::string NewTimeOrderedUuid(absl::Time now) {
  std::array<uint8_t, 16> b = RandomUuidBytes();
  const uint64_t ms = static_cast<uint64_t>(std::max<int64_t>(0, absl::ToUnixMillis(now)));
  for (int i = 0; i < 6; ++i) b[i] = static_cast<uint8_t>(ms >> (8 * (5 - i)));
  return Format(b, 7);
}

bool IsUuid(absl::string_view s) {
  if (s.size() != 36) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (s[i] != '-') return false;
    } else if (!absl::ascii_isxdigit(static_cast<unsigned char>(s[i]))) {
      return false;
    }
  }
  return true;
}

absl::Status ValidateUuid(absl::string_view field, absl::string_view value) {
  if (value.empty()) return absl::InvalidArgumentError(absl::StrCat(field, ": required"));
  if (!IsUuid(value)) return absl::InvalidArgumentError(absl::StrCat(field, ": must be a UUID"));
  return absl::OkStatus();
}

absl::StatusOr<std::string> CanonicalUuid(absl::string_view field, absl::string_view value) {
  if (absl::Status s = ValidateUuid(field, value); !s.ok()) return s;
  return absl::AsciiStrToLower(value);
}

}  // namespace crm::base
