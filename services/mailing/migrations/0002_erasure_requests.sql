-- Idempotent erasure (crm.subject.v1.SubjectData/EraseSubjectData): the
-- answer given to each erasure request, so a retried request gets the same
-- one. Ids and counts only.
CREATE TABLE erasure_requests (
  request_id    uuid        PRIMARY KEY,
  subject_id    uuid        NOT NULL,
  subscriptions bigint      NOT NULL,
  sends         bigint      NOT NULL,
  completed_at  timestamptz NOT NULL
);
