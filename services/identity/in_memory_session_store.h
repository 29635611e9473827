// A SessionStore kept in process memory, for service tests that need no
// PostgreSQL. It passes the same contract suite as PgSessionStore
// (session_store_test.cc): same validation, page tokens and statuses. It does
// not check that user ids name existing users (PostgreSQL's foreign key
// does). Nothing is persisted.
//
// Thread-safe: one absl::Mutex guards all state, so concurrent rotations of
// one token are serialised and exactly one wins, as in PostgreSQL.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "services/identity/session_store.h"

namespace crm::identity {

class InMemorySessionStore final : public SessionStore {
 public:
  InMemorySessionStore() = default;

  absl::StatusOr<SessionRecord> Create(const NewSession& session) override;
  absl::StatusOr<SessionRecord> Rotate(absl::string_view presented_hash, absl::string_view new_hash,
                                       absl::Time now) override;
  absl::StatusOr<std::vector<SessionRecord>> ListSessions(absl::string_view user_id,
                                                          absl::Time now) override;
  absl::Status Revoke(absl::string_view session_id, absl::Time now) override;
  absl::StatusOr<std::vector<std::string>> RevokeAllForUser(
      absl::string_view user_id, std::optional<std::string> except_session_id,
      absl::Time now) override;
  absl::Status RecordRevocations(absl::Span<const std::string> session_ids,
                                 absl::Time until) override;
  absl::StatusOr<bool> IsRevoked(absl::string_view session_id, absl::Time now) override;
  absl::StatusOr<std::vector<std::string>> RevocationsInForce(absl::Time now,
                                                              absl::Time revoked_since) override;
  absl::StatusOr<int64_t> PruneRevocations(absl::Time before) override;
  absl::StatusOr<LoginHistoryRecord> AppendLogin(const LoginAttempt& attempt) override;
  absl::StatusOr<LoginHistoryPage> ListLogins(absl::string_view user_id, absl::Time start_time,
                                              absl::Time end_time, int page_size,
                                              absl::string_view page_token) override;

 private:
  struct Row {
    SessionRecord record;
    std::optional<absl::Time> rotated_at;
    std::optional<absl::Time> revoked_at;
  };

  absl::Mutex mu_;
  std::map<std::string, Row> sessions_ ABSL_GUARDED_BY(mu_);                // by id
  std::map<std::string, std::string> by_hash_ ABSL_GUARDED_BY(mu_);         // hash -> id
  std::map<std::string, LoginHistoryRecord> history_ ABSL_GUARDED_BY(mu_);  // by id
  std::map<std::string, absl::Time> revocations_ ABSL_GUARDED_BY(mu_);      // id -> until
};

}  // namespace crm::identity
