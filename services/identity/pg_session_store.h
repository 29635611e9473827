// SessionStore on PostgreSQL (tables sessions and login_history of
// services/identity/migrations/0001_identity.sql), through libs/pg: every
// statement is a named constant in pg_session_store.cc with bound parameters,
// run inside pg::Pool::Transact, so libpqxx exceptions never leave libs/pg.
//
// Rotate finds the presented token through the unique index
// sessions_refresh_token_key (session_store_test.cc checks the plan) and
// locks its row (SELECT ... FOR UPDATE), so of two concurrent rotations of
// one token the second waits, then sees the token rotated and is treated as
// a replay. Family revocation uses sessions_family_idx, per-user look-ups
// sessions_user_idx, history pages login_history_user_at_idx.
//
// Thread-safe: the pool is; the store holds no other state.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "libs/pg/pool.h"
#include "services/identity/session_store.h"

namespace crm::identity {

class PgSessionStore final : public SessionStore {
 public:
  // `pool` (migrated to 0001_identity.sql or later) must outlive the store.
  explicit PgSessionStore(pg::Pool& pool) : pool_(pool) {}

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

  // The statement Rotate uses to find a token by hash ($1 bytea), for the
  // EXPLAIN test.
  static const char* FindByTokenHashSql();

 private:
  pg::Pool& pool_;
};

}  // namespace crm::identity
