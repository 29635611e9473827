// Identity's token-signing keys: Ed25519 key pairs with key ids, the private
// halves wrapped under identity's KEK ring (libs/crypto KeyRing) in the
// `signing_keys` table, the public halves served by GetSigningKeys so every
// service (and outside backends) can verify access tokens.
//
// Rotation without downtime: SigningKeys::Refresh (called at start and then
// periodically by every replica) makes sure a key exists that is active, and
// when the newest active key is older than `rotate_after` it inserts a new
// key whose activated_at lies `publish_ahead` in the future, so verifiers
// (which refresh their KeySet at least that often) know the new public key
// before the first token signed with it appears. Once the new key signs, the
// older ones are retired (retired_at = now) and stay published for
// `retired_kept` (default: the access-token lifetime + leeway) so tokens they
// signed keep verifying until they expire; then they leave the published set.
// Replicas racing to rotate insert at most one new key: the insert is guarded
// by a transaction-level advisory lock.
//
// Thread-safe: readers take immutable snapshots.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "libs/auth/key_set.h"
#include "libs/auth/token_signer.h"
#include "libs/base/clock.h"
#include "libs/crypto/key_ring.h"
#include "libs/pg/pool.h"

namespace crm::identity {

struct SigningKeyOptions {
  // Age of the active key at which a successor is created. Default 30 days.
  absl::Duration rotate_after = absl::Hours(24 * 30);
  // How far ahead of use a new key is published. Default 10 minutes; must be
  // more than the verifiers' key refresh interval.
  absl::Duration publish_ahead = absl::Minutes(10);
  // How long a retired key stays published. Default 15 min + 30 s (access
  // token lifetime + verifier leeway); must be at least that.
  absl::Duration retired_kept = absl::Minutes(15) + absl::Seconds(30);
};

// One key as published (no private half).
struct PublishedKey {
  std::string kid;
  std::string public_key;  // raw 32 bytes
  absl::Time created_at;
  absl::Time activated_at;
  std::optional<absl::Time> retired_at;
};

class SigningKeys {
 public:
  // INVALID_ARGUMENT naming the option if `options` are inconsistent
  // (non-positive or infinite durations, publish_ahead not under
  // rotate_after, retired_kept under 15 min 30 s). The pool, ring and
  // clock must outlive the object. Does not touch the database; call Refresh.
  static absl::StatusOr<std::unique_ptr<SigningKeys>> Create(pg::Pool& pool,
                                                             const crypto::KeyRing& ring,
                                                             const base::Clock& clock,
                                                             SigningKeyOptions options = {});

  // Loads the keys, creates the first or the next one if due, retires keys
  // superseded by an active newer key, unwraps the signing key and swaps in
  // new snapshots. Errors: UNAVAILABLE (database), DATA_LOSS /
  // FAILED_PRECONDITION when a stored private key cannot be unwrapped with
  // the ring (wrong or missing KEK version: named, never the key) or does not
  // match its stored public key. On error the database and the snapshots are
  // left as they were.
  absl::Status Refresh();

  // Forces a rotation now (crmctl / tests): inserts a new key activated at
  // now + publish_ahead, whatever the current key's age (a key activated now
  // if none is active), then does what Refresh does. Errors as Refresh.
  absl::Status RotateNow();

  // The signer of the newest key with activated_at <= now; FAILED_PRECONDITION
  // before the first successful Refresh.
  absl::StatusOr<std::shared_ptr<const auth::TokenSigner>> CurrentSigner() const;

  // Keys to publish now: active, pending (activated_at in the future) and
  // retired within retired_kept; newest first.
  std::vector<PublishedKey> Published() const;

  // Published() as a KeySet for this process's own TokenVerifier. The set is
  // replaced on every Refresh.
  const auth::KeySet& key_set() const { return key_set_; }

 private:
  SigningKeys(pg::Pool& pool, const crypto::KeyRing& ring, const base::Clock& clock,
              SigningKeyOptions options)
      : pool_(pool), ring_(ring), clock_(clock), options_(options) {}

  // Refresh, inserting a successor whatever the active key's age if `rotate`.
  absl::Status Sync(bool rotate);

  pg::Pool& pool_;
  const crypto::KeyRing& ring_;
  const base::Clock& clock_;
  const SigningKeyOptions options_;
  auth::KeySet key_set_;
  // Serializes Refresh/RotateNow of this object, so an older result is never
  // installed over a newer one.
  absl::Mutex sync_mu_;
  mutable absl::Mutex mu_;
  std::vector<PublishedKey> published_ ABSL_GUARDED_BY(mu_);
  // Every unwrapped signer by activation time, newest first (a pending key
  // becomes current without another Refresh once its time comes).
  std::vector<std::pair<absl::Time, std::shared_ptr<const auth::TokenSigner>>> signers_
      ABSL_GUARDED_BY(mu_);
};

}  // namespace crm::identity
