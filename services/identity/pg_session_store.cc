#include "services/identity/pg_session_store.h"

#include <pqxx/binarystring>
#include <pqxx/result>
#include <pqxx/transaction>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "libs/base/status_macros.h"
#include "libs/base/uuid.h"
#include "libs/pg/array.h"

namespace crm::identity {
namespace {

// Times cross the wire as whole microseconds since the Unix epoch.
#define CRM_TS_PARAM(n) "('epoch'::timestamptz + (" n ")::bigint * interval '1 microsecond')"
#define CRM_TS_COL(c) "(extract(epoch from " c ") * 1000000)::bigint"

// clang-format off
// Columns read by RowToSession, in this order.
#define CRM_SESSION_COLUMNS                                                        \
  "s.id::text, s.family_id::text, s.user_id::text, s.refresh_token_hash, "         \
  "s.rotated_from::text, s.password_change_only, s.source_address_ciphertext, "    \
  "s.user_agent_ciphertext, " CRM_TS_COL("s.created_at") ", "                      \
  CRM_TS_COL("s.expires_at")

// $1 id, $2 family, $3 user, $4 hash, $5 change-only, $6 source ('' = NULL),
// $7 source given, $8 agent, $9 agent given, $10 created (micros), $11 expires.
constexpr const char* kInsertSessionSql =
    "INSERT INTO sessions AS s (id, family_id, user_id, refresh_token_hash, "
    "    password_change_only, source_address_ciphertext, user_agent_ciphertext, "
    "    created_at, last_used_at, expires_at) "
    "SELECT $1::uuid, $2::uuid, $3::uuid, $4, $5, "
    "    CASE WHEN $7 THEN $6::bytea END, CASE WHEN $9 THEN $8::bytea END, "
    "    n.t, n.t, " CRM_TS_PARAM("$11") " "
    "FROM (SELECT " CRM_TS_PARAM("$10") " AS t) n "
    "RETURNING " CRM_SESSION_COLUMNS;

constexpr const char* kSessionIdTakenSql = "SELECT 1 FROM sessions WHERE id = $1";
constexpr const char* kTokenHashTakenSql = "SELECT 1 FROM sessions WHERE refresh_token_hash = $1";

// Rotate's look-up: the token's row, locked; plus rotated/revoked state.
constexpr const char* kFindByTokenHashSql =
    "SELECT " CRM_SESSION_COLUMNS ", s.rotated_at IS NOT NULL, s.revoked_at IS NOT NULL "
    "FROM sessions s WHERE s.refresh_token_hash = $1 FOR UPDATE";

// $1 id, $2 now (micros).
constexpr const char* kMarkRotatedSql =
    "UPDATE sessions SET rotated_at = " CRM_TS_PARAM("$2") ", last_used_at = "
    CRM_TS_PARAM("$2") " WHERE id = $1 AND rotated_at IS NULL";

// $1 new id, $2 new hash, $3 old id, $4 now (micros): copies the family's
// fields from the old row.
constexpr const char* kInsertRotatedSql =
    "INSERT INTO sessions AS s (id, family_id, user_id, refresh_token_hash, rotated_from, "
    "    password_change_only, source_address_ciphertext, user_agent_ciphertext, "
    "    created_at, last_used_at, expires_at) "
    "SELECT $1::uuid, o.family_id, o.user_id, $2, o.id, o.password_change_only, "
    "    o.source_address_ciphertext, o.user_agent_ciphertext, n.t, n.t, o.expires_at "
    "FROM sessions o, (SELECT " CRM_TS_PARAM("$4") " AS t) n WHERE o.id = $3 "
    "RETURNING " CRM_SESSION_COLUMNS;

// $1 family, $2 now (micros).
constexpr const char* kRevokeFamilySql =
    "UPDATE sessions SET revoked_at = " CRM_TS_PARAM("$2") " "
    "WHERE family_id = $1 AND revoked_at IS NULL";

constexpr const char* kFamilyExistsSql = "SELECT 1 FROM sessions WHERE family_id = $1 LIMIT 1";

// $1 user, $2 now (micros).
constexpr const char* kListSessionsSql =
    "SELECT " CRM_SESSION_COLUMNS " FROM sessions s "
    "WHERE s.user_id = $1 AND s.rotated_at IS NULL AND s.revoked_at IS NULL "
    "  AND s.expires_at > " CRM_TS_PARAM("$2") " "
    "ORDER BY s.created_at DESC, s.id DESC";

// $1 user, $2 except family ('' = none), $3 now (micros).
constexpr const char* kRevokeAllForUserSql =
    "WITH r AS (UPDATE sessions SET revoked_at = " CRM_TS_PARAM("$3") " "
    "           WHERE user_id = $1 AND revoked_at IS NULL "
    "             AND ($2 = '' OR family_id <> NULLIF($2, '')::uuid) "
    "           RETURNING family_id) "
    "SELECT DISTINCT family_id::text FROM r ORDER BY 1";

// $1 ids (uuid[] literal), $2 until (micros).
constexpr const char* kRecordRevocationsSql =
    "INSERT INTO revoked_sessions (session_id, until) "
    "SELECT DISTINCT unnest($1::uuid[]), " CRM_TS_PARAM("$2") " "
    "ON CONFLICT (session_id) DO UPDATE SET until = GREATEST(revoked_sessions.until, "
    "    EXCLUDED.until)";

// $1 id, $2 now (micros).
constexpr const char* kIsRevokedSql =
    "SELECT EXISTS (SELECT 1 FROM revoked_sessions "
    "               WHERE session_id = $1::uuid AND until > " CRM_TS_PARAM("$2") ") "
    "    OR EXISTS (SELECT 1 FROM sessions WHERE family_id = $1::uuid AND revoked_at IS NOT NULL)";

// $1 before (micros).
constexpr const char* kPruneRevocationsSql =
    "DELETE FROM revoked_sessions WHERE until < " CRM_TS_PARAM("$1");

// $1 now, $2 revoked since (micros). The sessions part is served by
// sessions_revoked_idx (migration 0004), the record's by its until index.
constexpr const char* kRevocationsInForceSql =
    "SELECT session_id::text FROM revoked_sessions WHERE until > " CRM_TS_PARAM("$1") " "
    "UNION "
    "SELECT family_id::text FROM sessions "
    "WHERE revoked_at IS NOT NULL AND revoked_at >= " CRM_TS_PARAM("$2") " ORDER BY 1";

#define CRM_HISTORY_COLUMNS                                                        \
  "h.id::text, h.user_id::text, " CRM_TS_COL("h.at") ", h.result, "                \
  "h.source_address_ciphertext, h.user_agent_ciphertext"

// $1 id, $2 user ('' = NULL), $3 at (micros), $4 result, $5 source, $6 source
// given, $7 agent, $8 agent given.
constexpr const char* kInsertLoginSql =
    "INSERT INTO login_history AS h (id, user_id, at, result, source_address_ciphertext, "
    "    user_agent_ciphertext) "
    "VALUES ($1::uuid, NULLIF($2, '')::uuid, " CRM_TS_PARAM("$3") ", $4, "
    "    CASE WHEN $6 THEN $5::bytea END, CASE WHEN $8 THEN $7::bytea END) "
    "RETURNING " CRM_HISTORY_COLUMNS;

// $1 user, $2 start, $3 end (micros), $4 cursor at ('' = first page),
// $5 cursor id, $6 limit. Newest first, ties by id ascending: the order of
// login_history_user_at_idx (user_id, at DESC, id).
constexpr const char* kListLoginsSql =
    "SELECT " CRM_HISTORY_COLUMNS " FROM login_history h "
    "WHERE h.user_id = $1 "
    "  AND h.at >= " CRM_TS_PARAM("$2") " AND h.at < " CRM_TS_PARAM("$3") " "
    "  AND ($4 = '' OR h.at < " CRM_TS_PARAM("NULLIF($4, '')") " "
    "       OR (h.at = " CRM_TS_PARAM("NULLIF($4, '')") " AND h.id > NULLIF($5, '')::uuid)) "
    "ORDER BY h.at DESC, h.id "
    "LIMIT $6";
// clang-format on

std::optional<std::string> OptionalBytes(const pqxx::field& f) {
  if (f.is_null()) return std::nullopt;
  return pqxx::binarystring(f).str();
}

SessionRecord RowToSession(const pqxx::row& row) {
  SessionRecord rec;
  rec.id = row[0].as<std::string>();
  rec.family_id = row[1].as<std::string>();
  rec.user_id = row[2].as<std::string>();
  rec.refresh_token_hash = pqxx::binarystring(row[3]).str();
  if (!row[4].is_null()) rec.rotated_from = row[4].as<std::string>();
  rec.password_change_only = row[5].as<bool>();
  rec.source_address_ciphertext = OptionalBytes(row[6]);
  rec.user_agent_ciphertext = OptionalBytes(row[7]);
  rec.created_at = absl::FromUnixMicros(row[8].as<int64_t>());
  rec.expires_at = absl::FromUnixMicros(row[9].as<int64_t>());
  return rec;
}

absl::StatusOr<LoginHistoryRecord> RowToLogin(const pqxx::row& row) {
  LoginHistoryRecord rec;
  rec.id = row[0].as<std::string>();
  if (!row[1].is_null()) rec.user_id = row[1].as<std::string>();
  rec.at = absl::FromUnixMicros(row[2].as<int64_t>());
  CRM_ASSIGN_OR_RETURN(rec.result, ParseLoginResult(row[3].as<std::string>()));
  rec.source_address_ciphertext = OptionalBytes(row[4]);
  rec.user_agent_ciphertext = OptionalBytes(row[5]);
  return rec;
}

#undef CRM_HISTORY_COLUMNS
#undef CRM_SESSION_COLUMNS
#undef CRM_TS_COL
#undef CRM_TS_PARAM

// What Rotate's transaction decided; errors that must commit (the family
// revocation of a replay) travel as an outcome, not as the callback's status.
enum class RotateOutcome { kRotated, kReused };

struct RotateResult {
  RotateOutcome outcome = RotateOutcome::kRotated;
  SessionRecord record;
};

}  // namespace

const char* PgSessionStore::FindByTokenHashSql() { return kFindByTokenHashSql; }

absl::StatusOr<SessionRecord> PgSessionStore::Create(const NewSession& session) {
  CRM_ASSIGN_OR_RETURN(const NewSession s, CanonicalNewSession(session));
  return pool_.TransactValue<SessionRecord>([&](pqxx::work& tx) -> absl::StatusOr<SessionRecord> {
    if (!tx.exec_params(kSessionIdTakenSql, s.id).empty()) {
      return absl::AlreadyExistsError("session id already exists");
    }
    const pqxx::binarystring hash(s.refresh_token_hash);
    if (!tx.exec_params(kTokenHashTakenSql, hash).empty()) {
      return absl::AlreadyExistsError("refresh token hash already exists");
    }
    const pqxx::result rows = tx.exec_params(
        kInsertSessionSql, s.id, s.family_id, s.user_id, hash, s.password_change_only,
        pqxx::binarystring(s.source_address_ciphertext.value_or("")),
        s.source_address_ciphertext.has_value(),
        pqxx::binarystring(s.user_agent_ciphertext.value_or("")),
        s.user_agent_ciphertext.has_value(), absl::ToUnixMicros(s.created_at),
        absl::ToUnixMicros(s.expires_at));
    return RowToSession(rows[0]);
  });
}

absl::StatusOr<SessionRecord> PgSessionStore::Rotate(absl::string_view presented_hash,
                                                     absl::string_view new_hash, absl::Time now) {
  if (new_hash.size() != kRefreshTokenHashBytes) {
    return absl::InvalidArgumentError("new_token_hash: must be 32 bytes");
  }
  const int64_t now_us = absl::ToUnixMicros(now);
  const std::string new_id = base::NewUuid();
  const pqxx::binarystring presented(presented_hash.data(), presented_hash.size());
  const pqxx::binarystring fresh(new_hash.data(), new_hash.size());
  CRM_ASSIGN_OR_RETURN(
      const RotateResult result,
      pool_.TransactValue<RotateResult>([&](pqxx::work& tx) -> absl::StatusOr<RotateResult> {
        const pqxx::result found = tx.exec_params(kFindByTokenHashSql, presented);
        if (found.empty()) return absl::UnauthenticatedError("refresh token not recognised");
        const SessionRecord old = RowToSession(found[0]);
        const bool rotated = found[0][10].as<bool>();
        const bool revoked = found[0][11].as<bool>();
        if (revoked) return absl::UnauthenticatedError("session revoked");
        if (absl::ToUnixMicros(old.expires_at) <= now_us) {
          return absl::UnauthenticatedError("session expired");
        }
        if (rotated) {
          tx.exec_params(kRevokeFamilySql, old.family_id, now_us);
          return RotateResult{.outcome = RotateOutcome::kReused, .record = old};
        }
        if (!tx.exec_params(kTokenHashTakenSql, fresh).empty()) {
          return absl::AlreadyExistsError("refresh token hash already exists");
        }
        tx.exec_params(kMarkRotatedSql, old.id, now_us);
        const pqxx::result rows = tx.exec_params(kInsertRotatedSql, new_id, fresh, old.id, now_us);
        return RotateResult{.outcome = RotateOutcome::kRotated, .record = RowToSession(rows[0])};
      }));
  if (result.outcome == RotateOutcome::kReused) {
    return absl::FailedPreconditionError("refresh token reused; session revoked");
  }
  return result.record;
}

absl::StatusOr<std::vector<SessionRecord>> PgSessionStore::ListSessions(absl::string_view user_id,
                                                                        absl::Time now) {
  CRM_ASSIGN_OR_RETURN(const std::string uid, base::CanonicalUuid("user_id", user_id));
  return pool_.TransactValue<std::vector<SessionRecord>>(
      [&](pqxx::work& tx) -> absl::StatusOr<std::vector<SessionRecord>> {
        std::vector<SessionRecord> out;
        for (const auto& row : tx.exec_params(kListSessionsSql, uid, absl::ToUnixMicros(now))) {
          out.push_back(RowToSession(row));
        }
        return out;
      },
      {.read_only = true});
}

absl::Status PgSessionStore::Revoke(absl::string_view session_id, absl::Time now) {
  CRM_ASSIGN_OR_RETURN(const std::string fid, base::CanonicalUuid("session_id", session_id));
  return pool_.Transact([&](pqxx::work& tx) -> absl::Status {
    if (tx.exec_params(kRevokeFamilySql, fid, absl::ToUnixMicros(now)).affected_rows() == 0 &&
        tx.exec_params(kFamilyExistsSql, fid).empty()) {
      return absl::NotFoundError("session not found");
    }
    return absl::OkStatus();
  });
}

absl::StatusOr<std::vector<std::string>> PgSessionStore::RevokeAllForUser(
    absl::string_view user_id, std::optional<std::string> except_session_id, absl::Time now) {
  CRM_ASSIGN_OR_RETURN(const std::string uid, base::CanonicalUuid("user_id", user_id));
  std::string except;
  if (except_session_id.has_value()) {
    CRM_ASSIGN_OR_RETURN(except, base::CanonicalUuid("except_session_id", *except_session_id));
  }
  return pool_.TransactValue<std::vector<std::string>>(
      [&](pqxx::work& tx) -> absl::StatusOr<std::vector<std::string>> {
        std::vector<std::string> out;
        for (const auto& row :
             tx.exec_params(kRevokeAllForUserSql, uid, except, absl::ToUnixMicros(now))) {
          out.push_back(row[0].as<std::string>());
        }
        return out;
      });
}

absl::Status PgSessionStore::RecordRevocations(absl::Span<const std::string> session_ids,
                                               absl::Time until) {
  CRM_ASSIGN_OR_RETURN(const std::vector<std::string> ids, CanonicalSessionIds(session_ids));
  if (ids.empty()) return absl::OkStatus();
  return pool_.Transact([&](pqxx::work& tx) -> absl::Status {
    tx.exec_params(kRecordRevocationsSql, pg::ArrayLiteral(ids), absl::ToUnixMicros(until));
    return absl::OkStatus();
  });
}

absl::StatusOr<bool> PgSessionStore::IsRevoked(absl::string_view session_id, absl::Time now) {
  CRM_ASSIGN_OR_RETURN(const std::string id, base::CanonicalUuid("session_id", session_id));
  return pool_.TransactValue<bool>([&](pqxx::work& tx) -> absl::StatusOr<bool> {
    return tx.exec_params1(kIsRevokedSql, id, absl::ToUnixMicros(now))[0].as<bool>();
  });
}

absl::StatusOr<std::vector<std::string>> PgSessionStore::RevocationsInForce(
    absl::Time now, absl::Time revoked_since) {
  return pool_.TransactValue<std::vector<std::string>>(
      [&](pqxx::work& tx) -> absl::StatusOr<std::vector<std::string>> {
        std::vector<std::string> out;
        for (const auto& row : tx.exec_params(kRevocationsInForceSql, absl::ToUnixMicros(now),
                                              absl::ToUnixMicros(revoked_since))) {
          out.push_back(row[0].as<std::string>());
        }
        return out;
      });
}

absl::StatusOr<int64_t> PgSessionStore::PruneRevocations(absl::Time before) {
  return pool_.TransactValue<int64_t>([&](pqxx::work& tx) -> absl::StatusOr<int64_t> {
    return static_cast<int64_t>(
        tx.exec_params(kPruneRevocationsSql, absl::ToUnixMicros(before)).affected_rows());
  });
}

absl::StatusOr<LoginHistoryRecord> PgSessionStore::AppendLogin(const LoginAttempt& attempt) {
  std::string uid;
  if (attempt.user_id.has_value()) {
    CRM_ASSIGN_OR_RETURN(uid, base::CanonicalUuid("user_id", *attempt.user_id));
  }
  const std::string id = base::NewUuid();
  return pool_.TransactValue<LoginHistoryRecord>(
      [&](pqxx::work& tx) -> absl::StatusOr<LoginHistoryRecord> {
        const pqxx::result rows =
            tx.exec_params(kInsertLoginSql, id, uid, absl::ToUnixMicros(attempt.at),
                           std::string(LoginResultName(attempt.result)),
                           pqxx::binarystring(attempt.source_address_ciphertext.value_or("")),
                           attempt.source_address_ciphertext.has_value(),
                           pqxx::binarystring(attempt.user_agent_ciphertext.value_or("")),
                           attempt.user_agent_ciphertext.has_value());
        return RowToLogin(rows[0]);
      });
}

absl::StatusOr<LoginHistoryPage> PgSessionStore::ListLogins(absl::string_view user_id,
                                                            absl::Time start_time,
                                                            absl::Time end_time, int page_size,
                                                            absl::string_view page_token) {
  CRM_ASSIGN_OR_RETURN(const std::string uid, base::CanonicalUuid("user_id", user_id));
  start_time = absl::FromUnixMicros(absl::ToUnixMicros(start_time));
  end_time = absl::FromUnixMicros(absl::ToUnixMicros(end_time));
  if (end_time < start_time) {
    return absl::InvalidArgumentError("end_time: must not be before start_time");
  }
  CRM_ASSIGN_OR_RETURN(const int limit, EffectiveHistoryPageSize(page_size));
  const std::string query = HistoryQueryKey(uid, start_time, end_time);
  std::string cursor_at;
  std::string cursor_id;
  if (!page_token.empty()) {
    CRM_ASSIGN_OR_RETURN(const HistoryCursor cursor, DecodeHistoryPageToken(page_token, query));
    cursor_at = std::to_string(cursor.at_micros);
    cursor_id = cursor.id;
  }
  return pool_.TransactValue<LoginHistoryPage>(
      [&](pqxx::work& tx) -> absl::StatusOr<LoginHistoryPage> {
        LoginHistoryPage page;
        // One row more than the page tells whether another page follows.
        const pqxx::result rows =
            tx.exec_params(kListLoginsSql, uid, absl::ToUnixMicros(start_time),
                           absl::ToUnixMicros(end_time), cursor_at, cursor_id, limit + 1);
        for (const auto& row : rows) {
          if (static_cast<int>(page.entries.size()) == limit) {
            const LoginHistoryRecord& last = page.entries.back();
            page.next_page_token =
                EncodeHistoryPageToken({absl::ToUnixMicros(last.at), last.id}, query);
            break;
          }
          CRM_ASSIGN_OR_RETURN(LoginHistoryRecord rec, RowToLogin(row));
          page.entries.push_back(std::move(rec));
        }
        return page;
      },
      {.read_only = true});
}

}  // namespace crm::identity
