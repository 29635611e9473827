-- Access requests (Art. 15 and 20) share the requests table with erasures:
-- kind 1 erasure, 2 access. An access request goes RECEIVED -> EXPORTING (9)
-- -> COMPLETED (5, the export is ready) -> EXPIRED (10, the export deleted).
ALTER TABLE requests ADD COLUMN kind smallint NOT NULL DEFAULT 1 CHECK (kind IN (1, 2));
ALTER TABLE requests DROP CONSTRAINT requests_state_check;
ALTER TABLE requests ADD CONSTRAINT requests_state_check CHECK (state BETWEEN 1 AND 10);
ALTER TABLE targets DROP CONSTRAINT targets_state_check;
ALTER TABLE targets ADD CONSTRAINT targets_state_check CHECK (state BETWEEN 1 AND 5);
-- Access: when the export is deleted; the key its parts are sealed under
-- (wrapped under the KEK), set to NULL on expiry.
ALTER TABLE requests ADD COLUMN expires_at timestamptz;
ALTER TABLE requests ADD COLUMN export_key bytea;
-- The subject is still to be told of an extension.
ALTER TABLE requests ADD COLUMN extension_notice_pending boolean NOT NULL DEFAULT false;

-- Open: RECEIVED to VERIFYING, and EXPORTING. One open request per subject
-- and kind.
DROP INDEX requests_open_subject_idx;
CREATE UNIQUE INDEX requests_open_subject_idx ON requests (subject_id, kind)
  WHERE state BETWEEN 1 AND 4 OR state = 9;
DROP INDEX requests_work_idx;
CREATE INDEX requests_work_idx ON requests (next_attempt_at) WHERE state BETWEEN 1 AND 4 OR state = 9;
CREATE INDEX requests_expiry_idx ON requests (expires_at) WHERE export_key IS NOT NULL;

-- An access export: each target's part of the document (JSON text, see
-- docs/erasure.md), in chunks of at most 256 KiB, each sealed with
-- AES-256-GCM under the request's export key, bound to (request, service,
-- seq). Deleted on expiry.
CREATE TABLE export_parts (
  request_id uuid    NOT NULL REFERENCES requests (request_id) ON DELETE CASCADE,
  service    text    NOT NULL,
  seq        integer NOT NULL,
  body       bytea   NOT NULL,
  PRIMARY KEY (request_id, service, seq)
);
