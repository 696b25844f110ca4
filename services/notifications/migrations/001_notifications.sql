-- Contact details learned from EducatorContact (IIOE_CONTACTS): personal data, kept only here.
CREATE TABLE contacts (
    educator_id text PRIMARY KEY,
    institution text NOT NULL,
    full_name   text NOT NULL,
    email       text NOT NULL,
    language    text NOT NULL,
    event_time  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- One row per notification; the primary key (derived from event, channel, recipient) makes
-- a redelivered or duplicated event a no-op, and the status is the sending state machine:
-- awaiting_contact → pending → sending → sent | failed ; awaiting_contact → expired.
CREATE TABLE notifications (
    notification_id text PRIMARY KEY,
    event_id        text NOT NULL,
    event_type      text NOT NULL,
    kind            text NOT NULL,
    channel         text NOT NULL DEFAULT 'email',
    educator_id     text NOT NULL,
    recipient       text,
    language        text,
    context         jsonb NOT NULL,
    status          text NOT NULL CHECK (status IN ('awaiting_contact', 'pending', 'sending', 'sent', 'failed', 'expired')),
    attempts        integer NOT NULL DEFAULT 0,
    last_error      text,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    claim_token     uuid,
    lease_until     timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    sent_at         timestamptz
);
CREATE INDEX notifications_due ON notifications (next_attempt_at) WHERE status IN ('pending', 'sending');
CREATE INDEX notifications_awaiting ON notifications (educator_id) WHERE status = 'awaiting_contact';
CREATE INDEX notifications_by_educator ON notifications (educator_id, created_at);

-- Partner endpoints registered by operators; soft-deleted so delivery history stays readable.
CREATE TABLE webhooks (
    webhook_id  text PRIMARY KEY,
    url         text NOT NULL,
    institution text NOT NULL,
    event_types text[] NOT NULL,
    secret      text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    deleted_at  timestamptz
);

-- The webhook delivery queue: workers claim due rows with FOR UPDATE SKIP LOCKED.
CREATE TABLE webhook_deliveries (
    delivery_id      text PRIMARY KEY,
    webhook_id       text NOT NULL REFERENCES webhooks (webhook_id),
    event_id         text NOT NULL,
    event_type       text NOT NULL,
    event_subject    text NOT NULL,
    body             bytea NOT NULL,
    status           text NOT NULL CHECK (status IN ('pending', 'sending', 'delivered', 'dead', 'cancelled')),
    attempts         integer NOT NULL DEFAULT 0,
    last_error       text,
    last_status_code integer,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    claim_token      uuid,
    lease_until      timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    delivered_at     timestamptz,
    UNIQUE (webhook_id, event_id)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE status IN ('pending', 'sending');
CREATE INDEX webhook_deliveries_by_event ON webhook_deliveries (event_id);
