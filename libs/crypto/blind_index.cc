#include "libs/crypto/blind_index.h"

#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "libs/base/status_macros.h"
#include "libs/crypto/primitives.h"

namespace crm::crypto {

absl::StatusOr<BlindIndexer> BlindIndexer::Create(SecretBytes key) {
  if (key.size() < 32)
    return absl::InvalidArgumentError("blind-index key must be at least 32 bytes");
  return BlindIndexer(std::move(key));
}

absl::StatusOr<BlindIndexer> BlindIndexer::LoadFromFile(const std::string& path,
                                                        const KeyFileOptions& options) {
  CRM_ASSIGN_OR_RETURN(SecretBytes content, ReadKeyFile(path, options));
  absl::StatusOr<std::vector<VersionedKey>> keys = ParseKeyLines(content.view(), 32);
  if (!keys.ok()) {
    return absl::Status(keys.status().code(),
                        absl::StrCat("blind-index key ", path, ": ", keys.status().message()));
  }
  if (keys->size() != 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("blind-index key ", path, ": must hold exactly one key"));
  }
  return Create(std::move((*keys)[0].key));
}

std::string BlindIndexer::Raw(absl::string_view normalized_value) const {
  return HmacSha256(key_.view(), normalized_value);
}

std::string BlindIndexer::Hex(absl::string_view normalized_value) const {
  return absl::BytesToHexString(Raw(normalized_value));
}

}  // namespace crm::crypto
