-- The erasure orchestrator's schema (docs/erasure.md): requests, their
-- per-target progress and the signed certificates. Subjects appear by their
-- pseudonymous id only.

CREATE TABLE requests (
  request_id       uuid        PRIMARY KEY,
  subject_id       uuid        NOT NULL,
  reason           smallint    NOT NULL CHECK (reason BETWEEN 1 AND 3),
  requester        text        NOT NULL,  -- a user or service-account id
  state            smallint    NOT NULL CHECK (state BETWEEN 1 AND 8),  -- crm.erasure.v1.State
  received_at      timestamptz NOT NULL,
  not_before       timestamptz NOT NULL,  -- the end of the cancel window
  due_at           timestamptz NOT NULL,  -- Art. 12(3), extensions included
  extended_months  integer     NOT NULL DEFAULT 0 CHECK (extended_months BETWEEN 0 AND 2),
  extension_reason text        NOT NULL DEFAULT '',
  completed_at     timestamptz,
  rounds           integer     NOT NULL DEFAULT 0,
  attention        text        NOT NULL DEFAULT '',
  -- The worker's queue: when to look again, and who holds it until when.
  next_attempt_at  timestamptz NOT NULL,
  lease_until      timestamptz
);
-- One open request per subject: a second submission finds the first.
CREATE UNIQUE INDEX requests_open_subject_idx ON requests (subject_id) WHERE state BETWEEN 1 AND 4;
CREATE INDEX requests_work_idx ON requests (next_attempt_at) WHERE state BETWEEN 1 AND 4;
CREATE INDEX requests_due_idx ON requests (due_at, request_id);
CREATE INDEX requests_completed_idx ON requests (completed_at) WHERE completed_at IS NOT NULL;

-- One row per request and target service (the registry when the request was
-- made). `detail` is the crm.erasure.v1.Target as last recorded: categories
-- and counts only.
CREATE TABLE targets (
  request_id      uuid        NOT NULL REFERENCES requests (request_id) ON DELETE CASCADE,
  service         text        NOT NULL,
  state           smallint    NOT NULL CHECK (state BETWEEN 1 AND 4),  -- crm.erasure.v1.TargetState
  next_attempt_at timestamptz NOT NULL,
  detail          bytea       NOT NULL,
  PRIMARY KEY (request_id, service)
);

-- Signed certificates (canonical JSON, no personal data; Ed25519).
CREATE TABLE certificates (
  request_id uuid        PRIMARY KEY REFERENCES requests (request_id) ON DELETE CASCADE,
  body       bytea       NOT NULL,
  signature  bytea       NOT NULL,
  issued_at  timestamptz NOT NULL
);
