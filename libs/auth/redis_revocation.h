// RedisRevocationChecker: the production RevocationChecker. Identity revokes a
// session (logout, admin action, password change, lockout) by writing
// `crm:auth:revoked:<session_id>` = "1" with a TTL; every service's
// TokenVerifier asks IsRevoked on every call. Keys hold nothing but the
// session id, an opaque UUID or token that is not personal data.
//
// A key lives as long as the longest access token of the session could still
// be accepted (by default 15 min + 30 s leeway); after that every token of the
// session has expired anyway, so the revocation set never grows without bound.
//
// Each uncached check is one Redis round trip (PTTL, which tells both whether
// the key exists and how long it lives). An optional local cache, bounded by
// `cache_capacity`, remembers:
//  - "not revoked" for `negative_cache_ttl` (at most 1 s, default 500 ms), so
//    a revocation written by another process reaches this one within that
//    time plus one round trip;
//  - "revoked" until the key's own expiry: a revocation is never undone.
// In the last fifth of a "not revoked" answer's life, one call asks again
// while concurrent calls keep using the answer (if that ask fails, the call
// gets the answer too, and the next call asks): a busy session costs one
// round trip every four fifths of the TTL, not one per call in flight when
// its answer expires.
// Revoke/RevokeMany through this object update its cache at once, even when
// the write to Redis fails.
//
// Redis is a cache of revocations, not their record: identity keeps every
// revocation in PostgreSQL and republishes the set after Redis lost it (a
// restart without persistence, a write that failed). When it has, it sets
// `crm:auth:revocations:complete`. With a `fallback` (identity's own
// record: services ask identity's CheckSession over mutual TLS, identity
// reads its database), a check asks the fallback instead of Redis
//  - when Redis cannot be reached (so a Redis outage makes calls slower, not
//    refused), and
//  - when Redis says "not revoked" but the set is not marked complete (so a
//    Redis that came back empty never forgets a revocation).
// A revocation Redis does hold is believed without asking. Fallback answers
// are cached like Redis's. Without a fallback, Redis alone decides and an
// unreachable Redis fails the check.
//
// Metrics (with a registry): crm_auth_revocation_fallback_total{reason=
// "redis_unavailable"|"set_incomplete"}, checks answered by the fallback.
// Logs: auth.revocation_fallback (warn) when checks start going to the
// fallback, auth.revocation_fallback_ended (info) when Redis answers again.
//
// Thread-safe. The redis::Client, the Clock and the fallback must outlive
// the checker.
#pragma once

#include <atomic>
#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "libs/auth/revocation.h"
#include "libs/base/clock.h"
#include "libs/redis/client.h"

namespace prometheus {
class Counter;
class Registry;
}  // namespace prometheus

namespace crm::auth {

inline constexpr char kRevokedKeyPrefix[] = "crm:auth:revoked:";
// Set (no expiry) by identity once the revocation set in Redis holds every
// revocation still in force.
inline constexpr char kRevocationsCompleteKey[] = "crm:auth:revocations:complete";

struct RedisRevocationOptions {
  // TTL of a revocation written by Revoke/RevokeMany when none is given: the
  // longest remaining access-token lifetime plus the verifier's leeway.
  // Default 15 min + 30 s. Must be at least 1 s.
  absl::Duration revocation_ttl = absl::Minutes(15) + absl::Seconds(30);
  // How long a "not revoked" answer is reused locally. Zero disables the
  // negative cache. Default 500 ms; at most 1 s.
  absl::Duration negative_cache_ttl = absl::Milliseconds(500);
  // Most session ids remembered locally (both answers). When full, expired
  // entries are dropped and, if still full, new answers are not cached.
  // Zero disables the local cache entirely. Default 10,000.
  size_t cache_capacity = 10'000;
  // Asked when Redis is unreachable or its set is not marked complete (see
  // above). Not owned. Null: Redis alone decides.
  RevocationChecker* fallback = nullptr;
};

class RedisRevocationChecker final : public RevocationChecker {
 public:
  // INVALID_ARGUMENT naming the option if revocation_ttl is under 1 s or
  // infinite, or negative_cache_ttl is negative or over 1 s.
  // `registry` (may be null) receives the fallback counter.
  static absl::StatusOr<std::unique_ptr<RedisRevocationChecker>> Create(
      redis::Client& redis, const base::Clock& clock, RedisRevocationOptions options = {},
      prometheus::Registry* registry = nullptr);

  // True if the session is revoked, false if not. INVALID_ARGUMENT (naming
  // "session_id", never echoing it) if `session_id` is neither a UUID nor an
  // opaque token of 16-128 base64url characters. Without a fallback:
  // UNAVAILABLE if Redis cannot be reached or does not answer in time, other
  // codes for Redis error replies (redis::ErrorReplyToStatus). With one, the
  // fallback's error when it was asked and failed. Any error makes the
  // verifier fail closed.
  absl::StatusOr<bool> IsRevoked(absl::string_view session_id) override;

  // Marks the session revoked for `ttl` (SET key "1" PX ttl). INVALID_ARGUMENT
  // for a malformed id or a ttl under 1 s or infinite; UNAVAILABLE or a Redis
  // error as for IsRevoked.
  absl::Status Revoke(absl::string_view session_id, absl::Duration ttl);
  absl::Status Revoke(absl::string_view session_id) {
    return Revoke(session_id, options_.revocation_ttl);
  }

  // Revokes every id in one pipelined round trip. Every id is validated
  // first: INVALID_ARGUMENT naming the index of the first malformed one, and
  // nothing is written. An empty span is OK and sends nothing. Errors
  // otherwise as for Revoke (the first failing reply's status).
  absl::Status RevokeMany(absl::Span<const std::string> session_ids, absl::Duration ttl);
  absl::Status RevokeMany(absl::Span<const std::string> session_ids) {
    return RevokeMany(session_ids, options_.revocation_ttl);
  }

  // Writes every id (as RevokeMany) and then the complete mark, in one
  // MULTI/EXEC transaction: a Redis that restarts midway has neither. Errors
  // as for RevokeMany.
  absl::Status Republish(absl::Span<const std::string> session_ids, absl::Duration ttl);
  // Whether the complete mark is set. UNAVAILABLE or a Redis error as above.
  absl::StatusOr<bool> IsComplete();

  // The Redis key of a valid session id; INVALID_ARGUMENT as for IsRevoked.
  // UUIDs are lower-cased, so both spellings share one key.
  static absl::StatusOr<std::string> KeyFor(absl::string_view session_id);

 private:
  struct CacheEntry {
    bool revoked = false;
    absl::Time expires_at;
    bool refreshing = false;  // a call is asking again (see the top)
  };
  // A "not revoked" answer is asked again in its last 1/kRefreshPart.
  static constexpr int kRefreshPart = 5;

  RedisRevocationChecker(redis::Client& redis, const base::Clock& clock,
                         RedisRevocationOptions options)
      : redis_(redis), clock_(clock), options_(options) {}
  // Remembers `revoked` for `key` until `expires_at`, within capacity.
  void Remember(const std::string& key, bool revoked, absl::Time expires_at);
  // Caches `revoked` for `key` as a fresh answer: "not revoked" for the
  // negative TTL, "revoked" for `revoked_for`.
  void RememberAnswer(const std::string& key, bool revoked, absl::Duration revoked_for);
  // The validated keys of `session_ids`; INVALID_ARGUMENT naming the index.
  static absl::StatusOr<std::vector<std::string>> KeysFor(
      absl::Span<const std::string> session_ids);
  // Asks Redis (and the fallback when needed) and caches the answer.
  absl::StatusOr<bool> Ask(absl::string_view session_id, const std::string& key);
  // Asks the fallback; `redis_unavailable` says why (else: set incomplete).
  absl::StatusOr<bool> AskFallback(absl::string_view session_id, const std::string& key,
                                   bool redis_unavailable);

  redis::Client& redis_;
  const base::Clock& clock_;
  const RedisRevocationOptions options_;
  prometheus::Counter* fallback_unavailable_ = nullptr;
  prometheus::Counter* fallback_incomplete_ = nullptr;
  std::atomic<bool> in_fallback_{false};
  absl::Mutex mu_;
  absl::flat_hash_map<std::string, CacheEntry> cache_ ABSL_GUARDED_BY(mu_);
};

}  // namespace crm::auth
