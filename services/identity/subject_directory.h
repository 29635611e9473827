// GrpcSubjectDirectory: SubjectVerifier's SubjectDirectory on the suite's
// services: contacts' LookupPersons (exact, through its blind index) finds
// the persons with an address, and mailing's SendTransactional
// (VERIFICATION_CODE, to the address) mails the code. Both are called over
// mTLS with identity's own service-account token (service account
// "identity": contacts.read, contacts.read.all and mailing.send,
// tools/platform-accounts), which `token` supplies.
//
// Thread-safe.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "crm/contacts/v1/contacts.grpc.pb.h"
#include "crm/mailing/v1/mailing.grpc.pb.h"
#include "services/identity/subject_verification.h"

namespace crm::identity {

class GrpcSubjectDirectory final : public SubjectDirectory {
 public:
  using TokenSource = std::function<absl::StatusOr<std::string>()>;
  GrpcSubjectDirectory(std::shared_ptr<grpc::Channel> contacts,
                       std::shared_ptr<grpc::Channel> mailing, TokenSource token,
                       absl::Duration deadline = absl::Seconds(10));

  absl::StatusOr<std::vector<std::string>> SubjectsByEmail(const std::string& email) override;
  absl::Status SendCode(const std::string& email, const std::string& code,
                        const std::string& dedup_key) override;

 private:
  absl::StatusOr<std::unique_ptr<grpc::ClientContext>> Context();

  std::unique_ptr<crm::contacts::v1::Contacts::Stub> contacts_;
  std::unique_ptr<crm::mailing::v1::Mailing::Stub> mailing_;
  TokenSource token_;
  absl::Duration deadline_;
};

}  // namespace crm::identity
