-- The subject's e-mail addresses, read from contacts when a request is
-- planned: passed to every Erase (consent keeps suppressing them if the
-- subject had objected to direct marketing) and used once for the
-- completion notice. Sealed under a key of the request's own (`notice_key`,
-- wrapped under the KEK); both are set to NULL once the notice is queued
-- with mailing, which destroys the key.
ALTER TABLE requests ADD COLUMN notice_key bytea;
ALTER TABLE requests ADD COLUMN addresses bytea;
