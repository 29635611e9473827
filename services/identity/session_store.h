// The storage interface for identity's sessions (refresh-token families) and
// login history. Two implementations share one contract test suite
// (session_store_test.cc): PgSessionStore on PostgreSQL (pg_session_store.h)
// and InMemorySessionStore (in_memory_session_store.h) for service tests.
//
// A session is a family of refresh tokens: the login creates the first one,
// and every refresh (Rotate) replaces the current token with a new one in the
// same family. The family id is the session id that users see, list and
// revoke; it stays the same across rotations. The store keeps only SHA-256
// hashes of refresh tokens (the service hashes) and sealed source addresses
// and user agents (the service seals); it never sees token material or
// plaintext personal data, and its status messages contain neither.
//
// Times are explicit parameters (`now`) so that expiry is decided by the
// caller's clock; stored times are truncated to microseconds (PostgreSQL's
// precision). Implementations are thread-safe.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "libs/base/uuid.h"

namespace crm::identity {

// SHA-256 of the opaque refresh token.
inline constexpr size_t kRefreshTokenHashBytes = 32;
// ListLoginHistory page sizes: 0 means the default; larger requests are capped.
inline constexpr int kDefaultHistoryPageSize = 50;
inline constexpr int kMaxHistoryPageSize = 500;

// What Create needs: the first refresh token of a new session.
struct NewSession {
  std::string id;                  // UUID of this token's row, minted by the caller
  std::string family_id;           // UUID of the session (may equal `id`)
  std::string user_id;             // UUID of an existing user
  std::string refresh_token_hash;  // kRefreshTokenHashBytes bytes
  bool password_change_only = false;
  std::optional<std::string> source_address_ciphertext;
  std::optional<std::string> user_agent_ciphertext;
  absl::Time created_at;
  absl::Time expires_at;  // absolute end of the session; after created_at
};

// One refresh token of a session as stored.
struct SessionRecord {
  std::string id;
  std::string family_id;
  std::string user_id;
  std::string refresh_token_hash;
  std::optional<std::string> rotated_from;  // the token this one replaced
  bool password_change_only = false;
  std::optional<std::string> source_address_ciphertext;
  std::optional<std::string> user_agent_ciphertext;
  absl::Time created_at;  // when this token was issued
  absl::Time expires_at;  // the session's end, kept across rotations

  friend bool operator==(const SessionRecord&, const SessionRecord&) = default;
};

// The login_history.result values.
enum class LoginResult {
  kSuccess,
  kBadPassword,
  kUnknownUser,
  kLocked,
  kMfaFailed,
  kPasswordExpired,
  kDisabled,
  kThrottled,
};

// One login attempt.
struct LoginAttempt {
  std::optional<std::string> user_id;  // UUID; absent for unknown usernames
  absl::Time at;
  LoginResult result = LoginResult::kSuccess;
  std::optional<std::string> source_address_ciphertext;
  std::optional<std::string> user_agent_ciphertext;
};

struct LoginHistoryRecord {
  std::string id;  // minted by the store
  std::optional<std::string> user_id;
  absl::Time at;
  LoginResult result = LoginResult::kSuccess;
  std::optional<std::string> source_address_ciphertext;
  std::optional<std::string> user_agent_ciphertext;

  friend bool operator==(const LoginHistoryRecord&, const LoginHistoryRecord&) = default;
};

struct LoginHistoryPage {
  std::vector<LoginHistoryRecord> entries;  // by at descending, then id ascending
  std::string next_page_token;              // empty on the last page
};

class SessionStore {
 public:
  virtual ~SessionStore() = default;

  // ---- Sessions ----

  // Stores the first token of a new session and returns it.
  // Errors: INVALID_ARGUMENT naming id, family_id, user_id (not UUIDs),
  // refresh_token_hash (not 32 bytes) or expires_at (not after created_at);
  // ALREADY_EXISTS when the id or the token hash is taken; PgSessionStore
  // also FAILED_PRECONDITION for an unknown user (foreign key).
  virtual absl::StatusOr<SessionRecord> Create(const NewSession& session) = 0;

  // Exchanges the current token `presented_hash` for `new_hash` atomically:
  // the presented token is marked rotated and a new token of the same
  // family (fresh id, rotated_from = the presented one, created_at = now, the
  // family's expires_at and source info) is returned. Of concurrent
  // rotations of one token exactly one succeeds.
  // Errors, checked in this order:
  // - INVALID_ARGUMENT naming new_token_hash if it is not 32 bytes;
  // - UNAUTHENTICATED "refresh token not recognised" for an unknown hash;
  // - UNAUTHENTICATED "session revoked" if the token's session is revoked;
  // - UNAUTHENTICATED "session expired" at or after expires_at;
  // - FAILED_PRECONDITION "refresh token reused; session revoked" when the
  //   presented token was already rotated (a replay, or the loser of a race):
  //   every token of the family is revoked (committed) before returning, so
  //   the service can audit the replay and revoke the session's access tokens;
  // - ALREADY_EXISTS if `new_hash` is already stored (nothing changes).
  virtual absl::StatusOr<SessionRecord> Rotate(absl::string_view presented_hash,
                                               absl::string_view new_hash, absl::Time now) = 0;

  // The current token of each live session of `user_id` (not rotated, not
  // revoked, expires_at after `now`), newest first (created_at descending,
  // then id descending). Unknown users have none.
  // Errors: INVALID_ARGUMENT naming user_id.
  virtual absl::StatusOr<std::vector<SessionRecord>> ListSessions(absl::string_view user_id,
                                                                  absl::Time now) = 0;

  // Revokes every token of session (family) `session_id` at `now`. OK if it
  // was already revoked. Errors: INVALID_ARGUMENT naming session_id;
  // NOT_FOUND if there is no such session.
  virtual absl::Status Revoke(absl::string_view session_id, absl::Time now) = 0;

  // Revokes every not yet revoked session of `user_id` except
  // `except_session_id` (the caller's own, e.g. after a password change).
  // Returns the ids of the sessions it revoked, sorted, for the revocation set.
  // Errors: INVALID_ARGUMENT naming user_id or except_session_id.
  virtual absl::StatusOr<std::vector<std::string>> RevokeAllForUser(
      absl::string_view user_id, std::optional<std::string> except_session_id, absl::Time now) = 0;

  // ---- The revocation record ----
  // Every revocation of access tokens, whatever minted them (sessions of this
  // store, service-account token sessions, subjects' portal tokens), kept
  // until the last token it covers has expired. Identity publishes it to the
  // Redis revocation set, republishes it when Redis lost it, and answers
  // CheckSession from it while Redis is down.

  // Records the sessions' tokens as revoked until `until`; an id recorded
  // again keeps the later time. All or nothing. Errors: INVALID_ARGUMENT
  // naming session_ids[i] (not a UUID).
  virtual absl::Status RecordRevocations(absl::Span<const std::string> session_ids,
                                         absl::Time until) = 0;

  // Whether the tokens of `session_id` are revoked at `now`: recorded with
  // `until` after `now`, or a session (family) of this store that is revoked
  // (covered even if the record was never written). Errors: INVALID_ARGUMENT
  // naming session_id.
  virtual absl::StatusOr<bool> IsRevoked(absl::string_view session_id, absl::Time now) = 0;

  // The revocations in force, sorted and unique: the ids recorded with
  // `until` after `now`, and the sessions (families) revoked at or after
  // `revoked_since` (the oldest revocation whose tokens could still be
  // presented).
  virtual absl::StatusOr<std::vector<std::string>> RevocationsInForce(absl::Time now,
                                                                      absl::Time revoked_since) = 0;

  // Forgets the records whose `until` is before `before`; returns how many.
  virtual absl::StatusOr<int64_t> PruneRevocations(absl::Time before) = 0;

  // ---- Login history ----

  // Records one attempt with a fresh id. Errors: INVALID_ARGUMENT naming
  // user_id (not a UUID); PgSessionStore also FAILED_PRECONDITION for an
  // unknown user id (foreign key).
  virtual absl::StatusOr<LoginHistoryRecord> AppendLogin(const LoginAttempt& attempt) = 0;

  // One page of the attempts of `user_id` with start <= at < end, newest
  // first (at descending, then id ascending). `page_size` 0 means
  // kDefaultHistoryPageSize; larger than kMaxHistoryPageSize is capped.
  // `page_token` is empty for the first page, else a next_page_token of an
  // earlier call with the same user and range.
  // Errors: INVALID_ARGUMENT naming user_id, end_time (before start_time),
  // page_size (negative) or page_token (malformed, or for another query).
  virtual absl::StatusOr<LoginHistoryPage> ListLogins(absl::string_view user_id,
                                                      absl::Time start_time, absl::Time end_time,
                                                      int page_size,
                                                      absl::string_view page_token) = 0;
};

// ---- Helpers shared by both implementations --------------------------------

// The canonical (lower-case) form of every id; INVALID_ARGUMENT naming
// session_ids[i] for the first that is not a UUID (RecordRevocations).
inline absl::StatusOr<std::vector<std::string>> CanonicalSessionIds(
    absl::Span<const std::string> session_ids) {
  std::vector<std::string> ids;
  ids.reserve(session_ids.size());
  for (size_t i = 0; i < session_ids.size(); ++i) {
    absl::StatusOr<std::string> id =
        base::CanonicalUuid(absl::StrCat("session_ids[", i, "]"), session_ids[i]);
    if (!id.ok()) return id.status();
    ids.push_back(*std::move(id));
  }
  return ids;
}

inline absl::string_view LoginResultName(LoginResult result) {
  switch (result) {
    case LoginResult::kSuccess:
      return "success";
    case LoginResult::kBadPassword:
      return "bad_password";
    case LoginResult::kUnknownUser:
      return "unknown_user";
    case LoginResult::kLocked:
      return "locked";
    case LoginResult::kMfaFailed:
      return "mfa_failed";
    case LoginResult::kPasswordExpired:
      return "password_expired";
    case LoginResult::kDisabled:
      return "disabled";
    case LoginResult::kThrottled:
      return "throttled";
  }
  return "unknown";
}

// The result named `name` (as stored), or INTERNAL for an unknown name.
inline absl::StatusOr<LoginResult> ParseLoginResult(absl::string_view name) {
  for (LoginResult r :
       {LoginResult::kSuccess, LoginResult::kBadPassword, LoginResult::kUnknownUser,
        LoginResult::kLocked, LoginResult::kMfaFailed, LoginResult::kPasswordExpired,
        LoginResult::kDisabled, LoginResult::kThrottled}) {
    if (LoginResultName(r) == name) return r;
  }
  return absl::InternalError("login_history.result holds an unknown value");
}

// Canonical ids of `session` and OK if it can be stored; INVALID_ARGUMENT
// naming the field otherwise.
inline absl::StatusOr<NewSession> CanonicalNewSession(const NewSession& session) {
  NewSession out = session;
  auto id = base::CanonicalUuid("id", session.id);
  if (!id.ok()) return id.status();
  auto family = base::CanonicalUuid("family_id", session.family_id);
  if (!family.ok()) return family.status();
  auto user = base::CanonicalUuid("user_id", session.user_id);
  if (!user.ok()) return user.status();
  out.id = *id;
  out.family_id = *family;
  out.user_id = *user;
  if (session.refresh_token_hash.size() != kRefreshTokenHashBytes) {
    return absl::InvalidArgumentError("refresh_token_hash: must be 32 bytes");
  }
  out.created_at = absl::FromUnixMicros(absl::ToUnixMicros(session.created_at));
  out.expires_at = absl::FromUnixMicros(absl::ToUnixMicros(session.expires_at));
  if (out.expires_at <= out.created_at) {
    return absl::InvalidArgumentError("expires_at: must be after created_at");
  }
  return out;
}

// The page size ListLogins uses for `page_size`, or INVALID_ARGUMENT naming
// page_size when it is negative.
inline absl::StatusOr<int> EffectiveHistoryPageSize(int page_size) {
  if (page_size < 0) return absl::InvalidArgumentError("page_size: must not be negative");
  if (page_size == 0) return kDefaultHistoryPageSize;
  return page_size > kMaxHistoryPageSize ? kMaxHistoryPageSize : page_size;
}

// The position after which a ListLogins page starts.
struct HistoryCursor {
  int64_t at_micros = 0;
  std::string id;
};

// Fingerprint of a ListLogins query, carried in its page tokens.
inline std::string HistoryQueryKey(absl::string_view user_id, absl::Time start, absl::Time end) {
  return absl::StrCat(user_id, "/", absl::ToUnixMicros(start), "/", absl::ToUnixMicros(end));
}

// Opaque page token: web-safe base64 of "h1|<micros>|<id>|<query key>".
inline std::string EncodeHistoryPageToken(const HistoryCursor& cursor, absl::string_view query) {
  return absl::WebSafeBase64Escape(
      absl::StrCat("h1|", cursor.at_micros, "|", cursor.id, "|", query));
}

// Decodes a token of EncodeHistoryPageToken for the same query;
// INVALID_ARGUMENT naming page_token otherwise.
inline absl::StatusOr<HistoryCursor> DecodeHistoryPageToken(absl::string_view token,
                                                            absl::string_view query) {
  const absl::Status bad =
      absl::InvalidArgumentError("page_token: malformed or not for this query");
  std::string raw;
  if (!absl::WebSafeBase64Unescape(token, &raw)) return bad;
  std::vector<absl::string_view> parts = absl::StrSplit(raw, absl::MaxSplits('|', 3));
  if (parts.size() != 4 || parts[0] != "h1") return bad;
  HistoryCursor cursor;
  if (!absl::SimpleAtoi(parts[1], &cursor.at_micros)) return bad;
  auto id = base::CanonicalUuid("page_token", parts[2]);
  if (!id.ok()) return bad;
  cursor.id = *id;
  if (parts[3] != query) return bad;
  return cursor;
}

}  // namespace crm::identity
