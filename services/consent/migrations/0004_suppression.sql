-- The suppression list: a subject who objected to direct marketing and was
-- then erased must not be mailed again after a later re-import (Art. 21(3)
-- outlives the erasure of the record). Only a keyed hash of each of the
-- subject's e-mail addresses is kept: HMAC-SHA256 under consent's own
-- blind-index key of the normalised address. No subject id and only the day,
-- so a row does not lead back to the erased record.
CREATE TABLE suppressions (
  address_hash bytea PRIMARY KEY CHECK (length(address_hash) = 32),
  reason       smallint NOT NULL,  -- 1: objected to direct marketing, then erased
  created_on   date     NOT NULL
);

-- What an erasure added to the list, for the answer to a retry.
ALTER TABLE erasure_requests ADD COLUMN suppressed integer NOT NULL DEFAULT 0;
