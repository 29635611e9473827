#include "services/contacts/person_sealer.h"

#include "absl/strings/str_cat.h"
#include "libs/base/status_macros.h"
#include "libs/crypto/aead.h"
#include "libs/crypto/data_key.h"
#include "libs/rpc/handler.h"

namespace crm::contacts {

namespace {

using crm::contacts::v1::Person;

constexpr char kKeyPurpose[] = "contacts";

std::string Aad(absl::string_view subject_id, absl::string_view field) {
  return absl::StrCat("crm.contacts.v1|", subject_id, "|", field);
}

}  // namespace

absl::StatusOr<PersonSealer::SubjectKey> PersonSealer::NewKey(absl::string_view purpose,
                                                              const std::string& owner_id) const {
  SubjectKey out{.key = crypto::NewDataKey(), .wrapped = {}};
  CRM_ASSIGN_OR_RETURN(out.wrapped, crypto::WrapDataKey(ring_, out.key, purpose, owner_id));
  return out;
}

absl::StatusOr<crypto::SecretBytes> PersonSealer::UnwrapKey(absl::string_view purpose,
                                                            const std::string& wrapped,
                                                            const std::string& owner_id) const {
  return crypto::UnwrapDataKey(ring_, wrapped, purpose, owner_id);
}

absl::StatusOr<PersonSealer::SubjectKey> PersonSealer::NewSubjectKey(
    const std::string& subject_id) const {
  return NewKey(kKeyPurpose, subject_id);
}

absl::StatusOr<crypto::SecretBytes> PersonSealer::Unwrap(const std::string& wrapped,
                                                         const std::string& subject_id) const {
  return UnwrapKey(kKeyPurpose, wrapped, subject_id);
}

absl::Status PersonSealer::SealMessageFields(const crypto::SecretBytes& key,
                                             const google::protobuf::Message& message,
                                             const std::vector<std::string>& fields,
                                             absl::string_view owner,
                                             std::map<std::string, std::string>& out) const {
  out.clear();
  // Each field is moved out of a copy into an empty message of its own
  // (Reflection::SwapFields) and serialized from there.
  std::unique_ptr<google::protobuf::Message> rest(message.New());
  rest->CopyFrom(message);
  std::unique_ptr<google::protobuf::Message> part(message.New());
  const google::protobuf::Reflection* reflection = message.GetReflection();
  CRM_ASSIGN_OR_RETURN(crypto::SealingKey sealing, crypto::SealingKey::Create(key));
  for (const std::string& field : fields) {
    const google::protobuf::FieldDescriptor* fd = message.GetDescriptor()->FindFieldByName(field);
    if (fd == nullptr) return absl::InternalError(absl::StrCat("no field ", field));
    part->Clear();
    reflection->SwapFields(rest.get(), part.get(), {fd});
    if (part->ByteSizeLong() == 0) continue;
    CRM_ASSIGN_OR_RETURN(out[field], sealing.Seal(part->SerializeAsString(), Aad(owner, field)));
  }
  return absl::OkStatus();
}

absl::Status PersonSealer::OpenMessageFields(const crypto::SecretBytes& key,
                                             const std::map<std::string, std::string>& sealed,
                                             absl::string_view owner, absl::string_view entity,
                                             google::protobuf::Message& out) const {
  for (const auto& [field, ciphertext] : sealed) {
    absl::StatusOr<std::string> plain = crypto::Open(key, ciphertext, Aad(owner, field));
    std::unique_ptr<google::protobuf::Message> part(out.New());
    const google::protobuf::FieldDescriptor* fd = out.GetDescriptor()->FindFieldByName(field);
    if (!plain.ok() || fd == nullptr || !part->ParseFromString(*plain)) {
      return absl::DataLossError(absl::StrCat(entity, ".", field, ": stored value does not open"));
    }
    // Only `field` of what was sealed: anything else in the plaintext is
    // not this column's to set.
    std::unique_ptr<google::protobuf::Message> only(out.New());
    out.GetReflection()->SwapFields(part.get(), only.get(), {fd});
    out.MergeFrom(*only);
  }
  return absl::OkStatus();
}

absl::Status PersonSealer::SealFields(const crypto::SecretBytes& key, const Person& person,
                                      StoredPerson& out) const {
  static const std::vector<std::string>* const kFields =
      new std::vector<std::string>(std::begin(kSealedPersonFields), std::end(kSealedPersonFields));
  return SealMessageFields(key, person, *kFields, out.subject_id, out.sealed);
}

absl::Status PersonSealer::OpenFields(const crypto::SecretBytes& key, const StoredPerson& stored,
                                      Person& out) const {
  return OpenMessageFields(key, stored.sealed, stored.subject_id, "person", out);
}

absl::StatusOr<std::string> PersonSealer::SealText(const crypto::SecretBytes& key,
                                                   const std::string& subject_id,
                                                   absl::string_view field,
                                                   absl::string_view text) const {
  if (text.empty()) return std::string();
  return crypto::Seal(key, text, Aad(subject_id, field));
}

absl::StatusOr<std::string> PersonSealer::OpenText(const crypto::SecretBytes& key,
                                                   const std::string& subject_id,
                                                   absl::string_view field,
                                                   absl::string_view sealed) const {
  if (sealed.empty()) return std::string();
  absl::StatusOr<std::string> plain = crypto::Open(key, sealed, Aad(subject_id, field));
  if (!plain.ok()) {
    return absl::DataLossError(absl::StrCat("person.", field, ": stored value does not open"));
  }
  return plain;
}

LookupKey PersonSealer::EmailKey(absl::string_view normalized_email) const {
  return {"email", indexer_.Raw(absl::StrCat("contacts.email:", normalized_email))};
}

LookupKey PersonSealer::TaxIdKey(absl::string_view kind, absl::string_view canonical) const {
  return {std::string(kind), indexer_.Raw(absl::StrCat("contacts.tax_id.", kind, ":", canonical))};
}

LookupKey PersonSealer::PhoneKey(absl::string_view normalized_phone) const {
  return {"phone", indexer_.Raw(absl::StrCat("contacts.phone:", normalized_phone))};
}

std::vector<LookupKey> PersonSealer::KeysOf(const Person& person) const {
  std::vector<LookupKey> keys;
  for (const auto& e : person.emails()) keys.push_back(EmailKey(e.address()));
  for (const auto& p : person.phones()) keys.push_back(PhoneKey(p.number()));
  return keys;
}

Person PersonSkeleton(const StoredPerson& stored) {
  crm::contacts::v1::Person p;
  p.set_subject_id(stored.subject_id);
  p.set_status(static_cast<crm::contacts::v1::PersonStatus>(stored.status));
  p.set_company_id(stored.company_id);
  p.set_notes_sensitive(stored.notes_sensitive);
  crm::contacts::v1::Registration* reg = p.mutable_registration();
  rpc::SetTime(stored.created_at, reg->mutable_created_at());
  reg->set_channel(stored.reg_channel);
  reg->set_source(stored.reg_source);
  reg->set_created_by(stored.created_by);
  for (const std::string& o : stored.owner_user_ids) p.mutable_assignment()->add_owner_user_ids(o);
  p.mutable_assignment()->set_team_id(stored.team_id);
  p.set_restricted(stored.restricted);
  rpc::SetTime(stored.updated_at, p.mutable_updated_at());
  p.set_version(stored.version);
  return p;
}

std::string InteractionSummaryField(absl::string_view interaction_id) {
  return absl::StrCat("interaction:", interaction_id);
}

absl::StatusOr<crypto::SecretBytes> SubjectKeyOf(pqxx::transaction_base& tx,
                                                 const PersonSealer& sealer,
                                                 const StoredPerson& stored) {
  if (!stored.wrapped_key.empty()) return sealer.Unwrap(stored.wrapped_key, stored.subject_id);
  CRM_ASSIGN_OR_RETURN(std::string wrapped, PersonStore::WrappedKey(tx, stored.subject_id));
  return sealer.Unwrap(wrapped, stored.subject_id);
}

absl::StatusOr<Person> OpenPerson(pqxx::transaction_base& tx, const PersonSealer& sealer,
                                  const StoredPerson& stored) {
  Person p = PersonSkeleton(stored);
  if (stored.sealed.empty()) return p;
  CRM_ASSIGN_OR_RETURN(crypto::SecretBytes key, SubjectKeyOf(tx, sealer, stored));
  CRM_RETURN_IF_ERROR(sealer.OpenFields(key, stored, p));
  return p;
}

}  // namespace crm::contacts
