// One unary gRPC call through a generated stub, as service tests make them:
// a 20 s deadline, the access token as "authorization: Bearer" when given,
// the answer or the call's status as an absl status.
//
//   CRM_ASSERT_OK_AND_ASSIGN(v1::GetPersonResponse r,
//                            UnaryCall(*stub_, &Stub::GetPerson, request, token));
//
// Header-only; links gRPC and libs/base (crm_base).
#pragma once

#include <grpcpp/client_context.h>

#include <chrono>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "libs/base/grpc_status.h"

namespace crm::testing {

template <typename Stub, typename Req, typename Resp>
absl::StatusOr<Resp> UnaryCall(Stub& stub,
                               grpc::Status (Stub::*rpc)(grpc::ClientContext*, const Req&, Resp*),
                               const Req& request, absl::string_view token = "") {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
  if (!token.empty()) context.AddMetadata("authorization", absl::StrCat("Bearer ", token));
  Resp response;
  grpc::Status status = (stub.*rpc)(&context, request, &response);
  if (!status.ok()) return base::FromGrpcStatus(status);
  return response;
}

}  // namespace crm::testing
