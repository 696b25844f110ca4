-- Rebuilding from the event log (#10 item 5): one row per start that found the database empty and refilled
-- it from IIOE_EVENTS (or found nothing to restore). Its presence means "never restore again".
CREATE TABLE log_restores (
    restored_at  timestamptz NOT NULL DEFAULT now(),
    last_seq     bigint NOT NULL,
    events_read  bigint NOT NULL,
    certificates integer NOT NULL,
    educators    integer NOT NULL
);
