-- Mailing's schema (docs/mailing.md): lists, subscriptions, templates,
-- campaigns and the durable send queue. Subjects appear by their
-- pseudonymous id only: no address is stored (they are fetched from contacts
-- when a batch is sent).

-- A list serves one consent purpose (crm.consent.v1).
CREATE TABLE lists (
  list_id     text        PRIMARY KEY,
  description text        NOT NULL,
  purpose_id  text        NOT NULL,
  opt_in      smallint    NOT NULL CHECK (opt_in IN (1, 2)),  -- 1 single, 2 double
  created_at  timestamptz NOT NULL
);

CREATE TABLE subscriptions (
  list_id        text        NOT NULL REFERENCES lists (list_id),
  subject_id     uuid        NOT NULL,
  state          smallint    NOT NULL CHECK (state BETWEEN 1 AND 3),  -- pending, active, unsubscribed
  source         text        NOT NULL,
  created_at     timestamptz NOT NULL,
  confirmed_at   timestamptz,
  ended_at       timestamptz,
  -- Double opt-in: the notice the subject was shown, for the consent grant
  -- recorded when the confirmation link is followed.
  notice_version text        NOT NULL DEFAULT '',
  language       text        NOT NULL DEFAULT '',
  PRIMARY KEY (list_id, subject_id)
);
CREATE INDEX subscriptions_subject_idx ON subscriptions (subject_id);

-- Template versions, immutable.
CREATE TABLE templates (
  template_id text        NOT NULL,
  version     bigint      NOT NULL CHECK (version >= 1),
  subject     text        NOT NULL,
  text_body   text        NOT NULL,
  html_body   text        NOT NULL,
  created_at  timestamptz NOT NULL,
  PRIMARY KEY (template_id, version)
);

CREATE TABLE campaigns (
  campaign_id      uuid        PRIMARY KEY,
  name             text        NOT NULL,
  list_id          text        NOT NULL REFERENCES lists (list_id),
  template_id      text        NOT NULL,
  template_version bigint      NOT NULL,
  state            smallint    NOT NULL CHECK (state BETWEEN 1 AND 6),  -- crm.mailing.v1.CampaignState
  send_at          timestamptz,
  created_at       timestamptz NOT NULL,
  FOREIGN KEY (template_id, template_version) REFERENCES templates (template_id, version)
);
CREATE INDEX campaigns_due_idx ON campaigns (send_at) WHERE state = 2;

-- The send queue: one row per message, created when a campaign starts (one
-- per active subscriber, never two: the unique key) or when a transactional
-- message is asked for (one per dedup key). Workers claim due rows with
-- FOR UPDATE SKIP LOCKED and a lease, so several replicas share the work and
-- a crashed worker's rows come back when the lease runs out.
CREATE TABLE send_queue (
  message_id      uuid        PRIMARY KEY,  -- the Message-ID's local part
  campaign_id     uuid        REFERENCES campaigns (campaign_id),
  subject_id      uuid        NOT NULL,
  kind            smallint    NOT NULL,  -- 0 campaign, else crm.mailing.v1.TransactionalKind
  dedup_key       text        UNIQUE,
  state           smallint    NOT NULL CHECK (state BETWEEN 1 AND 6),
                  -- 1 queued, 2 sent, 3 skipped (consent), 4 skipped (no address),
                  -- 5 failed, 6 cancelled
  attempts        integer     NOT NULL DEFAULT 0,
  next_attempt_at timestamptz NOT NULL,
  lease_until     timestamptz,
  last_error      text,       -- an SMTP reply code and class, never an address
  created_at      timestamptz NOT NULL,
  finished_at     timestamptz,
  unsubscribed_at timestamptz,
  UNIQUE (campaign_id, subject_id)
);
CREATE INDEX send_queue_due_idx ON send_queue (next_attempt_at) WHERE state = 1;
CREATE INDEX send_queue_subject_idx ON send_queue (subject_id);
