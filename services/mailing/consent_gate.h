// What mailing asks of consent (crm.consent.v1), behind an interface so the
// sender's logic can be unit-tested; GrpcConsentGate is the real one, calling
// the consent service over mutual TLS with mailing's own access token.
//
//   - whether a purpose exists (a list must serve one),
//   - recording the grant of a confirmed or single opt-in subscription and
//     the withdrawal of an unsubscription (method e-mail link or API),
//   - the decisions for a batch of subjects right before sending,
//   - which addresses are on the suppression list.
//
// Thread-safe.
#pragma once

#include <grpcpp/channel.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "crm/consent/v1/consent.grpc.pb.h"

namespace crm::mailing {

class ConsentGate {
 public:
  virtual ~ConsentGate() = default;
  virtual absl::StatusOr<bool> PurposeExists(const std::string& purpose_id) = 0;
  // Grant / Withdraw with `statement` (subject, purpose, method, source, ...).
  virtual absl::Status Grant(const crm::consent::v1::Statement& statement) = 0;
  virtual absl::Status Withdraw(const crm::consent::v1::Statement& statement) = 0;
  // allowed[i] for subject_ids[i] (BatchCheck, chunked at 10,000).
  virtual absl::StatusOr<std::vector<bool>> Allowed(
      const std::string& purpose_id, const std::vector<std::string>& subject_ids) = 0;
  // suppressed[i] for addresses[i] (CheckSuppression, chunked at 10,000).
  virtual absl::StatusOr<std::vector<bool>> Suppressed(
      const std::vector<std::string>& addresses) = 0;
};

// An access token for mailing's calls to other services.
using TokenSource = std::function<absl::StatusOr<std::string>()>;

class GrpcConsentGate final : public ConsentGate {
 public:
  GrpcConsentGate(std::shared_ptr<grpc::Channel> channel, TokenSource token,
                  absl::Duration deadline = absl::Seconds(10));
  absl::StatusOr<bool> PurposeExists(const std::string& purpose_id) override;
  absl::Status Grant(const crm::consent::v1::Statement& statement) override;
  absl::Status Withdraw(const crm::consent::v1::Statement& statement) override;
  absl::StatusOr<std::vector<bool>> Allowed(const std::string& purpose_id,
                                            const std::vector<std::string>& subject_ids) override;
  absl::StatusOr<std::vector<bool>> Suppressed(const std::vector<std::string>& addresses) override;

 private:
  template <typename Req, typename Resp>
  absl::Status Call(grpc::Status (crm::consent::v1::Consent::Stub::*rpc)(grpc::ClientContext*,
                                                                         const Req&, Resp*),
                    const Req& req, Resp* resp);
  std::unique_ptr<crm::consent::v1::Consent::Stub> stub_;
  TokenSource token_;
  absl::Duration deadline_;
};

}  // namespace crm::mailing
