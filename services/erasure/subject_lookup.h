// SubjectLookup: finding a subject by e-mail address, for SubmitErasure by
// address. GrpcSubjectLookup asks contacts (LookupPersons, exact through its
// blind index) with the orchestrator's own token (service account
// "erasure": contacts.read and contacts.read.all, tools/platform-accounts)
// and keeps nothing but the subject ids it answers.
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

namespace crm::erasure {

class SubjectLookup {
 public:
  virtual ~SubjectLookup() = default;
  // The subject ids of the persons with `email` (none: empty).
  virtual absl::StatusOr<std::vector<std::string>> ByEmail(const std::string& email) = 0;
};

class GrpcSubjectLookup final : public SubjectLookup {
 public:
  using TokenSource = std::function<absl::StatusOr<std::string>()>;
  GrpcSubjectLookup(std::shared_ptr<grpc::Channel> contacts, TokenSource token,
                    absl::Duration deadline = absl::Seconds(10));
  absl::StatusOr<std::vector<std::string>> ByEmail(const std::string& email) override;

 private:
  std::unique_ptr<crm::contacts::v1::Contacts::Stub> stub_;
  TokenSource token_;
  absl::Duration deadline_;
};

}  // namespace crm::erasure
