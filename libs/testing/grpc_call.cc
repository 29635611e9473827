#include "libs/testing/grpc_call.h"

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/support/byte_buffer.h>

#include <chrono>
#include <vector>

#include "absl/synchronization/notification.h"
#include "libs/base/grpc_status.h"

namespace crm::testing {

grpc::Status RawUnaryCall(const std::shared_ptr<grpc::Channel>& channel, const std::string& method,
                          const std::string& request_bytes, std::string* response,
                          absl::Duration timeout, const std::string& bearer_token) {
  grpc::GenericStub stub(channel);
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + timeout));
  if (!bearer_token.empty()) context.AddMetadata("authorization", "Bearer " + bearer_token);
  grpc::Slice slice(request_bytes);
  grpc::ByteBuffer request(&slice, 1);
  grpc::ByteBuffer reply;
  grpc::Status result;
  absl::Notification done;
  stub.UnaryCall(&context, method, grpc::StubOptions(), &request, &reply, [&](grpc::Status s) {
    result = std::move(s);
    done.Notify();
  });
  done.WaitForNotification();
  if (result.ok() && response != nullptr) {
    std::vector<grpc::Slice> slices;
    (void)reply.Dump(&slices);
    response->clear();
    for (const grpc::Slice& s : slices) {
      response->append(reinterpret_cast<const char*>(s.begin()), s.size());
    }
  }
  return result;
}

absl::StatusOr<int> GrpcHealthCheck(const std::shared_ptr<grpc::Channel>& channel,
                                    const std::string& service) {
  // HealthCheckRequest: field 1 (string) service, omitted when empty.
  std::string request;
  if (!service.empty()) {
    if (service.size() > 127) return absl::InvalidArgumentError("service name too long");
    request.push_back(0x0a);
    request.push_back(static_cast<char>(service.size()));
    request.append(service);
  }
  std::string reply;
  grpc::Status s = RawUnaryCall(channel, "/grpc.health.v1.Health/Check", request, &reply);
  if (!s.ok()) return base::FromGrpcStatus(s);
  // HealthCheckResponse: field 1 (varint) status; UNKNOWN (0) is omitted.
  if (reply.empty()) return 0;
  if (reply.size() != 2 || reply[0] != 0x08) {
    return absl::InternalError("not a grpc.health.v1.HealthCheckResponse");
  }
  return static_cast<int>(reply[1]);
}

}  // namespace crm::testing
