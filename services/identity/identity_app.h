// IdentityApp: crm-identity assembled from its settings: key files, Redis,
// the PostgreSQL stores, signing keys, token verifier, login guard, outbox
// writer and relay, and the gRPC handlers, plus the background sweeper.
// main.cc and the service tests build the same thing through Create.
//
// Lifetime: Stop() (idempotent; the destructor calls it) before the pool
// goes away.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "absl/synchronization/notification.h"
#include "libs/auth/token_verifier.h"
#include "libs/base/clock.h"
#include "libs/crypto/blind_index.h"
#include "libs/crypto/key_ring.h"
#include "libs/outbox/grpc_sink.h"
#include "libs/outbox/relay.h"
#include "libs/outbox/writer.h"
#include "libs/pg/pool.h"
#include "libs/redis/client.h"
#include "libs/rpc/access_policy.h"
#include "libs/rpc/tls_files.h"
#include "services/identity/identity_service.h"
#include "services/identity/pg_session_store.h"
#include "services/identity/pg_user_store.h"

namespace prometheus {
class Registry;
}

namespace crm::identity {

class IdentityApp {
 public:
  // Loads the key files, connects to Redis (waiting up to redis_wait),
  // prepares the outbox, refreshes the signing keys, starts the outbox relay
  // (if audit_addr is set; it dials audit with `tls`) and creates the
  // first administrator if configured. Errors name the failing step.
  static absl::StatusOr<std::unique_ptr<IdentityApp>> Create(const IdentityConfig& config,
                                                             const rpc::TlsFiles& tls, pg::Pool& db,
                                                             base::Clock& clock,
                                                             prometheus::Registry* metrics);
  ~IdentityApp();

  IdentityService& service() { return *service_; }
  SigningKeys& keys() { return *keys_; }
  // Allows every Identity method to any peer of our CA: API methods
  // authorize by the token the call carries (docs/rpc.md).
  absl::Status AllowMethods(rpc::AccessPolicy& policy) const;
  Revocations& revocations() { return *revocations_; }
  // Until Stop: Revocations::Watch every second (the Redis revocation set
  // republished within a second of Redis losing it) and
  // IdentityService::Sweep every sweep_interval.
  void StartSweeper();
  void Stop();

 private:
  IdentityApp(const IdentityConfig& config, pg::Pool& db, base::Clock& clock)
      : config_(config), db_(db), clock_(clock) {}
  absl::Status Init(const rpc::TlsFiles& tls, prometheus::Registry* metrics);

  const IdentityConfig& config_;
  pg::Pool& db_;
  base::Clock& clock_;
  std::optional<crypto::KeyRing> ring_;
  std::optional<crypto::BlindIndexer> indexer_;
  std::unique_ptr<redis::Client> redis_;
  std::unique_ptr<PgUserStore> users_;
  std::unique_ptr<PgSessionStore> sessions_;
  std::unique_ptr<CredentialStore> credentials_;
  std::unique_ptr<GrantStore> grants_;
  std::unique_ptr<SigningKeys> keys_;
  std::unique_ptr<Revocations> revocations_;
  std::unique_ptr<auth::TokenVerifier> verifier_;
  std::optional<PasswordHasher> hasher_;
  std::optional<PasswordPolicy> policy_;
  std::optional<LockoutPolicy> lockout_;
  std::optional<SourceThrottle> throttle_;
  std::unique_ptr<LoginGuard> guard_;
  std::unique_ptr<PersonalData> personal_;
  std::unique_ptr<outbox::Writer> audit_;
  std::unique_ptr<outbox::GrpcSink> sink_;
  std::unique_ptr<outbox::Relay> relay_;
  std::unique_ptr<IdentityService> service_;
  std::unique_ptr<SubjectDirectory> directory_;
  std::unique_ptr<SubjectVerifier> subjects_;
  absl::Notification stop_sweeps_;
  std::thread sweeper_;
};

// Writes the first admin's password to `path` (created 0600, never
// overwritten), for tools/dev up to print once.
absl::Status WritePasswordFile(const std::string& path, const std::string& password);

}  // namespace crm::identity
