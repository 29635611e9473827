// A UserStore kept in process memory, for service tests that need no
// PostgreSQL. It passes the same contract suite as PgUserStore
// (user_store_test.cc), so it behaves alike: same validation, same page
// tokens, same statuses. Nothing is persisted.
//
// Thread-safe: one absl::Mutex guards all state.
#pragma once

#include <map>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "libs/base/clock.h"
#include "services/identity/user_store.h"

namespace crm::identity {

class InMemoryUserStore final : public UserStore {
 public:
  // `clock` stamps created_at/updated_at and must outlive the store.
  explicit InMemoryUserStore(base::Clock& clock) : clock_(clock) {}

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

 private:
  base::Clock& clock_;
  absl::Mutex mu_;
  std::map<std::string, UserRecord> users_ ABSL_GUARDED_BY(mu_);  // by id
  std::map<std::string, TeamRecord> teams_ ABSL_GUARDED_BY(mu_);  // by id
  // (team_id, user_id) pairs.
  std::set<std::pair<std::string, std::string>> members_ ABSL_GUARDED_BY(mu_);
};

}  // namespace crm::identity
