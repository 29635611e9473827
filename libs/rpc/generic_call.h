// A unary gRPC call by method name with serialized bytes (grpc::GenericStub):
// for clients that know their messages only by descriptor (crmctl's `call`,
// the gateway's JSON API), not by generated stub.
//
// Thread-safe.
#pragma once

#include <grpcpp/channel.h>
#include <grpcpp/support/status.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/time/time.h"

namespace crm::rpc {

// Calls `full_method` ("/pkg.Service/Method") on `channel` with the
// serialized `request`, the metadata `headers` and a deadline of now +
// `timeout`. Returns the call's status; on OK, `*response` holds the
// serialized reply.
grpc::Status UnaryCall(const std::shared_ptr<grpc::Channel>& channel,
                       const std::string& full_method, const std::string& request,
                       const std::vector<std::pair<std::string, std::string>>& headers,
                       absl::Duration timeout, std::string* response);

}  // namespace crm::rpc
