// ConsentStore: consent's tables in PostgreSQL (migrations/0001_consent.sql):
// purposes, notices, subject keys, the hash-linked ledger, the folded state
// per subject and purpose, restrictions. Bytes and ids only: the evidence of
// a statement arrives sealed by the service.
//
// Every call takes the caller's transaction. Appends for one subject are
// serialized by LockSubject (a row lock on the subject's key row), so each
// entry links to the one before it. Stateless: thread-safe.
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <pqxx/transaction_base>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "crm/consent/v1/consent.pb.h"
#include "services/consent/rules.h"

namespace crm::consent {

// What consent holds about one subject (SubjectData).
struct SubjectCounts {
  int64_t entries = 0;    // ledger
  int64_t standings = 0;  // consent_state
  bool restricted = false;
  bool key_exists = false;
  // Direct-marketing purposes the subject stands objected to: an erasure
  // then keeps the subject's addresses on the suppression list.
  int64_t marketing_objections = 0;
};

// The answer recorded for an erasure request.
struct ErasureRecord {
  std::string subject_id;
  SubjectCounts erased;
  int64_t suppressed = 0;  // addresses kept on the suppression list
  absl::Time completed_at;
};

class ConsentStore {
 public:
  // Inserts `p` (its current_notice_versions ignored). ALREADY_EXISTS if a
  // purpose of that id exists.
  static absl::Status InsertPurpose(pqxx::transaction_base& tx, const v1::Purpose& p,
                                    absl::Time now);
  // Updates description, categories and validity (never the basis).
  static absl::Status UpdatePurpose(pqxx::transaction_base& tx, const v1::Purpose& p);
  // Every purpose, by id, with its current notice version per language.
  static absl::StatusOr<std::vector<v1::Purpose>> ListPurposes(pqxx::transaction_base& tx);
  // The ids of every purpose (what a change of a whole subject can affect).
  static absl::StatusOr<std::vector<std::string>> PurposeIds(pqxx::transaction_base& tx);
  static absl::StatusOr<std::optional<v1::Purpose>> GetPurpose(pqxx::transaction_base& tx,
                                                               const std::string& purpose_id);

  // Stores a notice text; false if that version was published before.
  static absl::StatusOr<bool> PublishNotice(pqxx::transaction_base& tx,
                                            const std::string& purpose_id,
                                            const std::string& language, const std::string& version,
                                            const std::string& text, absl::Time now);
  // The current (newest) version for the purpose and language; "" if none.
  static absl::StatusOr<std::string> CurrentNotice(pqxx::transaction_base& tx,
                                                   const std::string& purpose_id,
                                                   const std::string& language);
  static absl::StatusOr<bool> NoticeExists(pqxx::transaction_base& tx,
                                           const std::string& purpose_id,
                                           const std::string& language, const std::string& version);

  // Locks the subject for appending and returns its wrapped data key,
  // creating it with `make_wrapped()` the first time.
  static absl::StatusOr<std::string> LockSubject(
      pqxx::transaction_base& tx, const std::string& subject_id,
      const std::function<absl::StatusOr<std::string>()>& make_wrapped, absl::Time now);

  // The subject's newest entry, if any.
  static absl::StatusOr<std::optional<v1::LedgerEntry>> LastEntry(pqxx::transaction_base& tx,
                                                                  const std::string& subject_id);
  // The folded state of (subject, purpose).
  static absl::StatusOr<PurposeState> State(pqxx::transaction_base& tx,
                                            const std::string& subject_id,
                                            const std::string& purpose_id);
  // The states of `subject_ids` for one purpose (missing ones: kNone), and
  // which of them are restricted, in the order given.
  struct Standing {
    PurposeState state;
    bool restricted = false;
  };
  static absl::StatusOr<std::vector<Standing>> Standings(pqxx::transaction_base& tx,
                                                         const std::vector<std::string>& subjects,
                                                         const std::string& purpose_id);

  // Appends `entry` (linked by the caller) with its sealed evidence ("" for
  // none) and receipt ("" for none) and stores `state` as the purpose's new
  // state.
  static absl::Status Append(pqxx::transaction_base& tx, const v1::LedgerEntry& entry,
                             const std::string& sealed_evidence, const std::string& receipt,
                             const PurposeState& state);
  // The receipt of entry `sequence`, or of the subject's newest grant of
  // `purpose_id` when sequence is 0; "" if none.
  static absl::StatusOr<std::string> Receipt(pqxx::transaction_base& tx,
                                             const std::string& subject_id, int64_t sequence,
                                             const std::string& purpose_id = "");
  // Grants of `purpose_id` lapsing before `until`, by (expires_at,
  // subject_id) after the cursor, at most `limit`.
  struct Lapsing {
    std::string subject_id;
    absl::Time expires_at;
  };
  static absl::StatusOr<std::vector<Lapsing>> ListLapsing(pqxx::transaction_base& tx,
                                                          const std::string& purpose_id,
                                                          absl::Time until,
                                                          const std::optional<Lapsing>& after,
                                                          int limit);
  // Receipt keys, newest first: (key id, raw public key).
  static absl::StatusOr<std::vector<std::pair<std::string, std::string>>> ReceiptKeys(
      pqxx::transaction_base& tx);

  // The subject's entries, oldest first.
  static absl::StatusOr<std::vector<v1::LedgerEntry>> History(pqxx::transaction_base& tx,
                                                              const std::string& subject_id);

  // SubjectData: counts, the sealed evidence by entry sequence, the wrapped
  // key ("" if none), erasure (every row of the subject, its key included)
  // and the erasure answers by request id.
  static absl::StatusOr<SubjectCounts> Count(pqxx::transaction_base& tx,
                                             const std::string& subject_id);
  static absl::StatusOr<std::vector<std::pair<int64_t, std::string>>> Evidence(
      pqxx::transaction_base& tx, const std::string& subject_id);
  // The subject's receipts by entry sequence.
  static absl::StatusOr<std::map<int64_t, std::string>> Receipts(pqxx::transaction_base& tx,
                                                                 const std::string& subject_id);
  static absl::StatusOr<std::string> WrappedKey(pqxx::transaction_base& tx,
                                                const std::string& subject_id);
  static absl::Status Erase(pqxx::transaction_base& tx, const std::string& subject_id);
  static absl::StatusOr<std::optional<ErasureRecord>> ErasureRecorded(
      pqxx::transaction_base& tx, const std::string& request_id);
  static absl::Status RecordErasure(pqxx::transaction_base& tx, const std::string& request_id,
                                    const ErasureRecord& record);

  // The suppression list (migrations/0004_suppression.sql), by keyed hashes
  // of normalised e-mail addresses (32 bytes each).
  static absl::Status Suppress(pqxx::transaction_base& tx, const std::vector<std::string>& hashes,
                               absl::Time now);
  // Which of `hashes` are on the list, in their order.
  static absl::StatusOr<std::vector<bool>> Suppressed(pqxx::transaction_base& tx,
                                                      const std::vector<std::string>& hashes);

  // Restricts (or lifts the restriction of) a subject; whether it changed.
  static absl::StatusOr<bool> SetRestricted(pqxx::transaction_base& tx,
                                            const std::string& subject_id, bool restricted,
                                            absl::Time now);
};

}  // namespace crm::consent
