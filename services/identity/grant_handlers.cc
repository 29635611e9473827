// Roles and grants handlers of IdentityService, the background sweeps
// (signing keys, grant expiry notices, password expiry reminders) and the
// first administrator.
#include <algorithm>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "libs/auth/base64url.h"
#include "libs/base/status_macros.h"
#include "libs/base/uuid.h"
#include "libs/base/validate.h"
#include "libs/crypto/primitives.h"
#include "libs/log/log.h"
#include "services/identity/identity_service.h"
#include "services/identity/service_util.h"

namespace crm::identity {

namespace {

using crm::audit::v1::OUTCOME_SUCCESS;

constexpr absl::Duration kMaxExpiringWithin = absl::Hours(24 * 366);

void RoleToProto(const Role& r, v1::Role* out) {
  out->set_name(r.name);
  out->set_description(r.description);
  for (const std::string& p : r.permissions) out->add_permissions(p);
  out->set_built_in(r.builtin);
  out->set_requires_mfa(r.require_mfa);
}

v1::GrantState StateToProto(GrantState s) {
  switch (s) {
    case GrantState::kPending:
      return v1::GRANT_STATE_PENDING;
    case GrantState::kActive:
      return v1::GRANT_STATE_ACTIVE;
    case GrantState::kEnded:
      return v1::GRANT_STATE_EXPIRED;
    case GrantState::kRevoked:
      return v1::GRANT_STATE_REVOKED;
  }
  return v1::GRANT_STATE_UNSPECIFIED;
}

// The notices_sent entry of a notice about a given end: "7d@<micros>".
std::string NoticeTag(ExpiryNotice n, absl::Time not_after) {
  return absl::StrCat(n == ExpiryNotice::kSevenDays ? "7d" : "1d", "@",
                      absl::ToUnixMicros(not_after));
}

std::optional<SentNotice> LastSent(const GrantRecord& g) {
  if (!g.grant.not_after.has_value()) return std::nullopt;
  std::optional<SentNotice> last;
  for (ExpiryNotice n : {ExpiryNotice::kSevenDays, ExpiryNotice::kOneDay}) {
    if (std::find(g.notices_sent.begin(), g.notices_sent.end(), NoticeTag(n, *g.grant.not_after)) !=
        g.notices_sent.end()) {
      last = SentNotice{n, *g.grant.not_after};
    }
  }
  return last;
}

}  // namespace

absl::StatusOr<v1::Grant> IdentityService::ToProto(const GrantRecord& r) {
  v1::Grant out;
  out.set_grant_id(r.grant.id);
  out.set_user_id(r.grant.user_id);
  out.set_role(r.grant.role);
  if (r.grant.not_before.has_value()) SetTime(*r.grant.not_before, out.mutable_not_before());
  if (r.grant.not_after.has_value()) SetTime(*r.grant.not_after, out.mutable_not_after());
  CRM_ASSIGN_OR_RETURN(*out.mutable_justification(),
                       d_.personal.Open(PersonalField::kJustification, r.justification_ciphertext));
  out.set_granted_by(r.grant.granted_by);
  SetTime(r.created_at, out.mutable_created_at());
  if (r.grant.revoked_at.has_value()) SetTime(*r.grant.revoked_at, out.mutable_revoked_at());
  out.set_revoked_by(r.revoked_by);
  out.set_state(StateToProto(StateAt(r.grant, d_.clock.Now())));
  return out;
}

grpc::Status IdentityService::ListRoles(Ctx* ctx, const v1::ListRolesRequest*,
                                        v1::ListRolesResponse* resp) {
  return Handle([&]() -> absl::Status {
    CRM_ASSIGN_OR_RETURN(Caller caller, Authorize(ctx, kIdentityAdmin));
    CRM_ASSIGN_OR_RETURN(std::vector<Role> roles, Roles());
    for (const Role& r : roles) RoleToProto(r, resp->add_roles());
    return absl::OkStatus();
  });
}

grpc::Status IdentityService::CreateRole(Ctx* ctx, const v1::CreateRoleRequest* req,
                                         v1::CreateRoleResponse* resp) {
  return Handle([&]() -> absl::Status {
    CRM_ASSIGN_OR_RETURN(Caller caller, Authorize(ctx, kIdentityAdmin));
    CRM_RETURN_IF_ERROR(base::ValidateText("description", req->description(), 0, 500));
    // The contract answers a built-in name like any taken one.
    if (IsBuiltinRoleName(req->name())) {
      return absl::AlreadyExistsError("name: taken by a built-in role");
    }
    std::vector<std::string> permissions(req->permissions().begin(), req->permissions().end());
    CRM_ASSIGN_OR_RETURN(Role role, MakeCustomRole(req->name(), permissions, req->requires_mfa()));
    role.description = req->description();
    CRM_ASSIGN_OR_RETURN(const EffectiveAccess actor_access, AccessOf(caller.id()));
    const PermissionSet& actor = actor_access.permissions;
    for (const std::string& p : role.permissions) {
      if (!actor.contains(p)) {
        return absl::PermissionDeniedError(
            absl::StrCat("permissions: the caller does not hold ", p));
      }
    }
    CRM_RETURN_IF_ERROR(d_.grants.CreateRole(role, caller.id(), d_.clock.Now()));
    Audit(ctx, &caller, "identity.role.create", absl::StrCat("role/", role.name), OUTCOME_SUCCESS);
    RoleToProto(role, resp->mutable_role());
    return absl::OkStatus();
  });
}

grpc::Status IdentityService::SetRoleRequiresMfa(Ctx* ctx, const v1::SetRoleRequiresMfaRequest* req,
                                                 v1::SetRoleRequiresMfaResponse* resp) {
  return Handle([&]() -> absl::Status {
    CRM_ASSIGN_OR_RETURN(Caller caller, Authorize(ctx, kIdentityAdmin));
    CRM_RETURN_IF_ERROR(ValidateRoleName("role", req->role()));
    CRM_RETURN_IF_ERROR(d_.grants.SetRoleRequiresMfa(req->role(), req->requires_mfa(), caller.id(),
                                                     d_.clock.Now()));
    CRM_ASSIGN_OR_RETURN(std::vector<Role> roles, Roles());
    const Role* role = FindRole(roles, req->role());
    if (role == nullptr) return absl::NotFoundError("role not found");
    Audit(ctx, &caller, "identity.role.set_requires_mfa", absl::StrCat("role/", role->name),
          OUTCOME_SUCCESS, {{"requires_mfa", req->requires_mfa() ? "true" : "false"}});
    RoleToProto(*role, resp->mutable_role());
    return absl::OkStatus();
  });
}

grpc::Status IdentityService::GrantRole(Ctx* ctx, const v1::GrantRoleRequest* req,
                                        v1::GrantRoleResponse* resp) {
  return Handle([&]() -> absl::Status {
    CRM_ASSIGN_OR_RETURN(Caller caller, Authorize(ctx, kIdentityAdmin));
    GrantRequest request{
        .user_id = req->user_id(), .role = req->role(), .justification = req->justification()};
    if (req->has_not_before()) {
      CRM_ASSIGN_OR_RETURN(request.not_before, GetTime("not_before", req->not_before()));
    }
    if (req->has_not_after()) {
      CRM_ASSIGN_OR_RETURN(request.not_after, GetTime("not_after", req->not_after()));
    }
    const absl::Time now = d_.clock.Now();
    CRM_RETURN_IF_ERROR(ValidateGrantRequest(request, now));
    CRM_ASSIGN_OR_RETURN(UserRecord user, FindUser("user_id", req->user_id()));
    CRM_ASSIGN_OR_RETURN(std::vector<Role> roles, Roles());
    const Role* role = FindRole(roles, req->role());
    if (role == nullptr) return absl::NotFoundError("role not found");
    CRM_ASSIGN_OR_RETURN(const EffectiveAccess actor_access, AccessOf(caller.id()));
    const PermissionSet& actor = actor_access.permissions;
    CRM_RETURN_IF_ERROR(CanGrant(actor, caller.id(), user.id, *role));
    CRM_ASSIGN_OR_RETURN(std::string justification,
                         d_.personal.Seal(PersonalField::kJustification, req->justification()));
    Grant grant{.user_id = user.id,
                .role = role->name,
                .not_before = request.not_before,
                .not_after = request.not_after,
                .granted_by = caller.id()};
    CRM_ASSIGN_OR_RETURN(GrantRecord stored, d_.grants.CreateGrant(grant, justification, now));
    Audit(ctx, &caller, "identity.grant.create", absl::StrCat("grant/", stored.grant.id),
          OUTCOME_SUCCESS, {{"user_id", user.id}, {"role", role->name}});
    CRM_ASSIGN_OR_RETURN(*resp->mutable_grant(), ToProto(stored));
    return absl::OkStatus();
  });
}

grpc::Status IdentityService::RevokeGrant(Ctx* ctx, const v1::RevokeGrantRequest* req,
                                          v1::RevokeGrantResponse* resp) {
  return Handle([&]() -> absl::Status {
    CRM_ASSIGN_OR_RETURN(Caller caller, Authorize(ctx, kIdentityAdmin));
    CRM_RETURN_IF_ERROR(base::ValidateText("reason", req->reason(), 0, 500));
    CRM_ASSIGN_OR_RETURN(std::string id, base::CanonicalUuid("grant_id", req->grant_id()));
    absl::StatusOr<GrantRecord> grant = d_.grants.GetGrant(id);
    if (absl::IsNotFound(grant.status())) return absl::NotFoundError("grant not found");
    CRM_RETURN_IF_ERROR(grant.status());
    CRM_ASSIGN_OR_RETURN(const EffectiveAccess actor_access, AccessOf(caller.id()));
    const PermissionSet& actor = actor_access.permissions;
    CRM_RETURN_IF_ERROR(CanRevoke(actor, caller.id(), grant->grant.user_id));
    if (!grant->grant.revoked_at.has_value()) {
      CRM_ASSIGN_OR_RETURN(*grant, d_.grants.RevokeGrant(id, caller.id(), d_.clock.Now()));
      Audit(ctx, &caller, "identity.grant.revoke", absl::StrCat("grant/", id), OUTCOME_SUCCESS,
            {{"user_id", grant->grant.user_id},
             {"role", grant->grant.role},
             {"reason", req->reason(), true}});
    }
    CRM_ASSIGN_OR_RETURN(*resp->mutable_grant(), ToProto(*grant));
    return absl::OkStatus();
  });
}

grpc::Status IdentityService::ExtendGrant(Ctx* ctx, const v1::ExtendGrantRequest* req,
                                          v1::ExtendGrantResponse* resp) {
  return Handle([&]() -> absl::Status {
    CRM_ASSIGN_OR_RETURN(Caller caller, Authorize(ctx, kIdentityAdmin));
    CRM_ASSIGN_OR_RETURN(std::string id, base::CanonicalUuid("grant_id", req->grant_id()));
    if (!req->has_new_not_after()) return absl::InvalidArgumentError("new_not_after: required");
    CRM_ASSIGN_OR_RETURN(absl::Time new_end, GetTime("new_not_after", req->new_not_after()));
    CRM_RETURN_IF_ERROR(
        base::ValidateText("justification", req->justification(), 1, kMaxJustificationLength));
    absl::StatusOr<GrantRecord> grant = d_.grants.GetGrant(id);
    if (absl::IsNotFound(grant.status())) return absl::NotFoundError("grant not found");
    CRM_RETURN_IF_ERROR(grant.status());
    CRM_ASSIGN_OR_RETURN(std::vector<Role> roles, Roles());
    const Role* role = FindRole(roles, grant->grant.role);
    if (role == nullptr) return absl::FailedPreconditionError("the grant's role no longer exists");
    CRM_ASSIGN_OR_RETURN(const EffectiveAccess actor_access, AccessOf(caller.id()));
    const PermissionSet& actor = actor_access.permissions;
    CRM_RETURN_IF_ERROR(CanExtend(actor, caller.id(), grant->grant.user_id, *role));
    absl::StatusOr<Grant> extended = Extend(grant->grant, new_end, d_.clock.Now());
    if (absl::IsInvalidArgument(extended.status())) {
      return absl::InvalidArgumentError("new_not_after: must be later than the current end");
    }
    CRM_RETURN_IF_ERROR(extended.status());
    CRM_ASSIGN_OR_RETURN(GrantRecord stored,
                         d_.grants.ExtendGrant(id, grant->grant.not_after, new_end));
    Audit(ctx, &caller, "identity.grant.extend", absl::StrCat("grant/", id), OUTCOME_SUCCESS,
          {{"user_id", stored.grant.user_id},
           {"role", stored.grant.role},
           {"not_after", absl::FormatTime(absl::RFC3339_sec, new_end, absl::UTCTimeZone())},
           {"justification", req->justification(), true}});
    CRM_ASSIGN_OR_RETURN(*resp->mutable_grant(), ToProto(stored));
    return absl::OkStatus();
  });
}

grpc::Status IdentityService::ListGrants(Ctx* ctx, const v1::ListGrantsRequest* req,
                                         v1::ListGrantsResponse* resp) {
  return Handle([&]() -> absl::Status {
    CRM_ASSIGN_OR_RETURN(Caller caller, Authenticate(ctx));
    std::string user_id;
    if (!req->user_id().empty()) {
      CRM_ASSIGN_OR_RETURN(user_id, base::CanonicalUuid("user_id", req->user_id()));
    }
    if (!caller.Has(kIdentityAdmin) && user_id != caller.id()) {
      return absl::PermissionDeniedError(
          "requires permission identity.admin, or user_id naming the caller");
    }
    absl::StatusOr<GrantPage> page =
        d_.grants.ListGrants(user_id, req->include_inactive(), d_.clock.Now(),
                             req->page().page_size(), req->page().page_token());
    if (absl::IsInvalidArgument(page.status()) &&
        absl::StartsWith(page.status().message(), "page")) {
      return absl::InvalidArgumentError(absl::StrCat("page.", page.status().message()));
    }
    CRM_RETURN_IF_ERROR(page.status());
    for (const GrantRecord& g : page->grants) {
      CRM_ASSIGN_OR_RETURN(*resp->add_grants(), ToProto(g));
    }
    resp->mutable_page()->set_next_page_token(page->next_page_token);
    return absl::OkStatus();
  });
}

grpc::Status IdentityService::ListExpiringGrants(Ctx* ctx, const v1::ListExpiringGrantsRequest* req,
                                                 v1::ListExpiringGrantsResponse* resp) {
  return Handle([&]() -> absl::Status {
    CRM_ASSIGN_OR_RETURN(Caller caller, Authorize(ctx, kIdentityAdmin));
    if (!req->has_within()) return absl::InvalidArgumentError("within: required");
    const absl::Duration within =
        absl::Seconds(req->within().seconds()) + absl::Nanoseconds(req->within().nanos());
    if (within <= absl::ZeroDuration() || within > kMaxExpiringWithin) {
      return absl::InvalidArgumentError("within: must be positive and at most 366 days");
    }
    absl::StatusOr<GrantPage> page = d_.grants.ListExpiring(
        d_.clock.Now(), within, req->page().page_size(), req->page().page_token());
    if (absl::IsInvalidArgument(page.status())) {
      return absl::InvalidArgumentError(absl::StrCat("page.", page.status().message()));
    }
    CRM_RETURN_IF_ERROR(page.status());
    for (const GrantRecord& g : page->grants) {
      CRM_ASSIGN_OR_RETURN(*resp->add_grants(), ToProto(g));
    }
    resp->mutable_page()->set_next_page_token(page->next_page_token);
    return absl::OkStatus();
  });
}

// ---- Sweeps and bootstrap ---------------------------------------------------------

absl::Status IdentityService::Sweep() {
  const absl::Time now = d_.clock.Now();
  absl::Status first = d_.keys.Refresh();
  absl::Status s = SweepGrantNotices(now);
  if (first.ok()) first = s;
  s = SweepPasswordReminders(now);
  if (first.ok()) first = s;
  s = d_.revocation.Republish();
  if (first.ok()) first = s;
  s = d_.revocation.Prune();
  if (first.ok()) first = s;
  return first;
}

absl::Status IdentityService::SweepGrantNotices(absl::Time now) {
  std::string token;
  do {
    CRM_ASSIGN_OR_RETURN(GrantPage page,
                         d_.grants.ListExpiring(now, kFirstNoticeBefore, kMaxGrantPageSize, token));
    for (const GrantRecord& g : page.grants) {
      std::optional<ExpiryNotice> due = NoticeDue(g.grant, now, LastSent(g));
      if (!due.has_value() || !g.grant.not_after.has_value()) continue;
      const std::string tag = NoticeTag(*due, *g.grant.not_after);
      const std::string params =
          absl::StrCat("{\"grant_id\":\"", g.grant.id, "\",\"role\":\"", g.grant.role,
                       "\",\"days_left\":", *due == ExpiryNotice::kSevenDays ? 7 : 1, "}");
      // Queue first (idempotent by dedup key, so replicas racing here queue
      // each notice once), then mark: a failure in between sends it again on
      // the next sweep rather than never.
      for (const std::string& recipient : {g.grant.user_id, g.grant.granted_by}) {
        if (recipient.empty()) continue;
        absl::StatusOr<bool> queued = d_.credentials.EnqueueNotice(
            {.user_id = recipient,
             .kind = NoticeKind::kGrantExpiry,
             .params_json = params,
             .dedup_key = absl::StrCat("grant:", g.grant.id, ":", tag, ":", recipient),
             .now = now});
        // A granting admin deleted since: the user's notice still goes.
        if (!queued.ok() && !absl::IsNotFound(queued.status())) return queued.status();
      }
      CRM_RETURN_IF_ERROR(d_.grants.MarkNoticeSent(g.grant.id, tag).status());
    }
    token = page.next_page_token;
  } while (!token.empty());
  return absl::OkStatus();
}

absl::Status IdentityService::SweepPasswordReminders(absl::Time now) {
  if (d_.config.max_password_age <= absl::ZeroDuration()) return absl::OkStatus();
  constexpr int kPage = 1000;
  for (int days : d_.config.reminder_days) {
    // Passwords expiring within `days` days and not yet expired (expired ones
    // get the change-only token at login instead).
    const absl::Time changed_before = now - d_.config.max_password_age + absl::Hours(24 * days);
    absl::Time after = now - d_.config.max_password_age;
    while (true) {
      CRM_ASSIGN_OR_RETURN(std::vector<CredentialStore::PasswordAge> due,
                           d_.credentials.PasswordsChangedBefore(changed_before, kPage, after));
      for (const CredentialStore::PasswordAge& p : due) {
        CRM_RETURN_IF_ERROR(
            d_.credentials
                .EnqueueNotice({.user_id = p.user_id,
                                .kind = NoticeKind::kPasswordExpiryReminder,
                                .params_json = absl::StrCat("{\"days_before\":", days, "}"),
                                .dedup_key = absl::StrCat("password-expiry:", p.user_id, ":",
                                                          absl::ToUnixMicros(p.password_changed_at),
                                                          ":", days),
                                .now = now})
                .status());
      }
      if (due.size() < static_cast<size_t>(kPage)) break;
      after = due.back().password_changed_at;
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::optional<std::string>> IdentityService::BootstrapAdmin(
    absl::string_view username_input, std::optional<std::string> initial_password) {
  CRM_ASSIGN_OR_RETURN(UserPage existing, d_.users.ListUsers({}, 1, ""));
  if (!existing.users.empty()) return std::optional<std::string>();
  CRM_ASSIGN_OR_RETURN(std::string username,
                       NormalizeUsername("bootstrap_admin_username", username_input));
  // Generated: 24 base64url characters (144 bits); the policy is checked all the same.
  std::string password = initial_password.has_value()
                             ? *std::move(initial_password)
                             : auth::Base64UrlEncode(crypto::RandomBytes(18));
  const std::string email = absl::StrCat(username, "@bootstrap.invalid");
  CRM_ASSIGN_OR_RETURN(
      std::vector<Violation> violations,
      d_.policy.Check(
          password,
          {.username = username, .email = email, .previous_hashes = {}, .hasher = d_.hasher}));
  CRM_RETURN_IF_ERROR(ToStatus(violations));
  NewUser user;
  user.username_index = d_.personal.Index(PersonalField::kUsername, username);
  CRM_ASSIGN_OR_RETURN(user.username_ciphertext,
                       d_.personal.Seal(PersonalField::kUsername, username));
  CRM_ASSIGN_OR_RETURN(user.display_name_ciphertext,
                       d_.personal.Seal(PersonalField::kDisplayName, "First administrator"));
  user.email_index = d_.personal.Index(PersonalField::kEmail, email);
  CRM_ASSIGN_OR_RETURN(user.email_ciphertext, d_.personal.Seal(PersonalField::kEmail, email));
  CRM_ASSIGN_OR_RETURN(user.password_hash, d_.hasher.Hash(password));
  user.must_change_password = true;
  absl::StatusOr<UserRecord> created = d_.users.CreateUser(user);
  if (absl::IsAlreadyExists(created.status())) return std::optional<std::string>();
  CRM_RETURN_IF_ERROR(created.status());
  const absl::Time now = d_.clock.Now();
  CRM_ASSIGN_OR_RETURN(std::string justification,
                       d_.personal.Seal(PersonalField::kJustification, "first administrator"));
  CRM_RETURN_IF_ERROR(
      d_.grants
          .CreateGrant({.user_id = created->id, .role = std::string(kRoleAdmin), .granted_by = ""},
                       justification, now)
          .status());
  Audit(nullptr, nullptr, "identity.user.bootstrap_admin", UserResource(created->id),
        OUTCOME_SUCCESS);
  log::Info("identity.bootstrap_admin_created", {{"user_id", log::Id(created->id)}});
  return std::optional<std::string>(std::move(password));
}

}  // namespace crm::identity
