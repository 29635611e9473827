#include "services/identity/revocations.h"

#include <vector>

#include "libs/base/status_macros.h"
#include "libs/log/log.h"

namespace crm::identity {

absl::StatusOr<std::unique_ptr<Revocations>> Revocations::Create(SessionStore& store,
                                                                 redis::Client& redis,
                                                                 const base::Clock& clock,
                                                                 absl::Duration ttl,
                                                                 prometheus::Registry* metrics) {
  std::unique_ptr<Revocations> r(new Revocations(store, clock, ttl));
  CRM_ASSIGN_OR_RETURN(r->checker_,
                       auth::RedisRevocationChecker::Create(
                           redis, clock, {.revocation_ttl = ttl, .fallback = r.get()}, metrics));
  return r;
}

absl::Status Revocations::RevokeMany(absl::Span<const std::string> session_ids) {
  if (session_ids.empty()) return absl::OkStatus();
  CRM_RETURN_IF_ERROR(store_.RecordRevocations(session_ids, clock_.Now() + ttl_));
  if (absl::Status s = checker_->RevokeMany(session_ids, ttl_); !s.ok()) {
    // Set before the log: a Watch running now must not miss it.
    dirty_.store(true);
    log::Warn("identity.revocation_publish_failed", {{"status", s}});
  }
  return absl::OkStatus();
}

absl::StatusOr<bool> Revocations::IsRevoked(absl::string_view session_id) {
  return store_.IsRevoked(session_id, clock_.Now());
}

absl::Status Revocations::Watch() {
  const bool dirty = dirty_.load();
  if (!dirty) {
    CRM_ASSIGN_OR_RETURN(const bool complete, checker_->IsComplete());
    if (complete) return absl::OkStatus();
  }
  CRM_ASSIGN_OR_RETURN(const size_t sessions, RepublishAll());
  log::Info("identity.revocations_republished",
            {{"sessions", static_cast<int64_t>(sessions)},
             {"reason", dirty ? log::Literal("publish_failed") : log::Literal("set_incomplete")}});
  return absl::OkStatus();
}

absl::Status Revocations::Republish() { return RepublishAll().status(); }

absl::StatusOr<size_t> Revocations::RepublishAll() {
  // Cleared first: a publish failing while this runs sets it again.
  const bool was_dirty = dirty_.exchange(false);
  const absl::Time now = clock_.Now();
  absl::StatusOr<std::vector<std::string>> ids = store_.RevocationsInForce(now, now - ttl_);
  absl::Status s = ids.status();
  if (s.ok()) s = checker_->Republish(*ids, ttl_);
  if (!s.ok()) {
    if (was_dirty) dirty_.store(true);
    return s;
  }
  return ids->size();
}

absl::Status Revocations::Prune() { return store_.PruneRevocations(clock_.Now() - ttl_).status(); }

}  // namespace crm::identity
