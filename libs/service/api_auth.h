// How a service with API methods (called by people and backend systems with
// an access token) verifies those tokens: identity's public signing keys,
// fetched with crm.identity.v1.Identity/GetSigningKeys over mutual TLS and
// refreshed in the background (so key rotation needs no restart), plus the
// Redis revocation set, with identity's CheckSession as its fallback while
// Redis is unreachable or has lost the set (redis_revocation.h): a Redis
// outage makes token checks slower, not refused. Handlers then call
// rpc::AuthenticateCall(ctx, api_auth.verifier()).
//
//   ApiAuthConfig auth_cfg;            // settings identity_addr, redis_addr, ...
//   AddApiAuthSettings(settings, &auth_cfg);
//   ...
//   CRM_ASSIGN_OR_RETURN(auto auth, ApiAuth::Create(auth_cfg, tls, ctx.clock, &ctx.metrics));
//   ctx.on_stop.push_back([&] { auth->Stop(); });
//
// Start-up waits at most key_wait (default 5 s) for identity's keys, so a
// service that reports SERVING normally accepts tokens at once; it does not
// fail without identity (services start in any order): until the first fetch
// succeeds every token is refused (UNAUTHENTICATED), and the fetch is
// retried every second; afterwards every key_refresh.
//
// Thread-safe.
#pragma once

#include <grpcpp/channel.h>

#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "libs/auth/key_set.h"
#include "libs/auth/redis_revocation.h"
#include "libs/auth/token_verifier.h"
#include "libs/base/clock.h"
#include "libs/config/config.h"
#include "libs/redis/client.h"
#include "libs/rpc/tls_files.h"

namespace prometheus {
class Registry;
}  // namespace prometheus

namespace crm::service {

struct ApiAuthConfig {
  // Setting identity_addr: identity's host:port. Default "127.0.0.1:50051".
  std::string identity_addr = "127.0.0.1:50051";
  // Settings redis_addr, redis_password_file, redis_wait.
  std::string redis_addr = "127.0.0.1:6379";
  std::string redis_password_file;
  absl::Duration redis_wait = absl::Seconds(60);
  // Settings token_issuer, token_audience: what tokens must carry.
  std::string token_issuer = "crm-identity";
  std::string token_audience = "crm";
  // Setting key_refresh: how often identity's keys are fetched again (at
  // most identity's publish-ahead time of 10 minutes).
  absl::Duration key_refresh = absl::Minutes(1);
  // Setting key_wait: how long start-up waits for the first fetch of
  // identity's keys before it goes on (and serves, refusing tokens until a
  // fetch succeeds). 0 does not wait.
  absl::Duration key_wait = absl::Seconds(5);
};

void AddApiAuthSettings(config::Settings& settings, ApiAuthConfig* config);
// INVALID_ARGUMENT naming the setting.
absl::Status ValidateApiAuthConfig(const ApiAuthConfig& config);

// A Redis client for `addr` ("host:port"), with the password read from
// `password_file` (a key file: 0600, see libs/crypto/key_file.h) if set,
// retrying while Redis is unreachable for up to `wait`.
absl::StatusOr<std::unique_ptr<redis::Client>> ConnectRedis(const std::string& addr,
                                                            const std::string& password_file,
                                                            absl::Duration wait,
                                                            base::Clock& clock);

class ApiAuth {
 public:
  // Connects Redis (waiting up to redis_wait) and starts the key fetcher.
  // `tls` is this service's own certificate, for the channel to identity.
  // `metrics` (may be null) receives crm_auth_revocation_fallback_total.
  static absl::StatusOr<std::unique_ptr<ApiAuth>> Create(const ApiAuthConfig& config,
                                                         const rpc::TlsFiles& tls,
                                                         base::Clock& clock,
                                                         prometheus::Registry* metrics = nullptr);
  ~ApiAuth();

  auth::TokenVerifier& verifier() { return *verifier_; }
  redis::Client& redis() { return *redis_; }
  // The mTLS channel to identity (with this service's certificate), e.g. for
  // a ServiceToken.
  std::shared_ptr<grpc::Channel> identity_channel() const { return identity_; }
  // One fetch of identity's keys now; replaces the key set on success.
  absl::Status FetchKeys();
  // Stops the fetcher. Idempotent.
  void Stop();

 private:
  ApiAuth() = default;

  std::unique_ptr<redis::Client> redis_;
  std::unique_ptr<auth::RevocationChecker> identity_sessions_;
  std::unique_ptr<auth::RedisRevocationChecker> revocation_;
  auth::KeySet keys_;
  std::unique_ptr<auth::TokenVerifier> verifier_;
  std::shared_ptr<grpc::Channel> identity_;
  absl::Duration key_refresh_;
  absl::Notification stop_;
  absl::Notification have_keys_;
  std::thread fetcher_;
};

}  // namespace crm::service
