-- Columns the credential store (credential_store.h) needs beyond 0001.

-- The per-user salt of the recovery-code hashes (recovery_codes.h): NULL
-- until TOTP is confirmed, cleared again when TOTP is disabled.
ALTER TABLE users ADD COLUMN recovery_salt bytea;

-- Time of the last counted failed login (LockoutState::last_failure), for
-- the failure window: NULL if none since the last success or unlock.
ALTER TABLE users ADD COLUMN last_failure_at timestamptz;
