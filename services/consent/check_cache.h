// CheckCache: where subjects stand on purposes, cached in Redis for Check.
//
//   cs:<subject id, 16 bytes>:<purpose>  "<kind>|<expires µs>|<restricted>"
//   cg:<subject id, 16 bytes>            a generation counter, INCRed after
//                                        every committed change of the subject
//
// (The subject id as its 16 raw bytes: a 10,000-key MGET costs Redis half
// as much as with the 36-character text.)
//
// A check reads the state keys of every subject asked about in one MGET and
// goes to PostgreSQL only for the misses. A change, once committed, bumps
// the subject's generation and deletes its state keys (Invalidate). A miss
// notes the generations before reading PostgreSQL and stores what it read
// only where the generation is still the same (one server-side script), so
// a check that read PostgreSQL before a change committed cannot put the old
// state back after the change's Invalidate.
//
// Keys carry ids only; values carry no personal data. Entries live `ttl`
// (the generation key twice as long, refreshed by each INCR), which also
// bounds how long a change whose Invalidate could not reach Redis may be
// served stale, were it not for the durable invalidations below. When Redis
// is unreachable every call is a miss and checks read PostgreSQL. Metrics:
// crm_consent_check_cache_total{result=hit|miss|error|bypass}.
//
// Durable invalidation: a change records in its own transaction that the
// subject's entries must go (Pending: a row of cache_invalidations), and
// after the commit Committed() invalidates and drops the row. A crash
// between the two, or Redis failing the invalidation, leaves the row, and
// Repair (every replica, every second) retries it. Redis that comes back
// with its data (a pause, a partition, a restart with persistence) would
// otherwise serve the old decision until its TTL: so once this process has
// seen any Redis call fail, it bypasses the cache (reads PostgreSQL) until
// a Repair round finds Redis answering and no invalidation left.
//
// Thread-safe (redis::Client is).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "libs/pg/pool.h"
#include "libs/redis/client.h"
#include "services/consent/consent_store.h"

namespace prometheus {
class Counter;
class Registry;
}  // namespace prometheus

namespace crm::consent {

class CheckCache {
 public:
  // `redis` may be null (no cache); `registry` may be null (no metrics).
  CheckCache(redis::Client* redis, absl::Duration ttl, prometheus::Registry* registry);

  // The subjects' cached standings on `purpose_id`, in their order, in one
  // round trip (MGET); nullopt for a miss. Never an error: Redis trouble is
  // a miss for all.
  std::vector<std::optional<ConsentStore::Standing>> GetMany(
      const std::vector<std::string>& subject_ids, const std::string& purpose_id);
  // GetMany of one subject without blocking: `done` gets the standing or
  // nullopt, on the Redis client's thread (redis::Client::CommandArgvAsync;
  // it must not block), or at once on this thread without Redis or while
  // bypassed.
  void GetAsync(const std::string& subject_id, const std::string& purpose_id,
                std::function<void(std::optional<ConsentStore::Standing>)> done);
  // The current generations of the subjects `which` of `subject_ids`, to
  // take before reading PostgreSQL for them ("0" for none; all "" when Redis
  // cannot answer, and then PutMany stores nothing).
  std::vector<std::string> Generations(const std::vector<std::string>& subject_ids,
                                       const std::vector<size_t>& which);
  // Stores standings[k] for subject_ids[which[k]] where its generation is
  // still generations[k], in one round trip. Best effort.
  void PutMany(const std::vector<std::string>& subject_ids, const std::vector<size_t>& which,
               const std::string& purpose_id, const std::vector<std::string>& generations,
               const std::vector<ConsentStore::Standing>& standings);
  // After a committed change of the subject: bumps its generation and drops
  // its entries for `purpose_ids` (every purpose the change can affect).
  // UNAVAILABLE (and bypass from now on) if Redis did not do it.
  absl::Status Invalidate(const std::string& subject_id,
                          const std::vector<std::string>& purpose_ids);

  // In the transaction of a change of `subject_id` affecting `purpose_ids`:
  // records the invalidation it needs; the row's id, for Committed. 0 (and
  // nothing recorded) when there is no cache.
  absl::StatusOr<int64_t> Pending(pqxx::transaction_base& tx, const std::string& subject_id,
                                  const std::vector<std::string>& purpose_ids) const;
  // After that transaction committed: Invalidate, then drop the row `id`.
  // Best effort: what fails stays for Repair.
  void Committed(pg::Pool& db, int64_t id, const std::string& subject_id,
                 const std::vector<std::string>& purpose_ids);
  // Retries every recorded invalidation (oldest first, up to 1,000 a call);
  // ends the bypass once Redis answers and none is left. OK when nothing
  // failed; UNAVAILABLE naming Redis or PostgreSQL otherwise.
  absl::Status Repair(pg::Pool& db);

  // True while checks bypass the cache (see the header comment).
  bool bypassed() const { return bypass_.load(std::memory_order_relaxed); }

 private:
  void NoteRedisFailure();

  redis::Client* redis_;
  absl::Duration ttl_;
  // Written under mu_ (NoteRedisFailure, Repair), read without it.
  std::atomic<bool> bypass_{false};
  absl::Mutex mu_;
  uint64_t failures_ ABSL_GUARDED_BY(mu_) = 0;
  prometheus::Counter* hit_ = nullptr;
  prometheus::Counter* miss_ = nullptr;
  prometheus::Counter* error_ = nullptr;
  prometheus::Counter* bypass_count_ = nullptr;
};

// The value format, exposed for tests.
std::string EncodeStanding(const ConsentStore::Standing& s);
std::optional<ConsentStore::Standing> DecodeStanding(absl::string_view value);

}  // namespace crm::consent
