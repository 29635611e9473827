// LoginGuard: the brute-force defences around identity's Login, on Redis with
// PostgreSQL as the durable record.
//
// Per-source throttling (Admit): a sliding window per client address
// (lockout_policy.h SourceThrottle) counted in Redis, so all replicas share
// one budget per source: one client cannot try many accounts quickly, nor
// lock everyone out cheaply. Keys are
//   crm:identity:throttle:<hex HMAC of the address>:<window number>
// (no address in clear). With Redis down each replica counts in memory
// (bounded), so throttling weakens to per-replica but never disappears.
//
// Account lockout (RecordFailure): consecutive failures are counted in Redis
// (crm:identity:failures:<user id>, INCR: atomic across replicas). The
// failure that reaches the limit locks the account in PostgreSQL (users.
// locked_until / lockout_count / locked_permanently, under a row lock, so
// racing failures lock it once), where Login reads it. With Redis down the
// failures are counted in PostgreSQL instead, so lockout still holds. A
// Redis restart forgets a partial count (fewer failures than the limit).
//
// Thread-safe.
#pragma once

#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "libs/base/clock.h"
#include "libs/crypto/blind_index.h"
#include "libs/redis/client.h"
#include "services/identity/credential_store.h"
#include "services/identity/lockout_policy.h"

namespace crm::identity {

class LoginGuard {
 public:
  // All must outlive the guard.
  LoginGuard(redis::Client& redis, CredentialStore& credentials, const LockoutPolicy& lockout,
             const SourceThrottle& throttle, const crypto::BlindIndexer& indexer,
             const base::Clock& clock)
      : redis_(redis),
        credentials_(credentials),
        lockout_(lockout),
        throttle_(throttle),
        indexer_(indexer),
        clock_(clock) {}

  // Counts a login attempt from `source` (an address; empty counts as one
  // shared "unknown" source). OK, or RESOURCE_EXHAUSTED "too many login
  // attempts from this source; retry in N s".
  absl::Status Admit(absl::string_view source);

  // The same sliding-window count for any other limit: one attempt of
  // `scope` (a fixed label, e.g. "subject-code-address") for `value`, under
  // the key crm:identity:throttle:<hex HMAC of scope:value>:<window>.
  // RESOURCE_EXHAUSTED "too many <what>; retry in N s".
  absl::Status Count(const SourceThrottle& throttle, absl::string_view scope,
                     absl::string_view value, absl::string_view what);

  struct FailureResult {
    LockoutEvent event = LockoutEvent::kNone;
    absl::Duration lock_duration = absl::ZeroDuration();
    bool counted_in_redis = true;
  };
  // Counts a failed password or second factor of `user_id`, locking the
  // account when it reaches the limit. Database errors only (Redis errors
  // fall back to PostgreSQL).
  absl::StatusOr<FailureResult> RecordFailure(absl::string_view user_id);

  // What RecordFailure costs in Redis, on a throw-away key derived from
  // `username` (an HMAC, expiring in a minute): refusals that never reach a
  // password check pay it too, so their timing matches a wrong password's.
  // Errors are ignored.
  void RecordDecoyFailure(absl::string_view username);

  // A successful login: forgets the failures (Redis and PostgreSQL) and sets
  // last_login_at.
  absl::Status RecordSuccess(absl::string_view user_id);

  // An admin unlock: lifts any lock and forgets the counts.
  absl::Status Unlock(absl::string_view user_id);

  bool IsLocked(const LockoutState& state) const { return lockout_.IsLocked(state, clock_.Now()); }

  static std::string FailureKey(absl::string_view user_id);

 private:
  absl::Status CountLocally(const SourceThrottle& throttle, const std::string& key,
                            absl::string_view what, absl::Time now);

  redis::Client& redis_;
  CredentialStore& credentials_;
  const LockoutPolicy& lockout_;
  const SourceThrottle& throttle_;
  const crypto::BlindIndexer& indexer_;
  const base::Clock& clock_;
  absl::Mutex mu_;
  // Fallback counters while Redis is unreachable; cleared when too large.
  absl::flat_hash_map<std::string, SourceWindow> local_ ABSL_GUARDED_BY(mu_);
};

}  // namespace crm::identity
