#include "services/identity/password_hasher.h"

#include <argon2.h>

#include <charconv>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "libs/base/status_macros.h"
#include "libs/base/validate.h"
#include "libs/crypto/primitives.h"

namespace crm::identity {
namespace {

constexpr absl::string_view kPrefix = "$argon2id$v=19$";
constexpr size_t kMinSaltBytes = 8;   // PHC / libargon2 minimum
constexpr size_t kMaxSaltBytes = 64;  // anything longer is not ours
constexpr size_t kMinTagBytes = 16;
constexpr size_t kMaxTagBytes = 64;

constexpr char kB64Alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

// Unpadded standard base64, as the PHC string format uses.
std::string B64Encode(absl::string_view in) {
  std::string out;
  out.reserve((in.size() * 4 + 2) / 3);
  size_t i = 0;
  for (; i + 3 <= in.size(); i += 3) {
    const uint32_t v = (static_cast<uint8_t>(in[i]) << 16) |
                       (static_cast<uint8_t>(in[i + 1]) << 8) | static_cast<uint8_t>(in[i + 2]);
    out.push_back(kB64Alphabet[(v >> 18) & 63]);
    out.push_back(kB64Alphabet[(v >> 12) & 63]);
    out.push_back(kB64Alphabet[(v >> 6) & 63]);
    out.push_back(kB64Alphabet[v & 63]);
  }
  const size_t rest = in.size() - i;
  if (rest == 1) {
    const uint32_t v = static_cast<uint8_t>(in[i]) << 16;
    out.push_back(kB64Alphabet[(v >> 18) & 63]);
    out.push_back(kB64Alphabet[(v >> 12) & 63]);
  } else if (rest == 2) {
    const uint32_t v = (static_cast<uint8_t>(in[i]) << 16) | (static_cast<uint8_t>(in[i + 1]) << 8);
    out.push_back(kB64Alphabet[(v >> 18) & 63]);
    out.push_back(kB64Alphabet[(v >> 12) & 63]);
    out.push_back(kB64Alphabet[(v >> 6) & 63]);
  }
  return out;
}

int B64Value(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

// Strict decoding of unpadded base64: no padding, no whitespace, and the
// unused low bits of the last character must be zero (one canonical form).
bool B64Decode(absl::string_view in, std::string* out) {
  if (in.size() % 4 == 1) return false;
  out->clear();
  out->reserve(in.size() * 3 / 4);
  uint32_t acc = 0;
  int bits = 0;
  for (char c : in) {
    const int v = B64Value(c);
    if (v < 0) return false;
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out->push_back(static_cast<char>((acc >> bits) & 0xff));
    }
  }
  return (acc & ((1u << bits) - 1)) == 0;
}

// A decimal uint32 without sign or leading zeros, as libargon2 writes it.
bool ParseDecimal(absl::string_view s, uint32_t* out) {
  if (s.empty() || s.size() > 10 || (s.size() > 1 && s[0] == '0')) return false;
  const auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  return ec == std::errc() && ptr == s.data() + s.size();
}

bool ParseParam(absl::string_view field, absl::string_view name, uint32_t* out) {
  if (field.size() <= name.size() + 1 || field.substr(0, name.size()) != name ||
      field[name.size()] != '=') {
    return false;
  }
  return ParseDecimal(field.substr(name.size() + 1), out);
}

struct ParsedHash {
  HashParams params;
  std::string salt;
  std::string tag;
};

// The stored value is never echoed: it is a credential.
absl::Status Malformed(absl::string_view what) {
  return absl::DataLossError(absl::StrCat("stored password hash is malformed: ", what));
}

absl::StatusOr<ParsedHash> ParseEncoded(absl::string_view encoded) {
  if (encoded.substr(0, 1) != "$") return Malformed("not a PHC string");
  if (encoded.substr(0, kPrefix.size()) != kPrefix) {
    return Malformed("not an Argon2id version 19 hash");
  }
  const std::vector<absl::string_view> parts = absl::StrSplit(encoded.substr(kPrefix.size()), '$');
  if (parts.size() != 3) return Malformed("wrong number of fields");
  const std::vector<absl::string_view> kv = absl::StrSplit(parts[0], ',');
  ParsedHash out;
  if (kv.size() != 3 || !ParseParam(kv[0], "m", &out.params.memory_kib) ||
      !ParseParam(kv[1], "t", &out.params.iterations) ||
      !ParseParam(kv[2], "p", &out.params.parallelism)) {
    return Malformed("parameters are not m=<n>,t=<n>,p=<n>");
  }
  if (!ValidateHashParams(out.params).ok()) return Malformed("parameters out of bounds");
  if (!B64Decode(parts[1], &out.salt) || out.salt.size() < kMinSaltBytes ||
      out.salt.size() > kMaxSaltBytes) {
    return Malformed("bad salt");
  }
  if (!B64Decode(parts[2], &out.tag) || out.tag.size() < kMinTagBytes ||
      out.tag.size() > kMaxTagBytes) {
    return Malformed("bad tag");
  }
  return out;
}

absl::StatusOr<std::string> RawHash(const HashParams& p, absl::string_view password,
                                    absl::string_view salt, size_t tag_len) {
  std::string tag(tag_len, '\0');
  const int rc =
      argon2id_hash_raw(p.iterations, p.memory_kib, p.parallelism, password.data(), password.size(),
                        salt.data(), salt.size(), tag.data(), tag.size());
  if (rc != ARGON2_OK) {
    return absl::InternalError(absl::StrCat("argon2id failed: ", argon2_error_message(rc)));
  }
  return tag;
}

std::string Encode(const HashParams& p, absl::string_view salt, absl::string_view tag) {
  return absl::StrCat(kPrefix, "m=", p.memory_kib, ",t=", p.iterations, ",p=", p.parallelism, "$",
                      B64Encode(salt), "$", B64Encode(tag));
}

}  // namespace

absl::Status ValidateHashParams(const HashParams& params) {
  if (params.parallelism < 1 || params.parallelism > HashParams::kMaxParallelism) {
    return absl::InvalidArgumentError(
        absl::StrCat("parallelism: must be 1..", HashParams::kMaxParallelism));
  }
  if (params.iterations < 1 || params.iterations > HashParams::kMaxIterations) {
    return absl::InvalidArgumentError(
        absl::StrCat("iterations: must be 1..", HashParams::kMaxIterations));
  }
  if (params.memory_kib < 8 * params.parallelism || params.memory_kib > HashParams::kMaxMemoryKib) {
    return absl::InvalidArgumentError(
        absl::StrCat("memory_kib: must be 8 * parallelism..", HashParams::kMaxMemoryKib));
  }
  return absl::OkStatus();
}

absl::Status ValidatePasswordInput(absl::string_view password) {
  if (password.empty()) return absl::InvalidArgumentError("password: must not be empty");
  if (password.size() > kMaxPasswordBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("password: must be at most ", kMaxPasswordBytes, " bytes"));
  }
  if (!base::IsValidUtf8Text(password)) {
    return absl::InvalidArgumentError(
        "password: must be valid UTF-8 text without control characters");
  }
  if (base::Utf8Length(password) > kMaxPasswordCodePoints) {
    return absl::InvalidArgumentError(
        absl::StrCat("password: must be at most ", kMaxPasswordCodePoints, " characters"));
  }
  return absl::OkStatus();
}

absl::StatusOr<PasswordHasher> PasswordHasher::Create(const HashParams& params) {
  CRM_RETURN_IF_ERROR(ValidateHashParams(params));
  // A hash of 32 random bytes nobody knows: DummyVerify can never match it,
  // and it reports no match even if it did.
  const std::string salt = crypto::RandomBytes(kSaltBytes);
  const std::string secret = crypto::RandomBytes(32);
  CRM_ASSIGN_OR_RETURN(std::string tag, RawHash(params, secret, salt, kTagBytes));
  return PasswordHasher(params, Encode(params, salt, tag));
}

absl::StatusOr<std::string> PasswordHasher::Hash(absl::string_view password) const {
  CRM_RETURN_IF_ERROR(ValidatePasswordInput(password));
  const std::string salt = crypto::RandomBytes(kSaltBytes);
  CRM_ASSIGN_OR_RETURN(std::string tag, RawHash(params_, password, salt, kTagBytes));
  return Encode(params_, salt, tag);
}

absl::StatusOr<VerifyResult> PasswordHasher::Verify(absl::string_view password,
                                                    absl::string_view encoded) const {
  CRM_RETURN_IF_ERROR(ValidatePasswordInput(password));
  CRM_ASSIGN_OR_RETURN(ParsedHash stored, ParseEncoded(encoded));
  CRM_ASSIGN_OR_RETURN(std::string tag,
                       RawHash(stored.params, password, stored.salt, stored.tag.size()));
  VerifyResult result;
  result.match = crypto::ConstantTimeEquals(tag, stored.tag);
  if (result.match) {
    result.needs_rehash = stored.params.memory_kib < params_.memory_kib ||
                          stored.params.iterations < params_.iterations ||
                          stored.params.parallelism < params_.parallelism ||
                          stored.salt.size() < kSaltBytes || stored.tag.size() < kTagBytes;
  }
  return result;
}

absl::StatusOr<VerifyResult> PasswordHasher::DummyVerify(absl::string_view password) const {
  // Same work as a real Verify; the outcome is discarded.
  const absl::StatusOr<VerifyResult> result = Verify(password, dummy_hash_);
  if (!result.ok()) return result.status();
  return VerifyResult{};
}

}  // namespace crm::identity
