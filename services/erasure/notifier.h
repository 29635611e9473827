// GrpcNotifier: the subject's notices through mailing
// (crm.mailing.v1.Mailing/SendTransactional to an address: ERASURE_CONFIRMED,
// ACCESS_READY, REQUEST_EXTENDED), called with the orchestrator's own token
// (permission mailing.send: service account "erasure",
// tools/platform-accounts). Idempotent: the dedup key is the kind, the
// request id (and the months extended) and the address's position.
//
// Thread-safe.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "crm/mailing/v1/mailing.grpc.pb.h"
#include "services/erasure/orchestrator.h"

namespace crm::erasure {

class GrpcNotifier final : public Notifier {
 public:
  using TokenSource = std::function<absl::StatusOr<std::string>()>;
  GrpcNotifier(std::shared_ptr<grpc::Channel> mailing, TokenSource token,
               absl::Duration deadline = absl::Seconds(10));
  absl::Status Send(NoticeKind kind, const v1::ErasureRequest& r,
                    const std::vector<std::string>& addresses) override;

 private:
  std::unique_ptr<crm::mailing::v1::Mailing::Stub> stub_;
  TokenSource token_;
  absl::Duration deadline_;
};

}  // namespace crm::erasure
