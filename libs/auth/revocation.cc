#include "libs/auth/revocation.h"

#include <utility>

namespace crm::auth {

absl::StatusOr<bool> InMemoryRevocationChecker::IsRevoked(absl::string_view session_id) {
  absl::MutexLock lock(&mu_);
  if (!error_.ok()) return error_;
  return revoked_.contains(session_id);
}

void InMemoryRevocationChecker::Revoke(absl::string_view session_id) {
  absl::MutexLock lock(&mu_);
  revoked_.insert(std::string(session_id));
}

void InMemoryRevocationChecker::SetError(absl::Status status) {
  absl::MutexLock lock(&mu_);
  error_ = std::move(status);
}

}  // namespace crm::auth
