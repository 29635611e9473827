// DataKeys: the audit service's per-scope data keys (table audit_data_keys),
// wrapped under audit's KEK ring (libs/crypto data_key.h, purpose
// "audit.personal", the scope as the binding), cached unwrapped in memory.
// Erasure destroys a subject's key: its wrapped bytes are cleared, so the
// personal parts sealed under it can never be opened again, while the sealed
// bytes and every hash stay in the log.
//
// Thread-safe.
#pragma once

#include <list>
#include <memory>
#include <optional>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "libs/base/clock.h"
#include "libs/crypto/key_ring.h"
#include "libs/crypto/secret_bytes.h"
#include "libs/pg/pool.h"

namespace crm::audit {

using DataKey = std::shared_ptr<const crypto::SecretBytes>;

class DataKeys {
 public:
  // All must outlive the object. `cache_capacity` unwrapped keys are kept.
  DataKeys(pg::Pool& pool, const crypto::KeyRing& ring, const base::Clock& clock,
           size_t cache_capacity = 10'000)
      : pool_(pool), ring_(ring), clock_(clock), capacity_(cache_capacity) {}

  // The keys of `scopes`, creating missing ones (one round trip for all
  // cached misses); a destroyed scope maps to null. Errors: database errors,
  // DATA_LOSS / FAILED_PRECONDITION when a stored key does not unwrap.
  absl::StatusOr<absl::flat_hash_map<std::string, DataKey>> GetOrCreate(
      const std::vector<std::string>& scopes);

  // The key of `scope` for reading: null if it never existed or was destroyed.
  absl::StatusOr<DataKey> Get(const std::string& scope);

  // Destroys the key of `scope` (creating a destroyed marker if it never
  // existed, so later events cannot re-create it). Returns true if a live
  // key was destroyed now.
  absl::StatusOr<bool> Destroy(const std::string& scope);

 private:
  absl::StatusOr<DataKey> Unwrap(const std::string& scope, const std::string& wrapped) const;
  void Remember(const std::string& scope, DataKey key) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  pg::Pool& pool_;
  const crypto::KeyRing& ring_;
  const base::Clock& clock_;
  const size_t capacity_;
  absl::Mutex mu_;
  // Live keys only, each for kCacheTtl: a key destroyed by another replica
  // stops being usable here within that time.
  struct Cached {
    DataKey key;
    absl::Time until;
  };
  absl::flat_hash_map<std::string, Cached> cache_ ABSL_GUARDED_BY(mu_);
};

inline constexpr char kDataKeyPurpose[] = "audit.personal";
// How long an unwrapped key is reused before the row is read again.
inline constexpr absl::Duration kDataKeyCacheTtl = absl::Seconds(30);

}  // namespace crm::audit
