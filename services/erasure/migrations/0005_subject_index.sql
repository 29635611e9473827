-- A data subject lists their own requests (the privacy portal, issue 9):
-- ListErasures filtered by subject, in due order.
CREATE INDEX requests_subject_idx ON requests (subject_id, due_at, request_id);
