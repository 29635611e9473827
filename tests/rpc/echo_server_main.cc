// crm-echo-server: the Echo service on ServerRunner as a real process, for
// tests of process-level behaviour (SIGTERM drains in-flight calls, exit 0).
//
//   crm-echo-server --identity=b --tls_cert=... --tls_key=... --tls_ca=...
//                   [--port_file=PATH] [other ServerRunner settings]
//
// Allows Echo and SlowEcho to any peer of the CA. Writes "<grpc port>
// <metrics port>\n" to port_file (via a rename) once listening.
//
// With --require_token, every call must carry an access token of the suite,
// verified as the services verify theirs (libs/service/api_auth.h: identity's
// keys, the Redis revocation set; settings identity_addr, redis_addr,
// redis_password_file, ...): the benchmarks' measure of what token
// verification costs a call (tools/bench_src/stack_bench.cc).
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <string>

#include "libs/base/clock.h"
#include "libs/base/grpc_status.h"
#include "libs/base/runtime.h"
#include "libs/config/config.h"
#include "libs/log/log.h"
#include "libs/rpc/call_auth.h"
#include "libs/rpc/server.h"
#include "libs/rpc/testing/echo_service.h"
#include "libs/service/api_auth.h"

extern char** environ;

namespace {

// Echo and SlowEcho behind AuthenticateCall.
class TokenEcho final : public crm::testing::v1::Echo::Service {
 public:
  TokenEcho(crm::rpc::testing::EchoService& echo, crm::auth::TokenVerifier& verifier)
      : echo_(echo), verifier_(verifier) {}

  grpc::Status Echo(grpc::ServerContext* context, const crm::testing::v1::EchoRequest* request,
                    crm::testing::v1::EchoResponse* response) override {
    grpc::Status s = Authenticate(*context);
    return s.ok() ? echo_.Echo(context, request, response) : s;
  }
  grpc::Status SlowEcho(grpc::ServerContext* context, const crm::testing::v1::EchoRequest* request,
                        crm::testing::v1::EchoResponse* response) override {
    grpc::Status s = Authenticate(*context);
    return s.ok() ? echo_.SlowEcho(context, request, response) : s;
  }

 private:
  grpc::Status Authenticate(const grpc::ServerContext& context) {
    auto principal = crm::rpc::AuthenticateCall(context, verifier_);
    return principal.ok() ? grpc::Status::OK : crm::base::ToGrpcStatus(principal.status());
  }

  crm::rpc::testing::EchoService& echo_;
  crm::auth::TokenVerifier& verifier_;
};

}  // namespace

int main(int argc, char** argv) {
  crm::base::ConfigureServerRuntime();  // as the services: comparable processes
  crm::rpc::ServerConfig config;
  std::string identity;
  std::string port_file;
  std::string log_level = "info";
  bool require_token = false;
  crm::service::ApiAuthConfig auth_config;
  crm::config::Settings settings("crm-echo-server");
  settings.Add("identity", &identity, "expected identity of tls_cert (short name)");
  settings.Add("port_file", &port_file, "where to write '<grpc port> <metrics port>'");
  settings.Add("log_level", &log_level, "debug, info, warn or error");
  settings.Add("require_token", &require_token, "every call must carry a valid access token");
  crm::rpc::AddServerSettings(settings, &config);
  crm::service::AddApiAuthSettings(settings, &auth_config);
  crm::config::ParseOrExit(settings, argc, argv, environ);
  config.service = identity;
  crm::log::SetService("echo");
  crm::log::Level level;
  if (!crm::log::ParseLevel(log_level, &level)) {
    std::fprintf(stderr, "log_level: must be debug, info, warn or error\n");
    return 2;
  }
  crm::log::SetMinLevel(level);

  crm::rpc::AccessPolicy policy;
  policy.AllowAnyPeer(crm::rpc::testing::kEchoMethod)
      .AllowAnyPeer(crm::rpc::testing::kSlowEchoMethod);
  crm::rpc::testing::EchoService service;
  std::unique_ptr<crm::service::ApiAuth> auth;
  std::unique_ptr<TokenEcho> token_echo;
  crm::rpc::ServerRunner runner(config, std::move(policy));
  if (require_token) {
    absl::StatusOr<std::unique_ptr<crm::service::ApiAuth>> created =
        crm::service::ApiAuth::Create(auth_config, config.tls, crm::base::RealClock::Get());
    if (!created.ok()) {
      crm::log::Error("server.start_failed", {{"status", created.status()}});
      return 1;
    }
    auth = std::move(*created);
    token_echo = std::make_unique<TokenEcho>(service, auth->verifier());
    runner.RegisterService(token_echo.get());
  } else {
    runner.RegisterService(&service);
  }
  if (absl::Status s = runner.Start(); !s.ok()) {
    crm::log::Error("server.start_failed", {{"status", s}});
    return 1;
  }
  if (!port_file.empty()) {
    const std::string tmp = port_file + ".tmp";
    {
      std::ofstream out(tmp);
      out << runner.port() << " " << runner.metrics_port() << "\n";
    }
    if (std::rename(tmp.c_str(), port_file.c_str()) != 0) return 1;
  }
  const bool clean = runner.Wait().ok();
  if (auth != nullptr) auth->Stop();
  return clean ? 0 : 1;
}
