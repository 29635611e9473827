#include "libs/service/service_token.h"

#include <grpcpp/client_context.h>

#include "absl/strings/str_cat.h"
#include "libs/base/grpc_status.h"

namespace crm::service {

namespace iv1 = crm::identity::v1;

ServiceToken::ServiceToken(std::shared_ptr<grpc::Channel> identity, std::string service_name,
                           const base::Clock& clock)
    : stub_(iv1::Identity::NewStub(std::move(identity))),
      service_name_(std::move(service_name)),
      clock_(clock) {}

absl::StatusOr<std::string> ServiceToken::Get() {
  absl::MutexLock lock(&mu_);
  const absl::Time now = clock_.Now();
  if (!token_.empty() && now < renew_at_) return token_;
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(5)));
  iv1::IssueServiceTokenResponse resp;
  absl::Status s =
      base::FromGrpcStatus(stub_->IssueServiceToken(&ctx, iv1::IssueServiceTokenRequest(), &resp));
  if (absl::IsUnauthenticated(s)) {
    return absl::UnauthenticatedError(
        absl::StrCat("identity issues no token to spiffe://crm.local/", service_name_,
                     ": an administrator must create its service account and grant it a role "
                     "(docs/operations.md, \"Service accounts of the platform's own services\"); "
                     "identity said: ",
                     s.message()));
  }
  if (!s.ok()) return absl::Status(s.code(), absl::StrCat("identity: ", s.message()));
  const absl::Time expires = absl::FromUnixSeconds(resp.expires_at().seconds());
  token_ = resp.access_token();
  renew_at_ = now + (expires - now) * 2 / 3;
  return token_;
}

}  // namespace crm::service
