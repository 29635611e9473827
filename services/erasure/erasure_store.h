// ErasureStore: the orchestrator's tables (migrations/0001_erasure.sql):
// requests, their per-target progress and the signed certificates. Ids,
// categories and counts only: no personal data.
//
// Every call takes the caller's transaction. Stateless: thread-safe.
#pragma once

#include <optional>
#include <pqxx/transaction_base>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "crm/erasure/v1/erasure.pb.h"

namespace crm::erasure {

// True for the states a worker still has to move on: RECEIVED to VERIFYING,
// and EXPORTING.
bool IsOpen(v1::State state);

class ErasureStore {
 public:
  // Inserts `r` (request_id, subject_id, kind, reason, requester,
  // received_at, not_before, due_at; state RECEIVED) with a PENDING target
  // per name in `targets`, unless the subject has an open request of the
  // same kind: then that one, and false.
  static absl::StatusOr<std::pair<v1::ErasureRequest, bool>> Insert(
      pqxx::transaction_base& tx, const v1::ErasureRequest& r,
      const std::vector<std::string>& targets);
  // With its targets when `with_targets`; `lock` takes the row FOR UPDATE.
  static absl::StatusOr<std::optional<v1::ErasureRequest>> Get(pqxx::transaction_base& tx,
                                                               const std::string& request_id,
                                                               bool with_targets, bool lock);
  // A page by due date then id, after `after` ((due_at, request_id) of the
  // last row, or nullopt from the start); state 0: all (`unfinished`: those
  // open or needing attention); due_before: none if InfiniteFuture; kind 0:
  // both; subject_id "": every subject.
  struct Cursor {
    absl::Time due_at;
    std::string request_id;
  };
  static absl::StatusOr<std::vector<v1::ErasureRequest>> List(
      pqxx::transaction_base& tx, v1::State state, absl::Time due_before,
      const std::optional<Cursor>& after, int limit, bool unfinished = false,
      v1::RequestKind kind = {}, const std::string& subject_id = "");
  // Claims up to `limit` open requests due at `now` that no other worker
  // holds (SKIP LOCKED), leasing them to `owner` (a worker's id) until
  // now + lease.
  static absl::StatusOr<std::vector<std::string>> Claim(pqxx::transaction_base& tx, int limit,
                                                        absl::Duration lease, absl::Time now,
                                                        const std::string& owner);
  // The worker's write: the request's state, rounds, attention,
  // completed_at and expires_at, and when to look at it again (`next_attempt_at`);
  // `release` ends the worker's lease. Only if no other worker holds the
  // lease now (`owner`: this worker's id) and the stored state is still
  // `expected`: FAILED_PRECONDITION otherwise (cancelled meanwhile).
  static absl::Status Update(pqxx::transaction_base& tx, const v1::ErasureRequest& r,
                             v1::State expected, absl::Time next_attempt_at, bool release,
                             const std::string& owner);
  // RECEIVED -> CANCELLED (addresses dropped); false if the request is past
  // RECEIVED.
  static absl::StatusOr<bool> Cancel(pqxx::transaction_base& tx, const std::string& request_id);
  // Sets the due date and the extension (months in all, reason), marks the
  // subject's notice pending and, for an open request, makes it due `now`
  // (the worker sends the notice), or at the end of its cancel window.
  static absl::Status Extend(pqxx::transaction_base& tx, const std::string& request_id,
                             absl::Time due_at, int months, const std::string& reason,
                             absl::Time now);
  // The extension notice for `months` in all was queued (not cleared if the
  // request was extended again meanwhile).
  static absl::Status ExtensionNoticeSent(pqxx::transaction_base& tx, const std::string& request_id,
                                          int months);
  // Writes one target's state and detail.
  static absl::Status PutTarget(pqxx::transaction_base& tx, const std::string& request_id,
                                const v1::Target& t);
  static absl::Status PutCertificate(pqxx::transaction_base& tx, const std::string& request_id,
                                     const std::string& body, const std::string& signature,
                                     absl::Time now);
  // (body, signature), or nullopt.
  static absl::StatusOr<std::optional<std::pair<std::string, std::string>>> GetCertificate(
      pqxx::transaction_base& tx, const std::string& request_id);

  // A request's secrets, in one read of its row: the sealed addresses with
  // the wrapped key sealing them ((wrapped key, sealed), nullopt when none
  // were stored or they were dropped), and an access request's wrapped
  // export key (nullopt before exporting and after expiry).
  struct Secrets {
    std::optional<std::pair<std::string, std::string>> addresses;
    std::optional<std::string> export_key;
  };
  static absl::StatusOr<Secrets> GetSecrets(pqxx::transaction_base& tx,
                                            const std::string& request_id);
  // PutAddresses stores the sealed addresses; Drop destroys them and their key.
  static absl::Status PutAddresses(pqxx::transaction_base& tx, const std::string& request_id,
                                   const std::string& wrapped_key, const std::string& sealed);
  static absl::Status DropAddresses(pqxx::transaction_base& tx, const std::string& request_id);
  // An access request's export: the key its parts are sealed under (wrapped
  // under the KEK; read by GetSecrets), and its parts, read one at a time in
  // (service, seq) order so that serving an export holds one part in memory.
  static absl::Status PutExportKey(pqxx::transaction_base& tx, const std::string& request_id,
                                   const std::string& wrapped_key);
  static absl::Status PutExportPart(pqxx::transaction_base& tx, const std::string& request_id,
                                    const std::string& service, int seq, const std::string& sealed);
  // Deletes an export that will not be served: its parts and its key.
  static absl::Status DropExport(pqxx::transaction_base& tx, const std::string& request_id);
  // How many parts the export has.
  static absl::StatusOr<int64_t> CountExportParts(pqxx::transaction_base& tx,
                                                  const std::string& request_id);
  // Drops a target's parts (before writing them again).
  static absl::Status DropExportParts(pqxx::transaction_base& tx, const std::string& request_id,
                                      const std::string& service);
  struct ExportPart {
    std::string service;
    int seq = 0;
    std::string sealed;
  };
  // The first part after (after_service, after_seq); ("", -1) from the start.
  static absl::StatusOr<std::optional<ExportPart>> NextExportPart(pqxx::transaction_base& tx,
                                                                  const std::string& request_id,
                                                                  const std::string& after_service,
                                                                  int after_seq);
  // Deletes up to `limit` exports whose time ran out at `now` (parts and
  // key): their requests become EXPIRED and are returned.
  static absl::StatusOr<std::vector<v1::ErasureRequest>> Expire(pqxx::transaction_base& tx,
                                                                absl::Time now, int limit);

  // Subjects whose erasure request completed at or after `since`, by subject id after
  // `after` ("" from the start), at most `limit`.
  static absl::StatusOr<std::vector<std::string>> CompletedSubjects(pqxx::transaction_base& tx,
                                                                    absl::Time since,
                                                                    const std::string& after,
                                                                    int limit);
  // For metrics: open requests by state, and how many open ones are overdue
  // at `now` or due before `soon`.
  struct OpenCounts {
    std::vector<std::pair<v1::State, int64_t>> by_state;
    int64_t overdue = 0;
    int64_t due_soon = 0;
  };
  static absl::StatusOr<OpenCounts> CountOpen(pqxx::transaction_base& tx, absl::Time now,
                                              absl::Time soon);
};

}  // namespace crm::erasure
