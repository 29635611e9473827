#include "services/identity/in_memory_user_store.h"

#include <algorithm>
#include <tuple>

#include "absl/strings/ascii.h"
#include "libs/base/status_macros.h"
#include "libs/base/uuid.h"

namespace crm::identity {

absl::StatusOr<UserRecord> InMemoryUserStore::CreateUser(const NewUser& user) {
  CRM_RETURN_IF_ERROR(ValidateNewUser(user));
  absl::MutexLock lock(&mu_);
  for (const auto& [id, existing] : users_) {
    if (existing.username_index == user.username_index) {
      return absl::AlreadyExistsError("username already exists");
    }
    if (user.email_index.has_value() && existing.email_index == user.email_index) {
      return absl::AlreadyExistsError("email already exists");
    }
  }
  const absl::Time now = TruncateToMicros(clock_.Now());
  UserRecord rec;
  rec.id = base::NewUuid();
  rec.kind = user.kind;
  rec.username_index = user.username_index;
  rec.username_ciphertext = user.username_ciphertext;
  rec.display_name_ciphertext = user.display_name_ciphertext;
  rec.email_index = user.email_index;
  rec.email_ciphertext = user.email_ciphertext;
  rec.status = UserStatus::kActive;
  rec.password_hash = user.password_hash;
  if (user.password_hash.has_value()) rec.password_changed_at = now;
  rec.must_change_password = user.must_change_password;
  rec.created_at = now;
  rec.updated_at = now;
  users_[rec.id] = rec;
  return rec;
}

absl::StatusOr<UserRecord> InMemoryUserStore::GetUser(absl::string_view user_id) {
  CRM_ASSIGN_OR_RETURN(std::string id, base::CanonicalUuid("user_id", user_id));
  absl::MutexLock lock(&mu_);
  auto it = users_.find(id);
  if (it == users_.end()) return absl::NotFoundError("user not found");
  return it->second;
}

absl::StatusOr<UserRecord> InMemoryUserStore::FindUserByUsernameIndex(
    absl::string_view username_index) {
  absl::MutexLock lock(&mu_);
  for (const auto& [id, rec] : users_) {
    if (rec.username_index == username_index) return rec;
  }
  return absl::NotFoundError("user not found");
}

absl::StatusOr<UserPage> InMemoryUserStore::ListUsers(const UserFilter& filter, int page_size,
                                                      absl::string_view page_token) {
  CRM_ASSIGN_OR_RETURN(const int limit, EffectiveUserPageSize(page_size));
  std::optional<std::string> team_id;
  if (filter.team_id.has_value()) {
    CRM_ASSIGN_OR_RETURN(team_id, base::CanonicalUuid("team_id", *filter.team_id));
  }
  std::optional<UserCursor> after;
  if (!page_token.empty()) {
    CRM_ASSIGN_OR_RETURN(after, DecodeUserPageToken(page_token, filter));
  }
  absl::MutexLock lock(&mu_);
  std::vector<const UserRecord*> matching;
  for (const auto& [id, rec] : users_) {
    if (filter.status.has_value() && rec.status != *filter.status) continue;
    if (filter.kind.has_value() && rec.kind != *filter.kind) continue;
    if (team_id.has_value() && !members_.contains({*team_id, rec.id})) continue;
    if (after.has_value() && std::make_tuple(absl::ToUnixMicros(rec.created_at), rec.id) <=
                                 std::make_tuple(after->created_at_micros, after->id)) {
      continue;
    }
    matching.push_back(&rec);
  }
  std::sort(matching.begin(), matching.end(), [](const UserRecord* a, const UserRecord* b) {
    return std::tie(a->created_at, a->id) < std::tie(b->created_at, b->id);
  });
  UserPage page;
  for (const UserRecord* rec : matching) {
    if (static_cast<int>(page.users.size()) == limit) {
      const UserRecord& last = page.users.back();
      page.next_page_token =
          EncodeUserPageToken({absl::ToUnixMicros(last.created_at), last.id}, filter);
      break;
    }
    page.users.push_back(*rec);
  }
  return page;
}

absl::StatusOr<UserRecord> InMemoryUserStore::UpdateUserStatus(absl::string_view user_id,
                                                               UserStatus status) {
  CRM_ASSIGN_OR_RETURN(std::string id, base::CanonicalUuid("user_id", user_id));
  absl::MutexLock lock(&mu_);
  auto it = users_.find(id);
  if (it == users_.end()) return absl::NotFoundError("user not found");
  it->second.status = status;
  it->second.updated_at = TruncateToMicros(clock_.Now());
  return it->second;
}

absl::Status InMemoryUserStore::DeleteUser(absl::string_view user_id) {
  CRM_ASSIGN_OR_RETURN(std::string id, base::CanonicalUuid("user_id", user_id));
  absl::MutexLock lock(&mu_);
  if (users_.erase(id) == 0) return absl::NotFoundError("user not found");
  std::erase_if(members_, [&](const auto& m) { return m.second == id; });
  return absl::OkStatus();
}

absl::StatusOr<TeamRecord> InMemoryUserStore::CreateTeam(const NewTeam& team) {
  CRM_RETURN_IF_ERROR(ValidateNewTeam(team));
  absl::MutexLock lock(&mu_);
  const std::string lower = absl::AsciiStrToLower(team.name);
  for (const auto& [id, existing] : teams_) {
    if (absl::AsciiStrToLower(existing.name) == lower) {
      return absl::AlreadyExistsError("team name already exists");
    }
  }
  TeamRecord rec{.id = base::NewUuid(),
                 .name = team.name,
                 .description = team.description,
                 .created_at = TruncateToMicros(clock_.Now())};
  teams_[rec.id] = rec;
  return rec;
}

absl::StatusOr<TeamRecord> InMemoryUserStore::GetTeam(absl::string_view team_id) {
  CRM_ASSIGN_OR_RETURN(std::string id, base::CanonicalUuid("team_id", team_id));
  absl::MutexLock lock(&mu_);
  auto it = teams_.find(id);
  if (it == teams_.end()) return absl::NotFoundError("team not found");
  return it->second;
}

absl::StatusOr<std::vector<TeamRecord>> InMemoryUserStore::ListTeams(
    std::optional<std::string> member_id) {
  if (member_id.has_value()) {
    CRM_ASSIGN_OR_RETURN(member_id, base::CanonicalUuid("user_id", *member_id));
  }
  absl::MutexLock lock(&mu_);
  std::vector<TeamRecord> out;
  for (const auto& [id, team] : teams_) {
    if (member_id.has_value() && !members_.contains({id, *member_id})) continue;
    out.push_back(team);
  }
  std::sort(out.begin(), out.end(), [](const TeamRecord& a, const TeamRecord& b) {
    return std::make_tuple(absl::AsciiStrToLower(a.name), a.id) <
           std::make_tuple(absl::AsciiStrToLower(b.name), b.id);
  });
  return out;
}

absl::Status InMemoryUserStore::DeleteTeam(absl::string_view team_id) {
  CRM_ASSIGN_OR_RETURN(std::string id, base::CanonicalUuid("team_id", team_id));
  absl::MutexLock lock(&mu_);
  if (teams_.erase(id) == 0) return absl::NotFoundError("team not found");
  std::erase_if(members_, [&](const auto& m) { return m.first == id; });
  return absl::OkStatus();
}

absl::Status InMemoryUserStore::AddTeamMember(absl::string_view team_id,
                                              absl::string_view user_id) {
  CRM_ASSIGN_OR_RETURN(std::string tid, base::CanonicalUuid("team_id", team_id));
  CRM_ASSIGN_OR_RETURN(std::string uid, base::CanonicalUuid("user_id", user_id));
  absl::MutexLock lock(&mu_);
  if (!teams_.contains(tid)) return absl::NotFoundError("team not found");
  if (!users_.contains(uid)) return absl::NotFoundError("user not found");
  members_.insert({tid, uid});
  return absl::OkStatus();
}

absl::Status InMemoryUserStore::RemoveTeamMember(absl::string_view team_id,
                                                 absl::string_view user_id) {
  CRM_ASSIGN_OR_RETURN(std::string tid, base::CanonicalUuid("team_id", team_id));
  CRM_ASSIGN_OR_RETURN(std::string uid, base::CanonicalUuid("user_id", user_id));
  absl::MutexLock lock(&mu_);
  if (!teams_.contains(tid)) return absl::NotFoundError("team not found");
  members_.erase({tid, uid});
  return absl::OkStatus();
}

absl::StatusOr<std::vector<std::string>> InMemoryUserStore::ListTeamIdsOfUser(
    absl::string_view user_id) {
  CRM_ASSIGN_OR_RETURN(std::string uid, base::CanonicalUuid("user_id", user_id));
  absl::MutexLock lock(&mu_);
  if (!users_.contains(uid)) return absl::NotFoundError("user not found");
  std::vector<std::string> out;
  for (const auto& [tid, member] : members_) {
    if (member == uid) out.push_back(tid);
  }
  std::sort(out.begin(), out.end());
  return out;
}

absl::StatusOr<std::vector<std::string>> InMemoryUserStore::ListTeamMembers(
    absl::string_view team_id) {
  CRM_ASSIGN_OR_RETURN(std::string tid, base::CanonicalUuid("team_id", team_id));
  absl::MutexLock lock(&mu_);
  if (!teams_.contains(tid)) return absl::NotFoundError("team not found");
  std::vector<std::string> out;
  for (const auto& [team, uid] : members_) {
    if (team == tid) out.push_back(uid);
  }
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace crm::identity
