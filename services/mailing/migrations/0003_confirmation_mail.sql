-- Double opt-in confirmation mails travel through the send queue too: a row
-- without a campaign, of kind 100, naming the list to confirm.
ALTER TABLE send_queue ADD COLUMN list_id text REFERENCES lists (list_id);
