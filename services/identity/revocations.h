// Revocations: how identity revokes access tokens, and its record of them.
//
// Every revocation (logout, an administrator, a password change, a lockout, a
// replayed refresh token, a service account's replaced token session) is
// recorded in PostgreSQL first (SessionStore::RecordRevocations) and then
// published to the Redis revocation set every service's TokenVerifier reads.
// The record is the truth and Redis its copy:
//  - a publish that fails (Redis unreachable) does not fail the caller: the
//    record stands, services ask identity's CheckSession while Redis is down
//    (RedisRevocationChecker's fallback), and Watch republishes once Redis
//    answers again;
//  - Watch also republishes everything in force when Redis lost the set (a
//    restart without persistence, eviction: the complete mark
//    auth::kRevocationsCompleteKey is gone), and sets the mark again. Until
//    then services that find no mark ask identity.
// IsRevoked answers from the record: CheckSession, and identity's own
// verifier (checker()) when Redis cannot answer.
//
// Thread-safe. The store, the Redis client and the clock must outlive it.
#pragma once

#include <atomic>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "libs/auth/redis_revocation.h"
#include "libs/auth/revocation.h"
#include "libs/base/clock.h"
#include "libs/redis/client.h"
#include "services/identity/session_store.h"

namespace prometheus {
class Registry;
}  // namespace prometheus

namespace crm::identity {

class Revocations final : public auth::RevocationChecker {
 public:
  // `ttl`: how long a revocation stays in force, the longest lifetime of any
  // token identity mints plus the verifiers' leeway. `metrics` may be null.
  // INVALID_ARGUMENT as RedisRevocationChecker::Create.
  static absl::StatusOr<std::unique_ptr<Revocations>> Create(SessionStore& store,
                                                             redis::Client& redis,
                                                             const base::Clock& clock,
                                                             absl::Duration ttl,
                                                             prometheus::Registry* metrics);

  // Records, then publishes. Errors: INVALID_ARGUMENT naming the id (not a
  // UUID); the store's error (nothing revoked). A failed publish is logged
  // and left to Watch.
  absl::Status Revoke(absl::string_view session_id) {
    return RevokeMany({std::string(session_id)});
  }
  absl::Status RevokeMany(absl::Span<const std::string> session_ids);

  // From the record (SessionStore::IsRevoked).
  absl::StatusOr<bool> IsRevoked(absl::string_view session_id) override;

  // For identity's own TokenVerifier: Redis first, this record as fallback.
  auth::RedisRevocationChecker& checker() { return *checker_; }

  // Republishes everything in force when a publish failed since the last
  // success or Redis has no complete mark (and logs
  // identity.revocations_republished); else only looks. UNAVAILABLE while
  // Redis cannot be reached. Run it every second (IdentityApp).
  absl::Status Watch();

  // Writes everything in force to Redis and sets the complete mark, in one
  // transaction, without a log line. The sweep runs it too, for a replica
  // that died before its watch could retry a failed publish. UNAVAILABLE
  // while Redis cannot be reached; the store's error.
  absl::Status Republish();

  // Forgets the records whose tokens have all expired (the sweep).
  absl::Status Prune();

 private:
  Revocations(SessionStore& store, const base::Clock& clock, absl::Duration ttl)
      : store_(store), clock_(clock), ttl_(ttl) {}
  // Republish; how many sessions it wrote.
  absl::StatusOr<size_t> RepublishAll();

  SessionStore& store_;
  const base::Clock& clock_;
  const absl::Duration ttl_;
  std::unique_ptr<auth::RedisRevocationChecker> checker_;
  // A publish failed and Watch has not republished since.
  std::atomic<bool> dirty_{false};
};

}  // namespace crm::identity
