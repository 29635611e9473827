// GrpcNotifier: the completion notice through mailing
// (crm.mailing.v1.Mailing/SendTransactional, kind ERASURE_CONFIRMED, to an
// address), called with the orchestrator's own token (permission
// mailing.send: service account "erasure", tools/platform-accounts).
// Idempotent: the dedup key is the request id and the address's position.
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
  absl::Status ErasureConfirmed(const v1::ErasureRequest& r,
                                const std::vector<std::string>& addresses) override;

 private:
  std::unique_ptr<crm::mailing::v1::Mailing::Stub> stub_;
  TokenSource token_;
  absl::Duration deadline_;
};

}  // namespace crm::erasure
