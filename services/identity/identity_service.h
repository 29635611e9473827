// The gRPC handlers of crm.identity.v1.Identity (proto/crm/identity/v1/
// identity.proto documents every RPC's permission and errors). The handlers
// authenticate the caller's access token (libs/rpc call_auth.h), authorize,
// validate input (INVALID_ARGUMENT naming the field), turn personal data into
// blind indexes and ciphertext (personal_data.h), apply the pure rules
// (password policy, lockout, grants, TOTP) and the stores, revoke sessions in
// the Redis revocation set, and record an audit event for every change and
// every login attempt through the outbox.
//
// Tokens with the restricted scope (kRestrictedScope: expired or forced
// password change, or MFA enrolment a role requires) may call only
// ChangePassword, EnrollTotp, ConfirmTotp and Logout.
//
// Thread-safe: gRPC calls the handlers concurrently; all state is in the
// stores.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "crm/audit/v1/ingest.pb.h"
#include "crm/identity/v1/identity.grpc.pb.h"
#include "libs/auth/principal.h"
#include "libs/auth/token_verifier.h"
#include "libs/base/clock.h"
#include "libs/outbox/writer.h"
#include "libs/pg/pool.h"
#include "services/identity/credential_store.h"
#include "services/identity/grant_store.h"
#include "services/identity/identity_config.h"
#include "services/identity/login_guard.h"
#include "services/identity/password_hasher.h"
#include "services/identity/password_policy.h"
#include "services/identity/personal_data.h"
#include "services/identity/revocations.h"
#include "services/identity/session_store.h"
#include "services/identity/signing_keys.h"
#include "services/identity/subject_verification.h"
#include "services/identity/user_store.h"

namespace prometheus {
class Registry;
template <typename T>
class Family;
class Counter;
}  // namespace prometheus

namespace crm::identity {

// The only "permission" of a restricted token.
inline constexpr absl::string_view kRestrictedScope = "identity.self.restricted";

// What the handlers work with; all must outlive the service.
struct IdentityDeps {
  const IdentityConfig& config;
  const base::Clock& clock;
  pg::Pool& db;
  UserStore& users;
  SessionStore& sessions;
  CredentialStore& credentials;
  GrantStore& grants;
  SigningKeys& keys;
  auth::TokenVerifier& verifier;
  Revocations& revocation;
  const PasswordHasher& hasher;
  const PasswordPolicy& policy;
  LoginGuard& guard;
  const PersonalData& personal;
  const outbox::Writer& audit;
  prometheus::Registry* metrics = nullptr;  // optional
  // Subject verification (the privacy portal); null: FAILED_PRECONDITION.
  SubjectVerifier* subjects = nullptr;
};

class IdentityService final : public crm::identity::v1::Identity::Service {
 public:
  explicit IdentityService(IdentityDeps deps);

  using Ctx = grpc::ServerContext;
  grpc::Status CreateUser(Ctx* ctx, const v1::CreateUserRequest* req,
                          v1::CreateUserResponse* resp) override;
  grpc::Status GetUser(Ctx* ctx, const v1::GetUserRequest* req, v1::GetUserResponse* resp) override;
  grpc::Status ListUsers(Ctx* ctx, const v1::ListUsersRequest* req,
                         v1::ListUsersResponse* resp) override;
  grpc::Status DisableUser(Ctx* ctx, const v1::DisableUserRequest* req,
                           v1::DisableUserResponse* resp) override;
  grpc::Status EnableUser(Ctx* ctx, const v1::EnableUserRequest* req,
                          v1::EnableUserResponse* resp) override;
  grpc::Status DeleteUser(Ctx* ctx, const v1::DeleteUserRequest* req,
                          v1::DeleteUserResponse* resp) override;
  grpc::Status Login(Ctx* ctx, const v1::LoginRequest* req, v1::LoginResponse* resp) override;
  grpc::Status RefreshSession(Ctx* ctx, const v1::RefreshSessionRequest* req,
                              v1::RefreshSessionResponse* resp) override;
  grpc::Status Logout(Ctx* ctx, const v1::LogoutRequest* req, v1::LogoutResponse* resp) override;
  grpc::Status ListSessions(Ctx* ctx, const v1::ListSessionsRequest* req,
                            v1::ListSessionsResponse* resp) override;
  grpc::Status RevokeSession(Ctx* ctx, const v1::RevokeSessionRequest* req,
                             v1::RevokeSessionResponse* resp) override;
  grpc::Status ListLoginHistory(Ctx* ctx, const v1::ListLoginHistoryRequest* req,
                                v1::ListLoginHistoryResponse* resp) override;
  grpc::Status ChangePassword(Ctx* ctx, const v1::ChangePasswordRequest* req,
                              v1::ChangePasswordResponse* resp) override;
  grpc::Status RequirePasswordChange(Ctx* ctx, const v1::RequirePasswordChangeRequest* req,
                                     v1::RequirePasswordChangeResponse* resp) override;
  grpc::Status UnlockUser(Ctx* ctx, const v1::UnlockUserRequest* req,
                          v1::UnlockUserResponse* resp) override;
  grpc::Status ListRoles(Ctx* ctx, const v1::ListRolesRequest* req,
                         v1::ListRolesResponse* resp) override;
  grpc::Status CreateRole(Ctx* ctx, const v1::CreateRoleRequest* req,
                          v1::CreateRoleResponse* resp) override;
  grpc::Status SetRoleRequiresMfa(Ctx* ctx, const v1::SetRoleRequiresMfaRequest* req,
                                  v1::SetRoleRequiresMfaResponse* resp) override;
  grpc::Status GrantRole(Ctx* ctx, const v1::GrantRoleRequest* req,
                         v1::GrantRoleResponse* resp) override;
  grpc::Status RevokeGrant(Ctx* ctx, const v1::RevokeGrantRequest* req,
                           v1::RevokeGrantResponse* resp) override;
  grpc::Status ExtendGrant(Ctx* ctx, const v1::ExtendGrantRequest* req,
                           v1::ExtendGrantResponse* resp) override;
  grpc::Status ListGrants(Ctx* ctx, const v1::ListGrantsRequest* req,
                          v1::ListGrantsResponse* resp) override;
  grpc::Status ListExpiringGrants(Ctx* ctx, const v1::ListExpiringGrantsRequest* req,
                                  v1::ListExpiringGrantsResponse* resp) override;
  grpc::Status EnrollTotp(Ctx* ctx, const v1::EnrollTotpRequest* req,
                          v1::EnrollTotpResponse* resp) override;
  grpc::Status ConfirmTotp(Ctx* ctx, const v1::ConfirmTotpRequest* req,
                           v1::ConfirmTotpResponse* resp) override;
  grpc::Status DisableTotp(Ctx* ctx, const v1::DisableTotpRequest* req,
                           v1::DisableTotpResponse* resp) override;
  grpc::Status GetSigningKeys(Ctx* ctx, const v1::GetSigningKeysRequest* req,
                              v1::GetSigningKeysResponse* resp) override;
  grpc::Status CheckSession(Ctx* ctx, const v1::CheckSessionRequest* req,
                            v1::CheckSessionResponse* resp) override;
  grpc::Status CreateServiceAccount(Ctx* ctx, const v1::CreateServiceAccountRequest* req,
                                    v1::CreateServiceAccountResponse* resp) override;
  grpc::Status IssueServiceToken(Ctx* ctx, const v1::IssueServiceTokenRequest* req,
                                 v1::IssueServiceTokenResponse* resp) override;
  grpc::Status CreateTeam(Ctx* ctx, const v1::CreateTeamRequest* req,
                          v1::CreateTeamResponse* resp) override;
  grpc::Status ListTeams(Ctx* ctx, const v1::ListTeamsRequest* req,
                         v1::ListTeamsResponse* resp) override;
  grpc::Status AddTeamMember(Ctx* ctx, const v1::AddTeamMemberRequest* req,
                             v1::AddTeamMemberResponse* resp) override;
  grpc::Status RemoveTeamMember(Ctx* ctx, const v1::RemoveTeamMemberRequest* req,
                                v1::RemoveTeamMemberResponse* resp) override;

  grpc::Status StartSubjectVerification(Ctx* ctx, const v1::StartSubjectVerificationRequest* req,
                                        v1::StartSubjectVerificationResponse* resp) override;
  grpc::Status ConfirmSubjectVerification(Ctx* ctx,
                                          const v1::ConfirmSubjectVerificationRequest* req,
                                          v1::ConfirmSubjectVerificationResponse* resp) override;

  // A token of identity's own service account (spiffe://crm.local/identity,
  // tools/platform-accounts) for its calls to contacts and mailing, minted
  // here and reused until a minute before it expires. UNAUTHENTICATED while
  // that account does not exist.
  absl::StatusOr<std::string> OwnServiceToken();
  // Installs the verifier (IdentityApp, after construction: its directory
  // needs OwnServiceToken). Call before serving.
  void SetSubjectVerifier(SubjectVerifier* subjects) { d_.subjects = subjects; }

  // Creates the first administrator when no user exists: with
  // `initial_password`, or else a random password that passes the policy;
  // must_change_password set, the admin role granted. Returns the password,
  // or nullopt if users exist already (also when another replica won the
  // race). INVALID_ARGUMENT if `initial_password` fails the policy.
  absl::StatusOr<std::optional<std::string>> BootstrapAdmin(
      absl::string_view username, std::optional<std::string> initial_password = std::nullopt);

  // One pass of the background sweeps: signing-key refresh, grant expiry
  // notices, password expiry reminders, the revocations in force written to
  // Redis again (Revocations::Republish) and the records whose tokens have
  // all expired forgotten. Returns the first error.
  absl::Status Sweep();

 private:
  struct Caller {
    std::shared_ptr<const auth::Principal> principal;
    const std::string& id() const { return principal->user_id; }
    bool Has(absl::string_view p) const { return principal->Has(p); }
  };
  // The verified caller; restricted tokens are refused unless allowed.
  absl::StatusOr<Caller> Authenticate(Ctx* ctx, bool allow_restricted = false);
  // Authenticate + identity.admin (or, if `self_ok`, the caller is `user_id`).
  absl::StatusOr<Caller> Authorize(Ctx* ctx, absl::string_view permission,
                                   absl::string_view self_user_id = "");

  absl::StatusOr<v1::User> ToProto(const UserRecord& user);
  absl::StatusOr<v1::Grant> ToProto(const GrantRecord& grant);
  absl::StatusOr<UserRecord> FindUser(absl::string_view field, absl::string_view user_id);
  // What the grants of `user_id` give now (permissions, earliest end, MFA).
  absl::StatusOr<EffectiveAccess> AccessOf(absl::string_view user_id);
  absl::StatusOr<std::vector<Role>> Roles();
  absl::Status CheckNotLastAdmin(absl::string_view user_id);
  absl::Status RevokeSessionsOf(absl::string_view user_id,
                                std::optional<std::string> except_session_id);

  struct IssuedSession {
    v1::TokenPair tokens;
    std::string session_id;
  };
  struct LoginContext {
    std::string source_address;
    std::string user_agent;
  };
  // A new session and token pair for `user`; `access`, if given, is the
  // user's access computed at this moment (saves reading grants again).
  absl::StatusOr<IssuedSession> StartSession(const UserRecord& user, bool restricted,
                                             const LoginContext& where,
                                             const EffectiveAccess* access = nullptr);
  // An access token for `user_id` in session `session_id` (`access` as above).
  absl::StatusOr<std::string> MintAccessToken(absl::string_view user_id,
                                              absl::string_view session_id, bool restricted,
                                              absl::Duration ttl, absl::string_view cert_thumbprint,
                                              absl::Time* expires_at,
                                              const EffectiveAccess* access = nullptr);
  // Signs `claims` with the current key after filling what every token of
  // ours has: iss, aud, iat = now, a fresh jti, and an expiry after now.
  // *expires_at is the token's exp.
  absl::StatusOr<std::string> SignToken(auth::AccessTokenClaims claims, absl::Time now,
                                        absl::Time* expires_at);

  void RecordAttempt(std::optional<std::string> user_id, LoginResult result,
                     const LoginContext& where, absl::string_view request_id);
  // Writes one audit event in its own transaction; failures are logged, not
  // returned (the change it records has happened).
  // Free-text details (reasons, justifications) may name people: mark them
  // personal so audit seals them.
  struct AuditDetail {
    absl::string_view key;
    std::string value;
    bool personal = false;
  };
  // The outbox write both Audit and RecordAttempt end with (own transaction).
  void EnqueueAudit(const crm::audit::v1::Event& event);
  // `subject_id`: the data subject concerned, if any.
  void Audit(Ctx* ctx, const Caller* caller, absl::string_view action, absl::string_view resource,
             crm::audit::v1::Outcome outcome, std::initializer_list<AuditDetail> details = {},
             absl::string_view subject_id = "");

  // Checks a TOTP code or a recovery code and uses it up.
  absl::Status CheckSecondFactor(absl::string_view user_id, const Credentials& creds,
                                 absl::string_view code);

  absl::Status SweepGrantNotices(absl::Time now);
  absl::Status SweepPasswordReminders(absl::Time now);

  // PERMISSION_DENIED `refusal` unless the caller's certificate identity is
  // one of `allowed` (names, or whole SPIFFE ids).
  static absl::Status CheckCaller(Ctx* ctx, const std::vector<std::string>& allowed,
                                  absl::string_view refusal);

  IdentityDeps d_;
  absl::Mutex own_token_mu_;
  std::string own_token_ ABSL_GUARDED_BY(own_token_mu_);
  absl::Time own_token_renew_at_ ABSL_GUARDED_BY(own_token_mu_) = absl::InfinitePast();
  prometheus::Family<prometheus::Counter>* logins_ = nullptr;
  prometheus::Family<prometheus::Counter>* lockouts_ = nullptr;
};

}  // namespace crm::identity
