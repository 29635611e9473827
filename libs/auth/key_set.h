// KeySet: the public keys that access tokens may be signed with, by key id
// (the JWT header's `kid`). identity publishes its current and next signing
// keys; each service keeps a KeySet and replaces its content when they change
// (on start, then on a refresh timer or push), so signing keys rotate without
// restarts.
//
// Thread-safe: readers take an immutable snapshot (a shared_ptr copy under a
// mutex); Replace swaps in a new snapshot with a higher generation number.
// TokenVerifier's cache remembers the generation an entry was verified under
// and ignores entries from older generations, so removing a key (e.g. after a
// compromise) takes effect at once for cached tokens too.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "libs/crypto/ed25519.h"

namespace crm::auth {

class KeySet {
 public:
  using KeyMap = absl::flat_hash_map<std::string, crypto::Ed25519PublicKey>;
  struct Snapshot {
    uint64_t generation = 0;
    KeyMap keys;
  };

  KeySet();  // empty: every token is refused until Replace
  explicit KeySet(KeyMap keys);

  // Installs `keys` as the complete set (generation + 1).
  void Replace(KeyMap keys);
  // The current keys. Never null.
  std::shared_ptr<const Snapshot> Get() const;

 private:
  mutable absl::Mutex mu_;
  std::shared_ptr<const Snapshot> current_ ABSL_GUARDED_BY(mu_);
};

}  // namespace crm::auth
