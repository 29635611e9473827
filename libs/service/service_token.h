// ServiceToken: this service's own access token, for the API methods of
// other services it calls (mailing -> consent, for instance). It comes from
// crm.identity.v1.Identity/IssueServiceToken over mutual TLS with the
// service's certificate, is bound to that certificate (RFC 8705), and holds
// the permissions an administrator granted the service account bound to the
// service's SPIFFE id (docs/operations.md: "Service accounts of the
// platform's own services"). Without such an account identity answers
// UNAUTHENTICATED, and Get() says what to create.
//
// Get() returns the cached token while more than a third of its lifetime
// remains, else fetches a new one (one caller fetches; others wait).
//
// Thread-safe.
#pragma once

#include <grpcpp/channel.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "crm/identity/v1/identity.grpc.pb.h"
#include "libs/base/clock.h"

namespace crm::service {

class ServiceToken {
 public:
  // `identity`: an mTLS channel to identity with this service's certificate.
  ServiceToken(std::shared_ptr<grpc::Channel> identity, std::string service_name,
               const base::Clock& clock);
  absl::StatusOr<std::string> Get();

 private:
  std::unique_ptr<crm::identity::v1::Identity::Stub> stub_;
  const std::string service_name_;
  const base::Clock& clock_;
  absl::Mutex mu_;
  std::string token_ ABSL_GUARDED_BY(mu_);
  absl::Time renew_at_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
};

}  // namespace crm::service
