// The storage interface for identity's users (operators and service accounts),
// teams and team membership. Two implementations share one contract test
// suite (user_store_test.cc): PgUserStore on PostgreSQL (pg_user_store.h) and
// InMemoryUserStore (in_memory_user_store.h) for service tests.
//
// The store never sees plaintext personal data. The service layer normalises
// a username or e-mail, computes its blind index (HMAC-SHA256 under identity's
// blind-index key) and seals the value (AES-256-GCM); the store keeps and
// compares those bytes only. Team names are organisational, not personal, and
// are stored in clear.
//
// Both implementations validate their input the same way (ValidateNewUser,
// ValidateTeamName, UUID ids) and encode page tokens with the codec below, so
// callers see the same statuses from either. Implementations are thread-safe.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "libs/base/uuid.h"
#include "libs/base/validate.h"

namespace crm::identity {

enum class UserKind { kPerson, kServiceAccount };
enum class UserStatus { kActive, kDisabled };

// Blind indexes are HMAC outputs: 16..64 bytes (32 for HMAC-SHA256).
inline constexpr size_t kMinBlindIndexBytes = 16;
inline constexpr size_t kMaxBlindIndexBytes = 64;
// ListUsers page sizes: 0 means the default; larger requests are capped.
inline constexpr int kDefaultUserPageSize = 50;
inline constexpr int kMaxUserPageSize = 500;

// What CreateUser needs. Byte fields hold ciphertext or blind indexes made by
// the service layer.
struct NewUser {
  UserKind kind = UserKind::kPerson;
  std::string username_index;           // blind index of the lower-cased username
  std::string username_ciphertext;      // sealed username
  std::string display_name_ciphertext;  // sealed display name
  // Required for persons, absent for service accounts.
  std::optional<std::string> email_index;
  std::optional<std::string> email_ciphertext;
  // PHC string of the Argon2id hash (parameters included); persons only.
  std::optional<std::string> password_hash;
  bool must_change_password = false;
};

// A stored user. Times are truncated to microseconds (PostgreSQL's precision).
struct UserRecord {
  std::string id;  // canonical lower-case UUID, minted by the store
  UserKind kind = UserKind::kPerson;
  std::string username_index;
  std::string username_ciphertext;
  std::string display_name_ciphertext;
  std::optional<std::string> email_index;
  std::optional<std::string> email_ciphertext;
  UserStatus status = UserStatus::kActive;
  std::optional<std::string> password_hash;
  // Set at creation when a password hash is given.
  std::optional<absl::Time> password_changed_at;
  bool must_change_password = false;
  absl::Time created_at;
  absl::Time updated_at;

  friend bool operator==(const UserRecord&, const UserRecord&) = default;
};

// ListUsers filters; unset fields do not filter.
struct UserFilter {
  std::optional<UserStatus> status;
  std::optional<UserKind> kind;
  std::optional<std::string> team_id;  // members of this team
};

struct UserPage {
  std::vector<UserRecord> users;  // by (created_at, id) ascending
  std::string next_page_token;    // empty on the last page
};

struct NewTeam {
  std::string name;  // 1..100 characters, unique case-insensitively
  std::string description;
};

struct TeamRecord {
  std::string id;
  std::string name;
  std::string description;
  absl::Time created_at;

  friend bool operator==(const TeamRecord&, const TeamRecord&) = default;
};

class UserStore {
 public:
  virtual ~UserStore() = default;

  // Stores a new user with status active, a fresh id and created_at =
  // updated_at = now (password_changed_at too when a hash is given).
  // Errors: INVALID_ARGUMENT naming the field (ValidateNewUser);
  // ALREADY_EXISTS when username_index (message names "username") or
  // email_index (names "email") is taken; database errors (UNAVAILABLE, ...).
  virtual absl::StatusOr<UserRecord> CreateUser(const NewUser& user) = 0;

  // The user with `user_id`. Errors: INVALID_ARGUMENT naming user_id for a
  // non-UUID; NOT_FOUND.
  virtual absl::StatusOr<UserRecord> GetUser(absl::string_view user_id) = 0;

  // The user whose username blind index is `username_index` (login).
  // Errors: NOT_FOUND (also for a malformed index: nothing can match it).
  virtual absl::StatusOr<UserRecord> FindUserByUsernameIndex(absl::string_view username_index) = 0;

  // One page of users matching `filter`, ordered by (created_at, id).
  // `page_size` 0 means kDefaultUserPageSize; larger than kMaxUserPageSize is
  // capped. `page_token` is empty for the first page, else a
  // next_page_token from an earlier call with the same filter.
  // Errors: INVALID_ARGUMENT naming page_size (negative), page_token
  // (malformed, or issued for another filter) or team_id (not a UUID).
  virtual absl::StatusOr<UserPage> ListUsers(const UserFilter& filter, int page_size,
                                             absl::string_view page_token) = 0;

  // Sets the status and updated_at = now; returns the updated user.
  // Idempotent (setting the current status still bumps updated_at).
  // Errors: INVALID_ARGUMENT naming user_id; NOT_FOUND.
  virtual absl::StatusOr<UserRecord> UpdateUserStatus(absl::string_view user_id,
                                                      UserStatus status) = 0;

  // Deletes the user and its team memberships.
  // Errors: INVALID_ARGUMENT naming user_id; NOT_FOUND if there is no such
  // user (the service makes DeleteUser idempotent on top of this).
  virtual absl::Status DeleteUser(absl::string_view user_id) = 0;

  // Stores a new team with a fresh id and created_at = now.
  // Errors: INVALID_ARGUMENT naming name (empty, over 100 characters, not
  // UTF-8) or description (over 1000 characters); ALREADY_EXISTS when the
  // name is taken, ignoring case.
  virtual absl::StatusOr<TeamRecord> CreateTeam(const NewTeam& team) = 0;

  // The team with `team_id`. Errors: INVALID_ARGUMENT naming team_id; NOT_FOUND.
  virtual absl::StatusOr<TeamRecord> GetTeam(absl::string_view team_id) = 0;

  // Every team, by lower-cased name then id; only the teams of `member_id`
  // when given. Errors: INVALID_ARGUMENT naming user_id for a non-UUID.
  virtual absl::StatusOr<std::vector<TeamRecord>> ListTeams(
      std::optional<std::string> member_id) = 0;

  // Deletes a team and its memberships. Errors: INVALID_ARGUMENT naming
  // team_id; NOT_FOUND.
  virtual absl::Status DeleteTeam(absl::string_view team_id) = 0;

  // Makes `user_id` a member of `team_id`; OK if it already is.
  // Errors: INVALID_ARGUMENT naming team_id or user_id; NOT_FOUND naming
  // "team" or "user" when either is missing.
  virtual absl::Status AddTeamMember(absl::string_view team_id, absl::string_view user_id) = 0;

  // Removes the membership; OK if there was none.
  // Errors: INVALID_ARGUMENT naming team_id or user_id; NOT_FOUND naming
  // "team" when the team is missing.
  virtual absl::Status RemoveTeamMember(absl::string_view team_id, absl::string_view user_id) = 0;

  // The ids of the teams `user_id` belongs to, sorted (for access tokens).
  // Errors: INVALID_ARGUMENT naming user_id; NOT_FOUND for an unknown user.
  virtual absl::StatusOr<std::vector<std::string>> ListTeamIdsOfUser(absl::string_view user_id) = 0;

  // The ids of the members of `team_id`, sorted.
  // Errors: INVALID_ARGUMENT naming team_id; NOT_FOUND for an unknown team.
  virtual absl::StatusOr<std::vector<std::string>> ListTeamMembers(absl::string_view team_id) = 0;
};

// ---- Helpers shared by both implementations --------------------------------

// Truncates to whole microseconds, PostgreSQL's timestamptz precision.
inline absl::Time TruncateToMicros(absl::Time t) {
  return absl::FromUnixMicros(absl::ToUnixMicros(t));
}

inline absl::string_view UserKindName(UserKind kind) {
  return kind == UserKind::kPerson ? "person" : "service_account";
}
inline absl::string_view UserStatusName(UserStatus status) {
  return status == UserStatus::kActive ? "active" : "disabled";
}

// OK if `user` can be stored; otherwise INVALID_ARGUMENT naming the field:
// username_index / email_index of 16..64 bytes; username_ciphertext and
// display_name_ciphertext non-empty; a person needs email_index,
// email_ciphertext and password_hash (non-empty); a service account has none
// of the three.
inline absl::Status ValidateNewUser(const NewUser& user) {
  auto index_ok = [](absl::string_view index) {
    return index.size() >= kMinBlindIndexBytes && index.size() <= kMaxBlindIndexBytes;
  };
  if (!index_ok(user.username_index)) {
    return absl::InvalidArgumentError("username_index: must be 16..64 bytes");
  }
  if (user.username_ciphertext.empty()) {
    return absl::InvalidArgumentError("username_ciphertext: required");
  }
  if (user.display_name_ciphertext.empty()) {
    return absl::InvalidArgumentError("display_name_ciphertext: required");
  }
  if (user.kind == UserKind::kPerson) {
    if (!user.email_index.has_value() || !index_ok(*user.email_index)) {
      return absl::InvalidArgumentError("email_index: a person needs one of 16..64 bytes");
    }
    if (!user.email_ciphertext.has_value() || user.email_ciphertext->empty()) {
      return absl::InvalidArgumentError("email_ciphertext: required for a person");
    }
    if (!user.password_hash.has_value() || user.password_hash->empty()) {
      return absl::InvalidArgumentError("password_hash: required for a person");
    }
  } else {
    if (user.email_index.has_value() || user.email_ciphertext.has_value()) {
      return absl::InvalidArgumentError("email_index: a service account has no e-mail");
    }
    if (user.password_hash.has_value()) {
      return absl::InvalidArgumentError("password_hash: a service account has no password");
    }
  }
  return absl::OkStatus();
}

// OK for a team name of 1..100 characters and a description of at most 1000;
// INVALID_ARGUMENT naming name or description otherwise.
inline absl::Status ValidateNewTeam(const NewTeam& team) {
  if (absl::Status s = base::ValidateText("name", team.name, 1, 100); !s.ok()) return s;
  return base::ValidateText("description", team.description, 0, 1000);
}

// The page size ListUsers uses for a requested `page_size`, or
// INVALID_ARGUMENT naming page_size when it is negative.
inline absl::StatusOr<int> EffectiveUserPageSize(int page_size) {
  if (page_size < 0) return absl::InvalidArgumentError("page_size: must not be negative");
  if (page_size == 0) return kDefaultUserPageSize;
  return page_size > kMaxUserPageSize ? kMaxUserPageSize : page_size;
}

// The position after which a ListUsers page starts.
struct UserCursor {
  int64_t created_at_micros = 0;
  std::string id;
};

// A fingerprint of `filter`, carried in page tokens so that a token is only
// accepted with the filter it was issued for.
inline std::string UserFilterKey(const UserFilter& filter) {
  return absl::StrCat(filter.status ? UserStatusName(*filter.status) : "", "/",
                      filter.kind ? UserKindName(*filter.kind) : "", "/",
                      filter.team_id.value_or(""));
}

// Opaque page token: web-safe base64 of "u1|<micros>|<id>|<filter key>".
inline std::string EncodeUserPageToken(const UserCursor& cursor, const UserFilter& filter) {
  return absl::WebSafeBase64Escape(
      absl::StrCat("u1|", cursor.created_at_micros, "|", cursor.id, "|", UserFilterKey(filter)));
}

// Decodes a token made by EncodeUserPageToken for the same filter.
// INVALID_ARGUMENT naming page_token otherwise.
inline absl::StatusOr<UserCursor> DecodeUserPageToken(absl::string_view token,
                                                      const UserFilter& filter) {
  const absl::Status bad =
      absl::InvalidArgumentError("page_token: malformed or not for this query");
  std::string raw;
  if (!absl::WebSafeBase64Unescape(token, &raw)) return bad;
  std::vector<absl::string_view> parts = absl::StrSplit(raw, absl::MaxSplits('|', 3));
  if (parts.size() != 4 || parts[0] != "u1") return bad;
  UserCursor cursor;
  if (!absl::SimpleAtoi(parts[1], &cursor.created_at_micros)) return bad;
  if (!base::IsUuid(parts[2])) return bad;
  cursor.id = absl::AsciiStrToLower(parts[2]);
  if (parts[3] != UserFilterKey(filter)) return bad;
  return cursor;
}

}  // namespace crm::identity
