// PersonStore: contacts' persons in PostgreSQL (migrations/0001_contacts.sql).
// It keeps and compares bytes only: every personal field arrives sealed by
// the service layer (person_sealer.h) and every look-up key as a blind index;
// the store never sees a personal value in clear.
//
// Every call takes the caller's transaction, so a change, its audit event
// (libs/outbox Writer::Enqueue) and its look-up keys commit together.
//
// Record-level access is part of each query: a person is visible to an
// Access if it has read_all, owns the person, or is in the person's team.
// A person that is not visible is reported exactly like one that does not
// exist.
//
// Stateless: thread-safe.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <pqxx/transaction>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "libs/outbox/writer.h"
#include "libs/pg/pipeline.h"

namespace crm::contacts {

// Who is asking, for record-level checks.
struct Access {
  bool all = false;                   // contacts.read.all
  std::string user_id;                // owner match
  std::vector<std::string> team_ids;  // team match
};

// The columns of a sealed personal field, in the order the store reads them.
inline constexpr const char* kSealedPersonFields[] = {
    "given_name", "family_name",        "emails", "phones", "addresses",
    "job_title",  "personal_id_number", "notes"};

// One person as stored.
struct StoredPerson {
  std::string subject_id;
  int status = 0;
  std::string company_id;                   // "" for none
  std::string team_id;                      // "" for none
  std::vector<std::string> owner_user_ids;  // sorted
  bool restricted = false;
  std::string restriction_reason;  // sealed; "" for none
  bool notes_sensitive = false;
  // Sealed fields by column name (kSealedPersonFields); absent when empty.
  std::map<std::string, std::string> sealed;
  std::string reg_channel;
  std::string reg_source;
  std::string created_by;
  absl::Time created_at;
  absl::Time updated_at;
  absl::Time last_activity_at;
  int64_t version = 0;
  // The wrapped data key, read with the row ("" if none: erased); not
  // written by Insert/Update, which take the key apart.
  std::string wrapped_key;
};

// What GetMailingAddresses needs of one person (PersonStore::GetForMailing).
struct MailingRow {
  std::string subject_id;
  bool restricted = false;
  // "given_name" and "emails" as sealed (absent when empty); both absent
  // for a restricted person, whose data is not read.
  std::map<std::string, std::string> sealed;
  // The wrapped data key; "" for a restricted person, one without e-mail
  // addresses, or one whose key is gone.
  std::string wrapped_key;
};

// A blind index of one e-mail address ("email") or phone number ("phone").
struct LookupKey {
  std::string kind;
  std::string blind;  // 32 bytes
  friend bool operator==(const LookupKey&, const LookupKey&) = default;
};

struct PersonFilter {
  int status = 0;  // 0: any
  std::string owner_user_id;
  std::string team_id;
  std::string company_id;
  bool include_restricted = false;
};

// Keyset paging position of newest-first lists: the time and id of the last
// row of the previous page (ListPersons: created_at and subject_id;
// ListInteractions: occurred_at and interaction_id).
struct Cursor {
  absl::Time at;
  std::string id;
};

// One entry of a person's contact history as stored.
struct StoredInteraction {
  std::string interaction_id;
  std::string subject_id;
  int kind = 0;
  absl::Time occurred_at;
  std::string operator_user_id;
  std::string summary;  // sealed
  bool sensitive = false;
  absl::Time created_at;
};

// A look-up key already registered to another subject.
struct DuplicateKey {
  size_t key_index = 0;  // into the keys asked about
  std::string subject_id;
};

// One invoice record as stored.
struct StoredInvoice {
  std::string invoice_id;
  std::string subject_id;  // the person invoiced, or
  std::string company_id;  // the company
  std::string sealed;      // number and amounts, under the owner's invoice key
  std::string issue_date;  // YYYY-MM-DD
  std::string currency;
  std::string retain_until;  // YYYY-MM-DD
  bool restricted = false;
  std::string created_by;
  absl::Time created_at;
};

class InvoiceStore {
 public:
  // The owner's wrapped invoice key, if it has one.
  static absl::StatusOr<std::optional<std::string>> WrappedKey(pqxx::work& tx,
                                                               const std::string& owner_id);
  static absl::Status InsertKey(pqxx::work& tx, const std::string& owner_id,
                                const std::string& wrapped);
  static absl::Status Insert(pqxx::work& tx, const StoredInvoice& invoice);
  // The invoices of a subject (or, with `company` set, of a company), newest
  // issue date first.
  static absl::StatusOr<std::vector<StoredInvoice>> List(pqxx::work& tx,
                                                         const std::string& owner_id, bool company,
                                                         int limit);
  // Marks a subject's invoices restricted (erasure keeps them so).
  static absl::Status Restrict(pqxx::work& tx, const std::string& subject_id);
  // Deletes the invoices whose retain_until is before `today` (YYYY-MM-DD),
  // and the invoice keys of owners with none left. Returns how many.
  static absl::StatusOr<int64_t> PurgeExpired(pqxx::work& tx, const std::string& today);
};

// What contacts holds about one subject (SubjectData).
struct SubjectCounts {
  int64_t persons = 0;
  int64_t interactions = 0;
  int64_t emails = 0;
  int64_t phones = 0;
  int64_t invoices = 0;        // kept under the accounting law
  std::string retained_until;  // the latest retain_until of those, or ""
  bool key_exists = false;
};

// The answer recorded for an erasure request.
struct ErasureRecord {
  std::string subject_id;
  SubjectCounts erased;  // key_exists: whether a key was there to destroy
  absl::Time completed_at;
};

// One company as stored.
struct StoredCompany {
  std::string company_id;
  std::string team_id;                      // "" for none
  std::vector<std::string> owner_user_ids;  // sorted
  // Sealed fields by column name (kSealedCompanyFields); absent when empty.
  std::map<std::string, std::string> sealed;
  std::string created_by;
  absl::Time created_at;
  absl::Time updated_at;
  int64_t version = 0;
};

inline constexpr const char* kSealedCompanyFields[] = {"name", "tax_ids", "addresses", "billing"};

// Companies: the same visibility rule as persons (owner, team, read_all).
class CompanyStore {
 public:
  // The first of `keys` (kinds "nip", "regon", "krs", "eu_vat") registered to
  // a company other than `except_company`, if any.
  static absl::StatusOr<std::optional<DuplicateKey>> FindOwnerOfKeys(
      pqxx::work& tx, const std::vector<LookupKey>& keys, const std::string& except_company = "");
  static absl::Status Insert(pqxx::work& tx, const StoredCompany& company,
                             const std::string& wrapped_key, const std::vector<LookupKey>& keys);
  static absl::StatusOr<std::optional<StoredCompany>> Get(pqxx::work& tx,
                                                          const std::string& company_id,
                                                          const Access& access, bool lock);
  static absl::StatusOr<std::string> WrappedKey(pqxx::work& tx, const std::string& company_id);
  // Writes the sealed fields, updated_at and version; replaces the look-up
  // keys when `keys` is set.
  static absl::Status Update(pqxx::work& tx, const StoredCompany& company,
                             const std::optional<std::vector<LookupKey>>& keys);
  static absl::StatusOr<std::vector<StoredCompany>> List(pqxx::work& tx, const Access& access,
                                                         const std::optional<Cursor>& cursor,
                                                         int limit);
  // The visible companies with any of `keys`.
  static absl::StatusOr<std::vector<std::string>> FindByKeys(pqxx::transaction_base& tx,
                                                             const std::vector<LookupKey>& keys,
                                                             const Access& access);
};

class PersonStore {
 public:
  // The first of `keys` registered to a subject other than `except_subject`,
  // if any.
  static absl::StatusOr<std::optional<DuplicateKey>> FindOwnerOfKeys(
      pqxx::work& tx, const std::vector<LookupKey>& keys, const std::string& except_subject = "");

  // Every one of `keys` registered to some subject, in the order of `keys`:
  // one query for the keys of a whole batch.
  static absl::StatusOr<std::vector<DuplicateKey>> FindOwnersOfKeys(
      pqxx::work& tx, const std::vector<LookupKey>& keys);

  // FindOwnerOfKeys as a statement of `pipeline` (nothing added for no
  // keys); OwnerFound reads its answer once the pipeline has run.
  static std::optional<size_t> AddFindOwnerOfKeys(pg::Pipeline& pipeline,
                                                  const std::vector<LookupKey>& keys);
  static std::optional<DuplicateKey> OwnerFound(const pg::Pipeline& pipeline,
                                                std::optional<size_t> statement);

  // Adds to `pipeline` the inserts of a new person with its wrapped data key,
  // owners and look-up keys. When it runs: ALREADY_EXISTS if a look-up key is
  // taken (the unique index).
  static void AddInsert(pg::Pipeline& pipeline, const StoredPerson& person,
                        const std::string& wrapped_key, const std::vector<LookupKey>& keys);

  // A person for InsertMany, as Insert takes it (pointers to the caller's).
  struct NewPerson {
    const StoredPerson* person;
    const std::string* wrapped_key;
    const std::vector<LookupKey>* keys;
  };
  // Inserts persons as Insert does, with one COPY per table for all of them
  // (bulk import). ALREADY_EXISTS as Insert, also for two of them sharing a
  // key; the transaction is then lost.
  static absl::Status InsertMany(pqxx::work& tx, const std::vector<NewPerson>& persons);

  // The person if it exists and `access` may see it; `lock` takes a row lock
  // for an update in this transaction.
  static absl::StatusOr<std::optional<StoredPerson>> Get(pqxx::transaction_base& tx,
                                                         const std::string& subject_id,
                                                         const Access& access, bool lock);

  // Get (no lock), and in the same statement the audit event `read`
  // (outbox::Writer::SealForInsert) inserted into the outbox if and only if
  // the person is returned: an audited read in one round trip.
  static absl::StatusOr<std::optional<StoredPerson>> GetAudited(pqxx::transaction_base& tx,
                                                                const std::string& subject_id,
                                                                const Access& access,
                                                                const outbox::SealedEvent& read);

  // The persons among `subject_ids` (canonical UUIDs, no repeats) in no
  // particular order, with only what mailing needs (MailingRow): one
  // statement for the whole batch, by primary key. No record-level check:
  // for the mailing service's GetMailingAddresses, which the access policy
  // opens to that service only.
  static absl::StatusOr<std::vector<MailingRow>> GetForMailing(
      pqxx::transaction_base& tx, const std::vector<std::string>& subject_ids);
  // GetForMailing's statement ($1: a uuid[] literal), for the plan test.
  static const std::string& MailingSql();

  // The wrapped data key of a subject; NOT_FOUND if it has none (erased).
  static absl::StatusOr<std::string> WrappedKey(pqxx::transaction_base& tx,
                                                const std::string& subject_id);

  // Writes the mutable columns of `person` (status, company, team,
  // restriction, notes_sensitive, sealed fields, updated_at,
  // last_activity_at, version) and, when `keys` is set, replaces its look-up
  // keys. ALREADY_EXISTS if a new key is taken.
  static absl::Status Update(pqxx::work& tx, const StoredPerson& person,
                             const std::optional<std::vector<LookupKey>>& keys);

  // Replaces the owners.
  static absl::Status SetOwners(pqxx::work& tx, const std::string& subject_id,
                                const std::vector<std::string>& owner_user_ids);

  // Visible persons matching `filter`, newest first, after `cursor`, at most
  // `limit`.
  static absl::StatusOr<std::vector<StoredPerson>> List(pqxx::transaction_base& tx,
                                                        const PersonFilter& filter,
                                                        const Access& access,
                                                        const std::optional<Cursor>& cursor,
                                                        int limit);

  // Adds an entry to a person's history and counts it as activity.
  static absl::Status AddInteraction(pqxx::work& tx, const StoredInteraction& entry);

  // A person's history, newest first, after `cursor`, at most `limit`.
  static absl::StatusOr<std::vector<StoredInteraction>> ListInteractions(
      pqxx::work& tx, const std::string& subject_id, const std::optional<Cursor>& cursor,
      int limit);

  // What is stored about `subject_id`.
  static absl::StatusOr<SubjectCounts> Count(pqxx::work& tx, const std::string& subject_id);

  // Deletes the person (with owners and look-up keys) and its wrapped data
  // key.
  static absl::Status Erase(pqxx::work& tx, const std::string& subject_id);

  // The answer recorded for erasure request `request_id`, if any; records one.
  static absl::StatusOr<std::optional<ErasureRecord>> ErasureRecorded(
      pqxx::work& tx, const std::string& request_id);
  static absl::Status RecordErasure(pqxx::work& tx, const std::string& request_id,
                                    const ErasureRecord& record);

  // Visible persons with look-up key `key` (at most one by the unique index).
  static absl::StatusOr<std::vector<StoredPerson>> FindByKey(pqxx::transaction_base& tx,
                                                             const LookupKey& key,
                                                             const Access& access);
};

}  // namespace crm::contacts
