// RevocationChecker: asks whether a session has been revoked (logout, admin
// action, password change, lockout). TokenVerifier consults it on every call,
// after its cache of verified tokens, since revocation must take effect before
// the token expires. The production implementation, RedisRevocationChecker
// (redis_revocation.h), reads keys written by identity and may remember a
// "not revoked" answer for at most a second; InMemoryRevocationChecker serves
// tests and single-process tools.
//
// Implementations must be thread-safe.
#pragma once

#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"

namespace crm::auth {

class RevocationChecker {
 public:
  virtual ~RevocationChecker() = default;
  // True if `session_id` is revoked, false if not. An error (e.g. UNAVAILABLE
  // when the store is unreachable) makes the verifier refuse the call: it
  // fails closed.
  virtual absl::StatusOr<bool> IsRevoked(absl::string_view session_id) = 0;
};

class InMemoryRevocationChecker final : public RevocationChecker {
 public:
  absl::StatusOr<bool> IsRevoked(absl::string_view session_id) override;
  void Revoke(absl::string_view session_id);
  // Makes IsRevoked return `status` (if not OK) until called with OkStatus().
  void SetError(absl::Status status);

 private:
  absl::Mutex mu_;
  absl::flat_hash_set<std::string> revoked_ ABSL_GUARDED_BY(mu_);
  absl::Status error_ ABSL_GUARDED_BY(mu_);
};

}  // namespace crm::auth
