-- Consent receipts (Kantara Consent Receipt v1.1 shape, signed as a compact
-- JWS with EdDSA): the service's signing keys, their seeds wrapped by the KEK
-- ring, and each grant's receipt with its entry. A receipt names the subject
-- by its pseudonymous id only.
CREATE TABLE receipt_keys (
  key_id       text        PRIMARY KEY,
  public_key   bytea       NOT NULL,  -- raw Ed25519, 32 bytes
  wrapped_seed bytea       NOT NULL,
  created_at   timestamptz NOT NULL
);

ALTER TABLE ledger ADD COLUMN receipt text;
