#include "services/identity/credential_store.h"

#include <algorithm>
#include <limits>
#include <pqxx/binarystring>
#include <pqxx/result>
#include <pqxx/transaction>
#include <string>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/str_join.h"
#include "libs/base/status_macros.h"
#include "libs/base/uuid.h"
#include "libs/base/validate.h"
#include "libs/pg/sql_time.h"

namespace crm::identity {
namespace {

// Times cross the wire as whole microseconds since the Unix epoch, which is
// exact in both directions (no float rounding).

// clang-format off
// The lockout times may also be infinite: InfinitePast is NULL and
// InfiniteFuture is 'infinity', carried as the int64 extremes (kNullMicros,
// kInfinityMicros).
#define CRM_TS_INF_PARAM(n)                                                           \
  "(CASE WHEN (" n ")::bigint = -9223372036854775808 THEN NULL "                      \
  "      WHEN (" n ")::bigint = 9223372036854775807 THEN 'infinity'::timestamptz "   \
  "      ELSE " CRM_TS_PARAM(n) " END)"
#define CRM_TS_INF_COL(c) \
  "(CASE WHEN " c " = 'infinity' THEN 9223372036854775807 ELSE " CRM_TS(c) " END)"
// clang-format on

constexpr int64_t kNullMicros = std::numeric_limits<int64_t>::min();
constexpr int64_t kInfinityMicros = std::numeric_limits<int64_t>::max();

// clang-format off
// Columns read by RowToLockout, in this order.
#define CRM_LOCKOUT_COLUMNS                                                       \
  "u.failed_logins, u.lockout_count, " CRM_TS_INF_COL("u.locked_until") ", "      \
  "u.locked_permanently, " CRM_TS_INF_COL("u.last_failure_at")

// Get: one row per recovery-code hash in array order (one row with a NULL
// hash if there are none); the user's columns repeat on each row.
constexpr const char* kSelectCredentialsSql =
    "SELECT u.id::text, u.password_hash, " CRM_TS("u.password_changed_at") ", "
    "    u.must_change_password, " CRM_LOCKOUT_COLUMNS ", "
    "    " CRM_TS("u.last_login_at") ", u.totp_secret_ciphertext, "
    "    " CRM_TS("u.totp_confirmed_at") ", u.totp_last_step, u.recovery_salt, r.h "
    "FROM users u "
    "LEFT JOIN LATERAL unnest(u.recovery_code_hashes) WITH ORDINALITY AS r(h, i) ON true "
    "WHERE u.id = $1 "
    "ORDER BY r.i";

constexpr const char* kUserExistsSql = "SELECT 1 FROM users WHERE id = $1";
constexpr const char* kLockUserSql = "SELECT 1 FROM users WHERE id = $1 FOR UPDATE";
constexpr const char* kCurrentHashSql = "SELECT password_hash FROM users WHERE id = $1";

// $1 user, $2 depth.
constexpr const char* kPasswordHistorySql =
    "SELECT h.password_hash FROM password_history h WHERE h.user_id = $1 "
    "ORDER BY h.changed_at DESC LIMIT $2";

// $1 user, $2 now (micros). Records the password the user was created with
// when the history is still empty.
constexpr const char* kSeedHistorySql =
    "INSERT INTO password_history (user_id, password_hash, changed_at) "
    "SELECT u.id, u.password_hash, COALESCE(u.password_changed_at, " CRM_TS_PARAM("$2") ") "
    "FROM users u "
    "WHERE u.id = $1 AND u.password_hash IS NOT NULL "
    "  AND NOT EXISTS (SELECT 1 FROM password_history h WHERE h.user_id = $1)";

// $1 user, $2 hash, $3 must change, $4 now (micros).
constexpr const char* kSetPasswordSql =
    "UPDATE users SET password_hash = $2, must_change_password = $3, "
    "    password_changed_at = " CRM_TS_PARAM("$4") " "
    "WHERE id = $1";

// $1 user, $2 hash, $3 now (micros). changed_at is the primary key with the
// user: strictly after the newest entry, even within one microsecond.
constexpr const char* kPushHistorySql =
    "INSERT INTO password_history (user_id, password_hash, changed_at) "
    "SELECT $1::uuid, $2, GREATEST(n.t, (SELECT max(h.changed_at) + interval '1 microsecond' "
    "                                    FROM password_history h WHERE h.user_id = $1)) "
    "FROM (SELECT " CRM_TS_PARAM("$3") " AS t) n";

// $1 user, $2 depth: drops everything older than the depth-th newest entry.
constexpr const char* kTrimHistorySql =
    "DELETE FROM password_history h "
    "WHERE h.user_id = $1 "
    "  AND h.changed_at < (SELECT k.changed_at FROM password_history k WHERE k.user_id = $1 "
    "                      ORDER BY k.changed_at DESC OFFSET $2::int - 1 LIMIT 1)";

// $1 user, $2 old hash, $3 new hash.
constexpr const char* kReplaceHashSql =
    "UPDATE users SET password_hash = $3 WHERE id = $1 AND password_hash = $2";

constexpr const char* kSetMustChangeSql =
    "UPDATE users SET must_change_password = $2 WHERE id = $1";

constexpr const char* kLockLockoutSql =
    "SELECT " CRM_LOCKOUT_COLUMNS " FROM users u WHERE u.id = $1 FOR UPDATE";

// $1 user, $2 failures, $3 lockouts, $4 locked until, $5 permanently,
// $6 last failure (times as wire micros, see CRM_TS_INF_PARAM).
constexpr const char* kWriteLockoutSql =
    "UPDATE users u SET failed_logins = $2, lockout_count = $3, "
    "    locked_until = " CRM_TS_INF_PARAM("$4") ", locked_permanently = $5, "
    "    last_failure_at = " CRM_TS_INF_PARAM("$6") " "
    "WHERE u.id = $1 "
    "RETURNING " CRM_LOCKOUT_COLUMNS;

// $1 user, $2 now (micros).
constexpr const char* kRecordLoginSql =
    "UPDATE users SET last_login_at = " CRM_TS_PARAM("$2") ", failed_logins = 0, "
    "    last_failure_at = NULL "
    "WHERE id = $1";

constexpr const char* kTotpStateSql =
    "SELECT totp_secret_ciphertext IS NOT NULL, totp_confirmed_at IS NOT NULL "
    "FROM users WHERE id = $1 FOR UPDATE";

// $1 user, $2 sealed secret.
constexpr const char* kBeginTotpSql =
    "UPDATE users SET totp_secret_ciphertext = $2, totp_confirmed_at = NULL, "
    "    totp_last_step = NULL, recovery_salt = NULL, recovery_code_hashes = '{}' "
    "WHERE id = $1";

// $1 user, $2 step, $3 now (micros), $4 salt, $5 the code hashes as
// comma-separated hex (none empty).
constexpr const char* kConfirmTotpSql =
    "UPDATE users SET totp_confirmed_at = " CRM_TS_PARAM("$3") ", totp_last_step = $2, "
    "    recovery_salt = $4, "
    "    recovery_code_hashes = ARRAY(SELECT decode(c.x, 'hex') "
    "                                 FROM unnest(string_to_array($5::text, ',')) "
    "                                      WITH ORDINALITY AS c(x, i) "
    "                                 ORDER BY c.i) "
    "WHERE id = $1";

// $1 user, $2 step.
constexpr const char* kUseTotpStepSql =
    "UPDATE users SET totp_last_step = $2 "
    "WHERE id = $1 AND totp_secret_ciphertext IS NOT NULL AND totp_confirmed_at IS NOT NULL "
    "  AND (totp_last_step IS NULL OR totp_last_step < $2)";

constexpr const char* kTotpEnabledSql =
    "SELECT totp_secret_ciphertext IS NOT NULL AND totp_confirmed_at IS NOT NULL "
    "FROM users WHERE id = $1";

constexpr const char* kRecoveryCodeCountSql =
    "SELECT cardinality(recovery_code_hashes) FROM users WHERE id = $1";

// $1 user, $2 index (1-based), $3 expected hash (not empty).
constexpr const char* kUseRecoveryCodeSql =
    "UPDATE users SET recovery_code_hashes[$2::int] = ''::bytea "
    "WHERE id = $1 AND recovery_code_hashes[$2::int] = $3";

constexpr const char* kDisableTotpSql =
    "UPDATE users SET totp_secret_ciphertext = NULL, totp_confirmed_at = NULL, "
    "    totp_last_step = NULL, recovery_salt = NULL, recovery_code_hashes = '{}' "
    "WHERE id = $1";

// $1 changed before (micros), $2 limit. Index users_password_changed_idx.
constexpr const char* kPasswordsChangedBeforeSql =
    "SELECT u.id::text, " CRM_TS("u.password_changed_at") " FROM users u "
    "WHERE u.kind = 'person' AND u.status = 'active' "
    "  AND u.password_changed_at <= " CRM_TS_PARAM("$1") " "
    "  AND u.password_changed_at > " CRM_TS_PARAM("$3") " "
    "ORDER BY u.password_changed_at, u.id "
    "LIMIT $2";

// Columns read by RowToNotice, in this order.
#define CRM_NOTICE_COLUMNS                                                        \
  "n.id::text, n.user_id::text, n.kind, n.params::text, n.dedup_key, "            \
  CRM_TS("n.created_at") ", n.attempts, " CRM_TS("n.next_attempt_at") ", " \
  CRM_TS("n.sent_at")

// Fails with a class 22 error (INVALID_ARGUMENT) if $1 is not JSON.
constexpr const char* kIsJsonObjectSql = "SELECT jsonb_typeof($1::jsonb) = 'object'";

// $1 id, $2 user, $3 kind, $4 params, $5 dedup key, $6 now (micros).
constexpr const char* kInsertNoticeSql =
    "INSERT INTO pending_notices (id, user_id, kind, params, dedup_key, created_at, "
    "    next_attempt_at) "
    "SELECT $1::uuid, $2::uuid, $3, $4::jsonb, $5, n.t, n.t "
    "FROM (SELECT " CRM_TS_PARAM("$6") " AS t) n "
    "ON CONFLICT (dedup_key) DO NOTHING";

// $1 now (micros), $2 limit. Index pending_notices_due_idx.
constexpr const char* kDueNoticesSql =
    "SELECT " CRM_NOTICE_COLUMNS " FROM pending_notices n "
    "WHERE n.sent_at IS NULL AND n.next_attempt_at <= " CRM_TS_PARAM("$1") " "
    "ORDER BY n.next_attempt_at, n.id "
    "LIMIT $2";

// $1 id, $2 now (micros).
constexpr const char* kMarkNoticeSentSql =
    "UPDATE pending_notices SET sent_at = COALESCE(sent_at, " CRM_TS_PARAM("$2") ") "
    "WHERE id = $1";

// $1 id, $2 retry at (micros).
constexpr const char* kDeferNoticeSql =
    "UPDATE pending_notices SET attempts = attempts + 1, "
    "    next_attempt_at = " CRM_TS_PARAM("$2") " "
    "WHERE id = $1";

constexpr const char* kNoticesOfUserSql =
    "SELECT " CRM_NOTICE_COLUMNS " FROM pending_notices n WHERE n.user_id = $1 "
    "ORDER BY n.created_at DESC, n.id DESC";
// clang-format on

constexpr size_t kMaxDedupKeyBytes = 200;

int64_t WireMicros(absl::Time t) {
  if (t == absl::InfinitePast()) return kNullMicros;
  if (t == absl::InfiniteFuture()) return kInfinityMicros;
  return absl::ToUnixMicros(t);
}

absl::Time WireTime(const pqxx::field& f) {
  if (f.is_null()) return absl::InfinitePast();
  const int64_t micros = f.as<int64_t>();
  if (micros == kInfinityMicros) return absl::InfiniteFuture();
  return absl::FromUnixMicros(micros);
}

std::optional<absl::Time> OptionalTime(const pqxx::field& f) {
  if (f.is_null()) return std::nullopt;
  return absl::FromUnixMicros(f.as<int64_t>());
}

// Reads the CRM_LOCKOUT_COLUMNS starting at column `first`.
LockoutState RowToLockout(const pqxx::row& row, int first) {
  LockoutState s;
  s.consecutive_failures = row[first].as<int>();
  s.lockouts = row[first + 1].as<int>();
  s.locked_until = WireTime(row[first + 2]);
  s.admin_unlock_required = row[first + 3].as<bool>();
  s.last_failure = WireTime(row[first + 4]);
  return s;
}

absl::StatusOr<NoticeKind> ParseNoticeKind(absl::string_view name) {
  for (NoticeKind kind : {NoticeKind::kPasswordChangeRequired, NoticeKind::kPasswordExpiryReminder,
                          NoticeKind::kGrantExpiry}) {
    if (NoticeKindName(kind) == name) return kind;
  }
  return absl::InternalError("pending_notices.kind holds an unknown value");
}

absl::StatusOr<NoticeRecord> RowToNotice(const pqxx::row& row) {
  NoticeRecord rec;
  rec.id = row[0].as<std::string>();
  rec.user_id = row[1].as<std::string>();
  CRM_ASSIGN_OR_RETURN(rec.kind, ParseNoticeKind(row[2].as<std::string>()));
  rec.params_json = row[3].as<std::string>();
  rec.dedup_key = row[4].as<std::string>();
  rec.created_at = absl::FromUnixMicros(row[5].as<int64_t>());
  rec.attempts = row[6].as<int>();
  rec.next_attempt_at = absl::FromUnixMicros(row[7].as<int64_t>());
  rec.sent_at = OptionalTime(row[8]);
  return rec;
}

absl::StatusOr<std::vector<NoticeRecord>> RowsToNotices(const pqxx::result& rows) {
  std::vector<NoticeRecord> out;
  out.reserve(rows.size());
  for (const auto& row : rows) {
    CRM_ASSIGN_OR_RETURN(NoticeRecord rec, RowToNotice(row));
    out.push_back(std::move(rec));
  }
  return out;
}

absl::Status MustExist(pqxx::work& tx, const std::string& user_id) {
  if (tx.exec_params(kUserExistsSql, user_id).empty()) {
    return absl::NotFoundError("user not found");
  }
  return absl::OkStatus();
}

// NOT_FOUND unless the UPDATE touched the user's row.
absl::Status Touched(const pqxx::result& r) {
  if (r.affected_rows() == 0) return absl::NotFoundError("user not found");
  return absl::OkStatus();
}

#undef CRM_NOTICE_COLUMNS
#undef CRM_LOCKOUT_COLUMNS
#undef CRM_TS_INF_COL
#undef CRM_TS_INF_PARAM
#undef CRM_TS_COL
#undef CRM_TS_PARAM

}  // namespace

absl::string_view NoticeKindName(NoticeKind kind) {
  switch (kind) {
    case NoticeKind::kPasswordChangeRequired:
      return "password_change_required";
    case NoticeKind::kPasswordExpiryReminder:
      return "password_expiry_reminder";
    case NoticeKind::kGrantExpiry:
      return "grant_expiry";
  }
  return "";
}

absl::StatusOr<Credentials> CredentialStore::Get(absl::string_view user_id) {
  CRM_ASSIGN_OR_RETURN(const std::string id, base::CanonicalUuid("user_id", user_id));
  return pool_.TransactValue<Credentials>(
      [&](pqxx::work& tx) -> absl::StatusOr<Credentials> {
        const pqxx::result rows = tx.exec_params(kSelectCredentialsSql, id);
        if (rows.empty()) return absl::NotFoundError("user not found");
        const pqxx::row& row = rows[0];
        Credentials c;
        c.user_id = row[0].as<std::string>();
        if (!row[1].is_null()) c.password_hash = row[1].as<std::string>();
        c.password_changed_at = OptionalTime(row[2]);
        c.must_change_password = row[3].as<bool>();
        c.lockout = RowToLockout(row, 4);
        c.last_login_at = OptionalTime(row[9]);
        if (!row[10].is_null()) c.totp_secret_ciphertext = pqxx::binarystring(row[10]).str();
        c.totp_confirmed_at = OptionalTime(row[11]);
        if (!row[12].is_null()) c.totp_last_step = row[12].as<int64_t>();
        if (!row[13].is_null()) c.recovery_salt = pqxx::binarystring(row[13]).str();
        for (const auto& r : rows) {
          if (!r[14].is_null()) c.recovery_code_hashes.push_back(pqxx::binarystring(r[14]).str());
        }
        return c;
      },
      {.read_only = true});
}

absl::StatusOr<std::vector<std::string>> CredentialStore::PasswordHistory(
    absl::string_view user_id) {
  CRM_ASSIGN_OR_RETURN(const std::string id, base::CanonicalUuid("user_id", user_id));
  return pool_.TransactValue<std::vector<std::string>>(
      [&](pqxx::work& tx) -> absl::StatusOr<std::vector<std::string>> {
        const pqxx::result current = tx.exec_params(kCurrentHashSql, id);
        if (current.empty()) return absl::NotFoundError("user not found");
        std::vector<std::string> out;
        for (const auto& row : tx.exec_params(kPasswordHistorySql, id, kPasswordHistoryDepth)) {
          out.push_back(row[0].as<std::string>());
        }
        // Never changed since creation: the history is the current password.
        if (out.empty() && !current[0][0].is_null()) out.push_back(current[0][0].as<std::string>());
        return out;
      },
      {.isolation = pg::Isolation::kRepeatableRead, .read_only = true});
}

absl::Status CredentialStore::SetPassword(absl::string_view user_id,
                                          absl::string_view password_hash, bool must_change,
                                          absl::Time now) {
  CRM_ASSIGN_OR_RETURN(const std::string id, base::CanonicalUuid("user_id", user_id));
  if (password_hash.empty()) return absl::InvalidArgumentError("password_hash: required");
  const std::string hash(password_hash);
  const int64_t now_us = absl::ToUnixMicros(now);
  return pool_.Transact([&](pqxx::work& tx) -> absl::Status {
    // The row lock orders concurrent changes of one user's history.
    if (tx.exec_params(kLockUserSql, id).empty()) return absl::NotFoundError("user not found");
    tx.exec_params(kSeedHistorySql, id, now_us);
    tx.exec_params(kSetPasswordSql, id, hash, must_change, now_us);
    tx.exec_params(kPushHistorySql, id, hash, now_us);
    tx.exec_params(kTrimHistorySql, id, kPasswordHistoryDepth);
    return absl::OkStatus();
  });
}

absl::StatusOr<bool> CredentialStore::ReplaceHash(absl::string_view user_id,
                                                  absl::string_view old_hash,
                                                  absl::string_view new_hash) {
  CRM_ASSIGN_OR_RETURN(const std::string id, base::CanonicalUuid("user_id", user_id));
  if (new_hash.empty()) return absl::InvalidArgumentError("new_hash: required");
  const std::string old_h(old_hash);
  const std::string new_h(new_hash);
  return pool_.TransactValue<bool>([&](pqxx::work& tx) -> absl::StatusOr<bool> {
    if (tx.exec_params(kReplaceHashSql, id, old_h, new_h).affected_rows() == 1) return true;
    CRM_RETURN_IF_ERROR(MustExist(tx, id));
    return false;
  });
}

absl::Status CredentialStore::SetMustChangePassword(absl::string_view user_id, bool must_change) {
  CRM_ASSIGN_OR_RETURN(const std::string id, base::CanonicalUuid("user_id", user_id));
  return pool_.Transact([&](pqxx::work& tx) -> absl::Status {
    return Touched(tx.exec_params(kSetMustChangeSql, id, must_change));
  });
}

absl::StatusOr<LockoutState> CredentialStore::UpdateLockout(
    absl::string_view user_id, const std::function<LockoutState(const LockoutState&)>& update) {
  CRM_ASSIGN_OR_RETURN(const std::string id, base::CanonicalUuid("user_id", user_id));
  return pool_.TransactValue<LockoutState>([&](pqxx::work& tx) -> absl::StatusOr<LockoutState> {
    const pqxx::result current = tx.exec_params(kLockLockoutSql, id);
    if (current.empty()) return absl::NotFoundError("user not found");
    const LockoutState next = update(RowToLockout(current[0], 0));
    const pqxx::result written = tx.exec_params(
        kWriteLockoutSql, id, next.consecutive_failures, next.lockouts,
        WireMicros(next.locked_until), next.admin_unlock_required, WireMicros(next.last_failure));
    return RowToLockout(written[0], 0);
  });
}

absl::Status CredentialStore::RecordLogin(absl::string_view user_id, absl::Time now) {
  CRM_ASSIGN_OR_RETURN(const std::string id, base::CanonicalUuid("user_id", user_id));
  const int64_t now_us = absl::ToUnixMicros(now);
  return pool_.Transact([&](pqxx::work& tx) -> absl::Status {
    return Touched(tx.exec_params(kRecordLoginSql, id, now_us));
  });
}

absl::Status CredentialStore::BeginTotpEnrollment(absl::string_view user_id,
                                                  absl::string_view secret_ciphertext) {
  CRM_ASSIGN_OR_RETURN(const std::string id, base::CanonicalUuid("user_id", user_id));
  if (secret_ciphertext.empty()) return absl::InvalidArgumentError("secret_ciphertext: required");
  const pqxx::binarystring secret(secret_ciphertext.data(), secret_ciphertext.size());
  return pool_.Transact([&](pqxx::work& tx) -> absl::Status {
    const pqxx::result state = tx.exec_params(kTotpStateSql, id);
    if (state.empty()) return absl::NotFoundError("user not found");
    if (state[0][0].as<bool>() && state[0][1].as<bool>()) {
      return absl::FailedPreconditionError("totp already enabled");
    }
    tx.exec_params(kBeginTotpSql, id, secret);
    return absl::OkStatus();
  });
}

absl::Status CredentialStore::ConfirmTotp(absl::string_view user_id, int64_t step,
                                          absl::string_view recovery_salt,
                                          const std::vector<std::string>& recovery_code_hashes,
                                          absl::Time now) {
  CRM_ASSIGN_OR_RETURN(const std::string id, base::CanonicalUuid("user_id", user_id));
  if (recovery_salt.empty()) return absl::InvalidArgumentError("recovery_salt: required");
  std::vector<std::string> hex;
  hex.reserve(recovery_code_hashes.size());
  for (const std::string& h : recovery_code_hashes) {
    if (h.empty()) return absl::InvalidArgumentError("recovery_code_hashes: an entry is empty");
    hex.push_back(absl::BytesToHexString(h));
  }
  const std::string hashes = absl::StrJoin(hex, ",");
  const pqxx::binarystring salt(recovery_salt.data(), recovery_salt.size());
  const int64_t now_us = absl::ToUnixMicros(now);
  return pool_.Transact([&](pqxx::work& tx) -> absl::Status {
    const pqxx::result state = tx.exec_params(kTotpStateSql, id);
    if (state.empty()) return absl::NotFoundError("user not found");
    if (!state[0][0].as<bool>() || state[0][1].as<bool>()) {
      return absl::FailedPreconditionError("no pending totp enrolment");
    }
    tx.exec_params(kConfirmTotpSql, id, step, now_us, salt, hashes);
    return absl::OkStatus();
  });
}

absl::StatusOr<bool> CredentialStore::UseTotpStep(absl::string_view user_id, int64_t step) {
  CRM_ASSIGN_OR_RETURN(const std::string id, base::CanonicalUuid("user_id", user_id));
  return pool_.TransactValue<bool>([&](pqxx::work& tx) -> absl::StatusOr<bool> {
    // A concurrent caller with the same step waits for our row lock, then
    // re-checks the condition against our committed step and updates nothing.
    if (tx.exec_params(kUseTotpStepSql, id, step).affected_rows() == 1) return true;
    const pqxx::result enabled = tx.exec_params(kTotpEnabledSql, id);
    if (enabled.empty()) return absl::NotFoundError("user not found");
    if (!enabled[0][0].as<bool>()) return absl::FailedPreconditionError("totp not enabled");
    return false;
  });
}

absl::StatusOr<bool> CredentialStore::UseRecoveryCode(absl::string_view user_id, size_t index,
                                                      absl::string_view expected_hash) {
  CRM_ASSIGN_OR_RETURN(const std::string id, base::CanonicalUuid("user_id", user_id));
  // An empty entry is a used code: matching it must not count as a use.
  if (expected_hash.empty()) return absl::InvalidArgumentError("expected_hash: required");
  const pqxx::binarystring expected(expected_hash.data(), expected_hash.size());
  return pool_.TransactValue<bool>([&](pqxx::work& tx) -> absl::StatusOr<bool> {
    const pqxx::result count = tx.exec_params(kRecoveryCodeCountSql, id);
    if (count.empty()) return absl::NotFoundError("user not found");
    if (index >= count[0][0].as<size_t>()) {
      return absl::InvalidArgumentError("index: out of range");
    }
    // Conditional like UseTotpStep: of two concurrent callers, the second
    // finds the entry emptied.
    const int position = static_cast<int>(index) + 1;
    return tx.exec_params(kUseRecoveryCodeSql, id, position, expected).affected_rows() == 1;
  });
}

absl::Status CredentialStore::DisableTotp(absl::string_view user_id) {
  CRM_ASSIGN_OR_RETURN(const std::string id, base::CanonicalUuid("user_id", user_id));
  return pool_.Transact(
      [&](pqxx::work& tx) -> absl::Status { return Touched(tx.exec_params(kDisableTotpSql, id)); });
}

absl::StatusOr<std::vector<CredentialStore::PasswordAge>> CredentialStore::PasswordsChangedBefore(
    absl::Time changed_before, int limit, absl::Time changed_after) {
  if (limit < 1) return absl::InvalidArgumentError("limit: must be at least 1");
  const int64_t before_us = absl::ToUnixMicros(changed_before);
  // Year 1: before any stored time, and within PostgreSQL's range.
  constexpr int64_t kYearOneMicros = -62135596800LL * 1'000'000;
  const int64_t after_us = std::max(kYearOneMicros, absl::ToUnixMicros(changed_after));
  return pool_.TransactValue<std::vector<PasswordAge>>(
      [&](pqxx::work& tx) -> absl::StatusOr<std::vector<PasswordAge>> {
        std::vector<PasswordAge> out;
        for (const auto& row :
             tx.exec_params(kPasswordsChangedBeforeSql, before_us, limit, after_us)) {
          out.push_back({.user_id = row[0].as<std::string>(),
                         .password_changed_at = absl::FromUnixMicros(row[1].as<int64_t>())});
        }
        return out;
      },
      {.read_only = true});
}

absl::StatusOr<bool> CredentialStore::EnqueueNotice(const NewNotice& notice) {
  CRM_ASSIGN_OR_RETURN(const std::string user_id, base::CanonicalUuid("user_id", notice.user_id));
  if (notice.dedup_key.empty()) return absl::InvalidArgumentError("dedup_key: required");
  if (notice.dedup_key.size() > kMaxDedupKeyBytes) {
    return absl::InvalidArgumentError("dedup_key: longer than 200 bytes");
  }
  CRM_RETURN_IF_ERROR(base::ValidateUtf8("dedup_key", notice.dedup_key));
  // Also keeps NUL bytes, which libpq cannot pass, away from PostgreSQL.
  CRM_RETURN_IF_ERROR(base::ValidateUtf8("params_json", notice.params_json));
  const std::string id = base::NewUuid();
  const std::string kind(NoticeKindName(notice.kind));
  const int64_t now_us = absl::ToUnixMicros(notice.now);
  // PostgreSQL parses the JSON; a parse error aborts the transaction with a
  // class 22 status, which is only ours to rename while that check runs.
  bool parsing_params = false;
  absl::StatusOr<bool> queued =
      pool_.TransactValue<bool>([&](pqxx::work& tx) -> absl::StatusOr<bool> {
        parsing_params = true;
        const pqxx::result is_object = tx.exec_params(kIsJsonObjectSql, notice.params_json);
        parsing_params = false;
        if (!is_object[0][0].as<bool>()) {
          return absl::InvalidArgumentError("params_json: not a JSON object");
        }
        CRM_RETURN_IF_ERROR(MustExist(tx, user_id));
        return tx.exec_params(kInsertNoticeSql, id, user_id, kind, notice.params_json,
                              notice.dedup_key, now_us)
                   .affected_rows() == 1;
      });
  if (parsing_params && queued.status().code() == absl::StatusCode::kInvalidArgument) {
    return absl::InvalidArgumentError("params_json: not valid JSON");
  }
  return queued;
}

absl::StatusOr<std::vector<NoticeRecord>> CredentialStore::DueNotices(absl::Time now, int limit) {
  if (limit < 1) return absl::InvalidArgumentError("limit: must be at least 1");
  const int64_t now_us = absl::ToUnixMicros(now);
  return pool_.TransactValue<std::vector<NoticeRecord>>(
      [&](pqxx::work& tx) { return RowsToNotices(tx.exec_params(kDueNoticesSql, now_us, limit)); },
      {.read_only = true});
}

absl::Status CredentialStore::MarkNoticeSent(absl::string_view notice_id, absl::Time now) {
  CRM_ASSIGN_OR_RETURN(const std::string id, base::CanonicalUuid("notice_id", notice_id));
  const int64_t now_us = absl::ToUnixMicros(now);
  return pool_.Transact([&](pqxx::work& tx) -> absl::Status {
    if (tx.exec_params(kMarkNoticeSentSql, id, now_us).affected_rows() == 0) {
      return absl::NotFoundError("notice not found");
    }
    return absl::OkStatus();
  });
}

absl::Status CredentialStore::DeferNotice(absl::string_view notice_id, absl::Time retry_at) {
  CRM_ASSIGN_OR_RETURN(const std::string id, base::CanonicalUuid("notice_id", notice_id));
  const int64_t retry_us = absl::ToUnixMicros(retry_at);
  return pool_.Transact([&](pqxx::work& tx) -> absl::Status {
    if (tx.exec_params(kDeferNoticeSql, id, retry_us).affected_rows() == 0) {
      return absl::NotFoundError("notice not found");
    }
    return absl::OkStatus();
  });
}

absl::StatusOr<std::vector<NoticeRecord>> CredentialStore::NoticesOfUser(
    absl::string_view user_id) {
  CRM_ASSIGN_OR_RETURN(const std::string id, base::CanonicalUuid("user_id", user_id));
  return pool_.TransactValue<std::vector<NoticeRecord>>(
      [&](pqxx::work& tx) -> absl::StatusOr<std::vector<NoticeRecord>> {
        CRM_RETURN_IF_ERROR(MustExist(tx, id));
        return RowsToNotices(tx.exec_params(kNoticesOfUserSql, id));
      },
      {.read_only = true});
}

}  // namespace crm::identity
