// The field catalogue: every field contacts stores, declared once with its
// data category, sensitivity, purposes, retention and limits. The service
// accepts nothing undeclared (data minimisation: an update mask naming an
// unknown or read-only path is INVALID_ARGUMENT), masks SENSITIVE fields for
// callers without contacts.read.sensitive, seals every PERSONAL or SENSITIVE
// value at rest, and serves the catalogue (GetFieldCatalogue) as the basis of
// the Art. 30 record of processing.
//
// Paths name proto fields from the entity down, repeated fields without an
// index: "person.emails.address". catalogue_test checks that the catalogue
// and crm.contacts.v1 describe the same fields.
//
// Immutable after construction: thread-safe.
#pragma once

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "crm/contacts/v1/contacts.pb.h"

namespace crm::contacts {

struct FieldSpec {
  std::string path;
  std::string data_category;
  crm::contacts::v1::Sensitivity sensitivity = crm::contacts::v1::SENSITIVITY_NONE;
  std::vector<std::string> purposes;
  std::string retention;
  bool blind_indexed = false;
  int max_length = 0;  // code points; 0 for non-text
  // Set by the service (ids, registration, timestamps, versions); an update
  // mask may not name it.
  bool read_only = false;
  std::string description;
};

class Catalogue {
 public:
  // The catalogue of this version of the service.
  static const Catalogue& Get();

  // The spec of `path`, or null if undeclared.
  const FieldSpec* Find(absl::string_view path) const;

  const std::vector<FieldSpec>& fields() const { return fields_; }
  int version() const { return 1; }

  // OK if every path of `mask` names a declared, writable field of `entity`
  // ("person" or "company") directly below it ("emails", "family_name");
  // otherwise INVALID_ARGUMENT naming update_mask.paths[i] and the reason.
  // An empty mask is INVALID_ARGUMENT too (nothing to update).
  absl::Status ValidateUpdateMask(absl::string_view entity,
                                  const google::protobuf::FieldMask& mask) const;

  // True if `path` (or the field it is inside, for nested paths) is SENSITIVE.
  bool IsSensitive(absl::string_view path) const;

  // The catalogue as served by GetFieldCatalogue.
  crm::contacts::v1::GetFieldCatalogueResponse ToProto() const;

 private:
  Catalogue();
  std::vector<FieldSpec> fields_;
};

}  // namespace crm::contacts
