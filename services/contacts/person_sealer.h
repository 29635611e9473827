// PersonSealer: how a person's personal data becomes what PersonStore keeps,
// and back. Each subject has its own AES-256-GCM data key, stored wrapped by
// the KEK ring (crypto::WrapDataKey, purpose "contacts", bound to the
// subject id). Each personal field (a top-level field of crm.contacts.v1.
// Person, see kSealedPersonFields) is sealed on its own as a serialized Person
// holding only that field, with associated data
//   "crm.contacts.v1|<subject_id>|<field>"
// so a ciphertext copied to another subject's row or another column does not
// open. E-mail addresses and phone numbers get blind indexes (HMAC-SHA256 of
// the normalised value, with the kind as domain separator).
//
// Immutable after construction: thread-safe.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "crm/contacts/v1/contacts.pb.h"
#include "libs/crypto/blind_index.h"
#include "libs/crypto/key_ring.h"
#include "libs/crypto/secret_bytes.h"
#include "services/contacts/person_store.h"

namespace crm::contacts {

class PersonSealer {
 public:
  // Both must outlive this object.
  PersonSealer(const crypto::KeyRing& ring, const crypto::BlindIndexer& indexer)
      : ring_(ring), indexer_(indexer) {}

  struct SubjectKey {
    crypto::SecretBytes key;
    std::string wrapped;
  };
  // A fresh data key for `subject_id`, and its wrapped form.
  absl::StatusOr<SubjectKey> NewSubjectKey(const std::string& subject_id) const;
  // The data key of a stored wrapped key; DATA_LOSS if it does not unwrap.
  absl::StatusOr<crypto::SecretBytes> Unwrap(const std::string& wrapped,
                                             const std::string& subject_id) const;

  // Data keys of other owners (companies: purpose "contacts.company").
  absl::StatusOr<SubjectKey> NewKey(absl::string_view purpose, const std::string& owner_id) const;
  absl::StatusOr<crypto::SecretBytes> UnwrapKey(absl::string_view purpose,
                                                const std::string& wrapped,
                                                const std::string& owner_id) const;

  // Seals the named top-level fields of `message` (each as a message of the
  // same type holding only that field; empty ones left out) into `out`, with
  // associated data "crm.contacts.v1|<owner>|<field>".
  absl::Status SealMessageFields(const crypto::SecretBytes& key,
                                 const google::protobuf::Message& message,
                                 const std::vector<std::string>& fields, absl::string_view owner,
                                 std::map<std::string, std::string>& out) const;
  // Opens what SealMessageFields made into `out`; DATA_LOSS naming
  // "<entity>.<field>" if one does not open.
  absl::Status OpenMessageFields(const crypto::SecretBytes& key,
                                 const std::map<std::string, std::string>& sealed,
                                 absl::string_view owner, absl::string_view entity,
                                 google::protobuf::Message& out) const;

  // Seals every personal field of `person` into `out.sealed` (an empty
  // field has no entry) for out.subject_id.
  absl::Status SealFields(const crypto::SecretBytes& key, const crm::contacts::v1::Person& person,
                          StoredPerson& out) const;
  // Opens the sealed fields of `stored` into `out`. DATA_LOSS naming the
  // field if one does not open.
  absl::Status OpenFields(const crypto::SecretBytes& key, const StoredPerson& stored,
                          crm::contacts::v1::Person& out) const;

  // One text value (e.g. a restriction reason) sealed for a subject's field.
  absl::StatusOr<std::string> SealText(const crypto::SecretBytes& key,
                                       const std::string& subject_id, absl::string_view field,
                                       absl::string_view text) const;
  absl::StatusOr<std::string> OpenText(const crypto::SecretBytes& key,
                                       const std::string& subject_id, absl::string_view field,
                                       absl::string_view sealed) const;

  // The look-up keys of a normalised person's e-mail addresses and phones.
  std::vector<LookupKey> KeysOf(const crm::contacts::v1::Person& person) const;
  LookupKey EmailKey(absl::string_view normalized_email) const;
  // `kind` is "nip", "regon", "krs" or "eu_vat"; `canonical` as tax_id.h makes it.
  LookupKey TaxIdKey(absl::string_view kind, absl::string_view canonical) const;
  LookupKey PhoneKey(absl::string_view normalized_phone) const;

 private:
  const crypto::KeyRing& ring_;
  const crypto::BlindIndexer& indexer_;
};

// The field name sealing the summary of contact-history entry
// `interaction_id` ("interaction:<id>"), for SealText/OpenText.
std::string InteractionSummaryField(absl::string_view interaction_id);

// The non-personal fields of a stored person as the contract's Person.
crm::contacts::v1::Person PersonSkeleton(const StoredPerson& stored);

// The subject's data key: unwrapped from stored.wrapped_key, or read from
// subject_keys in `tx` if the row came without it. NOT_FOUND if erased.
absl::StatusOr<crypto::SecretBytes> SubjectKeyOf(pqxx::transaction_base& tx,
                                                 const PersonSealer& sealer,
                                                 const StoredPerson& stored);

// The whole person: PersonSkeleton plus its opened personal fields, with the
// subject's key read in `tx`. DATA_LOSS if a field does not open; NOT_FOUND if
// the key is gone.
absl::StatusOr<crm::contacts::v1::Person> OpenPerson(pqxx::transaction_base& tx,
                                                     const PersonSealer& sealer,
                                                     const StoredPerson& stored);

}  // namespace crm::contacts
