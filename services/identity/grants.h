// Time-bound grants of a role to a user, and the rules around them: which
// grants count at a given time, the permissions and token lifetime they yield,
// which grants end soon and which expiry notice is due, and who may grant,
// extend or revoke what. identity's token issuing, refresh, admin handlers and
// the expiry-notice sweeper call these; stores only persist the Grant rows.
//
// A grant counts at time `now` iff it is not revoked, now >= not_before (if
// set) and now < not_after (if set): it counts exactly at not_before and no
// longer exactly at not_after. Any revoked_at marks a grant revoked, even one
// in the future (from a replica whose clock is ahead): revocation fails closed.
//
// Privilege escalation: an actor may grant or extend a role only if it holds
// identity.admin and every permission of that role, and nobody may grant,
// extend or revoke grants of their own; another administrator must. The
// actor's permissions must be recomputed from its grants at the time of the
// change (EffectivePermissions), not taken from its access token.
//
// Pure functions over values: thread-safe.
#pragma once

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "services/identity/permissions.h"

namespace crm::identity {

// Lifetime of an access token when no grant ends sooner.
inline constexpr absl::Duration kDefaultAccessTokenTtl = absl::Minutes(15);
// Justification length in code points.
inline constexpr size_t kMaxJustificationLength = 500;
// Expiry notices go out this long before a grant ends.
inline constexpr absl::Duration kFirstNoticeBefore = absl::Hours(7 * 24);
inline constexpr absl::Duration kFinalNoticeBefore = absl::Hours(24);

struct Grant {
  std::string id;
  std::string user_id;
  std::string role;
  std::optional<absl::Time> not_before;  // unset: from creation
  std::optional<absl::Time> not_after;   // unset: until revoked
  std::string justification;
  std::string granted_by;  // user id of the granting admin
  std::optional<absl::Time> revoked_at;
};

enum class GrantState {
  kRevoked,  // revoked_at is set
  kPending,  // now < not_before
  kActive,   // counts now
  kEnded,    // now >= not_after
};

// The state of `grant` at `now` (revocation wins over the time window).
GrantState StateAt(const Grant& grant, absl::Time now);

// True if `grant` counts at `now` (StateAt == kActive).
bool IsActiveAt(const Grant& grant, absl::Time now);

struct EffectiveAccess {
  // Union of the permissions of every counting grant's role.
  PermissionSet permissions;
  // The earliest not_after among counting grants; unset if none of them ends.
  std::optional<absl::Time> earliest_end;
  // True if a counting grant's role has require_mfa.
  bool mfa_required = false;
  // The roles of counting grants, each once.
  std::set<std::string> roles;
};

// What `grants` (all of one user) give at `now`, with `roles` the role
// definitions. Grants that do not count, and grants of a role not found in
// `roles` (deleted since), contribute nothing, not even to earliest_end.
EffectiveAccess EffectivePermissions(absl::Span<const Grant> grants, absl::Span<const Role> roles,
                                     absl::Time now);

// When an access token issued at `issued_at` must expire: issued_at + ttl, or
// `earliest_end` if that is sooner, so a token never outlives a grant it
// carries. Refresh recomputes both.
absl::Time TokenExpiry(absl::Time issued_at, std::optional<absl::Time> earliest_end,
                       absl::Duration ttl = kDefaultAccessTokenTtl);

// Grants that are not revoked, have not ended at `now` and end at or before
// now + within (pending ones included), ordered by not_after then id: for the
// admins' ListExpiringGrants. A negative `within` gives none.
std::vector<Grant> ExpiringWithin(absl::Span<const Grant> grants, absl::Time now,
                                  absl::Duration within);

enum class ExpiryNotice {
  kSevenDays,  // sent once the grant has at most 7 days left
  kOneDay,     // sent once the grant has at most 1 day left
};

// The last notice sent for a grant, and the end it was about. A notice about
// an earlier end (the grant has been extended or cut since) does not count.
struct SentNotice {
  ExpiryNotice notice;
  absl::Time for_not_after;
};

// The notice (to the user and to the granting admin) due for `grant` at `now`,
// given the last one sent; nullopt if none. Only active grants with a
// not_after get notices. With at most 1 day left the one-day notice is due
// unless sent; otherwise with at most 7 days left the seven-day notice is due
// unless a notice was sent. A sweeper that records each notice it sends (as
// SentNotice with the grant's not_after) sends each one at most once; a grant
// first seen with under a day left gets only the one-day notice, and an
// extended grant starts over.
std::optional<ExpiryNotice> NoticeDue(const Grant& grant, absl::Time now,
                                      std::optional<SentNotice> last_sent);

// Whether an actor with `actor_permissions` (its effective permissions now)
// may grant `role` to `target_user_id`. OK, or PERMISSION_DENIED with the
// reason: the actor lacks identity.admin; the target is the actor; or the
// role carries a permission the actor lacks (named; permission names are not
// personal data).
absl::Status CanGrant(const PermissionSet& actor_permissions, absl::string_view actor_user_id,
                      absl::string_view target_user_id, const Role& role);

// Extending gives more time with a role, so it follows CanGrant's rules.
absl::Status CanExtend(const PermissionSet& actor_permissions, absl::string_view actor_user_id,
                       absl::string_view target_user_id, const Role& role);

// Whether the actor may revoke a grant of `target_user_id`. OK, or
// PERMISSION_DENIED if the actor lacks identity.admin or the target is the
// actor. Revoking only takes access away, so the actor need not hold the role.
absl::Status CanRevoke(const PermissionSet& actor_permissions, absl::string_view actor_user_id,
                       absl::string_view target_user_id);

// A request to grant a role, as an admin sends it.
struct GrantRequest {
  std::string user_id;
  std::string role;
  std::optional<absl::Time> not_before;
  std::optional<absl::Time> not_after;
  std::string justification;
};

// OK if the request is well-formed at `now`; otherwise INVALID_ARGUMENT naming
// the field: `user_id` empty or longer than 128 bytes; `role` malformed
// (ValidateRoleName); `not_after` not after `now` or not after not_before;
// `justification` missing, blank, longer than 500 characters or not valid
// UTF-8 text. Whether the role exists and the actor may grant it are checked
// by the caller (FindRole, CanGrant).
absl::Status ValidateGrantRequest(const GrantRequest& request, absl::Time now);

// The grant with not_after moved to `new_not_after`. FAILED_PRECONDITION if
// the grant is revoked, has ended, or has no not_after (nothing to extend);
// INVALID_ARGUMENT naming `not_after` if new_not_after is not later than the
// current end. Pending grants can be extended.
absl::StatusOr<Grant> Extend(const Grant& grant, absl::Time new_not_after, absl::Time now);

// The grant with revoked_at = now. FAILED_PRECONDITION if it is already
// revoked or has ended.
absl::StatusOr<Grant> Revoke(const Grant& grant, absl::Time now);

}  // namespace crm::identity
