#include "services/mailing/mailing_store.h"

#include <pqxx/pqxx>

#include "absl/strings/str_cat.h"
#include "libs/base/status_macros.h"
#include "libs/base/uuid.h"
#include "libs/pg/array.h"
#include "libs/pg/prepared.h"
#include "libs/pg/sql_time.h"
#include "libs/rpc/handler.h"

namespace crm::mailing {
namespace {

using pg::ExecPrepared;
using pg::ExecPrepared1;

absl::Time Micros(const pqxx::field& f) { return absl::FromUnixMicros(f.as<int64_t>()); }

void SetOptionalTime(const pqxx::field& f, google::protobuf::Timestamp* out) {
  if (!f.is_null()) rpc::SetTime(Micros(f), out);
}

constexpr char kListColumns[] =
    "l.list_id, l.description, l.purpose_id, l.opt_in, " CRM_TS("l.created_at") ", "
    "(SELECT count(*) FROM subscriptions s WHERE s.list_id = l.list_id AND s.state = 2), "
    "(SELECT count(*) FROM subscriptions s WHERE s.list_id = l.list_id AND s.state = 1)";

v1::MailingList RowToList(const pqxx::row& r) {
  v1::MailingList l;
  l.set_list_id(r[0].as<std::string>());
  l.set_description(r[1].as<std::string>());
  l.set_purpose_id(r[2].as<std::string>());
  l.set_opt_in(static_cast<v1::OptIn>(r[3].as<int>()));
  rpc::SetTime(Micros(r[4]), l.mutable_created_at());
  l.set_active_subscribers(r[5].as<int64_t>());
  l.set_pending_subscribers(r[6].as<int64_t>());
  return l;
}

constexpr char kSubscriptionColumns[] = "list_id, subject_id::text, state, source, " CRM_TS(
    "created_at") ", " CRM_TS("confirmed_at") ", " CRM_TS("ended_at");

v1::Subscription RowToSubscription(const pqxx::row& r) {
  v1::Subscription s;
  s.set_list_id(r[0].as<std::string>());
  s.set_subject_id(r[1].as<std::string>());
  s.set_state(static_cast<v1::SubscriptionState>(r[2].as<int>()));
  s.set_source(r[3].as<std::string>());
  rpc::SetTime(Micros(r[4]), s.mutable_created_at());
  SetOptionalTime(r[5], s.mutable_confirmed_at());
  SetOptionalTime(r[6], s.mutable_ended_at());
  return s;
}

std::optional<int64_t> MicrosOf(const google::protobuf::Timestamp& t, bool set) {
  if (!set) return std::nullopt;
  return t.seconds() * 1'000'000 + t.nanos() / 1000;
}

constexpr char kTemplateColumns[] =
    "template_id, version, subject, text_body, html_body, " CRM_TS("created_at");

v1::Template RowToTemplate(const pqxx::row& r) {
  v1::Template t;
  t.set_template_id(r[0].as<std::string>());
  t.set_version(r[1].as<int64_t>());
  t.set_subject(r[2].as<std::string>());
  t.set_text_body(r[3].as<std::string>());
  t.set_html_body(r[4].as<std::string>());
  rpc::SetTime(Micros(r[5]), t.mutable_created_at());
  return t;
}

}  // namespace

absl::Status MailingStore::InsertList(pqxx::transaction_base& tx, const v1::MailingList& l,
                                      absl::Time now) {
  const pqxx::result r =
      ExecPrepared(tx,
                   "INSERT INTO lists (list_id, description, purpose_id, opt_in, created_at) "
                   "VALUES ($1, $2, $3, $4, " CRM_TS_PARAM("$5") ") ON CONFLICT DO NOTHING",
                   l.list_id(), l.description(), l.purpose_id(), static_cast<int>(l.opt_in()),
                   absl::ToUnixMicros(now));
  if (r.affected_rows() == 0) {
    return absl::AlreadyExistsError("list.list_id: a list of that id exists");
  }
  return absl::OkStatus();
}

absl::StatusOr<std::optional<v1::MailingList>> MailingStore::GetList(pqxx::transaction_base& tx,
                                                                     const std::string& list_id) {
  const pqxx::result r = ExecPrepared(
      tx, absl::StrCat("SELECT ", kListColumns, " FROM lists l WHERE l.list_id = $1"), list_id);
  if (r.empty()) return std::optional<v1::MailingList>();
  return std::optional<v1::MailingList>(RowToList(r[0]));
}

absl::StatusOr<std::vector<v1::MailingList>> MailingStore::ListLists(pqxx::transaction_base& tx) {
  std::vector<v1::MailingList> out;
  for (const pqxx::row& r :
       ExecPrepared(tx, absl::StrCat("SELECT ", kListColumns, " FROM lists l ORDER BY list_id"))) {
    out.push_back(RowToList(r));
  }
  return out;
}

absl::StatusOr<std::optional<v1::Subscription>> MailingStore::GetSubscription(
    pqxx::transaction_base& tx, const std::string& list_id, const std::string& subject_id,
    bool lock) {
  const pqxx::result r =
      ExecPrepared(tx,
                   absl::StrCat("SELECT ", kSubscriptionColumns,
                                " FROM subscriptions WHERE list_id = $1 AND subject_id = $2::uuid",
                                lock ? " FOR UPDATE" : ""),
                   list_id, subject_id);
  if (r.empty()) return std::optional<v1::Subscription>();
  return std::optional<v1::Subscription>(RowToSubscription(r[0]));
}

absl::Status MailingStore::PutSubscription(pqxx::transaction_base& tx, const v1::Subscription& s,
                                           const std::string& notice_version,
                                           const std::string& language) {
  ExecPrepared(tx,
               "INSERT INTO subscriptions (list_id, subject_id, state, source, created_at, "
               "confirmed_at, ended_at, notice_version, language) VALUES ($1, $2::uuid, $3, $4, "
               "" CRM_TS_PARAM("$5") ", " CRM_TS_PARAM("$6") ", " CRM_TS_PARAM(
                   "$7") ", $8, $9) "
                         "ON CONFLICT (list_id, subject_id) DO UPDATE SET state = EXCLUDED.state, "
                         "source = EXCLUDED.source, created_at = EXCLUDED.created_at, "
                         "confirmed_at = EXCLUDED.confirmed_at, ended_at = EXCLUDED.ended_at, "
                         "notice_version = EXCLUDED.notice_version, language = EXCLUDED.language",
               s.list_id(), s.subject_id(), static_cast<int>(s.state()), s.source(),
               *MicrosOf(s.created_at(), true), MicrosOf(s.confirmed_at(), s.has_confirmed_at()),
               MicrosOf(s.ended_at(), s.has_ended_at()), notice_version, language);
  return absl::OkStatus();
}

absl::StatusOr<std::pair<std::string, std::string>> MailingStore::PendingNotice(
    pqxx::transaction_base& tx, const std::string& list_id, const std::string& subject_id) {
  const pqxx::result r = ExecPrepared(
      tx,
      "SELECT notice_version, language FROM subscriptions WHERE list_id = $1 AND subject_id = "
      "$2::uuid",
      list_id, subject_id);
  if (r.empty()) return std::pair<std::string, std::string>();
  return std::pair(r[0][0].as<std::string>(), r[0][1].as<std::string>());
}

absl::StatusOr<std::vector<v1::Subscription>> MailingStore::ListSubscriptions(
    pqxx::transaction_base& tx, const std::string& list_id, int state, const std::string& after,
    int limit) {
  std::vector<v1::Subscription> out;
  for (const pqxx::row& r : ExecPrepared(
           tx,
           absl::StrCat("SELECT ", kSubscriptionColumns,
                        " FROM subscriptions WHERE list_id = $1 AND ($2 = 0 OR state = $2) "
                        "AND ($3 = '' OR subject_id > $3::uuid) ORDER BY subject_id LIMIT $4"),
           list_id, state, after, limit)) {
    out.push_back(RowToSubscription(r));
  }
  return out;
}

absl::StatusOr<v1::Template> MailingStore::InsertTemplate(pqxx::transaction_base& tx,
                                                          const v1::Template& t, absl::Time now) {
  // Versions of one template are numbered under a transaction-scoped lock.
  ExecPrepared(tx, "SELECT pg_advisory_xact_lock(hashtext('mailing.template:' || $1))",
               t.template_id());
  const pqxx::row r = ExecPrepared1(
      tx,
      absl::StrCat(
          "INSERT INTO templates (template_id, version, subject, text_body, html_body, "
          "created_at) SELECT $1, COALESCE(max(version), 0) + 1, $2, $3, $4, " CRM_TS_PARAM("$5"),
          " FROM templates WHERE template_id = $1 RETURNING ", kTemplateColumns),
      t.template_id(), t.subject(), t.text_body(), t.html_body(), absl::ToUnixMicros(now));
  return RowToTemplate(r);
}

absl::StatusOr<std::optional<v1::Template>> MailingStore::GetTemplate(
    pqxx::transaction_base& tx, const std::string& template_id, int64_t version) {
  const pqxx::result r = ExecPrepared(
      tx,
      absl::StrCat("SELECT ", kTemplateColumns,
                   " FROM templates WHERE template_id = $1 AND ($2 = 0 OR version = $2) "
                   "ORDER BY version DESC LIMIT 1"),
      template_id, version);
  if (r.empty()) return std::optional<v1::Template>();
  return std::optional<v1::Template>(RowToTemplate(r[0]));
}

absl::Status MailingStore::InsertCampaign(pqxx::transaction_base& tx, const v1::Campaign& c,
                                          absl::Time now) {
  ExecPrepared(tx,
               "INSERT INTO campaigns (campaign_id, name, list_id, template_id, template_version, "
               "state, send_at, created_at) VALUES ($1::uuid, $2, $3, $4, $5, $6, " CRM_TS_PARAM(
                   "$7") ", " CRM_TS_PARAM("$8") ")",
               c.campaign_id(), c.name(), c.list_id(), c.template_id(), c.template_version(),
               static_cast<int>(c.state()), MicrosOf(c.send_at(), c.has_send_at()),
               absl::ToUnixMicros(now));
  return absl::OkStatus();
}

absl::StatusOr<std::optional<v1::Campaign>> MailingStore::GetCampaign(
    pqxx::transaction_base& tx, const std::string& campaign_id, bool lock) {
  const pqxx::result r = ExecPrepared(
      tx,
      absl::StrCat(
          "SELECT campaign_id::text, name, list_id, template_id, template_version, state, ",
          CRM_TS("send_at"), ", ", CRM_TS("created_at"),
          " FROM campaigns WHERE campaign_id = $1::uuid", lock ? " FOR UPDATE" : ""),
      campaign_id);
  if (r.empty()) return std::optional<v1::Campaign>();
  v1::Campaign c;
  c.set_campaign_id(r[0][0].as<std::string>());
  c.set_name(r[0][1].as<std::string>());
  c.set_list_id(r[0][2].as<std::string>());
  c.set_template_id(r[0][3].as<std::string>());
  c.set_template_version(r[0][4].as<int64_t>());
  c.set_state(static_cast<v1::CampaignState>(r[0][5].as<int>()));
  SetOptionalTime(r[0][6], c.mutable_send_at());
  rpc::SetTime(Micros(r[0][7]), c.mutable_created_at());
  v1::CampaignCounts* counts = c.mutable_counts();
  for (const pqxx::row& row :
       ExecPrepared(tx,
                    "SELECT state, count(*), count(unsubscribed_at) FROM send_queue "
                    "WHERE campaign_id = $1::uuid GROUP BY state",
                    campaign_id)) {
    const int64_t n = row[1].as<int64_t>();
    counts->set_unsubscribed(counts->unsubscribed() + row[2].as<int64_t>());
    switch (static_cast<SendState>(row[0].as<int>())) {
      case SendState::kQueued:
        counts->set_queued(n);
        break;
      case SendState::kSent:
        counts->set_sent(n);
        break;
      case SendState::kSkippedConsent:
        counts->set_skipped_consent(n);
        break;
      case SendState::kSkippedNoAddress:
        counts->set_skipped_no_address(n);
        break;
      case SendState::kFailed:
        counts->set_failed(n);
        break;
      case SendState::kCancelled:
        break;
    }
  }
  return std::optional<v1::Campaign>(std::move(c));
}

absl::Status MailingStore::SetCampaignState(pqxx::transaction_base& tx,
                                            const std::string& campaign_id, v1::CampaignState state,
                                            std::optional<absl::Time> send_at) {
  ExecPrepared(
      tx,
      "UPDATE campaigns SET state = $2, send_at = COALESCE(" CRM_TS_PARAM(
          "$3") ", send_at) WHERE campaign_id = $1::uuid",
      campaign_id, static_cast<int>(state),
      send_at.has_value() ? std::optional<int64_t>(absl::ToUnixMicros(*send_at)) : std::nullopt);
  return absl::OkStatus();
}

absl::StatusOr<int64_t> MailingStore::CancelQueued(pqxx::transaction_base& tx,
                                                   const std::string& campaign_id, absl::Time now) {
  const pqxx::result r =
      ExecPrepared(tx,
                   "UPDATE send_queue SET state = 6, finished_at = " CRM_TS_PARAM(
                       "$2") " WHERE campaign_id = $1::uuid AND state = 1 "
                             "AND handed_off_at IS NULL",  // those are with the relay
                   campaign_id, absl::ToUnixMicros(now));
  return static_cast<int64_t>(r.affected_rows());
}

absl::Status MailingStore::QueueConfirmation(pqxx::transaction_base& tx, const std::string& list_id,
                                             const std::string& subject_id, absl::Time now) {
  ExecPrepared(tx,
               absl::StrCat("INSERT INTO send_queue (message_id, subject_id, kind, list_id, state, "
                            "next_attempt_at, created_at) VALUES (gen_random_uuid(), $1::uuid, ",
                            kConfirmationKind, ", $2, 1, ", CRM_TS_PARAM("$3"), ", ",
                            CRM_TS_PARAM("$3"), ")"),
               subject_id, list_id, absl::ToUnixMicros(now));
  return absl::OkStatus();
}

absl::StatusOr<std::pair<std::string, bool>> MailingStore::QueueTransactional(
    pqxx::transaction_base& tx, const std::string& message_id, const std::string& subject_id,
    int kind, const std::string& dedup_key, const std::string& payload, absl::Time now) {
  const pqxx::result inserted = ExecPrepared(
      tx,
      "INSERT INTO send_queue (message_id, subject_id, kind, dedup_key, payload, state, "
      "next_attempt_at, created_at) VALUES ($1::uuid, NULLIF($2, '')::uuid, $3, $4, $5, "
      "1, " CRM_TS_PARAM("$6") ", " CRM_TS_PARAM(
          "$6") ") ON CONFLICT (dedup_key) DO NOTHING RETURNING 1",
      message_id, subject_id, kind, dedup_key, pqxx::binarystring(payload.data(), payload.size()),
      absl::ToUnixMicros(now));
  if (!inserted.empty()) return std::make_pair(message_id, true);
  const pqxx::row r =
      ExecPrepared1(tx, "SELECT message_id::text FROM send_queue WHERE dedup_key = $1", dedup_key);
  return std::make_pair(r[0].as<std::string>(), false);
}

absl::StatusOr<std::vector<std::string>> MailingStore::StartDueCampaigns(pqxx::transaction_base& tx,
                                                                         absl::Time now) {
  std::vector<std::string> started;
  for (const pqxx::row& r :
       ExecPrepared(tx,
                    "UPDATE campaigns SET state = 3 WHERE campaign_id IN (SELECT campaign_id FROM "
                    "campaigns WHERE state = 2 AND send_at <= " CRM_TS_PARAM(
                        "$1") " FOR UPDATE SKIP "
                              "LOCKED) "
                              "RETURNING campaign_id::text, list_id",
                    absl::ToUnixMicros(now))) {
    started.push_back(r[0].as<std::string>());
    // One row per active subscriber. Message ids are random (gen_random_uuid,
    // PostgreSQL 13+), so the Message-ID reveals nothing.
    ExecPrepared(tx,
                 "INSERT INTO send_queue (message_id, campaign_id, subject_id, kind, state, "
                 "next_attempt_at, created_at) SELECT gen_random_uuid(), $1::uuid, subject_id, 0, "
                 "1, " CRM_TS_PARAM("$3") ", " CRM_TS_PARAM("$3") " FROM subscriptions "
                 "WHERE list_id = $2 AND state = 2 ON CONFLICT DO NOTHING",
                 r[0].as<std::string>(), r[1].as<std::string>(), absl::ToUnixMicros(now));
  }
  return started;
}

absl::StatusOr<std::vector<Claimed>> MailingStore::Claim(pqxx::transaction_base& tx, int limit,
                                                         absl::Duration lease, absl::Time now) {
  std::vector<Claimed> out;
  // Due rows of sending campaigns and rows without a campaign (confirmation
  // and transactional mail), skipping those
  // another worker holds; then what the sender needs of their campaign and
  // list (joined after the update, for the claimed rows only).
  static const std::string kClaim = absl::StrCat(
      "WITH due AS (SELECT q.message_id FROM send_queue q "
      "LEFT JOIN campaigns c ON c.campaign_id = q.campaign_id "
      "WHERE q.state = 1 AND q.next_attempt_at <= ",
      CRM_TS_PARAM("$1"), " AND (q.lease_until IS NULL OR q.lease_until < ", CRM_TS_PARAM("$1"),
      ") ", "AND (c.state = 3 OR q.campaign_id IS NULL) ",
      "ORDER BY q.next_attempt_at LIMIT $2 FOR UPDATE OF q SKIP LOCKED), ",
      "claimed AS (UPDATE send_queue q SET lease_until = ", CRM_TS_PARAM("$3"),
      ", attempts = q.attempts + 1 FROM due WHERE q.message_id = due.message_id ",
      "RETURNING q.message_id, q.campaign_id, q.subject_id, q.kind, q.attempts, q.list_id, "
      "q.payload) ",
      "SELECT cl.message_id::text, COALESCE(cl.campaign_id::text, ''), "
      "COALESCE(cl.subject_id::text, ''), ",
      "cl.kind, cl.attempts, COALESCE(c.list_id, cl.list_id, ''), COALESCE(l.purpose_id, ''), ",
      "COALESCE(c.template_id, ''), COALESCE(c.template_version, 0), cl.payload FROM claimed cl ",
      "LEFT JOIN campaigns c ON c.campaign_id = cl.campaign_id ",
      "LEFT JOIN lists l ON l.list_id = COALESCE(c.list_id, cl.list_id)");
  for (const pqxx::row& r :
       ExecPrepared(tx, kClaim, absl::ToUnixMicros(now), limit, absl::ToUnixMicros(now + lease))) {
    Claimed c;
    c.message_id = r[0].as<std::string>();
    c.campaign_id = r[1].as<std::string>();
    c.subject_id = r[2].as<std::string>();
    c.kind = r[3].as<int>();
    c.attempts = r[4].as<int>();
    c.list_id = r[5].as<std::string>();
    c.purpose_id = r[6].as<std::string>();
    c.template_id = r[7].as<std::string>();
    c.template_version = r[8].as<int64_t>();
    if (!r[9].is_null()) c.payload = pqxx::binarystring(r[9]).str();
    out.push_back(std::move(c));
  }
  return out;
}

absl::Status MailingStore::Finish(pqxx::transaction_base& tx, const std::string& message_id,
                                  SendState state, absl::Time now, const std::string& error,
                                  absl::Time retry_at) {
  if (state == SendState::kQueued) {
    ExecPrepared(tx,
                 "UPDATE send_queue SET lease_until = NULL, handed_off_at = NULL, "
                 "last_error = NULLIF($2, ''), next_attempt_at = " CRM_TS_PARAM("$3") " "
                 "WHERE message_id = $1::uuid",
                 message_id, error, absl::ToUnixMicros(retry_at));
    return absl::OkStatus();
  }
  return FinishMany(tx, {message_id}, state, now, error);
}

absl::Status MailingStore::FinishMany(pqxx::transaction_base& tx,
                                      const std::vector<std::string>& message_ids, SendState state,
                                      absl::Time now, const std::string& error) {
  if (message_ids.empty()) return absl::OkStatus();
  ExecPrepared(tx,
               "UPDATE send_queue SET state = $2, lease_until = NULL, last_error = NULLIF($3, ''), "
               "payload = NULL, finished_at = " CRM_TS_PARAM("$4") " "
               "WHERE message_id = ANY($1::uuid[])",
               pg::ArrayLiteral(message_ids), static_cast<int>(state), error,
               absl::ToUnixMicros(now));
  return absl::OkStatus();
}

absl::StatusOr<bool> MailingStore::HandOff(pqxx::transaction_base& tx,
                                           const std::string& message_id, int attempts,
                                           absl::Time now) {
  const pqxx::result r = ExecPrepared(
      tx,
      "UPDATE send_queue SET handed_off_at = " CRM_TS_PARAM("$3") " WHERE message_id = $1::uuid "
      "AND attempts = $2 AND state = 1 AND handed_off_at IS NULL",
      message_id, attempts, absl::ToUnixMicros(now));
  return r.affected_rows() == 1;
}

absl::StatusOr<int64_t> MailingStore::SettleAbandonedHandOffs(pqxx::transaction_base& tx,
                                                              absl::Time now) {
  const pqxx::result r = ExecPrepared(
      tx,
      "UPDATE send_queue SET state = 2, lease_until = NULL, payload = NULL, "
      "last_error = 'relay reply not seen', finished_at = handed_off_at "
      "WHERE state = 1 AND handed_off_at IS NOT NULL AND lease_until < " CRM_TS_PARAM("$1"),
      absl::ToUnixMicros(now));
  return static_cast<int64_t>(r.affected_rows());
}

absl::Status MailingStore::CompleteCampaigns(pqxx::transaction_base& tx) {
  ExecPrepared(tx,
               "UPDATE campaigns c SET state = 6 WHERE state = 3 AND NOT EXISTS "
               "(SELECT 1 FROM send_queue q WHERE q.campaign_id = c.campaign_id AND q.state = 1)");
  return absl::OkStatus();
}

absl::Status MailingStore::NoteUnsubscribe(pqxx::transaction_base& tx, const std::string& list_id,
                                           const std::string& subject_id, absl::Time now) {
  ExecPrepared(tx,
               "UPDATE send_queue SET unsubscribed_at = " CRM_TS_PARAM("$3") " "
               "WHERE message_id = (SELECT q.message_id FROM send_queue q JOIN campaigns c "
               "USING (campaign_id) WHERE c.list_id = $1 AND q.subject_id = $2::uuid AND "
               "q.state = 2 AND q.unsubscribed_at IS NULL ORDER BY q.finished_at DESC LIMIT 1)",
               list_id, subject_id, absl::ToUnixMicros(now));
  return absl::OkStatus();
}

absl::StatusOr<SubjectCounts> MailingStore::CountSubject(pqxx::transaction_base& tx,
                                                         const std::string& subject_id) {
  const pqxx::row r =
      ExecPrepared1(tx,
                    "SELECT (SELECT count(*) FROM subscriptions WHERE subject_id = $1::uuid), "
                    "(SELECT count(*) FROM send_queue WHERE subject_id = $1::uuid)",
                    subject_id);
  return SubjectCounts{.subscriptions = r[0].as<int64_t>(), .sends = r[1].as<int64_t>()};
}

absl::StatusOr<std::vector<v1::Subscription>> MailingStore::SubjectSubscriptions(
    pqxx::transaction_base& tx, const std::string& subject_id) {
  std::vector<v1::Subscription> out;
  for (const pqxx::row& r : ExecPrepared(
           tx,
           absl::StrCat("SELECT ", kSubscriptionColumns,
                        " FROM subscriptions WHERE subject_id = $1::uuid ORDER BY list_id"),
           subject_id)) {
    out.push_back(RowToSubscription(r));
  }
  return out;
}

absl::StatusOr<std::vector<SendRecord>> MailingStore::SubjectSends(pqxx::transaction_base& tx,
                                                                   const std::string& subject_id) {
  std::vector<SendRecord> out;
  for (const pqxx::row& r : ExecPrepared(
           tx,
           "SELECT q.message_id::text, COALESCE(q.campaign_id::text, ''), COALESCE(c.list_id, ''), "
           "q.state, " CRM_TS("q.created_at") ", " CRM_TS(
               "q.finished_at") ", "
                                "q.unsubscribed_at IS NOT NULL FROM send_queue q LEFT JOIN "
                                "campaigns c "
                                "USING (campaign_id) WHERE q.subject_id = $1::uuid ORDER BY "
                                "q.created_at",
           subject_id)) {
    SendRecord s;
    s.message_id = r[0].as<std::string>();
    s.campaign_id = r[1].as<std::string>();
    s.list_id = r[2].as<std::string>();
    s.state = static_cast<SendState>(r[3].as<int>());
    s.queued_at = Micros(r[4]);
    if (!r[5].is_null()) s.finished_at = Micros(r[5]);
    s.unsubscribed = r[6].as<bool>();
    out.push_back(std::move(s));
  }
  return out;
}

absl::Status MailingStore::EraseSubject(pqxx::transaction_base& tx, const std::string& subject_id) {
  ExecPrepared(tx, "DELETE FROM send_queue WHERE subject_id = $1::uuid", subject_id);
  ExecPrepared(tx, "DELETE FROM subscriptions WHERE subject_id = $1::uuid", subject_id);
  return absl::OkStatus();
}

absl::StatusOr<std::optional<MailingStore::Erasure>> MailingStore::ErasureRecorded(
    pqxx::transaction_base& tx, const std::string& request_id) {
  const pqxx::result r =
      ExecPrepared(tx,
                   "SELECT subject_id::text, subscriptions, sends, " CRM_TS(
                       "completed_at") " FROM erasure_requests WHERE request_id = $1::uuid",
                   request_id);
  if (r.empty()) return std::optional<Erasure>();
  return std::optional<Erasure>(
      Erasure{.subject_id = r[0][0].as<std::string>(),
              .erased = {.subscriptions = r[0][1].as<int64_t>(), .sends = r[0][2].as<int64_t>()},
              .completed_at = Micros(r[0][3])});
}

absl::Status MailingStore::RecordErasure(pqxx::transaction_base& tx, const std::string& request_id,
                                         const Erasure& e) {
  ExecPrepared(tx,
               "INSERT INTO erasure_requests (request_id, subject_id, subscriptions, sends, "
               "completed_at) VALUES ($1::uuid, $2::uuid, $3, $4, " CRM_TS_PARAM("$5") ")",
               request_id, e.subject_id, e.erased.subscriptions, e.erased.sends,
               absl::ToUnixMicros(e.completed_at));
  return absl::OkStatus();
}

}  // namespace crm::mailing
