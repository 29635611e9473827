-- Which worker holds a request's lease: a worker whose lease ran out and was
-- taken over may not write over the new holder's progress.
ALTER TABLE requests ADD COLUMN lease_owner uuid;
