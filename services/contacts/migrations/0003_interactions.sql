-- Contact history: calls, meetings, e-mails and notes about a person, by an
-- operator. The summary is sealed under the subject's data key (associated
-- data names the subject and the entry), so erasing the subject's key shreds
-- it; the rows go with the person (ON DELETE CASCADE).
CREATE TABLE interactions (
  interaction_id   uuid        PRIMARY KEY,
  subject_id       uuid        NOT NULL REFERENCES persons (subject_id) ON DELETE CASCADE,
  kind             smallint    NOT NULL CHECK (kind > 0),
  occurred_at      timestamptz NOT NULL,
  operator_user_id text        NOT NULL,
  summary          bytea       NOT NULL,
  sensitive        boolean     NOT NULL,
  created_at       timestamptz NOT NULL
);
-- ListInteractions pages a person's history newest first.
CREATE INDEX interactions_subject_idx
  ON interactions (subject_id, occurred_at DESC, interaction_id DESC);

-- Erasure answers count the history entries erased too.
ALTER TABLE erasure_requests ADD COLUMN interactions bigint NOT NULL DEFAULT 0;
