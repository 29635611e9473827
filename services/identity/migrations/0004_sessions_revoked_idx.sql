-- The recently revoked sessions identity republishes to the Redis revocation
-- set on every sweep (SessionStore::RevokedSince).
CREATE INDEX sessions_revoked_idx ON sessions (revoked_at) WHERE revoked_at IS NOT NULL;
