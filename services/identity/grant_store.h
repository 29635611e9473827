// GrantStore: identity's roles, time-bound grants and service-account
// bindings on PostgreSQL (tables roles, role_mfa_requirements, grants and
// service_accounts of services/identity/migrations). The rules about grants
// (which count when, who may grant what, extension and revocation) are pure
// functions in grants.h; this store persists what they decide.
//
// Grant justifications may name people, so they arrive and leave sealed
// (`justification_ciphertext`); the service layer seals and opens them.
// Status messages never contain values.
//
// Ids are UUIDs (any case; returned lower-case): a malformed one is
// INVALID_ARGUMENT naming the field. The actor fields (created_by, set_by,
// granted_by, revoked_by) may be empty for an action of the system itself
// (stored as NULL); an actor id that names no user is NOT_FOUND naming the
// field. Times are explicit parameters, stored truncated to microseconds.
//
// Thread-safe: the pool is; the store holds no other state.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "libs/pg/pool.h"
#include "services/identity/grants.h"
#include "services/identity/permissions.h"

namespace crm::identity {

inline constexpr int kDefaultGrantPageSize = 50;
inline constexpr int kMaxGrantPageSize = 500;

// A grant row. `grant.justification` is unused here (empty); the sealed
// text travels in justification_ciphertext.
struct GrantRecord {
  Grant grant;
  std::string justification_ciphertext;
  absl::Time created_at;
  std::string revoked_by;  // empty unless revoked by a user
  // The expiry notices already queued for this grant, e.g. "7d@<not_after
  // unix micros>" (see MarkNoticeSent); for grants.h NoticeDue.
  std::vector<std::string> notices_sent;
};

struct GrantPage {
  std::vector<GrantRecord> grants;
  std::string next_page_token;  // empty on the last page
};

struct ServiceAccountBinding {
  std::string user_id;
  std::string spiffe_id;
  absl::Time created_at;
  // The `sid` of every token issued to the account (migration 0003).
  std::string token_session_id;
};

class GrantStore {
 public:
  explicit GrantStore(pg::Pool& pool) : pool_(pool) {}

  // ---- Roles ----

  // Built-in roles (permissions.h BuiltinRoles) followed by custom roles by
  // name, each with require_mfa from role_mfa_requirements (built-in) or the
  // roles row (custom).
  absl::StatusOr<std::vector<Role>> ListRoles();

  // Stores a custom role (MakeCustomRole checked it). ALREADY_EXISTS naming
  // name when taken, also by a built-in role; INVALID_ARGUMENT naming name
  // for a malformed name, permissions for one not in the catalogue, or
  // created_by.
  absl::Status CreateRole(const Role& role, absl::string_view created_by, absl::Time now);

  // Sets or clears "MFA required" for any role (built-in or custom).
  // NOT_FOUND naming role for an unknown role; INVALID_ARGUMENT naming set_by.
  absl::Status SetRoleRequiresMfa(absl::string_view role, bool required, absl::string_view set_by,
                                  absl::Time now);

  // ---- Grants ----

  // Stores a new grant (fresh id minted by the store, created_at = now) and
  // returns it. INVALID_ARGUMENT naming user_id / granted_by (non-UUID) or
  // not_after (not after not_before); NOT_FOUND naming user for an unknown
  // user (granted_by for an unknown granting user). grant.id, justification
  // and revoked_at are ignored.
  absl::StatusOr<GrantRecord> CreateGrant(const Grant& grant,
                                          absl::string_view justification_ciphertext,
                                          absl::Time now);

  // INVALID_ARGUMENT naming grant_id for a non-UUID; NOT_FOUND.
  absl::StatusOr<GrantRecord> GetGrant(absl::string_view grant_id);

  // Every grant of a user (any state), by created_at then id: the input of
  // EffectivePermissions. INVALID_ARGUMENT naming user_id.
  absl::StatusOr<std::vector<Grant>> GrantsOfUser(absl::string_view user_id);

  // One page of grants, newest first (created_at DESC, id DESC), of one user
  // or of everyone (user_id empty). Unless include_inactive, only grants
  // that are neither revoked nor ended at `now` (pending ones are listed).
  // page_size 0 means kDefaultGrantPageSize, larger is capped at
  // kMaxGrantPageSize. Page tokens as UserStore's: opaque, bound to user_id
  // and include_inactive. INVALID_ARGUMENT naming user_id, page_size
  // (negative) or page_token (malformed or from another query).
  absl::StatusOr<GrantPage> ListGrants(absl::string_view user_id, bool include_inactive,
                                       absl::Time now, int page_size, absl::string_view page_token);

  // Grants not revoked with now < not_after <= now + within, soonest first
  // (not_after, id). For ListExpiringGrants and the notice sweep. Paged as
  // ListGrants; tokens are bound to `within`. INVALID_ARGUMENT naming
  // page_size or page_token.
  absl::StatusOr<GrantPage> ListExpiring(absl::Time now, absl::Duration within, int page_size,
                                         absl::string_view page_token);

  // Sets revoked_at/revoked_by if the grant is not revoked yet; returns the
  // grant as stored afterwards (a second revocation keeps the first one's
  // revoked_at and revoked_by). NOT_FOUND; INVALID_ARGUMENT naming grant_id
  // or revoked_by.
  absl::StatusOr<GrantRecord> RevokeGrant(absl::string_view grant_id, absl::string_view revoked_by,
                                          absl::Time now);

  // Sets not_after if the grant is still not revoked and its not_after still
  // equals `expected_not_after` (optimistic check against a concurrent
  // change; nullopt: the grant has none); FAILED_PRECONDITION "grant changed
  // concurrently" otherwise. Returns the grant as stored afterwards.
  // NOT_FOUND; INVALID_ARGUMENT naming grant_id, or not_after when
  // new_not_after is not after not_before.
  absl::StatusOr<GrantRecord> ExtendGrant(absl::string_view grant_id,
                                          std::optional<absl::Time> expected_not_after,
                                          absl::Time new_not_after);

  // Appends `notice` to notices_sent unless present; returns whether it was
  // added (so one sweeper of several replicas sends it: of concurrent calls
  // with one notice exactly one returns true). NOT_FOUND; INVALID_ARGUMENT
  // naming grant_id or notice (empty).
  absl::StatusOr<bool> MarkNoticeSent(absl::string_view grant_id, absl::string_view notice);

  // Ids of users with a grant of `role` that counts at `now` (grants.h
  // IsActiveAt), each once, sorted.
  absl::StatusOr<std::vector<std::string>> UsersWithActiveRole(absl::string_view role,
                                                               absl::Time now);

  // Revokes every not-yet-revoked grant of a user (DeleteUser keeps none);
  // revoked grants keep their first revocation. OK for a user without
  // grants. INVALID_ARGUMENT naming user_id or revoked_by.
  absl::Status RevokeAllOfUser(absl::string_view user_id, absl::string_view revoked_by,
                               absl::Time now);

  // ---- Service accounts ----

  // Binds an existing user of kind service_account to a SPIFFE id.
  // INVALID_ARGUMENT naming spiffe_id unless it is spiffe://crm.local/<name>
  // with <name> of [a-z0-9._-]{1,64}; ALREADY_EXISTS naming spiffe_id when
  // taken, ALREADY_EXISTS naming user_id when the user is already bound;
  // NOT_FOUND naming user for an unknown user; FAILED_PRECONDITION for a user
  // of kind person; INVALID_ARGUMENT naming user_id.
  absl::StatusOr<ServiceAccountBinding> BindServiceAccount(absl::string_view user_id,
                                                           absl::string_view spiffe_id,
                                                           absl::Time now);

  // The binding of a SPIFFE id; NOT_FOUND if none.
  absl::StatusOr<ServiceAccountBinding> FindServiceAccountBySpiffeId(absl::string_view spiffe_id);

  // Gives the account a fresh token_session_id and returns the binding with
  // it (revoke the old id). NOT_FOUND if it is not a bound service account.
  absl::StatusOr<ServiceAccountBinding> RotateServiceTokenSession(absl::string_view user_id);

  // The binding of a user; NOT_FOUND if it is not a bound service account.
  // INVALID_ARGUMENT naming user_id.
  absl::StatusOr<ServiceAccountBinding> FindServiceAccountByUser(absl::string_view user_id);

  // The SQL texts of GrantsOfUser ($1: user id) and ListExpiring's first
  // page ($1 now, $2 window end (micros), $3 '', $4 '', $5 limit), for the
  // EXPLAIN tests of their indexes.
  static const char* GrantsOfUserSql();
  static const char* ListExpiringSql();

 private:
  pg::Pool& pool_;
};

}  // namespace crm::identity
