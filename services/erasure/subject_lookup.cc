#include "services/erasure/subject_lookup.h"

#include <grpcpp/grpcpp.h>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "libs/base/grpc_status.h"
#include "libs/base/status_macros.h"
#include "libs/rpc/channel.h"

namespace crm::erasure {

GrpcSubjectLookup::GrpcSubjectLookup(std::shared_ptr<grpc::Channel> contacts, TokenSource token,
                                     absl::Duration deadline)
    : stub_(crm::contacts::v1::Contacts::NewStub(std::move(contacts))),
      token_(std::move(token)),
      deadline_(deadline) {}

absl::StatusOr<std::vector<std::string>> GrpcSubjectLookup::ByEmail(const std::string& email) {
  CRM_ASSIGN_OR_RETURN(const std::string token, token_());
  crm::contacts::v1::LookupPersonsRequest req;
  req.set_email(email);
  std::unique_ptr<grpc::ClientContext> ctx = rpc::NewClientContext(deadline_, token);
  crm::contacts::v1::LookupPersonsResponse resp;
  CRM_RETURN_IF_ERROR(base::FromGrpcStatus(stub_->LookupPersons(ctx.get(), req, &resp)));
  std::vector<std::string> out;
  for (const auto& person : resp.persons()) out.push_back(person.subject_id());
  return out;
}

}  // namespace crm::erasure
