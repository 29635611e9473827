#include "libs/crypto/data_key.h"

#include "libs/base/status_macros.h"
#include "libs/crypto/primitives.h"

namespace crm::crypto {
namespace {

void AppendLengthPrefixed(std::string* out, absl::string_view s) {
  const uint32_t n = static_cast<uint32_t>(s.size());
  out->push_back(static_cast<char>((n >> 24) & 0xff));
  out->push_back(static_cast<char>((n >> 16) & 0xff));
  out->push_back(static_cast<char>((n >> 8) & 0xff));
  out->push_back(static_cast<char>(n & 0xff));
  out->append(s.data(), s.size());
}

absl::Status CheckOwner(absl::string_view purpose, absl::string_view subject_id) {
  if (purpose.empty()) return absl::InvalidArgumentError("purpose must not be empty");
  if (subject_id.empty()) return absl::InvalidArgumentError("subject_id must not be empty");
  return absl::OkStatus();
}

}  // namespace

SecretBytes NewDataKey() { return RandomSecret(kDataKeySize); }

std::string DataKeyAad(absl::string_view purpose, absl::string_view subject_id) {
  std::string aad = "crm.datakey.v1";
  AppendLengthPrefixed(&aad, purpose);
  AppendLengthPrefixed(&aad, subject_id);
  return aad;
}

absl::StatusOr<std::string> WrapDataKey(const KeyRing& ring, const SecretBytes& data_key,
                                        absl::string_view purpose, absl::string_view subject_id) {
  CRM_RETURN_IF_ERROR(CheckOwner(purpose, subject_id));
  if (data_key.size() != kDataKeySize) {
    return absl::InvalidArgumentError("data key must be 32 bytes");
  }
  return ring.Wrap(data_key.view(), DataKeyAad(purpose, subject_id));
}

absl::StatusOr<SecretBytes> UnwrapDataKey(const KeyRing& ring, absl::string_view wrapped,
                                          absl::string_view purpose, absl::string_view subject_id) {
  CRM_RETURN_IF_ERROR(CheckOwner(purpose, subject_id));
  CRM_ASSIGN_OR_RETURN(SecretBytes key,
                       ring.UnwrapSecret(wrapped, DataKeyAad(purpose, subject_id)));
  if (key.size() != kDataKeySize) return absl::DataLossError("wrapped data key has a bad size");
  return key;
}

absl::StatusOr<std::string> RewrapDataKey(const KeyRing& ring, absl::string_view wrapped,
                                          absl::string_view purpose, absl::string_view subject_id) {
  CRM_RETURN_IF_ERROR(CheckOwner(purpose, subject_id));
  return ring.Rewrap(wrapped, DataKeyAad(purpose, subject_id));
}

}  // namespace crm::crypto
