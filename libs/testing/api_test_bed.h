// ApiTestBed: what a service test needs to call a service's API methods the
// way production does — the shared test PostgreSQL/Redis (TestEnv), a test
// PKI for mutual TLS, a fake identity serving the signing key of a
// TokenMinter over mTLS (GetSigningKeys), a real service::ApiAuth (keys
// fetched from that fake, revocations in the test Redis), access tokens with
// any permissions and teams, and mTLS channels from any peer.
//
//   CRM_ASSIGN_OR_RETURN(auto bed, ApiTestBed::Create("contacts", {"operator", "shop"}));
//   MyService service(..., bed->auth().verifier(), bed->clock());
//   CRM_ASSIGN_OR_RETURN(auto server, bed->Serve("contacts", std::move(policy), {&service}));
//   auto channel = bed->Channel("operator", server->port(), "contacts");
//   context.AddMetadata("authorization", "Bearer " + bed->Token(user, {"contacts.read"}));
//
// Not thread-safe to set up; Token() and the accessors are safe afterwards.
#pragma once

#include <grpcpp/channel.h>

#include <initializer_list>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "crm/identity/v1/identity.grpc.pb.h"
#include "libs/auth/token_minter.h"
#include "libs/base/clock.h"
#include "libs/rpc/server.h"
#include "libs/rpc/testing/test_pki.h"
#include "libs/service/api_auth.h"
#include "libs/testing/test_env.h"

namespace crm::testing {

class ApiTestBed {
 public:
  // Certificates for `service`, "identity" and every name in `peers`.
  static absl::StatusOr<std::unique_ptr<ApiTestBed>> Create(const std::string& service,
                                                            const std::vector<std::string>& peers);
  ~ApiTestBed();

  // A token of `user_id` with `permissions` and `teams`, valid for 15
  // minutes of clock(), with a fresh session id.
  std::string Token(const std::string& user_id, std::vector<std::string> permissions,
                    std::vector<std::string> teams = {});

  // The server settings of `name`'s certificate on an ephemeral port,
  // without metrics or signal handling.
  rpc::ServerConfig ServerConfig(const std::string& name) const;
  // A server with `name`'s settings (above) and `policy`, serving `services`,
  // started.
  absl::StatusOr<std::unique_ptr<rpc::ServerRunner>> Serve(
      const std::string& name, rpc::AccessPolicy policy,
      std::initializer_list<grpc::Service*> services) const;
  // An mTLS channel from `peer` to 127.0.0.1:`port` expecting `server`.
  absl::StatusOr<std::shared_ptr<grpc::Channel>> Channel(const std::string& peer, int port,
                                                         const std::string& server) const;
  // Sets identity's "revocation set complete" mark in Redis, as identity does
  // in production once it has republished the set: token checks then ask
  // Redis alone (redis_revocation.h). For benchmarks; tests run without it.
  absl::Status MarkRevocationsComplete();
  // Writes `content` to a new 0600 file in the bed's directory; its path.
  absl::StatusOr<std::string> SecretFile(const std::string& name, absl::string_view content);

  service::ApiAuth& auth() { return *auth_; }
  base::FakeClock& clock() { return clock_; }
  const TestEnv& env() const { return env_; }
  const rpc::testing::TestPki& pki() const { return *pki_; }
  const std::string& dir() const { return dir_; }

 private:
  ApiTestBed() = default;
  absl::Status Init(const std::string& service, const std::vector<std::string>& peers);

  class FakeIdentity;
  TestEnv env_;
  std::unique_ptr<rpc::testing::TestPki> pki_;
  std::string dir_;
  base::FakeClock clock_;
  auth::testing::TokenMinter minter_;
  std::unique_ptr<FakeIdentity> identity_;
  std::unique_ptr<rpc::ServerRunner> identity_server_;
  std::unique_ptr<service::ApiAuth> auth_;
};

}  // namespace crm::testing
