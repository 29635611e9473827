// CredentialStore: the secrets and counters of identity's users that the
// UserStore leaves out, on PostgreSQL (columns of `users` and the tables
// `password_history` and `pending_notices`): password hash and history, the
// forced-change flag, the durable lockout record, the last login, the TOTP
// secret (sealed) with its last used step, the recovery-code hashes, and the
// notices queued for the mailing service.
//
// Like UserStore it never sees plaintext personal data or secrets it could
// use: the TOTP secret arrives sealed, passwords arrive as Argon2id PHC
// strings, recovery codes as hashes. Status messages never contain values.
//
// Every mutation is one transaction; the ones that must not race (recording
// a failure and locking, consuming a TOTP step or a recovery code) are
// conditional updates, so of two concurrent callers exactly one wins.
// Times are explicit parameters; stored times are truncated to microseconds.
// The store leaves users.updated_at (UserStore's) alone. Every method taking
// a user_id fails with INVALID_ARGUMENT naming user_id for a non-UUID and
// NOT_FOUND for an unknown user.
// Thread-safe: the pool is; the store holds no other state.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "libs/pg/pool.h"
#include "services/identity/lockout_policy.h"

namespace crm::identity {

// How many previous password hashes are kept ("not one of the last 5").
inline constexpr int kPasswordHistoryDepth = 5;

struct Credentials {
  std::string user_id;
  std::optional<std::string> password_hash;  // PHC string; none for service accounts
  std::optional<absl::Time> password_changed_at;
  bool must_change_password = false;
  // The durable lockout record (see lockout_policy.h): consecutive_failures
  // = users.failed_logins, lockouts = lockout_count, locked_until
  // (InfinitePast when NULL), admin_unlock_required = locked_permanently,
  // last_failure = last_failure_at (InfinitePast when NULL). InfiniteFuture
  // (an admin lock) is stored as 'infinity' and read back as InfiniteFuture.
  LockoutState lockout;
  std::optional<absl::Time> last_login_at;
  // TOTP: the sealed secret, set by BeginTotpEnrollment; confirmed once a
  // code matched. Enabled = secret present and confirmed.
  std::optional<std::string> totp_secret_ciphertext;
  std::optional<absl::Time> totp_confirmed_at;
  std::optional<int64_t> totp_last_step;
  // Recovery codes: per-user salt and the hashes; a used code's entry is
  // emptied (kept in place so indexes stay stable).
  std::string recovery_salt;
  std::vector<std::string> recovery_code_hashes;

  bool totp_enabled() const {
    return totp_secret_ciphertext.has_value() && totp_confirmed_at.has_value();
  }
};

// A notice waiting for the mailing service.
enum class NoticeKind { kPasswordChangeRequired, kPasswordExpiryReminder, kGrantExpiry };

struct NewNotice {
  std::string user_id;
  NoticeKind kind = NoticeKind::kPasswordChangeRequired;
  // Non-personal parameters as a JSON object text ("{}" if none), e.g.
  // {"grant_id":"...","days_left":7}.
  std::string params_json = "{}";
  // Makes queuing idempotent: a second Enqueue with the same key is a no-op.
  std::string dedup_key;
  absl::Time now;
};

struct NoticeRecord {
  std::string id;
  std::string user_id;
  NoticeKind kind = NoticeKind::kPasswordChangeRequired;
  std::string params_json;
  std::string dedup_key;
  absl::Time created_at;
  int attempts = 0;
  absl::Time next_attempt_at;
  std::optional<absl::Time> sent_at;
};

absl::string_view NoticeKindName(NoticeKind kind);  // the pending_notices.kind value

class CredentialStore {
 public:
  // `pool` (migrated with services/identity/migrations) must outlive the store.
  explicit CredentialStore(pg::Pool& pool) : pool_(pool) {}

  // The user's credentials. INVALID_ARGUMENT naming user_id for a non-UUID;
  // NOT_FOUND for an unknown user.
  absl::StatusOr<Credentials> Get(absl::string_view user_id);

  // The stored hashes of the last kPasswordHistoryDepth passwords, newest
  // first, including the current one. Errors as Get.
  absl::StatusOr<std::vector<std::string>> PasswordHistory(absl::string_view user_id);

  // Sets a new password hash (changed_at = now, must_change_password =
  // `must_change`), pushes it onto password_history and trims the history to
  // kPasswordHistoryDepth entries. A user created with a password has no
  // history yet: the first change records that password first, so it counts
  // as one of the last ones. INVALID_ARGUMENT naming password_hash if empty;
  // errors as Get.
  absl::Status SetPassword(absl::string_view user_id, absl::string_view password_hash,
                           bool must_change, absl::Time now);

  // Replaces the hash in place after a rehash with stronger parameters
  // (password_changed_at and the history are unchanged), only if the stored
  // hash still equals `old_hash`; returns whether it did. INVALID_ARGUMENT
  // naming new_hash if empty; errors as Get.
  absl::StatusOr<bool> ReplaceHash(absl::string_view user_id, absl::string_view old_hash,
                                   absl::string_view new_hash);

  // Sets must_change_password. Errors as Get.
  absl::Status SetMustChangePassword(absl::string_view user_id, bool must_change);

  // Applies `update` to the stored lockout record atomically: reads the row
  // FOR UPDATE, calls update(current) and writes the result; returns what
  // was written. Concurrent callers are serialised by the row lock, so a
  // counter increment is never lost. `update` may run more than once (the
  // transaction is retried after serialization failures), so it must only
  // compute its result. Errors as Get.
  absl::StatusOr<LockoutState> UpdateLockout(
      absl::string_view user_id, const std::function<LockoutState(const LockoutState&)>& update);

  // Records a successful login: last_login_at = now and the failure count
  // and last failure cleared, like LockoutPolicy::OnSuccess (lockout count
  // and any lock kept). Errors as Get.
  absl::Status RecordLogin(absl::string_view user_id, absl::Time now);

  // Starts (or restarts, if not yet confirmed) TOTP enrolment with a sealed
  // secret. FAILED_PRECONDITION "totp already enabled" if confirmed;
  // INVALID_ARGUMENT naming secret_ciphertext if empty; errors as Get.
  absl::Status BeginTotpEnrollment(absl::string_view user_id, absl::string_view secret_ciphertext);

  // Confirms enrolment: totp_confirmed_at = now, totp_last_step = `step`,
  // and stores a fresh recovery salt and code hashes. FAILED_PRECONDITION
  // "no pending totp enrolment" if there is no unconfirmed secret;
  // INVALID_ARGUMENT naming recovery_salt if empty or recovery_code_hashes
  // if an entry is empty (empty means used); errors as Get.
  absl::Status ConfirmTotp(absl::string_view user_id, int64_t step, absl::string_view recovery_salt,
                           const std::vector<std::string>& recovery_code_hashes, absl::Time now);

  // Records a TOTP step as used if it is later than the stored one (UPDATE
  // ... WHERE totp_last_step IS NULL OR totp_last_step < step); returns
  // false if another login used this or a later step first (replay).
  // FAILED_PRECONDITION "totp not enabled" without a confirmed secret;
  // errors as Get.
  absl::StatusOr<bool> UseTotpStep(absl::string_view user_id, int64_t step);

  // Empties recovery code `index` if it still holds `expected_hash`; returns
  // false if it was used meanwhile. INVALID_ARGUMENT naming index if out of
  // range, expected_hash if empty; errors as Get.
  absl::StatusOr<bool> UseRecoveryCode(absl::string_view user_id, size_t index,
                                       absl::string_view expected_hash);

  // Clears the TOTP secret, step, confirmation and recovery codes. Idempotent.
  // Errors as Get.
  absl::Status DisableTotp(absl::string_view user_id);

  // Person users whose password was last changed after `changed_after` and
  // at or before `changed_before` (active persons only), by
  // password_changed_at then id, at most `limit`: for the expiry-reminder
  // sweep, which pages by passing the last time seen as `changed_after`.
  // INVALID_ARGUMENT naming limit if < 1.
  struct PasswordAge {
    std::string user_id;
    absl::Time password_changed_at;
  };
  absl::StatusOr<std::vector<PasswordAge>> PasswordsChangedBefore(
      absl::Time changed_before, int limit, absl::Time changed_after = absl::InfinitePast());

  // ---- Notices ----

  // Queues a notice (next_attempt_at = now). Returns true if queued, false if
  // a notice with the same dedup_key exists. INVALID_ARGUMENT naming
  // user_id, dedup_key (empty, over 200 bytes, not UTF-8) or params_json
  // (not a JSON object); NOT_FOUND for an unknown user. params_json is
  // stored as jsonb, so records hold PostgreSQL's normalised text of it.
  absl::StatusOr<bool> EnqueueNotice(const NewNotice& notice);

  // Unsent notices with next_attempt_at <= now, oldest first (by
  // next_attempt_at, then id), at most `limit`. INVALID_ARGUMENT naming limit
  // if < 1.
  absl::StatusOr<std::vector<NoticeRecord>> DueNotices(absl::Time now, int limit);

  // Marks a notice sent (a second call keeps the first sent_at).
  // INVALID_ARGUMENT naming notice_id for a non-UUID; NOT_FOUND for an
  // unknown id.
  absl::Status MarkNoticeSent(absl::string_view notice_id, absl::Time now);

  // Counts a failed delivery: attempts + 1, next_attempt_at = retry_at.
  // Errors as MarkNoticeSent.
  absl::Status DeferNotice(absl::string_view notice_id, absl::Time retry_at);

  // The notices of one user, newest first (by created_at, then id
  // descending; tests and admins). Errors as Get.
  absl::StatusOr<std::vector<NoticeRecord>> NoticesOfUser(absl::string_view user_id);

 private:
  pg::Pool& pool_;
};

}  // namespace crm::identity
