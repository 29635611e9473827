#include "services/identity/grants.h"

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "libs/base/status_macros.h"
#include "libs/base/validate.h"

namespace crm::identity {
namespace {

absl::Status Invalid(absl::string_view field, absl::string_view rule) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", rule));
}

}  // namespace

GrantState StateAt(const Grant& grant, absl::Time now) {
  if (grant.revoked_at.has_value()) return GrantState::kRevoked;
  if (grant.not_before.has_value() && now < *grant.not_before) return GrantState::kPending;
  if (grant.not_after.has_value() && now >= *grant.not_after) return GrantState::kEnded;
  return GrantState::kActive;
}

bool IsActiveAt(const Grant& grant, absl::Time now) {
  return StateAt(grant, now) == GrantState::kActive;
}

EffectiveAccess EffectivePermissions(absl::Span<const Grant> grants, absl::Span<const Role> roles,
                                     absl::Time now) {
  EffectiveAccess access;
  for (const Grant& grant : grants) {
    if (!IsActiveAt(grant, now)) continue;
    const Role* role = FindRole(roles, grant.role);
    if (role == nullptr) continue;
    access.permissions.insert(role->permissions.begin(), role->permissions.end());
    access.roles.insert(role->name);
    access.mfa_required = access.mfa_required || role->require_mfa;
    if (grant.not_after.has_value() &&
        (!access.earliest_end.has_value() || *grant.not_after < *access.earliest_end)) {
      access.earliest_end = grant.not_after;
    }
  }
  return access;
}

absl::Time TokenExpiry(absl::Time issued_at, std::optional<absl::Time> earliest_end,
                       absl::Duration ttl) {
  const absl::Time by_ttl = issued_at + ttl;
  if (earliest_end.has_value() && *earliest_end < by_ttl) return *earliest_end;
  return by_ttl;
}

std::vector<Grant> ExpiringWithin(absl::Span<const Grant> grants, absl::Time now,
                                  absl::Duration within) {
  std::vector<Grant> out;
  if (within < absl::ZeroDuration()) return out;
  const absl::Time horizon = now + within;
  for (const Grant& grant : grants) {
    const GrantState state = StateAt(grant, now);
    if (state != GrantState::kActive && state != GrantState::kPending) continue;
    if (!grant.not_after.has_value() || *grant.not_after > horizon) continue;
    out.push_back(grant);
  }
  std::sort(out.begin(), out.end(), [](const Grant& a, const Grant& b) {
    if (*a.not_after != *b.not_after) return *a.not_after < *b.not_after;
    return a.id < b.id;
  });
  return out;
}

std::optional<ExpiryNotice> NoticeDue(const Grant& grant, absl::Time now,
                                      std::optional<SentNotice> last_sent) {
  if (!IsActiveAt(grant, now) || !grant.not_after.has_value()) return std::nullopt;
  if (last_sent.has_value() && last_sent->for_not_after != *grant.not_after) {
    last_sent.reset();  // about an end that no longer holds
  }
  const absl::Duration left = *grant.not_after - now;
  if (left <= kFinalNoticeBefore) {
    if (last_sent.has_value() && last_sent->notice == ExpiryNotice::kOneDay) return std::nullopt;
    return ExpiryNotice::kOneDay;
  }
  if (left <= kFirstNoticeBefore && !last_sent.has_value()) return ExpiryNotice::kSevenDays;
  return std::nullopt;
}

absl::Status CanRevoke(const PermissionSet& actor_permissions, absl::string_view actor_user_id,
                       absl::string_view target_user_id) {
  if (!actor_permissions.contains(kIdentityAdmin)) {
    return absl::PermissionDeniedError(
        absl::StrCat("changing grants requires the ", kIdentityAdmin, " permission"));
  }
  if (actor_user_id == target_user_id) {
    return absl::PermissionDeniedError(
        "nobody may grant, extend or revoke their own grants; another administrator must");
  }
  return absl::OkStatus();
}

absl::Status CanGrant(const PermissionSet& actor_permissions, absl::string_view actor_user_id,
                      absl::string_view target_user_id, const Role& role) {
  CRM_RETURN_IF_ERROR(CanRevoke(actor_permissions, actor_user_id, target_user_id));
  std::vector<absl::string_view> missing;
  for (const std::string& permission : role.permissions) {
    if (!actor_permissions.contains(permission)) missing.push_back(permission);
  }
  if (!missing.empty()) {
    return absl::PermissionDeniedError(
        absl::StrCat("the role carries permissions the acting user does not hold (",
                     absl::StrJoin(missing, ", "),
                     "); only an administrator holding all of them may grant or extend it"));
  }
  return absl::OkStatus();
}

absl::Status CanExtend(const PermissionSet& actor_permissions, absl::string_view actor_user_id,
                       absl::string_view target_user_id, const Role& role) {
  return CanGrant(actor_permissions, actor_user_id, target_user_id, role);
}

absl::Status ValidateGrantRequest(const GrantRequest& request, absl::Time now) {
  if (request.user_id.empty()) return Invalid("user_id", "required");
  if (request.user_id.size() > 128) return Invalid("user_id", "must be at most 128 bytes");
  CRM_RETURN_IF_ERROR(ValidateRoleName("role", request.role));
  if (request.not_after.has_value()) {
    if (*request.not_after <= now) return Invalid("not_after", "must be in the future");
    if (request.not_before.has_value() && *request.not_after <= *request.not_before) {
      return Invalid("not_after", "must be after not_before");
    }
  }
  CRM_RETURN_IF_ERROR(
      base::ValidateText("justification", request.justification, 1, kMaxJustificationLength));
  if (absl::StripAsciiWhitespace(request.justification).empty()) {
    return Invalid("justification", "required (blank)");
  }
  return absl::OkStatus();
}

absl::StatusOr<Grant> Extend(const Grant& grant, absl::Time new_not_after, absl::Time now) {
  switch (StateAt(grant, now)) {
    case GrantState::kRevoked:
      return absl::FailedPreconditionError("grant is revoked; create a new grant");
    case GrantState::kEnded:
      return absl::FailedPreconditionError("grant has ended; create a new grant");
    case GrantState::kPending:
    case GrantState::kActive:
      break;
  }
  if (!grant.not_after.has_value()) {
    return absl::FailedPreconditionError("grant has no end to extend");
  }
  if (new_not_after <= *grant.not_after) {
    return Invalid("not_after", "an extension must end later than the current end");
  }
  Grant extended = grant;
  extended.not_after = new_not_after;
  return extended;
}

absl::StatusOr<Grant> Revoke(const Grant& grant, absl::Time now) {
  switch (StateAt(grant, now)) {
    case GrantState::kRevoked:
      return absl::FailedPreconditionError("grant is already revoked");
    case GrantState::kEnded:
      return absl::FailedPreconditionError("grant has already ended");
    case GrantState::kPending:
    case GrantState::kActive:
      break;
  }
  Grant revoked = grant;
  revoked.revoked_at = now;
  return revoked;
}

}  // namespace crm::identity
