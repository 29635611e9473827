// Users, teams, service accounts, signing keys, and what every handler
// shares. Login, sessions, passwords and MFA: login_handlers.cc. Roles and
// grants, sweeps and the first admin: grant_handlers.cc.
#include "services/identity/identity_service.h"

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/registry.h>

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "libs/base/grpc_status.h"
#include "libs/base/status_macros.h"
#include "libs/base/uuid.h"
#include "libs/base/validate.h"
#include "libs/log/log.h"
#include "libs/rpc/call_auth.h"
#include "libs/rpc/peer.h"
#include "libs/rpc/request_id.h"
#include "services/identity/service_util.h"

namespace crm::identity {

IdentityService::IdentityService(IdentityDeps deps) : d_(deps) {
  if (d_.metrics != nullptr) {
    logins_ = &prometheus::BuildCounter()
                   .Name("crm_identity_login_attempts_total")
                   .Help("Login attempts by result")
                   .Register(*d_.metrics);
    lockouts_ = &prometheus::BuildCounter()
                     .Name("crm_identity_lockouts_total")
                     .Help("Accounts locked after repeated failures, by kind (timed, admin)")
                     .Register(*d_.metrics);
  }
}

// ---- Shared ------------------------------------------------------------------

absl::StatusOr<IdentityService::Caller> IdentityService::Authenticate(Ctx* ctx,
                                                                      bool allow_restricted) {
  CRM_ASSIGN_OR_RETURN(std::shared_ptr<const auth::Principal> p,
                       rpc::AuthenticateCall(*ctx, d_.verifier));
  if (p->Has(kRestrictedScope) && !allow_restricted) {
    return absl::PermissionDeniedError(
        "this token only allows changing the password or enrolling MFA");
  }
  return Caller{std::move(p)};
}

absl::StatusOr<IdentityService::Caller> IdentityService::Authorize(Ctx* ctx,
                                                                   absl::string_view permission,
                                                                   absl::string_view self_user_id) {
  CRM_ASSIGN_OR_RETURN(Caller caller, Authenticate(ctx));
  if (caller.Has(permission)) return caller;
  if (!self_user_id.empty() && absl::AsciiStrToLower(self_user_id) == caller.id()) return caller;
  return absl::PermissionDeniedError(absl::StrCat("requires permission ", permission));
}

absl::StatusOr<UserRecord> IdentityService::FindUser(absl::string_view field,
                                                     absl::string_view user_id) {
  CRM_ASSIGN_OR_RETURN(std::string id, base::CanonicalUuid(field, user_id));
  absl::StatusOr<UserRecord> user = d_.users.GetUser(id);
  if (absl::IsNotFound(user.status())) return absl::NotFoundError("user not found");
  return user;
}

absl::StatusOr<v1::User> IdentityService::ToProto(const UserRecord& u) {
  v1::User out;
  out.set_user_id(u.id);
  out.set_kind(u.kind == UserKind::kPerson ? v1::USER_KIND_PERSON : v1::USER_KIND_SERVICE_ACCOUNT);
  CRM_ASSIGN_OR_RETURN(*out.mutable_username(),
                       d_.personal.Open(PersonalField::kUsername, u.username_ciphertext));
  CRM_ASSIGN_OR_RETURN(*out.mutable_display_name(),
                       d_.personal.Open(PersonalField::kDisplayName, u.display_name_ciphertext));
  CRM_ASSIGN_OR_RETURN(*out.mutable_email(),
                       d_.personal.OpenOptional(PersonalField::kEmail, u.email_ciphertext));
  out.set_status(u.status == UserStatus::kActive ? v1::USER_STATUS_ACTIVE
                                                 : v1::USER_STATUS_DISABLED);
  CRM_ASSIGN_OR_RETURN(Credentials c, d_.credentials.Get(u.id));
  if (c.lockout.admin_unlock_required) {
    out.set_locked_permanently(true);
  } else if (d_.guard.IsLocked(c.lockout)) {
    SetTime(c.lockout.locked_until, out.mutable_locked_until());
  }
  out.set_must_change_password(c.must_change_password);
  if (c.password_changed_at.has_value()) {
    SetTime(*c.password_changed_at, out.mutable_password_changed_at());
    if (d_.config.max_password_age > absl::ZeroDuration()) {
      SetTime(*c.password_changed_at + d_.config.max_password_age,
              out.mutable_password_expires_at());
    }
  }
  out.set_totp_enabled(c.totp_enabled());
  CRM_ASSIGN_OR_RETURN(std::vector<std::string> teams, d_.users.ListTeamIdsOfUser(u.id));
  for (std::string& t : teams) out.add_team_ids(std::move(t));
  SetTime(u.created_at, out.mutable_created_at());
  SetTime(u.updated_at, out.mutable_updated_at());
  if (c.last_login_at.has_value()) SetTime(*c.last_login_at, out.mutable_last_login_at());
  return out;
}

absl::StatusOr<std::vector<Role>> IdentityService::Roles() { return d_.grants.ListRoles(); }

absl::StatusOr<EffectiveAccess> IdentityService::AccessOf(absl::string_view user_id) {
  CRM_ASSIGN_OR_RETURN(std::vector<Grant> grants, d_.grants.GrantsOfUser(user_id));
  CRM_ASSIGN_OR_RETURN(std::vector<Role> roles, Roles());
  return EffectivePermissions(grants, roles, d_.clock.Now());
}

absl::Status IdentityService::CheckNotLastAdmin(absl::string_view user_id) {
  CRM_ASSIGN_OR_RETURN(std::vector<std::string> admins,
                       d_.grants.UsersWithActiveRole(kRoleAdmin, d_.clock.Now()));
  if (std::find(admins.begin(), admins.end(), user_id) == admins.end()) return absl::OkStatus();
  for (const std::string& other : admins) {
    if (other == user_id) continue;
    absl::StatusOr<UserRecord> u = d_.users.GetUser(other);
    if (u.ok() && u->status == UserStatus::kActive) return absl::OkStatus();
  }
  return absl::FailedPreconditionError("user_id: the last active administrator must remain");
}

absl::Status IdentityService::RevokeSessionsOf(absl::string_view user_id,
                                               std::optional<std::string> except_session_id) {
  CRM_ASSIGN_OR_RETURN(std::vector<std::string> revoked,
                       d_.sessions.RevokeAllForUser(user_id, except_session_id, d_.clock.Now()));
  // A service account's tokens share one session id: revoke it and give the
  // account a fresh one for the tokens it may get once enabled again.
  absl::StatusOr<ServiceAccountBinding> binding = d_.grants.FindServiceAccountByUser(user_id);
  if (binding.ok()) {
    revoked.push_back(binding->token_session_id);
    CRM_RETURN_IF_ERROR(d_.grants.RotateServiceTokenSession(user_id).status());
  } else if (!absl::IsNotFound(binding.status())) {
    return binding.status();
  }
  return d_.revocation.RevokeMany(revoked);
}

void IdentityService::Audit(Ctx* ctx, const Caller* caller, absl::string_view action,
                            absl::string_view resource, crm::audit::v1::Outcome outcome,
                            std::initializer_list<AuditDetail> details,
                            absl::string_view subject_id) {
  crm::audit::v1::Event event;
  event.set_action(std::string(action));
  event.set_resource(std::string(resource));
  event.set_outcome(outcome);
  event.set_subject_id(std::string(subject_id));
  if (caller != nullptr) {
    event.mutable_actor()->set_user_id(caller->id());
    event.mutable_actor()->set_session_id(caller->principal->session_id);
  }
  if (ctx != nullptr) {
    event.mutable_actor()->set_service_identity(rpc::PeerIdentity(*ctx));
    event.set_request_id(rpc::RequestId(*ctx));
  }
  for (const AuditDetail& d : details) {
    crm::audit::v1::Detail* detail = event.add_details();
    detail->set_key(std::string(d.key));
    detail->set_value(d.value);
    detail->set_personal(d.personal);
  }
  EnqueueAudit(event);
}

void IdentityService::EnqueueAudit(const crm::audit::v1::Event& event) {
  absl::Status s =
      d_.db.Transact([&](pqxx::work& tx) -> absl::Status { return d_.audit.Enqueue(tx, event); });
  if (!s.ok()) log::Error("identity.audit_enqueue_failed", {{"status", s}});
}

// ---- Users ------------------------------------------------------------------

grpc::Status IdentityService::CreateUser(Ctx* ctx, const v1::CreateUserRequest* req,
                                         v1::CreateUserResponse* resp) {
  return Handle([&]() -> absl::Status {
    CRM_ASSIGN_OR_RETURN(Caller caller, Authorize(ctx, kIdentityAdmin));
    CRM_ASSIGN_OR_RETURN(std::string username, NormalizeUsername("username", req->username()));
    CRM_RETURN_IF_ERROR(base::ValidateText("display_name", req->display_name(), 1, 200));
    CRM_RETURN_IF_ERROR(base::ValidateEmail("email", req->email()));
    const std::string email = base::NormalizeEmail(req->email());
    CRM_RETURN_IF_ERROR(PrefixField("initial_", ValidatePasswordInput(req->initial_password())));
    std::vector<std::string> team_ids;
    for (int i = 0; i < req->team_ids_size(); ++i) {
      CRM_ASSIGN_OR_RETURN(
          std::string id, base::CanonicalUuid(absl::StrCat("team_ids[", i, "]"), req->team_ids(i)));
      absl::StatusOr<TeamRecord> team = d_.users.GetTeam(id);
      if (absl::IsNotFound(team.status())) {
        return absl::NotFoundError(absl::StrCat("team_ids[", i, "]: team not found"));
      }
      CRM_RETURN_IF_ERROR(team.status());
      team_ids.push_back(std::move(id));
    }
    CRM_ASSIGN_OR_RETURN(
        std::vector<Violation> violations,
        d_.policy.Check(
            req->initial_password(),
            {.username = username, .email = email, .previous_hashes = {}, .hasher = d_.hasher}));
    CRM_RETURN_IF_ERROR(PrefixField("initial_", ToStatus(violations)));
    NewUser user;
    user.kind = UserKind::kPerson;
    user.username_index = d_.personal.Index(PersonalField::kUsername, username);
    CRM_ASSIGN_OR_RETURN(user.username_ciphertext,
                         d_.personal.Seal(PersonalField::kUsername, username));
    CRM_ASSIGN_OR_RETURN(user.display_name_ciphertext,
                         d_.personal.Seal(PersonalField::kDisplayName, req->display_name()));
    user.email_index = d_.personal.Index(PersonalField::kEmail, email);
    CRM_ASSIGN_OR_RETURN(user.email_ciphertext, d_.personal.Seal(PersonalField::kEmail, email));
    CRM_ASSIGN_OR_RETURN(user.password_hash, d_.hasher.Hash(req->initial_password()));
    user.must_change_password =
        req->has_must_change_password() ? req->must_change_password() : true;
    CRM_ASSIGN_OR_RETURN(UserRecord created, d_.users.CreateUser(user));
    for (const std::string& team : team_ids) {
      CRM_RETURN_IF_ERROR(d_.users.AddTeamMember(team, created.id));
    }
    Audit(ctx, &caller, "identity.user.create", UserResource(created.id),
          crm::audit::v1::OUTCOME_SUCCESS);
    CRM_ASSIGN_OR_RETURN(*resp->mutable_user(), ToProto(created));
    return absl::OkStatus();
  });
}

grpc::Status IdentityService::GetUser(Ctx* ctx, const v1::GetUserRequest* req,
                                      v1::GetUserResponse* resp) {
  return Handle([&]() -> absl::Status {
    CRM_ASSIGN_OR_RETURN(Caller caller, Authorize(ctx, kIdentityAdmin, req->user_id()));
    CRM_ASSIGN_OR_RETURN(UserRecord user, FindUser("user_id", req->user_id()));
    CRM_ASSIGN_OR_RETURN(*resp->mutable_user(), ToProto(user));
    return absl::OkStatus();
  });
}

grpc::Status IdentityService::ListUsers(Ctx* ctx, const v1::ListUsersRequest* req,
                                        v1::ListUsersResponse* resp) {
  return Handle([&]() -> absl::Status {
    CRM_ASSIGN_OR_RETURN(Caller caller, Authorize(ctx, kIdentityAdmin));
    UserFilter filter;
    if (req->status() == v1::USER_STATUS_ACTIVE) filter.status = UserStatus::kActive;
    if (req->status() == v1::USER_STATUS_DISABLED) filter.status = UserStatus::kDisabled;
    if (req->kind() == v1::USER_KIND_PERSON) filter.kind = UserKind::kPerson;
    if (req->kind() == v1::USER_KIND_SERVICE_ACCOUNT) filter.kind = UserKind::kServiceAccount;
    if (!req->team_id().empty()) {
      CRM_ASSIGN_OR_RETURN(filter.team_id, base::CanonicalUuid("team_id", req->team_id()));
    }
    if (req->role().empty()) {
      CRM_ASSIGN_OR_RETURN(UserPage page, d_.users.ListUsers(filter, req->page().page_size(),
                                                             req->page().page_token()));
      for (const UserRecord& u : page.users) {
        CRM_ASSIGN_OR_RETURN(*resp->add_users(), ToProto(u));
      }
      resp->mutable_page()->set_next_page_token(page.next_page_token);
      return absl::OkStatus();
    }
    // By role: the holders (few), filtered, paged by position in that list.
    CRM_RETURN_IF_ERROR(ValidateRoleName("role", req->role()));
    CRM_ASSIGN_OR_RETURN(int page_size, EffectiveUserPageSize(req->page().page_size()));
    CRM_ASSIGN_OR_RETURN(std::vector<std::string> ids,
                         d_.grants.UsersWithActiveRole(req->role(), d_.clock.Now()));
    const std::string query_key = absl::StrCat(req->role(), "/", UserFilterKey(filter));
    CRM_ASSIGN_OR_RETURN(size_t start, DecodeOffsetToken(req->page().page_token(), query_key));
    absl::flat_hash_set<std::string> members;
    if (filter.team_id.has_value()) {
      CRM_ASSIGN_OR_RETURN(std::vector<std::string> m, d_.users.ListTeamMembers(*filter.team_id));
      members.insert(m.begin(), m.end());
    }
    size_t i = start;
    for (; i < ids.size() && resp->users_size() < page_size; ++i) {
      absl::StatusOr<UserRecord> u = d_.users.GetUser(ids[i]);
      if (absl::IsNotFound(u.status())) continue;
      CRM_RETURN_IF_ERROR(u.status());
      if (filter.status.has_value() && u->status != *filter.status) continue;
      if (filter.kind.has_value() && u->kind != *filter.kind) continue;
      if (filter.team_id.has_value() && !members.contains(u->id)) continue;
      CRM_ASSIGN_OR_RETURN(*resp->add_users(), ToProto(*u));
    }
    if (i < ids.size()) resp->mutable_page()->set_next_page_token(EncodeOffsetToken(i, query_key));
    return absl::OkStatus();
  });
}

grpc::Status IdentityService::DisableUser(Ctx* ctx, const v1::DisableUserRequest* req,
                                          v1::DisableUserResponse* resp) {
  return Handle([&]() -> absl::Status {
    CRM_ASSIGN_OR_RETURN(Caller caller, Authorize(ctx, kIdentityAdmin));
    CRM_RETURN_IF_ERROR(base::ValidateText("reason", req->reason(), 0, 500));
    CRM_ASSIGN_OR_RETURN(UserRecord user, FindUser("user_id", req->user_id()));
    if (user.id == caller.id()) {
      return absl::FailedPreconditionError("user_id: an administrator cannot disable itself");
    }
    CRM_RETURN_IF_ERROR(CheckNotLastAdmin(user.id));
    CRM_ASSIGN_OR_RETURN(user, d_.users.UpdateUserStatus(user.id, UserStatus::kDisabled));
    CRM_RETURN_IF_ERROR(RevokeSessionsOf(user.id, std::nullopt));
    Audit(ctx, &caller, "identity.user.disable", UserResource(user.id),
          crm::audit::v1::OUTCOME_SUCCESS, {{"reason", req->reason(), true}});
    CRM_ASSIGN_OR_RETURN(*resp->mutable_user(), ToProto(user));
    return absl::OkStatus();
  });
}

grpc::Status IdentityService::EnableUser(Ctx* ctx, const v1::EnableUserRequest* req,
                                         v1::EnableUserResponse* resp) {
  return Handle([&]() -> absl::Status {
    CRM_ASSIGN_OR_RETURN(Caller caller, Authorize(ctx, kIdentityAdmin));
    CRM_ASSIGN_OR_RETURN(UserRecord user, FindUser("user_id", req->user_id()));
    CRM_ASSIGN_OR_RETURN(user, d_.users.UpdateUserStatus(user.id, UserStatus::kActive));
    Audit(ctx, &caller, "identity.user.enable", UserResource(user.id),
          crm::audit::v1::OUTCOME_SUCCESS);
    CRM_ASSIGN_OR_RETURN(*resp->mutable_user(), ToProto(user));
    return absl::OkStatus();
  });
}

grpc::Status IdentityService::DeleteUser(Ctx* ctx, const v1::DeleteUserRequest* req,
                                         v1::DeleteUserResponse*) {
  return Handle([&]() -> absl::Status {
    CRM_ASSIGN_OR_RETURN(Caller caller, Authorize(ctx, kIdentityAdmin));
    absl::StatusOr<UserRecord> user = FindUser("user_id", req->user_id());
    if (absl::IsNotFound(user.status())) return absl::OkStatus();
    CRM_RETURN_IF_ERROR(user.status());
    if (user->id == caller.id()) {
      return absl::FailedPreconditionError("user_id: an administrator cannot delete itself");
    }
    CRM_RETURN_IF_ERROR(CheckNotLastAdmin(user->id));
    CRM_RETURN_IF_ERROR(RevokeSessionsOf(user->id, std::nullopt));
    absl::Status deleted = d_.users.DeleteUser(user->id);
    if (!deleted.ok() && !absl::IsNotFound(deleted)) return deleted;
    Audit(ctx, &caller, "identity.user.delete", UserResource(user->id),
          crm::audit::v1::OUTCOME_SUCCESS);
    return absl::OkStatus();
  });
}

// ---- Teams ------------------------------------------------------------------

namespace {

void TeamToProto(const TeamRecord& t, int members, v1::Team* out) {
  out->set_team_id(t.id);
  out->set_name(t.name);
  out->set_description(t.description);
  out->set_member_count(members);
  SetTime(t.created_at, out->mutable_created_at());
}

}  // namespace

grpc::Status IdentityService::CreateTeam(Ctx* ctx, const v1::CreateTeamRequest* req,
                                         v1::CreateTeamResponse* resp) {
  return Handle([&]() -> absl::Status {
    CRM_ASSIGN_OR_RETURN(Caller caller, Authorize(ctx, kIdentityAdmin));
    CRM_ASSIGN_OR_RETURN(TeamRecord team, d_.users.CreateTeam({.name = req->name(),
                                                               .description = req->description()}));
    Audit(ctx, &caller, "identity.team.create", absl::StrCat("team/", team.id),
          crm::audit::v1::OUTCOME_SUCCESS);
    TeamToProto(team, 0, resp->mutable_team());
    return absl::OkStatus();
  });
}

grpc::Status IdentityService::ListTeams(Ctx* ctx, const v1::ListTeamsRequest* req,
                                        v1::ListTeamsResponse* resp) {
  return Handle([&]() -> absl::Status {
    CRM_ASSIGN_OR_RETURN(Caller caller, Authenticate(ctx));
    std::optional<std::string> member;
    if (!req->member_id().empty()) {
      CRM_ASSIGN_OR_RETURN(member, base::CanonicalUuid("member_id", req->member_id()));
    }
    if (!caller.Has(kIdentityAdmin) && member != caller.id()) {
      return absl::PermissionDeniedError(
          "requires permission identity.admin, or member_id naming the caller");
    }
    CRM_ASSIGN_OR_RETURN(int page_size, EffectiveUserPageSize(req->page().page_size()));
    CRM_ASSIGN_OR_RETURN(std::vector<TeamRecord> teams, d_.users.ListTeams(member));
    const std::string query_key = absl::StrCat("teams/", member.value_or(""));
    CRM_ASSIGN_OR_RETURN(size_t start, DecodeOffsetToken(req->page().page_token(), query_key));
    size_t i = start;
    for (; i < teams.size() && resp->teams_size() < page_size; ++i) {
      CRM_ASSIGN_OR_RETURN(std::vector<std::string> members, d_.users.ListTeamMembers(teams[i].id));
      TeamToProto(teams[i], static_cast<int>(members.size()), resp->add_teams());
    }
    if (i < teams.size())
      resp->mutable_page()->set_next_page_token(EncodeOffsetToken(i, query_key));
    return absl::OkStatus();
  });
}

grpc::Status IdentityService::AddTeamMember(Ctx* ctx, const v1::AddTeamMemberRequest* req,
                                            v1::AddTeamMemberResponse*) {
  return Handle([&]() -> absl::Status {
    CRM_ASSIGN_OR_RETURN(Caller caller, Authorize(ctx, kIdentityAdmin));
    CRM_ASSIGN_OR_RETURN(std::string team, base::CanonicalUuid("team_id", req->team_id()));
    CRM_ASSIGN_OR_RETURN(std::string user, base::CanonicalUuid("user_id", req->user_id()));
    CRM_RETURN_IF_ERROR(d_.users.AddTeamMember(team, user));
    Audit(ctx, &caller, "identity.team.add_member", absl::StrCat("team/", team),
          crm::audit::v1::OUTCOME_SUCCESS, {{"user_id", user}});
    return absl::OkStatus();
  });
}

grpc::Status IdentityService::RemoveTeamMember(Ctx* ctx, const v1::RemoveTeamMemberRequest* req,
                                               v1::RemoveTeamMemberResponse*) {
  return Handle([&]() -> absl::Status {
    CRM_ASSIGN_OR_RETURN(Caller caller, Authorize(ctx, kIdentityAdmin));
    CRM_ASSIGN_OR_RETURN(std::string team, base::CanonicalUuid("team_id", req->team_id()));
    CRM_ASSIGN_OR_RETURN(std::string user, base::CanonicalUuid("user_id", req->user_id()));
    CRM_RETURN_IF_ERROR(d_.users.RemoveTeamMember(team, user));
    Audit(ctx, &caller, "identity.team.remove_member", absl::StrCat("team/", team),
          crm::audit::v1::OUTCOME_SUCCESS, {{"user_id", user}});
    return absl::OkStatus();
  });
}

// ---- Service accounts and keys -------------------------------------------------

grpc::Status IdentityService::CreateServiceAccount(Ctx* ctx,
                                                   const v1::CreateServiceAccountRequest* req,
                                                   v1::CreateServiceAccountResponse* resp) {
  return Handle([&]() -> absl::Status {
    CRM_ASSIGN_OR_RETURN(Caller caller, Authorize(ctx, kIdentityAdmin));
    CRM_ASSIGN_OR_RETURN(std::string name, NormalizeUsername("name", req->name()));
    CRM_RETURN_IF_ERROR(base::ValidateText(
        "display_name", req->display_name().empty() ? name : req->display_name(), 1, 200));
    CRM_RETURN_IF_ERROR(ValidateSpiffeId("spiffe_id", req->spiffe_id()));
    if (absl::StatusOr<ServiceAccountBinding> taken =
            d_.grants.FindServiceAccountBySpiffeId(req->spiffe_id());
        taken.ok()) {
      return absl::AlreadyExistsError("spiffe_id: already bound to a service account");
    }
    NewUser user;
    user.kind = UserKind::kServiceAccount;
    user.username_index = d_.personal.Index(PersonalField::kUsername, name);
    CRM_ASSIGN_OR_RETURN(user.username_ciphertext,
                         d_.personal.Seal(PersonalField::kUsername, name));
    CRM_ASSIGN_OR_RETURN(
        user.display_name_ciphertext,
        d_.personal.Seal(PersonalField::kDisplayName,
                         req->display_name().empty() ? name : req->display_name()));
    absl::StatusOr<UserRecord> created = d_.users.CreateUser(user);
    if (absl::IsAlreadyExists(created.status())) {
      return absl::AlreadyExistsError("name: already taken");
    }
    CRM_RETURN_IF_ERROR(created.status());
    absl::StatusOr<ServiceAccountBinding> bound =
        d_.grants.BindServiceAccount(created->id, req->spiffe_id(), d_.clock.Now());
    if (!bound.ok()) {
      (void)d_.users.DeleteUser(created->id);  // no half-made account
      return bound.status();
    }
    Audit(ctx, &caller, "identity.service_account.create", UserResource(created->id),
          crm::audit::v1::OUTCOME_SUCCESS, {{"spiffe_id", req->spiffe_id()}});
    CRM_ASSIGN_OR_RETURN(*resp->mutable_account()->mutable_user(), ToProto(*created));
    resp->mutable_account()->set_spiffe_id(bound->spiffe_id);
    return absl::OkStatus();
  });
}

grpc::Status IdentityService::IssueServiceToken(Ctx* ctx, const v1::IssueServiceTokenRequest*,
                                                v1::IssueServiceTokenResponse* resp) {
  return Handle([&]() -> absl::Status {
    const absl::Status refused =
        absl::UnauthenticatedError("no active service account is bound to this certificate");
    const std::string spiffe_id = rpc::PeerIdentity(*ctx);
    const std::string cert = rpc::PeerCertificateDer(*ctx);
    if (spiffe_id.empty() || cert.empty()) return refused;
    absl::StatusOr<ServiceAccountBinding> binding =
        d_.grants.FindServiceAccountBySpiffeId(spiffe_id);
    if (absl::IsNotFound(binding.status())) return refused;
    CRM_RETURN_IF_ERROR(binding.status());
    absl::StatusOr<UserRecord> user = d_.users.GetUser(binding->user_id);
    if (absl::IsNotFound(user.status())) return refused;
    CRM_RETURN_IF_ERROR(user.status());
    if (user->status != UserStatus::kActive) return refused;
    absl::Time expires_at;
    CRM_ASSIGN_OR_RETURN(
        std::string token,
        MintAccessToken(user->id, binding->token_session_id, false, d_.config.service_token_ttl,
                        auth::CertificateThumbprint(cert), &expires_at));
    resp->set_access_token(token);
    SetTime(expires_at, resp->mutable_expires_at());
    Audit(ctx, nullptr, "identity.service_token.issue", UserResource(user->id),
          crm::audit::v1::OUTCOME_SUCCESS);
    return absl::OkStatus();
  });
}

absl::Status IdentityService::CheckCaller(Ctx* ctx, const std::vector<std::string>& allowed,
                                          absl::string_view refusal) {
  const std::string peer = rpc::PeerIdentity(*ctx);
  for (const std::string& name : allowed) {
    if (peer.empty()) break;
    if (peer ==
        (absl::StartsWith(name, "spiffe://") ? name : absl::StrCat("spiffe://crm.local/", name))) {
      return absl::OkStatus();
    }
  }
  return absl::PermissionDeniedError(refusal);
}

grpc::Status IdentityService::CheckSession(Ctx* ctx, const v1::CheckSessionRequest* req,
                                           v1::CheckSessionResponse* resp) {
  return Handle([&]() -> absl::Status {
    CRM_RETURN_IF_ERROR(CheckCaller(ctx, d_.config.session_check_callers,
                                    "CheckSession is only for the services that verify tokens"));
    CRM_ASSIGN_OR_RETURN(const bool revoked, d_.revocation.IsRevoked(req->session_id()));
    resp->set_revoked(revoked);
    return absl::OkStatus();
  });
}

grpc::Status IdentityService::GetSigningKeys(Ctx*, const v1::GetSigningKeysRequest*,
                                             v1::GetSigningKeysResponse* resp) {
  return Handle([&]() -> absl::Status {
    for (const PublishedKey& k : d_.keys.Published()) {
      v1::SigningKey* out = resp->add_keys();
      out->set_kid(k.kid);
      out->set_algorithm("EdDSA");
      out->set_public_key(k.public_key);
      SetTime(k.created_at, out->mutable_created_at());
      if (k.retired_at.has_value()) SetTime(*k.retired_at, out->mutable_retired_at());
    }
    return absl::OkStatus();
  });
}

absl::StatusOr<std::string> IdentityService::MintAccessToken(
    absl::string_view user_id, absl::string_view session_id, bool restricted, absl::Duration ttl,
    absl::string_view cert_thumbprint, absl::Time* expires_at, const EffectiveAccess* precomputed) {
  const absl::Time now = d_.clock.Now();
  auth::AccessTokenClaims claims;
  claims.subject = std::string(user_id);
  claims.session_id = std::string(session_id);
  claims.cert_thumbprint = std::string(cert_thumbprint);
  if (restricted) {
    claims.permissions = {std::string(kRestrictedScope)};
    claims.expires_at = now + ttl;
  } else {
    EffectiveAccess access;
    if (precomputed != nullptr) {
      access = *precomputed;
    } else {
      CRM_ASSIGN_OR_RETURN(access, AccessOf(user_id));
    }
    claims.permissions.assign(access.permissions.begin(), access.permissions.end());
    CRM_ASSIGN_OR_RETURN(claims.teams, d_.users.ListTeamIdsOfUser(user_id));
    claims.expires_at = TokenExpiry(now, access.earliest_end, ttl);
  }
  return SignToken(std::move(claims), now, expires_at);
}

absl::StatusOr<std::string> IdentityService::SignToken(auth::AccessTokenClaims claims,
                                                       absl::Time now, absl::Time* expires_at) {
  claims.issuer = d_.config.token_issuer;
  claims.audience = {d_.config.token_audience};
  claims.issued_at = now;
  claims.token_id = base::NewUuid();
  if (claims.expires_at <= now) claims.expires_at = now + absl::Seconds(1);
  CRM_ASSIGN_OR_RETURN(std::shared_ptr<const auth::TokenSigner> signer, d_.keys.CurrentSigner());
  *expires_at = claims.expires_at;
  return signer->Sign(claims);
}

}  // namespace crm::identity
