#include "libs/rpc/generic_call.h"

#include <grpcpp/client_context.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/support/byte_buffer.h>

#include "absl/synchronization/notification.h"

namespace crm::rpc {

grpc::Status UnaryCall(const std::shared_ptr<grpc::Channel>& channel,
                       const std::string& full_method, const std::string& request,
                       const std::vector<std::pair<std::string, std::string>>& headers,
                       absl::Duration timeout, std::string* response) {
  grpc::GenericStub stub(channel);
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + timeout));
  for (const auto& [key, value] : headers) context.AddMetadata(key, value);
  grpc::Slice slice(request);
  grpc::ByteBuffer request_buffer(&slice, 1);
  grpc::ByteBuffer reply;
  grpc::Status result;
  absl::Notification done;
  stub.UnaryCall(&context, full_method, grpc::StubOptions(), &request_buffer, &reply,
                 [&](grpc::Status s) {
                   result = std::move(s);
                   done.Notify();
                 });
  done.WaitForNotification();
  if (result.ok() && response != nullptr) {
    std::vector<grpc::Slice> slices;
    if (!reply.Dump(&slices).ok()) {
      return grpc::Status(grpc::StatusCode::INTERNAL, "cannot read the response");
    }
    response->clear();
    for (const grpc::Slice& s : slices) {
      response->append(reinterpret_cast<const char*>(s.begin()), s.size());
    }
  }
  return result;
}

}  // namespace crm::rpc
