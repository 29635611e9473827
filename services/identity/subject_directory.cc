#include "services/identity/subject_directory.h"

#include <grpcpp/grpcpp.h>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "libs/base/grpc_status.h"
#include "libs/base/status_macros.h"
#include "libs/rpc/channel.h"

namespace crm::identity {

GrpcSubjectDirectory::GrpcSubjectDirectory(std::shared_ptr<grpc::Channel> contacts,
                                           std::shared_ptr<grpc::Channel> mailing,
                                           TokenSource token, absl::Duration deadline)
    : contacts_(crm::contacts::v1::Contacts::NewStub(std::move(contacts))),
      mailing_(crm::mailing::v1::Mailing::NewStub(std::move(mailing))),
      token_(std::move(token)),
      deadline_(deadline) {}

absl::StatusOr<std::unique_ptr<grpc::ClientContext>> GrpcSubjectDirectory::Context() {
  CRM_ASSIGN_OR_RETURN(const std::string token, token_());
  return rpc::NewClientContext(deadline_, token);
}

absl::StatusOr<std::vector<std::string>> GrpcSubjectDirectory::SubjectsByEmail(
    const std::string& email) {
  CRM_ASSIGN_OR_RETURN(std::unique_ptr<grpc::ClientContext> ctx, Context());
  crm::contacts::v1::LookupPersonsRequest req;
  req.set_email(email);
  crm::contacts::v1::LookupPersonsResponse resp;
  CRM_RETURN_IF_ERROR(base::FromGrpcStatus(contacts_->LookupPersons(ctx.get(), req, &resp)));
  std::vector<std::string> out;
  for (const auto& person : resp.persons()) out.push_back(person.subject_id());
  return out;
}

absl::Status GrpcSubjectDirectory::SendCode(const std::string& email, const std::string& code,
                                            const std::string& dedup_key) {
  CRM_ASSIGN_OR_RETURN(std::unique_ptr<grpc::ClientContext> ctx, Context());
  crm::mailing::v1::SendTransactionalRequest req;
  req.set_kind(crm::mailing::v1::TRANSACTIONAL_KIND_VERIFICATION_CODE);
  req.set_address(email);
  (*req.mutable_params())["code"] = code;
  req.set_dedup_key(dedup_key);
  crm::mailing::v1::SendTransactionalResponse resp;
  return base::FromGrpcStatus(mailing_->SendTransactional(ctx.get(), req, &resp));
}

}  // namespace crm::identity
