#include "services/erasure/notifier.h"

#include <grpcpp/grpcpp.h>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "libs/base/grpc_status.h"
#include "libs/base/status_macros.h"
#include "libs/rpc/channel.h"

namespace crm::erasure {

GrpcNotifier::GrpcNotifier(std::shared_ptr<grpc::Channel> mailing, TokenSource token,
                           absl::Duration deadline)
    : stub_(crm::mailing::v1::Mailing::NewStub(std::move(mailing))),
      token_(std::move(token)),
      deadline_(deadline) {}

absl::Status GrpcNotifier::Send(NoticeKind kind, const v1::ErasureRequest& r,
                                const std::vector<std::string>& addresses) {
  namespace mv1 = crm::mailing::v1;
  CRM_ASSIGN_OR_RETURN(const std::string token, token_());
  auto when = [](const google::protobuf::Timestamp& ts) {
    return absl::FormatTime("%Y-%m-%d %H:%M UTC", absl::FromUnixSeconds(ts.seconds()),
                            absl::UTCTimeZone());
  };
  mv1::SendTransactionalRequest req;
  auto& params = *req.mutable_params();
  params["request_id"] = r.request_id();
  std::string key;  // the dedup key's stem
  switch (kind) {
    case NoticeKind::kErasureConfirmed:
      req.set_kind(mv1::TRANSACTIONAL_KIND_ERASURE_CONFIRMED);
      params["completed_at"] = when(r.completed_at());
      key = absl::StrCat("erasure:", r.request_id());
      break;
    case NoticeKind::kAccessReady:
      req.set_kind(mv1::TRANSACTIONAL_KIND_ACCESS_READY);
      params["expires_at"] = when(r.expires_at());
      key = absl::StrCat("access:", r.request_id());
      break;
    case NoticeKind::kExtended:
      req.set_kind(mv1::TRANSACTIONAL_KIND_REQUEST_EXTENDED);
      params["request_kind"] = r.kind() == v1::KIND_ACCESS ? "access" : "erasure";
      params["due_at"] = when(r.due_at());
      params["reason"] = r.extension_reason();
      key = absl::StrCat("extended:", r.request_id(), ":", r.extended_months());
      break;
  }
  for (size_t i = 0; i < addresses.size(); ++i) {
    req.set_address(addresses[i]);
    req.set_dedup_key(absl::StrCat(key, ":", i));
    std::unique_ptr<grpc::ClientContext> ctx = rpc::NewClientContext(deadline_, token);
    mv1::SendTransactionalResponse resp;
    CRM_RETURN_IF_ERROR(base::FromGrpcStatus(stub_->SendTransactional(ctx.get(), req, &resp)));
  }
  return absl::OkStatus();
}

}  // namespace crm::erasure
