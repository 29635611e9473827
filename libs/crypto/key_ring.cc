#include "libs/crypto/key_ring.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "libs/base/status_macros.h"
#include "libs/crypto/aead.h"
#include "libs/crypto/primitives.h"

namespace crm::crypto {
namespace {

std::string Header(uint32_t version) {
  std::string h(kWrapHeaderSize, '\0');
  h[0] = static_cast<char>(kWrappedFormatV1);
  h[1] = static_cast<char>((version >> 24) & 0xff);
  h[2] = static_cast<char>((version >> 16) & 0xff);
  h[3] = static_cast<char>((version >> 8) & 0xff);
  h[4] = static_cast<char>(version & 0xff);
  return h;
}

constexpr size_t kWrapOverhead = kWrapHeaderSize + kGcmNonceSize + kGcmTagSize;

}  // namespace

absl::StatusOr<KeyRing> KeyRing::LoadFromFile(const std::string& path,
                                              const KeyFileOptions& options) {
  CRM_ASSIGN_OR_RETURN(SecretBytes content, ReadKeyFile(path, options));
  absl::StatusOr<KeyRing> ring = Parse(content.view());
  if (!ring.ok()) {
    return absl::Status(ring.status().code(),
                        absl::StrCat("key ring ", path, ": ", ring.status().message()));
  }
  return ring;
}

absl::StatusOr<KeyRing> KeyRing::Parse(absl::string_view text) {
  CRM_ASSIGN_OR_RETURN(std::vector<VersionedKey> keys, ParseKeyLines(text, kAes256KeySize));
  return FromKeys(std::move(keys));
}

absl::StatusOr<KeyRing> KeyRing::FromKeys(std::vector<VersionedKey> keys) {
  std::map<uint32_t, SecretBytes> map;
  uint32_t active = 0;
  for (VersionedKey& k : keys) {
    if (!k.pending) active = std::max(active, k.version);
    if (k.version == 0) return absl::InvalidArgumentError("key version must be at least 1");
    if (k.key.size() != kAes256KeySize) {
      return absl::InvalidArgumentError(
          absl::StrCat("key version ", k.version, " is not 32 bytes"));
    }
    if (!map.emplace(k.version, std::move(k.key)).second) {
      return absl::InvalidArgumentError(absl::StrCat("duplicate key version ", k.version));
    }
  }
  if (map.empty()) return absl::InvalidArgumentError("no key found");
  if (active == 0) return absl::InvalidArgumentError("every key is pending: one must wrap");
  return KeyRing(std::move(map), active);
}

std::vector<uint32_t> KeyRing::versions() const {
  std::vector<uint32_t> out;
  out.reserve(keys_.size());
  for (const auto& [v, k] : keys_) out.push_back(v);
  return out;
}

absl::StatusOr<std::string> KeyRing::Wrap(absl::string_view plaintext,
                                          absl::string_view aad) const {
  const SecretBytes& kek = keys_.at(active_);
  std::string out = Header(active_);
  const std::string nonce = RandomBytes(kGcmNonceSize);
  CRM_ASSIGN_OR_RETURN(std::string body,
                       internal::GcmEncrypt(kek.view(), nonce, out, aad, plaintext));
  out.append(nonce);
  out.append(body);
  return out;
}

absl::StatusOr<uint32_t> KeyRing::WrappedVersion(absl::string_view wrapped) {
  if (wrapped.size() < kWrapOverhead) return absl::DataLossError("wrapped key truncated");
  if (static_cast<uint8_t>(wrapped[0]) != kWrappedFormatV1) {
    return absl::DataLossError("unknown wrapped key format");
  }
  const auto b = [&](int i) { return static_cast<uint32_t>(static_cast<uint8_t>(wrapped[i])); };
  return (b(1) << 24) | (b(2) << 16) | (b(3) << 8) | b(4);
}

absl::Status KeyRing::UnwrapTo(absl::string_view wrapped, absl::string_view aad,
                               uint8_t* out) const {
  CRM_ASSIGN_OR_RETURN(uint32_t version, WrappedVersion(wrapped));
  auto it = keys_.find(version);
  if (it == keys_.end()) {
    return absl::FailedPreconditionError(
        absl::StrCat("wrapped with key version ", version, ", which the key ring does not hold"));
  }
  return internal::GcmDecrypt(it->second.view(), wrapped.substr(kWrapHeaderSize, kGcmNonceSize),
                              wrapped.substr(0, kWrapHeaderSize), aad,
                              wrapped.substr(kWrapHeaderSize + kGcmNonceSize), out);
}

absl::StatusOr<std::string> KeyRing::Unwrap(absl::string_view wrapped,
                                            absl::string_view aad) const {
  std::string out(wrapped.size() >= kWrapOverhead ? wrapped.size() - kWrapOverhead : 0, '\0');
  CRM_RETURN_IF_ERROR(UnwrapTo(wrapped, aad, reinterpret_cast<uint8_t*>(out.data())));
  return out;
}

absl::StatusOr<SecretBytes> KeyRing::UnwrapSecret(absl::string_view wrapped,
                                                  absl::string_view aad) const {
  SecretBytes out(wrapped.size() >= kWrapOverhead ? wrapped.size() - kWrapOverhead : 0);
  // SecretBytes(0) has no buffer; give GcmDecrypt somewhere to point.
  uint8_t empty = 0;
  CRM_RETURN_IF_ERROR(UnwrapTo(wrapped, aad, out.empty() ? &empty : out.data()));
  return out;
}

absl::StatusOr<std::string> KeyRing::Rewrap(absl::string_view wrapped,
                                            absl::string_view aad) const {
  CRM_ASSIGN_OR_RETURN(SecretBytes plain, UnwrapSecret(wrapped, aad));
  CRM_ASSIGN_OR_RETURN(uint32_t version, WrappedVersion(wrapped));
  if (version == active_) return std::string(wrapped);
  return Wrap(plain.view(), aad);
}

}  // namespace crm::crypto
