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
// served stale. When Redis is unreachable every call is a miss and checks
// read PostgreSQL. Metrics: crm_consent_check_cache_total{result=hit|miss|error}.
//
// Thread-safe (redis::Client is).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "absl/time/time.h"
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
  void Invalidate(const std::string& subject_id, const std::vector<std::string>& purpose_ids);

 private:
  redis::Client* redis_;
  absl::Duration ttl_;
  prometheus::Counter* hit_ = nullptr;
  prometheus::Counter* miss_ = nullptr;
  prometheus::Counter* error_ = nullptr;
};

// The value format, exposed for tests.
std::string EncodeStanding(const ConsentStore::Standing& s);
std::optional<ConsentStore::Standing> DecodeStanding(absl::string_view value);

}  // namespace crm::consent
