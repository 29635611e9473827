// GrpcSink: the production Sink, calling crm.audit.v1.AuditIngest/AppendEvents
// on the audit service over a channel the caller made with libs/rpc's
// MakeChannel (mutual TLS, expected_server "audit"):
//
//   CRM_ASSIGN_OR_RETURN(auto channel, rpc::MakeChannel(audit_channel_config));
//   outbox::GrpcSink sink(channel, {.deadline = absl::Seconds(5)});
//   outbox::Relay relay(pool, outbox_key.Copy(), sink, clock, {}, registry.get());
//
// Thread-safe: the stub and channel are shared; each Append makes its own
// ClientContext.
#pragma once

#include <grpcpp/channel.h>

#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "crm/audit/v1/ingest.grpc.pb.h"
#include "libs/outbox/sink.h"

namespace crm::outbox {

struct GrpcSinkOptions {
  // Deadline of each AppendEvents call, from when it starts. Default 5 s.
  absl::Duration deadline = absl::Seconds(5);
};

class GrpcSink final : public Sink {
 public:
  // `channel` must not be null.
  explicit GrpcSink(std::shared_ptr<grpc::Channel> channel, GrpcSinkOptions options = {});

  // One AppendEvents call with all of `events`. OK once audit acknowledged the
  // batch (new or duplicate events alike). Errors: the call's gRPC status
  // mapped by crm::base::FromGrpcStatus, e.g. UNAVAILABLE when audit cannot be
  // reached, DEADLINE_EXCEEDED after the deadline, PERMISSION_DENIED if this
  // service is not on audit's allowlist. An empty batch is OK without a call.
  absl::Status Append(const std::vector<crm::audit::v1::Event>& events) override;

 private:
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<crm::audit::v1::AuditIngest::Stub> stub_;
  GrpcSinkOptions options_;
};

}  // namespace crm::outbox
