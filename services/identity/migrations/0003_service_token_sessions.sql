-- The session id every token of a service account carries (its `sid`), so
-- that disabling or deleting the account revokes them all at once through
-- the Redis revocation set; it is replaced when the account is disabled, so
-- a re-enabled account's new tokens are not caught by the old revocation.
ALTER TABLE service_accounts ADD COLUMN token_session_id uuid NOT NULL DEFAULT gen_random_uuid();
