-- The hand-off: just before the end of data that makes the relay take a
-- message, the worker notes the moment here (handed_off_at), in its own
-- commit and only if the row is still its claim (the attempt it counted).
-- A row handed off whose worker then died (still queued when its lease ran
-- out) was most likely taken by the relay: the next round counts it sent and
-- never sends it again. A row taken over, cancelled or erased before its
-- hand-off is not handed off: the relay gets no end of data. A deferral (4xx)
-- after the end of data clears the mark with the retry.
ALTER TABLE send_queue ADD COLUMN handed_off_at timestamptz;
-- Rows in the relay's hands right now: a handful, found every round.
CREATE INDEX send_queue_handed_off_idx ON send_queue (lease_until)
  WHERE state = 1 AND handed_off_at IS NOT NULL;
