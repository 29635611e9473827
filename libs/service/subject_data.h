// What every service's crm.subject.v1.SubjectData handlers share: checking
// an erasure request, and the audit event of an export or erasure made by
// the erasure orchestrator (its mTLS identity as the actor, the call's
// request id, ids only).
#pragma once

#include <grpcpp/server_context.h>

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "crm/audit/v1/ingest.pb.h"
#include "crm/subject/v1/subject_data.pb.h"

namespace crm::service {

// The request id (lower case) and subject id (canonical) of an erasure
// request. INVALID_ARGUMENT naming request_id or subject_id.
struct ErasureRequest {
  std::string request_id;
  std::string subject_id;
};
absl::StatusOr<ErasureRequest> ParseErasureRequest(
    const crm::subject::v1::EraseSubjectDataRequest& req);

// INVALID_ARGUMENT for a request id recorded for another subject.
absl::Status ErasureRequestReused();

// The audit event of `action` on `subject_id`'s data, resource
// "<resource_prefix>/<subject_id>"; with `erasure_request_id` as a detail
// when given.
crm::audit::v1::Event SubjectDataEvent(const grpc::ServerContext& ctx, absl::string_view action,
                                       absl::string_view resource_prefix,
                                       const std::string& subject_id,
                                       absl::string_view erasure_request_id = "");

}  // namespace crm::service
