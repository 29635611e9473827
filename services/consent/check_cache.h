// CheckCache: where subjects stand on purposes, cached in Redis for Check.
//
//   consent:gen:<subject_id>              a generation counter, INCRed after
//                                         every committed change of the subject
//   consent:state:<subject_id>:<purpose>  "<generation>|<kind>|<expires µs>|<restricted>"
//
// Check and BatchCheck read both keys of every subject asked about in one
// MGET and go to PostgreSQL only for the misses.
//
// Keys carry ids only; values carry no personal data. An entry counts only
// if it was written under the subject's current generation, so a check that
// read PostgreSQL before a change committed cannot serve the old state after
// the change's Invalidate. Entries live `ttl` (the generation key twice as
// long, refreshed by each INCR), which also bounds how long a change whose
// Invalidate could not reach Redis may be served stale by another replica.
// When Redis is unreachable every call is a miss and checks read
// PostgreSQL. Metrics: crm_consent_check_cache_total{result=hit|miss|error}.
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

  struct Lookup {
    std::optional<ConsentStore::Standing> standing;  // a hit
    std::string generation;  // the subject's current one ("0" if none); "" if unknown
  };
  // The subjects' standings, in their order, in one round trip (MGET).
  // Never an error: Redis trouble is a miss with an unknown generation
  // (nothing is then put).
  std::vector<Lookup> GetMany(const std::vector<std::string>& subject_ids,
                              const std::string& purpose_id);
  // Stores the standings of the subjects `which` of `subject_ids` under
  // their generations from GetMany ("" skips one), in one pipeline.
  void PutMany(const std::vector<std::string>& subject_ids, const std::vector<size_t>& which,
               const std::string& purpose_id, const std::vector<Lookup>& lookups,
               const std::vector<ConsentStore::Standing>& standings);
  // After a committed change of the subject: bumps its generation.
  void Invalidate(const std::string& subject_id);

 private:
  redis::Client* redis_;
  absl::Duration ttl_;
  prometheus::Counter* hit_ = nullptr;
  prometheus::Counter* miss_ = nullptr;
  prometheus::Counter* error_ = nullptr;
};

// The value format, exposed for tests.
std::string EncodeStanding(const std::string& generation, const ConsentStore::Standing& s);
// The standing if `value` was written under `generation`.
std::optional<ConsentStore::Standing> DecodeStanding(const std::string& value,
                                                     const std::string& generation);

}  // namespace crm::consent
