#include "services/erasure/notifier.h"

#include <grpcpp/grpcpp.h>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "libs/base/grpc_status.h"
#include "libs/base/status_macros.h"

namespace crm::erasure {

GrpcNotifier::GrpcNotifier(std::shared_ptr<grpc::Channel> mailing, TokenSource token,
                           absl::Duration deadline)
    : stub_(crm::mailing::v1::Mailing::NewStub(std::move(mailing))),
      token_(std::move(token)),
      deadline_(deadline) {}

absl::Status GrpcNotifier::ErasureConfirmed(const v1::ErasureRequest& r,
                                            const std::vector<std::string>& addresses) {
  CRM_ASSIGN_OR_RETURN(const std::string token, token_());
  const absl::Time completed = absl::FromUnixSeconds(r.completed_at().seconds());
  for (size_t i = 0; i < addresses.size(); ++i) {
    crm::mailing::v1::SendTransactionalRequest req;
    req.set_kind(crm::mailing::v1::TRANSACTIONAL_KIND_ERASURE_CONFIRMED);
    req.set_address(addresses[i]);
    (*req.mutable_params())["request_id"] = r.request_id();
    (*req.mutable_params())["completed_at"] =
        absl::FormatTime("%Y-%m-%d %H:%M UTC", completed, absl::UTCTimeZone());
    req.set_dedup_key(absl::StrCat("erasure:", r.request_id(), ":", i));
    grpc::ClientContext ctx;
    ctx.set_deadline(absl::ToChronoTime(absl::Now() + deadline_));
    ctx.AddMetadata("authorization", absl::StrCat("Bearer ", token));
    crm::mailing::v1::SendTransactionalResponse resp;
    CRM_RETURN_IF_ERROR(base::FromGrpcStatus(stub_->SendTransactional(&ctx, req, &resp)));
  }
  return absl::OkStatus();
}

}  // namespace crm::erasure
