#include "services/erasure/erasure_store.h"

#include <pqxx/pqxx>

#include "absl/strings/str_cat.h"
#include "libs/pg/prepared.h"
#include "libs/pg/sql_time.h"
#include "libs/rpc/handler.h"

namespace crm::erasure {
namespace {

using pg::ExecPrepared;
using pg::ExecPrepared1;

int64_t Micros(const google::protobuf::Timestamp& ts) {
  return absl::ToUnixMicros(rpc::ToTime(ts));
}

// Open requests: RECEIVED to VERIFYING, and EXPORTING (IsOpen).
#define CRM_OPEN "(state BETWEEN 1 AND 4 OR state = 9)"

// The columns FromRow reads, in order.
const std::string kColumns = absl::StrCat(
    "request_id::text, subject_id::text, reason, requester, state, ", CRM_TS("received_at"), ", ",
    CRM_TS("not_before"), ", ", CRM_TS("due_at"), ", extended_months, extension_reason, COALESCE(",
    CRM_TS("completed_at"), ", 0), rounds, attention, kind, COALESCE(", CRM_TS("expires_at"),
    ", 0), extension_notice_pending");

v1::ErasureRequest FromRow(const pqxx::row& r) {
  v1::ErasureRequest e;
  e.set_request_id(r[0].as<std::string>());
  e.set_subject_id(r[1].as<std::string>());
  e.set_reason(static_cast<v1::ErasureReason>(r[2].as<int>()));
  e.set_requester(r[3].as<std::string>());
  e.set_state(static_cast<v1::State>(r[4].as<int>()));
  rpc::SetTime(absl::FromUnixMicros(r[5].as<int64_t>()), e.mutable_received_at());
  rpc::SetTime(absl::FromUnixMicros(r[6].as<int64_t>()), e.mutable_not_before());
  rpc::SetTime(absl::FromUnixMicros(r[7].as<int64_t>()), e.mutable_due_at());
  e.set_extended_months(r[8].as<int>());
  e.set_extension_reason(r[9].as<std::string>());
  if (const int64_t done = r[10].as<int64_t>(); done != 0) {
    rpc::SetTime(absl::FromUnixMicros(done), e.mutable_completed_at());
  }
  e.set_rounds(r[11].as<int>());
  e.set_attention(r[12].as<std::string>());
  e.set_kind(static_cast<v1::RequestKind>(r[13].as<int>()));
  if (const int64_t expires = r[14].as<int64_t>(); expires != 0) {
    rpc::SetTime(absl::FromUnixMicros(expires), e.mutable_expires_at());
  }
  e.set_extension_notice_pending(r[15].as<bool>());
  return e;
}

pqxx::binarystring Bytes(const std::string& s) { return pqxx::binarystring(s.data(), s.size()); }

}  // namespace

bool IsOpen(v1::State state) {
  return (state >= v1::STATE_RECEIVED && state <= v1::STATE_VERIFYING) ||
         state == v1::STATE_EXPORTING;
}

absl::StatusOr<std::pair<v1::ErasureRequest, bool>> ErasureStore::Insert(
    pqxx::transaction_base& tx, const v1::ErasureRequest& r,
    const std::vector<std::string>& targets) {
  if (r.kind() != v1::KIND_ERASURE && r.kind() != v1::KIND_ACCESS) {
    return absl::InvalidArgumentError("kind: erasure or access");
  }
  static const std::string kInsert = absl::StrCat(
      "INSERT INTO requests (request_id, subject_id, reason, requester, state, received_at, "
      "not_before, due_at, next_attempt_at, kind) VALUES ($1::uuid, $2::uuid, $3, $4, 1, ",
      CRM_TS_PARAM("$5"), ", ", CRM_TS_PARAM("$6"), ", ", CRM_TS_PARAM("$7"), ", ",
      CRM_TS_PARAM("$6"),
      ", $8) ON CONFLICT (subject_id, kind) WHERE " CRM_OPEN " DO NOTHING RETURNING 1");
  const pqxx::result inserted =
      ExecPrepared(tx, kInsert, r.request_id(), r.subject_id(), static_cast<int>(r.reason()),
                   r.requester(), Micros(r.received_at()), Micros(r.not_before()),
                   Micros(r.due_at()), static_cast<int>(r.kind()));
  if (inserted.empty()) {
    const pqxx::result open = ExecPrepared(tx,
                                           "SELECT request_id::text FROM requests WHERE subject_id "
                                           "= $1::uuid AND kind = $2 AND " CRM_OPEN,
                                           r.subject_id(), static_cast<int>(r.kind()));
    if (open.empty()) return absl::AbortedError("erasure: concurrent submissions; retry");
    absl::StatusOr<std::optional<v1::ErasureRequest>> existing =
        Get(tx, open[0][0].as<std::string>(), true, false);
    if (!existing.ok()) return existing.status();
    return std::make_pair(**existing, false);
  }
  for (const std::string& service : targets) {
    v1::Target t;
    t.set_service(service);
    t.set_state(v1::TARGET_STATE_PENDING);
    ExecPrepared(tx,
                 "INSERT INTO targets (request_id, service, state, next_attempt_at, detail) VALUES "
                 "($1::uuid, $2, 1, " CRM_TS_PARAM("$3") ", $4)",
                 r.request_id(), service, Micros(r.not_before()), Bytes(t.SerializeAsString()));
  }
  absl::StatusOr<std::optional<v1::ErasureRequest>> stored = Get(tx, r.request_id(), true, false);
  if (!stored.ok()) return stored.status();
  return std::make_pair(**stored, true);
}

absl::StatusOr<std::optional<v1::ErasureRequest>> ErasureStore::Get(pqxx::transaction_base& tx,
                                                                    const std::string& request_id,
                                                                    bool with_targets, bool lock) {
  const pqxx::result rows =
      ExecPrepared(tx,
                   absl::StrCat("SELECT ", kColumns, " FROM requests WHERE request_id = $1::uuid",
                                lock ? " FOR UPDATE" : ""),
                   request_id);
  if (rows.empty()) return std::nullopt;
  v1::ErasureRequest e = FromRow(rows[0]);
  if (with_targets) {
    for (const pqxx::row& t :
         ExecPrepared(tx, "SELECT detail FROM targets WHERE request_id = $1::uuid ORDER BY service",
                      request_id)) {
      if (!e.add_targets()->ParseFromString(pqxx::binarystring(t[0]).str())) {
        return absl::DataLossError("erasure: a target's detail does not parse");
      }
    }
  }
  return e;
}

absl::StatusOr<std::vector<v1::ErasureRequest>> ErasureStore::List(
    pqxx::transaction_base& tx, v1::State state, absl::Time due_before,
    const std::optional<Cursor>& after, int limit, bool unfinished, v1::RequestKind kind,
    const std::string& subject_id) {
  std::vector<v1::ErasureRequest> out;
  // No bound and no cursor: values every row passes (PostgreSQL does not
  // promise to short-circuit OR, so no sentinels out of timestamp range).
  const absl::Time year_9999 = absl::FromUnixSeconds(253'402'300'799);
  const int64_t before = absl::ToUnixMicros(std::min(due_before, year_9999));
  const int64_t after_due = after.has_value() ? absl::ToUnixMicros(after->due_at) : 0;
  const std::string after_id =
      after.has_value() ? after->request_id : "00000000-0000-0000-0000-000000000000";
  static const std::string kList = absl::StrCat(
      "SELECT ", kColumns,
      " FROM requests WHERE ($1 = 0 OR state = $1) AND (NOT $6 OR " CRM_OPEN
      " OR state = 7) AND ($7 = 0 OR kind = $7) AND ($8 = '' OR subject_id = NULLIF($8, '')::uuid)"
      " AND due_at < ",
      CRM_TS_PARAM("$2"), " AND (due_at, request_id) > (", CRM_TS_PARAM("$3"),
      ", $4::uuid) ORDER BY due_at, request_id LIMIT $5");
  for (const pqxx::row& r :
       ExecPrepared(tx, kList, static_cast<int>(state), before, after_due, after_id, limit,
                    unfinished, static_cast<int>(kind), subject_id)) {
    out.push_back(FromRow(r));
  }
  return out;
}

absl::StatusOr<std::vector<std::string>> ErasureStore::Claim(pqxx::transaction_base& tx, int limit,
                                                             absl::Duration lease, absl::Time now,
                                                             const std::string& owner) {
  std::vector<std::string> out;
  static const std::string kClaim = absl::StrCat(
      "UPDATE requests SET lease_owner = $4::uuid, lease_until = ", CRM_TS_PARAM("$3"),
      " WHERE request_id IN (SELECT request_id FROM requests WHERE " CRM_OPEN
      " AND next_attempt_at <= ",
      CRM_TS_PARAM("$1"), " AND (lease_until IS NULL OR lease_until < ", CRM_TS_PARAM("$1"),
      ") ORDER BY next_attempt_at LIMIT $2 FOR UPDATE SKIP LOCKED) RETURNING request_id::text");
  for (const pqxx::row& r : ExecPrepared(tx, kClaim, absl::ToUnixMicros(now), limit,
                                         absl::ToUnixMicros(now + lease), owner)) {
    out.push_back(r[0].as<std::string>());
  }
  return out;
}

absl::Status ErasureStore::Update(pqxx::transaction_base& tx, const v1::ErasureRequest& r,
                                  v1::State expected, absl::Time next_attempt_at, bool release,
                                  const std::string& owner) {
  static const std::string kUpdate = absl::StrCat(
      "UPDATE requests SET state = $2, rounds = $3, attention = $4, completed_at = CASE WHEN "
      "$5::bigint = 0 "
      "THEN NULL ELSE ",
      CRM_TS_PARAM("$5"), " END, expires_at = CASE WHEN $10::bigint = 0 THEN NULL ELSE ",
      CRM_TS_PARAM("$10"), " END, next_attempt_at = ", CRM_TS_PARAM("$6"),
      ", lease_until = CASE WHEN $7 THEN NULL ELSE lease_until END, lease_owner = CASE WHEN $7 "
      "THEN NULL ELSE lease_owner END WHERE request_id = $1::uuid AND state = $8 AND "
      "(lease_owner IS NULL OR lease_owner = $9::uuid)");
  const pqxx::result done =
      ExecPrepared(tx, kUpdate, r.request_id(), static_cast<int>(r.state()), r.rounds(),
                   r.attention(), r.has_completed_at() ? Micros(r.completed_at()) : int64_t{0},
                   absl::ToUnixMicros(next_attempt_at), release, static_cast<int>(expected), owner,
                   r.has_expires_at() ? Micros(r.expires_at()) : int64_t{0});
  if (done.affected_rows() == 0) {
    return absl::FailedPreconditionError(
        "erasure: the request changed meanwhile (cancelled, or taken over after the lease)");
  }
  return absl::OkStatus();
}

absl::StatusOr<bool> ErasureStore::Cancel(pqxx::transaction_base& tx,
                                          const std::string& request_id) {
  const pqxx::result done = ExecPrepared(
      tx,
      "UPDATE requests SET state = 8, lease_until = NULL, notice_key = NULL, addresses = NULL, "
      "extension_notice_pending = false WHERE request_id = $1::uuid AND state = 1",
      request_id);
  return done.affected_rows() == 1;
}

absl::Status ErasureStore::Extend(pqxx::transaction_base& tx, const std::string& request_id,
                                  absl::Time due_at, int months, const std::string& reason,
                                  absl::Time now) {
  // The worker tells the subject: an open request is looked at now.
  static const std::string kExtend = absl::StrCat(
      "UPDATE requests SET due_at = ", CRM_TS_PARAM("$2"),
      ", extended_months = $3, extension_reason = $4, extension_notice_pending = true, "
      "next_attempt_at = CASE WHEN " CRM_OPEN " THEN LEAST(next_attempt_at, GREATEST(not_before, ",
      CRM_TS_PARAM("$5"), ")) ELSE next_attempt_at END WHERE request_id = $1::uuid");
  ExecPrepared(tx, kExtend, request_id, absl::ToUnixMicros(due_at), months, reason,
               absl::ToUnixMicros(now));
  return absl::OkStatus();
}

absl::Status ErasureStore::ExtensionNoticeSent(pqxx::transaction_base& tx,
                                               const std::string& request_id, int months) {
  ExecPrepared(tx,
               "UPDATE requests SET extension_notice_pending = false WHERE request_id = $1::uuid "
               "AND extended_months = $2",
               request_id, months);
  return absl::OkStatus();
}

absl::Status ErasureStore::PutTarget(pqxx::transaction_base& tx, const std::string& request_id,
                                     const v1::Target& t) {
  const absl::Time next =
      t.has_next_attempt_at() ? rpc::ToTime(t.next_attempt_at()) : absl::UnixEpoch();
  ExecPrepared(tx,
               "UPDATE targets SET state = $3, next_attempt_at = " CRM_TS_PARAM(
                   "$4") ", detail = $5 WHERE request_id = $1::uuid AND service = $2",
               request_id, t.service(), static_cast<int>(t.state()), absl::ToUnixMicros(next),
               Bytes(t.SerializeAsString()));
  return absl::OkStatus();
}

absl::Status ErasureStore::PutCertificate(pqxx::transaction_base& tx, const std::string& request_id,
                                          const std::string& body, const std::string& signature,
                                          absl::Time now) {
  ExecPrepared(tx,
               "INSERT INTO certificates (request_id, body, signature, issued_at) VALUES "
               "($1::uuid, $2, $3, " CRM_TS_PARAM("$4") ") ON CONFLICT (request_id) DO NOTHING",
               request_id, Bytes(body), Bytes(signature), absl::ToUnixMicros(now));
  return absl::OkStatus();
}

absl::StatusOr<std::optional<std::pair<std::string, std::string>>> ErasureStore::GetCertificate(
    pqxx::transaction_base& tx, const std::string& request_id) {
  const pqxx::result r = ExecPrepared(
      tx, "SELECT body, signature FROM certificates WHERE request_id = $1::uuid", request_id);
  if (r.empty()) return std::nullopt;
  return std::make_pair(pqxx::binarystring(r[0][0]).str(), pqxx::binarystring(r[0][1]).str());
}

absl::StatusOr<ErasureStore::Secrets> ErasureStore::GetSecrets(pqxx::transaction_base& tx,
                                                               const std::string& request_id) {
  const pqxx::result r = ExecPrepared(
      tx, "SELECT notice_key, addresses, export_key FROM requests WHERE request_id = $1::uuid",
      request_id);
  Secrets out;
  if (r.empty()) return out;
  if (!r[0][0].is_null()) {
    out.addresses.emplace(pqxx::binarystring(r[0][0]).str(), pqxx::binarystring(r[0][1]).str());
  }
  if (!r[0][2].is_null()) out.export_key = pqxx::binarystring(r[0][2]).str();
  return out;
}

absl::Status ErasureStore::PutAddresses(pqxx::transaction_base& tx, const std::string& request_id,
                                        const std::string& wrapped_key, const std::string& sealed) {
  ExecPrepared(tx,
               "UPDATE requests SET notice_key = $2, addresses = $3 WHERE request_id = $1::uuid",
               request_id, Bytes(wrapped_key), Bytes(sealed));
  return absl::OkStatus();
}

absl::Status ErasureStore::DropAddresses(pqxx::transaction_base& tx,
                                         const std::string& request_id) {
  ExecPrepared(
      tx,
      "UPDATE requests SET notice_key = NULL, addresses = NULL, extension_notice_pending = false "
      "WHERE request_id = $1::uuid",
      request_id);
  return absl::OkStatus();
}

absl::Status ErasureStore::PutExportKey(pqxx::transaction_base& tx, const std::string& request_id,
                                        const std::string& wrapped_key) {
  ExecPrepared(tx, "UPDATE requests SET export_key = $2 WHERE request_id = $1::uuid", request_id,
               Bytes(wrapped_key));
  return absl::OkStatus();
}

absl::Status ErasureStore::PutExportPart(pqxx::transaction_base& tx, const std::string& request_id,
                                         const std::string& service, int seq,
                                         const std::string& sealed) {
  // A repeated step (a crash after the calls) writes the same part again.
  ExecPrepared(tx,
               "INSERT INTO export_parts (request_id, service, seq, body) VALUES ($1::uuid, $2, "
               "$3, $4) ON CONFLICT (request_id, service, seq) DO UPDATE SET body = EXCLUDED.body",
               request_id, service, seq, Bytes(sealed));
  return absl::OkStatus();
}

absl::Status ErasureStore::DropExport(pqxx::transaction_base& tx, const std::string& request_id) {
  ExecPrepared(tx, "DELETE FROM export_parts WHERE request_id = $1::uuid", request_id);
  ExecPrepared(tx, "UPDATE requests SET export_key = NULL WHERE request_id = $1::uuid", request_id);
  return absl::OkStatus();
}

absl::StatusOr<int64_t> ErasureStore::CountExportParts(pqxx::transaction_base& tx,
                                                       const std::string& request_id) {
  return ExecPrepared(tx, "SELECT count(*) FROM export_parts WHERE request_id = $1::uuid",
                      request_id)[0][0]
      .as<int64_t>();
}

absl::Status ErasureStore::DropExportParts(pqxx::transaction_base& tx,
                                           const std::string& request_id,
                                           const std::string& service) {
  ExecPrepared(tx, "DELETE FROM export_parts WHERE request_id = $1::uuid AND service = $2",
               request_id, service);
  return absl::OkStatus();
}

absl::StatusOr<std::optional<ErasureStore::ExportPart>> ErasureStore::NextExportPart(
    pqxx::transaction_base& tx, const std::string& request_id, const std::string& after_service,
    int after_seq) {
  const pqxx::result r = ExecPrepared(
      tx,
      "SELECT service, seq, body FROM export_parts WHERE request_id = $1::uuid AND (service, seq) "
      "> ($2, $3) ORDER BY service, seq LIMIT 1",
      request_id, after_service, after_seq);
  if (r.empty()) return std::nullopt;
  return ExportPart{r[0][0].as<std::string>(), r[0][1].as<int>(),
                    pqxx::binarystring(r[0][2]).str()};
}

absl::StatusOr<std::vector<v1::ErasureRequest>> ErasureStore::Expire(pqxx::transaction_base& tx,
                                                                     absl::Time now, int limit) {
  static const std::string kExpire = absl::StrCat(
      "WITH due AS (SELECT request_id FROM requests WHERE export_key IS NOT NULL AND expires_at "
      "<= ",
      CRM_TS_PARAM("$1"),
      " ORDER BY expires_at LIMIT $2 FOR UPDATE SKIP LOCKED), parts AS (DELETE FROM export_parts "
      "WHERE request_id IN (SELECT request_id FROM due)) UPDATE requests SET state = 10, "
      "export_key = NULL WHERE request_id IN (SELECT request_id FROM due) RETURNING ",
      kColumns);
  std::vector<v1::ErasureRequest> out;
  for (const pqxx::row& r : ExecPrepared(tx, kExpire, absl::ToUnixMicros(now), limit)) {
    out.push_back(FromRow(r));
  }
  return out;
}

absl::StatusOr<std::vector<std::string>> ErasureStore::CompletedSubjects(pqxx::transaction_base& tx,
                                                                         absl::Time since,
                                                                         const std::string& after,
                                                                         int limit) {
  static const std::string kCompleted = absl::StrCat(
      "SELECT DISTINCT subject_id::text FROM requests WHERE kind = 1 AND state IN (5, 6) AND "
      "completed_at >= ",
      CRM_TS_PARAM("$1"), " AND subject_id::text > $2 ORDER BY 1 LIMIT $3");
  std::vector<std::string> out;
  for (const pqxx::row& r : ExecPrepared(tx, kCompleted, absl::ToUnixMicros(since), after, limit)) {
    out.push_back(r[0].as<std::string>());
  }
  return out;
}

absl::StatusOr<ErasureStore::OpenCounts> ErasureStore::CountOpen(pqxx::transaction_base& tx,
                                                                 absl::Time now, absl::Time soon) {
  OpenCounts out;
  for (const pqxx::row& r : ExecPrepared(
           tx,
           "SELECT state, count(*), count(*) FILTER (WHERE due_at < " CRM_TS_PARAM(
               "$1") "), count(*) FILTER (WHERE due_at < " CRM_TS_PARAM("$2") ") "
                                                                              "FROM requests "
                                                                              "WHERE " CRM_OPEN
                                                                              " OR state = 7 "
                                                                              "GROUP BY state",
           absl::ToUnixMicros(now), absl::ToUnixMicros(soon))) {
    out.by_state.emplace_back(static_cast<v1::State>(r[0].as<int>()), r[1].as<int64_t>());
    out.overdue += r[2].as<int64_t>();
    out.due_soon += r[3].as<int64_t>();
  }
  return out;
}

}  // namespace crm::erasure
