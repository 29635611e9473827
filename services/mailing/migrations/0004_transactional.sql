-- Transactional mail (SendTransactional) travels through the send queue too:
-- a row without a campaign, of the kind's crm.mailing.v1.TransactionalKind
-- value. It goes to a subject (subject_id) or to an address given by the
-- caller; then subject_id is NULL and `payload` holds the request (address
-- and parameters), encrypted under the service's key-encryption key and
-- bound to the row's message_id. The payload is wiped when the row is
-- finished (sent, skipped or failed for good).
ALTER TABLE send_queue ALTER COLUMN subject_id DROP NOT NULL;
ALTER TABLE send_queue ADD COLUMN payload bytea;
