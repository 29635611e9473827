-- Identity's schema: operators and service accounts, teams, custom roles and
-- time-bound grants, sessions, login history, password history, signing keys,
-- and notices waiting to be mailed. See docs/identity.md.
--
-- Personal data never sits in a plaintext column. Usernames and e-mails are
-- looked up through blind indexes (HMAC-SHA256 of the normalised value under
-- identity's blind-index key, 32 bytes); their values, display names, source
-- addresses and user agents are stored as AES-256-GCM ciphertext (bytea) made
-- by the service layer. The store never sees plaintext personal data.
-- Times are timestamptz (UTC). Built-in roles live in code (permissions.h);
-- only custom roles are rows here.

-- Operators (kind 'person') and backend systems (kind 'service_account').
CREATE TABLE users (
  id                    uuid        PRIMARY KEY,
  kind                  text        NOT NULL CHECK (kind IN ('person', 'service_account')),
  -- HMAC of the lower-cased username: the login key. Unique across kinds.
  username_index        bytea       NOT NULL CHECK (octet_length(username_index) BETWEEN 16 AND 64),
  username_ciphertext   bytea       NOT NULL,
  display_name_ciphertext bytea     NOT NULL,
  -- NULL for service accounts.
  email_index           bytea       CHECK (octet_length(email_index) BETWEEN 16 AND 64),
  email_ciphertext      bytea,
  status                text        NOT NULL CHECK (status IN ('active', 'disabled')),
  -- PHC string ($argon2id$v=19$m=...,t=...,p=...$salt$hash): parameters are
  -- kept with each hash so they can be raised and rehashed at next login.
  -- NULL for service accounts.
  password_hash         text,
  password_changed_at   timestamptz,
  must_change_password  boolean     NOT NULL DEFAULT false,
  -- Durable lockout record (Redis holds the fast counters; these hold when
  -- Redis is down and survive its restarts).
  failed_logins         integer     NOT NULL DEFAULT 0 CHECK (failed_logins >= 0),
  lockout_count         integer     NOT NULL DEFAULT 0 CHECK (lockout_count >= 0),
  locked_until          timestamptz,
  locked_permanently    boolean     NOT NULL DEFAULT false,
  last_login_at         timestamptz,
  -- TOTP: the secret sealed (AES-256-GCM); confirmed once the first code
  -- matched; the last accepted time step so a code cannot be used twice.
  totp_secret_ciphertext bytea,
  totp_confirmed_at     timestamptz,
  totp_last_step        bigint,
  -- Recovery codes as a list of hashes (recovery_codes.h), one use each.
  recovery_code_hashes  bytea[]     NOT NULL DEFAULT '{}',
  created_at            timestamptz NOT NULL,
  updated_at            timestamptz NOT NULL,
  CHECK (kind = 'service_account' OR (email_index IS NOT NULL AND email_ciphertext IS NOT NULL))
);
-- Login and CreateUser's duplicate check.
CREATE UNIQUE INDEX users_username_index_key ON users (username_index);
-- "not containing the e-mail" needs no look-up, but admins find users by
-- e-mail and a person has one account per address.
CREATE UNIQUE INDEX users_email_index_key ON users (email_index) WHERE email_index IS NOT NULL;
-- ListUsers pages by (created_at, id), optionally by status.
CREATE INDEX users_created_idx ON users (created_at, id);
CREATE INDEX users_status_created_idx ON users (status, created_at, id);
-- Password-expiry reminder sweeps.
CREATE INDEX users_password_changed_idx ON users (password_changed_at)
  WHERE kind = 'person' AND status = 'active';

-- Teams: names are organisational, not personal data.
CREATE TABLE teams (
  id          uuid        PRIMARY KEY,
  name        text        NOT NULL CHECK (char_length(name) BETWEEN 1 AND 100),
  description text        NOT NULL DEFAULT '',
  created_at  timestamptz NOT NULL
);
CREATE UNIQUE INDEX teams_name_key ON teams (lower(name));

CREATE TABLE team_members (
  team_id    uuid        NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
  user_id    uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  added_at   timestamptz NOT NULL,
  PRIMARY KEY (team_id, user_id)
);
-- A user's team ids for its access token.
CREATE INDEX team_members_user_idx ON team_members (user_id);

-- Custom roles (built-ins are in code and may not be shadowed: the service
-- checks the name against permissions.h before inserting).
CREATE TABLE roles (
  name         text        PRIMARY KEY CHECK (name ~ '^[a-z][a-z0-9_.-]{1,63}$'),
  description  text        NOT NULL DEFAULT '',
  permissions  text[]      NOT NULL,
  requires_mfa boolean     NOT NULL DEFAULT false,
  created_by   uuid        REFERENCES users (id) ON DELETE SET NULL,
  created_at   timestamptz NOT NULL
);
-- Built-in roles that require MFA (admins can set it for those too).
CREATE TABLE role_mfa_requirements (
  role_name  text        PRIMARY KEY,
  set_by     uuid        REFERENCES users (id) ON DELETE SET NULL,
  set_at     timestamptz NOT NULL
);

-- Grants of a role (built-in or custom, by name) to a user for an optional
-- window [not_before, not_after). Ended and revoked grants stay for the record.
CREATE TABLE grants (
  id                      uuid        PRIMARY KEY,
  user_id                 uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  role_name               text        NOT NULL,
  not_before              timestamptz,
  not_after               timestamptz,
  -- Free text an admin wrote: may name people, so it is sealed.
  justification_ciphertext bytea      NOT NULL,
  granted_by              uuid        REFERENCES users (id) ON DELETE SET NULL,
  created_at              timestamptz NOT NULL,
  revoked_at              timestamptz,
  revoked_by              uuid        REFERENCES users (id) ON DELETE SET NULL,
  -- Expiry notices already queued ('7d', '1d'), so sweeps do not repeat them.
  notices_sent            text[]      NOT NULL DEFAULT '{}',
  CHECK (not_after IS NULL OR not_before IS NULL OR not_after > not_before)
);
-- A user's grants, for tokens and ListGrants.
CREATE INDEX grants_user_idx ON grants (user_id, created_at);
-- ListExpiringGrants and the expiry-notice sweep.
CREATE INDEX grants_expiring_idx ON grants (not_after) WHERE revoked_at IS NULL AND not_after IS NOT NULL;
-- ListUsers(role=...).
CREATE INDEX grants_role_idx ON grants (role_name, user_id) WHERE revoked_at IS NULL;

-- Sessions: one per login; the refresh token rotates on every use. Each row
-- is one refresh token of a session's family; rotated_from links it to the
-- one it replaced. Presenting a token whose row has rotated_at set is a
-- replay: every row of the family is revoked.
CREATE TABLE sessions (
  id                  uuid        PRIMARY KEY,
  family_id           uuid        NOT NULL,
  user_id             uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  -- SHA-256 of the opaque refresh token (high entropy, so no salt needed).
  refresh_token_hash  bytea       NOT NULL CHECK (octet_length(refresh_token_hash) = 32),
  rotated_from        uuid        REFERENCES sessions (id) ON DELETE SET NULL,
  rotated_at          timestamptz,
  -- The token may only call ChangePassword (expired or forced password).
  password_change_only boolean    NOT NULL DEFAULT false,
  source_address_ciphertext bytea,
  user_agent_ciphertext     bytea,
  created_at          timestamptz NOT NULL,
  last_used_at        timestamptz NOT NULL,
  expires_at          timestamptz NOT NULL,
  revoked_at          timestamptz
);
CREATE UNIQUE INDEX sessions_refresh_token_key ON sessions (refresh_token_hash);
CREATE INDEX sessions_family_idx ON sessions (family_id);
CREATE INDEX sessions_user_idx ON sessions (user_id, created_at DESC);
-- Sweeper for expired rows.
CREATE INDEX sessions_expires_idx ON sessions (expires_at);

-- Every login attempt. user_id is NULL for unknown usernames (the attempted
-- username is not kept: it may be someone's mistyped password).
CREATE TABLE login_history (
  id                        uuid        PRIMARY KEY,
  user_id                   uuid        REFERENCES users (id) ON DELETE SET NULL,
  at                        timestamptz NOT NULL,
  result                    text        NOT NULL CHECK (result IN (
                              'success', 'bad_password', 'unknown_user', 'locked', 'mfa_failed',
                              'password_expired', 'disabled', 'throttled')),
  source_address_ciphertext bytea,
  user_agent_ciphertext     bytea
);
-- ListLoginHistory(user, range), newest first.
CREATE INDEX login_history_user_at_idx ON login_history (user_id, at DESC, id);
-- Retention sweep.
CREATE INDEX login_history_at_idx ON login_history (at);

-- The last passwords of each user ("not one of the last 5").
CREATE TABLE password_history (
  user_id        uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  password_hash  text        NOT NULL,
  changed_at     timestamptz NOT NULL,
  PRIMARY KEY (user_id, changed_at)
);

-- Ed25519 token-signing keys. The private key is sealed under identity's KEK
-- ring; the public key is served by GetSigningKeys.
CREATE TABLE signing_keys (
  kid                   text        PRIMARY KEY,
  public_key            bytea       NOT NULL CHECK (octet_length(public_key) = 32),
  private_key_wrapped   bytea       NOT NULL,
  kek_version           integer     NOT NULL,
  created_at            timestamptz NOT NULL,
  -- Newest key with activated_at <= now() and retired_at IS NULL signs.
  activated_at          timestamptz NOT NULL,
  retired_at            timestamptz
);
CREATE INDEX signing_keys_active_idx ON signing_keys (activated_at DESC) WHERE retired_at IS NULL;

-- Service accounts: a users row of kind 'service_account' bound to a
-- certificate identity (URI SAN), which IssueServiceToken looks up.
CREATE TABLE service_accounts (
  user_id    uuid        PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
  spiffe_id  text        NOT NULL CHECK (spiffe_id LIKE 'spiffe://%'),
  created_at timestamptz NOT NULL
);
CREATE UNIQUE INDEX service_accounts_spiffe_key ON service_accounts (spiffe_id);

-- Notices waiting for the mailing service (forced password change, password
-- expiry reminders, grant expiry notices). The recipient is a user id; the
-- service decrypts the address when it hands the notice over.
CREATE TABLE pending_notices (
  id            uuid        PRIMARY KEY,
  user_id       uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  kind          text        NOT NULL CHECK (kind IN (
                  'password_change_required', 'password_expiry_reminder', 'grant_expiry')),
  -- Non-personal parameters (grant id, days left) as JSON.
  params        jsonb       NOT NULL DEFAULT '{}',
  -- Makes queuing idempotent, e.g. 'grant:<id>:7d'.
  dedup_key     text        NOT NULL,
  created_at    timestamptz NOT NULL,
  attempts      integer     NOT NULL DEFAULT 0,
  next_attempt_at timestamptz NOT NULL,
  sent_at       timestamptz
);
CREATE UNIQUE INDEX pending_notices_dedup_key ON pending_notices (dedup_key);
-- The sender's queue.
CREATE INDEX pending_notices_due_idx ON pending_notices (next_attempt_at) WHERE sent_at IS NULL;
