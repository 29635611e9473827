// Calls by method name for tests, without generated stubs: a unary call with
// raw request bytes, and grpc.health.v1.Health/Check. Used by the rpc
// integration test and the system test of the service binaries.
//
// Thread-safe (each call has its own context).
#pragma once

#include <grpcpp/channel.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace crm::testing {

// A unary call of `method` ("/pkg.Service/Method") with the serialized
// request `request_bytes`, deadline now + `timeout`, and `bearer_token` (if
// not empty) as "authorization: Bearer <token>". Returns the call's status;
// on OK fills `response` (if not null) with the serialized reply.
grpc::Status RawUnaryCall(const std::shared_ptr<grpc::Channel>& channel, const std::string& method,
                          const std::string& request_bytes, std::string* response = nullptr,
                          absl::Duration timeout = absl::Seconds(10),
                          const std::string& bearer_token = "");

// grpc.health.v1.HealthCheckResponse.ServingStatus values.
inline constexpr int kHealthServing = 1;
inline constexpr int kHealthNotServing = 2;

// grpc.health.v1.Health/Check of `service` ("" = the whole server). Returns
// the serving status (kHealthServing, kHealthNotServing, ...); the call's
// error as an absl::Status (e.g. UNAVAILABLE when the handshake is refused);
// INTERNAL for a reply that is not a HealthCheckResponse.
absl::StatusOr<int> GrpcHealthCheck(const std::shared_ptr<grpc::Channel>& channel,
                                    const std::string& service = "");

}  // namespace crm::testing
