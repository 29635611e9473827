// The Echo service (proto/crm/testing/v1/echo.proto) on top of libs/rpc, for
// the libs/rpc tests, the crm-echo-server test binary and the mTLS echo
// benchmark. Echo answers with the caller's identity and request id as the
// server saw them; with a downstream channel it forwards Echo to that server
// instead (A -> B), propagating the request id. SlowEcho sleeps delay_ms
// first. Counts handler runs, so tests can prove a refused call never reached
// a handler. Thread-safe.
#pragma once

#include <atomic>
#include <memory>

#include "crm/testing/v1/echo.grpc.pb.h"
#include "libs/rpc/access_policy.h"
#include "libs/rpc/channel.h"

namespace crm::rpc::testing {

inline constexpr char kEchoMethod[] = "/crm.testing.v1.Echo/Echo";
inline constexpr char kSlowEchoMethod[] = "/crm.testing.v1.Echo/SlowEcho";

class EchoService final : public crm::testing::v1::Echo::Service {
 public:
  EchoService() = default;
  // Forwards Echo calls to the server behind `downstream`.
  EchoService(std::shared_ptr<grpc::Channel> downstream, ChannelConfig downstream_config);

  grpc::Status Echo(grpc::ServerContext* context, const crm::testing::v1::EchoRequest* request,
                    crm::testing::v1::EchoResponse* response) override;
  grpc::Status SlowEcho(grpc::ServerContext* context, const crm::testing::v1::EchoRequest* request,
                        crm::testing::v1::EchoResponse* response) override;

  // How many times a handler ran.
  int handler_runs() const { return handler_runs_.load(); }

 private:
  std::unique_ptr<crm::testing::v1::Echo::Stub> downstream_;
  ChannelConfig downstream_config_;
  std::atomic<int> handler_runs_{0};
};

}  // namespace crm::rpc::testing
