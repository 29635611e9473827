// MailingStore: mailing's tables in PostgreSQL (migrations/0001_mailing.sql):
// lists, subscriptions, template versions, campaigns and the send queue.
// Ids only: no address is ever stored here.
//
// Every call takes the caller's transaction. Stateless: thread-safe.
#pragma once

#include <optional>
#include <pqxx/transaction_base>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "crm/mailing/v1/mailing.pb.h"

namespace crm::mailing {

// send_queue kinds: campaign mail, a double opt-in confirmation mail, and
// crm.mailing.v1.TransactionalKind values (1..99) for transactional mail.
inline constexpr int kCampaignKind = 0;
inline constexpr int kConfirmationKind = 100;

// A send_queue row's state.
enum class SendState : int {
  kQueued = 1,
  kSent,
  kSkippedConsent,
  kSkippedNoAddress,
  kFailed,
  kCancelled
};

// A claimed queue row: what a sender needs to send it.
struct Claimed {
  std::string message_id;
  std::string campaign_id;  // "" for transactional
  std::string subject_id;   // "" for transactional mail to an address
  int kind = 0;
  int attempts = 0;  // including this one
  // Transactional mail: the request, wrapped under the KEK (transactional.h).
  std::string payload;
  // The campaign's list, purpose and template version (campaign messages).
  std::string list_id;
  std::string purpose_id;
  std::string template_id;
  int64_t template_version = 0;
};

// A send_queue row as the subject sees it (SubjectData export).
struct SendRecord {
  std::string message_id;
  std::string campaign_id;
  std::string list_id;
  SendState state = SendState::kQueued;
  absl::Time queued_at;
  std::optional<absl::Time> finished_at;
  bool unsubscribed = false;
};

// What mailing holds about a subject, and what an erasure removed.
struct SubjectCounts {
  int64_t subscriptions = 0;
  int64_t sends = 0;
};

class MailingStore {
 public:
  // Lists. ALREADY_EXISTS for a taken id.
  static absl::Status InsertList(pqxx::transaction_base& tx, const v1::MailingList& list,
                                 absl::Time now);
  static absl::StatusOr<std::optional<v1::MailingList>> GetList(pqxx::transaction_base& tx,
                                                                const std::string& list_id);
  static absl::StatusOr<std::vector<v1::MailingList>> ListLists(pqxx::transaction_base& tx);

  // Subscriptions. `lock` takes the row (FOR UPDATE) when it exists.
  static absl::StatusOr<std::optional<v1::Subscription>> GetSubscription(
      pqxx::transaction_base& tx, const std::string& list_id, const std::string& subject_id,
      bool lock);
  // Inserts or replaces (list_id, subject_id) with `s`; `notice_version` and
  // `language` are kept for a pending double opt-in.
  static absl::Status PutSubscription(pqxx::transaction_base& tx, const v1::Subscription& s,
                                      const std::string& notice_version,
                                      const std::string& language);
  // The notice a pending subscription was given with: (version, language).
  static absl::StatusOr<std::pair<std::string, std::string>> PendingNotice(
      pqxx::transaction_base& tx, const std::string& list_id, const std::string& subject_id);
  // A page of a list's subscriptions by subject id after `after` ("" from the
  // start); state 0: all.
  static absl::StatusOr<std::vector<v1::Subscription>> ListSubscriptions(pqxx::transaction_base& tx,
                                                                         const std::string& list_id,
                                                                         int state,
                                                                         const std::string& after,
                                                                         int limit);

  // Templates: stores the next version of t.template_id(); the stored one.
  static absl::StatusOr<v1::Template> InsertTemplate(pqxx::transaction_base& tx,
                                                     const v1::Template& t, absl::Time now);
  // Version 0: the newest.
  static absl::StatusOr<std::optional<v1::Template>> GetTemplate(pqxx::transaction_base& tx,
                                                                 const std::string& template_id,
                                                                 int64_t version);

  // Campaigns.
  static absl::Status InsertCampaign(pqxx::transaction_base& tx, const v1::Campaign& c,
                                     absl::Time now);
  // With its counts; `lock` takes FOR UPDATE.
  static absl::StatusOr<std::optional<v1::Campaign>> GetCampaign(pqxx::transaction_base& tx,
                                                                 const std::string& campaign_id,
                                                                 bool lock);
  static absl::Status SetCampaignState(pqxx::transaction_base& tx, const std::string& campaign_id,
                                       v1::CampaignState state,
                                       std::optional<absl::Time> send_at = std::nullopt);
  // Queued messages of a cancelled campaign (not those already handed to the
  // relay) become cancelled; how many.
  static absl::StatusOr<int64_t> CancelQueued(pqxx::transaction_base& tx,
                                              const std::string& campaign_id, absl::Time now);

  // The send queue. Starts every scheduled campaign due at `now`: its state
  // becomes SENDING and one queue row per active subscriber is added (none
  // twice). The campaigns started.
  static absl::StatusOr<std::vector<std::string>> StartDueCampaigns(pqxx::transaction_base& tx,
                                                                    absl::Time now);
  // Queues the confirmation mail of a pending double opt-in subscription.
  static absl::Status QueueConfirmation(pqxx::transaction_base& tx, const std::string& list_id,
                                        const std::string& subject_id, absl::Time now);
  // Queues a transactional message (`subject_id` "" when it goes to the
  // address in `payload`) unless `dedup_key` was queued before: the message
  // id queued, and whether it is new.
  static absl::StatusOr<std::pair<std::string, bool>> QueueTransactional(
      pqxx::transaction_base& tx, const std::string& message_id, const std::string& subject_id,
      int kind, const std::string& dedup_key, const std::string& payload, absl::Time now);
  // Claims up to `limit` due rows of sending campaigns (and confirmation
  // and transactional mail) not leased by another worker, leases them until
  // now + `lease` and counts the attempt. (Rows handed off by a worker whose
  // lease ran out must be settled first, in the same transaction.)
  static absl::StatusOr<std::vector<Claimed>> Claim(pqxx::transaction_base& tx, int limit,
                                                    absl::Duration lease, absl::Time now);
  // Notes that the claimed row (its attempt `attempts`) is being handed to
  // the relay now, in the caller's commit, just before the end of data.
  // false: the row is not this claim's any more (its lease ran out and
  // another worker claimed it, or it was ended): do not send it.
  static absl::StatusOr<bool> HandOff(pqxx::transaction_base& tx, const std::string& message_id,
                                      int attempts, absl::Time now);
  // Rows handed off whose lease ran out before `now` without an outcome (the
  // worker died while the relay answered) become sent, as the relay most
  // likely took them, with last_error "relay reply not seen". How many.
  static absl::StatusOr<int64_t> SettleAbandonedHandOffs(pqxx::transaction_base& tx,
                                                         absl::Time now);
  // Ends a claimed row (sent, skipped, failed; its payload wiped) or, for
  // kQueued, puts it back (not handed off) for a retry at `retry_at` with
  // `error` noted.
  static absl::Status Finish(pqxx::transaction_base& tx, const std::string& message_id,
                             SendState state, absl::Time now, const std::string& error = "",
                             absl::Time retry_at = absl::InfinitePast());
  // Ends several claimed rows alike (not kQueued), e.g. a round's sent ones.
  static absl::Status FinishMany(pqxx::transaction_base& tx,
                                 const std::vector<std::string>& message_ids, SendState state,
                                 absl::Time now, const std::string& error = "");
  // Campaigns in SENDING with nothing queued any more become DONE.
  static absl::Status CompleteCampaigns(pqxx::transaction_base& tx);
  // SubjectData: counts, the subject's subscriptions and send log, erasure
  // (both, queued rows included), and the erasure answers by request id.
  static absl::StatusOr<SubjectCounts> CountSubject(pqxx::transaction_base& tx,
                                                    const std::string& subject_id);
  static absl::StatusOr<std::vector<v1::Subscription>> SubjectSubscriptions(
      pqxx::transaction_base& tx, const std::string& subject_id);
  static absl::StatusOr<std::vector<SendRecord>> SubjectSends(pqxx::transaction_base& tx,
                                                              const std::string& subject_id);
  static absl::Status EraseSubject(pqxx::transaction_base& tx, const std::string& subject_id);
  // (subject id, counts, completed at) of an earlier erasure request.
  struct Erasure {
    std::string subject_id;
    SubjectCounts erased;
    absl::Time completed_at;
  };
  static absl::StatusOr<std::optional<Erasure>> ErasureRecorded(pqxx::transaction_base& tx,
                                                                const std::string& request_id);
  static absl::Status RecordErasure(pqxx::transaction_base& tx, const std::string& request_id,
                                    const Erasure& e);

  // Counts an unsubscription against the campaign whose message the subject
  // got last from `list_id` (CampaignCounts.unsubscribed).
  static absl::Status NoteUnsubscribe(pqxx::transaction_base& tx, const std::string& list_id,
                                      const std::string& subject_id, absl::Time now);
};

}  // namespace crm::mailing
