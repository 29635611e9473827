// Login, sessions, passwords, lockout and MFA handlers of IdentityService.
#include <prometheus/counter.h>
#include <prometheus/family.h>

#include <algorithm>
#include <cmath>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "libs/auth/base64url.h"
#include "libs/base/status_macros.h"
#include "libs/base/uuid.h"
#include "libs/base/validate.h"
#include "libs/crypto/primitives.h"
#include "libs/log/log.h"
#include "libs/rpc/request_id.h"
#include "services/identity/identity_service.h"
#include "services/identity/recovery_codes.h"
#include "services/identity/service_util.h"
#include "services/identity/totp.h"

namespace crm::identity {

namespace {

using crm::audit::v1::OUTCOME_DENIED;
using crm::audit::v1::OUTCOME_FAILURE;
using crm::audit::v1::OUTCOME_SUCCESS;

// A user id no user has: unknown usernames read its credentials (NOT_FOUND)
// to cost what reading a real user's does.
constexpr char kDecoyUserId[] = "00000000-0000-4000-8000-000000000000";

// The one answer for every refused login (no user enumeration).
absl::Status InvalidCredentials() { return absl::UnauthenticatedError("invalid credentials"); }

// Refresh tokens are "<session id>.<43 base64url characters of 32 random
// bytes>"; the store keeps SHA-256 of the whole string. The session id lets
// a replay be answered by revoking the session's access tokens too.
std::string NewRefreshToken(absl::string_view session_id) {
  return absl::StrCat(session_id, ".", auth::Base64UrlEncode(crypto::RandomBytes(32)));
}

absl::StatusOr<std::string> SessionOfRefreshToken(absl::string_view token) {
  std::vector<absl::string_view> parts = absl::StrSplit(token, absl::MaxSplits('.', 1));
  if (token.size() > 200 || parts.size() != 2 || !base::IsUuid(parts[0]) || parts[1].size() != 43) {
    return absl::UnauthenticatedError("refresh token not recognised");
  }
  return absl::AsciiStrToLower(parts[0]);
}

v1::LoginResult ResultToProto(LoginResult r) {
  switch (r) {
    case LoginResult::kSuccess:
      return v1::LOGIN_RESULT_SUCCESS;
    case LoginResult::kBadPassword:
      return v1::LOGIN_RESULT_BAD_PASSWORD;
    case LoginResult::kUnknownUser:
      return v1::LOGIN_RESULT_UNKNOWN_USER;
    case LoginResult::kLocked:
      return v1::LOGIN_RESULT_LOCKED;
    case LoginResult::kMfaFailed:
      return v1::LOGIN_RESULT_MFA_FAILED;
    case LoginResult::kPasswordExpired:
      return v1::LOGIN_RESULT_PASSWORD_EXPIRED;
    case LoginResult::kDisabled:
      return v1::LOGIN_RESULT_DISABLED;
    case LoginResult::kThrottled:
      return v1::LOGIN_RESULT_THROTTLED;
  }
  return v1::LOGIN_RESULT_UNSPECIFIED;
}

}  // namespace

void IdentityService::RecordAttempt(std::optional<std::string> user_id, LoginResult result,
                                    const LoginContext& where, absl::string_view request_id) {
  if (logins_ != nullptr) {
    logins_->Add({{"result", std::string(LoginResultName(result))}}).Increment();
  }
  LoginAttempt attempt{.user_id = user_id, .at = d_.clock.Now(), .result = result};
  absl::StatusOr<std::optional<std::string>> source =
      d_.personal.SealOptional(PersonalField::kSourceAddress, where.source_address);
  absl::StatusOr<std::optional<std::string>> agent =
      d_.personal.SealOptional(PersonalField::kUserAgent, where.user_agent);
  if (source.ok()) attempt.source_address_ciphertext = *source;
  if (agent.ok()) attempt.user_agent_ciphertext = *agent;
  absl::StatusOr<LoginHistoryRecord> stored = d_.sessions.AppendLogin(attempt);
  if (!stored.ok()) log::Error("identity.login_history_failed", {{"status", stored.status()}});

  crm::audit::v1::Event event;
  event.set_action(result == LoginResult::kSuccess || result == LoginResult::kPasswordExpired
                       ? "identity.login.success"
                       : "identity.login.failure");
  event.set_resource(user_id.has_value() ? UserResource(*user_id) : "user/unknown");
  event.set_outcome(result == LoginResult::kSuccess || result == LoginResult::kPasswordExpired
                        ? OUTCOME_SUCCESS
                        : OUTCOME_DENIED);
  if (user_id.has_value()) event.mutable_actor()->set_user_id(*user_id);
  event.set_request_id(std::string(request_id));
  event.set_source_address(where.source_address);
  event.set_user_agent(where.user_agent);
  crm::audit::v1::Detail* detail = event.add_details();
  detail->set_key("result");
  detail->set_value(std::string(LoginResultName(result)));
  EnqueueAudit(event);
}

absl::StatusOr<IdentityService::IssuedSession> IdentityService::StartSession(
    const UserRecord& user, bool restricted, const LoginContext& where,
    const EffectiveAccess* access) {
  const absl::Time now = d_.clock.Now();
  IssuedSession out;
  out.session_id = base::NewUuid();
  const std::string refresh = NewRefreshToken(out.session_id);
  NewSession s{.id = out.session_id,
               .family_id = out.session_id,
               .user_id = user.id,
               .refresh_token_hash = crypto::Sha256(refresh),
               .password_change_only = restricted,
               .created_at = now,
               .expires_at = now + d_.config.refresh_token_ttl};
  CRM_ASSIGN_OR_RETURN(
      s.source_address_ciphertext,
      d_.personal.SealOptional(PersonalField::kSourceAddress, where.source_address));
  CRM_ASSIGN_OR_RETURN(s.user_agent_ciphertext,
                       d_.personal.SealOptional(PersonalField::kUserAgent, where.user_agent));
  CRM_ASSIGN_OR_RETURN(SessionRecord stored, d_.sessions.Create(s));
  absl::Time access_expires;
  CRM_ASSIGN_OR_RETURN(std::string access_token,
                       MintAccessToken(user.id, out.session_id, restricted,
                                       d_.config.access_token_ttl, "", &access_expires, access));
  out.tokens.set_access_token(access_token);
  SetTime(access_expires, out.tokens.mutable_access_expires_at());
  out.tokens.set_refresh_token(refresh);
  SetTime(stored.expires_at, out.tokens.mutable_refresh_expires_at());
  return out;
}

grpc::Status IdentityService::Login(Ctx* ctx, const v1::LoginRequest* req,
                                    v1::LoginResponse* resp) {
  return Handle([&]() -> absl::Status {
    CRM_ASSIGN_OR_RETURN(std::string username, NormalizeUsername("username", req->username()));
    CRM_RETURN_IF_ERROR(ValidatePasswordInput(req->password()));
    CRM_RETURN_IF_ERROR(base::ValidateText("user_agent", req->user_agent(), 0, 512));
    CRM_RETURN_IF_ERROR(base::ValidateText("source_address", req->source_address(), 0, 64));
    CRM_RETURN_IF_ERROR(base::ValidateText("totp_code", req->totp_code(), 0, 32));
    const LoginContext where{req->source_address(), req->user_agent()};
    const std::string request_id = rpc::RequestId(*ctx);
    if (absl::Status admitted = d_.guard.Admit(where.source_address); !admitted.ok()) {
      RecordAttempt(std::nullopt, LoginResult::kThrottled, where, request_id);
      return admitted;
    }

    absl::StatusOr<UserRecord> user =
        d_.users.FindUserByUsernameIndex(d_.personal.Index(PersonalField::kUsername, username));
    if (!user.ok() && !absl::IsNotFound(user.status())) return user.status();
    // Refusals before the password check still pay for one hash, so that
    // they take as long as a wrong password.
    // Refusals before the password check also do the look-ups and the
    // failure count a wrong password does (on decoys), so that the time does
    // not tell which usernames exist (login_bench measured ~5 ms otherwise).
    auto refuse = [&](std::optional<std::string> id, LoginResult result) -> absl::Status {
      CRM_RETURN_IF_ERROR(d_.hasher.DummyVerify(req->password()).status());
      if (!id.has_value()) (void)d_.credentials.Get(kDecoyUserId);
      d_.guard.RecordDecoyFailure(username);
      RecordAttempt(std::move(id), result, where, request_id);
      return InvalidCredentials();
    };
    if (!user.ok()) return refuse(std::nullopt, LoginResult::kUnknownUser);
    if (user->kind != UserKind::kPerson || !user->password_hash.has_value()) {
      return refuse(user->id, LoginResult::kDisabled);
    }
    CRM_ASSIGN_OR_RETURN(Credentials creds, d_.credentials.Get(user->id));
    if (d_.guard.IsLocked(creds.lockout)) return refuse(user->id, LoginResult::kLocked);
    if (user->status != UserStatus::kActive) return refuse(user->id, LoginResult::kDisabled);

    const std::string stored_hash = creds.password_hash.value_or(*user->password_hash);
    CRM_ASSIGN_OR_RETURN(VerifyResult verified, d_.hasher.Verify(req->password(), stored_hash));
    auto fail = [&](LoginResult result) -> absl::Status {
      CRM_ASSIGN_OR_RETURN(LoginGuard::FailureResult f, d_.guard.RecordFailure(user->id));
      RecordAttempt(user->id, result, where, request_id);
      if (f.event != LockoutEvent::kNone) {
        const bool admin = f.event == LockoutEvent::kAdminLocked;
        if (lockouts_ != nullptr) lockouts_->Add({{"kind", admin ? "admin" : "timed"}}).Increment();
        Audit(ctx, nullptr, "identity.user.locked", UserResource(user->id), OUTCOME_SUCCESS,
              {{"kind", admin ? "until_admin_unlock" : "timed"},
               {"seconds", absl::StrCat(admin ? 0 : absl::ToInt64Seconds(f.lock_duration))}});
      }
      return InvalidCredentials();
    };
    if (!verified.match) return fail(LoginResult::kBadPassword);

    const absl::Time now = d_.clock.Now();
    CRM_ASSIGN_OR_RETURN(const EffectiveAccess access, AccessOf(user->id));

    bool mfa_enrollment_required = false;
    if (creds.totp_enabled()) {
      if (req->totp_code().empty()) {
        RecordAttempt(user->id, LoginResult::kMfaFailed, where, request_id);
        return absl::FailedPreconditionError("totp required");
      }
      if (!CheckSecondFactor(user->id, creds, req->totp_code()).ok()) {
        return fail(LoginResult::kMfaFailed);
      }
    } else if (access.mfa_required) {
      mfa_enrollment_required = true;
    }

    if (verified.needs_rehash) {
      absl::StatusOr<std::string> rehashed = d_.hasher.Hash(req->password());
      if (rehashed.ok()) (void)d_.credentials.ReplaceHash(user->id, stored_hash, *rehashed);
    }
    const bool expired = d_.config.max_password_age > absl::ZeroDuration() &&
                         creds.password_changed_at.has_value() &&
                         *creds.password_changed_at + d_.config.max_password_age <= now;
    const bool change_required = expired || creds.must_change_password;
    CRM_RETURN_IF_ERROR(d_.guard.RecordSuccess(user->id));
    CRM_ASSIGN_OR_RETURN(
        IssuedSession session,
        StartSession(*user, change_required || mfa_enrollment_required, where, &access));
    *resp->mutable_tokens() = std::move(session.tokens);
    resp->set_user_id(user->id);
    resp->set_session_id(session.session_id);
    resp->set_password_change_required(change_required);
    resp->set_mfa_enrollment_required(mfa_enrollment_required);
    if (!change_required && d_.config.max_password_age > absl::ZeroDuration() &&
        creds.password_changed_at.has_value() && !d_.config.reminder_days.empty()) {
      const absl::Duration left = *creds.password_changed_at + d_.config.max_password_age - now;
      const int days = static_cast<int>(std::ceil(absl::ToDoubleHours(left) / 24));
      if (days <= d_.config.reminder_days.front()) resp->set_password_expires_in_days(days);
    }
    RecordAttempt(user->id, change_required ? LoginResult::kPasswordExpired : LoginResult::kSuccess,
                  where, request_id);
    return absl::OkStatus();
  });
}

absl::Status IdentityService::CheckSecondFactor(absl::string_view user_id, const Credentials& creds,
                                                absl::string_view code) {
  std::string digits(absl::StripAsciiWhitespace(code));
  digits.erase(std::remove(digits.begin(), digits.end(), ' '), digits.end());
  if (digits.size() == kTotpDigits) {
    CRM_ASSIGN_OR_RETURN(std::string secret, d_.personal.Open(PersonalField::kTotpSecret,
                                                              *creds.totp_secret_ciphertext));
    CRM_ASSIGN_OR_RETURN(int64_t step, VerifyTotp(crypto::SecretBytes::CopyFrom(secret), digits,
                                                  d_.clock.Now(), creds.totp_last_step));
    CRM_ASSIGN_OR_RETURN(bool used, d_.credentials.UseTotpStep(user_id, step));
    if (!used) return absl::UnauthenticatedError("totp code already used");
    return absl::OkStatus();
  }
  CRM_ASSIGN_OR_RETURN(size_t index,
                       ConsumeRecoveryCode(code, creds.recovery_salt, creds.recovery_code_hashes));
  CRM_ASSIGN_OR_RETURN(
      bool used, d_.credentials.UseRecoveryCode(user_id, index, creds.recovery_code_hashes[index]));
  if (!used) return absl::UnauthenticatedError("recovery code already used");
  return absl::OkStatus();
}

grpc::Status IdentityService::RefreshSession(Ctx* ctx, const v1::RefreshSessionRequest* req,
                                             v1::RefreshSessionResponse* resp) {
  return Handle([&]() -> absl::Status {
    CRM_ASSIGN_OR_RETURN(std::string session_id, SessionOfRefreshToken(req->refresh_token()));
    const std::string next = NewRefreshToken(session_id);
    absl::StatusOr<SessionRecord> rotated = d_.sessions.Rotate(
        crypto::Sha256(req->refresh_token()), crypto::Sha256(next), d_.clock.Now());
    if (absl::IsFailedPrecondition(rotated.status())) {
      // A rotated token came back: someone holds a copy. The store revoked
      // the session; its access tokens die too.
      (void)d_.revocation.Revoke(session_id);
      Audit(ctx, nullptr, "identity.session.replay", absl::StrCat("session/", session_id),
            OUTCOME_DENIED);
      return absl::UnauthenticatedError("refresh token reused; session revoked");
    }
    CRM_RETURN_IF_ERROR(rotated.status());
    absl::StatusOr<UserRecord> user = d_.users.GetUser(rotated->user_id);
    CRM_RETURN_IF_ERROR(user.status());
    CRM_ASSIGN_OR_RETURN(Credentials creds, d_.credentials.Get(user->id));
    if (user->status != UserStatus::kActive || d_.guard.IsLocked(creds.lockout)) {
      (void)d_.sessions.Revoke(session_id, d_.clock.Now());
      (void)d_.revocation.Revoke(session_id);
      return absl::UnauthenticatedError("session revoked");
    }
    absl::Time access_expires;
    CRM_ASSIGN_OR_RETURN(
        std::string access,
        MintAccessToken(user->id, rotated->family_id, rotated->password_change_only,
                        d_.config.access_token_ttl, "", &access_expires));
    resp->mutable_tokens()->set_access_token(access);
    SetTime(access_expires, resp->mutable_tokens()->mutable_access_expires_at());
    resp->mutable_tokens()->set_refresh_token(next);
    SetTime(rotated->expires_at, resp->mutable_tokens()->mutable_refresh_expires_at());
    return absl::OkStatus();
  });
}

grpc::Status IdentityService::Logout(Ctx* ctx, const v1::LogoutRequest*, v1::LogoutResponse*) {
  return Handle([&]() -> absl::Status {
    CRM_ASSIGN_OR_RETURN(Caller caller, Authenticate(ctx, /*allow_restricted=*/true));
    absl::Status s = d_.sessions.Revoke(caller.principal->session_id, d_.clock.Now());
    if (!s.ok() && !absl::IsNotFound(s)) return s;
    CRM_RETURN_IF_ERROR(d_.revocation.Revoke(caller.principal->session_id));
    Audit(ctx, &caller, "identity.logout", UserResource(caller.id()), OUTCOME_SUCCESS);
    return absl::OkStatus();
  });
}

grpc::Status IdentityService::ListSessions(Ctx* ctx, const v1::ListSessionsRequest* req,
                                           v1::ListSessionsResponse* resp) {
  return Handle([&]() -> absl::Status {
    CRM_ASSIGN_OR_RETURN(Caller caller, Authorize(ctx, kIdentityAdmin, req->user_id()));
    CRM_ASSIGN_OR_RETURN(UserRecord user, FindUser("user_id", req->user_id()));
    CRM_ASSIGN_OR_RETURN(std::vector<SessionRecord> sessions,
                         d_.sessions.ListSessions(user.id, d_.clock.Now()));
    for (const SessionRecord& s : sessions) {
      v1::Session* out = resp->add_sessions();
      out->set_session_id(s.family_id);
      out->set_user_id(s.user_id);
      SetTime(s.created_at, out->mutable_last_used_at());
      SetTime(s.expires_at, out->mutable_expires_at());
      CRM_ASSIGN_OR_RETURN(
          *out->mutable_source_address(),
          d_.personal.OpenOptional(PersonalField::kSourceAddress, s.source_address_ciphertext));
      CRM_ASSIGN_OR_RETURN(
          *out->mutable_user_agent(),
          d_.personal.OpenOptional(PersonalField::kUserAgent, s.user_agent_ciphertext));
      out->set_current(s.family_id == caller.principal->session_id);
    }
    return absl::OkStatus();
  });
}

grpc::Status IdentityService::RevokeSession(Ctx* ctx, const v1::RevokeSessionRequest* req,
                                            v1::RevokeSessionResponse* resp) {
  return Handle([&]() -> absl::Status {
    CRM_ASSIGN_OR_RETURN(Caller caller, Authorize(ctx, kIdentityAdmin, req->user_id()));
    CRM_ASSIGN_OR_RETURN(UserRecord user, FindUser("user_id", req->user_id()));
    if (req->session_id().empty()) {
      CRM_ASSIGN_OR_RETURN(std::vector<std::string> revoked,
                           d_.sessions.RevokeAllForUser(user.id, std::nullopt, d_.clock.Now()));
      CRM_RETURN_IF_ERROR(d_.revocation.RevokeMany(revoked));
      resp->set_revoked(static_cast<int32_t>(revoked.size()));
    } else {
      CRM_ASSIGN_OR_RETURN(std::string session_id,
                           base::CanonicalUuid("session_id", req->session_id()));
      CRM_ASSIGN_OR_RETURN(std::vector<SessionRecord> live,
                           d_.sessions.ListSessions(user.id, d_.clock.Now()));
      const bool owned = std::any_of(live.begin(), live.end(), [&](const SessionRecord& s) {
        return s.family_id == session_id;
      });
      if (owned) {
        CRM_RETURN_IF_ERROR(d_.sessions.Revoke(session_id, d_.clock.Now()));
        resp->set_revoked(1);
      }
      // Revoking again (or an ended session of the user) is harmless; a
      // session of another user is not touched: its id is only revoked in
      // Redis if the user owns it.
      if (owned) CRM_RETURN_IF_ERROR(d_.revocation.Revoke(session_id));
    }
    Audit(ctx, &caller, "identity.session.revoke", UserResource(user.id), OUTCOME_SUCCESS,
          {{"session_id", req->session_id().empty() ? "all" : req->session_id()},
           {"revoked", absl::StrCat(resp->revoked())}});
    return absl::OkStatus();
  });
}

grpc::Status IdentityService::ListLoginHistory(Ctx* ctx, const v1::ListLoginHistoryRequest* req,
                                               v1::ListLoginHistoryResponse* resp) {
  return Handle([&]() -> absl::Status {
    CRM_ASSIGN_OR_RETURN(Caller caller, Authenticate(ctx));
    if (!caller.Has(kIdentityAdmin) && !caller.Has(kAuditRead)) {
      return absl::PermissionDeniedError("requires permission identity.admin or audit.read");
    }
    CRM_ASSIGN_OR_RETURN(UserRecord user, FindUser("user_id", req->user_id()));
    absl::Time start = absl::UnixEpoch();
    absl::Time end = d_.clock.Now() + absl::Hours(1);
    if (req->range().has_start()) {
      CRM_ASSIGN_OR_RETURN(start, GetTime("range.start", req->range().start()));
    }
    if (req->range().has_end()) {
      CRM_ASSIGN_OR_RETURN(end, GetTime("range.end", req->range().end()));
    }
    if (end < start) return absl::InvalidArgumentError("range.end: before range.start");
    absl::StatusOr<LoginHistoryPage> page = d_.sessions.ListLogins(
        user.id, start, end, req->page().page_size(), req->page().page_token());
    if (absl::IsInvalidArgument(page.status())) {
      return absl::InvalidArgumentError(absl::StrCat("page.", page.status().message()));
    }
    CRM_RETURN_IF_ERROR(page.status());
    for (const LoginHistoryRecord& r : page->entries) {
      v1::LoginAttempt* out = resp->add_attempts();
      out->set_attempt_id(r.id);
      out->set_user_id(r.user_id.value_or(""));
      SetTime(r.at, out->mutable_at());
      out->set_result(ResultToProto(r.result));
      CRM_ASSIGN_OR_RETURN(
          *out->mutable_source_address(),
          d_.personal.OpenOptional(PersonalField::kSourceAddress, r.source_address_ciphertext));
      CRM_ASSIGN_OR_RETURN(
          *out->mutable_user_agent(),
          d_.personal.OpenOptional(PersonalField::kUserAgent, r.user_agent_ciphertext));
    }
    resp->mutable_page()->set_next_page_token(page->next_page_token);
    Audit(ctx, &caller, "identity.login_history.read", UserResource(user.id), OUTCOME_SUCCESS);
    return absl::OkStatus();
  });
}

// ---- Passwords and lockout ------------------------------------------------------

grpc::Status IdentityService::ChangePassword(Ctx* ctx, const v1::ChangePasswordRequest* req,
                                             v1::ChangePasswordResponse* resp) {
  return Handle([&]() -> absl::Status {
    CRM_ASSIGN_OR_RETURN(Caller caller, Authenticate(ctx, /*allow_restricted=*/true));
    if (absl::Status s = ValidatePasswordInput(req->current_password()); !s.ok()) {
      return absl::InvalidArgumentError("current_password: must be 1..128 characters of text");
    }
    if (absl::Status s = ValidatePasswordInput(req->new_password()); !s.ok()) {
      return absl::InvalidArgumentError("new_password: must be 1..128 characters of text");
    }
    CRM_ASSIGN_OR_RETURN(UserRecord user, FindUser("user_id", caller.id()));
    if (user.kind != UserKind::kPerson) {
      return absl::FailedPreconditionError("a service account has no password");
    }
    CRM_ASSIGN_OR_RETURN(Credentials creds, d_.credentials.Get(user.id));
    if (d_.guard.IsLocked(creds.lockout)) return InvalidCredentials();
    CRM_ASSIGN_OR_RETURN(VerifyResult verified, d_.hasher.Verify(req->current_password(),
                                                                 creds.password_hash.value_or("")));
    if (!verified.match) {
      CRM_RETURN_IF_ERROR(d_.guard.RecordFailure(user.id).status());
      Audit(ctx, &caller, "identity.password.change", UserResource(user.id), OUTCOME_DENIED);
      return absl::UnauthenticatedError("current_password: does not match");
    }
    CRM_ASSIGN_OR_RETURN(std::string username,
                         d_.personal.Open(PersonalField::kUsername, user.username_ciphertext));
    CRM_ASSIGN_OR_RETURN(std::string email,
                         d_.personal.OpenOptional(PersonalField::kEmail, user.email_ciphertext));
    CRM_ASSIGN_OR_RETURN(std::vector<std::string> history, d_.credentials.PasswordHistory(user.id));
    CRM_ASSIGN_OR_RETURN(std::vector<Violation> violations,
                         d_.policy.Check(req->new_password(), {.username = username,
                                                               .email = email,
                                                               .previous_hashes = history,
                                                               .hasher = d_.hasher}));
    CRM_RETURN_IF_ERROR(PrefixField("new_", ToStatus(violations)));
    CRM_ASSIGN_OR_RETURN(std::string hash, d_.hasher.Hash(req->new_password()));
    CRM_RETURN_IF_ERROR(d_.credentials.SetPassword(user.id, hash, false, d_.clock.Now()));
    // Every session ends, the caller's too: it gets a fresh one below.
    CRM_RETURN_IF_ERROR(RevokeSessionsOf(user.id, std::nullopt));
    CRM_RETURN_IF_ERROR(d_.revocation.Revoke(caller.principal->session_id));
    Audit(ctx, &caller, "identity.password.change", UserResource(user.id), OUTCOME_SUCCESS);
    CRM_ASSIGN_OR_RETURN(const EffectiveAccess access, AccessOf(user.id));
    const bool mfa_pending = !creds.totp_enabled() && access.mfa_required;
    CRM_ASSIGN_OR_RETURN(IssuedSession session, StartSession(user, mfa_pending, LoginContext{}));
    *resp->mutable_tokens() = std::move(session.tokens);
    return absl::OkStatus();
  });
}

grpc::Status IdentityService::RequirePasswordChange(Ctx* ctx,
                                                    const v1::RequirePasswordChangeRequest* req,
                                                    v1::RequirePasswordChangeResponse* resp) {
  return Handle([&]() -> absl::Status {
    CRM_ASSIGN_OR_RETURN(Caller caller, Authorize(ctx, kIdentityAdmin));
    CRM_ASSIGN_OR_RETURN(UserRecord user, FindUser("user_id", req->user_id()));
    if (user.kind != UserKind::kPerson) {
      return absl::FailedPreconditionError("user_id: a service account has no password");
    }
    CRM_RETURN_IF_ERROR(d_.credentials.SetMustChangePassword(user.id, true));
    const absl::Time now = d_.clock.Now();
    CRM_RETURN_IF_ERROR(d_.credentials
                            .EnqueueNotice({.user_id = user.id,
                                            .kind = NoticeKind::kPasswordChangeRequired,
                                            .params_json = "{}",
                                            .dedup_key = absl::StrCat("password-change:", user.id,
                                                                      ":", absl::ToUnixMicros(now)),
                                            .now = now})
                            .status());
    Audit(ctx, &caller, "identity.password.require_change", UserResource(user.id), OUTCOME_SUCCESS);
    CRM_ASSIGN_OR_RETURN(*resp->mutable_user(), ToProto(user));
    return absl::OkStatus();
  });
}

grpc::Status IdentityService::UnlockUser(Ctx* ctx, const v1::UnlockUserRequest* req,
                                         v1::UnlockUserResponse* resp) {
  return Handle([&]() -> absl::Status {
    CRM_ASSIGN_OR_RETURN(Caller caller, Authorize(ctx, kIdentityAdmin));
    CRM_ASSIGN_OR_RETURN(UserRecord user, FindUser("user_id", req->user_id()));
    CRM_RETURN_IF_ERROR(d_.guard.Unlock(user.id));
    Audit(ctx, &caller, "identity.user.unlock", UserResource(user.id), OUTCOME_SUCCESS);
    CRM_ASSIGN_OR_RETURN(*resp->mutable_user(), ToProto(user));
    return absl::OkStatus();
  });
}

// ---- MFA ------------------------------------------------------------------------

grpc::Status IdentityService::EnrollTotp(Ctx* ctx, const v1::EnrollTotpRequest*,
                                         v1::EnrollTotpResponse* resp) {
  return Handle([&]() -> absl::Status {
    CRM_ASSIGN_OR_RETURN(Caller caller, Authenticate(ctx, /*allow_restricted=*/true));
    CRM_ASSIGN_OR_RETURN(UserRecord user, FindUser("user_id", caller.id()));
    if (user.kind != UserKind::kPerson) {
      return absl::FailedPreconditionError("a service account has no second factor");
    }
    crypto::SecretBytes secret = NewTotpSecret();
    CRM_ASSIGN_OR_RETURN(std::string sealed,
                         d_.personal.Seal(PersonalField::kTotpSecret, secret.view()));
    CRM_RETURN_IF_ERROR(d_.credentials.BeginTotpEnrollment(user.id, sealed));
    CRM_ASSIGN_OR_RETURN(*resp->mutable_provisioning_uri(), ProvisioningUri(user.id, secret));
    resp->set_secret_base32(Base32Encode(secret.view()));
    Audit(ctx, &caller, "identity.totp.enroll", UserResource(user.id), OUTCOME_SUCCESS);
    return absl::OkStatus();
  });
}

grpc::Status IdentityService::ConfirmTotp(Ctx* ctx, const v1::ConfirmTotpRequest* req,
                                          v1::ConfirmTotpResponse* resp) {
  return Handle([&]() -> absl::Status {
    CRM_ASSIGN_OR_RETURN(Caller caller, Authenticate(ctx, /*allow_restricted=*/true));
    CRM_ASSIGN_OR_RETURN(Credentials creds, d_.credentials.Get(caller.id()));
    if (!creds.totp_secret_ciphertext.has_value() || creds.totp_confirmed_at.has_value()) {
      return absl::FailedPreconditionError("no pending totp enrolment");
    }
    CRM_ASSIGN_OR_RETURN(std::string secret, d_.personal.Open(PersonalField::kTotpSecret,
                                                              *creds.totp_secret_ciphertext));
    absl::StatusOr<int64_t> step =
        VerifyTotp(crypto::SecretBytes::CopyFrom(secret), absl::StripAsciiWhitespace(req->code()),
                   d_.clock.Now(), std::nullopt);
    if (!step.ok()) return absl::InvalidArgumentError("code: does not match");
    const std::string salt = NewRecoverySalt();
    CRM_ASSIGN_OR_RETURN(RecoveryCodeSet codes, GenerateRecoveryCodes(salt));
    CRM_RETURN_IF_ERROR(
        d_.credentials.ConfirmTotp(caller.id(), *step, salt, codes.hashes, d_.clock.Now()));
    for (std::string& c : codes.codes) resp->add_recovery_codes(std::move(c));
    Audit(ctx, &caller, "identity.totp.confirm", UserResource(caller.id()), OUTCOME_SUCCESS);
    return absl::OkStatus();
  });
}

grpc::Status IdentityService::DisableTotp(Ctx* ctx, const v1::DisableTotpRequest* req,
                                          v1::DisableTotpResponse*) {
  return Handle([&]() -> absl::Status {
    CRM_ASSIGN_OR_RETURN(Caller caller, Authenticate(ctx));
    const bool self =
        req->user_id().empty() || absl::AsciiStrToLower(req->user_id()) == caller.id();
    if (!self && !caller.Has(kIdentityAdmin)) {
      return absl::PermissionDeniedError("requires permission identity.admin");
    }
    CRM_ASSIGN_OR_RETURN(UserRecord user, FindUser("user_id", self ? caller.id() : req->user_id()));
    CRM_ASSIGN_OR_RETURN(Credentials creds, d_.credentials.Get(user.id));
    CRM_ASSIGN_OR_RETURN(const EffectiveAccess access, AccessOf(user.id));
    if (access.mfa_required) {
      return absl::FailedPreconditionError("a role of this user requires MFA");
    }
    if (self && creds.totp_enabled()) {
      if (req->code().empty()) return absl::InvalidArgumentError("code: required");
      if (!CheckSecondFactor(user.id, creds, req->code()).ok()) {
        return absl::InvalidArgumentError("code: does not match");
      }
    }
    CRM_RETURN_IF_ERROR(d_.credentials.DisableTotp(user.id));
    Audit(ctx, &caller, "identity.totp.disable", UserResource(user.id), OUTCOME_SUCCESS);
    return absl::OkStatus();
  });
}

}  // namespace crm::identity
