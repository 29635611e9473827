#include "services/identity/personal_data.h"

#include "absl/strings/str_cat.h"

namespace crm::identity {

namespace {

absl::string_view FieldName(PersonalField field) {
  switch (field) {
    case PersonalField::kUsername:
      return "username";
    case PersonalField::kEmail:
      return "email";
    case PersonalField::kDisplayName:
      return "display_name";
    case PersonalField::kSourceAddress:
      return "source_address";
    case PersonalField::kUserAgent:
      return "user_agent";
    case PersonalField::kJustification:
      return "justification";
    case PersonalField::kTotpSecret:
      return "totp_secret";
  }
  return "unknown";
}

std::string Aad(PersonalField field) {
  return absl::StrCat("crm.identity.", FieldName(field), ".v1");
}

}  // namespace

std::string PersonalData::Index(PersonalField field, absl::string_view normalized) const {
  return indexer_.Raw(absl::StrCat(FieldName(field), ":", normalized));
}

absl::StatusOr<std::string> PersonalData::Seal(PersonalField field,
                                               absl::string_view plaintext) const {
  return ring_.Wrap(plaintext, Aad(field));
}

absl::StatusOr<std::optional<std::string>> PersonalData::SealOptional(
    PersonalField field, absl::string_view plaintext) const {
  if (plaintext.empty()) return std::optional<std::string>();
  absl::StatusOr<std::string> sealed = Seal(field, plaintext);
  if (!sealed.ok()) return sealed.status();
  return std::optional<std::string>(*std::move(sealed));
}

absl::StatusOr<std::string> PersonalData::Open(PersonalField field,
                                               absl::string_view sealed) const {
  absl::StatusOr<std::string> plain = ring_.Unwrap(sealed, Aad(field));
  if (!plain.ok()) {
    return absl::Status(
        plain.status().code(),
        absl::StrCat("stored ", FieldName(field), " does not open: ", plain.status().message()));
  }
  return plain;
}

absl::StatusOr<std::string> PersonalData::OpenOptional(
    PersonalField field, const std::optional<std::string>& sealed) const {
  if (!sealed.has_value()) return std::string();
  return Open(field, *sealed);
}

}  // namespace crm::identity
