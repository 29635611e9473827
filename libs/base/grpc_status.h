// The one mapping between absl::Status and grpc::Status. Handlers call
// ToGrpcStatus at the edge; clients call FromGrpcStatus on what they receive.
// Pure functions, thread-safe.
#pragma once

#include <grpcpp/support/status.h>

#include "absl/status/status.h"

namespace crm::base {

// Same code, same message. Codes are numerically identical in both libraries,
// but the mapping is spelled out so a divergence would fail to compile or test.
grpc::Status ToGrpcStatus(const absl::Status& status);
absl::Status FromGrpcStatus(const grpc::Status& status);

}  // namespace crm::base
