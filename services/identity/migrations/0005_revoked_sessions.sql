-- Identity's record of revoked access-token sessions: every session id whose
-- tokens were revoked (logout, an administrator, a password change, a
-- lockout, a replayed refresh token, a service account's replaced token
-- session, a subject's portal sign-out), kept until the last token it could
-- cover has expired. Redis holds a copy for the services' fast checks; this
-- table is what identity republishes from after Redis lost it, and what
-- CheckSession answers from while Redis is down. Ids only: no personal data.
CREATE TABLE revoked_sessions (
  session_id uuid        PRIMARY KEY,
  until      timestamptz NOT NULL
);
CREATE INDEX revoked_sessions_until_idx ON revoked_sessions (until);
