// UserStore on PostgreSQL (tables users, teams and team_members of
// services/identity/migrations/0001_identity.sql), through libs/pg: every
// statement is a named constant in pg_user_store.cc with bound parameters, run
// inside pg::Pool::Transact, so libpqxx exceptions never leave libs/pg.
//
// Look-ups by username go through the unique index users_username_index_key
// on the blind index (user_store_test.cc checks the plan). ListUsers pages by
// (created_at, id) with index users_created_idx / users_status_created_idx.
//
// Thread-safe: the pool is; the store holds no other state.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "libs/base/clock.h"
#include "libs/pg/pool.h"
#include "services/identity/user_store.h"

namespace crm::identity {

class PgUserStore final : public UserStore {
 public:
  // `pool` (migrated to 0001_identity.sql or later) and `clock` (stamps
  // created_at/updated_at) must outlive the store.
  PgUserStore(pg::Pool& pool, base::Clock& clock) : pool_(pool), clock_(clock) {}

  absl::StatusOr<UserRecord> CreateUser(const NewUser& user) override;
  absl::StatusOr<UserRecord> GetUser(absl::string_view user_id) override;
  absl::StatusOr<UserRecord> FindUserByUsernameIndex(absl::string_view username_index) override;
  absl::StatusOr<UserPage> ListUsers(const UserFilter& filter, int page_size,
                                     absl::string_view page_token) override;
  absl::StatusOr<UserRecord> UpdateUserStatus(absl::string_view user_id,
                                              UserStatus status) override;
  absl::Status DeleteUser(absl::string_view user_id) override;
  absl::StatusOr<TeamRecord> CreateTeam(const NewTeam& team) override;
  absl::StatusOr<TeamRecord> GetTeam(absl::string_view team_id) override;
  absl::StatusOr<std::vector<TeamRecord>> ListTeams(std::optional<std::string> member_id) override;
  absl::Status DeleteTeam(absl::string_view team_id) override;
  absl::Status AddTeamMember(absl::string_view team_id, absl::string_view user_id) override;
  absl::Status RemoveTeamMember(absl::string_view team_id, absl::string_view user_id) override;
  absl::StatusOr<std::vector<std::string>> ListTeamIdsOfUser(absl::string_view user_id) override;
  absl::StatusOr<std::vector<std::string>> ListTeamMembers(absl::string_view team_id) override;

  // The SQL text FindUserByUsernameIndex runs ($1: the index, bytea), for
  // the EXPLAIN test.
  static const char* FindByUsernameIndexSql();

 private:
  pg::Pool& pool_;
  base::Clock& clock_;
};

}  // namespace crm::identity
