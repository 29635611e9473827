#include "services/identity/pg_user_store.h"

#include <pqxx/binarystring>
#include <pqxx/result>
#include <pqxx/transaction>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "libs/base/status_macros.h"
#include "libs/base/uuid.h"

namespace crm::identity {
namespace {

// Times cross the wire as whole microseconds since the Unix epoch, which is
// exact in both directions (no float rounding).
#define CRM_TS_PARAM(n) "('epoch'::timestamptz + (" n ")::bigint * interval '1 microsecond')"
#define CRM_TS_COL(c) "(extract(epoch from " c ") * 1000000)::bigint"

// clang-format off
// Columns read by RowToUser, in this order.
#define CRM_USER_COLUMNS                                                          \
  "u.id::text, u.kind, u.username_index, u.username_ciphertext, "                 \
  "u.display_name_ciphertext, u.email_index, u.email_ciphertext, u.status, "      \
  "u.password_hash, " CRM_TS_COL("u.password_changed_at") ", "                    \
  "u.must_change_password, "                                                      \
  CRM_TS_COL("u.created_at") ", " CRM_TS_COL("u.updated_at")

constexpr const char* kUsernameTakenSql = "SELECT 1 FROM users WHERE username_index = $1";
constexpr const char* kEmailTakenSql = "SELECT 1 FROM users WHERE email_index = $1";

// $1 id, $2 kind, $3 username_index, $4 username_ct, $5 display_name_ct,
// $6 email_index ('' = NULL), $7 email_ct ('' = NULL), $8 password_hash
// ('' = NULL), $9 must_change_password, $10 now (micros).
constexpr const char* kInsertUserSql =
    "INSERT INTO users AS u (id, kind, username_index, username_ciphertext, "
    "    display_name_ciphertext, email_index, email_ciphertext, status, password_hash, "
    "    password_changed_at, must_change_password, created_at, updated_at) "
    "SELECT $1::uuid, $2, $3, $4, $5, NULLIF($6::bytea, ''::bytea), NULLIF($7::bytea, ''::bytea), "
    "    'active', NULLIF($8, ''), CASE WHEN $8 = '' THEN NULL ELSE n.t END, $9, n.t, n.t "
    "FROM (SELECT " CRM_TS_PARAM("$10") " AS t) n "
    "RETURNING " CRM_USER_COLUMNS;

constexpr const char* kSelectUserSql = "SELECT " CRM_USER_COLUMNS " FROM users u WHERE u.id = $1";

constexpr const char* kSelectUserByUsernameIndexSql =
    "SELECT " CRM_USER_COLUMNS " FROM users u WHERE u.username_index = $1";

// $1 status ('' = any), $2 kind ('' = any), $3 team id ('' = any),
// $4 cursor created_at micros ('' = first page), $5 cursor id, $6 limit.
constexpr const char* kListUsersSql =
    "SELECT " CRM_USER_COLUMNS
    " FROM users u "
    "WHERE ($1 = '' OR u.status = $1) "
    "  AND ($2 = '' OR u.kind = $2) "
    "  AND ($3 = '' OR EXISTS (SELECT 1 FROM team_members m "
    "                          WHERE m.team_id = NULLIF($3, '')::uuid AND m.user_id = u.id)) "
    "  AND ($4 = '' OR (u.created_at, u.id) > (" CRM_TS_PARAM("NULLIF($4, '')") ", "
    "                                          NULLIF($5, '')::uuid)) "
    "ORDER BY u.created_at, u.id "
    "LIMIT $6";

constexpr const char* kUpdateStatusSql =
    "UPDATE users u SET status = $2, updated_at = " CRM_TS_PARAM("$3") " "
    "WHERE u.id = $1 "
    "RETURNING " CRM_USER_COLUMNS;

constexpr const char* kDeleteUserSql = "DELETE FROM users WHERE id = $1";

#define CRM_TEAM_COLUMNS "t.id::text, t.name, t.description, " CRM_TS_COL("t.created_at")

constexpr const char* kTeamNameTakenSql = "SELECT 1 FROM teams WHERE lower(name) = lower($1)";

constexpr const char* kInsertTeamSql =
    "INSERT INTO teams AS t (id, name, description, created_at) "
    "VALUES ($1::uuid, $2, $3, " CRM_TS_PARAM("$4") ") RETURNING " CRM_TEAM_COLUMNS;

constexpr const char* kSelectTeamSql = "SELECT " CRM_TEAM_COLUMNS " FROM teams t WHERE t.id = $1";

// $1 member id ('' = every team). COLLATE "C" orders like the in-memory store.
constexpr const char* kListTeamsSql =
    "SELECT " CRM_TEAM_COLUMNS
    " FROM teams t "
    "WHERE $1 = '' OR EXISTS (SELECT 1 FROM team_members m "
    "                         WHERE m.team_id = t.id AND m.user_id = NULLIF($1, '')::uuid) "
    "ORDER BY lower(t.name) COLLATE \"C\", t.id";

constexpr const char* kDeleteTeamSql = "DELETE FROM teams WHERE id = $1";
constexpr const char* kTeamExistsSql = "SELECT 1 FROM teams WHERE id = $1";
constexpr const char* kUserExistsSql = "SELECT 1 FROM users WHERE id = $1";

constexpr const char* kAddMemberSql =
    "INSERT INTO team_members (team_id, user_id, added_at) "
    "VALUES ($1, $2, " CRM_TS_PARAM("$3") ") ON CONFLICT DO NOTHING";

constexpr const char* kRemoveMemberSql =
    "DELETE FROM team_members WHERE team_id = $1 AND user_id = $2";

constexpr const char* kTeamIdsOfUserSql =
    "SELECT team_id::text FROM team_members WHERE user_id = $1 ORDER BY team_id";

constexpr const char* kTeamMembersSql =
    "SELECT user_id::text FROM team_members WHERE team_id = $1 ORDER BY user_id";

// clang-format on

std::optional<std::string> OptionalBytes(const pqxx::field& f) {
  if (f.is_null()) return std::nullopt;
  return pqxx::binarystring(f).str();
}

absl::StatusOr<UserRecord> RowToUser(const pqxx::row& row) {
  UserRecord rec;
  rec.id = row[0].as<std::string>();
  const std::string kind = row[1].as<std::string>();
  rec.kind = kind == "person" ? UserKind::kPerson : UserKind::kServiceAccount;
  rec.username_index = pqxx::binarystring(row[2]).str();
  rec.username_ciphertext = pqxx::binarystring(row[3]).str();
  rec.display_name_ciphertext = pqxx::binarystring(row[4]).str();
  rec.email_index = OptionalBytes(row[5]);
  rec.email_ciphertext = OptionalBytes(row[6]);
  const std::string status = row[7].as<std::string>();
  if (status == "active") {
    rec.status = UserStatus::kActive;
  } else if (status == "disabled") {
    rec.status = UserStatus::kDisabled;
  } else {
    return absl::InternalError("users.status holds an unknown value");
  }
  if (!row[8].is_null()) rec.password_hash = row[8].as<std::string>();
  if (!row[9].is_null()) rec.password_changed_at = absl::FromUnixMicros(row[9].as<int64_t>());
  rec.must_change_password = row[10].as<bool>();
  rec.created_at = absl::FromUnixMicros(row[11].as<int64_t>());
  rec.updated_at = absl::FromUnixMicros(row[12].as<int64_t>());
  return rec;
}

TeamRecord RowToTeam(const pqxx::row& row) {
  return TeamRecord{.id = row[0].as<std::string>(),
                    .name = row[1].as<std::string>(),
                    .description = row[2].as<std::string>(),
                    .created_at = absl::FromUnixMicros(row[3].as<int64_t>())};
}

std::vector<std::string> FirstColumn(const pqxx::result& rows) {
  std::vector<std::string> out;
  out.reserve(rows.size());
  for (const auto& row : rows) out.push_back(row[0].as<std::string>());
  return out;
}

#undef CRM_TEAM_COLUMNS
#undef CRM_USER_COLUMNS
#undef CRM_TS_COL
#undef CRM_TS_PARAM

}  // namespace

const char* PgUserStore::FindByUsernameIndexSql() { return kSelectUserByUsernameIndexSql; }

absl::StatusOr<UserRecord> PgUserStore::CreateUser(const NewUser& user) {
  CRM_RETURN_IF_ERROR(ValidateNewUser(user));
  const std::string id = base::NewUuid();
  const int64_t now = absl::ToUnixMicros(clock_.Now());
  return pool_.TransactValue<UserRecord>([&](pqxx::work& tx) -> absl::StatusOr<UserRecord> {
    const pqxx::binarystring username_index(user.username_index);
    if (!tx.exec_params(kUsernameTakenSql, username_index).empty()) {
      return absl::AlreadyExistsError("username already exists");
    }
    const pqxx::binarystring email_index(user.email_index.value_or(""));
    if (user.email_index.has_value() && !tx.exec_params(kEmailTakenSql, email_index).empty()) {
      return absl::AlreadyExistsError("email already exists");
    }
    // A concurrent insert of the same index still fails on the unique index
    // (ALREADY_EXISTS naming users_username_index_key).
    const pqxx::result rows =
        tx.exec_params(kInsertUserSql, id, std::string(UserKindName(user.kind)), username_index,
                       pqxx::binarystring(user.username_ciphertext),
                       pqxx::binarystring(user.display_name_ciphertext), email_index,
                       pqxx::binarystring(user.email_ciphertext.value_or("")),
                       user.password_hash.value_or(""), user.must_change_password, now);
    return RowToUser(rows[0]);
  });
}

absl::StatusOr<UserRecord> PgUserStore::GetUser(absl::string_view user_id) {
  CRM_ASSIGN_OR_RETURN(const std::string id, base::CanonicalUuid("user_id", user_id));
  return pool_.TransactValue<UserRecord>(
      [&](pqxx::work& tx) -> absl::StatusOr<UserRecord> {
        const pqxx::result rows = tx.exec_params(kSelectUserSql, id);
        if (rows.empty()) return absl::NotFoundError("user not found");
        return RowToUser(rows[0]);
      },
      {.read_only = true});
}

absl::StatusOr<UserRecord> PgUserStore::FindUserByUsernameIndex(absl::string_view username_index) {
  const pqxx::binarystring index(username_index.data(), username_index.size());
  return pool_.TransactValue<UserRecord>(
      [&](pqxx::work& tx) -> absl::StatusOr<UserRecord> {
        const pqxx::result rows = tx.exec_params(kSelectUserByUsernameIndexSql, index);
        if (rows.empty()) return absl::NotFoundError("user not found");
        return RowToUser(rows[0]);
      },
      {.read_only = true});
}

absl::StatusOr<UserPage> PgUserStore::ListUsers(const UserFilter& filter, int page_size,
                                                absl::string_view page_token) {
  CRM_ASSIGN_OR_RETURN(const int limit, EffectiveUserPageSize(page_size));
  std::string team_id;
  if (filter.team_id.has_value()) {
    CRM_ASSIGN_OR_RETURN(team_id, base::CanonicalUuid("team_id", *filter.team_id));
  }
  std::string after_micros;
  std::string after_id;
  if (!page_token.empty()) {
    CRM_ASSIGN_OR_RETURN(const UserCursor cursor, DecodeUserPageToken(page_token, filter));
    after_micros = absl::StrCat(cursor.created_at_micros);
    after_id = cursor.id;
  }
  const std::string status = filter.status ? std::string(UserStatusName(*filter.status)) : "";
  const std::string kind = filter.kind ? std::string(UserKindName(*filter.kind)) : "";
  return pool_.TransactValue<UserPage>(
      [&](pqxx::work& tx) -> absl::StatusOr<UserPage> {
        // One extra row tells whether a further page exists.
        const pqxx::result rows =
            tx.exec_params(kListUsersSql, status, kind, team_id, after_micros, after_id, limit + 1);
        UserPage page;
        for (const auto& row : rows) {
          if (static_cast<int>(page.users.size()) == limit) {
            const UserRecord& last = page.users.back();
            page.next_page_token =
                EncodeUserPageToken({absl::ToUnixMicros(last.created_at), last.id}, filter);
            break;
          }
          CRM_ASSIGN_OR_RETURN(UserRecord rec, RowToUser(row));
          page.users.push_back(std::move(rec));
        }
        return page;
      },
      {.read_only = true});
}

absl::StatusOr<UserRecord> PgUserStore::UpdateUserStatus(absl::string_view user_id,
                                                         UserStatus status) {
  CRM_ASSIGN_OR_RETURN(const std::string id, base::CanonicalUuid("user_id", user_id));
  const int64_t now = absl::ToUnixMicros(clock_.Now());
  return pool_.TransactValue<UserRecord>([&](pqxx::work& tx) -> absl::StatusOr<UserRecord> {
    const pqxx::result rows =
        tx.exec_params(kUpdateStatusSql, id, std::string(UserStatusName(status)), now);
    if (rows.empty()) return absl::NotFoundError("user not found");
    return RowToUser(rows[0]);
  });
}

absl::Status PgUserStore::DeleteUser(absl::string_view user_id) {
  CRM_ASSIGN_OR_RETURN(const std::string id, base::CanonicalUuid("user_id", user_id));
  return pool_.Transact([&](pqxx::work& tx) -> absl::Status {
    // team_members rows go with it (ON DELETE CASCADE).
    if (tx.exec_params(kDeleteUserSql, id).affected_rows() == 0) {
      return absl::NotFoundError("user not found");
    }
    return absl::OkStatus();
  });
}

absl::StatusOr<TeamRecord> PgUserStore::CreateTeam(const NewTeam& team) {
  CRM_RETURN_IF_ERROR(ValidateNewTeam(team));
  const std::string id = base::NewUuid();
  const int64_t now = absl::ToUnixMicros(clock_.Now());
  return pool_.TransactValue<TeamRecord>([&](pqxx::work& tx) -> absl::StatusOr<TeamRecord> {
    if (!tx.exec_params(kTeamNameTakenSql, team.name).empty()) {
      return absl::AlreadyExistsError("team name already exists");
    }
    const pqxx::result rows = tx.exec_params(kInsertTeamSql, id, team.name, team.description, now);
    return RowToTeam(rows[0]);
  });
}

absl::StatusOr<TeamRecord> PgUserStore::GetTeam(absl::string_view team_id) {
  CRM_ASSIGN_OR_RETURN(const std::string id, base::CanonicalUuid("team_id", team_id));
  return pool_.TransactValue<TeamRecord>(
      [&](pqxx::work& tx) -> absl::StatusOr<TeamRecord> {
        const pqxx::result rows = tx.exec_params(kSelectTeamSql, id);
        if (rows.empty()) return absl::NotFoundError("team not found");
        return RowToTeam(rows[0]);
      },
      {.read_only = true});
}

absl::StatusOr<std::vector<TeamRecord>> PgUserStore::ListTeams(
    std::optional<std::string> member_id) {
  std::string member;
  if (member_id.has_value()) {
    CRM_ASSIGN_OR_RETURN(member, base::CanonicalUuid("user_id", *member_id));
  }
  return pool_.TransactValue<std::vector<TeamRecord>>(
      [&](pqxx::work& tx) -> absl::StatusOr<std::vector<TeamRecord>> {
        std::vector<TeamRecord> out;
        for (const auto& row : tx.exec_params(kListTeamsSql, member)) {
          out.push_back(RowToTeam(row));
        }
        return out;
      },
      {.read_only = true});
}

absl::Status PgUserStore::DeleteTeam(absl::string_view team_id) {
  CRM_ASSIGN_OR_RETURN(const std::string id, base::CanonicalUuid("team_id", team_id));
  return pool_.Transact([&](pqxx::work& tx) -> absl::Status {
    if (tx.exec_params(kDeleteTeamSql, id).affected_rows() == 0) {
      return absl::NotFoundError("team not found");
    }
    return absl::OkStatus();
  });
}

absl::Status PgUserStore::AddTeamMember(absl::string_view team_id, absl::string_view user_id) {
  CRM_ASSIGN_OR_RETURN(const std::string tid, base::CanonicalUuid("team_id", team_id));
  CRM_ASSIGN_OR_RETURN(const std::string uid, base::CanonicalUuid("user_id", user_id));
  const int64_t now = absl::ToUnixMicros(clock_.Now());
  return pool_.Transact([&](pqxx::work& tx) -> absl::Status {
    if (tx.exec_params(kTeamExistsSql, tid).empty()) return absl::NotFoundError("team not found");
    if (tx.exec_params(kUserExistsSql, uid).empty()) return absl::NotFoundError("user not found");
    tx.exec_params(kAddMemberSql, tid, uid, now);
    return absl::OkStatus();
  });
}

absl::Status PgUserStore::RemoveTeamMember(absl::string_view team_id, absl::string_view user_id) {
  CRM_ASSIGN_OR_RETURN(const std::string tid, base::CanonicalUuid("team_id", team_id));
  CRM_ASSIGN_OR_RETURN(const std::string uid, base::CanonicalUuid("user_id", user_id));
  return pool_.Transact([&](pqxx::work& tx) -> absl::Status {
    if (tx.exec_params(kTeamExistsSql, tid).empty()) return absl::NotFoundError("team not found");
    tx.exec_params(kRemoveMemberSql, tid, uid);
    return absl::OkStatus();
  });
}

absl::StatusOr<std::vector<std::string>> PgUserStore::ListTeamIdsOfUser(absl::string_view user_id) {
  CRM_ASSIGN_OR_RETURN(const std::string uid, base::CanonicalUuid("user_id", user_id));
  return pool_.TransactValue<std::vector<std::string>>(
      [&](pqxx::work& tx) -> absl::StatusOr<std::vector<std::string>> {
        if (tx.exec_params(kUserExistsSql, uid).empty()) {
          return absl::NotFoundError("user not found");
        }
        return FirstColumn(tx.exec_params(kTeamIdsOfUserSql, uid));
      },
      {.read_only = true});
}

absl::StatusOr<std::vector<std::string>> PgUserStore::ListTeamMembers(absl::string_view team_id) {
  CRM_ASSIGN_OR_RETURN(const std::string tid, base::CanonicalUuid("team_id", team_id));
  return pool_.TransactValue<std::vector<std::string>>(
      [&](pqxx::work& tx) -> absl::StatusOr<std::vector<std::string>> {
        if (tx.exec_params(kTeamExistsSql, tid).empty()) {
          return absl::NotFoundError("team not found");
        }
        return FirstColumn(tx.exec_params(kTeamMembersSql, tid));
      },
      {.read_only = true});
}

}  // namespace crm::identity
