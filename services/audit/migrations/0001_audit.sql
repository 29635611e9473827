-- The audit log: every event of every service, append-only, as the leaves of
-- an RFC 6962 Merkle tree with signed checkpoints. See docs/audit.md.
--
-- Personal details of an event (field values, free-text details marked
-- personal, source address, user agent) are sealed (AES-256-GCM) under a data
-- key of the event's key scope before they become part of the leaf: the
-- subject's key ("subject:<id>"), else the acting user's ("actor:<id>"), else
-- the day's ("day:YYYY-MM-DD"). Destroying a key (erasure) leaves the sealed
-- bytes in place, so every hash still verifies while nobody can read them.

-- One row per leaf, leaf_index from 0 without gaps. The columns from event_id
-- to sealed are exactly what the canonical leaf encoding covers; leaf_hash is
-- SHA-256(0x00 || leaf). Retention clears the content columns (content_expired)
-- and keeps leaf_hash, so the tree still verifies.
CREATE TABLE audit_log (
  leaf_index      bigint      PRIMARY KEY CHECK (leaf_index >= 0),
  event_id        uuid        NOT NULL,
  event_time      timestamptz NOT NULL,
  service         text        NOT NULL,
  actor_user_id   text        NOT NULL DEFAULT '',
  actor_service   text        NOT NULL DEFAULT '',
  actor_session   text        NOT NULL DEFAULT '',
  action          text        NOT NULL,
  resource        text        NOT NULL DEFAULT '',
  subject_id      text        NOT NULL DEFAULT '',
  outcome         smallint    NOT NULL,
  request_id      text        NOT NULL DEFAULT '',
  key_scope       text        NOT NULL,
  -- The non-personal details (a serialized crm.audit.v1.Event holding only
  -- details marked personal=false); NULL if none or after expiry.
  clear_part      bytea,
  -- Sealed personal part (a serialized crm.audit.v1.Event holding only the
  -- personal fields); NULL when the event had none or after expiry.
  sealed          bytea,
  -- True for edits (field changes present): the edit report's filter.
  has_changes     boolean     NOT NULL DEFAULT false,
  leaf_hash       bytea       NOT NULL CHECK (octet_length(leaf_hash) = 32),
  ingested_at     timestamptz NOT NULL,
  content_expired boolean     NOT NULL DEFAULT false
);
CREATE UNIQUE INDEX audit_log_event_id_key ON audit_log (event_id);
-- Query and report paths, all ending in leaf_index for stable cursor paging.
CREATE INDEX audit_log_subject_idx ON audit_log (subject_id, leaf_index) WHERE subject_id <> '';
CREATE INDEX audit_log_actor_idx ON audit_log (actor_user_id, leaf_index) WHERE actor_user_id <> '';
CREATE INDEX audit_log_action_idx ON audit_log (action, leaf_index);
CREATE INDEX audit_log_resource_idx ON audit_log (resource, leaf_index) WHERE resource <> '';
CREATE INDEX audit_log_time_idx ON audit_log (event_time, leaf_index);

-- Complete subtrees of level >= 1: node (level, node_index) covers leaves
-- [node_index << level, (node_index + 1) << level). Written as the log grows;
-- proofs read O(log n) of them in one query.
CREATE TABLE merkle_nodes (
  level      smallint NOT NULL CHECK (level BETWEEN 1 AND 62),
  node_index bigint   NOT NULL CHECK (node_index >= 0),
  hash       bytea    NOT NULL CHECK (octet_length(hash) = 32),
  PRIMARY KEY (level, node_index)
);

-- Ed25519 keys signing checkpoints; private halves wrapped by audit's KEK ring.
CREATE TABLE checkpoint_keys (
  key_id          text        PRIMARY KEY,
  public_key      bytea       NOT NULL CHECK (octet_length(public_key) = 32),
  private_wrapped bytea       NOT NULL,
  created_at      timestamptz NOT NULL
);

-- Signed checkpoints: (tree_size, root) at a time, signed over the text of
-- docs/audit.md "Checkpoints".
CREATE TABLE checkpoints (
  tree_size  bigint      PRIMARY KEY CHECK (tree_size > 0),
  root_hash  bytea       NOT NULL CHECK (octet_length(root_hash) = 32),
  signed_at  timestamptz NOT NULL,
  key_id     text        NOT NULL REFERENCES checkpoint_keys (key_id),
  signature  bytea       NOT NULL CHECK (octet_length(signature) = 64)
);

-- Data keys by scope, wrapped by the KEK ring; destroyed_at set and wrapped
-- cleared when a subject is erased.
CREATE TABLE audit_data_keys (
  key_scope    text        PRIMARY KEY,
  wrapped      bytea,
  created_at   timestamptz NOT NULL,
  destroyed_at timestamptz,
  CHECK ((wrapped IS NULL) = (destroyed_at IS NOT NULL))
);

-- Idempotent erasure: the answer given to each erasure request.
CREATE TABLE erasure_requests (
  request_id   uuid        PRIMARY KEY,
  subject_id   text        NOT NULL,
  events       bigint      NOT NULL,
  completed_at timestamptz NOT NULL
);
