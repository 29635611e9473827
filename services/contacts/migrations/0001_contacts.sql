-- Contacts' schema: the subject registry (persons), their data keys, owners
-- and look-up indexes. See docs/contacts.md.
--
-- No personal value sits in a plaintext column. Each personal field of a
-- person is its own AES-256-GCM ciphertext (bytea) under the subject's data
-- key, with associated data naming the subject and the field, so a value
-- moved to another row or column does not open. E-mail addresses and phone
-- numbers are found through blind indexes (HMAC-SHA256 of the normalised
-- value under contacts' blind-index key). The data key is stored wrapped by
-- the KEK ring; erasure deletes it (crypto-shredding) with the rows.

-- One data key per subject, wrapped (crypto::WrapDataKey, purpose
-- "contacts", bound to the subject id).
CREATE TABLE subject_keys (
  subject_id uuid        PRIMARY KEY,
  wrapped    bytea       NOT NULL,
  created_at timestamptz NOT NULL
);

CREATE TABLE persons (
  subject_id          uuid        PRIMARY KEY,
  status              smallint    NOT NULL CHECK (status > 0),
  company_id          uuid,
  team_id             uuid,
  -- Art. 18: kept but read-only and left out of processing while true.
  restricted          boolean     NOT NULL DEFAULT false,
  restriction_reason  bytea,      -- sealed
  notes_sensitive     boolean     NOT NULL DEFAULT false,
  -- Sealed personal fields (a serialized crm.contacts.v1.Person holding only
  -- that field); NULL when empty.
  given_name          bytea,
  family_name         bytea,
  emails              bytea,
  phones              bytea,
  addresses           bytea,
  job_title           bytea,
  personal_id_number  bytea,
  notes               bytea,
  -- Registration (not personal: names of channels and systems, and the
  -- operator's or service's id).
  reg_channel         text        NOT NULL,
  reg_source          text        NOT NULL,
  created_by          text        NOT NULL,
  created_at          timestamptz NOT NULL,
  updated_at          timestamptz NOT NULL,
  -- Last change or contact: what retention rules count from.
  last_activity_at    timestamptz NOT NULL,
  version             bigint      NOT NULL CHECK (version > 0)
);
-- ListPersons pages newest first; the filters narrow it.
CREATE INDEX persons_created_idx ON persons (created_at DESC, subject_id DESC);
CREATE INDEX persons_team_idx ON persons (team_id, created_at DESC) WHERE team_id IS NOT NULL;
CREATE INDEX persons_company_idx ON persons (company_id) WHERE company_id IS NOT NULL;

-- The operators responsible for a subject (identity user ids).
CREATE TABLE person_owners (
  subject_id uuid NOT NULL REFERENCES persons (subject_id) ON DELETE CASCADE,
  user_id    uuid NOT NULL,
  PRIMARY KEY (subject_id, user_id)
);
CREATE INDEX person_owners_user_idx ON person_owners (user_id, subject_id);

-- Blind indexes of a person's e-mail addresses and phone numbers. Unique: one
-- address or number belongs to one person (CreatePerson's duplicate check).
CREATE TABLE person_lookup (
  kind       text  NOT NULL CHECK (kind IN ('email', 'phone')),
  blind      bytea NOT NULL CHECK (octet_length(blind) = 32),
  subject_id uuid  NOT NULL REFERENCES persons (subject_id) ON DELETE CASCADE,
  PRIMARY KEY (kind, blind)
);
CREATE INDEX person_lookup_subject_idx ON person_lookup (subject_id);
