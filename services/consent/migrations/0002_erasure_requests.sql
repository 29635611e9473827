-- Idempotent erasure (crm.subject.v1.SubjectData/EraseSubjectData): the
-- answer given to each erasure request, so a retried request gets the same
-- one. No personal data: ids and counts.
CREATE TABLE erasure_requests (
  request_id   uuid        PRIMARY KEY,
  subject_id   uuid        NOT NULL,
  entries      bigint      NOT NULL,
  standings    bigint      NOT NULL,
  restricted   boolean     NOT NULL,
  key_existed  boolean     NOT NULL,
  completed_at timestamptz NOT NULL
);
