#include "libs/outbox/grpc_sink.h"

#include <grpcpp/client_context.h>

#include <chrono>

#include "libs/base/grpc_status.h"
#include "libs/log/log.h"

namespace crm::outbox {

GrpcSink::GrpcSink(std::shared_ptr<grpc::Channel> channel, GrpcSinkOptions options)
    : channel_(std::move(channel)),
      stub_(crm::audit::v1::AuditIngest::NewStub(channel_)),
      options_(options) {}

absl::Status GrpcSink::Append(const std::vector<crm::audit::v1::Event>& events) {
  if (events.empty()) return absl::OkStatus();
  crm::audit::v1::AppendEventsRequest request;
  request.mutable_events()->Reserve(static_cast<int>(events.size()));
  for (const crm::audit::v1::Event& event : events) *request.add_events() = event;
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + options_.deadline));
  crm::audit::v1::AppendEventsResponse response;
  const grpc::Status status = stub_->AppendEvents(&context, request, &response);
  if (!status.ok()) return base::FromGrpcStatus(status);
  const int64_t acknowledged =
      static_cast<int64_t>(response.appended()) + static_cast<int64_t>(response.duplicates());
  if (acknowledged != static_cast<int64_t>(events.size())) {
    // Audit acknowledged the call, so the batch is recorded; a count mismatch
    // points at a bug on its side, worth a look but not a reason to resend.
    log::Warn("outbox.ack_count_mismatch",
              {{"sent", static_cast<int64_t>(events.size())}, {"acknowledged", acknowledged}});
  }
  return absl::OkStatus();
}

}  // namespace crm::outbox
