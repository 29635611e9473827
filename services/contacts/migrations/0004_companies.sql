-- Companies: name, tax ids, addresses and billing data. A sole trader's
-- company data is personal data, so every one of these fields is sealed
-- (AES-256-GCM) under the company's own data key (company_keys, wrapped by the
-- KEK ring, purpose "contacts.company"); tax ids are found through blind
-- indexes (company_lookup), whose unique key is the duplicate check.
CREATE TABLE company_keys (
  company_id uuid        PRIMARY KEY,
  wrapped    bytea       NOT NULL,
  created_at timestamptz NOT NULL
);

CREATE TABLE companies (
  company_id uuid        PRIMARY KEY,
  team_id    uuid,
  -- Sealed fields (a serialized crm.contacts.v1.Company holding only that
  -- field); NULL when empty.
  name       bytea       NOT NULL,
  tax_ids    bytea,
  addresses  bytea,
  billing    bytea,
  created_by text        NOT NULL,
  created_at timestamptz NOT NULL,
  updated_at timestamptz NOT NULL,
  version    bigint      NOT NULL CHECK (version > 0)
);
CREATE INDEX companies_created_idx ON companies (created_at DESC, company_id DESC);

CREATE TABLE company_owners (
  company_id uuid NOT NULL REFERENCES companies (company_id) ON DELETE CASCADE,
  user_id    uuid NOT NULL,
  PRIMARY KEY (company_id, user_id)
);
CREATE INDEX company_owners_user_idx ON company_owners (user_id, company_id);

CREATE TABLE company_lookup (
  kind       text  NOT NULL CHECK (kind IN ('nip', 'regon', 'krs', 'eu_vat')),
  blind      bytea NOT NULL CHECK (octet_length(blind) = 32),
  company_id uuid  NOT NULL REFERENCES companies (company_id) ON DELETE CASCADE,
  PRIMARY KEY (kind, blind)
);
CREATE INDEX company_lookup_company_idx ON company_lookup (company_id);
