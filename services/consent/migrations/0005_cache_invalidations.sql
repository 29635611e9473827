-- Check-cache invalidations (check_cache.h) not yet known to have reached
-- Redis. Each change of a subject's standing adds a row in its own
-- transaction; the row goes once Redis has dropped the subject's entries.
-- What a crash or a Redis outage leaves behind, every replica retries
-- (CheckCache::Repair), and until that has succeeded a replica that saw Redis
-- fail reads PostgreSQL, so a cached decision never outlives the change.
-- Subject ids only (pseudonymous), kept for milliseconds in the normal case.
CREATE TABLE cache_invalidations (
  id          bigserial   PRIMARY KEY,
  subject_id  uuid        NOT NULL,
  purpose_ids text        NOT NULL,  -- comma-separated purpose ids
  created_at  timestamptz NOT NULL DEFAULT now()
);
