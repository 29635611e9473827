#include "libs/rpc/testing/echo_service.h"

#include "absl/time/clock.h"
#include "libs/rpc/peer.h"
#include "libs/rpc/request_id.h"

namespace crm::rpc::testing {

EchoService::EchoService(std::shared_ptr<grpc::Channel> downstream, ChannelConfig downstream_config)
    : downstream_(crm::testing::v1::Echo::NewStub(downstream)),
      downstream_config_(std::move(downstream_config)) {}

grpc::Status EchoService::Echo(grpc::ServerContext* context,
                               const crm::testing::v1::EchoRequest* request,
                               crm::testing::v1::EchoResponse* response) {
  handler_runs_.fetch_add(1);
  if (downstream_ != nullptr) {
    RequestIdScope scope(*context);
    std::unique_ptr<grpc::ClientContext> out = NewClientContext(downstream_config_);
    return downstream_->Echo(out.get(), *request, response);
  }
  response->set_message(request->message());
  response->set_peer_identity(PeerIdentity(*context));
  response->set_request_id(RequestId(*context));
  response->set_peer_address(context->peer());
  return grpc::Status::OK;
}

grpc::Status EchoService::SlowEcho(grpc::ServerContext* context,
                                   const crm::testing::v1::EchoRequest* request,
                                   crm::testing::v1::EchoResponse* response) {
  handler_runs_.fetch_add(1);
  if (request->delay_ms() < 0 || request->delay_ms() > 60'000) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "delay_ms: must be 0..60000");
  }
  absl::SleepFor(absl::Milliseconds(request->delay_ms()));
  response->set_message(request->message());
  response->set_peer_identity(PeerIdentity(*context));
  response->set_request_id(RequestId(*context));
  response->set_peer_address(context->peer());
  return grpc::Status::OK;
}

}  // namespace crm::rpc::testing
