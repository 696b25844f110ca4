-- Faculty AI Portfolio read model (PortfolioEntryAdded, PracticeIntegrationReported) and its public share links.
-- Numbered 010 so that it cannot collide with the 003…009 migrations of work in progress elsewhere.

-- One row per (educator, entry id): the same entry sent again corrects it.
CREATE TABLE portfolio_entries (
    educator_id text NOT NULL,
    entry_id    text NOT NULL,
    institution text NOT NULL,
    kind        text NOT NULL,
    title       text NOT NULL,
    link        text,
    added_on    date NOT NULL,
    source      text NOT NULL,
    event_id    text NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (educator_id, entry_id)
);

-- Every practice report, keyed on its CloudEvent (source, id); the latest one counts.
CREATE TABLE practice_reports (
    source        text NOT NULL,
    event_id      text NOT NULL,
    educator_id   text NOT NULL,
    institution   text NOT NULL,
    integrates_ai boolean NOT NULL,
    disciplines   text[] NOT NULL,
    reported_on   date NOT NULL,
    received_seq  bigserial,
    PRIMARY KEY (source, event_id)
);
CREATE INDEX practice_reports_educator ON practice_reports (educator_id);

-- Public links to a signed portfolio bundle; at most one active link per educator.
CREATE TABLE portfolio_shares (
    share_id    text PRIMARY KEY,
    educator_id text NOT NULL,
    created_at  timestamptz NOT NULL,
    revoked_at  timestamptz
);
CREATE UNIQUE INDEX portfolio_shares_one_active ON portfolio_shares (educator_id) WHERE revoked_at IS NULL;
CREATE INDEX portfolio_shares_educator ON portfolio_shares (educator_id, created_at);
