// Data-subject handlers of IdentityService (the privacy portal's sign-in):
// StartSubjectVerification, ConfirmSubjectVerification, and identity's own
// service token for the calls they make.
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "libs/auth/principal.h"
#include "libs/base/status_macros.h"
#include "libs/base/uuid.h"
#include "libs/rpc/peer.h"
#include "services/identity/identity_service.h"
#include "services/identity/service_util.h"

namespace crm::identity {

namespace {

using crm::audit::v1::OUTCOME_DENIED;
using crm::audit::v1::OUTCOME_SUCCESS;

constexpr char kOwnIdentity[] = "spiffe://crm.local/identity";

absl::Status NotConfigured() {
  return absl::FailedPreconditionError(
      "subject verification is off (settings contacts_addr and mailing_addr)");
}

}  // namespace

absl::StatusOr<std::string> IdentityService::OwnServiceToken() {
  absl::MutexLock lock(&own_token_mu_);
  const absl::Time now = d_.clock.Now();
  if (!own_token_.empty() && now < own_token_renew_at_) return own_token_;
  const absl::Status missing = absl::UnauthenticatedError(
      "identity has no service account (tools/platform-accounts creates it)");
  absl::StatusOr<ServiceAccountBinding> binding =
      d_.grants.FindServiceAccountBySpiffeId(kOwnIdentity);
  if (absl::IsNotFound(binding.status())) return missing;
  CRM_RETURN_IF_ERROR(binding.status());
  CRM_ASSIGN_OR_RETURN(UserRecord user, d_.users.GetUser(binding->user_id));
  if (user.status != UserStatus::kActive) return missing;
  absl::Time expires_at;
  CRM_ASSIGN_OR_RETURN(own_token_, MintAccessToken(user.id, binding->token_session_id, false,
                                                   d_.config.service_token_ttl, "", &expires_at));
  own_token_renew_at_ = expires_at - absl::Minutes(1);
  return own_token_;
}

grpc::Status IdentityService::StartSubjectVerification(
    Ctx* ctx, const v1::StartSubjectVerificationRequest* req,
    v1::StartSubjectVerificationResponse* resp) {
  return Handle([&]() -> absl::Status {
    CRM_RETURN_IF_ERROR(CheckCaller(ctx, d_.config.subject_callers,
                                    "subject verification is only for the gateway"));
    if (d_.subjects == nullptr) return NotConfigured();
    CRM_ASSIGN_OR_RETURN(SubjectVerifier::Started started,
                         d_.subjects->Start(req->email(), req->source_address()));
    resp->set_verification_id(started.verification_id);
    SetTime(started.expires_at, resp->mutable_expires_at());
    Audit(ctx, nullptr, "identity.subject_verification.start",
          absl::StrCat("subject_verification/", started.verification_id), OUTCOME_SUCCESS);
    return absl::OkStatus();
  });
}

grpc::Status IdentityService::ConfirmSubjectVerification(
    Ctx* ctx, const v1::ConfirmSubjectVerificationRequest* req,
    v1::ConfirmSubjectVerificationResponse* resp) {
  return Handle([&]() -> absl::Status {
    CRM_RETURN_IF_ERROR(CheckCaller(ctx, d_.config.subject_callers,
                                    "subject verification is only for the gateway"));
    if (d_.subjects == nullptr) return NotConfigured();
    const std::string resource = absl::StrCat("subject_verification/", req->verification_id());
    absl::StatusOr<SubjectVerifier::Confirmed> confirmed =
        d_.subjects->Confirm(req->verification_id(), req->code(), req->source_address());
    if (absl::IsInvalidArgument(confirmed.status()) &&
        absl::StartsWith(confirmed.status().message(), "code: wrong")) {
      Audit(ctx, nullptr, "identity.subject_verification.confirm", resource, OUTCOME_DENIED);
    }
    CRM_RETURN_IF_ERROR(confirmed.status());
    if (confirmed->subject_ids.empty()) {
      resp->set_match(v1::SUBJECT_MATCH_NONE);
    } else if (confirmed->subject_ids.size() > 1) {
      resp->set_match(v1::SUBJECT_MATCH_SEVERAL);
    } else {
      const std::string& subject_id = confirmed->subject_ids.front();
      const absl::Time now = d_.clock.Now();
      auth::AccessTokenClaims claims;
      claims.subject = subject_id;
      claims.session_id = base::NewUuid();
      claims.permissions = {auth::kSubjectSelf};
      claims.expires_at = now + d_.config.subject_token_ttl;
      absl::Time expires_at;
      CRM_ASSIGN_OR_RETURN(std::string token, SignToken(std::move(claims), now, &expires_at));
      resp->set_match(v1::SUBJECT_MATCH_ONE);
      resp->set_subject_id(subject_id);
      resp->set_access_token(std::move(token));
      SetTime(expires_at, resp->mutable_expires_at());
    }
    Audit(ctx, nullptr, "identity.subject_verification.confirm", resource, OUTCOME_SUCCESS,
          {{.key = "match", .value = v1::SubjectMatch_Name(resp->match())}}, resp->subject_id());
    return absl::OkStatus();
  });
}

}  // namespace crm::identity
