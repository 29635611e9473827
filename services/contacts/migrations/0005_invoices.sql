-- Invoice records, kept for the accounting retention period even after the
-- person invoiced is erased (then restricted: kept, read by nobody but the
-- erasure export, purged by the sweeper once retain_until has passed).
--
-- The invoice number and amounts are sealed under the owner's INVOICE key
-- (invoice_keys, purpose "contacts.invoice"), not the subject's data key:
-- erasure destroys the subject's key, and the law still wants the invoice
-- readable. The invoice key is deleted with the owner's last invoice.
CREATE TABLE invoice_keys (
  owner_id   uuid        PRIMARY KEY,  -- a subject or a company
  wrapped    bytea       NOT NULL,
  created_at timestamptz NOT NULL
);

CREATE TABLE invoices (
  invoice_id   uuid        PRIMARY KEY,
  -- No foreign keys: the record outlives the person's erasure.
  subject_id   uuid,
  company_id   uuid,
  sealed       bytea       NOT NULL,  -- number and amounts
  issue_date   date        NOT NULL,
  currency     char(3)     NOT NULL,
  retain_until date        NOT NULL,
  restricted   boolean     NOT NULL DEFAULT false,
  created_by   text        NOT NULL,
  created_at   timestamptz NOT NULL,
  CHECK ((subject_id IS NULL) <> (company_id IS NULL))
);
CREATE INDEX invoices_subject_idx ON invoices (subject_id, issue_date DESC, invoice_id DESC)
  WHERE subject_id IS NOT NULL;
CREATE INDEX invoices_company_idx ON invoices (company_id, issue_date DESC, invoice_id DESC)
  WHERE company_id IS NOT NULL;
CREATE INDEX invoices_retain_idx ON invoices (retain_until);

-- Erasure answers report the invoices kept and until when.
ALTER TABLE erasure_requests ADD COLUMN invoices_retained bigint NOT NULL DEFAULT 0;
ALTER TABLE erasure_requests ADD COLUMN retained_until date;
