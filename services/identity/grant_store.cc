#include "services/identity/grant_store.h"

#include <cstdint>
#include <initializer_list>
#include <pqxx/array>
#include <pqxx/binarystring>
#include <pqxx/result>
#include <pqxx/transaction>
#include <string>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "libs/base/status_macros.h"
#include "libs/base/uuid.h"

namespace crm::identity {
namespace {

// Times cross the wire as whole microseconds since the Unix epoch.
#define CRM_TS_PARAM(n) "('epoch'::timestamptz + (" n ")::bigint * interval '1 microsecond')"
#define CRM_TS_COL(c) "(extract(epoch from " c ") * 1000000)::bigint"

// clang-format off
constexpr const char* kListCustomRolesSql =
    "SELECT name, permissions, requires_mfa, description FROM roles ORDER BY name COLLATE \"C\"";

constexpr const char* kListMfaRequirementsSql = "SELECT role_name FROM role_mfa_requirements";

constexpr const char* kRoleTakenSql = "SELECT 1 FROM roles WHERE name = $1";

// $1 name, $2 permissions joined by ',' (catalogue names contain none),
// $3 requires_mfa, $4 created_by ('' = NULL), $5 now (micros), $6 description.
constexpr const char* kInsertRoleSql =
    "INSERT INTO roles (name, permissions, requires_mfa, created_by, created_at, description) "
    "VALUES ($1, string_to_array($2, ','), $3, NULLIF($4, '')::uuid, " CRM_TS_PARAM("$5") ", $6)";

// $1 role, $2 set_by ('' = NULL), $3 now (micros).
constexpr const char* kSetMfaRequirementSql =
    "INSERT INTO role_mfa_requirements (role_name, set_by, set_at) "
    "VALUES ($1, NULLIF($2, '')::uuid, " CRM_TS_PARAM("$3") ") "
    "ON CONFLICT (role_name) DO UPDATE SET set_by = EXCLUDED.set_by, set_at = EXCLUDED.set_at";

constexpr const char* kClearMfaRequirementSql =
    "DELETE FROM role_mfa_requirements WHERE role_name = $1";

constexpr const char* kSetCustomRoleMfaSql = "UPDATE roles SET requires_mfa = $2 WHERE name = $1";

// Columns read by RowToGrant, in this order.
#define CRM_GRANT_COLUMNS                                                          \
  "g.id::text, g.user_id::text, g.role_name, " CRM_TS_COL("g.not_before") ", "     \
  CRM_TS_COL("g.not_after") ", g.justification_ciphertext, g.granted_by::text, "   \
  CRM_TS_COL("g.created_at") ", " CRM_TS_COL("g.revoked_at") ", "                  \
  "g.revoked_by::text, g.notices_sent"

// $1 id, $2 user, $3 role, $4 has not_before, $5 not_before (micros),
// $6 has not_after, $7 not_after, $8 justification, $9 granted_by ('' =
// NULL), $10 now (micros).
constexpr const char* kInsertGrantSql =
    "INSERT INTO grants AS g (id, user_id, role_name, not_before, not_after, "
    "    justification_ciphertext, granted_by, created_at) "
    "VALUES ($1::uuid, $2::uuid, $3, CASE WHEN $4 THEN " CRM_TS_PARAM("$5") " END, "
    "    CASE WHEN $6 THEN " CRM_TS_PARAM("$7") " END, $8, NULLIF($9, '')::uuid, "
    "    " CRM_TS_PARAM("$10") ") "
    "RETURNING " CRM_GRANT_COLUMNS;

constexpr const char* kSelectGrantSql = "SELECT " CRM_GRANT_COLUMNS " FROM grants g WHERE g.id = $1";

constexpr const char* kGrantExistsSql = "SELECT 1 FROM grants WHERE id = $1";

// Uses grants_user_idx (user_id, created_at).
constexpr const char* kGrantsOfUserSql =
    "SELECT " CRM_GRANT_COLUMNS " FROM grants g WHERE g.user_id = $1 "
    "ORDER BY g.created_at, g.id";

// $1 user ('' = everyone), $2 include_inactive, $3 now (micros), $4 cursor
// created_at ('' = first page), $5 cursor id, $6 limit.
constexpr const char* kListGrantsSql =
    "SELECT " CRM_GRANT_COLUMNS " FROM grants g "
    "WHERE ($1 = '' OR g.user_id = NULLIF($1, '')::uuid) "
    "  AND ($2 OR (g.revoked_at IS NULL "
    "              AND (g.not_after IS NULL OR g.not_after > " CRM_TS_PARAM("$3") "))) "
    "  AND ($4 = '' OR (g.created_at, g.id) < (" CRM_TS_PARAM("NULLIF($4, '')") ", "
    "                                          NULLIF($5, '')::uuid)) "
    "ORDER BY g.created_at DESC, g.id DESC "
    "LIMIT $6";

// $1 now, $2 now + within (micros), $3 cursor not_after ('' = first page),
// $4 cursor id, $5 limit. Uses the partial index grants_expiring_idx.
constexpr const char* kListExpiringSql =
    "SELECT " CRM_GRANT_COLUMNS " FROM grants g "
    "WHERE g.revoked_at IS NULL AND g.not_after IS NOT NULL "
    "  AND g.not_after > " CRM_TS_PARAM("$1") " AND g.not_after <= " CRM_TS_PARAM("$2") " "
    "  AND ($3 = '' OR (g.not_after, g.id) > (" CRM_TS_PARAM("NULLIF($3, '')") ", "
    "                                         NULLIF($4, '')::uuid)) "
    "ORDER BY g.not_after, g.id "
    "LIMIT $5";

// $1 id, $2 revoked_by ('' = NULL), $3 now (micros).
constexpr const char* kRevokeGrantSql =
    "UPDATE grants SET revoked_at = " CRM_TS_PARAM("$3") ", revoked_by = NULLIF($2, '')::uuid "
    "WHERE id = $1 AND revoked_at IS NULL";

// $1 id, $2 new not_after, $3 has expected, $4 expected not_after (micros).
constexpr const char* kExtendGrantSql =
    "UPDATE grants g SET not_after = " CRM_TS_PARAM("$2") " "
    "WHERE g.id = $1 AND g.revoked_at IS NULL "
    "  AND g.not_after IS NOT DISTINCT FROM (CASE WHEN $3 THEN " CRM_TS_PARAM("$4") " END) "
    "RETURNING " CRM_GRANT_COLUMNS;

// Conditional, so of concurrent callers exactly one appends: a waiting
// UPDATE re-checks the condition on the row its predecessor committed.
constexpr const char* kMarkNoticeSql =
    "UPDATE grants SET notices_sent = array_append(notices_sent, $2::text) "
    "WHERE id = $1 AND NOT (notices_sent @> ARRAY[$2::text])";

// $1 role, $2 now (micros): the window of grants.h IsActiveAt.
constexpr const char* kUsersWithActiveRoleSql =
    "SELECT DISTINCT g.user_id FROM grants g "
    "WHERE g.role_name = $1 AND g.revoked_at IS NULL "
    "  AND (g.not_before IS NULL OR g.not_before <= " CRM_TS_PARAM("$2") ") "
    "  AND (g.not_after IS NULL OR g.not_after > " CRM_TS_PARAM("$2") ") "
    "ORDER BY g.user_id";

// $1 user, $2 revoked_by ('' = NULL), $3 now (micros).
constexpr const char* kRevokeAllOfUserSql =
    "UPDATE grants SET revoked_at = " CRM_TS_PARAM("$3") ", revoked_by = NULLIF($2, '')::uuid "
    "WHERE user_id = $1 AND revoked_at IS NULL";

// Locks the user against a concurrent delete while it is bound.
constexpr const char* kUserKindSql = "SELECT kind FROM users WHERE id = $1 FOR SHARE";

#define CRM_BINDING_COLUMNS \
  "s.user_id::text, s.spiffe_id, " CRM_TS_COL("s.created_at") ", s.token_session_id::text"

constexpr const char* kSpiffeIdTakenSql = "SELECT 1 FROM service_accounts WHERE spiffe_id = $1";
constexpr const char* kUserBoundSql = "SELECT 1 FROM service_accounts WHERE user_id = $1";

constexpr const char* kInsertBindingSql =
    "INSERT INTO service_accounts AS s (user_id, spiffe_id, created_at) "
    "VALUES ($1::uuid, $2, " CRM_TS_PARAM("$3") ") RETURNING " CRM_BINDING_COLUMNS;

constexpr const char* kBindingBySpiffeIdSql =
    "SELECT " CRM_BINDING_COLUMNS " FROM service_accounts s WHERE s.spiffe_id = $1";

constexpr const char* kBindingByUserSql =
    "SELECT " CRM_BINDING_COLUMNS " FROM service_accounts s WHERE s.user_id = $1";

constexpr const char* kRotateTokenSessionSql =
    "UPDATE service_accounts s SET token_session_id = gen_random_uuid() WHERE s.user_id = $1 "
    "RETURNING " CRM_BINDING_COLUMNS;
// clang-format on

constexpr absl::string_view kSpiffePrefix = "spiffe://crm.local/";
constexpr size_t kMaxSpiffeNameLength = 64;

// A constraint violation reported by libs/pg (whose message names the
// constraint) and the status the caller should see instead.
struct ConstraintStatus {
  absl::string_view constraint;
  absl::StatusCode code;
  absl::string_view message;
};

const ConstraintStatus kConstraintStatuses[] = {
    {"grants_user_id_fkey", absl::StatusCode::kNotFound, "user not found"},
    {"grants_granted_by_fkey", absl::StatusCode::kNotFound, "granted_by: user not found"},
    {"grants_revoked_by_fkey", absl::StatusCode::kNotFound, "revoked_by: user not found"},
    {"grants_check", absl::StatusCode::kInvalidArgument, "not_after: must be after not_before"},
    {"roles_created_by_fkey", absl::StatusCode::kNotFound, "created_by: user not found"},
    {"roles_pkey", absl::StatusCode::kAlreadyExists, "name: role already exists"},
    {"role_mfa_requirements_set_by_fkey", absl::StatusCode::kNotFound, "set_by: user not found"},
    {"service_accounts_user_id_fkey", absl::StatusCode::kNotFound, "user not found"},
    {"service_accounts_spiffe_key", absl::StatusCode::kAlreadyExists,
     "spiffe_id: already bound to a service account"},
    {"service_accounts_pkey", absl::StatusCode::kAlreadyExists,
     "user_id: service account already bound"},
};

// Replaces libs/pg's status for a violation of one of our constraints (e.g.
// "... (SQLSTATE 23503, constraint grants_user_id_fkey, table grants)").
absl::Status MapConstraintViolation(absl::Status status) {
  if (status.ok()) return status;
  const absl::string_view message = status.message();
  for (const ConstraintStatus& c : kConstraintStatuses) {
    const std::string name = absl::StrCat("constraint ", c.constraint);
    for (absl::string_view end : {",", ")"}) {
      if (absl::StrContains(message, absl::StrCat(name, end))) {
        return absl::Status(c.code, c.message);
      }
    }
  }
  return status;
}

template <typename T>
absl::StatusOr<T> MapConstraintViolation(absl::StatusOr<T> result) {
  if (result.ok()) return result;
  return MapConstraintViolation(result.status());
}

// An actor id: empty (the system) or a UUID, canonical.
absl::StatusOr<std::string> OptionalActor(absl::string_view field, absl::string_view id) {
  if (id.empty()) return std::string();
  return base::CanonicalUuid(field, id);
}

absl::StatusOr<int> EffectivePageSize(int page_size) {
  if (page_size < 0) return absl::InvalidArgumentError("page_size: must not be negative");
  if (page_size == 0) return kDefaultGrantPageSize;
  return page_size > kMaxGrantPageSize ? kMaxGrantPageSize : page_size;
}

// The position after which a page starts: a time (created_at or not_after)
// and a grant id.
struct Cursor {
  int64_t micros = 0;
  std::string id;
};

// Opaque page token: web-safe base64 of "<kind>|<micros>|<id>|<query key>",
// kind "g1" for ListGrants and "x1" for ListExpiring.
std::string EncodePageToken(absl::string_view kind, const Cursor& cursor, absl::string_view query) {
  return absl::WebSafeBase64Escape(
      absl::StrCat(kind, "|", cursor.micros, "|", cursor.id, "|", query));
}

absl::StatusOr<Cursor> DecodePageToken(absl::string_view kind, absl::string_view token,
                                       absl::string_view query) {
  const absl::Status bad =
      absl::InvalidArgumentError("page_token: malformed or not for this query");
  std::string raw;
  if (!absl::WebSafeBase64Unescape(token, &raw)) return bad;
  std::vector<absl::string_view> parts = absl::StrSplit(raw, absl::MaxSplits('|', 3));
  if (parts.size() != 4 || parts[0] != kind || parts[3] != query) return bad;
  Cursor cursor;
  if (!absl::SimpleAtoi(parts[1], &cursor.micros)) return bad;
  auto id = base::CanonicalUuid("page_token", parts[2]);
  if (!id.ok()) return bad;
  cursor.id = *std::move(id);
  return cursor;
}

absl::Status ValidateSpiffeId(absl::string_view spiffe_id) {
  const absl::Status bad = absl::InvalidArgumentError(
      "spiffe_id: must be spiffe://crm.local/<name>, <name> 1 to 64 of a-z, 0-9, '.', '_', '-'");
  absl::string_view name = spiffe_id;
  if (!absl::ConsumePrefix(&name, kSpiffePrefix)) return bad;
  if (name.empty() || name.size() > kMaxSpiffeNameLength) return bad;
  for (char c : name) {
    const auto u = static_cast<unsigned char>(c);
    if (!absl::ascii_islower(u) && !absl::ascii_isdigit(u) && c != '.' && c != '_' && c != '-') {
      return bad;
    }
  }
  return absl::OkStatus();
}

// The elements of a one-dimensional text[] field.
std::vector<std::string> TextArray(const pqxx::field& f) {
  std::vector<std::string> out;
  pqxx::array_parser parser = f.as_array();
  for (;;) {
    auto [juncture, value] = parser.get_next();
    if (juncture == pqxx::array_parser::done) break;
    if (juncture == pqxx::array_parser::string_value) out.push_back(std::move(value));
  }
  return out;
}

std::optional<absl::Time> OptionalTime(const pqxx::field& f) {
  if (f.is_null()) return std::nullopt;
  return absl::FromUnixMicros(f.as<int64_t>());
}

std::string OptionalText(const pqxx::field& f) {
  return f.is_null() ? std::string() : f.as<std::string>();
}

GrantRecord RowToGrant(const pqxx::row& row) {
  GrantRecord rec;
  rec.grant.id = row[0].as<std::string>();
  rec.grant.user_id = row[1].as<std::string>();
  rec.grant.role = row[2].as<std::string>();
  rec.grant.not_before = OptionalTime(row[3]);
  rec.grant.not_after = OptionalTime(row[4]);
  rec.justification_ciphertext = pqxx::binarystring(row[5]).str();
  rec.grant.granted_by = OptionalText(row[6]);
  rec.created_at = absl::FromUnixMicros(row[7].as<int64_t>());
  rec.grant.revoked_at = OptionalTime(row[8]);
  rec.revoked_by = OptionalText(row[9]);
  rec.notices_sent = TextArray(row[10]);
  return rec;
}

// Pages of grants: at most `limit` of `rows` (which hold one more when a
// further page exists), and the token that continues after the last one.
GrantPage MakePage(const pqxx::result& rows, int limit, absl::string_view kind,
                   absl::string_view query, bool by_not_after) {
  GrantPage page;
  for (const auto& row : rows) {
    if (static_cast<int>(page.grants.size()) == limit) {
      const GrantRecord& last = page.grants.back();
      const absl::Time at = by_not_after ? *last.grant.not_after : last.created_at;
      page.next_page_token = EncodePageToken(kind, {absl::ToUnixMicros(at), last.grant.id}, query);
      break;
    }
    page.grants.push_back(RowToGrant(row));
  }
  return page;
}

ServiceAccountBinding RowToBinding(const pqxx::row& row) {
  return ServiceAccountBinding{.user_id = row[0].as<std::string>(),
                               .spiffe_id = row[1].as<std::string>(),
                               .created_at = absl::FromUnixMicros(row[2].as<int64_t>()),
                               .token_session_id = row[3].as<std::string>()};
}

#undef CRM_BINDING_COLUMNS
#undef CRM_GRANT_COLUMNS
#undef CRM_TS_COL
#undef CRM_TS_PARAM

}  // namespace

const char* GrantStore::GrantsOfUserSql() { return kGrantsOfUserSql; }
const char* GrantStore::ListExpiringSql() { return kListExpiringSql; }

// ---- Roles ----

absl::StatusOr<std::vector<Role>> GrantStore::ListRoles() {
  return pool_.TransactValue<std::vector<Role>>(
      [&](pqxx::work& tx) -> absl::StatusOr<std::vector<Role>> {
        std::vector<Role> roles = BuiltinRoles();
        for (const auto& row : tx.exec(kListMfaRequirementsSql)) {
          const std::string name = row[0].as<std::string>();
          for (Role& role : roles) {
            if (role.name == name) role.require_mfa = true;
          }
        }
        for (const auto& row : tx.exec(kListCustomRolesSql)) {
          Role role;
          role.name = row[0].as<std::string>();
          for (std::string& p : TextArray(row[1])) role.permissions.insert(std::move(p));
          role.require_mfa = row[2].as<bool>();
          role.description = row[3].as<std::string>();
          roles.push_back(std::move(role));
        }
        return roles;
      },
      {.read_only = true});
}

absl::Status GrantStore::CreateRole(const Role& role, absl::string_view created_by,
                                    absl::Time now) {
  CRM_RETURN_IF_ERROR(ValidateRoleName("name", role.name));
  if (IsBuiltinRoleName(role.name)) {
    return absl::AlreadyExistsError("name: taken by a built-in role");
  }
  for (const std::string& p : role.permissions) {
    // Also what makes the ','-joined parameter safe.
    if (!IsKnownPermission(p)) return absl::InvalidArgumentError("permissions: unknown permission");
  }
  CRM_ASSIGN_OR_RETURN(const std::string creator, OptionalActor("created_by", created_by));
  const std::string permissions = absl::StrJoin(role.permissions, ",");
  return MapConstraintViolation(pool_.Transact([&](pqxx::work& tx) -> absl::Status {
    if (!tx.exec_params(kRoleTakenSql, role.name).empty()) {
      return absl::AlreadyExistsError("name: role already exists");
    }
    tx.exec_params(kInsertRoleSql, role.name, permissions, role.require_mfa, creator,
                   absl::ToUnixMicros(now), role.description);
    return absl::OkStatus();
  }));
}

absl::Status GrantStore::SetRoleRequiresMfa(absl::string_view role, bool required,
                                            absl::string_view set_by, absl::Time now) {
  CRM_ASSIGN_OR_RETURN(const std::string setter, OptionalActor("set_by", set_by));
  const std::string name(role);
  const bool builtin = IsBuiltinRoleName(role);
  return MapConstraintViolation(pool_.Transact([&](pqxx::work& tx) -> absl::Status {
    if (!builtin) {
      if (tx.exec_params(kSetCustomRoleMfaSql, name, required).affected_rows() == 0) {
        return absl::NotFoundError("role not found");
      }
    } else if (required) {
      tx.exec_params(kSetMfaRequirementSql, name, setter, absl::ToUnixMicros(now));
    } else {
      tx.exec_params(kClearMfaRequirementSql, name);
    }
    return absl::OkStatus();
  }));
}

// ---- Grants ----

absl::StatusOr<GrantRecord> GrantStore::CreateGrant(const Grant& grant,
                                                    absl::string_view justification_ciphertext,
                                                    absl::Time now) {
  CRM_ASSIGN_OR_RETURN(const std::string user_id, base::CanonicalUuid("user_id", grant.user_id));
  CRM_ASSIGN_OR_RETURN(const std::string granted_by, OptionalActor("granted_by", grant.granted_by));
  const std::string id = base::NewUuid();
  const pqxx::binarystring justification(justification_ciphertext.data(),
                                         justification_ciphertext.size());
  return MapConstraintViolation(
      pool_.TransactValue<GrantRecord>([&](pqxx::work& tx) -> absl::StatusOr<GrantRecord> {
        // A missing user or an empty window fails on the foreign key or the
        // CHECK of grants, mapped above.
        const pqxx::result rows =
            tx.exec_params(kInsertGrantSql, id, user_id, grant.role, grant.not_before.has_value(),
                           absl::ToUnixMicros(grant.not_before.value_or(absl::UnixEpoch())),
                           grant.not_after.has_value(),
                           absl::ToUnixMicros(grant.not_after.value_or(absl::UnixEpoch())),
                           justification, granted_by, absl::ToUnixMicros(now));
        return RowToGrant(rows[0]);
      }));
}

absl::StatusOr<GrantRecord> GrantStore::GetGrant(absl::string_view grant_id) {
  CRM_ASSIGN_OR_RETURN(const std::string id, base::CanonicalUuid("grant_id", grant_id));
  return pool_.TransactValue<GrantRecord>(
      [&](pqxx::work& tx) -> absl::StatusOr<GrantRecord> {
        const pqxx::result rows = tx.exec_params(kSelectGrantSql, id);
        if (rows.empty()) return absl::NotFoundError("grant not found");
        return RowToGrant(rows[0]);
      },
      {.read_only = true});
}

absl::StatusOr<std::vector<Grant>> GrantStore::GrantsOfUser(absl::string_view user_id) {
  CRM_ASSIGN_OR_RETURN(const std::string uid, base::CanonicalUuid("user_id", user_id));
  return pool_.TransactValue<std::vector<Grant>>(
      [&](pqxx::work& tx) -> absl::StatusOr<std::vector<Grant>> {
        std::vector<Grant> out;
        for (const auto& row : tx.exec_params(kGrantsOfUserSql, uid)) {
          out.push_back(RowToGrant(row).grant);
        }
        return out;
      },
      {.read_only = true});
}

absl::StatusOr<GrantPage> GrantStore::ListGrants(absl::string_view user_id, bool include_inactive,
                                                 absl::Time now, int page_size,
                                                 absl::string_view page_token) {
  std::string uid;
  if (!user_id.empty()) {
    CRM_ASSIGN_OR_RETURN(uid, base::CanonicalUuid("user_id", user_id));
  }
  CRM_ASSIGN_OR_RETURN(const int limit, EffectivePageSize(page_size));
  const std::string query = absl::StrCat(uid, "/", include_inactive ? "all" : "live");
  std::string cursor_micros;
  std::string cursor_id;
  if (!page_token.empty()) {
    CRM_ASSIGN_OR_RETURN(const Cursor cursor, DecodePageToken("g1", page_token, query));
    cursor_micros = absl::StrCat(cursor.micros);
    cursor_id = cursor.id;
  }
  return pool_.TransactValue<GrantPage>(
      [&](pqxx::work& tx) -> absl::StatusOr<GrantPage> {
        // One row more than the page tells whether another page follows.
        const pqxx::result rows =
            tx.exec_params(kListGrantsSql, uid, include_inactive, absl::ToUnixMicros(now),
                           cursor_micros, cursor_id, limit + 1);
        return MakePage(rows, limit, "g1", query, /*by_not_after=*/false);
      },
      {.read_only = true});
}

absl::StatusOr<GrantPage> GrantStore::ListExpiring(absl::Time now, absl::Duration within,
                                                   int page_size, absl::string_view page_token) {
  CRM_ASSIGN_OR_RETURN(const int limit, EffectivePageSize(page_size));
  const std::string query = absl::StrCat(absl::ToInt64Microseconds(within));
  std::string cursor_micros;
  std::string cursor_id;
  if (!page_token.empty()) {
    CRM_ASSIGN_OR_RETURN(const Cursor cursor, DecodePageToken("x1", page_token, query));
    cursor_micros = absl::StrCat(cursor.micros);
    cursor_id = cursor.id;
  }
  return pool_.TransactValue<GrantPage>(
      [&](pqxx::work& tx) -> absl::StatusOr<GrantPage> {
        const pqxx::result rows =
            tx.exec_params(kListExpiringSql, absl::ToUnixMicros(now),
                           absl::ToUnixMicros(now + within), cursor_micros, cursor_id, limit + 1);
        return MakePage(rows, limit, "x1", query, /*by_not_after=*/true);
      },
      {.read_only = true});
}

absl::StatusOr<GrantRecord> GrantStore::RevokeGrant(absl::string_view grant_id,
                                                    absl::string_view revoked_by, absl::Time now) {
  CRM_ASSIGN_OR_RETURN(const std::string id, base::CanonicalUuid("grant_id", grant_id));
  CRM_ASSIGN_OR_RETURN(const std::string actor, OptionalActor("revoked_by", revoked_by));
  return MapConstraintViolation(
      pool_.TransactValue<GrantRecord>([&](pqxx::work& tx) -> absl::StatusOr<GrantRecord> {
        // A no-op when already revoked: the first revocation stays.
        tx.exec_params(kRevokeGrantSql, id, actor, absl::ToUnixMicros(now));
        const pqxx::result rows = tx.exec_params(kSelectGrantSql, id);
        if (rows.empty()) return absl::NotFoundError("grant not found");
        return RowToGrant(rows[0]);
      }));
}

absl::StatusOr<GrantRecord> GrantStore::ExtendGrant(absl::string_view grant_id,
                                                    std::optional<absl::Time> expected_not_after,
                                                    absl::Time new_not_after) {
  CRM_ASSIGN_OR_RETURN(const std::string id, base::CanonicalUuid("grant_id", grant_id));
  return MapConstraintViolation(
      pool_.TransactValue<GrantRecord>([&](pqxx::work& tx) -> absl::StatusOr<GrantRecord> {
        const pqxx::result rows = tx.exec_params(
            kExtendGrantSql, id, absl::ToUnixMicros(new_not_after), expected_not_after.has_value(),
            absl::ToUnixMicros(expected_not_after.value_or(absl::UnixEpoch())));
        if (!rows.empty()) return RowToGrant(rows[0]);
        if (tx.exec_params(kGrantExistsSql, id).empty()) {
          return absl::NotFoundError("grant not found");
        }
        return absl::FailedPreconditionError("grant changed concurrently");
      }));
}

absl::StatusOr<bool> GrantStore::MarkNoticeSent(absl::string_view grant_id,
                                                absl::string_view notice) {
  CRM_ASSIGN_OR_RETURN(const std::string id, base::CanonicalUuid("grant_id", grant_id));
  if (notice.empty()) return absl::InvalidArgumentError("notice: required");
  const std::string value(notice);
  return pool_.TransactValue<bool>([&](pqxx::work& tx) -> absl::StatusOr<bool> {
    if (tx.exec_params(kMarkNoticeSql, id, value).affected_rows() == 1) return true;
    if (tx.exec_params(kGrantExistsSql, id).empty()) return absl::NotFoundError("grant not found");
    return false;
  });
}

absl::StatusOr<std::vector<std::string>> GrantStore::UsersWithActiveRole(absl::string_view role,
                                                                         absl::Time now) {
  const std::string name(role);
  return pool_.TransactValue<std::vector<std::string>>(
      [&](pqxx::work& tx) -> absl::StatusOr<std::vector<std::string>> {
        std::vector<std::string> out;
        for (const auto& row :
             tx.exec_params(kUsersWithActiveRoleSql, name, absl::ToUnixMicros(now))) {
          out.push_back(row[0].as<std::string>());
        }
        return out;
      },
      {.read_only = true});
}

absl::Status GrantStore::RevokeAllOfUser(absl::string_view user_id, absl::string_view revoked_by,
                                         absl::Time now) {
  CRM_ASSIGN_OR_RETURN(const std::string uid, base::CanonicalUuid("user_id", user_id));
  CRM_ASSIGN_OR_RETURN(const std::string actor, OptionalActor("revoked_by", revoked_by));
  return MapConstraintViolation(pool_.Transact([&](pqxx::work& tx) -> absl::Status {
    tx.exec_params(kRevokeAllOfUserSql, uid, actor, absl::ToUnixMicros(now));
    return absl::OkStatus();
  }));
}

// ---- Service accounts ----

absl::StatusOr<ServiceAccountBinding> GrantStore::BindServiceAccount(absl::string_view user_id,
                                                                     absl::string_view spiffe_id,
                                                                     absl::Time now) {
  CRM_ASSIGN_OR_RETURN(const std::string uid, base::CanonicalUuid("user_id", user_id));
  CRM_RETURN_IF_ERROR(ValidateSpiffeId(spiffe_id));
  const std::string spiffe(spiffe_id);
  return MapConstraintViolation(pool_.TransactValue<ServiceAccountBinding>(
      [&](pqxx::work& tx) -> absl::StatusOr<ServiceAccountBinding> {
        const pqxx::result user = tx.exec_params(kUserKindSql, uid);
        if (user.empty()) return absl::NotFoundError("user not found");
        if (user[0][0].as<std::string>() != "service_account") {
          return absl::FailedPreconditionError("user is not a service account");
        }
        if (!tx.exec_params(kSpiffeIdTakenSql, spiffe).empty()) {
          return absl::AlreadyExistsError("spiffe_id: already bound to a service account");
        }
        if (!tx.exec_params(kUserBoundSql, uid).empty()) {
          return absl::AlreadyExistsError("user_id: service account already bound");
        }
        // Concurrent binds still meet the unique indexes (mapped above).
        const pqxx::result rows =
            tx.exec_params(kInsertBindingSql, uid, spiffe, absl::ToUnixMicros(now));
        return RowToBinding(rows[0]);
      }));
}

absl::StatusOr<ServiceAccountBinding> GrantStore::FindServiceAccountBySpiffeId(
    absl::string_view spiffe_id) {
  const std::string spiffe(spiffe_id);
  return pool_.TransactValue<ServiceAccountBinding>(
      [&](pqxx::work& tx) -> absl::StatusOr<ServiceAccountBinding> {
        const pqxx::result rows = tx.exec_params(kBindingBySpiffeIdSql, spiffe);
        if (rows.empty()) return absl::NotFoundError("service account not found");
        return RowToBinding(rows[0]);
      },
      {.read_only = true});
}

absl::StatusOr<ServiceAccountBinding> GrantStore::RotateServiceTokenSession(
    absl::string_view user_id) {
  CRM_ASSIGN_OR_RETURN(const std::string uid, base::CanonicalUuid("user_id", user_id));
  return pool_.TransactValue<ServiceAccountBinding>(
      [&](pqxx::work& tx) -> absl::StatusOr<ServiceAccountBinding> {
        const pqxx::result rows = tx.exec_params(kRotateTokenSessionSql, uid);
        if (rows.empty()) return absl::NotFoundError("service account not found");
        return RowToBinding(rows[0]);
      });
}

absl::StatusOr<ServiceAccountBinding> GrantStore::FindServiceAccountByUser(
    absl::string_view user_id) {
  CRM_ASSIGN_OR_RETURN(const std::string uid, base::CanonicalUuid("user_id", user_id));
  return pool_.TransactValue<ServiceAccountBinding>(
      [&](pqxx::work& tx) -> absl::StatusOr<ServiceAccountBinding> {
        const pqxx::result rows = tx.exec_params(kBindingByUserSql, uid);
        if (rows.empty()) return absl::NotFoundError("service account not found");
        return RowToBinding(rows[0]);
      },
      {.read_only = true});
}

}  // namespace crm::identity
