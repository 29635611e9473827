-- Subjects whose retention rule has expired (no activity for the rule's
-- period in their status), as the retention sweeper found them. Until the
-- erasure orchestrator exists they stay here as "due" for an operator to act
-- on (ListRetentionDue); a subject active again, or erased, leaves the list.
CREATE TABLE retention_due (
  subject_id uuid        PRIMARY KEY REFERENCES persons (subject_id) ON DELETE CASCADE,
  rule       text        NOT NULL,
  due_since  timestamptz NOT NULL,
  state      text        NOT NULL DEFAULT 'due'
);
CREATE INDEX retention_due_since_idx ON retention_due (due_since, subject_id);
CREATE INDEX persons_activity_idx ON persons (status, last_activity_at);
