// VerifiedTokenCache: remembers access tokens that passed signature and claim
// checks, so that repeated calls with the same token skip the Ed25519 verify
// (~140 us, see STACK.md) and the JSON parsing. Keyed by the SHA-256 of the
// token (the token itself is not kept); bounded, least recently used entries
// evicted first; each entry expires with its token (exp + leeway) and is
// ignored once the KeySet has been replaced since it was stored. Revocation is
// deliberately not cached (TokenVerifier checks it on every call).
//
// Thread-safe (one mutex; lookups are a hash probe and a list splice).
#pragma once

#include <cstddef>
#include <cstdint>
#include <list>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "libs/auth/principal.h"

namespace crm::auth {

class VerifiedTokenCache {
 public:
  // Holds at most `capacity` entries; 0 disables caching.
  explicit VerifiedTokenCache(size_t capacity);

  // The principal stored for `token_hash` if it is still valid at `now`
  // (now < valid_until) and was stored under `key_generation`; otherwise
  // nullptr (and a stale entry is dropped).
  std::shared_ptr<const Principal> Lookup(absl::string_view token_hash, absl::Time now,
                                          uint64_t key_generation);

  // Stores (or refreshes) an entry, evicting the least recently used one when full.
  void Insert(absl::string_view token_hash, std::shared_ptr<const Principal> principal,
              absl::Time valid_until, uint64_t key_generation);

  size_t size() const;
  size_t capacity() const { return capacity_; }
  uint64_t hits() const;
  uint64_t misses() const;

 private:
  struct Entry {
    std::string hash;
    std::shared_ptr<const Principal> principal;
    absl::Time valid_until;
    uint64_t generation;
  };
  using List = std::list<Entry>;  // most recently used first

  const size_t capacity_;
  mutable absl::Mutex mu_;
  List lru_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, List::iterator> index_ ABSL_GUARDED_BY(mu_);
  uint64_t hits_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t misses_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace crm::auth
