-- Consent's schema: purposes, notices, the per-subject ledger and the state
-- it folds into. See docs/consent.md.
--
-- Subjects appear by their pseudonymous id only. The evidence of a statement
-- (source address, user agent) is sealed under the subject's data key
-- (subject_keys, wrapped by the KEK ring); erasure deletes the key with the
-- ledger.

-- What the deployment processes data for, each with its lawful basis
-- (crm.consent.v1.LawfulBasis). The basis of a purpose never changes.
CREATE TABLE purposes (
  purpose_id       text        PRIMARY KEY,
  basis            smallint    NOT NULL CHECK (basis BETWEEN 1 AND 6),
  description      text        NOT NULL,
  data_categories  text[]      NOT NULL DEFAULT '{}',
  direct_marketing boolean     NOT NULL,
  validity_days    integer     NOT NULL CHECK (validity_days >= 0),
  created_at       timestamptz NOT NULL
);

-- Notice texts, immutable, by purpose and language; version = hex SHA-256 of
-- the text. The newest published is the current one.
CREATE TABLE notices (
  purpose_id   text        NOT NULL REFERENCES purposes (purpose_id),
  language     text        NOT NULL,
  version      text        NOT NULL,
  text         text        NOT NULL,
  published_at timestamptz NOT NULL,
  seq          bigserial   NOT NULL,
  PRIMARY KEY (purpose_id, language, version)
);
CREATE INDEX notices_current_idx ON notices (purpose_id, language, seq DESC);

CREATE TABLE subject_keys (
  subject_id uuid        PRIMARY KEY,
  wrapped    bytea       NOT NULL,
  created_at timestamptz NOT NULL
);

-- Append-only, hash-linked per subject (services/consent/ledger_chain.h).
CREATE TABLE ledger (
  subject_id     uuid        NOT NULL,
  sequence       bigint      NOT NULL,
  purpose_id     text        NOT NULL REFERENCES purposes (purpose_id),
  action         smallint    NOT NULL,
  notice_version text        NOT NULL,
  method         smallint    NOT NULL,
  source         text        NOT NULL,
  actor          text        NOT NULL,
  given_at       timestamptz NOT NULL,
  recorded_at    timestamptz NOT NULL,
  expires_at     timestamptz,
  previous_hash  text        NOT NULL,
  entry_hash     text        NOT NULL,
  evidence       bytea,      -- sealed: source address and user agent
  PRIMARY KEY (subject_id, sequence)
);

-- Where each subject stands on each purpose: the fold of its ledger, kept
-- with every append so that a check is one primary-key read.
CREATE TABLE consent_state (
  subject_id     uuid        NOT NULL,
  purpose_id     text        NOT NULL,
  kind           smallint    NOT NULL,  -- 1 granted, 2 withdrawn, 3 objected
  notice_version text        NOT NULL,
  expires_at     timestamptz,
  last_given_at  timestamptz NOT NULL,
  PRIMARY KEY (subject_id, purpose_id)
);
-- The re-consent list: grants that lapse.
CREATE INDEX consent_state_expiry_idx ON consent_state (expires_at) WHERE kind = 1;

-- Subjects whose processing is restricted (Art. 18): every check denies.
CREATE TABLE restrictions (
  subject_id uuid        PRIMARY KEY,
  since      timestamptz NOT NULL
);
