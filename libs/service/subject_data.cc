#include "libs/service/subject_data.h"

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "libs/base/status_macros.h"
#include "libs/base/uuid.h"
#include "libs/rpc/peer.h"
#include "libs/rpc/request_id.h"

namespace crm::service {

absl::StatusOr<ErasureRequest> ParseErasureRequest(
    const crm::subject::v1::EraseSubjectDataRequest& req) {
  if (!base::IsUuid(req.request_id())) {
    return absl::InvalidArgumentError("request_id: must be a UUID");
  }
  ErasureRequest out;
  out.request_id = absl::AsciiStrToLower(req.request_id());
  CRM_ASSIGN_OR_RETURN(out.subject_id, base::CanonicalUuid("subject_id", req.subject_id()));
  return out;
}

absl::Status ErasureRequestReused() {
  return absl::InvalidArgumentError("request_id: already used for the erasure of another subject");
}

crm::audit::v1::Event SubjectDataEvent(const grpc::ServerContext& ctx, absl::string_view action,
                                       absl::string_view resource_prefix,
                                       const std::string& subject_id,
                                       absl::string_view erasure_request_id) {
  crm::audit::v1::Event e;
  e.set_action(std::string(action));
  e.set_outcome(crm::audit::v1::OUTCOME_SUCCESS);
  e.set_subject_id(subject_id);
  e.set_resource(absl::StrCat(resource_prefix, "/", subject_id));
  e.mutable_actor()->set_service_identity(rpc::PeerIdentity(ctx));
  e.set_request_id(rpc::RequestId(ctx));
  if (!erasure_request_id.empty()) {
    crm::audit::v1::Detail* d = e.add_details();
    d->set_key("erasure_request_id");
    d->set_value(std::string(erasure_request_id));
  }
  return e;
}

}  // namespace crm::service
